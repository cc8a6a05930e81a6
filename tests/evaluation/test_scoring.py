"""``slu-lightning score``: gold and prediction files in, hand-computed official-scorer numbers out."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slu_lightning.cli import main
from slu_lightning.data.errors import DataError
from slu_lightning.data.readers import read_massive, read_slurp, write_manifest
from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.evaluation.bootstrap import utterance_cluster_id
from slu_lightning.evaluation.counts import count_rows, summarize
from slu_lightning.evaluation.metrics import SLUMetrics, rows_from_predictions
from slu_lightning.evaluation.scoring import SHOWN_METRICS, score_files
from slu_lightning.model.module import _prediction_row
from slu_lightning.task import ParseStatus, Prediction

FIXTURES = Path(__file__).parents[1] / "fixtures" / "scoring"
SLURP_GOLD = FIXTURES / "slurp_gold.jsonl"
"""Four utterances, six recordings; utterance 3 has no entities and an ``intent`` field that is not
``scenario_action``."""
SLURP_PRED = FIXTURES / "slurp_pred.jsonl"
"""Predictions for five of the six recordings, plus one for a recording that is not in the gold."""


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def pred(key: str, scenario: str, action: str, *entities: tuple[str, str], **extra) -> dict:
    return {
        "file": key,
        "scenario": scenario,
        "action": action,
        "entities": [{"type": t, "filler": f} for t, f in entities],
        **extra,
    }


def as_predictions(examples: list[SLUExample], **extra) -> list[dict]:
    """The gold itself in prediction format: a perfect system."""
    return [
        pred(e.id, e.scenario, e.action, *((x.type, x.filler) for x in e.entities), **extra) for e in examples
    ]


def manifest(tmp_path: Path, *examples: SLUExample) -> Path:
    return write_manifest(tmp_path / "gold.jsonl", examples)


def example(key: str, *entities: tuple[str, str], locale: str = "en-US", utterance: str = "") -> SLUExample:
    return SLUExample(
        id=key,
        locale=locale,
        text="some words",
        scenario="calendar",
        action="set",
        entities=tuple(Entity(t, f) for t, f in entities),
        utterance_id=utterance,
    )


def massive_row(key: str, locale: str, partition: str, intent: str, annot_utt: str) -> dict:
    return {
        "id": key,
        "locale": locale,
        "partition": partition,
        "scenario": intent.split("_")[0],
        "intent": intent,
        "utt": annot_utt.replace("[", "").replace("]", ""),
        "annot_utt": annot_utt,
    }


def test_covered_items_give_the_official_scorers_numbers_computed_by_hand():
    report = score_files(SLURP_GOLD, SLURP_PRED, n_resamples=0)
    covered = report.covered_metrics  # the official scorer skips the one recording without prediction
    assert covered["num_examples"] == 5
    # audio-1-headset right; audio-1 calendar_set for alarm_set; audio-2 right; audio-3-headset right
    # (iot_hue_lighton, whatever the intent field says); audio-4 calendar_query for calendar_set
    assert (covered["scenario_acc"], covered["action_acc"], covered["intent_acc"]) == (0.8, 0.8, 0.6)
    assert covered["exact_match"] == 0.4  # audio-2 predicts "Paris" for the gold "paris"
    # Exact entities: TP 2 (five am, tomorrow), FP 4 (five, Paris, please call..., person mom), FN 3
    assert covered["entity_f1"] == pytest.approx(2 * 2 / (2 * 2 + 4 + 3))
    # Word: "five am"->"five" WER 1/2, "paris"->"Paris" 1, "call mom"->"please call my mom now" 3/2 (> 1),
    # person has no gold of its type: FP 1. TP 5, FP 1/2 + 1 + 3/2 + 1 = 4, FN 1/2 + 1 + 3/2 = 3
    assert covered["word_f1"] == pytest.approx(10 / 17)
    # Char: 3/7 ("five am"->"five"), 1/5 (P->p), 14/22 (14 inserted characters, 22 the longer length)
    char_fn = 3 / 7 + 1 / 5 + 14 / 22
    assert covered["char_f1"] == pytest.approx(10 / (10 + 2 * char_fn + 1))
    # SLU-F1 pools word and char counts: TP 10, FP 4 + char_fn + 1, FN 3 + char_fn
    assert covered["slu_f1"] == pytest.approx(20 / (20 + 4 + 3 + 2 * char_fn + 1))
    assert {name: round(covered[name], 4) for name in ("entity_f1", "word_f1", "char_f1", "slu_f1")} == {
        "entity_f1": 0.3636,
        "word_f1": 0.5882,
        "char_f1": 0.7391,
        "slu_f1": 0.6551,
    }


def test_gold_items_without_prediction_count_as_wrong_and_coverage_is_reported():
    report = score_files(SLURP_GOLD, SLURP_PRED, n_resamples=0)
    metrics = report.metrics  # audio-3.flac (iot_hue_lighton, no entities) is scored as an empty prediction
    assert metrics["num_examples"] == 6
    assert (metrics["scenario_acc"], metrics["intent_acc"], metrics["exact_match"]) == (4 / 6, 3 / 6, 2 / 6)
    assert metrics["invalid_rate"] == pytest.approx(1 / 6)
    assert metrics["slu_f1"] == report.covered_metrics["slu_f1"]  # no gold entity went missing
    coverage = report.coverage
    assert (coverage.gold_items, coverage.predicted, coverage.missing) == (6, 5, 1)
    assert coverage.unmatched_predictions == 1
    assert coverage.duplicate_predictions == coverage.malformed_lines == 0
    assert any("'audio-3.flac'" in w for w in report.warnings)
    assert any("'audio-9.flac'" in w and "no gold item" in w for w in report.warnings)
    assert report.unit == "recording" and report.gold_format == "slurp" and report.per_locale == {}


def test_the_slurp_intent_is_scenario_action_not_the_intent_field(tmp_path):
    # utterance 3's release row has intent "hue_lighton" but scenario "iot", action "hue_lighton"
    predictions = write_jsonl(tmp_path / "pred.jsonl", [pred("audio-3-headset.flac", "iot", "hue_lighton")])
    assert score_files(SLURP_GOLD, predictions, n_resamples=0).covered_metrics["intent_acc"] == 1.0


def test_partial_credit_with_a_word_error_rate_above_one(tmp_path):
    gold = manifest(tmp_path, example("k1", ("event_name", "call mom")))
    predictions = write_jsonl(
        tmp_path / "pred.jsonl", [pred("k1", "calendar", "set", ("event_name", "please call my mom now"))]
    )
    metrics = score_files(gold, predictions, n_resamples=0).metrics
    assert metrics["entity_f1"] == 0.0
    assert metrics["word_f1"] == pytest.approx(2 / (2 + 1.5 + 1.5))  # WER 3 / 2: TP 1, FP 1.5, FN 1.5
    assert metrics["char_f1"] == pytest.approx(11 / 18)  # d = 14 / 22: P = R = 1 / (1 + 14 / 22)
    assert metrics["slu_f1"] == pytest.approx(4 / (4 + 2 * (1.5 + 14 / 22)))


def test_empty_entity_lists(tmp_path):
    gold = manifest(tmp_path, example("k1"), example("k2"))
    predictions = write_jsonl(
        tmp_path / "pred.jsonl",
        [pred("k1", "calendar", "set"), pred("k2", "calendar", "set", ("date", "today"))],
    )
    metrics = score_files(gold, predictions, n_resamples=0).metrics
    assert (metrics["intent_acc"], metrics["exact_match"]) == (1.0, 0.5)
    assert (metrics["entity_precision"], metrics["entity_recall"], metrics["entity_f1"]) == (0.0, 0.0, 0.0)
    assert metrics["slu_f1"] == 0.0  # only FP: the scorer's zero conventions, not 1.0


def test_the_first_of_duplicate_predictions_wins(tmp_path):
    gold = manifest(tmp_path, example("k1", ("date", "today")), example("k2"))
    predictions = write_jsonl(
        tmp_path / "pred.jsonl",
        [
            pred("k1", "calendar", "set", ("date", "today")),
            pred("k2", "calendar", "set"),
            pred("k1", "alarm", "query"),  # later lines for k1 are counted and ignored
            {"id": "k1", "scenario": "alarm", "action": "set", "entities": []},
        ],
    )
    report = score_files(gold, predictions, n_resamples=0)
    assert report.metrics["exact_match"] == 1.0
    assert report.coverage.duplicate_predictions == 2 and report.coverage.predicted == 2
    assert [w.split(":")[0] for w in report.warnings] == ["line 3", "line 4"]


def test_malformed_lines_are_reported_by_line_and_scored_wrong(tmp_path):
    gold = manifest(tmp_path, *(example(f"k{i}", ("date", "today")) for i in range(1, 6)))
    predictions = write_jsonl(
        tmp_path / "pred.jsonl",
        [
            pred("k1", "calendar", "set", ("date", "today")),
            '{"file": "k2", "scenario": "calendar", "action": "se',  # truncated: the key is still found
            {"file": "k3", "scenario": "calendar", "action": "set"},  # no entities
            {"file": "k4", "scenario": "calendar", "action": "set", "entities": [{"type": "date"}]},
            {"file": "k5", "scenario": "calendar", "action": "set", "entities": "today"},
            "not json at all",
            {"scenario": "calendar", "action": "set", "entities": []},  # no key
        ],
    )
    report = score_files(gold, predictions, n_resamples=0)
    assert report.metrics["intent_acc"] == 0.2 and report.metrics["invalid_rate"] == 0.8
    assert report.metrics["entity_f1"] == pytest.approx(2 * 1 / (2 * 1 + 0 + 4))
    assert report.coverage.malformed_lines == 6 and report.coverage.missing == 0
    assert [w.split(":")[0] for w in report.warnings] == [f"line {n}" for n in range(2, 8)]
    assert "scored as a wrong prediction for 'k2'" in report.warnings[0]
    assert "'entities'" in report.warnings[2] and "left out" in report.warnings[5]


def test_a_pooled_interval_draws_the_translations_of_an_utterance_together(tmp_path):
    """MASSIVE's locales translate one set of utterances: where each utterance is right or wrong in
    both locales alike, pooling them adds no information, so the pooled interval is the one-locale
    interval (counted as independent, it would be about 1/sqrt(2) as wide)."""
    data = tmp_path / "data"
    data.mkdir()
    right = np.random.default_rng(0).random(60) < 0.6
    predictions = []
    for locale in ("fr-FR", "it-IT"):
        rows = [massive_row(str(k), locale, "test", "alarm_set", f"réveil {k}") for k in range(60)]
        write_jsonl(data / f"{locale}.jsonl", rows)
        predictions += [pred(f"{locale}/{k}", "alarm", "set" if right[k] else "query") for k in range(60)]
    report = score_files(data, write_jsonl(tmp_path / "pred.jsonl", predictions), n_resamples=500)
    assert report.metrics["intent_acc"] == pytest.approx(right.mean())
    for locale in ("fr-FR", "it-IT"):
        assert report.cis["intent_acc"] == report.per_locale[locale].cis["intent_acc"]
    low, high = report.cis["intent_acc"]
    assert high - low > 0.2  # 60 items' width, not 120's


def test_massive_folder_per_locale_with_bare_or_prefixed_ids(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(
        data / "fr-FR.jsonl",
        [
            massive_row("1", "fr-FR", "test", "alarm_set", "réveille-moi à [time : sept heures]"),
            massive_row("2", "fr-FR", "test", "weather_query", "quel temps fait-il"),
            massive_row("3", "fr-FR", "dev", "alarm_set", "réveil"),
        ],
    )  # another partition: not gold
    write_jsonl(
        data / "it-IT.jsonl",
        [massive_row("1", "it-IT", "test", "alarm_set", "svegliami alle [time : sette]")],
    )
    predictions = write_jsonl(
        tmp_path / "pred.jsonl",
        [
            pred("fr-FR/1", "alarm", "set", ("time", "sept heures")),
            {"id": "2", "locale": "fr-FR", "scenario": "weather", "action": "query", "entities": []},
            {"id": "1", "locale": "it-IT", "scenario": "alarm", "action": "query", "entities": []},
            {"id": "1", "locale": "fr-FR", "scenario": "x", "action": "y", "entities": []},
        ],
    )  # fr-FR/1 again
    report = score_files(data, predictions, n_resamples=0)
    assert report.gold_format == "massive" and report.coverage.gold_items == 3
    assert report.coverage.duplicate_predictions == 1
    assert set(report.per_locale) == {"fr-FR", "it-IT"}
    assert report.per_locale["fr-FR"].metrics["exact_match"] == 1.0
    it = report.per_locale["it-IT"].metrics
    assert (it["scenario_acc"], it["intent_acc"], it["entity_f1"]) == (1.0, 0.0, 0.0)
    assert report.metrics["intent_acc"] == pytest.approx(2 / 3)
    # a single-locale file also takes bare ids without a locale field
    bare = write_jsonl(
        tmp_path / "bare.jsonl",
        [
            {
                "id": "1",
                "scenario": "alarm",
                "action": "set",
                "entities": [{"type": "time", "filler": "sette"}],
            }
        ],
    )
    assert score_files(data / "it-IT.jsonl", bare, n_resamples=0).metrics["exact_match"] == 1.0
    # against one locale's file, another locale's line of the same bare id is no prediction of it
    french = {**pred("1", "alarm", "query"), "locale": "fr-FR"}
    italian = {**json.loads(bare.read_text()), "locale": "it-IT"}
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [french, italian])
    report = score_files(data / "it-IT.jsonl", mixed, n_resamples=0)
    assert report.metrics["exact_match"] == 1.0 and report.coverage.duplicate_predictions == 0
    assert report.coverage.unmatched_predictions == 1 and "'1 (fr-FR)'" in " ".join(report.warnings)


def test_slurp_id_keys_score_one_item_per_utterance_as_the_official_load_gold_mode(tmp_path):
    utterances = read_slurp(SLURP_GOLD, modality="text")
    rows = [{"slurp_id": int(row.pop("file")), **row} for row in as_predictions(utterances)]
    report = score_files(SLURP_GOLD, write_jsonl(tmp_path / "pred.jsonl", rows), n_resamples=0)
    assert report.unit == "utterance" and report.coverage.gold_items == 4
    assert report.metrics["exact_match"] == 1.0


def perfect_metrics(report) -> dict[str, float]:
    """Every metric but the example count and the invalid rate (0.0 when perfect)."""
    return {name: v for name, v in report.metrics.items() if name not in ("num_examples", "invalid_rate")}


def test_gold_scored_against_itself_is_perfect_in_every_format(tmp_path):
    recordings = read_slurp(SLURP_GOLD, tmp_path, modality="speech")
    massive = write_jsonl(
        tmp_path / "fr-FR.jsonl",
        [
            massive_row("1", "fr-FR", "test", "alarm_set", "réveille-moi à [time : sept heures]"),
            massive_row("2", "fr-FR", "test", "weather_query", "quel temps à [place_name : paris]"),
        ],
    )
    gold_manifest = manifest(
        tmp_path,
        example("a", ("date", "today"), locale="fr-FR", utterance="u1"),
        example("b", ("date", "today"), locale="en-US", utterance="u1"),
    )
    cases = {
        "slurp": (SLURP_GOLD, recordings),
        "massive": (massive, read_massive(massive, "test")),
        "manifest": (gold_manifest, [example("a", ("date", "today")), example("b", ("date", "today"))]),
    }
    for gold_format, (gold, examples) in cases.items():
        predictions = write_jsonl(tmp_path / f"{gold_format}-pred.jsonl", as_predictions(examples))
        report = score_files(gold, predictions, n_resamples=50)
        assert report.gold_format == gold_format
        assert set(perfect_metrics(report).values()) == {1.0}, gold_format
        assert report.metrics["invalid_rate"] == 0.0 and report.coverage.missing == 0
        assert all(report.cis[name] == (1.0, 1.0) for name in SHOWN_METRICS)
    assert set(score_files(gold_manifest, tmp_path / "manifest-pred.jsonl", n_resamples=0).per_locale) == {
        "en-US",
        "fr-FR",
    }
    predictions_gold = write_jsonl(
        tmp_path / "predictions.jsonl",
        [
            {
                **row,
                "reference": {
                    "text": "x",
                    "scenario": row["scenario"],
                    "action": row["action"],
                    "entities": row["entities"],
                },
            }
            for row in as_predictions(recordings)
        ],
    )
    report = score_files(predictions_gold, predictions_gold, n_resamples=0)
    assert report.gold_format == "predictions" and set(perfect_metrics(report).values()) == {1.0}


def test_round_trip_of_the_predictions_file_that_test_writes(tmp_path):
    gold = [
        SLUExample(
            id="slurp_real/audio-7.flac",
            locale="en-US",
            text="wake me at five",
            scenario="alarm",
            action="set",
            entities=(Entity("time", "five"),),
            audio="x.flac",
            utterance_id="7",
            source="slurp",
        ),
        SLUExample(
            id="fr-FR/1",
            locale="fr-FR",
            text="réveil à cinq",
            scenario="alarm",
            action="set",
            entities=(Entity("time", "cinq"),),
            audio="y.flac",
            source="speech-massive",
        ),
        SLUExample(
            id="fr-FR/2",
            locale="fr-FR",
            text="quel temps",
            scenario="weather",
            action="query",
            audio="z.flac",
            source="speech-massive",
        ),
    ]
    predictions = [
        Prediction("alarm", "set", (Entity("time", "five am"),), ParseStatus.VALID),
        Prediction("alarm", "query", (Entity("time", "cinq"),), ParseStatus.TRUNCATED),
        Prediction("", "", (), ParseStatus.INVALID),
    ]
    pairs = list(zip(gold, predictions, strict=True))
    rows = [_prediction_row(e, "raw", p, heard=True) for e, p in pairs]
    rows += [_prediction_row(e.as_text(), "raw", p, heard=False) for e, p in pairs]  # a run on both
    path = write_jsonl(tmp_path / "predictions_test.jsonl", rows)
    with pytest.raises(DataError, match="--modality"):  # the same key in both modalities
        score_files(path, path, gold_format="predictions")
    report = score_files(path, path, gold_format="predictions", modality="speech", n_resamples=0)
    assert report.metrics == summarize(count_rows(gold, predictions))  # what SLUMetrics computes
    assert report.metrics["invalid_rate"] == pytest.approx(2 / 3)  # statuses are kept
    assert set(report.per_locale) == {"en-US", "fr-FR"} and report.coverage.missing == 0


def test_cli_prints_a_table_or_one_json_object(capsys):
    main(["score", "--gold", str(SLURP_GOLD), "--pred", str(SLURP_PRED), "--resamples", "100"])
    table = capsys.readouterr().out
    assert "slu_f1" in table and "0.6551" in table and "audio-9.flac" in table
    main(["score", "--gold", str(SLURP_GOLD), "--pred", str(SLURP_PRED), "--resamples", "100", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert round(report["covered_metrics"]["slu_f1"], 4) == 0.6551
    low, high = report["ci95"]["slu_f1"]
    assert low <= report["metrics"]["slu_f1"] <= high
    assert report["coverage"]["missing"] == 1 and report["unit"] == "recording"


def test_intervals_depend_on_the_seed_only():
    first = score_files(SLURP_GOLD, SLURP_PRED, n_resamples=200, seed=3)
    assert first.cis == score_files(SLURP_GOLD, SLURP_PRED, n_resamples=200, seed=3).cis
    assert score_files(SLURP_GOLD, SLURP_PRED, n_resamples=0).cis == {}


def test_intervals_are_those_test_logs_from_the_same_predictions(tmp_path):
    """``SLUMetrics`` gets the cluster ids ``SLUModule`` gives it; ``score`` on the predictions file
    must draw the same resamples: 30 utterances whose sorted string ids and sorted cluster ids
    order them differently, 2 recordings each, 2 locales."""
    rng = np.random.default_rng(0)
    golds = [
        SLUExample(
            id=f"u{u}-r{r}",
            locale="en-US" if u % 2 else "fr-FR",
            text="words",
            scenario=("alarm", "weather", "music")[u % 3],
            action="set",
            entities=(Entity("time", "five"),) if u % 4 else (),
            audio=f"u{u}-r{r}.flac",
            utterance_id=f"u{u}",
        )
        for u in range(30)
        for r in range(2)
    ]
    predictions = [
        Prediction(g.scenario if rng.random() < 0.5 else "calendar", "set", g.entities, ParseStatus.VALID)
        for g in golds
    ]
    locales = ["en-US", "fr-FR"]
    metric = SLUMetrics(locales, n_resamples=200, seed=0)
    metric.update(
        rows_from_predictions(golds, predictions),
        torch.tensor([locales.index(g.locale) for g in golds]),
        torch.tensor([utterance_cluster_id(g.utterance_id, g.locale) for g in golds]),
    )
    logged = {name: float(value) for name, value in metric.compute().items()}
    rows = [_prediction_row(g, "raw", p, heard=True) for g, p in zip(golds, predictions, strict=True)]
    path = write_jsonl(tmp_path / "predictions_test.jsonl", rows)
    report = score_files(path, path, gold_format="predictions", n_resamples=200, seed=0)
    groups = {"": report.overall, **{f"{locale}/": report.per_locale[locale] for locale in locales}}
    for prefix, group in groups.items():
        for name in ("action_acc", "intent_acc", "entity_f1", "slu_f1"):
            assert group.cis[name] == (logged[f"{prefix}{name}_ci_low"], logged[f"{prefix}{name}_ci_high"])


def test_unknown_gold_format_is_a_clear_error(tmp_path, capsys):
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"utterance": "hello", "label": "greet"}])
    with pytest.raises(DataError, match=r"gold\.jsonl, record line 1: cannot tell the gold format"):
        score_files(gold, SLURP_PRED)
    with pytest.raises(ValueError, match="unknown gold format 'xml'"):
        score_files(SLURP_GOLD, SLURP_PRED, gold_format="xml")
    with pytest.raises(SystemExit) as stop:
        main(["score", "--gold", str(gold), "--pred", str(SLURP_PRED)])
    assert stop.value.code == 2 and "--gold-format" in capsys.readouterr().err


def test_a_gold_entity_with_no_words_is_named_by_file_and_line(tmp_path, capsys):
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold.write_text(
        '{"id": "r1", "locale": "en-US", "text": "x", "scenario": "calendar", "action": "set", '
        '"entities": [{"type": "date", "filler": ""}]}\n'
    )
    pred.write_text('{"id": "r1", "scenario": "calendar", "action": "set", "entities": []}\n')
    with pytest.raises(SystemExit) as stop:
        main(["score", "--gold", str(gold), "--pred", str(pred)])
    assert stop.value.code == 2
    assert (
        f"file {gold}, record line 1: entity {{'type': 'date', 'filler': ''}} has an empty"
        in capsys.readouterr().err
    )


def test_predictions_of_both_modalities_for_one_id_need_a_modality(tmp_path, capsys):
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold.write_text(
        '{"id": "r1", "locale": "en-US", "text": "x", "scenario": "alarm", "action": "set", "entities": []}\n'
    )
    rows = [
        {"id": "r1", "modality": "speech", "scenario": "alarm", "action": "query", "entities": []},
        {"id": "r1", "modality": "text", "scenario": "alarm", "action": "set", "entities": []},
    ]
    pred.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(SystemExit) as stop:
        main(["score", "--gold", str(gold), "--pred", str(pred)])
    assert stop.value.code == 2
    assert "several modalities (speech, text)" in capsys.readouterr().err
    for modality, accuracy in (("speech", 0.0), ("text", 1.0)):
        report = score_files(gold, pred, modality=modality, n_resamples=0)
        assert report.metrics["intent_acc"] == accuracy


def test_a_byte_order_mark_is_read_past_and_an_empty_gold_file_is_named(tmp_path, capsys):
    row = (
        '{"id": "r1", "locale": "en-US", "text": "x", "scenario": "alarm", "action": "set", "entities": []}\n'
    )
    gold, pred, empty = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl", tmp_path / "empty.jsonl"
    gold.write_text("\ufeff" + row, encoding="utf-8")
    pred.write_text("\ufeff" + row, encoding="utf-8")
    assert score_files(gold, pred, n_resamples=0).metrics["intent_acc"] == 1.0
    empty.write_text("\n")
    with pytest.raises(SystemExit):
        main(["score", "--gold", str(empty), "--pred", str(pred)])
    assert f"file {empty}: the gold file has no lines" in capsys.readouterr().err


def test_covered_only_figures_are_na_when_nothing_was_predicted(tmp_path, capsys):
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold.write_text(
        '{"id": "r1", "locale": "en-US", "text": "x", "scenario": "a", "action": "b", "entities": []}\n'
    )
    pred.write_text('{"id": "other", "scenario": "a", "action": "b", "entities": []}\n')
    main(["score", "--gold", str(gold), "--pred", str(pred), "--resamples", "0"])
    table = capsys.readouterr().out
    assert "covered only (n=0, official)" in table
    assert "intent_acc     0.0000" in table and table.count("n/a") == len(SHOWN_METRICS)


def perfect(gold: SLUExample) -> Prediction:
    return Prediction(gold.scenario, gold.action, gold.entities, ParseStatus.VALID)


def test_a_slurp_run_on_both_modalities_is_refused_though_its_ids_never_meet(tmp_path):
    """SLURP keys speech rows by recording and text rows by slurp_id: without --modality the two
    would be pooled (or the text rows dropped as unmatched against test.jsonl)."""
    utterances = read_slurp(SLURP_GOLD, modality="text")
    recordings = read_slurp(SLURP_GOLD, SLURP_GOLD.parent, modality="speech")
    rows = [_prediction_row(e, "raw", perfect(e), heard=True) for e in recordings]
    rows += [_prediction_row(e, "raw", perfect(e), heard=False) for e in utterances]
    path = write_jsonl(tmp_path / "predictions_test.jsonl", rows)
    for gold in (path, SLURP_GOLD):
        with pytest.raises(DataError, match=r"several modalities \(speech, text\).*--modality"):
            score_files(gold, path, n_resamples=0)
    speech_only = write_jsonl(tmp_path / "speech.jsonl", rows[: len(recordings)])
    with pytest.raises(DataError, match=r"predictions_test.jsonl: holds predictions of several modalities"):
        score_files(path, speech_only, n_resamples=0)  # the run's file as gold: its text rows, unmatched
    speech = score_files(SLURP_GOLD, path, modality="speech", n_resamples=0)
    assert speech.unit == "recording" and speech.metrics["intent_acc"] == 1.0
    assert speech.coverage.missing == speech.coverage.unmatched_predictions == 0


def test_transcript_rows_of_a_slurp_run_are_read_by_the_official_load_gold_mode(tmp_path):
    """The official scorer's --load-gold keys predictions by ``example.pop("slurp_id")`` and gold by
    ``str(slurp_id)``; its default mode keys them by ``file``, the recording."""
    release = [json.loads(line) for line in SLURP_GOLD.read_text().splitlines()]
    utterances = read_slurp(SLURP_GOLD, modality="text")
    recordings = read_slurp(SLURP_GOLD, SLURP_GOLD.parent, modality="speech")
    text_rows = [_prediction_row(e, "raw", perfect(e), heard=False) for e in utterances]
    assert {row.pop("slurp_id") for row in map(dict, text_rows)} == {str(row["slurp_id"]) for row in release}
    speech_rows = [_prediction_row(e, "raw", perfect(e), heard=True) for e in recordings]
    assert not any("slurp_id" in row for row in speech_rows)
    assert {row["file"] for row in speech_rows} == {r["file"] for row in release for r in row["recordings"]}
    path = write_jsonl(tmp_path / "predictions_test.jsonl", text_rows)
    report = score_files(SLURP_GOLD, path, n_resamples=0)  # and `score` still reads them
    assert report.unit == "utterance" and set(perfect_metrics(report).values()) == {1.0}


def test_a_cut_off_line_never_displaces_the_real_prediction_of_its_key(tmp_path):
    """A line that is not JSON is scored wrong for its key only where no well-formed line predicts
    that key, and is left out when its text shows another modality than the one scored."""
    gold = manifest(tmp_path, example("u1"), example("u2"), example("u3"))
    predictions = write_jsonl(
        tmp_path / "pred.jsonl",
        [
            '{"file": "u1", "locale": "en-US", "modality": "text", "scenario": "calendar", "act',
            '{"file": "u2", "locale": "en-U',  # its modality cannot be read
            pred("u1", "calendar", "set", modality="speech"),
            pred("u2", "calendar", "set", modality="speech"),
            '{"file": "u3", "modality": "speech", "scen',  # no other line for u3: scored wrong
        ],
    )
    report = score_files(gold, predictions, modality="speech", n_resamples=0)
    assert report.metrics["intent_acc"] == pytest.approx(2 / 3)
    assert report.coverage.malformed_lines == 3 and report.coverage.duplicate_predictions == 1
    assert report.coverage.missing == 0
    assert report.warnings[0].startswith("line 1: ") and "a text line, left out" in report.warnings[0]
    assert "line 2: another prediction for 'u2'; the well-formed one is kept" in report.warnings


def test_speech_answers_scored_on_a_manifest_leave_its_rows_without_audio_out(tmp_path):
    """``predict`` answers a manifest's rows with audio and says so (``modality: speech``): its rows
    without audio were never asked, and scoring them as missing answers halved every number."""
    from dataclasses import replace

    heard = [replace(example(f"s{i}"), audio=f"audio/s{i}.wav") for i in range(3)]
    gold = manifest(tmp_path, *heard, example("t0"), example("t1"))
    speech = write_jsonl(tmp_path / "pred.jsonl", as_predictions(heard, modality="speech"))
    report = score_files(gold, speech, n_resamples=0)
    assert report.coverage.gold_items == 3 and report.coverage.missing == 0
    assert report.metrics["intent_acc"] == 1.0
    assert "2 manifest rows without audio are not speech gold items, left out: 't0', 't1'" in report.warnings
    unlabelled = write_jsonl(tmp_path / "old.jsonl", as_predictions(heard))  # no modality: every row
    assert score_files(gold, unlabelled, n_resamples=0).coverage.missing == 2
    assert score_files(gold, unlabelled, n_resamples=0, modality="speech").coverage.gold_items == 3


def test_strict_scoring_empties_only_the_answers_json_loads_would_refuse(tmp_path, capsys):
    golds = [example(f"k{i}", ("date", "friday")) for i in range(6)]
    statuses = ["valid", "trailing", "missing_keys", "truncated", "malformed", "leading"]
    rows = [
        pred(gold.id, "calendar", "set", ("date", "friday"), status=status)
        for gold, status in zip(golds, statuses, strict=True)
    ]
    path = write_jsonl(tmp_path / "pred.jsonl", rows)
    gold = manifest(tmp_path, *golds)
    lenient = score_files(gold, path, n_resamples=0)
    strict = score_files(gold, path, n_resamples=0, strict=True)
    assert lenient.metrics["intent_acc"] == 1.0 and lenient.metrics["entity_f1"] == 1.0
    assert strict.metrics["intent_acc"] == pytest.approx(2 / 6)  # the four statuses emptied
    assert strict.metrics["entity_f1"] == pytest.approx(2 * 2 / (2 + 6))  # precision 1, recall 2/6
    assert strict.metrics["invalid_rate"] == lenient.metrics["invalid_rate"] == pytest.approx(5 / 6)
    unlabelled = write_jsonl(tmp_path / "old.jsonl", [pred(g.id, "calendar", "set") for g in golds])
    assert score_files(gold, unlabelled, n_resamples=0, strict=True).metrics["intent_acc"] == 1.0
    main(["score", "--gold", str(gold), "--pred", str(path), "--resamples", "0", "--strict", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["strict"] is True and report["metrics"]["intent_acc"] == pytest.approx(2 / 6)
    main(["score", "--gold", str(gold), "--pred", str(path), "--resamples", "0", "--strict"])
    assert (
        "(strict: truncated, malformed, leading and trailing answers scored as empty)"
        in capsys.readouterr().out
    )
