"""The pretraining data: the ASR corpus of ``data/asr_corpus.py`` as length-bucketed clip batches.

Train batches come in a seeded order per epoch and restart at the right batch after a mid-epoch
resume (as the SLU data modules do), SpecAugment-masked if asked; validation uses a fixed, seeded
sample of the held-out voices, unmasked.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from slu_lightning.data.datamodules import SLUDataset, ignore_stop_signals
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.data.sampler import EpochBatchSampler, SequentialBatchSampler, resume_batch
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
        self.train_collator = AugmentedCollator(collator, augment) if augment else collator
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
        return self._loader(self.train, sampler, self.train_collator)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, SequentialBatchSampler(len(self.val), self.batch_size), self.collator)

    def _loader(self, examples: list[SLUExample], batch_sampler, collator: Callable) -> DataLoader:
        return DataLoader(
            SLUDataset([(example, True) for example in examples], self.extractor),
            batch_sampler=batch_sampler,
            collate_fn=collator,
            num_workers=self.num_workers,
            worker_init_fn=ignore_stop_signals,
        )


def heldout_sample(corpus: Path, n: int, seed: int) -> list[SLUExample]:
    """``n`` held-out clips (held-out voices), the same for every run with this seed."""
    heldout = read_manifest(corpus / "heldout.jsonl")
    return random.Random(f"pretrain-val:{seed}").sample(heldout, min(n, len(heldout)))
