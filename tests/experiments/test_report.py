"""``slu-lightning report`` on hand-made cell directories: its numbers are the counting core's."""

import csv
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.evaluation.bootstrap import bootstrap_ci, cluster_ids, utterance_cluster_id
from slu_lightning.evaluation.counts import count_rows, summarize
from slu_lightning.evaluation.metrics import SLUMetrics, rows_from_predictions
from slu_lightning.experiments import report
from slu_lightning.experiments.report import ReportError, main, write_report
from slu_lightning.experiments.report.cells import training_locales
from slu_lightning.task import ParseStatus, Prediction

PROPORTION = "data.init_args.speech_subset.proportion"
SCENARIOS = [("alarm", "set", "time"), ("weather", "query", "place_name"), ("music", "play", "artist_name")]
FILLERS = ["seven", "paris", "adele", "nine"]
SEEDS = (1, 2)
QUALITY = {"text_only": 0.4, "mixed": 0.8}
"""Chance that a cell predicts an utterance right."""


def gold_examples() -> list[SLUExample]:
    """30 utterances x 2 recordings, alternating English and French."""
    examples = []
    for u in range(30):
        scenario, action, kind = SCENARIOS[u % 3]
        entities = (Entity(kind, FILLERS[u % 4]),) if u % 5 else ()
        for r in range(2):
            examples.append(
                SLUExample(
                    id=f"u{u}-r{r}",
                    locale="en-US" if u % 2 else "fr-FR",
                    text="...",
                    scenario=scenario,
                    action=action,
                    entities=entities,
                    utterance_id=f"u{u}",
                    meta={"mic": "headset" if r == 0 else "far_field"},
                )
            )
    return examples


def predict(golds: list[SLUExample], quality: float, seed: int) -> list[Prediction]:
    rng = np.random.default_rng(seed)
    predictions = []
    for gold in golds:
        draw = rng.random()
        if draw < quality:
            predictions.append(Prediction(gold.scenario, gold.action, gold.entities, ParseStatus.VALID))
        elif draw < quality + 0.1:
            predictions.append(Prediction("", "", (), ParseStatus.INVALID))
        else:  # wrong scenario, entity filler off by a few characters
            entities = tuple(Entity(e.type, e.filler + "s") for e in gold.entities)
            predictions.append(Prediction("calendar", gold.action, entities, ParseStatus.VALID))
    return predictions


def prediction_row(gold: SLUExample, prediction: Prediction, modality: str = "speech") -> dict:
    """A line as ``SLUModule`` writes it."""
    return {
        "file": gold.id,
        "id": gold.id,
        "utterance_id": gold.utterance_id,
        "locale": gold.locale,
        "modality": modality,
        **prediction.to_json(),
        "status": prediction.status.value,
        "raw": "",
        "meta": dict(gold.meta),
        "reference": {
            "text": gold.text,
            "scenario": gold.scenario,
            "action": gold.action,
            "entities": [{"type": e.type, "filler": e.filler} for e in gold.entities],
        },
    }


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory):
    """Four finished cells (two regimes x two seeds) and one unfinished, without any training."""
    root = tmp_path_factory.mktemp("report") / "sweep"
    golds = gold_examples()
    records, expected = [], {}
    for regime, proportion in (("text_only", 0), ("mixed", 0.1)):
        for seed in SEEDS:
            name = f"{regime}-p{proportion:g}-seed{seed}"
            values = {"base": f"configs/{regime}.yaml", PROPORTION: proportion, "seed_everything": seed}
            records.append({"name": name, "values": values, "status": "finished"})
            predictions = predict(golds, QUALITY[regime], seed)
            expected[name] = summarize(count_rows(golds, predictions))
            alarm = [i for i, gold in enumerate(golds) if gold.scenario == "alarm"]
            expected[f"{name}/alarm"] = summarize(
                count_rows([golds[i] for i in alarm], [predictions[i] for i in alarm])
            )
            headset = [i for i, gold in enumerate(golds) if gold.meta["mic"] == "headset"]
            expected[f"{name}/headset"] = summarize(
                count_rows([golds[i] for i in headset], [predictions[i] for i in headset])
            )
            run = root / name
            run.mkdir(parents=True)
            text_row = prediction_row(golds[0], predictions[0], modality="text")  # not scored: speech only
            lines = [prediction_row(g, p) for g, p in zip(golds, predictions, strict=True)] + [text_row]
            (run / "predictions_test.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
            (run / "config.yaml").write_text(
                yaml.safe_dump({"data": {"init_args": {"train_locales": ["en-US"]}}})
            )
    records.append(
        {
            "name": "curriculum-p0.1-seed1",
            "status": "failed",
            "values": {"base": "configs/curriculum.yaml", PROPORTION: 0.1, "seed_everything": 1},
        }
    )
    (root / "sweep.json").write_text(json.dumps({"cells": records}))
    main(["--root", str(root), "--resamples", "300"])
    return root, expected


def table(root: Path) -> dict[str, dict[str, str]]:
    with (root / "results.csv").open() as file:
        return {row["base"]: row for row in csv.DictReader(file)}


def test_numbers_are_the_counting_cores_averaged_over_seeds(sweep_root):
    root, expected = sweep_root
    rows = table(root)
    assert list(rows) == ["text_only", "mixed"]  # the baseline row first
    for regime, row in rows.items():
        assert row["seeds"] == "2" and row["n"] == "60" and row[PROPORTION.replace("init_args.", "")]
        for metric in ("intent_acc", "entity_f1", "slu_f1", "invalid_rate"):
            per_seed = [
                expected[f"{regime}-p{row[PROPORTION.replace('init_args.', '')]}-seed{s}"][metric]
                for s in SEEDS
            ]
            assert float(row[metric]) == pytest.approx(np.mean(per_seed), abs=1e-12), (regime, metric)
            if metric != "invalid_rate":
                assert float(row[f"{metric}_std"]) == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
                assert float(row[f"{metric}_ci_low"]) <= float(row[metric]) <= float(row[f"{metric}_ci_high"])


def test_each_row_is_compared_with_the_text_only_baseline_on_the_same_items(sweep_root):
    root, _ = sweep_root
    rows = table(root)
    assert rows["text_only"]["baseline"] == "True" and rows["text_only"]["slu_f1_p"] == ""
    mixed = rows["mixed"]
    for metric in ("intent_acc", "slu_f1"):
        difference = float(mixed[metric]) - float(rows["text_only"][metric])
        assert float(mixed[f"{metric}_diff"]) == pytest.approx(difference, abs=1e-12)
        assert 0 < float(mixed[f"{metric}_diff_ci_low"]) < difference < float(mixed[f"{metric}_diff_ci_high"])
        assert 0 < float(mixed[f"{metric}_p"]) < 0.05  # 0.8 against 0.4 correct: clearly better


def test_markdown_report_error_analysis_and_plot(sweep_root):
    root, expected = sweep_root
    md = (root / "results.md").read_text()
    for section in (
        "| base |",
        "± ",
        "(p=",
        "Not finished, left out: curriculum-p0.1-seed1",
        "## Cross-lingual",
        "average over targets",
        "| fr-FR |",
        "### Invalid outputs",
        "### Per scenario",
        "| alarm |",
        "### Per entity type",
        "| place_name |",
        "alarm → calendar",
    ):
        assert section in md, section
    assert (root / "slu_f1_vs_proportion.png").read_bytes()[:4] == b"\x89PNG"
    alarm = next(line for line in md.splitlines() if line.startswith("| alarm |")).split(" | ")
    for column, regime, proportion in ((2, "text_only", 0), (3, "mixed", 0.1)):
        per_seed = [expected[f"{regime}-p{proportion:g}-seed{s}/alarm"] for s in SEEDS]
        slu_f1, intent_acc = map(float, alarm[column].strip(" |").split(" / "))
        assert slu_f1 == pytest.approx(np.mean([m["slu_f1"] for m in per_seed]), abs=5e-4)
        assert intent_acc == pytest.approx(np.mean([m["intent_acc"] for m in per_seed]), abs=5e-4)


def test_the_per_seed_table_gives_each_seeds_own_numbers(sweep_root):
    root, expected = sweep_root
    md = (root / "results.md").read_text()
    section = md.split("## Per seed\n\n")[1].split("\n\n")[0].splitlines()
    main_header = next(line for line in md.splitlines() if line.endswith("| Δ SLU-F1 (p) |"))
    axes = main_header.split(" | seeds |")[0]  # the per-seed rows read across the main table's axes
    assert section[0] == f"{axes} | seed | intent acc. | entity F1 | SLU-F1 |"
    rows = [line.strip("| ").split(" | ") for line in section[2:]]
    assert [tuple(row[:3]) for row in rows] == [
        (regime, proportion, str(s))
        for regime, proportion in (("text_only", "0"), ("mixed", "0.1"))
        for s in SEEDS
    ]
    for regime, proportion, seed, *numbers in rows:
        cell = expected[f"{regime}-p{proportion}-seed{seed}"]
        assert [float(n) for n in numbers] == pytest.approx(
            [cell["intent_acc"], cell["entity_f1"], cell["slu_f1"]], abs=5e-5
        )


def test_slurp_microphones_are_analysed_separately(sweep_root):
    root, expected = sweep_root
    md = (root / "results.md").read_text()
    assert "### Per microphone" in md and "| far_field |" in md
    headset = next(line for line in md.splitlines() if line.startswith("| headset |")).split(" | ")
    per_seed = [expected[f"mixed-p0.1-seed{s}/headset"] for s in SEEDS]
    slu_f1, _ = map(float, headset[3].strip(" |").split(" / "))
    assert slu_f1 == pytest.approx(np.mean([m["slu_f1"] for m in per_seed]), abs=5e-4)


def test_an_explicit_baseline_and_a_bad_selector(sweep_root, tmp_path, capsys):
    root, _ = sweep_root
    main(
        [
            "--root",
            str(root),
            "--out",
            str(tmp_path),
            "--baseline",
            "base=configs/mixed.yaml",
            "--resamples",
            "50",
        ]
    )
    rows = table(tmp_path)
    assert list(rows) == ["mixed", "text_only"] and float(rows["text_only"]["slu_f1_diff"]) < 0
    with pytest.raises(SystemExit) as stop:
        main(["--root", str(root), "--out", str(tmp_path), "--baseline", "seed_everything=1"])
    assert stop.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(
        ReportError, match=r"--baseline 'base=mixd' matches no row; the rows' values: \{'base': \["
    ):
        write_report(root, tmp_path, baseline="base=mixd", resamples=20)
    with pytest.raises(ReportError, match="nowhere does not exist"):
        write_report(tmp_path / "nowhere", tmp_path)
    with pytest.raises(ReportError, match="no sweep.json in"):
        write_report(tmp_path, tmp_path / "out")


def test_a_backbone_ablation_has_rows_by_arm_a_path_baseline_and_no_proportion_plot(tmp_path):
    """Rows named by the backbone folder's last part; no speech proportion, so no plot is written."""
    golds, key, records = gold_examples(), "model.init_args.backbone", []
    for arm, quality in (("all", 0.8), ("no-align", 0.4)):
        name = f"backbone={arm}"
        records.append(
            {"name": name, "values": {key: f"logs/ablation/backbones/{arm}"}, "status": "finished"}
        )
        predictions = predict(golds, quality, seed=0)
        (tmp_path / name).mkdir()
        lines = [prediction_row(g, p) for g, p in zip(golds, predictions, strict=True)]
        (tmp_path / name / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        recorded = {"data": {"init_args": {"speech_subset": {"proportion": 0.1}}}}  # as every run records one
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(recorded))
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": records}))
    paths = write_report(tmp_path, tmp_path / "out", baseline=f"{key}=all", resamples=50)
    assert [path.name for path in paths] == ["results.md", "results.csv"]
    assert not (tmp_path / "out" / "slu_f1_vs_proportion.png").exists()
    with (tmp_path / "out" / "results.csv").open() as file:
        rows = {row["model.backbone"]: row for row in csv.DictReader(file)}
    assert rows["all"]["baseline"] == "True" and float(rows["no-align"]["intent_acc_diff"]) < 0
    md = (tmp_path / "out" / "results.md").read_text()  # every arm trained on both locales
    assert "## SLU-F1 per locale" in md and "| fr-FR |" in md
    assert "Cross-lingual" not in md and "average over targets" not in md


def test_a_cascade_cell_answers_speech_with_its_transcript_rows_and_is_not_the_default_baseline(tmp_path):
    """Its text rows (one per recording, the recogniser's transcripts) are its speech answers; the
    text-only row stays the baseline though both have speech proportion 0."""
    golds, records = gold_examples(), []
    cascade = {"data": {"init_args": {"corpus": {"class_path": "slu_lightning.data.corpora.CascadeCorpus"}}}}
    for regime, modality, quality, scored in (("text_only", "speech", 0.4, 40), ("cascade", "text", 0.9, 60)):
        name = f"{regime}-p0"
        records.append({"name": name, "values": {"base": f"configs/{regime}.yaml", PROPORTION: 0}})
        predictions = predict(golds, quality, seed=0)
        lines = [prediction_row(g, p, modality) for g, p in zip(golds[:scored], predictions, strict=False)]
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(cascade if regime == "cascade" else {}))
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": records}))
    write_report(tmp_path, tmp_path / "speech", resamples=200)
    rows = table(tmp_path / "speech")
    assert rows["text_only"]["baseline"] == "True" and rows["cascade"]["baseline"] == "False"
    assert (rows["text_only"]["n"], rows["cascade"]["n"]) == ("40", "60")
    assert float(rows["cascade"]["intent_acc_diff"]) > 0 and float(rows["cascade"]["intent_acc_p"]) < 0.05
    with pytest.raises(ReportError, match="no finished cell .* has text predictions"):
        write_report(tmp_path, tmp_path / "text", modality="text", resamples=50)


def test_a_finished_cell_without_rows_to_score_is_named_in_the_left_out_note_with_its_reason(tmp_path):
    """A cascade has no rows on gold transcripts, a run tested on transcripts only has no speech
    rows, a French run no English rows: each is named with why it is left out, not dropped unsaid."""
    golds = gold_examples()
    cascade = {"data": {"init_args": {"corpus": {"class_path": "slu_lightning.data.corpora.CascadeCorpus"}}}}
    cells = {
        "text_only-p0": (golds, ("speech", "text"), {}),
        "cascade-p0": (golds, ("text",), cascade),
        "text_tested-p0": (golds, ("text",), {}),
        "french-p0": ([g for g in golds if g.locale == "fr-FR"], ("speech", "text"), {}),
    }
    records = []
    for name, (tested, modalities, config) in cells.items():
        base = name.split("-")[0]
        records.append({"name": name, "values": {"base": f"configs/{base}.yaml", PROPORTION: 0}})
        predictions = predict(tested, 0.6, seed=0)
        lines = [
            prediction_row(g, p, m) for m in modalities for g, p in zip(tested, predictions, strict=True)
        ]
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": records}))
    no_speech = "No speech predictions, left out: text_tested-p0."
    for modality, locales, left_out in (
        ("speech", None, [no_speech]),
        (
            "text",
            None,
            ["A cascade, no rows on gold transcripts (its text rows answer speech), left out: cascade-p0."],
        ),
        ("speech", ["en-US"], [no_speech, "No rows of the locales en-US, left out: french-p0."]),
    ):
        out = tmp_path / f"{modality}-{locales}"
        write_report(tmp_path, out, modality=modality, resamples=20, locales=locales)
        notes = (out / "results.md").read_text().split("\n\n")[1].splitlines()
        assert [note.removeprefix("- ") for note in notes if "left out" in note] == left_out


def test_training_locales_are_read_where_the_papers_cross_lingual_configs_set_them(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    paper = {
        name: training_locales(yaml.safe_load(Path(f"configs/paper/{name}.yaml").read_text()))
        for name in ("speech_massive_fr_curriculum", "speech_massive_fewshot_de", "slurp_curriculum")
    }
    assert paper == {
        "speech_massive_fr_curriculum": ["fr-FR"],  # on the corpus
        "speech_massive_fewshot_de": ["fr-FR", "de-DE"],  # on each part of a CombinedCorpus
        "slurp_curriculum": [],  # every locale its files hold
    }
    corpus = {"class_path": "SpeechMassiveCorpus", "init_args": {"train_locales": ["fr-FR", "de-DE"]}}
    filtered = {"data": {"init_args": {"corpus": corpus, "train_locales": ["de-DE"]}}}
    assert training_locales(filtered) == ["de-DE"]  # the data module's filter keeps one of them
    unset = {"data": {"init_args": {"corpus": {"class_path": "SpeechMassiveCorpus", "init_args": {}}}}}
    assert training_locales(unset) == ["fr-FR"]  # the corpus's default


def test_the_cross_lingual_section_reads_train_locales_from_the_corpus_as_the_paper_sets_them(tmp_path):
    """A run trained on French Speech-MASSIVE and a few-shot run that adds English text, their
    configs in the shape the paper's Speech-MASSIVE configs save."""
    golds, records = gold_examples(), []
    french = {
        "class_path": "slu_lightning.data.corpora.SpeechMassiveCorpus",
        "init_args": {"train_locales": ["fr-FR"]},
    }
    english = {
        "class_path": "slu_lightning.data.corpora.MassiveTextCorpus",
        "init_args": {"locales": ["en-US"]},
    }
    combined = {
        "class_path": "slu_lightning.data.corpora.CombinedCorpus",
        "init_args": {"parts": [french, english]},
    }
    expected = {}
    for regime, corpus in (("zero_shot", french), ("few_shot", combined)):
        records.append({"name": regime, "values": {"base": f"configs/{regime}.yaml"}, "status": "finished"})
        predictions = predict(golds, 0.6, seed=len(records))
        english_items = [i for i, gold in enumerate(golds) if gold.locale == "en-US"]
        expected[regime] = summarize(
            count_rows([golds[i] for i in english_items], [predictions[i] for i in english_items])
        )["slu_f1"]
        lines = [prediction_row(g, p) for g, p in zip(golds, predictions, strict=True)]
        (tmp_path / regime).mkdir()
        (tmp_path / regime / "predictions_test.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in lines)
        )
        config = {"data": {"init_args": {"corpus": corpus, "train_locales": None}}}
        (tmp_path / regime / "config_test.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": records}))
    write_report(tmp_path, tmp_path / "out", resamples=20)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Cross-lingual: intent accuracy, entity F1 and SLU-F1 per locale" in md
    slu_f1 = md.split("### SLU-F1 per locale\n\n")[1].split("\n\n")[0]
    lines = {line.split(" | ")[0]: line.strip("| ").split(" | ")[1:] for line in slu_f1.splitlines()}
    assert "| **relative to baseline**" not in lines  # no speech proportion axis: no baseline row
    assert lines["| **train locales**"] == ["fr-FR", "fr-FR+en-US"]
    average = lines["| **average over targets**"]
    assert float(average[0].split()[0]) == pytest.approx(expected["zero_shot"], abs=5e-5)  # English alone
    assert average[1] == "—"  # the few-shot run trained on both locales: no target left


def test_a_one_seed_rows_intervals_are_those_its_test_logged(tmp_path):
    """``SLUMetrics`` gets the cluster ids ``SLUModule`` gives it; the report, on the same rows,
    resamples and seed, must draw the same utterances."""
    golds = gold_examples()
    predictions = predict(golds, 0.6, seed=0)
    metric = SLUMetrics(["en-US", "fr-FR"], n_resamples=300, seed=0)
    metric.update(
        rows_from_predictions(golds, predictions),
        torch.tensor([("en-US", "fr-FR").index(g.locale) for g in golds]),
        torch.tensor([utterance_cluster_id(g.utterance_id, g.locale) for g in golds]),
    )
    logged = {name: float(value) for name, value in metric.compute().items()}
    (tmp_path / "cell").mkdir()
    lines = [prediction_row(g, p) for g, p in zip(golds, predictions, strict=True)]
    (tmp_path / "cell" / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "sweep.json").write_text(
        json.dumps({"cells": [{"name": "cell", "values": {"seed_everything": 0}}]})
    )
    write_report(tmp_path, tmp_path / "out", resamples=300, seed=0)
    (row,) = csv.DictReader((tmp_path / "out" / "results.csv").open())
    for name in ("intent_acc", "entity_f1", "slu_f1"):
        assert (float(row[f"{name}_ci_low"]), float(row[f"{name}_ci_high"])) == (
            logged[f"{name}_ci_low"],
            logged[f"{name}_ci_high"],
        ), name


def test_a_breakdowns_n_counts_the_items_any_seed_scored_in_the_category(tmp_path):
    """An entity type that only the second seed predicts (on 3 recordings that have no gold entity
    of it) is scored on those 3 items, not on the first seed's 0; a gold type on its gold items."""
    golds = gold_examples()
    right = [Prediction(g.scenario, g.action, g.entities, ParseStatus.VALID) for g in golds]
    spurious = [replace(p, entities=(*p.entities, Entity("colour", "red"))) for p in right[:3]]
    records = []
    for seed, predictions in ((1, right), (2, spurious + right[3:])):
        name = f"seed{seed}"
        records.append({"name": name, "values": {"seed_everything": seed}})
        lines = [prediction_row(g, p) for g, p in zip(golds, predictions, strict=True)]
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": records}))
    write_report(tmp_path, tmp_path / "out", resamples=20)
    md = (tmp_path / "out" / "results.md").read_text()
    types = md.split("### Per entity type: SLU-F1 / entity F1\n\n")[1].split("\n\n")[0].splitlines()
    n = {line.split(" | ")[0].strip("| "): line.split(" | ")[1] for line in types[2:]}
    assert n["colour"] == "3"
    assert n["time"] == str(sum(any(e.type == "time" for e in g.entities) for g in golds))


def test_a_repeated_key_in_a_cell_is_read_as_score_reads_it(tmp_path, caplog):
    """Of two lines for one example the first is kept, with ``score``'s warning: never scored twice
    (n = 61 for 60 items) nor replaced by the last line."""
    golds = gold_examples()
    predictions = predict(golds, 0.6, seed=0)
    lines = [prediction_row(g, p) for g, p in zip(golds, predictions, strict=True)]
    right = Prediction(golds[-1].scenario, golds[-1].action, golds[-1].entities, ParseStatus.VALID)
    wrong = Prediction("", "", (), ParseStatus.INVALID)
    lines[-1] = prediction_row(golds[-1], wrong)
    lines.append(prediction_row(golds[-1], right))  # a second line for the last recording
    (tmp_path / "cell").mkdir()
    (tmp_path / "cell" / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": [{"name": "cell", "values": {}}]}))
    write_report(tmp_path, tmp_path / "out", resamples=20)
    (row,) = csv.DictReader((tmp_path / "out" / "results.csv").open())
    expected = summarize(count_rows(golds, [*predictions[:-1], wrong]))
    assert row["n"] == "60" and float(row["intent_acc"]) == pytest.approx(expected["intent_acc"])
    assert f"line 61: another prediction for {golds[-1].id!r}; the first one is kept" in caplog.text


def test_strict_scoring_is_applied_to_every_cell_and_said_in_the_report(tmp_path):
    golds = gold_examples()
    predictions = predict(golds, 0.6, seed=0)
    repaired = [
        Prediction(p.scenario, p.action, p.entities, ParseStatus.MALFORMED) if i % 4 == 0 else p
        for i, p in enumerate(predictions)
    ]
    lines = [prediction_row(g, p) for g, p in zip(golds, repaired, strict=True)]
    (tmp_path / "cell").mkdir()
    (tmp_path / "cell" / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": [{"name": "cell", "values": {}}]}))
    emptied = [Prediction("", "", (), p.status) if i % 4 == 0 else p for i, p in enumerate(repaired)]
    for strict, expected in ((False, repaired), (True, emptied)):
        out = tmp_path / f"strict-{strict}"
        main(["--root", str(tmp_path), "--out", str(out), "--resamples", "20", *(["--strict"] * strict)])
        (row,) = csv.DictReader((out / "results.csv").open())
        assert float(row["slu_f1"]) == pytest.approx(summarize(count_rows(golds, expected))["slu_f1"])
        assert ("Strict scoring" in (out / "results.md").read_text()) is strict
    lenient, strict = (
        float(next(csv.DictReader((tmp_path / f"strict-{s}" / "results.csv").open()))["intent_acc"])
        for s in (False, True)
    )
    assert strict < lenient


LOCALES = ("fr-FR", "en-US", "de-DE")
CROSSLINGUAL = {"text_only": (0, ["fr-FR"]), "mixed": (0.1, ["fr-FR"]), "few_shot": (0.1, ["fr-FR", "de-DE"])}
"""The study's Speech-MASSIVE grid in small: regime to (speech proportion, train locales)."""


def expected_metrics(
    golds: list[SLUExample], by_seed: list[list[Prediction]], locales: tuple[str, ...]
) -> dict:
    """The counting core's metrics on the rows of ``locales``, averaged over seeds."""
    keep = [i for i, gold in enumerate(golds) if gold.locale in locales]
    per_seed = [summarize(count_rows([golds[i] for i in keep], [p[i] for i in keep])) for p in by_seed]
    return {name: float(np.mean([m[name] for m in per_seed])) for name in per_seed[0]} | {"n": len(keep)}


@pytest.fixture(scope="module")
def crosslingual_root(tmp_path_factory):
    """Train on French, test on three locales: a text-only baseline, a mixed row and a few-shot row
    that also trains on German text, two seeds each, their configs as the paper's save them."""
    root = tmp_path_factory.mktemp("crosslingual")
    golds = [replace(g, locale=LOCALES[int(g.utterance_id[1:]) // 3 % 3]) for g in gold_examples()]
    records, predictions = [], {}
    for regime, (proportion, train) in CROSSLINGUAL.items():
        parts = [
            {
                "class_path": "slu_lightning.data.corpora.SpeechMassiveCorpus",
                "init_args": {"train_locales": ["fr-FR"]},
            },
            *(
                {
                    "class_path": "slu_lightning.data.corpora.MassiveTextCorpus",
                    "init_args": {"locales": [locale]},
                }
                for locale in train[1:]
            ),
        ]
        corpus = (
            parts[0] if len(parts) == 1 else {"class_path": "CombinedCorpus", "init_args": {"parts": parts}}
        )
        predictions[regime] = [predict(golds, QUALITY.get(regime, 0.6), seed) for seed in SEEDS]
        for seed, predicted in zip(SEEDS, predictions[regime], strict=True):
            name = f"{regime}-seed{seed}"
            values = {"base": f"configs/{regime}.yaml", PROPORTION: proportion, "seed_everything": seed}
            records.append({"name": name, "values": values, "status": "finished"})
            (root / name).mkdir()
            lines = [prediction_row(g, p) for g, p in zip(golds, predicted, strict=True)]
            (root / name / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
            config = {"data": {"init_args": {"corpus": corpus}}}
            (root / name / "config_test.yaml").write_text(yaml.safe_dump(config))
    (root / "sweep.json").write_text(json.dumps({"cells": records}))
    return root, golds, predictions


def test_locales_keep_only_their_rows_in_every_table_the_plot_and_the_differences(
    crosslingual_root, tmp_path, monkeypatch
):
    """The study's main table is French alone: ``--locales fr-FR`` scores the French rows only."""
    root, golds, predictions = crosslingual_root
    plotted = {}

    def record_plot(scores, keys, path):
        plotted.update({score.group.label: score.point["slu_f1"] for score in scores})
        return plot_slu_f1(scores, keys, path)

    plot_slu_f1 = report.plot_slu_f1
    monkeypatch.setattr(report, "plot_slu_f1", record_plot)
    paths = write_report(root, tmp_path, resamples=50, locales=["fr-FR"])
    assert [path.name for path in paths] == ["results.md", "results.csv", "slu_f1_vs_proportion.png"]
    rows = table(tmp_path)
    french = {regime: expected_metrics(golds, predictions[regime], ("fr-FR",)) for regime in CROSSLINGUAL}
    for regime, row in rows.items():
        assert row["n"] == str(french[regime]["n"]) == "24"  # 12 French utterances x 2 recordings
        for metric in ("intent_acc", "entity_f1", "slu_f1"):
            assert float(row[metric]) == pytest.approx(french[regime][metric], abs=1e-12), (regime, metric)
    for regime in ("mixed", "few_shot"):
        difference = french[regime]["slu_f1"] - french["text_only"]["slu_f1"]
        assert float(rows[regime]["slu_f1_diff"]) == pytest.approx(difference, abs=1e-12)
    assert sorted(plotted.values()) == pytest.approx(sorted(m["slu_f1"] for m in french.values()), abs=1e-12)
    md = (tmp_path / "results.md").read_text()
    assert "- Locales: fr-FR only (`--locales`)" in md
    assert "per locale" not in md  # one locale left: no per-locale table


def test_locales_from_the_command_line_and_an_unknown_locale(crosslingual_root, tmp_path, capsys):
    root, golds, predictions = crosslingual_root
    main(["--root", str(root), "--out", str(tmp_path), "--locales", "de-DE,fr-FR", "--resamples", "20"])
    rows = table(tmp_path)
    kept = expected_metrics(golds, predictions["mixed"], ("de-DE", "fr-FR"))
    assert rows["mixed"]["n"] == "42" and float(rows["mixed"]["slu_f1"]) == pytest.approx(kept["slu_f1"])
    md = (tmp_path / "results.md").read_text()
    assert "- Locales: de-DE, fr-FR only" in md and "| de-DE |" in md and "| en-US |" not in md
    with pytest.raises(
        ReportError,
        match=r"--locales xx-XX: in no finished cell's speech rows; the locales present: de-DE, en-US, fr-FR",
    ):
        write_report(root, tmp_path, locales=["fr-FR", "xx-XX"])
    with pytest.raises(SystemExit) as stop:
        main(["--root", str(root), "--out", str(tmp_path), "--locales", ","])
    assert stop.value.code == 2 and "expected locales as L1[,L2]" in capsys.readouterr().err


def section_table(md: str, heading: str) -> dict[str, list[str]]:
    """The first column to the other cells of the markdown table under ``heading``."""
    lines = md.split(f"{heading}\n\n")[1].split("\n\n")[0].splitlines()
    return {line.strip("| ").split(" | ")[0]: line.strip("| ").split(" | ")[1:] for line in lines}


def test_the_cross_lingual_section_gives_each_metric_per_locale_its_target_average_and_relative_gain(
    crosslingual_root, tmp_path
):
    """Intent accuracy, entity F1 and SLU-F1 per locale; each row's unweighted average over the
    locales it did not train on; and that average's relative change from the baseline's average
    over the same locales (the study's "+20-33 % relative")."""
    root, golds, predictions = crosslingual_root
    write_report(root, tmp_path, resamples=20)
    md = (tmp_path / "results.md").read_text()
    assert "## Cross-lingual: intent accuracy, entity F1 and SLU-F1 per locale" in md
    regimes = list(CROSSLINGUAL)  # the baseline first, then sweep order
    per_locale = {
        (regime, locale): expected_metrics(golds, predictions[regime], (locale,))
        for regime in regimes
        for locale in LOCALES
    }
    for metric, heading in (("intent_acc", "Intent acc."), ("entity_f1", "Entity F1"), ("slu_f1", "SLU-F1")):
        rows = section_table(md, f"### {heading} per locale")
        assert list(rows)[2:5] == ["de-DE", "en-US", "fr-FR"]
        for locale in LOCALES:
            printed = [float(cell) for cell in rows[locale]]
            assert printed == pytest.approx([per_locale[r, locale][metric] for r in regimes], abs=5e-5)
        assert rows["**train locales**"] == ["fr-FR", "fr-FR", "fr-FR+de-DE"]
        targets = {"text_only": ("en-US", "de-DE"), "mixed": ("en-US", "de-DE"), "few_shot": ("en-US",)}
        averages = [np.mean([per_locale[r, locale][metric] for locale in targets[r]]) for r in regimes]
        printed = [
            cell.replace("[", "").replace(",", "").replace("]", "").split()
            for cell in rows["**average over targets**"]
        ]
        assert [float(point) for point, _, _ in printed] == pytest.approx(averages, abs=5e-5)
        assert all(float(low) <= float(point) <= float(high) for point, low, high in printed)
        relative = rows["**relative to baseline**"]
        assert relative[0] == "baseline" and all(" % [" in cell for cell in relative[1:])
        baseline_on_same_targets = [
            np.mean([per_locale["text_only", locale][metric] for locale in targets[r]]) for r in regimes[1:]
        ]  # the few-shot row is compared on English alone, the locale it did not train on
        gains = [100 * (a / b - 1) for a, b in zip(averages[1:], baseline_on_same_targets, strict=True)]
        assert [float(cell.split()[0]) for cell in relative[1:]] == pytest.approx(gains, abs=0.051)
        assert relative[1].startswith("+")  # mixed (0.8 right) against text only (0.4 right)
        for cell in relative[1:]:  # "+12.3 % [+1.0, +25.0]": the change inside its interval
            point, low, high = map(float, re.fullmatch(r"(\S+) % \[(\S+), (\S+)\]", cell).groups())
            assert low <= point <= high


def test_a_row_that_did_not_score_every_target_has_no_average_beside_the_others(crosslingual_root, tmp_path):
    """An ``eval_locales`` typo leaves a target out of a run's test: its mean over the targets it did
    score is not comparable with the other rows' means over all of them."""
    root, _, _ = crosslingual_root
    copy = tmp_path / "sweep"
    shutil.copytree(root, copy)
    for seed in SEEDS:
        path = copy / f"mixed-seed{seed}" / "predictions_test.jsonl"
        lines = [line for line in path.read_text().splitlines() if json.loads(line)["locale"] != "de-DE"]
        path.write_text("".join(line + "\n" for line in lines))
    write_report(copy, tmp_path / "out", resamples=20)
    rows = section_table((tmp_path / "out" / "results.md").read_text(), "### SLU-F1 per locale")
    assert rows["de-DE"][1] == "—" and rows["**train locales**"][1] == "fr-FR"
    assert rows["**average over targets**"][1] == "—" and rows["**relative to baseline**"][1] == "—"
    assert rows["**average over targets**"][0] != "—"  # the baseline scored both of its targets


def test_the_target_average_has_a_bootstrap_interval_drawing_each_massive_utterance_once(tmp_path):
    """Trained on French, tested on two targets that translate the same 40 utterances and are right
    or wrong on the same ones: the average over targets is no better known than one target, so its
    interval is one target's own, drawn by utterance (counted apart, it would be narrower)."""
    right = np.random.default_rng(3).random(40) < 0.6
    golds, predictions = [], []
    for locale in ("fr-FR", "en-US", "de-DE"):
        for k in range(40):
            gold = SLUExample(f"{locale}/{k}", locale, "...", "alarm", "set", (), source="speech-massive")
            golds.append(gold)
            predictions.append(Prediction("alarm", "set" if right[k] else "query", (), ParseStatus.VALID))
    (tmp_path / "cell").mkdir()
    lines = [prediction_row(g, p) for g, p in zip(golds, predictions, strict=True)]
    (tmp_path / "cell" / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    corpus = {"class_path": "SpeechMassiveCorpus", "init_args": {"train_locales": ["fr-FR"]}}
    (tmp_path / "cell" / "config_test.yaml").write_text(
        yaml.safe_dump({"data": {"init_args": {"corpus": corpus}}})
    )
    record = {"name": "cell", "values": {"base": "configs/fr.yaml"}, "status": "finished"}
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": [record]}))
    write_report(tmp_path, tmp_path / "out", resamples=300, seed=4)
    rows = section_table((tmp_path / "out" / "results.md").read_text(), "### Intent acc. per locale")
    english = [i for i, gold in enumerate(golds) if gold.locale == "en-US"]
    alone = bootstrap_ci(
        count_rows([golds[i] for i in english], [predictions[i] for i in english]),
        cluster_ids([golds[i].id for i in english], ["en-US"] * len(english)),
        n_resamples=300,
        seed=4,
    )["intent_acc"]
    assert rows["**average over targets**"] == [f"{right.mean():.4f} [{alone[0]:.4f}, {alone[1]:.4f}]"]
    assert alone[1] - alone[0] > 0.2  # 40 items' width, not 80's


def test_the_relative_change_of_the_target_average_has_a_paired_interval(crosslingual_root, tmp_path):
    """A row that answers exactly as its baseline changes by 0 % in every paired draw."""
    root, _, _ = crosslingual_root
    copy = tmp_path / "sweep"
    shutil.copytree(root, copy)
    for seed in SEEDS:
        shutil.copy(copy / f"text_only-seed{seed}" / "predictions_test.jsonl", copy / f"mixed-seed{seed}")
    write_report(copy, tmp_path / "out", resamples=50)
    rows = section_table((tmp_path / "out" / "results.md").read_text(), "### SLU-F1 per locale")
    assert rows["**relative to baseline**"][:2] == ["baseline", "+0.0 % [+0.0, +0.0]"]
    low, high = map(
        float, re.fullmatch(r"\S+ % \[(\S+), (\S+)\]", rows["**relative to baseline**"][2]).groups()
    )
    assert low < high  # the few-shot row answers otherwise


def test_cells_tested_on_other_data_with_the_same_ids_are_refused_not_paired(tmp_path):
    """A demo corpus of another seed reuses the ids for other utterances: a row's seeds (or a row
    and its baseline) tested on such data share ids, not examples, and must not be paired by id."""
    golds = gold_examples()
    rotated = {"alarm": "weather", "weather": "music", "music": "alarm"}
    other = [replace(gold, scenario=rotated[gold.scenario]) for gold in golds]
    records = []
    for seed, tested in ((1, golds), (2, other)):
        name = f"mixed-seed{seed}"
        records.append({"name": name, "values": {"base": "configs/mixed.yaml", "seed_everything": seed}})
        lines = [prediction_row(g, p) for g, p in zip(tested, predict(tested, 0.8, seed), strict=True)]
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": records}))
    with pytest.raises(
        ReportError,
        match=r"mixed-seed2 has other gold labels or locales than mixed-seed1 for 60 of their 60 shared "
        r"examples \(e.g. 'u0-r0'\): they were tested on different data",
    ):
        write_report(tmp_path, tmp_path / "out", resamples=20)


def test_a_seed_whose_baseline_cell_is_missing_is_left_out_of_the_difference_and_named(tmp_path):
    """The baseline's seed-3 cell failed: the mixed row is compared with it over seeds 1 and 2,
    rather than not at all, and its seed-3 cell is named as left out of the difference."""
    golds, records, expected = gold_examples(), [], {}
    for regime, proportion in (("text_only", 0), ("mixed", 0.1)):
        for seed in (1, 2, 3):
            name = f"{regime}-seed{seed}"
            values = {"base": f"configs/{regime}.yaml", PROPORTION: proportion, "seed_everything": seed}
            records.append({"name": name, "values": values})
            if (regime, seed) == ("text_only", 3):
                continue  # failed: no predictions
            predictions = predict(golds, QUALITY[regime], seed)
            expected[regime, seed] = summarize(count_rows(golds, predictions))
            lines = [prediction_row(g, p) for g, p in zip(golds, predictions, strict=True)]
            (tmp_path / name).mkdir()
            (tmp_path / name / "predictions_test.jsonl").write_text(
                "".join(json.dumps(x) + "\n" for x in lines)
            )
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": records}))
    write_report(tmp_path, tmp_path / "out", resamples=50)
    mixed = table(tmp_path / "out")["mixed"]
    assert mixed["seeds"] == "3"
    for metric in ("intent_acc", "slu_f1"):
        paired = [expected["mixed", s][metric] - expected["text_only", s][metric] for s in (1, 2)]
        assert float(mixed[f"{metric}_diff"]) == pytest.approx(np.mean(paired), abs=1e-12)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "left out of Δ only: mixed-seed3." in md
