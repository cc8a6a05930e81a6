"""Graceful stop on SIGTERM and SIGINT: finish the optimizer step or batch, save what resumes, exit non-zero.

A cluster preempts a job with SIGTERM (and SIGKILL after a grace period); a user stops one with
Ctrl-C (SIGINT). Lightning 2.6 on its own raises at the end of the current *batch*, possibly in the
middle of a gradient-accumulation cycle whose gradients no checkpoint can hold, saves nothing, and
exits with status 0 on SIGTERM, so a wrapper cannot tell an interrupted run from a finished one.

``PreemptionCallback`` replaces that while training runs (``on_train_start`` to ``on_train_end``):
its handlers only note the signal; after the next batch that ends an optimizer step, it saves
``<checkpoints>/last.ckpt`` (the file ``--ckpt_path last`` resumes from) through a temporary file
and a rename, logs how to resume, and raises ``TrainingInterrupted``, which exits with status
128 + the signal number (143 for SIGTERM, 130 for SIGINT). It raises rather than setting
``trainer.should_stop``, which would first run a whole validation (Lightning validates on an early
stop) and let ModelCheckpoint save again, eating into a preemption's grace period. The one
exception is the step that ends an epoch, in a run with the CLI's ``RunCheckpoint``: there the
epoch's validation runs first, and the run stops at ``on_train_epoch_end``, once ``RunCheckpoint``
has saved the validated state. A checkpoint saved before that validation records
the epoch's batches as done, so the resumed run would go on without it, and ``val/loss`` and the
best checkpoint would never see that epoch.

``validate``, ``test`` and ``predict`` get the same handlers from their ``on_*_start`` to their
``on_*_end``: a signal stops them at the end of the current batch with ``Interrupted`` (the same
exit status), before the epoch-end hooks that write their metrics and predictions, so the files of
an earlier evaluation stay as they were. Lightning's own handling would exit 0 there (``test``) or
not stop at all (``predict``). A SIGTERM caught by Lightning's handler before ``on_*_start`` (it is
installed just before the loop sets up its data) is read from ``trainer.received_sigterm``.

The previous handlers (Lightning's SIGTERM handler, Python's SIGINT handler) are put back when the
loop ends, so setup and teardown keep Lightning's behaviour: the two never compete.

Notes:
    - A signal that arrives during a validation inside ``fit`` takes effect after the next
      optimizer step.
    - The metrics of the step that saved mid-epoch are not logged (the loop stops before logging them).
    - Under DDP the training ranks agree at every optimizer step (one all-reduce of a flag), so a
      signal that reaches any rank stops all of them at the same step. Evaluation ranks may run one
      batch more or less than each other, so they do not agree per batch: each stops on its own
      signal, and rank 0 passes its signal on to the ranks it launched (as Lightning's handler does).
      A rank signalled alone exits 143 or 130 and says so; Lightning's launcher then kills the
      others within seconds (measured: rank 0 ended with SIGKILL 5 s after rank 1's SIGTERM, with
      no metrics written), so none waits at the final gather.
    - The checkpoint is one file (single device, DDP, FSDP with a ``full`` state dict); a sharded
      FSDP checkpoint is a directory, which a rename cannot put over an older one.
    - With ``num_workers > 0``, a signal sent to the whole process group (Ctrl-C in a terminal,
      SLURM) also reaches the DataLoader workers; they must ignore it (a ``worker_init_fn``), or
      PyTorch aborts the run when they die.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from slu_lightning.atomic import atomic_write
from slu_lightning.progress_log import where_in_training
from slu_lightning.run_checkpoint import RunCheckpoint

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)
Handler = Callable[[int, FrameType | None], Any] | int | None


class Interrupted(SystemExit):
    """A command stopped on a signal; exits with status 128 + signal number.

    A ``SystemExit`` (like Lightning's own ``SIGTERMException``) so that the process ends with that
    status without a traceback, while in-process callers can still catch it by name.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


class TrainingInterrupted(Interrupted):
    """The run stopped on a signal after saving a checkpoint."""


class PreemptionCallback(L.Callback):
    """Stops training at an optimizer-step boundary, and an evaluation at a batch's end, on
    SIGTERM/SIGINT. See the module docstring."""

    def __init__(self, resume_hint: str = "running the same command with --ckpt_path last") -> None:
        """``resume_hint`` ends the warning logged on interruption ("Resume it by ...")."""
        self.resume_hint = resume_hint
        self.received: int | None = None
        self._previous_handlers: dict[int, Handler] = {}
        self._steps_seen = 0
        self._stop_at_epoch_end: tuple[int, int] | None = None  # (signal, batches) seen on the last step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._steps_seen = trainer.global_step
        self._stop_at_epoch_end = None
        if self._listen() and trainer.is_global_zero:
            log.info(
                "SIGTERM or SIGINT now stops the run after the current optimizer step and saves %s",
                last_checkpoint_path(trainer),
            )

    def _listen(self) -> bool:
        """Put ``_note_signal`` in place of the current handlers; False where signals cannot reach it."""
        self.received = None
        if threading.current_thread() is not threading.main_thread():
            log.warning("the trainer runs outside the main thread: SIGTERM/SIGINT will not stop it cleanly")
            return False
        for signum in SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._note_signal)
        return True

    def _note_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only record the signal: the loop acts on it at the next optimizer step or batch end."""
        self.received = self.received or signum

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        """Save and stop if a signal came and this batch ended an optimizer step.

        Watching ``global_step`` instead of re-deriving Lightning's ``_should_accumulate`` covers
        every case it covers: each ``accumulate_grad_batches``-th batch and the last, partial
        cycle of an epoch.
        """
        stepped, self._steps_seen = trainer.global_step != self._steps_seen, trainer.global_step
        if not stepped or not trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            return
        signum = self.received or signal.SIGTERM  # a rank told by another rank
        if isinstance(trainer.checkpoint_callback, RunCheckpoint) and _at_epoch_end(trainer):
            self._stop_at_epoch_end = (signum, batch_idx + 1)  # after the epoch's validation
            return
        self._save_and_stop(trainer, signum, f"batch {batch_idx + 1}", save_last_checkpoint(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop here, after the epoch's validation, if a signal came on its last step.

        The checkpoint callbacks' own ``on_train_epoch_end``, where ``RunCheckpoint`` saves the
        validated epoch (``last.ckpt`` and a best checkpoint) when it validates once an epoch, comes
        after this hook: it is run here first. ``last.ckpt`` is saved here only if no callback
        saved it at this step (no validation this epoch); ``RunCheckpoint.on_load_checkpoint``
        resumes an epoch-end checkpoint at the next epoch.
        """
        if self._stop_at_epoch_end is None:
            return
        signum, batches = self._stop_at_epoch_end
        for callback in trainer.checkpoint_callbacks:
            callback.on_train_epoch_end(trainer, pl_module)
        saved = trainer.checkpoint_callback.holds_step(trainer.global_step)
        path = last_checkpoint_path(trainer) if saved else save_last_checkpoint(trainer)
        self._save_and_stop(trainer, signum, f"batch {batches}, after the epoch's validation", path)

    def _save_and_stop(self, trainer: L.Trainer, signum: int, batch: str, path: Path) -> None:
        """Say where the run stopped and how to resume it, and stop it with status 128 + ``signum``."""
        if trainer.is_global_zero:
            log.warning(
                "run interrupted by %s at %s, %s: saved %s. Resume it by %s",
                signal.Signals(signum).name,
                where_in_training(trainer),
                batch,
                path,
                self.resume_hint,
            )
        raise TrainingInterrupted(signum)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # inside fit, the training handlers hold
            self._listen()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._listen()

    on_predict_start = on_test_start

    def on_validation_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        """As a test's, for ``validate``; inside fit, the training stop holds."""
        if trainer.state.fn == TrainerFn.VALIDATING:
            self.on_test_batch_end(trainer, *args, **kwargs)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs,
        batch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._stop_evaluation(trainer, batch_idx)

    on_predict_batch_end = on_test_batch_end

    def _stop_evaluation(self, trainer: L.Trainer, batch_idx: int) -> None:
        """Stop after this batch if a signal came: the epoch-end hooks, which write the metrics and
        predictions, never run, so an earlier evaluation's files are kept and no partial ones are
        written; the exit status tells a wrapper that nothing finished."""
        signum = self.received or (signal.SIGTERM if trainer.received_sigterm else None)
        if signum is None:
            return
        if trainer.strategy.launcher is not None:  # the ranks this process started (a no-op elsewhere)
            trainer.strategy.launcher.kill(signum)
        if trainer.is_global_zero or self.received:  # a rank signalled alone says so: rank 0 is killed
            log.warning(
                "%s%s interrupted by %s after batch %d: no metrics or predictions written (an earlier "
                "run's are left as they were). Run the same command again to evaluate",
                "" if trainer.is_global_zero else f"rank {trainer.global_rank}: ",
                trainer.state.fn.value,
                signal.Signals(signum).name,
                batch_idx + 1,
            )
        raise Interrupted(signum)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._restore_handlers()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    on_predict_end = on_test_end

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}


def last_checkpoint_path(trainer: L.Trainer) -> Path:
    """The file ModelCheckpoint(save_last=True) writes: ``<run>/checkpoints/last.ckpt`` in the CLI."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    return Path(callback.format_checkpoint_name({}, callback.CHECKPOINT_NAME_LAST))


def save_last_checkpoint(trainer: L.Trainer) -> Path:
    """Save ``last.ckpt`` so that no reader or crash ever meets a half-written one.

    ``Trainer.save_checkpoint`` is not atomic: its fsspec transaction writes the system temporary
    folder and moves the file into place, a copy when that folder is on another file system. So
    rank 0 saves to a temporary file beside the target and renames it over. ModelCheckpoint is told
    that this file is its last checkpoint: it would otherwise see a file it did not write and save
    the next one as ``last-v1.ckpt``, which ``--ckpt_path last`` does not read.
    """
    path = last_checkpoint_path(trainer)
    if trainer.checkpoint_callback is not None:
        trainer.checkpoint_callback.last_model_path = str(path)  # before saving: part of its state
    if trainer.is_global_zero:
        atomic_write(path, lambda tmp: trainer.save_checkpoint(tmp, weights_only=False))
    else:
        trainer.save_checkpoint(path, weights_only=False)  # a collective call: only rank 0 writes
    return path


def _at_epoch_end(trainer: L.Trainer) -> bool:
    """Whether the batch just trained was its epoch's last (not one where ``max_steps`` stopped)."""
    return trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
