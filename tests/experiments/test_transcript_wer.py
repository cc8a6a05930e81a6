"""compare-transcripts: each transcript file's WER and its paired difference from the first."""

import pytest

from slu_lightning.cli import main as cli
from slu_lightning.data.readers.manifest import write_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.experiments.cascade import EMPTY

GOLD = {
    "a": ("en-US", "wake me up at seven"),
    "b": ("en-US", "play some jazz"),
    "c": ("fr-FR", "allume la lumière"),
}


def transcripts(path, written: dict[str, str], gold: dict[str, tuple[str, str]] = GOLD):
    rows = [
        SLUExample(
            id=i, locale=gold[i][0], text=text, scenario="s", action="a", meta={"gold_text": gold[i][1]}
        )
        for i, text in written.items()
    ]
    return write_manifest(path, rows)


def test_each_file_is_scored_against_the_references_and_the_first_file(tmp_path, capsys):
    exact = transcripts(tmp_path / "exact.jsonl", {i: gold for i, (_, gold) in GOLD.items()})
    worse = transcripts(
        tmp_path / "worse.jsonl", {"c": "allume la lumière", "a": "wake me at seven", "b": EMPTY}
    )  # one word and three lost: 4 errors in 11 words, rows in another order
    cli(["compare-transcripts", str(exact), str(worse)])
    out = capsys.readouterr().out
    assert "| worse | 0.364 | +0.364 |" in out
    assert "WER of exact: 0.000" in out
    assert "| en-US | 0.000 | 0.500 |" in out and "| fr-FR | 0.000 | 0.000 |" in out


def test_files_of_other_recordings_or_without_references_are_refused(tmp_path, capsys):
    first = transcripts(tmp_path / "first.jsonl", {"a": "wake me up", "b": "play jazz"})
    other = transcripts(tmp_path / "other.jsonl", {"a": "wake me up", "c": "allume"})
    with pytest.raises(SystemExit):
        cli(["compare-transcripts", str(first), str(other)])
    assert "other.jsonl: transcribes other recordings than" in capsys.readouterr().err
    plain = tmp_path / "plain.jsonl"
    write_manifest(plain, [SLUExample(id="a", locale="en-US", text="x", scenario="s", action="a")])
    with pytest.raises(SystemExit):
        cli(["compare-transcripts", str(first), str(plain)])
    assert "plain.jsonl, record a: no meta.gold_text" in capsys.readouterr().err


def test_files_of_the_same_ids_over_other_references_are_refused(tmp_path, capsys):
    first = transcripts(tmp_path / "first.jsonl", {"a": "wake me up", "b": "play jazz"})
    elsewhere = {**GOLD, "b": ("en-US", "play some blues")}  # the same id, another sentence
    other = transcripts(tmp_path / "other.jsonl", {"a": "wake me up", "b": "play jazz"}, elsewhere)
    with pytest.raises(SystemExit):
        cli(["compare-transcripts", str(first), str(other)])
    assert "other.jsonl: has other references or locales than" in capsys.readouterr().err


def test_one_file_named_twice_is_refused(tmp_path, capsys):
    first = transcripts(tmp_path / "first.jsonl", {"a": "wake me up"})
    with pytest.raises(SystemExit):
        cli(["compare-transcripts", str(first), str(first)])
    assert "each once" in capsys.readouterr().err


def test_recordings_of_one_utterance_are_resampled_together(tmp_path, capsys):
    """Four recordings per utterance, transcribed alike, give the interval of one recording each."""
    words = "one two three four five six".split()
    gold = {f"u{k}": ("en-US", " ".join(words)) for k in range(30)}
    worse = {i: " ".join(words[: 6 - k % 4]) for k, i in enumerate(gold)}  # 0-3 words lost
    tables = {}
    for copies in (1, 4):
        rows = {
            name: [
                SLUExample(
                    id=f"{i}-rec{r}",
                    utterance_id=i,
                    locale="en-US",
                    text=text,
                    scenario="s",
                    action="a",
                    meta={"gold_text": gold[i][1]},
                )
                for i, text in written.items()
                for r in range(copies)
            ]
            for name, written in (("exact", {i: g for i, (_, g) in gold.items()}), ("worse", worse))
        }
        paths = [str(write_manifest(tmp_path / f"{copies}" / f"{name}.jsonl", r)) for name, r in rows.items()]
        cli(["compare-transcripts", *paths])
        tables[copies] = capsys.readouterr().out.split("\n\nWER of")[0]
    assert "paired over 30 utterances (2000 bootstrap resamples)" in tables[1]
    assert tables[4] == tables[1].replace("30 utterances", "30 utterances (120 recordings)")
