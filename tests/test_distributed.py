"""Two CPU processes under DDP (gloo): mixed text/speech batches train; evaluation counts each example
once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.model.part_weights import assert_frozen_then_trained, changed, freezing_config
from tests.test_cli import write_config
from tests.test_evaluation_edges import truncated_copy

pytestmark = pytest.mark.slow


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process: Lightning's DDP launcher re-runs this command for rank 1. The
    repository is on its path, for the callbacks of ``tests``."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "slu_lightning.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


DDP = [
    "--trainer.strategy",
    "ddp",
    "--trainer.devices",
    "2",
    "--trainer.accelerator",
    "cpu",
    "--model.init_args.always_run_audio_encoder",
    "true",
]
TRAINED_TOWER = ["--model.init_args.train_audio_encoder", "true"]


def test_ddp_fit_and_test_on_two_processes_match_one_process(toy_corpus, tmp_path):
    config = write_config(tmp_path, toy_corpus)
    # 30 examples (24 text + 6 speech), batch 6 per rank: most batches of a rank hold no audio, and the
    # trainable audio encoder would leave DDP's reducer waiting without the dummy clip.
    cli("fit", "--config", str(config), "--run.name", "ddp", *DDP, *TRAINED_TOWER, cwd=tmp_path)
    run = tmp_path / "logs" / "ddp"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 * 3  # 2 epochs x ceil(ceil(30 / 2) / 6) batches per rank
    seen = checkpoint["callbacks"]["CurriculumCallback"]  # both ranks' batches, not rank 0's alone
    assert (seen["examples_seen"], seen["speech_examples_seen"]) == (2 * 30, 2 * 6)

    ckpt = str(run / "checkpoints" / "last.ckpt")
    tested = cli(
        "test",
        "--config",
        str(config),
        "--run.name",
        "ddp-test",
        *DDP,
        *TRAINED_TOWER,
        "--ckpt_path",
        ckpt,
        cwd=tmp_path,
    )
    assert "sync_dist=True" not in tested.stderr  # the metrics are synchronised: no warning per metric
    cli(
        "test",
        "--config",
        str(config),
        "--run.name",
        "single-test",
        "--ckpt_path",
        ckpt,
        "--model.init_args.train_audio_encoder",
        "true",
        cwd=tmp_path,
    )
    two, one = (tmp_path / "logs" / name for name in ("ddp-test", "single-test"))
    rows = [json.loads(line) for line in (two / "predictions_test.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in rows) == [f"dev-{i}" for i in range(8)]  # each example exactly once
    assert json.loads((two / "metrics_test.json").read_text()) == json.loads(
        (one / "metrics_test.json").read_text()
    )


def test_a_ddp_checkpoint_holds_the_clips_every_rank_skipped(toy_corpus, tmp_path):
    """A resumed run's skip totals start from the checkpoint's: every rank's clips, not rank 0's alone."""
    broken = ("train-1", "train-2", "train-3", "train-5", "train-6", "train-7")
    (tmp_path / "clips").mkdir()
    train = truncated_copy(toy_corpus, tmp_path / "clips", "train", *broken)
    config = write_config(tmp_path, toy_corpus)
    skip_them = ["--data.init_args.bad_input", "skip", "--data.init_args.speech_subset.proportion", "1.0"]
    cli(
        "fit",
        "--config",
        str(config),
        *DDP,
        *TRAINED_TOWER,
        *skip_them,
        "--data.init_args.corpus.init_args.train",
        str(train),
        cwd=tmp_path,
    )
    checkpoint = torch.load(tmp_path / "logs" / "toy" / "checkpoints" / "last.ckpt", weights_only=True)
    skipped = checkpoint["MixedDataModule"]["skipped_records"]
    assert sorted(text.split(",")[0] for text in skipped) == [
        f"file {tmp_path / 'clips' / name}.flac" for name in broken
    ]


@pytest.mark.parametrize(
    "audio_side_by_default", [True, False], ids=["frozen-by-a-phase", "unfrozen-by-a-phase"]
)
def test_every_rank_freezes_and_trains_the_parts_each_phase_says(toy_corpus, tmp_path, audio_side_by_default):
    """DDP fixes the parameters it synchronises when it wraps the model. A part a phase froze after that
    stalled its reducer (the LoRA curriculum under ddp_8gpu.yaml stopped at its 2nd step); one a phase
    unfroze trained on each rank's own gradients, and the ranks' weights drifted apart."""
    config = freezing_config(tmp_path, toy_corpus, audio_side_by_default)
    cli("fit", "--config", str(config), *DDP, cwd=tmp_path)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for when, parts in ranks[0].items():
        for part, tensors in parts.items():
            assert not any(changed(tensors, ranks[1][when][part])), (when, part)
    assert_frozen_then_trained(ranks[0])
