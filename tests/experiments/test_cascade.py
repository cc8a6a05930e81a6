import json

import pytest

from slu_lightning.cli import main as cli
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.evaluation.error_rates import corpus_wer
from slu_lightning.experiments.cascade import EMPTY, transcribe_manifest


@pytest.mark.parametrize("readout", ["ctc", "decoder"])
def test_transcribe_turns_speech_rows_into_text_rows_with_the_same_labels(
    tiny_backbone, toy_corpus, tmp_path, readout
):
    out = tmp_path / f"{readout}.jsonl"
    summary = transcribe_manifest(str(tiny_backbone), toy_corpus / "test.jsonl", out, readout, batch_size=3)
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
        cli(
            [
                "transcribe",
                "--backbone",
                str(tiny_backbone),
                "--manifest",
                str(text_only),
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert "text.jsonl: no rows with audio to transcribe" in capsys.readouterr().err
