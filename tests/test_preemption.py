"""SIGINT and SIGTERM during ``slu-lightning fit``: real processes, real signals, exact resume."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch

from slu_lightning.cli import main
from slu_lightning.preemption import PreemptionCallback
from tests.test_cli import assert_same_weights, logged_steps, write_config

ROOT = Path(__file__).parents[1]
# 24 transcripts in batches of 4: 6 batches per epoch, 3 optimizer steps of 2 batches; 2 epochs.
ARGS = [
    "--data.class_path",
    "slu_lightning.data.datamodules.TextOnlyDataModule",
    "--data.init_args.batch_size",
    "4",
    "--trainer.accumulate_grad_batches",
    "2",
]
TOTAL_STEPS = 6
PAUSED = "paused between the micro-batches of an optimizer step"


class PauseForSignal(L.Callback):
    """Holds a run after the first batch that ends no optimizer step, or an evaluation after its
    first batch, until a signal has come.

    The signal then lands where Lightning's own SIGTERM handling would stop: mid-accumulation, or
    mid-evaluation.
    """

    def __init__(self) -> None:
        self.paused = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            self._pause_once(trainer)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._pause_once(trainer)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._pause_once(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
        if trainer.state.fn == "validate":  # not a fit's validation: fits pause in training
            self._pause_once(trainer)

    def _pause_once(self, trainer) -> None:
        if self.paused:
            return
        self.paused = True
        preemption = next(cb for cb in trainer.callbacks if isinstance(cb, PreemptionCallback))
        print(PAUSED, file=sys.stderr, flush=True)
        deadline = time.monotonic() + 120
        while preemption.received is None and time.monotonic() < deadline:
            time.sleep(0.01)


class PauseAtFirstEpochEnd(PauseForSignal):
    """Holds a fit after the first epoch's last batch, which ends an optimizer step, until a signal."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._pause_once(trainer)


def interrupt(
    config: Path, signum: int, *extra: str, command: str = "fit", pause: str = "PauseForSignal"
) -> tuple[int, str]:
    """Run ``command`` in a subprocess, send ``signum`` while it is paused; its exit code and stderr."""
    argv = [
        sys.executable,
        "-m",
        "slu_lightning.cli",
        command,
        "--config",
        str(config),
        *ARGS,
        f"--trainer.callbacks+=tests.test_preemption.{pause}",
        *extra,
    ]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if PAUSED in line:
            process.send_signal(signum)
            break
    seen.append(process.communicate(timeout=300)[1])
    return process.returncode, "".join(seen)


def assert_ends_like_the_uninterrupted_run(config: Path, checkpoints: Path) -> None:
    """The resumed run's ``last.ckpt`` holds the weights of the same fit run without a stop."""
    main(["fit", "--config", str(config), *ARGS, "--run.name", "whole"])
    whole = checkpoints.parents[1] / "whole" / "checkpoints" / "last.ckpt"
    assert torch.load(whole, weights_only=True)["global_step"] == TOTAL_STEPS
    assert_same_weights(checkpoints / "last.ckpt", whole)


def test_interrupted_twice_then_resumed_ends_with_the_uninterrupted_weights(
    toy_corpus, tiny_backbone, tmp_path
):
    """Ctrl-C a fresh run, then preempt its resumption: each stops after a whole optimizer step."""
    config = write_config(tmp_path, toy_corpus)
    checkpoints = tmp_path / "logs" / "toy" / "checkpoints"
    interruptions = [(signal.SIGINT, ()), (signal.SIGTERM, ("--ckpt_path", "last"))]
    for step, (signum, extra) in enumerate(interruptions, start=1):
        code, err = interrupt(config, signum, *extra)
        assert code == 128 + signum, err[-3000:]  # 130, then 143
        assert re.search(rf"interrupted by {signum.name} at epoch 1/\d+, step {step}\b", err), err[-3000:]
        assert "--ckpt_path last" in err
        assert "Traceback" not in err
        assert "dataloader is not resumable" not in err  # Lightning's false alarm: the sampler resumes
        stopped = torch.load(checkpoints / "last.ckpt", weights_only=True)
        progress = stopped["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
        assert stopped["global_step"] == step and progress["processed"] == 2 * step  # whole steps only
        assert not [path.name for path in checkpoints.iterdir() if path.name != "last.ckpt"]  # no temporary

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN, not Python's handler, under `nohup ... &`
    main(["fit", "--config", str(config), *ARGS, "--ckpt_path", "last"])
    assert signal.getsignal(signal.SIGINT) is before  # handlers given back
    assert not list(checkpoints.glob("last-v*"))  # the resumed run updated last.ckpt itself
    assert_ends_like_the_uninterrupted_run(config, checkpoints)


def test_a_run_stopped_by_max_steps_mid_epoch_resumes_where_it_stopped(toy_corpus, tiny_backbone, tmp_path):
    """Raising max_steps and resuming trains the rest of the cut-short epoch: the uninterrupted weights."""
    config = write_config(tmp_path, toy_corpus)
    checkpoints = tmp_path / "logs" / "toy" / "checkpoints"
    main(["fit", "--config", str(config), *ARGS, "--trainer.max_steps", "2"])
    stopped = torch.load(checkpoints / "last.ckpt", weights_only=True)
    progress = stopped["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert (stopped["global_step"], stopped["epoch"], progress["processed"]) == (2, 0, 4)
    main(["fit", "--config", str(config), *ARGS, "--ckpt_path", "last"])
    assert_ends_like_the_uninterrupted_run(config, checkpoints)


def test_a_signal_stops_test_predict_and_validate_non_zero_and_keeps_the_earlier_results(
    toy_corpus, tiny_backbone, tmp_path
):
    """Lightning alone exits 0 from an interrupted test, and a wrapper takes it for a finished one."""
    config = write_config(tmp_path, toy_corpus)
    run = tmp_path / "logs" / "toy"
    evaluate = ["--ckpt_path", "last", "--data.init_args.eval_batch_size", "2"]
    main(["fit", "--config", str(config), *ARGS, "--trainer.max_epochs", "1"])
    main(["test", "--config", str(config), *ARGS, *evaluate])
    results = ("metrics_test.json", "predictions_test.jsonl", "config_test.yaml")
    earlier = {name: (run / name).read_bytes() for name in results}

    code, err = interrupt(config, signal.SIGTERM, *evaluate, command="test")
    assert code == 143, err[-3000:]
    assert "test interrupted by SIGTERM after batch 1" in err and "Traceback" not in err
    assert {
        name: (run / name).read_bytes() for name in results
    } == earlier  # the interrupted run's config too

    clips = str(toy_corpus / "audio" / "test")
    code, err = interrupt(
        config, signal.SIGINT, *evaluate, "--data.init_args.predict_audio", clips, command="predict"
    )
    assert code == 130, err[-3000:]
    assert "predict interrupted by SIGINT after batch 1" in err
    assert not (run / "predictions_predict.jsonl").exists() and not (run / "config_predict.yaml").exists()

    code, err = interrupt(config, signal.SIGINT, *evaluate, command="validate")
    assert code == 130, err[-3000:]
    assert "validate interrupted by SIGINT after batch 1" in err


def test_a_signal_on_an_epochs_last_step_stops_after_its_validation_and_resumes_like_the_whole_run(
    toy_corpus, tiny_backbone, tmp_path
):
    """A checkpoint saved before the epoch's validation resumed past it: val/loss and the best
    checkpoint never saw that epoch."""
    config = write_config(tmp_path, toy_corpus)
    checkpoints = tmp_path / "logs" / "toy" / "checkpoints"
    code, err = interrupt(config, signal.SIGTERM, pause="PauseAtFirstEpochEnd")
    assert code == 143, err[-3000:]
    assert re.search(r"interrupted by SIGTERM at epoch 1/2, step 3\b", err), err[-3000:]
    assert [path.name for path in checkpoints.glob("best-*.ckpt")] == ["best-epoch=0-step=3.ckpt"]
    main(["fit", "--config", str(config), *ARGS, "--ckpt_path", "last"])
    assert_ends_like_the_uninterrupted_run(config, checkpoints)
    run = checkpoints.parent
    assert logged_steps(run, "val/loss") == logged_steps(run.parent / "whole", "val/loss")  # each epoch once
