"""The domain language model: interpolated Kneser-Ney counts, and shallow fusion in the CTC beam."""

import math

import pytest
import torch

from slu_lightning.pretrain.domain_lm import EOS, LMFusion, TokenNgram
from slu_lightning.pretrain.rescoring import ctc_prefix_beam_search

BLANK = 0


def test_kneser_ney_probabilities_match_a_hand_count():
    lm = TokenNgram([[1, 2], [1, 3]], vocab_size=4, order=2, discount=0.75)
    # unigram continuation counts: 1 <- {BOS}, 2 <- {1}, 3 <- {1}, EOS <- {2, 3}: 5 in all, 4 types
    unigram_2 = (1 - 0.75) / 5 + 0.75 * 4 / 5 * (1 / 5)  # floored by the uniform 1 / (4 + 1)
    assert math.exp(lm.log_prob([], 1)) > math.exp(lm.log_prob([], 2))  # 1 starts every sentence
    assert math.exp(lm.log_prob([1], 2)) == pytest.approx((1 - 0.75) / 2 + 0.75 * 2 / 2 * unigram_2)
    assert math.exp(lm.log_prob([7, 7, 1], 2)) == pytest.approx(math.exp(lm.log_prob([1], 2)))  # order 2


@pytest.mark.parametrize("context", [(), (1,), (1, 2), (3, 3), (9,)])
def test_every_context_gives_a_distribution_over_the_vocabulary_and_the_end(context):
    lm = TokenNgram([[1, 2, 3], [1, 2, 4], [2, 3], [4]], vocab_size=6, order=3)
    total = sum(math.exp(lm.log_prob(context, token)) for token in [*range(6), EOS])
    assert total == pytest.approx(1.0)


def test_sentences_like_the_training_text_score_higher_and_the_end_counts():
    lm = TokenNgram([[5, 6, 7]] * 3 + [[5, 8]], vocab_size=10, order=3)
    assert lm.sentence_log_prob([5, 6, 7]) > lm.sentence_log_prob([7, 6, 5])
    assert lm.sentence_log_prob([5, 6, 7]) > lm.sentence_log_prob([5, 6, 7, 7])
    assert lm.sentence_log_prob([5, 6]) < sum(lm.log_prob([5, 6][:i], t) for i, t in enumerate([5, 6]))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="no sentences"):
        TokenNgram([], vocab_size=4)
    with pytest.raises(ValueError, match="discount"):
        TokenNgram([[1]], vocab_size=4, discount=1.0)


def ambiguous_frames() -> torch.Tensor:
    """Three frames spelling ``1 x``, where x is 2 or 3 with almost equal odds (2 slightly ahead)."""
    log_probs = torch.full((3, 4), -9.0)
    log_probs[0, 1] = 0.0
    log_probs[1, BLANK] = 0.0
    log_probs[2, 2], log_probs[2, 3] = 0.1, 0.0
    return log_probs.log_softmax(-1)


def test_fusion_lets_the_language_model_choose_between_spellings_the_sound_cannot_tell_apart():
    log_probs = ambiguous_frames()
    (alone, _), *_ = ctc_prefix_beam_search(log_probs, BLANK, beam=1)
    assert alone == [1, 2]
    lm = TokenNgram([[1, 3]] * 4, vocab_size=4, order=2)
    fused = ctc_prefix_beam_search(log_probs, BLANK, beam=1, fusion=LMFusion(lm, weight=1.0, bonus=0.0))
    (chosen, ctc), *_ = fused
    assert chosen == [1, 3]
    assert ctc < dict((tuple(ids), s) for ids, s in ctc_prefix_beam_search(log_probs, BLANK))[(1, 2)]
    # the returned score stays the CTC log probability, for rescoring to weigh on its own
    assert ctc == pytest.approx(float(log_probs[0, 1] + log_probs[1, BLANK] + log_probs[2, 3]), abs=1e-4)


def test_the_token_bonus_pays_for_each_token_and_the_sentence_score_adds_the_end():
    lm = TokenNgram([[1, 3]], vocab_size=4, order=2)
    fusion = LMFusion(lm, weight=0.5, bonus=2.0)
    assert fusion.token_score([1], 3) == pytest.approx(0.5 * lm.log_prob([1], 3) + 2.0)
    assert fusion.sentence_score([1, 3]) == pytest.approx(0.5 * lm.sentence_log_prob([1, 3]) + 4.0)
