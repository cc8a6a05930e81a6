"""Count rows and their summary against hand-computed SLURP-scorer values."""

import numpy as np
import pytest

from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.evaluation.counts import (
    COUNT_FIELDS,
    count_example,
    count_rows,
    summarize,
    summarize_totals,
)
from slu_lightning.task import ParseStatus, Prediction, format_target, parse_prediction


def pred(*entities: Entity, scenario: str = "calendar", action: str = "set") -> Prediction:
    return Prediction(scenario, action, tuple(entities), ParseStatus.VALID)


def row(gold_entities, prediction, scenario="calendar", action="set") -> dict[str, float]:
    values = count_example(scenario, action, gold_entities, prediction)
    assert values.shape == (len(COUNT_FIELDS),)
    return dict(zip(COUNT_FIELDS, values.tolist(), strict=True))


def entity_counts(counts: dict[str, float], kind: str) -> tuple[float, float, float]:
    return counts[f"{kind}_tp"], counts[f"{kind}_fp"], counts[f"{kind}_fn"]


def test_partial_credit_for_a_close_filler():
    counts = row([Entity("date", "next monday")], pred(Entity("date", "monday")))
    assert entity_counts(counts, "entity") == (0, 1, 1)
    assert entity_counts(counts, "word") == pytest.approx((1, 0.5, 0.5))  # one of two words deleted
    assert entity_counts(counts, "char") == pytest.approx((1, 5 / 11, 5 / 11))  # "next " deleted
    summary = summarize(np.array([list(counts.values())]))
    assert summary["entity_f1"] == 0.0
    assert summary["word_f1"] == pytest.approx(2 / 3)  # P = R = 1 / 1.5
    assert summary["char_f1"] == pytest.approx(11 / 16)  # P = R = 1 / (1 + 5/11)
    # SLU-F1 pools the counts: TP 2, FP = FN = 1/2 + 5/11 = 21/22, so P = R = 44/65
    assert summary["slu_f1"] == pytest.approx(44 / 65)
    assert summary["slu_f1"] != pytest.approx((2 / 3 + 11 / 16) / 2)  # not the mean of the two F1s
    assert summary["intent_acc"] == 1.0 and summary["exact_match"] == 0.0


def test_a_wrong_type_earns_no_credit():
    counts = row([Entity("date", "monday")], pred(Entity("time", "monday")))
    for kind in ("entity", "word", "char"):
        assert entity_counts(counts, kind) == (0, 1, 1)


def test_duplicate_predictions_match_one_gold_entity_only():
    counts = row([Entity("person", "john")], pred(Entity("person", "john"), Entity("person", "john")))
    for kind in ("entity", "word", "char"):
        assert entity_counts(counts, kind) == (1, 1, 0)
    both = row(
        [Entity("person", "john"), Entity("person", "john")],
        pred(Entity("person", "john"), Entity("person", "john")),
    )
    assert entity_counts(both, "entity") == (2, 0, 0)
    assert both["exact_match"] == 1.0


def test_extra_and_missing_entities():
    extra = row([], pred(Entity("date", "today")))
    missing = row([Entity("date", "today"), Entity("time", "noon")], pred())
    for kind in ("entity", "word", "char"):
        assert entity_counts(extra, kind) == (0, 1, 0)
        assert entity_counts(missing, kind) == (0, 0, 2)


def test_empty_gold_and_empty_prediction_count_nothing():
    counts = row([], pred())
    for kind in ("entity", "word", "char"):
        assert entity_counts(counts, kind) == (0, 0, 0)
    assert counts["exact_match"] == 1.0
    summary = summarize(count_example("calendar", "set", [], pred())[None])
    # the scorer's compute_metrics: with no TP, FP or FN at all, P = R = F1 = 0
    assert summary["entity_f1"] == summary["slu_f1"] == 0.0
    assert summary["intent_acc"] == 1.0


def test_word_distance_above_one_for_one_entity():
    counts = row([Entity("food", "pizza")], pred(Entity("food", "a large pepperoni pizza")))
    assert entity_counts(counts, "word") == pytest.approx((1, 3, 3))  # three insertions over one word
    assert entity_counts(counts, "char") == pytest.approx((1, 18 / 23, 18 / 23))
    summary = summarize(np.array([list(counts.values())]))
    assert summary["word_precision"] == pytest.approx(0.25)
    assert summary["word_f1"] == pytest.approx(0.25)


def test_each_distance_picks_its_own_nearest_gold_with_first_minimum_on_ties():
    gold = [Entity("place", "paris"), Entity("place", "london")]
    counts = row(gold, pred(Entity("place", "londn"), Entity("place", "london")))
    # word: "londn" is at WER 1.0 from both, so the first (paris) is taken; "london" then matches
    # london exactly. Taking london first would leave "london" against paris: (2, 2, 2).
    assert entity_counts(counts, "word") == (2, 1, 1)
    # char: "londn" is 1/6 from london and 1.0 from paris (no shared letter), so london is taken;
    # "london" is then paired with paris at distance 1.0
    assert entity_counts(counts, "char") == pytest.approx((2, 1 / 6 + 1, 1 / 6 + 1))


def test_predictions_are_compared_verbatim():
    counts = row([Entity("date", "monday")], pred(Entity("date", "Monday")))
    assert entity_counts(counts, "entity") == (0, 1, 1)
    assert entity_counts(counts, "word") == (1, 1, 1)


def test_an_invalid_output_counts_as_wrong_everywhere():
    prediction = parse_prediction("Sorry, I cannot help with that.")
    assert prediction.status is ParseStatus.INVALID
    counts = row([Entity("date", "monday")], prediction)
    assert counts["valid"] == 0.0
    assert counts["scenario_correct"] == counts["action_correct"] == counts["intent_correct"] == 0.0
    for kind in ("entity", "word", "char"):
        assert entity_counts(counts, kind) == (0, 0, 1)
    assert summarize(np.array([list(counts.values())]))["invalid_rate"] == 1.0


def test_intent_is_the_scenario_action_string_as_in_the_scorer():
    counts = row([], pred(scenario="a", action="b_c"), scenario="a_b", action="c")
    assert counts["scenario_correct"] == counts["action_correct"] == 0.0
    assert counts["intent_correct"] == 1.0


def test_exact_match_needs_the_intent_and_every_entity():
    gold = [Entity("date", "monday")]
    assert row(gold, pred(Entity("date", "monday"), action="query"))["exact_match"] == 0.0
    assert row(gold, pred(Entity("date", "monday"), Entity("time", "noon")))["exact_match"] == 0.0
    assert row(gold, pred(Entity("date", "monday")))["exact_match"] == 1.0


def test_an_empty_gold_filler_meeting_a_prediction_raises_like_the_scorer():
    with pytest.raises(ValueError, match="at least one word"):
        row([Entity("date", " ")], pred(Entity("date", "monday")))


GOLDS = [
    SLUExample("a", "en-US", "wake me up at five am", "alarm", "set", (Entity("time", "five am"),)),
    SLUExample("b", "en-US", "what is on next monday", "calendar", "query", (Entity("date", "next monday"),)),
    SLUExample(
        "c",
        "fr-FR",
        "play jazz by miles davis",
        "play",
        "music",
        (Entity("music_genre", "jazz"), Entity("artist_name", "miles davis")),
    ),
    SLUExample("d", "fr-FR", "lights off", "iot", "hue_lightoff"),
]


def test_gold_against_itself_scores_one_on_every_metric():
    preds = [parse_prediction(format_target(g.scenario, g.action, g.entities)) for g in GOLDS]
    summary = summarize(count_rows(GOLDS, preds))
    assert summary.pop("num_examples") == 4
    assert summary.pop("invalid_rate") == 0.0
    assert summary == {name: 1.0 for name in summary}


def test_summary_pools_counts_over_examples():
    preds = [
        pred(Entity("time", "five am"), scenario="alarm", action="set"),  # all right
        pred(Entity("date", "monday"), scenario="calendar", action="set"),  # action wrong, partial entity
        pred(scenario="play", action="music"),  # both entities missing
        Prediction("", "", (), ParseStatus.TRUNCATED),  # not valid, all wrong
    ]
    summary = summarize(count_rows(GOLDS, preds))
    assert summary["num_examples"] == 4
    assert summary["scenario_acc"] == 0.75
    assert summary["action_acc"] == 0.5
    assert summary["intent_acc"] == 0.5
    assert summary["exact_match"] == 0.25
    assert summary["invalid_rate"] == 0.25
    # entity: TP 1, FP 1, FN 1 + 2 = 3 -> P 1/2, R 1/4, F1 1/3
    assert summary["entity_precision"] == 0.5
    assert summary["entity_recall"] == 0.25
    assert summary["entity_f1"] == pytest.approx(1 / 3)
    # word: TP 2, FP 0.5, FN 0.5 + 2; char: TP 2, FP 5/11, FN 5/11 + 2
    assert summary["word_precision"] == pytest.approx(2 / 2.5)
    assert summary["word_recall"] == pytest.approx(2 / 4.5)
    slu_tp, slu_fp, slu_fn = 4, 0.5 + 5 / 11, 4.5 + 5 / 11
    precision, recall = slu_tp / (slu_tp + slu_fp), slu_tp / (slu_tp + slu_fn)
    assert summary["slu_f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_summarize_totals_is_vectorised_over_leading_dimensions():
    preds = [pred(scenario=g.scenario, action=g.action) for g in GOLDS]
    rows = count_rows(GOLDS, preds)
    per_row = summarize_totals(rows)  # each row is its own total
    for i in range(len(rows)):
        single = summarize(rows[i : i + 1])
        assert {name: float(values[i]) for name, values in per_row.items()} == single


def test_no_examples_gives_zeros():
    summary = summarize(np.zeros((0, len(COUNT_FIELDS))))
    assert summary == {name: 0.0 for name in summary}


def test_count_rows_checks_pairing_and_shapes():
    with pytest.raises(ValueError, match="3 gold examples but 2 predictions"):
        count_rows(GOLDS[:3], [pred(), pred()])
    with pytest.raises(ValueError, match="expected counts of shape"):
        summarize(np.zeros(len(COUNT_FIELDS)))
