import json
import os
import signal
import time
from collections import defaultdict

import lightning as L
import pytest
import torch

from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus
from slu_lightning.preemption import TrainingInterrupted
from slu_lightning.pretrain.data import PretrainDataModule
from slu_lightning.pretrain.recipe import LastCheckpoint, WallClock, build_trainer


def clip_ids(items: list) -> list[str]:
    """A collator the loader's workers can import: the batch's clip ids."""
    return [item.example.id for item in items]


def clip_ids_and_loader_parent(items: list) -> tuple[list[str], int]:
    """The batch's clip ids and the pid of the process that started the worker collating it."""
    return clip_ids(items), os.getppid()


class BatchRecorder(L.LightningModule):
    """Trains one dummy weight and records the clip ids of every training batch, by epoch."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[int, list[list[str]]] = defaultdict(list)
        self.interrupt_at: int | None = None

    def training_step(self, batch: list[str], batch_idx: int) -> torch.Tensor:
        self.seen[self.current_epoch].append(batch)
        if self.global_step + 1 == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during this step
        return (self.weight - 1) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(
    run_dir,
    steps: int,
    stop_minutes: float | None = None,
    ckpt: str | None = None,
    interrupt_at: int | None = None,
    every_minutes: float = 0.0,
    clock: WallClock | None = None,
) -> BatchRecorder:
    """The recipe's Trainer on the tiny corpus, saving last.ckpt every ``every_minutes`` (0: each step)."""
    corpus = make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0)
    data = PretrainDataModule(clip_ids, corpus, batch_size=8)
    recorder = BatchRecorder()
    recorder.interrupt_at = interrupt_at
    trainer = build_trainer(
        run_dir, steps, val_every=1000, saver=LastCheckpoint(every_minutes, stop_minutes, clock)
    )
    trainer.fit(recorder, datamodule=data, ckpt_path=ckpt)
    return recorder


def test_after_a_mid_epoch_resume_each_new_epoch_sees_every_clip_once_in_a_new_order(tmp_path):
    """The session-4 GPU run resumed at batch 1,109 of 1,125 and then trained on those last 16
    batches as 305 'epochs', because the train loader (made for the resumed epoch) was reused; and
    its periodic checkpoints went to last-v1.ckpt, since the folder's path had changed."""
    first = fit(tmp_path / "run", 40, stop_minutes=1e-7)  # stops after one step
    run = (tmp_path / "run").rename(tmp_path / "moved")  # resumed in another folder, or machine
    resumed = fit(run, 40, ckpt=str(run / "checkpoints" / "last.ckpt"))
    assert len(first.seen[0]) == 1 and sorted(resumed.seen) == [0, 1, 2]
    epoch0 = first.seen[0] + resumed.seen[0]
    epoch1 = resumed.seen[1]
    clips = sorted(clip for batch in epoch0 for clip in batch)
    assert len(clips) == 120 == len(set(clips))  # the tiny corpus: 20 clips x 6 locales
    assert sorted(clip for batch in epoch1 for clip in batch) == clips
    assert len(epoch1) == 15 and epoch1 != epoch0  # a whole epoch, in its own order
    assert len(resumed.seen[2]) == 40 - 30
    # the periodic checkpoints of the moved run went on saving to last.ckpt, not last-v1.ckpt
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 40
    assert not list((run / "checkpoints").glob("last-v*.ckpt"))


def test_ctrl_c_saves_the_step_it_stopped_at_inside_its_epoch(tmp_path):
    with pytest.raises(TrainingInterrupted):
        fit(tmp_path, 40, interrupt_at=3, every_minutes=60)  # no periodic save before it
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 3
    assert saved["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 0  # epoch 0 goes on


def test_each_checkpoint_records_the_training_time_so_far(tmp_path):
    """A run killed outright (the OOM killer) never reaches its final record; the card must still
    count the time of the steps its checkpoint kept."""
    before = time.perf_counter()
    fit(tmp_path, 5, clock=WallClock(tmp_path))  # nothing records after fit: as if killed there
    elapsed = time.perf_counter() - before
    wall = json.loads((tmp_path / "wall_time.json").read_text())
    assert 0 < wall["seconds"] <= elapsed
    assert sum(wall["by_hardware"].values()) == wall["seconds"]


def test_loader_workers_start_from_a_fork_server_not_from_the_trainer():
    """A worker forked from a trainer that has trained copies the trainer's heap page by page as it
    decodes (benchmarks/pretrain_loader_memory.py); one started by the fork server does not share
    it. The batches are the same either way."""
    corpus = make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0)
    batches = {}
    for workers in (0, 1):
        data = PretrainDataModule(clip_ids_and_loader_parent, corpus, batch_size=8, num_workers=workers)
        data.setup("validate")
        batches[workers] = list(data.val_dataloader())
    assert [ids for ids, _ in batches[1]] == [ids for ids, _ in batches[0]]
    assert len(batches[1]) == 5  # the tiny corpus's 36 held-out clips
    parents = {parent for _, parent in batches[1]}
    assert len(parents) == 1 and os.getpid() not in parents
