import pytest
import torch

from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus
from slu_lightning.data.datamodules import SLUDataset
from slu_lightning.data.sampler import SequentialBatchSampler
from slu_lightning.pretrain.augment import SpecAugment
from slu_lightning.pretrain.data import PretrainDataModule


def batch(lengths: list[int], mels: int = 128, width: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features ``width`` frames wide (default: the longest clip) and the real frames' mask."""
    width = width or max(lengths)
    features = torch.randn(len(lengths), mels, width)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return features, mask


def test_masked_cells_take_the_clip_mean_and_padding_is_left_alone():
    features, mask = batch([400, 350, 120, 60], width=403)  # features a little wider than any clip
    out = SpecAugment()(features, mask, torch.Generator().manual_seed(0))
    changed = out != features
    for row, n in enumerate([400, 350, 120, 60]):
        assert not changed[row, :, n:].any()
        mean = features[row, :, :n].mean()
        assert torch.allclose(out[row][changed[row]], mean.expand(int(changed[row].sum())))
        assert 0.02 < changed[row].float().sum() / (n * 128) < 0.5  # some, never most


def test_each_second_of_a_clip_gets_a_time_mask_and_each_clip_its_frequency_bands():
    features, mask = batch([1000, 100])
    times, bands = SpecAugment(freq_masks=0), SpecAugment(max_time_width=0)
    masked_frames, masked_bins = [], []
    for seed in range(100):
        out = times(features, mask, torch.Generator().manual_seed(seed))
        masked_frames.append((out != features).all(dim=1).sum(-1))  # whole frames masked, per clip
        out = bands(features, mask, torch.Generator().manual_seed(seed))
        masked_bins.append((out[0] != features[0]).all(dim=-1).sum())  # whole mel bins masked
    long, short = torch.stack(masked_frames).float().mean(0)
    assert 6 < long / short < 14  # ten seconds get ten runs, one second one
    assert 4 < short < 6  # a run is 0-10 frames wide
    assert 12 < torch.stack(masked_bins).float().mean() < 17  # two bands of 0-16 bins, rarely overlapping


def test_the_same_seed_masks_alike_and_another_seed_differently():
    features, mask = batch([300, 200])
    first, again, other = (
        SpecAugment()(features, mask, torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)
    )
    assert torch.equal(first, again) and not torch.equal(first, other)


def padded(items: list) -> dict[str, torch.Tensor]:
    """The clips' features padded to the longest (a collator that loader workers can unpickle)."""
    features = torch.nn.utils.rnn.pad_sequence([item.features.T for item in items], batch_first=True)
    return {
        "input_features": features.transpose(1, 2),  # (clips, mels, frames)
        "feature_attention_mask": torch.ones(features.shape[:2], dtype=torch.long),
    }


@pytest.fixture(scope="module")
def corpus():
    return make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0)


def test_only_training_batches_are_masked(corpus):
    def collate(items):
        features = torch.stack([item.features for item in items])  # (clips, mels, frames)
        return {
            "input_features": features,
            "feature_attention_mask": torch.ones(features.shape[::2], dtype=torch.long),
        }

    data, plain = (
        PretrainDataModule(collate, corpus, batch_size=1, val_clips=2, num_workers=0, augment=augment)
        for augment in (SpecAugment(), None)
    )
    for module in (data, plain):
        module.setup("fit")
    item = SLUDataset([(data.train[0], True)], data.extractor)[0]
    masked, unmasked = (module.train_collator(0)([item])["input_features"] for module in (data, plain))
    assert not torch.equal(masked, unmasked)
    val_masked, val_plain = (
        next(iter(module.val_dataloader()))["input_features"] for module in (data, plain)
    )
    assert torch.equal(val_masked, val_plain)


def test_masks_depend_on_the_seed_epoch_and_clips_not_on_workers_or_the_global_stream(corpus):
    """What a resume (fresh worker streams) or another ``--workers`` changes leaves the masks alone."""

    def batches(seed: int, epoch: int, workers: int) -> list[torch.Tensor]:
        data = PretrainDataModule(
            padded, corpus, seed=seed, val_clips=2, num_workers=workers, augment=SpecAugment()
        )
        data.setup("fit")
        torch.manual_seed(workers)  # another global stream in the trainer and in the workers it seeds
        loader = data._loader(data.train[:6], SequentialBatchSampler(6, 2), data.train_collator(epoch))
        return [batch["input_features"] for batch in loader]

    first = batches(0, 0, workers=0)
    assert all(map(torch.equal, first, batches(0, 0, workers=2)))
    assert all(map(torch.equal, first, batches(0, 0, workers=0)))
    for other in (batches(1, 0, workers=0), batches(0, 1, workers=0)):
        assert not any(map(torch.equal, first, other))
