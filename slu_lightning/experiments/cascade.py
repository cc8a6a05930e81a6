"""The cascade baseline, step one: transcribe a manifest's audio with a backbone, write the transcripts
as a text manifest (gold labels kept), then test a text-fine-tuned run on it with
``eval_modality: text``. A reviewer's question it answers: does end-to-end fine-tuning beat simply
recognising the words and parsing them?

``slu-lightning transcribe --backbone DIR --manifest test.jsonl --out asr-test.jsonl`` reads the
transcript out of the backbone's LLM decoder (``--readout decoder``, prompted as in pretraining) or,
for a stand-in pretrained by ``pretrain-tiny``, by greedy CTC over its audio vectors
(``--readout ctc``). Each row keeps its id, utterance id, locale and labels; ``meta`` records the
gold transcript and the recogniser, and the corpus-level WER is printed and written beside the output.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

from slu_lightning.atomic import atomic_write_text
from slu_lightning.data.errors import DataError
from slu_lightning.data.readers.manifest import read_manifest, write_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.evaluation.error_rates import corpus_wer
from slu_lightning.pretrain.asr_eval import READOUTS, transcribe

log = logging.getLogger(__name__)
EMPTY = "(nothing recognised)"
"""Text of a row whose transcript came out empty: manifests need a non-empty text, and the row must
stay so that the cascade is scored on every utterance."""


def transcribe_manifest(
    backbone: str, manifest: Path, out: Path, readout: str = "decoder", batch_size: int = 32
) -> dict:
    """Write ``out``: the speech rows of ``manifest`` with their transcripts as text; returns a summary."""
    from slu_lightning.pretrain.module import TinyPretrainModule

    speech = [example for example in read_manifest(manifest) if example.is_speech]
    if not speech:
        raise DataError("no rows with audio to transcribe", file=str(manifest))
    module = TinyPretrainModule(backbone=backbone)
    hypotheses = transcribe(module, speech, readout, batch_size)[readout]
    rows = [
        _as_text(example, hypothesis, backbone, readout)
        for example, hypothesis in zip(speech, hypotheses, strict=True)
    ]
    write_manifest(out, rows)
    summary = {
        "backbone": backbone,
        "readout": readout,
        "manifest": str(manifest),
        "rows": len(rows),
        "empty": sum(not h.strip() for h in hypotheses),
        "wer": corpus_wer([e.text for e in speech], hypotheses),
    }
    atomic_write_text(out.with_suffix(".summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def _as_text(example: SLUExample, hypothesis: str, backbone: str, readout: str) -> SLUExample:
    meta = {**example.meta, "gold_text": example.text, "asr": f"{backbone} ({readout})"}
    return replace(example, text=hypothesis.strip() or EMPTY, audio=None, source="cascade", meta=meta)


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="slu-lightning transcribe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", required=True, help="backbone directory or tiny preset")
    parser.add_argument("--manifest", type=Path, required=True, help="manifest whose audio to transcribe")
    parser.add_argument("--out", type=Path, required=True, help="text manifest to write")
    parser.add_argument("--readout", choices=READOUTS, default="decoder")
    parser.add_argument("--batch-size", type=int, default=32)
    parsed = parser.parse_args(args)
    summary = transcribe_manifest(
        parsed.backbone, parsed.manifest, parsed.out, parsed.readout, parsed.batch_size
    )
    print(json.dumps(summary, indent=2))
