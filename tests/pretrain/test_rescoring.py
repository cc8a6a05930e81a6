"""The rescored read-out: an exact CTC prefix beam search, and decoder rescoring on the bundled stand-in."""

import itertools
import math

import numpy as np
import pytest
import torch

from slu_lightning.data.datamodules import SLUDataset
from slu_lightning.data.demo_corpus import demo_texts
from slu_lightning.evaluation.error_rates import corpus_wer
from slu_lightning.pretrain.asr_eval import clip_features, slu_phrased_sample, transcribe
from slu_lightning.pretrain.domain_lm import domain_fusion
from slu_lightning.pretrain.module import TinyPretrainModule
from slu_lightning.pretrain.rescoring import (
    ctc_log_likelihoods,
    ctc_prefix_beam_search,
    decoder_log_likelihoods,
)

BLANK = 0


def spelled(path: tuple[int, ...]) -> tuple[int, ...]:
    """The labeling a CTC path spells: repeats merged, then blanks dropped."""
    merged = [token for i, token in enumerate(path) if i == 0 or token != path[i - 1]]
    return tuple(token for token in merged if token != BLANK)


def path_sums(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """log P of every labeling, summed over every path (vocabulary ** frames of them)."""
    frames, vocabulary = log_probs.shape
    sums: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocabulary), repeat=frames):
        score = sum(float(log_probs[t, token]) for t, token in enumerate(path))
        sums[spelled(path)] = float(np.logaddexp(sums.get(spelled(path), -math.inf), score))
    return sums


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_unpruned_beam_gives_every_labeling_its_exact_ctc_probability(seed):
    log_probs = torch.randn(5, 3, generator=torch.Generator().manual_seed(seed)).log_softmax(-1)
    found = ctc_prefix_beam_search(log_probs, BLANK, beam=10_000, prune=-float("inf"))
    exact = path_sums(log_probs)
    assert {tuple(ids) for ids, _ in found} == set(exact)  # repeats like (1, 1) included
    for ids, score in found:
        assert score == pytest.approx(exact[tuple(ids)], abs=1e-4)
    batched = ctc_log_likelihoods(log_probs, [ids for ids, _ in found], BLANK)  # () and repeats among them
    assert batched == pytest.approx([score for _, score in found], abs=1e-4)
    assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)
    assert ctc_log_likelihoods(log_probs, [[1, 1, 1, 1]], BLANK) == [
        -math.inf
    ]  # needs 7 frames: 1 _ 1 _ 1 _ 1


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
    dataset = SLUDataset([(example, True) for example in examples[:4]], clip_features(module))
    for item, example in zip(dataset, examples[:4], strict=True):
        batch = module.collator([item])
        clip = module.audio_clips(batch)[0]
        scrambled = " ".join(reversed(example.text.split()))
        frames = int(batch["feature_attention_mask"].sum())
        true, other = decoder_log_likelihoods(module, clip, frames, [example.text, scrambled])
        assert true > other, example.text


def test_rescoring_hears_better_than_either_greedy_read_out(stand_in):
    module, examples = stand_in
    heard = transcribe(module, examples, ("ctc", "decoder", "rescored"))
    references = [example.text for example in examples]
    ctc, decoder, rescored = (corpus_wer(references, heard[r]) for r in ("ctc", "decoder", "rescored"))
    assert rescored < min(ctc, decoder) - 0.02, (ctc, decoder, rescored)


def test_a_language_model_of_the_training_text_steers_the_rescored_read_out_to_fewer_errors(stand_in):
    module, examples = stand_in
    train = demo_texts("train", 500, seed=1)  # the train split of the sample's corpus, 500 a locale
    assert not {example.text for example in train} & {example.text for example in examples}
    fusion = domain_fusion([example.text for example in train], module.processor.tokenizer)
    references = [example.text for example in examples]
    alone = corpus_wer(references, transcribe(module, examples, "rescored")["rescored"])
    fused = corpus_wer(references, transcribe(module, examples, "rescored", fusion=fusion)["rescored"])
    assert fused < alone - 0.05, (alone, fused)
    with pytest.raises(ValueError, match="joins only the rescored read-out"):
        transcribe(module, examples, "ctc", fusion=fusion)
