import pytest

from slu_lightning.evaluation.error_rates import corpus_cer, corpus_wer, error_counts


def test_corpus_wer_pools_errors_over_all_reference_words():
    assert corpus_wer(["a b c d", "e f"], ["a x c d", ""]) == pytest.approx(3 / 6)
    assert corpus_wer(["Rome, Italy"], ["rome italy"]) == 0.0  # case and punctuation do not count


def test_corpus_cer_counts_characters_and_word_boundaries():
    assert corpus_cer(["mayte y teodoro"], ["maytey teodooro"]) == pytest.approx(2 / 15)
    assert corpus_wer(["mayte y teodoro"], ["maytey teodooro"]) == pytest.approx(3 / 3)
    assert corpus_cer(["Rome,  Italy"], ["rome italy"]) == 0.0


def test_error_counts_give_the_lengths_a_corpus_rate_is_weighted_by():
    assert error_counts(["a b c d", "e f"], ["a x c d", ""], "wer") == (3, 6)
    assert error_counts(["ab"], ["a"], "cer") == (1, 2)
