"""Word and char distances against hand-computed values and jiwer 2.0.0's behaviour."""

import pytest

from slu_lightning.evaluation.distance import char_distance, edit_distance, jiwer_words, word_error_rate


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("next monday", ["next", "monday"]),
        ("  next   monday \n", ["next", "monday"]),
        ("a \t b", ["a", "b"]),  # a whitespace run becomes one space
        ("a\tb", ["a\tb"]),  # a single tab is not a word boundary in jiwer 2.0.0
        ("", []),
        ("   ", []),
        ("Monday", ["Monday"]),  # no lower-casing
    ],
)
def test_jiwer_words_splits_like_jiwer_2_0_0(text, words):
    assert jiwer_words(text) == words


@pytest.mark.parametrize(
    ("reference", "hypothesis", "distance"),
    [
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("", "", 0),
        ("abc", "", 3),
        ("", "ab", 2),
        (["set", "an", "alarm"], ["set", "the", "alarm", "now"], 2),
    ],
)
def test_edit_distance(reference, hypothesis, distance):
    assert edit_distance(reference, hypothesis) == distance
    assert edit_distance(hypothesis, reference) == distance


@pytest.mark.parametrize(
    ("reference", "hypothesis", "wer"),
    [
        ("next monday", "monday", 0.5),
        ("set an alarm", "set the alarm", 1 / 3),
        ("pizza", "a large pepperoni pizza", 3.0),  # not capped at 1
        ("next monday", "", 1.0),  # an empty hypothesis deletes every word
        ("monday", "Monday", 1.0),  # case matters, as in the scorer
        ("next  monday", " next monday ", 0.0),
    ],
)
def test_word_error_rate(reference, hypothesis, wer):
    assert word_error_rate(reference, hypothesis) == pytest.approx(wer)


@pytest.mark.parametrize("reference", ["", "  "])
def test_word_error_rate_refuses_an_empty_reference_like_jiwer_2_0_0(reference):
    with pytest.raises(ValueError, match="at least one word"):
        word_error_rate(reference, "monday")


@pytest.mark.parametrize(
    ("reference", "hypothesis", "distance"),
    [
        ("next monday", "monday", 5 / 11),
        ("kitten", "sitting", 3 / 7),
        ("monday", "monday", 0.0),
        ("abc", "", 1.0),
        ("", "", 0.0),  # textdistance: 0 when both are empty
        ("next monday", "next  monday", 1 / 12),  # raw characters, no whitespace cleanup
    ],
)
def test_char_distance(reference, hypothesis, distance):
    assert char_distance(reference, hypothesis) == pytest.approx(distance)
    assert char_distance(hypothesis, reference) == pytest.approx(distance)
