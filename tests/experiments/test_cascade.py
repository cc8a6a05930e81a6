import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from slu_lightning.cli import main as cli
from slu_lightning.data.corpora import CascadeCorpus, DemoCorpus, ManifestCorpus
from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.evaluation.error_rates import corpus_wer
from slu_lightning.experiments.cascade import (
    EMPTY,
    Recogniser,
    ensure_transcripts,
    transcribe_examples,
    transcribe_manifest,
)
from slu_lightning.pretrain.domain_lm import fusion_identity


def transcribe_command(backbone, manifest, out, *options) -> None:
    cli(
        ["transcribe", "--backbone", str(backbone), "--manifest", str(manifest), "--out", str(out)]
        + [str(o) for o in options]
    )


def fused(backbone, texts: list[str]) -> Recogniser:
    """The rescored read-out with a language model of ``texts``."""
    return Recogniser(str(backbone), "rescored", 8, texts)


@pytest.mark.parametrize("readout", ["ctc", "decoder", "rescored"])
def test_transcribe_turns_speech_rows_into_text_rows_with_the_same_labels(
    tiny_backbone, toy_corpus, tmp_path, readout
):
    out = tmp_path / f"{readout}.jsonl"
    summary = transcribe_manifest(Recogniser(str(tiny_backbone), readout, 3), toy_corpus / "test.jsonl", out)
    gold, cascade = read_manifest(toy_corpus / "test.jsonl"), read_manifest(out)
    assert summary["rows"] == len(cascade) == len(gold)
    for original, row in zip(gold, cascade, strict=True):
        assert row.audio is None and row.source == "cascade" and row.text
        assert (row.id, row.utterance_id, row.intent, row.entities) == (
            original.id,
            original.utterance_id,
            original.intent,
            original.entities,
        )
        assert row.meta["gold_text"] == original.text
    hypotheses = [row.text if row.text != EMPTY else "" for row in cascade]
    assert summary["wer"] == pytest.approx(corpus_wer([e.text for e in gold], hypotheses))
    assert json.loads(out.with_suffix(".summary.json").read_text())["readout"] == readout


def test_transcribe_command_refuses_a_manifest_without_audio(tiny_backbone, toy_corpus, tmp_path, capsys):
    text_only = tmp_path / "text.jsonl"
    rows = [json.loads(line) for line in (toy_corpus / "dev.jsonl").read_text().splitlines()]
    text_only.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "audio"}) + "\n" for r in rows)
    )
    with pytest.raises(SystemExit):
        transcribe_command(tiny_backbone, text_only, tmp_path / "o")
    assert "text.jsonl: no rows with audio to transcribe" in capsys.readouterr().err


def test_transcripts_are_written_once_reused_and_never_taken_from_another_recogniser(
    tiny_backbone, toy_corpus, tmp_path
):
    speech = [example for example in read_manifest(toy_corpus / "test.jsonl") if example.is_speech]
    out = tmp_path / "asr.jsonl"
    ensure_transcripts(Recogniser(str(tiny_backbone), "ctc", 8), speech, out, "toy test speech")
    written = out.stat().st_mtime_ns
    ensure_transcripts(Recogniser(str(tiny_backbone), "ctc", 8), speech, out, "toy test speech")
    assert out.stat().st_mtime_ns == written
    with pytest.raises(
        DataError, match=r"asr.jsonl: holds other transcripts \(readout 'ctc', wanted 'decoder'\)"
    ):
        ensure_transcripts(Recogniser(str(tiny_backbone), "decoder", 8), speech, out, "toy test speech")
    with pytest.raises(DataError, match="manifest 'toy test speech', wanted 'other clips'"):
        ensure_transcripts(Recogniser(str(tiny_backbone), "ctc", 8), speech, out, "other clips")
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    summary["backbone_sha256"] = "0" * 64  # the same name, other weights
    out.with_suffix(".summary.json").write_text(json.dumps(summary))
    with pytest.raises(DataError, match="backbone_sha256"):
        ensure_transcripts(Recogniser(str(tiny_backbone), "ctc", 8), speech, out, "toy test speech")
    assert out.stat().st_mtime_ns == written


def test_transcripts_of_a_test_split_edited_in_place_are_not_reused(tiny_backbone, toy_corpus, tmp_path):
    """The summary names the split by its path; a manifest rewritten there holds other clips."""
    speech = [example for example in read_manifest(toy_corpus / "test.jsonl") if example.is_speech]
    out = tmp_path / "asr.jsonl"
    ensure_transcripts(Recogniser(str(tiny_backbone), "ctc", 8), speech, out, "toy test speech")
    edited = [*speech[1:], replace(speech[0], text="another sentence")]
    for clips, counts in ((speech[1:], "0 missing, 1 extra, 0"), (edited, "0 missing, 0 extra, 1")):
        with pytest.raises(DataError, match=rf"asr.jsonl: transcribes other clips .*\({counts} with other"):
            ensure_transcripts(Recogniser(str(tiny_backbone), "ctc", 8), clips, out, "toy test speech")


class Killed(Exception):
    """Stands in for a kill in the middle of a write."""


def kill_at_rename(monkeypatch, target: Path) -> None:
    """Raise ``Killed`` as a finished file is renamed onto ``target``: that write never lands."""
    rename = os.replace

    def replace_or_die(source, destination) -> None:
        if Path(destination) == target:
            raise Killed
        rename(source, destination)

    monkeypatch.setattr(os, "replace", replace_or_die)


@pytest.mark.parametrize("killed_at", ["asr.jsonl", "asr.summary.json"])
def test_transcripts_a_kill_left_without_their_summary_are_written_again(
    tiny_backbone, toy_corpus, tmp_path, monkeypatch, killed_at
):
    speech = [example for example in read_manifest(toy_corpus / "test.jsonl") if example.is_speech]
    out, recogniser = tmp_path / "asr.jsonl", Recogniser(str(tiny_backbone), "ctc", 8)
    with monkeypatch.context() as patch, pytest.raises(Killed):
        kill_at_rename(patch, tmp_path / killed_at)
        ensure_transcripts(recogniser, speech, out, "toy test speech")
    ensure_transcripts(recogniser, speech, out, "toy test speech")
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["transcripts_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert [row.id for row in read_manifest(out)] == [example.id for example in speech]


def test_a_rewrite_a_kill_stopped_is_finished_but_a_file_changed_otherwise_is_kept(
    tiny_backbone, toy_corpus, tmp_path, monkeypatch
):
    speech = [example for example in read_manifest(toy_corpus / "test.jsonl") if example.is_speech]
    out, recogniser = tmp_path / "asr.jsonl", Recogniser(str(tiny_backbone), "ctc", 8)
    ensure_transcripts(recogniser, speech, out, "toy test speech")
    with monkeypatch.context() as patch, pytest.raises(Killed):
        kill_at_rename(patch, out)  # its summary is written, the transcripts it replaces are still there
        transcribe_examples(recogniser, speech[1:], out, "toy test speech")
    ensure_transcripts(recogniser, speech[1:], out, "toy test speech")
    assert [row.id for row in read_manifest(out)] == [example.id for example in speech[1:]]
    out.write_text(out.read_text().replace('"text": "', '"text": "hand-corrected '))
    edited = out.read_text()
    with pytest.raises(DataError, match="asr.jsonl: changed since it was transcribed"):
        ensure_transcripts(recogniser, speech[1:], out, "toy test speech")
    assert out.read_text() == edited


def test_rescored_transcripts_made_with_other_settings_are_not_reused(tiny_backbone, toy_corpus, tmp_path):
    speech = [example for example in read_manifest(toy_corpus / "test.jsonl") if example.is_speech][:2]
    out = tmp_path / "rescored.jsonl"
    ensure_transcripts(Recogniser(str(tiny_backbone), "rescored", 8), speech, out, "toy")
    written = out.stat().st_mtime_ns
    ensure_transcripts(Recogniser(str(tiny_backbone), "rescored", 8), speech, out, "toy")  # reused
    assert out.stat().st_mtime_ns == written
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["rescoring"]["beam"] == 32
    summary["rescoring"]["decoder_weight"] = 0.3  # an older version of the read-out
    out.with_suffix(".summary.json").write_text(json.dumps(summary))
    with pytest.raises(DataError, match="holds other transcripts \\(rescoring"):
        ensure_transcripts(Recogniser(str(tiny_backbone), "rescored", 8), speech, out, "toy")


def test_transcripts_with_a_domain_language_model_name_its_text_and_are_not_mixed_up(
    tiny_backbone, toy_corpus, tmp_path
):
    speech = [example for example in read_manifest(toy_corpus / "test.jsonl") if example.is_speech][:2]
    texts = [example.text for example in read_manifest(toy_corpus / "train.jsonl")]
    out = tmp_path / "fused.jsonl"
    ensure_transcripts(fused(tiny_backbone, texts), speech, out, "toy")
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["domain_lm"]["sentences"] == len(texts) and summary["domain_lm"]["order"] == 4
    ensure_transcripts(fused(tiny_backbone, texts), speech, out, "toy")  # reused
    with pytest.raises(DataError, match="holds other transcripts \\(domain_lm"):
        ensure_transcripts(fused(tiny_backbone, texts[1:]), speech, out, "toy")
    with pytest.raises(DataError, match="domain_lm"):
        ensure_transcripts(Recogniser(str(tiny_backbone), "rescored", 8), speech, out, "toy")  # without one


def test_a_cascade_corpus_counts_its_language_model_from_the_base_training_text(
    tiny_backbone, toy_corpus, tmp_path
):
    base = ManifestCorpus(*(str(toy_corpus / f"{split}.jsonl") for split in ("train", "dev", "test")))
    out = tmp_path / "asr.jsonl"
    CascadeCorpus(base, str(out), str(tiny_backbone), "rescored", batch_size=4, domain_lm=True).prepare()
    counted = json.loads(out.with_suffix(".summary.json").read_text())["domain_lm"]
    training_text = [example.text for example in base.text("train", SkipLog())]
    assert counted == fusion_identity(training_text) and counted["sentences"] == 24  # the training split


def test_transcribe_never_overwrites_its_manifest_or_a_file_it_did_not_write_nor_reads_test_text(
    tiny_backbone, toy_corpus, tmp_path, capsys
):
    test = toy_corpus / "test.jsonl"
    (tmp_path / "mine.jsonl").write_text("keep me")
    for out, says in (
        (test, "is the --manifest being transcribed"),
        (tmp_path / "mine.jsonl", "no earlier transcribe wrote it (no mine.summary.json)"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(SystemExit):
            transcribe_command(tiny_backbone, test, out)
        assert says in capsys.readouterr().err
    assert (tmp_path / "mine.jsonl").read_text() == "keep me" and "audio" in test.read_text()
    with pytest.raises(SystemExit):
        transcribe_command(
            tiny_backbone, test, tmp_path / "t.jsonl", "--readout", "rescored", "--domain-text", test
        )
    assert "--domain-text shares 8 utterances with --manifest" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        transcribe_command(tiny_backbone, test, tmp_path / "t.jsonl", "--batch-size", "0")
    assert "0 is not a positive integer" in capsys.readouterr().err


def test_the_transcribe_command_counts_each_utterance_of_its_domain_text_once(
    tiny_backbone, toy_corpus, tmp_path
):
    rows = [json.loads(line) for line in (toy_corpus / "train.jsonl").read_text().splitlines()]
    twice = [{**row, "utterance_id": row["id"]} for row in rows]
    twice += [{**row, "id": row["id"] + "-again"} for row in twice]  # a second recording of each
    domain = tmp_path / "train.jsonl"
    domain.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "audio"}) + "\n" for r in twice))
    out = tmp_path / "fused.jsonl"
    transcribe_command(
        tiny_backbone, toy_corpus / "test.jsonl", out, "--readout", "rescored", "--domain-text", domain
    )
    counted = json.loads(out.with_suffix(".summary.json").read_text())["domain_lm"]
    assert counted == fusion_identity([row["text"] for row in rows])


def test_a_domain_language_model_joins_only_the_rescored_read_out(tiny_backbone, toy_corpus, tmp_path):
    base = ManifestCorpus(*(str(toy_corpus / f"{split}.jsonl") for split in ("train", "dev", "test")))
    with pytest.raises(ValueError, match="joins only the rescored read-out, not 'ctc'"):
        CascadeCorpus(base, str(tmp_path / "asr.jsonl"), recogniser=str(tiny_backbone), domain_lm=True)
    with pytest.raises(SystemExit):  # the default read-out is the decoder's
        transcribe_command(
            tiny_backbone,
            toy_corpus / "test.jsonl",
            tmp_path / "o.jsonl",
            "--domain-text",
            toy_corpus / "train.jsonl",
        )
    with pytest.raises(ValueError, match="joins only the rescored read-out, not 'ctc'"):
        Recogniser(str(tiny_backbone), "ctc", domain_text=["a sentence"])


def test_a_cascade_corpus_with_a_recogniser_transcribes_its_base_test_speech_on_first_use(
    tiny_backbone, toy_corpus, tmp_path
):
    base = ManifestCorpus(*(str(toy_corpus / f"{split}.jsonl") for split in ("train", "dev", "test")))
    corpus = CascadeCorpus(base, str(tmp_path / "asr.jsonl"), recogniser=str(tiny_backbone), batch_size=4)
    corpus.prepare()
    skips = SkipLog()
    recognised, heard = corpus.text("test", skips), base.speech("test", skips)
    assert [row.id for row in recognised] == [example.id for example in heard]
    assert all(
        row.audio is None and row.meta["gold_text"] == e.text
        for row, e in zip(recognised, heard, strict=True)
    )
    assert corpus.speech("test", skips) == [] and corpus.text("train", skips) == base.text("train", skips)
    without = CascadeCorpus(base, str(tmp_path / "missing.jsonl"))
    with pytest.raises(
        DataError, match="missing.jsonl: no transcripts: write them with `slu-lightning transcribe"
    ):
        without.prepare()


def test_without_a_transcripts_file_a_recogniser_names_its_own_for_each_test_split(toy_corpus, tmp_path):
    def default(base, **kwargs) -> str:
        return CascadeCorpus(base, recogniser="tiny-heard-voices", **kwargs).transcripts.as_posix()

    assert default(DemoCorpus()) == "logs/cascade/tiny-heard-voices-ctc-test.jsonl"
    assert (
        default(DemoCorpus(test_voices="unheard")) == "logs/cascade/tiny-heard-voices-ctc-test-unheard.jsonl"
    )
    assert default(DemoCorpus("tiny", seed=1)) == "logs/cascade/tiny-heard-voices-ctc-test-tiny-seed1.jsonl"
    elsewhere = default(DemoCorpus(root=str(tmp_path / "demo")))
    assert re.fullmatch(r"logs/cascade/tiny-heard-voices-ctc-test-[0-9a-f]{8}\.jsonl", elsewhere)
    base = ManifestCorpus(*(str(toy_corpus / f"{split}.jsonl") for split in ("train", "dev", "test")))
    other = ManifestCorpus(*(str(toy_corpus / f"{split}.jsonl") for split in ("train", "dev", "dev")))
    assert len({default(base), default(other), elsewhere}) == 3
    export = CascadeCorpus(
        DemoCorpus(), recogniser="logs/pretrain/ear-long/backbone", readout="rescored", domain_lm=True
    )
    assert export.transcripts == Path("logs/cascade/ear-long-domain-lm-test.jsonl")
    assert CascadeCorpus(base, "mine.jsonl", recogniser="tiny-heard").transcripts == Path("mine.jsonl")
    with pytest.raises(ValueError, match="needs its `transcripts` file, or a `recogniser`"):
        CascadeCorpus(base)


def test_transcribe_counts_the_rows_it_leaves_out_for_having_no_audio(
    tiny_backbone, toy_corpus, tmp_path, caplog
):
    manifest = toy_corpus / "test.jsonl"
    examples = read_manifest(manifest)
    examples[:2] = [replace(example, audio=None) for example in examples[:2]]
    out = tmp_path / "out.jsonl"
    with caplog.at_level("WARNING", logger="slu_lightning.experiments.cascade"):
        summary = transcribe_manifest(Recogniser(str(tiny_backbone), "ctc", 3), manifest, out, examples)
    assert (summary["rows"], summary["without_audio"]) == (len(examples) - 2, 2)
    assert json.loads(out.with_suffix(".summary.json").read_text())["without_audio"] == 2
    assert f"left out 2 of {len(examples)} rows of {manifest}: they have no audio" in caplog.text
