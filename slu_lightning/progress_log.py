"""Training progress as log lines, for runs whose output goes to a file rather than a terminal.

Lightning's progress bar draws only on a terminal: a sweep cell's ``sweep.log`` or a ``nohup`` run's
output shows nothing from the first step to the end of training. ``ProgressLog`` writes a line every
``every_seconds`` instead: where the run is, how fast it goes, how long it has left, its loss.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class ProgressLog(Callback):
    """A progress line every ``every_seconds`` of training, testing or predicting, and each
    validation's ``val/`` metrics.

    Args:
        every_seconds: Time between two progress lines.
        only_without_terminal: Stay quiet when standard error is a terminal (its progress bar shows).
    """

    def __init__(self, every_seconds: float = 60.0, only_without_terminal: bool = True):
        self.every_seconds = every_seconds
        self.only_without_terminal = only_without_terminal
        self._active = False
        self._epoch_started = self._last_line = 0.0
        self._done_before: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        terminal = sys.stderr.isatty()
        self._active = trainer.is_global_zero and not (self.only_without_terminal and terminal)

    def _start_clock(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Time from here; the rate counts the batches after it (a run resumed mid-epoch starts at
        its saved batch, and skips ``on_train_epoch_start``)."""
        self._epoch_started = self._last_line = time.monotonic()
        self._done_before = None

    on_train_start = on_train_epoch_start = on_test_epoch_start = on_predict_epoch_start = _start_clock

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        where = where_in_training(trainer)
        line = self._progress(where, batch_idx + 1, trainer.num_training_batches, "in the epoch")
        if line:
            log.info("%s, train/loss %s", line, _metric(trainer, "train/loss"))

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._log_evaluation("testing", batch_idx + 1, trainer.num_test_batches[dataloader_idx])

    def on_predict_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._log_evaluation("predicting", batch_idx + 1, trainer.num_predict_batches[dataloader_idx])

    def _log_evaluation(self, stage: str, done: int, total: float) -> None:
        line = self._progress(stage, done, total, "")
        if line:
            log.info("%s", line)

    def _progress(self, where: str, done: int, total: float, of: str) -> str | None:
        """The progress part of a line, or None when no line is due."""
        if self._done_before is None:  # the first batch since the clock started
            self._done_before = done - 1
        now = time.monotonic()
        if not self._active or now - self._last_line < self.every_seconds:
            return None
        self._last_line = now
        rate = (done - self._done_before) / max(now - self._epoch_started, 1e-9)
        if not math.isfinite(total):
            return f"{where}, batch {done}, {rate:.2f} batches/s"
        left = " ".join(part for part in (_duration((total - done) / rate), "left", of) if part)
        return f"{where}, batch {done}/{total}, {rate:.2f} batches/s, {left}"

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._active and not trainer.sanity_checking and trainer.state.fn == "fit":
            metrics = sorted(name for name in trainer.callback_metrics if name.startswith("val/"))
            scores = ", ".join(f"{name} {_metric(trainer, name)}" for name in metrics)
            log.info("%s validated: %s", where_in_training(trainer), scores)


def where_in_training(trainer: L.Trainer) -> str:
    """``epoch 2/3, step 12/40``: epochs counted from 1, as the progress bar counts them."""
    epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
    steps = f"/{trainer.max_steps}" if trainer.max_steps > 0 else ""
    return f"epoch {trainer.current_epoch + 1}{epochs}, step {trainer.global_step}{steps}"


def _metric(trainer: L.Trainer, name: str) -> str:
    value = trainer.callback_metrics.get(name)
    return "?" if value is None else f"{float(value):.4f}"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
