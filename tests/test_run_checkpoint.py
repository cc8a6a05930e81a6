import shutil

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from slu_lightning.run_checkpoint import RunCheckpoint


class WorseEveryEpoch(L.LightningModule):
    """A linear layer whose logged validation loss rises each epoch: only epoch 0 is ever the best."""

    def __init__(self, rows: int = 4, sign: float = 1.0):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.rows, self.sign = rows, sign

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.sign * float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(self.rows, 2)), batch_size=2)

    def val_dataloader(self):
        return self.train_dataloader()


def fit(
    tmp_path,
    callback: type[ModelCheckpoint],
    rows: int = 4,
    sign: float = 1.0,
    every=None,
    ckpt_path=None,
    **limits,
) -> L.Trainer:
    """Fit ``WorseEveryEpoch`` (``sign`` -1: better every epoch) on ``rows`` rows (batch 2) under
    ``limits`` (max_epochs / max_steps, validation intervals), checkpoints in ``tmp_path`` (also
    every ``every`` steps)."""
    checkpoint = callback(
        dirpath=tmp_path,
        monitor="val/loss",
        save_last=True,
        filename="best-{epoch}-{step}",
        every_n_train_steps=every,
    )
    trainer = L.Trainer(callbacks=[checkpoint], logger=False, enable_progress_bar=False, **limits)
    trainer.fit(WorseEveryEpoch(rows, sign), ckpt_path=ckpt_path)
    return trainer


def last_step(tmp_path) -> int:
    return torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"]


@pytest.mark.parametrize(("callback", "step"), [(ModelCheckpoint, 2), (RunCheckpoint, 6)])
def test_last_ckpt_holds_the_final_epoch_even_when_validation_got_worse(tmp_path, callback, step):
    """Lightning 2.6's ModelCheckpoint leaves last.ckpt at the best epoch (step 2 of 6); RunCheckpoint
    keeps it at the run's latest state, and still keeps the best checkpoint apart."""
    fit(tmp_path, callback, max_epochs=3)
    assert last_step(tmp_path) == step
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-epoch=0-step=2.ckpt", "last.ckpt"]


def test_an_epoch_cut_short_by_max_steps_leaves_last_ckpt_at_its_final_batch_mid_epoch(tmp_path):
    """A checkpoint saved at the end of a cut-short epoch would record it as completed, and a resumed
    run would skip the rest of it."""
    assert fit(tmp_path, RunCheckpoint, max_steps=5).global_step == 5
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    loops = last["loops"]["fit_loop"]
    assert (last["global_step"], last["epoch"]) == (5, 2)
    assert loops["epoch_progress"]["current"]["completed"] == 2  # epochs 0 and 1, not the third
    assert loops["epoch_loop.batch_progress"]["current"]["processed"] == 1


@pytest.mark.parametrize(
    ("rows", "limits", "step"),
    [
        (10, {"max_epochs": 1, "val_check_interval": 0.5}, 5),  # validated at batches 2 and 4 of 5
        (4, {"max_epochs": 3, "check_val_every_n_epoch": 2}, 6),  # the third epoch is not validated
    ],
)
def test_last_ckpt_holds_the_steps_after_the_last_validation(tmp_path, rows, limits, step):
    """The paper configs validate twice an epoch: with an odd batch count the epoch's last step
    comes after its last validation, and ``--ckpt_path last`` must still test the trained model."""
    assert fit(tmp_path, RunCheckpoint, rows, **limits).global_step == step
    assert last_step(tmp_path) == step


@pytest.mark.parametrize(
    ("sign", "every", "best"),
    [
        (1.0, 3, "best-epoch=0-step=5.ckpt"),
        (-1.0, 3, "best-epoch=2-step=15.ckpt"),
        (-1.0, 4, "best-epoch=2-step=15.ckpt"),  # the final step is no multiple of 4
        (-1.0, 1000, "best-epoch=2-step=15.ckpt"),  # no step-triggered save at all
    ],
)
def test_steps_between_validations_save_last_ckpt_but_are_never_ranked_best(tmp_path, sign, every, best):
    """Saves every few steps of 5-batch epochs validated at their ends (steps 5, 10, 15): the best
    checkpoint is a validated one, ranked by its own validation loss, not the one before it, and
    last.ckpt holds the final step whichever save came last."""
    fit(tmp_path, RunCheckpoint, rows=10, sign=sign, every=every, max_epochs=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [best, "last.ckpt"]
    assert last_step(tmp_path) == 15


def test_a_moved_run_keeps_one_best_checkpoint(tmp_path):
    """Resumed in a copy of its folder, a run replaces its best checkpoint there, as it would have
    in the original folder, so ``--ckpt_path best`` finds one."""
    fit(tmp_path / "run", RunCheckpoint, sign=-1.0, max_epochs=1)
    shutil.copytree(tmp_path / "run", tmp_path / "moved")
    fit(
        tmp_path / "moved",
        RunCheckpoint,
        sign=-1.0,
        max_epochs=3,
        ckpt_path=str(tmp_path / "moved" / "last.ckpt"),
    )
    assert sorted(p.name for p in (tmp_path / "moved").iterdir()) == ["best-epoch=2-step=6.ckpt", "last.ckpt"]


def test_a_fit_removes_the_temporary_files_of_saves_a_kill_cut_short_and_nothing_else(tmp_path, caplog):
    """A SIGKILL mid-save leaves ``.last.ckpt.<8 random>.tmp`` (model-sized) that nothing removed."""
    stale = tmp_path / ".last.ckpt.k2x_9q0a.tmp"
    stale.write_bytes(b"\0" * 2_000_000)
    kept = [tmp_path / name for name in (".last.ckpt.tmp", "notes.tmp", ".last.ckpt.ab.tmp", "mine.ckpt")]
    for path in kept:
        path.write_text("not ours")
    with caplog.at_level("WARNING", logger="slu_lightning.atomic"):
        fit(tmp_path, RunCheckpoint, max_epochs=1)
    assert not stale.exists() and all(path.read_text() == "not ours" for path in kept)
    assert f"removing {stale} (2.0 MB)" in caplog.text
