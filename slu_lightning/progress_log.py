"""Training progress as log lines, for runs whose output goes to a file rather than a terminal.

Lightning's progress bar draws only on a terminal: a sweep cell's ``sweep.log`` or a ``nohup`` run's
output shows nothing from the first step to the end of training. ``ProgressLog`` writes a line every
``every_seconds`` instead: where the run is, how fast it goes, how long the epoch has left, its loss.
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
    """A progress line every ``every_seconds`` of training, and each validation's ``val/`` metrics.

    Args:
        every_seconds: Time between two progress lines.
        only_without_terminal: Stay quiet when standard error is a terminal (its progress bar shows).
    """

    def __init__(self, every_seconds: float = 60.0, only_without_terminal: bool = True):
        self.every_seconds = every_seconds
        self.only_without_terminal = only_without_terminal
        self._active = False
        self._epoch_started = self._last_line = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        terminal = sys.stderr.isatty()
        self._active = trainer.is_global_zero and not (self.only_without_terminal and terminal)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = self._last_line = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        if not self._active or now - self._last_line < self.every_seconds:
            return
        self._last_line = now
        done, total = batch_idx + 1, trainer.num_training_batches
        rate = done / max(now - self._epoch_started, 1e-9)
        left = f", {_duration((total - done) / rate)} left in the epoch" if math.isfinite(total) else ""
        log.info(
            "%s, batch %d/%s, %.2f batches/s%s, train/loss %s",
            _where(trainer),
            done,
            total if math.isfinite(total) else "?",
            rate,
            left,
            _metric(trainer, "train/loss"),
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._active and not trainer.sanity_checking and trainer.state.fn == "fit":
            metrics = sorted(name for name in trainer.callback_metrics if name.startswith("val/"))
            scores = ", ".join(f"{name} {_metric(trainer, name)}" for name in metrics)
            log.info("%s validated: %s", _where(trainer), scores)


def _where(trainer: L.Trainer) -> str:
    epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
    steps = f"/{trainer.max_steps}" if trainer.max_steps > 0 else ""
    return f"epoch {trainer.current_epoch + 1}{epochs}, step {trainer.global_step}{steps}"


def _metric(trainer: L.Trainer, name: str) -> str:
    value = trainer.callback_metrics.get(name)
    return "?" if value is None else f"{float(value):.4f}"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
