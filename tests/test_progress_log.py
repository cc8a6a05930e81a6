import io
import logging
import re

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from slu_lightning.progress_log import ProgressLog


class Regression(L.LightningModule):
    """A linear layer on 6 rows in batches of 2: 3 steps an epoch, logged as the SLU module logs."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(
            TensorDataset(torch.randn(6, 2, generator=torch.Generator().manual_seed(0))), batch_size=2
        )

    def val_dataloader(self):
        return self.train_dataloader()

    def test_step(self, batch, batch_idx):
        self.log("test/loss", self.layer(batch[0]).pow(2).mean())

    def test_dataloader(self):
        return self.train_dataloader()


def progress_lines(caplog, callback: ProgressLog) -> list[str]:
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    with caplog.at_level(logging.INFO, logger="slu_lightning.progress_log"):
        trainer.fit(Regression())
    return [r.getMessage() for r in caplog.records if r.name == "slu_lightning.progress_log"]


def test_a_run_without_a_terminal_logs_where_it_is_how_fast_and_its_loss(caplog):
    lines = progress_lines(caplog, ProgressLog(every_seconds=0))  # pytest's stderr is no terminal
    pattern = re.compile(
        r"epoch (\d)/2, step (\d), batch (\d)/3, [\d.]+ batches/s, (?:\d+ min )?\d+ s left in the epoch, "
        r"train/loss (\d\.\d{4})"
    )
    progress = [pattern.fullmatch(line) for line in lines if "validated" not in line]
    assert all(progress) and len(progress) == 6
    assert [tuple(int(m[i]) for i in (1, 2, 3)) for m in progress] == [
        (1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 4, 1), (2, 5, 2), (2, 6, 3)
    ]  # fmt: skip
    validated = [line for line in lines if "validated" in line]
    assert [line.split(": val/loss ")[0] for line in validated] == [
        "epoch 1/2, step 3 validated",
        "epoch 2/2, step 6 validated",
    ]
    assert all(float(line.split("val/loss ")[1]) > 0 for line in validated)


def test_it_waits_between_lines_and_stays_quiet_beside_a_terminal_progress_bar(caplog, monkeypatch):
    assert [line for line in progress_lines(caplog, ProgressLog(every_seconds=3600)) if "batch" in line] == []
    caplog.clear()
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr("sys.stderr", terminal)
    assert progress_lines(caplog, ProgressLog(every_seconds=0)) == []
    assert progress_lines(caplog, ProgressLog(every_seconds=0, only_without_terminal=False)) != []


def test_testing_logs_its_batches_too(caplog):
    trainer = L.Trainer(callbacks=[ProgressLog(every_seconds=0)], logger=False, enable_progress_bar=False)
    with caplog.at_level(logging.INFO, logger="slu_lightning.progress_log"):
        trainer.test(Regression(), verbose=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "slu_lightning.progress_log"]
    assert [line.split(", ")[:2] for line in lines] == [["testing", f"batch {i}/3"] for i in (1, 2, 3)]
    assert lines[-1].endswith(", 0 s left")


def test_the_rate_counts_the_batches_since_the_clock_started(monkeypatch):
    """A run resumed at batch 12 of 20 (which skips on_train_epoch_start) reports 2 batches in 4 s,
    not 13 batches since the clock's origin."""
    times = iter([100.0, 102.0, 104.0])
    monkeypatch.setattr("slu_lightning.progress_log.time.monotonic", lambda: next(times))
    log_lines = ProgressLog(every_seconds=0)
    log_lines._active = True
    log_lines.on_train_start(None, None)
    assert log_lines._progress("epoch 2/3", 12, 20, "in the epoch").endswith(
        "0.50 batches/s, 16 s left in the epoch"
    )
    assert log_lines._progress("epoch 2/3", 13, 20, "in the epoch").endswith(
        "0.50 batches/s, 14 s left in the epoch"
    )
