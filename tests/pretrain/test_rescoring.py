"""The rescored read-out: an exact CTC prefix beam search, and decoder rescoring on the bundled stand-in."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from slu_lightning.evaluation.error_rates import corpus_wer
from slu_lightning.pretrain.asr_eval import slu_phrased_sample, transcribe
from slu_lightning.pretrain.module import TinyPretrainModule
from slu_lightning.pretrain.rescoring import ctc_prefix_beam_search, decoder_log_likelihoods

BLANK = 0


def ctc_log_probability(log_probs: torch.Tensor, labels: list[int]) -> float:
    """log P(labels) summed over all CTC paths, by torch's CTC loss."""
    loss = F.ctc_loss(
        log_probs[:, None],
        torch.tensor([labels or [1]])[:, : len(labels)],
        torch.tensor([len(log_probs)]),
        torch.tensor([len(labels)]),
        blank=BLANK,
        reduction="sum",
        zero_infinity=False,
    )
    return -float(loss)


def all_labelings(frames: int, vocabulary: int) -> set[tuple[int, ...]]:
    """Every labeling some CTC path of ``frames`` frames spells."""
    labelings = set()
    for path in itertools.product(range(vocabulary), repeat=frames):
        merged = [token for i, token in enumerate(path) if i == 0 or token != path[i - 1]]
        labelings.add(tuple(token for token in merged if token != BLANK))
    return labelings


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_unpruned_beam_gives_every_labeling_its_exact_ctc_probability(seed):
    log_probs = torch.randn(5, 3, generator=torch.Generator().manual_seed(seed)).log_softmax(-1)
    found = ctc_prefix_beam_search(log_probs, BLANK, beam=10_000, prune=-float("inf"))
    labelings = all_labelings(5, 3)
    assert {tuple(ids) for ids, _ in found} == labelings  # repeats like (1, 1) included
    for ids, score in found:
        assert score == pytest.approx(ctc_log_probability(log_probs, ids), abs=1e-4)
    assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)
    assert sum(torch.tensor(score).exp() for _, score in found) == pytest.approx(1.0, abs=1e-4)


def test_a_narrow_beam_still_finds_a_clear_best_labeling():
    log_probs = torch.full((6, 4), -9.0)
    for frame, token in enumerate([2, 2, BLANK, 2, 3, BLANK]):  # spells 2 2 3
        log_probs[frame, token] = 0.0
    log_probs = log_probs.log_softmax(-1)
    (best, _), *_ = ctc_prefix_beam_search(log_probs, BLANK, beam=2)
    assert best == [2, 2, 3]


@pytest.fixture(scope="module")
def stand_in():
    torch.manual_seed(0)
    module = TinyPretrainModule(backbone="tiny-heard").eval()
    return module, slu_phrased_sample(24, seed=1, demo_size="tiny")


def test_the_decoder_prefers_the_true_transcript_to_a_scrambled_one(stand_in):
    module, examples = stand_in
    heard = transcribe(module, examples[:1], "ctc")  # builds the features the same way
    assert heard["ctc"]
    batch = module.collator([_item(module, examples[0])])
    clip = module.audio_clips(batch)[0]
    text = examples[0].text
    scrambled = " ".join(reversed(text.split()))
    true, other = decoder_log_likelihoods(
        module, clip, int(batch["feature_attention_mask"].sum()), [text, scrambled]
    )
    assert true > other


def _item(module, example):
    from slu_lightning.data.datamodules import SLUDataset
    from slu_lightning.pretrain.asr_eval import clip_features

    return SLUDataset([(example, True)], clip_features(module))[0]


def test_rescoring_the_beam_hears_better_than_greedy_ctc(stand_in):
    module, examples = stand_in
    heard = transcribe(module, examples, ("ctc", "rescored"))
    references = [example.text for example in examples]
    greedy, rescored = (corpus_wer(references, heard[readout]) for readout in ("ctc", "rescored"))
    assert rescored < greedy - 0.02, (greedy, rescored)
