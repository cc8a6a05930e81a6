"""The pretraining data: the ASR corpus of ``data/asr_corpus.py`` as length-bucketed clip batches.

Train batches come in a seeded order per epoch and restart at the right batch after a mid-epoch
resume (as the SLU data modules do), SpecAugment-masked if asked; validation uses a fixed, seeded
sample of the held-out voices, unmasked.

Loader workers start from a fork server, not from the trainer. A worker forked from a trainer that
has been training shares its heap, gigabytes freed by earlier steps, and writes into it as it
decodes: each page it writes becomes its own copy. On 2 CPU cores a validation worker forked at
step 40 of ``pretrain-tiny`` grew from 0.6 to 1.1 GB of its own memory; near the end of a
1,200-step run three forked workers, about 5.6 GB resident each, let the kernel's OOM killer stop
the run beside it. ``benchmarks/pretrain_loader_memory.py`` compares both start methods (after 40
steps, 84 batches read: 0.52 GB of the worker's own against 0.12 GB); the fork server's first
worker takes about 5 s longer to start.
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Callable
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from slu_lightning.data.datamodules import SLUDataset
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.data.sampler import EpochBatchSampler, SequentialBatchSampler, resume_batch
from slu_lightning.data.workers import stop_safe_worker_init
from slu_lightning.pretrain.augment import AugmentedCollator, SpecAugment


class PretrainDataModule(L.LightningDataModule):
    """Clips of a built ASR pretraining corpus (``make_asr_corpus``)."""

    def __init__(
        self,
        collator: Callable,
        corpus: str | Path,
        *,
        seed: int = 0,
        batch_size: int = 32,
        val_clips: int = 120,
        n_mels: int = 128,
        num_workers: int = 1,
        augment: SpecAugment | None = None,
    ):
        super().__init__()
        self.collator, self.corpus, self.seed = collator, Path(corpus), seed
        self.augment = augment
        self.batch_size, self.val_clips, self.num_workers = batch_size, val_clips, num_workers
        self.extractor = LogMelExtractor(n_mels=n_mels)
        self.train: list[SLUExample] = []
        self.val: list[SLUExample] = []

    def setup(self, stage: str) -> None:
        self.train = read_manifest(self.corpus / "train.jsonl")
        self.val = heldout_sample(self.corpus, self.val_clips, self.seed)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochBatchSampler(
            len(self.train),
            self.batch_size,
            seed=self.seed,
            epoch=self.trainer.current_epoch,
            lengths=[len(example.text) for example in self.train],  # text length tracks duration
            start_batch=resume_batch(self.trainer),
        )
        return self._loader(self.train, sampler, self.train_collator(self.trainer.current_epoch))

    def train_collator(self, epoch: int) -> Callable:
        """The collator of ``epoch``'s train batches: SpecAugment-masked (if asked) with masks that
        the run seed, the epoch and the batch's clips decide, so a resume or another worker count
        masks alike."""
        if self.augment is None:
            return self.collator
        return AugmentedCollator(self.collator, self.augment, f"{self.seed}:{epoch}")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, SequentialBatchSampler(len(self.val), self.batch_size), self.collator)

    def _loader(self, examples: list[SLUExample], batch_sampler, collator: Callable) -> DataLoader:
        return DataLoader(
            SLUDataset([(example, True) for example in examples], self.extractor),
            batch_sampler=batch_sampler,
            collate_fn=collator,
            num_workers=self.num_workers,
            worker_init_fn=stop_safe_worker_init(self.num_workers),
            multiprocessing_context=clean_worker_context() if self.num_workers else None,
        )


def clean_worker_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a small server process that imports the data code once and never trains:
    they start in milliseconds after the first and hold only what they load."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([SLUDataset.__module__])
    return context


def heldout_sample(corpus: Path, n: int, seed: int) -> list[SLUExample]:
    """``n`` held-out clips (held-out voices), the same for every run with this seed."""
    return sample_heldout(read_manifest(corpus / "heldout.jsonl"), n, seed)


def sample_heldout(heldout: list[SLUExample], n: int, seed: int) -> list[SLUExample]:
    """The ``n`` of a corpus's ``heldout`` split (in manifest order) that validation and model cards
    measure: a corpus's plan gives the same sample as its manifest."""
    return random.Random(f"pretrain-val:{seed}").sample(heldout, min(n, len(heldout)))
