import lightning as L
import pytest

from slu_lightning.data.errors import DataError
from slu_lightning.data.sampler import EpochBatchSampler, resume_batch


def test_order_is_a_function_of_seed_and_epoch():
    def batches(seed, epoch):
        return EpochBatchSampler(50, 4, seed=seed, epoch=epoch).batches()

    assert batches(0, 1) == batches(0, 1)
    assert batches(0, 1) != batches(0, 2) and batches(0, 1) != batches(1, 1)
    assert sorted(i for b in batches(0, 1) for i in b) == list(range(50))


def test_ranks_split_the_epoch_without_losing_examples():
    ranks = [EpochBatchSampler(50, 4, seed=0, epoch=0, rank=r, world_size=2) for r in range(2)]
    seen = [i for sampler in ranks for batch in sampler.batches() for i in batch]
    assert len(seen) == 50 and set(seen) == set(range(50))
    assert all(len(sampler) == 7 for sampler in ranks)  # 25 per rank in batches of 4


def test_resuming_at_a_batch_yields_exactly_the_remaining_batches():
    full = EpochBatchSampler(30, 4, seed=3, epoch=5)
    resumed = EpochBatchSampler(30, 4, seed=3, epoch=5, start_batch=3)
    assert list(resumed) == full.batches()[3:]
    assert len(resumed) == len(full) == 8  # the epoch's length, so Lightning's counters stay right


def test_length_bucketing_groups_similar_lengths_and_is_seeded():
    lengths = [i % 10 for i in range(400)]
    sampler = EpochBatchSampler(400, 8, seed=0, epoch=0, lengths=lengths)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(400))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 2
    assert batches == EpochBatchSampler(400, 8, seed=0, epoch=0, lengths=lengths).batches()


def test_a_trainer_that_would_reuse_the_train_loader_is_refused():
    assert resume_batch(L.Trainer(reload_dataloaders_every_n_epochs=1, logger=False)) == 0
    with pytest.raises(DataError, match="reload_dataloaders_every_n_epochs to 1"):
        resume_batch(L.Trainer(logger=False))  # Lightning's default, 0: one loader for every epoch
