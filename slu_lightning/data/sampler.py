"""The training batch order: deterministic in (seed, epoch), split across ranks, resumable mid-epoch."""

from __future__ import annotations

import math
import random
import warnings

import lightning as L
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch.utils.data import Sampler

from slu_lightning.data.errors import DataError


class EpochBatchSampler(Sampler[list[int]]):
    """Yields this rank's batches of one epoch, starting at ``start_batch``.

    ``len()`` is always the full epoch's batch count, so Lightning's batch counter and the
    ``is_last_batch`` check stay right after a mid-epoch resume that starts at ``start_batch``.
    With ``lengths`` given, examples of similar length are batched together (length bucketing)
    and the batch order is shuffled, both seeded by (seed, epoch).
    """

    BUCKET_BATCHES = 50  # sort by length within windows of 50 batches: close lengths, still random

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        lengths: list[int] | None = None,
        start_batch: int = 0,
    ):
        self.n_items, self.batch_size, self.seed, self.epoch = n_items, batch_size, seed, epoch
        self.shuffle, self.rank, self.world_size = shuffle, rank, world_size
        self.lengths, self.start_batch = lengths, start_batch

    def batches(self) -> list[list[int]]:
        """All of this rank's batches for the epoch, in order."""
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(self.n_items))
        if self.shuffle:
            rng.shuffle(order)
        per_rank = math.ceil(self.n_items / self.world_size)
        order += order[: per_rank * self.world_size - len(order)]  # pad like DistributedSampler
        mine = order[self.rank :: self.world_size]
        if self.lengths is None:
            return [mine[i : i + self.batch_size] for i in range(0, len(mine), self.batch_size)]
        return self._bucketed(mine, rng)

    def _bucketed(self, indices: list[int], rng: random.Random) -> list[list[int]]:
        window = self.batch_size * self.BUCKET_BATCHES
        batches = []
        for start in range(0, len(indices), window):
            chunk = sorted(indices[start : start + window], key=lambda i: self.lengths[i])
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        rng.shuffle(batches)
        return batches

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.n_items / self.world_size) / self.batch_size)

    def __iter__(self):
        return iter(self.batches()[self.start_batch :])


def resume_batch(trainer: L.Trainer) -> int:
    """Batches of the current epoch already trained (from the restored loop progress): where this
    epoch's ``EpochBatchSampler`` starts.

    An ``EpochBatchSampler`` serves one epoch, so the Trainer must build a new train loader every
    epoch; reusing one would replay that epoch, or after a resume its tail, as every later epoch.

    A restored epoch that had reached its last batch starts at 0: Lightning counts it done without
    drawing from its loader. Under ``max_steps`` the loop stays ``restarting`` for the whole resumed
    run and the restored batch count lingers until the next epoch's loop resets it; reading it then
    started the next epochs at their end, so a run stopped by ``max_steps`` at an epoch's end and
    resumed with a larger one trained nothing more.
    """
    if trainer.reload_dataloaders_every_n_epochs != 1:
        raise DataError(
            "the train loader serves one epoch: set trainer.reload_dataloaders_every_n_epochs to 1 "
            f"(it is {trainer.reload_dataloaders_every_n_epochs})"
        )
    fit_loop = trainer.fit_loop
    progress = fit_loop.epoch_loop.batch_progress
    return progress.current.processed if fit_loop.restarting and not progress.is_last_batch else 0


# Lightning warns on every mid-epoch resume unless the loader itself is stateful; here the sampler
# starts at ``resume_batch`` instead, so the warning would be false (exact resume is tested).
warnings.filterwarnings("ignore", "You're resuming from a checkpoint that ended before", PossibleUserWarning)


class SequentialBatchSampler(Sampler[list[int]]):
    """Consecutive batches in order: evaluation and prediction, where order must not change."""

    def __init__(self, n_items: int, batch_size: int):
        self.n_items, self.batch_size = n_items, batch_size

    def __len__(self) -> int:
        return math.ceil(self.n_items / self.batch_size)

    def __iter__(self):
        for start in range(0, self.n_items, self.batch_size):
            yield list(range(start, min(start + self.batch_size, self.n_items)))
