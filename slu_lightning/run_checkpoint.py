"""The CLI's checkpoint callback: the best checkpoint by the monitored metric, and ``last.ckpt``
always the run's latest state.

Since Lightning 2.6, ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only at a step where it
also saves a top-k checkpoint. With ``monitor: val/loss`` and ``save_top_k: 1`` (the CLI's defaults),
an epoch whose validation loss does not improve leaves ``last.ckpt`` at the best epoch: the final
epochs of a run vanish from it. ``--ckpt_path last`` then tests an earlier model, and a resumed run
repeats epochs it had trained (a curriculum its speech phase). ``RunCheckpoint`` saves ``last.ckpt``
at every point where the parent may save, as Lightning did before 2.6 and as resuming needs, and
at the final batch of a run that ``max_steps`` stops mid-epoch. Steps trained after a run's last
validation (twice-an-epoch validation with an odd batch count, an unvalidated final epoch) reach
``last.ckpt`` when training ends; Lightning's own end-of-training save happens only in a run that
saved nothing before. Saves triggered by ``every_n_train_steps`` write ``last.ckpt`` only: the best
checkpoint is always a validated state ranked by its own validation. A run folder moved to another
root keeps its one best checkpoint (Lightning would forget it and save the next beside it).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from slu_lightning.atomic import remove_stale_temporaries


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` follows every validated epoch, improved or not, the
    final step of a run that ``max_steps`` stops mid-epoch, and the end of training.

    An epoch that ``max_steps`` cuts short also ends in ``on_train_epoch_end``, and a checkpoint
    saved there records the epoch as completed: raising ``max_steps`` and resuming would skip the
    rest of it. Such a run's ``last.ckpt`` is saved at its final batch instead, where the loop
    state says how far into the epoch it got, as a preempted run's is.
    """

    _validated_at: int | None = None
    _last_saved_at: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Also remove the temporary files of saves that a SIGKILL cut short in an earlier call."""
        super().setup(trainer, pl_module, stage)
        if (
            stage == TrainerFn.FITTING
            and trainer.is_global_zero
            and self.dirpath
            and Path(self.dirpath).is_dir()
        ):
            remove_stale_temporaries(Path(self.dirpath))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        stopping = 0 <= trainer.max_steps <= trainer.global_step
        if stopping and self.save_last and not _at_epoch_end(trainer):  # also stops on_train_end's save
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            super().on_validation_end(trainer, pl_module)
            return
        self._validated_at = trainer.global_step
        super().on_validation_end(trainer, pl_module)
        if self._every_n_epochs < 1 and _fitting(trainer):
            # step- or time-triggered saves rank no checkpoint (below): rank the validated one here
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        """Rank a checkpoint only at the step its monitored value was measured: a save triggered by
        ``every_n_train_steps`` would rank unvalidated weights by an earlier validation's loss."""
        if self.monitor is None or self._validated_at == trainer.global_step:
            super()._save_topk_checkpoint(trainer, monitor_candidates)

    def load_state_dict(self, state_dict: dict) -> None:
        """Read the saved paths as files of this run's checkpoint folder when the run was moved
        (copied to another root or machine): Lightning would forget the best checkpoint's file,
        and the next best would be saved beside it instead of replacing it."""
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and Path(saved) != Path(self.dirpath):
            state_dict = _moved(state_dict, Path(saved), Path(self.dirpath))
        super().load_state_dict(state_dict)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not _at_epoch_end(trainer):  # cut short: saved at its final batch
            return
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer) and self._validated_at == trainer.global_step:
            self._save_latest(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_latest(trainer)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        close_saved_epoch(checkpoint, iteration_based=trainer.max_steps != -1)

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_saved_at = trainer.global_step

    def holds_step(self, step: int) -> bool:
        """Whether ``last.ckpt`` was saved at training step ``step``: a stop there need not save
        it again (a full fine-tuning's checkpoint takes much of a preemption's grace period)."""
        return bool(self.save_last) and self._last_saved_at == step

    def _save_latest(self, trainer: L.Trainer) -> None:
        """Save ``last.ckpt`` unless it holds this step already or no run is fitting. (Lightning's
        own test, any checkpoint saved at this step, misses a best checkpoint saved without it.)"""
        if self.save_last and _fitting(trainer) and self._last_saved_at != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def close_saved_epoch(checkpoint: dict, iteration_based: bool) -> None:
    """Record an epoch saved in ``on_train_epoch_end`` (processed, not yet completed) as completed,
    with no batch of the next one drawn, so that the resumed run starts the next epoch.

    Lightning resumes such a checkpoint at the next epoch only without ``max_steps``. With it (the
    README's way to stop a run early and raise later), the loop re-enters the saved epoch, counts
    it processed a second time and ends one epoch early: a curriculum stopped at the end of its text
    phase never trained its speech phase (Lightning-AI/pytorch-lightning#19617). Under ``max_steps``
    the loop then restarts and counts one logged step more than were taken, for a checkpoint saved
    before a batch's end; the count is lowered to meet it, so the curves go on at the next step.
    """
    loop = checkpoint.get("loops", {}).get("fit_loop")
    if not loop or not loop["epoch_loop.batch_progress"].get("is_last_batch"):
        return
    epochs = loop["epoch_progress"]
    if epochs["total"]["processed"] != epochs["total"]["completed"] + 1:
        return
    for tracker in ("total", "current"):
        epochs[tracker]["completed"] = epochs[tracker]["processed"]
    batches = loop["epoch_loop.batch_progress"]
    batches["current"] = dict.fromkeys(batches["current"], 0)
    batches["is_last_batch"] = False
    if iteration_based:
        loop["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1


def _fitting(trainer: L.Trainer) -> bool:
    """Whether the trainer fits for real (not a sanity check or a fast dev run), so saves count."""
    return trainer.state.fn == TrainerFn.FITTING and not (trainer.sanity_checking or trainer.fast_dev_run)


def _moved(state_dict: dict, saved: Path, dirpath: Path) -> dict:
    """``state_dict`` with every path under ``saved`` moved under ``dirpath``."""

    def moved(path: str) -> str:
        return (
            str(dirpath / Path(path).relative_to(saved))
            if path and Path(path).is_relative_to(saved)
            else path
        )

    paths = ("best_model_path", "kth_best_model_path", "last_model_path")
    return {
        **state_dict,
        "dirpath": str(dirpath),
        **{key: moved(state_dict[key]) for key in paths if key in state_dict},
        "best_k_models": {moved(path): score for path, score in state_dict.get("best_k_models", {}).items()},
    }


def _at_epoch_end(trainer: L.Trainer) -> bool:
    """Whether the batch just trained was its epoch's last (not one where ``max_steps`` stopped)."""
    return trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
