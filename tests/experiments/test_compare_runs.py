"""``slu-lightning compare-runs``: SLU metrics of test runs on the same examples, paired by id."""

import json

import pytest
import yaml

from slu_lightning.cli import main as cli
from slu_lightning.data.errors import DataError
from slu_lightning.evaluation.scoring import read_run_lines

MODALITY = ["--modality", "speech", "--resamples", "0"]


def write_run(folder, intents_right: int, n: int = 20, ids_from: int = 0):
    """A run folder whose ``n`` speech predictions get the first ``intents_right`` intents right,
    plus text rows the comparison must not read."""
    folder.mkdir()
    rows = []
    for i in range(ids_from, ids_from + n):
        reference = {"text": "wake me up", "scenario": "alarm", "action": "set", "entities": []}
        right = i - ids_from < intents_right
        guess = {
            "scenario": "alarm" if right else "music",
            "action": "set",
            "entities": [],
            "status": "valid",
        }
        for modality in ("speech", "text"):
            rows.append(
                {
                    "id": f"u{i}-{modality}",
                    "utterance_id": f"u{i}",
                    "modality": modality,
                    **guess,
                    "reference": reference,
                }
            )
    (folder / "predictions_test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def write_cascade_run(folder, intents_right: int, n: int = 20):
    """A cascade run folder as ``test`` writes it: one text row per test recording (the ids of
    ``write_run``'s speech rows), its reference text the recogniser's transcript and the gold one in
    ``meta``, and the run config that names ``CascadeCorpus``."""
    folder.mkdir()
    rows = [
        {
            "id": f"u{i}-speech",
            "utterance_id": f"u{i}",
            "modality": "text",
            "scenario": "alarm" if i < intents_right else "music",
            "action": "set",
            "entities": [],
            "status": "valid",
            "meta": {"gold_text": "wake me up", "asr": "tiny-heard"},
            "reference": {"text": "wake me app", "scenario": "alarm", "action": "set", "entities": []},
        }
        for i in range(n)
    ]
    (folder / "predictions_test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    cascade = {"class_path": "slu_lightning.data.corpora.CascadeCorpus"}
    (folder / "config_test.yaml").write_text(yaml.safe_dump({"data": {"init_args": {"corpus": cascade}}}))
    return folder


def table_rows(out: str) -> dict[str, list[str]]:
    return {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
        for line in out.splitlines()
        if line.startswith("| ") and "examples" not in line
    }


def test_each_run_gets_its_metrics_and_its_paired_difference_from_the_first(tmp_path, capsys):
    first, second = write_run(tmp_path / "heldout", 16), write_run(tmp_path / "unheard", 6)
    cli(["compare-runs", str(first), str(second / "predictions_test.jsonl")])
    out = capsys.readouterr().out
    assert "20 speech examples, 20 utterances, paired by id" in out
    rows = table_rows(out)
    baseline, other = rows[str(first)], rows[str(second / "predictions_test.jsonl")]
    assert baseline[0] == other[0] == "20"
    assert baseline[1].startswith("0.800 [") and other[1].startswith("0.300 [")  # intent accuracy
    assert baseline[4] == "-" and other[4].startswith("-0.500 [")
    low, high = (float(x) for x in other[4].split("[")[1].split("]")[0].split(","))
    assert low <= -0.5 <= high < 0 and float(other[4].rsplit("(", 1)[1].rstrip(")")) < 0.05


def test_a_cascade_run_answers_speech_with_its_transcript_rows(tmp_path, capsys):
    """As in ``report``: a cascade hears the test speech through its recogniser, so its text rows
    are compared with an end-to-end run's speech rows; it has no answers on gold transcripts."""
    end_to_end, cascade = write_run(tmp_path / "e2e", 16), write_cascade_run(tmp_path / "cascade", 6)
    cli(["compare-runs", str(end_to_end), str(cascade / "predictions_test.jsonl")])
    out = capsys.readouterr().out
    assert "20 speech examples, 20 utterances, paired by id" in out
    assert table_rows(out)[str(cascade / "predictions_test.jsonl")][1].startswith("0.300 [")
    with pytest.raises(SystemExit):
        cli(["compare-runs", str(end_to_end), str(cascade), "--modality", "text"])
    assert f"file {cascade / 'predictions_test.jsonl'}: a cascade run has no text predictions" in (
        capsys.readouterr().err
    )


def test_runs_of_other_examples_or_without_predictions_are_named(tmp_path, capsys):
    first, shifted = write_run(tmp_path / "a", 10), write_run(tmp_path / "b", 10, ids_from=5)
    (tmp_path / "untested").mkdir()
    for runs, message in (
        ([first, shifted], f"file {shifted}: predicted other examples than {first} (['u0-speech'"),
        ([first, tmp_path / "untested"], f"file {tmp_path / 'untested'}: no predictions_test.jsonl"),
        ([first, tmp_path / "nowhere"], f"file {tmp_path / 'nowhere'}: not found"),
        ([first], "name at least two runs"),
    ):
        with pytest.raises(SystemExit):
            cli(["compare-runs", *map(str, runs)])
        assert message in capsys.readouterr().err


def test_runs_of_the_same_ids_over_other_gold_labels_are_refused(tmp_path, capsys):
    first, other = write_run(tmp_path / "a", 10), write_run(tmp_path / "b", 10)
    path = other / "predictions_test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["reference"] = {**rows[2]["reference"], "scenario": "weather"}  # u1-speech: another utterance
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(SystemExit):
        cli(["compare-runs", str(first), str(other)])
    assert (
        f"file {other}: has other gold labels or locales than {first} for 1 examples"
        in capsys.readouterr().err
    )


def test_a_repeated_id_is_read_as_score_reads_it(tmp_path, capsys, caplog):
    """Of two lines for one example the first is kept, with ``score``'s warning, so compare-runs
    and ``score`` give one number for one file."""
    first, second = write_run(tmp_path / "a", 10), write_run(tmp_path / "b", 10)
    path = second / "predictions_test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    last = next(row for row in reversed(rows) if row["modality"] == "speech")  # u19, wrong
    path.write_text(path.read_text() + json.dumps({**last, "scenario": "alarm"}) + "\n")  # now right
    cli(["compare-runs", str(first), str(path)])
    examples, intent = table_rows(capsys.readouterr().out)[str(path)][:2]
    assert examples == "20" and intent.startswith("0.500 [")  # not 0.550: the last line is not kept
    assert "line 41: another prediction for 'u19-speech'; the first one is kept" in caplog.text
    cli(["score", "--gold", str(first / "predictions_test.jsonl"), "--pred", str(path)] + MODALITY)
    assert "intent_acc     0.5000" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad",
    [
        '{"id": "u1-speech", "modality": "speech", "scenario": "ala',  # cut off: no reference
        '{"id": "u1-speech", "modality": "speech", "scenario": "alarm", "action": "set", "entities": []}',
    ],
)
def test_a_line_that_cannot_be_scored_is_named_not_a_key_error(tmp_path, bad):
    run = write_run(tmp_path / "a", 10)
    path = run / "predictions_test.jsonl"
    lines = path.read_text().splitlines()
    assert json.loads(lines[2])["id"] == "u1-speech"
    path.write_text("\n".join([*lines[:2], bad, *lines[3:]]) + "\n")
    with pytest.raises(DataError, match=r"line 3: not JSON, or no reference") as caught:
        read_run_lines(path, "speech")
    assert caught.value.file == str(path)


def test_strict_scoring_empties_the_answers_json_loads_would_refuse_in_every_run(tmp_path, capsys):
    first, second = write_run(tmp_path / "a", 16), write_run(tmp_path / "b", 16)
    file = second / "predictions_test.jsonl"
    rows = [json.loads(line) for line in file.read_text().splitlines()]
    for row in rows[:8]:  # the first four speech rows (right) and their text rows: repaired answers
        row["status"] = "malformed"
    file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cli(["compare-runs", str(first), str(second)])
    assert table_rows(capsys.readouterr().out)[str(second)][1].startswith("0.800 [")
    cli(["compare-runs", str(first), str(second), "--strict"])
    out = capsys.readouterr().out
    assert "paired by id, strict scoring" in out
    assert table_rows(out)[str(second)][1].startswith("0.600 [")
    assert table_rows(out)[str(second)][4].startswith("-0.200 [")
