from collections import Counter

import numpy as np
import pytest

from slu_lightning.cli import main as cli_main
from slu_lightning.data.records import SLUExample
from slu_lightning.pretrain.coverage import (
    matched_positions,
    paired_wer,
    recognised_by_coverage,
    uncovered_words,
    vocabulary,
    word_error_rows,
)


def example(locale: str, text: str) -> SLUExample:
    return SLUExample(id=text, locale=locale, text=text, scenario="s", action="a")


KNOWN = vocabulary([example("en-US", "Set the timer, please."), example("fr-FR", "mets la musique")])


def test_vocabulary_counts_normalised_words_per_locale():
    assert KNOWN["en-US"] == Counter({"set": 1, "the": 1, "timer": 1, "please": 1})
    assert set(KNOWN["fr-FR"]) == {"mets", "la", "musique"}


def test_uncovered_words_are_counted_per_locale_and_overall():
    shares = uncovered_words([example("en-US", "set the alarm"), example("fr-FR", "mets le réveil")], KNOWN)
    assert shares["en-US"]["uncovered"] == pytest.approx(1 / 3)
    assert shares["fr-FR"]["uncovered"] == pytest.approx(2 / 3)  # "le" is known in no French text here
    assert shares["all"] == {
        "words": 6,
        "uncovered": 0.5,
        "most_common": [("alarm", 1), ("le", 1), ("réveil", 1)],
    }
    # a word known in another locale only still counts as uncovered
    assert uncovered_words([example("fr-FR", "timer")], KNOWN)["fr-FR"]["uncovered"] == 1.0


@pytest.mark.parametrize(
    ("reference", "hypothesis", "matched"),
    [
        ("set the alarm", "set the alarm", {0, 1, 2}),
        ("set the alarm", "set a alarm", {0, 2}),  # substitution
        ("set the alarm", "set alarm", {0, 2}),  # deletion
        ("set the alarm", "set the new alarm", {0, 1, 2}),  # insertion
        ("set the alarm", "the bell rang", {1}),
        ("set the alarm", "", set()),
    ],
)
def test_matched_positions_are_the_reference_words_got_right_in_order(reference, hypothesis, matched):
    assert matched_positions(reference.split(), hypothesis.split()) == matched


def test_recognition_is_split_by_whether_the_pretraining_text_holds_the_word():
    examples = [example("en-US", "set the alarm"), example("en-US", "the lights")]
    recognised = recognised_by_coverage(examples, ["set the alarm", "a lights"], KNOWN)
    assert recognised["covered"] == {"words": 3, "recognised": pytest.approx(2 / 3)}  # the: missed once
    assert recognised["uncovered"] == {"words": 2, "recognised": 1.0}


def test_word_error_rows_count_each_utterance():
    examples = [example("en-US", "set the alarm"), example("en-US", "the lights")]
    rows = word_error_rows(examples, ["set an alarm", "the lights on"])
    assert rows.tolist() == [[1, 3], [1, 2]]


def test_a_backbone_better_on_most_utterances_has_a_negative_difference_and_a_small_p():
    rng = np.random.default_rng(0)
    words = rng.integers(5, 12, size=(200, 1))
    a = np.hstack([rng.binomial(words, 0.6), words])
    b = np.hstack([rng.binomial(words, 0.4), words])
    better = paired_wer(a, b)
    assert better.difference == pytest.approx(b[:, 0].sum() / words.sum() - a[:, 0].sum() / words.sum())
    assert better.low < better.difference < better.high < 0 and better.p_value < 0.01
    same = paired_wer(a, a)
    assert same == (0.0, 0.0, 0.0, 1.0)


def test_the_coverage_command_prints_both_tables_and_compares_backbones(capsys, tiny_backbone):
    flags = ["--asr-size", "tiny", "--demo-size", "tiny", "--clips", "6"]
    cli_main(["coverage", *flags, "--backbone", str(tiny_backbone), "--backbone", str(tiny_backbone)])
    out = capsys.readouterr().out
    assert "| all | " in out and "not in the pretraining text" in out
    assert out.count("| covered | ") == 2 and out.count("| uncovered | ") == 2
    compared = next(line for line in out.splitlines() if line.startswith(f"| {tiny_backbone} |"))
    assert compared.endswith("| +0.000 | [+0.000, +0.000] | 1.000 |")  # a backbone against itself


def test_the_coverage_command_reads_the_everyday_corpus_when_asked(capsys):
    def uncovered(*flags: str) -> float:
        cli_main(["coverage", "--asr-size", "tiny", "--demo-size", "tiny", "--clips", "60", *flags])
        out = capsys.readouterr().out
        assert ("with 3000 everyday words" in out) == bool(flags)
        return float(next(line for line in out.splitlines() if line.startswith("| all |")).split("|")[3])

    assert uncovered("--everyday-words", "3000") < uncovered()  # 0.772 against 0.804 at this scale
