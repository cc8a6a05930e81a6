"""What a run reports when part of its data never reached the model: a modality left out by a batch
limit, and clips skipped as bad input while batches were loaded."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from slu_lightning.cli import main
from slu_lightning.data.readers.manifest import read_manifest, write_manifest
from slu_lightning.model.module import SLUModule
from tests.test_cli import write_config

SKIP = ["--data.init_args.bad_input", "skip"]


def truncated_copy(corpus: Path, folder: Path, split: str, *broken: str) -> Path:
    """``split``'s manifest over copies of its clips, those of the ``broken`` ids cut in half: their
    headers read, their frames do not, so they are found only when a loader decodes them."""
    examples = []
    for example in read_manifest(corpus / f"{split}.jsonl"):
        audio = folder / Path(example.audio).name
        shutil.copy(example.audio, audio)
        if example.id in broken:
            audio.write_bytes(audio.read_bytes()[: audio.stat().st_size // 2])
        examples.append(replace(example, audio=str(audio)))
    return write_manifest(folder / f"{split}.jsonl", examples)


@pytest.fixture(scope="module")
def run(toy_corpus, tmp_path_factory):
    """A fit on every training clip, one of them truncated, under ``bad_input: skip``."""
    tmp_path = tmp_path_factory.mktemp("edges")
    train = truncated_copy(toy_corpus, tmp_path, "train", "train-5")
    config = write_config(tmp_path, toy_corpus)
    main(
        ["fit", "--config", str(config), *SKIP, "--data.init_args.speech_subset.proportion", "1.0"]
        + ["--data.init_args.corpus.init_args.train", str(train)]
    )
    return config, tmp_path / "logs" / "toy", tmp_path


def test_training_data_counts_the_clips_skipped_while_batches_were_loaded(run):
    _, run_dir, _ = run
    summary = json.loads((run_dir / "training_data.json").read_text())
    assert sum(summary["skipped_records"].values()) == 1  # found in a batch, after the file was first written


def test_a_modality_no_batch_reached_is_reported_with_no_examples(run, caplog, recwarn):
    config, run_dir, _ = run
    with caplog.at_level("INFO", logger="slu_lightning.model.module"):
        main(
            ["test", "--config", str(config), "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")]
            + ["--data.init_args.eval_modality", "both", "--data.init_args.eval_batch_size", "8"]
            + ["--trainer.limit_test_batches", "1"]  # speech is decoded first: the text batch never runs
        )
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    assert metrics["text"] == {"num_examples": 0.0} and metrics["speech"]["num_examples"] == 8
    assert "test on text: no example scored" in caplog.text
    assert not [w for w in recwarn if "before the ``update`` method" in str(w.message)]  # said once, above


def test_a_test_that_fails_before_its_metrics_leaves_no_predictions(run, monkeypatch):
    """A sweep counts a cell with predictions as tested: they are written last."""
    config, run_dir, _ = run

    def fail(self, split):
        raise RuntimeError("killed while computing the intervals")

    monkeypatch.setattr(SLUModule, "_log_metrics", fail)
    checkpoint = str(run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(RuntimeError, match="killed while computing"):
        main(["test", "--config", str(config), "--run.name", "failed-test", "--ckpt_path", checkpoint])
    assert not (run_dir.parent / "failed-test" / "predictions_test.jsonl").exists()


def test_metrics_count_the_test_clips_skipped_while_batches_were_loaded(run, toy_corpus, caplog):
    config, run_dir, tmp_path = run
    (tmp_path / "dev").mkdir()
    dev = truncated_copy(toy_corpus, tmp_path / "dev", "dev", "dev-3")
    with caplog.at_level("WARNING"):
        main(
            [
                "test",
                "--config",
                str(config),
                "--ckpt_path",
                str(run_dir / "checkpoints" / "last.ckpt"),
                *SKIP,
            ]
            + ["--data.init_args.corpus.init_args.dev", str(dev)]
        )
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    assert metrics["speech"]["num_examples"] == 7 and sum(metrics["skipped_records"].values()) == 1
    assert "in all, skipped 1 record" in caplog.text
