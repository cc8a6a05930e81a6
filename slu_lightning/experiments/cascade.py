"""The cascade baseline, step one: transcribe a manifest's audio with a backbone, write the transcripts
as a text manifest (gold labels kept), then test a text-fine-tuned run on it with
``eval_modality: text``. A reviewer's question it answers: does end-to-end fine-tuning beat simply
recognising the words and parsing them?

``slu-lightning transcribe --backbone DIR --manifest test.jsonl --out asr-test.jsonl`` reads the
transcript out of the backbone's LLM decoder (``--readout decoder``, prompted as in pretraining) or,
for a stand-in pretrained by ``pretrain-tiny``, by greedy CTC over its audio vectors
(``--readout ctc``) or by rescoring a CTC beam and the decoder's beam with both
(``--readout rescored``: the best of the three on ``tiny-heard``, 0.3-0.65 s a clip on a CPU),
optionally steered by a language model of the parser's training text (``--domain-text``).
Each row keeps its id, utterance id, locale and labels; ``meta`` records the gold transcript and
the recogniser, and the corpus-level WER is printed and written beside the output.
``CascadeCorpus`` with a ``recogniser`` runs this step itself on first use (``ensure_transcripts``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from slu_lightning.arguments import positive_int
from slu_lightning.atomic import atomic_write, atomic_write_text
from slu_lightning.data.corpora import unique_utterances
from slu_lightning.data.errors import DataError
from slu_lightning.data.readers.manifest import read_manifest, write_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.evaluation.error_rates import corpus_wer
from slu_lightning.model.backbone import resolve_backbone
from slu_lightning.pretrain import rescoring
from slu_lightning.pretrain.asr_eval import READOUTS, transcribe
from slu_lightning.pretrain.domain_lm import domain_fusion, fusion_identity, require_fused_readout

log = logging.getLogger(__name__)
EMPTY = "(nothing recognised)"
"""Text of a row whose transcript came out empty: manifests need a non-empty text, and the row must
stay so that the cascade is scored on every utterance."""


@dataclass
class Recogniser:
    """What writes a cascade's transcripts: a backbone and its read-out, and for ``rescored`` the
    texts of an optional domain language model (``pretrain/domain_lm.py``)."""

    backbone: str
    readout: str = "decoder"
    batch_size: int = 32
    domain_text: list[str] | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.domain_text:
            require_fused_readout(self.readout)

    def identity(self) -> dict:
        """What makes two transcript files interchangeable: the recogniser's name, its weights and
        read-out (with the rescored read-out's settings, and its domain language model's)."""
        digest = hashlib.sha256()
        for weights in sorted(resolve_backbone(self.backbone).glob("*.safetensors")):
            digest.update(weights.read_bytes())
        identity = {"backbone": self.backbone, "backbone_sha256": digest.hexdigest(), "readout": self.readout}
        if self.readout == "rescored":  # its beam and weight change the transcripts as much as the weights do
            identity["rescoring"] = rescoring.SETTINGS
        if self.domain_text:
            identity["domain_lm"] = fusion_identity(self.domain_text)
        return identity


OPTIONAL_IDENTITY = ("rescoring", "domain_lm")
"""Parts of a recogniser's identity that only some read-outs have."""


def transcribe_manifest(
    recogniser: Recogniser, manifest: Path, out: Path, examples: list[SLUExample] | None = None
) -> dict:
    """Write ``out``: the speech rows of ``manifest`` (or of its ``examples``, read already) with
    their transcripts as text; returns a summary. Rows without audio are left out, and counted in the
    log and the summary (``without_audio``): a cascade on the output covers only the rest."""
    examples = read_manifest(manifest) if examples is None else examples
    speech = [example for example in examples if example.is_speech]
    if without_audio := len(examples) - len(speech):
        log.warning(
            "left out %d of %d rows of %s: they have no audio", without_audio, len(examples), manifest
        )
    return transcribe_examples(recogniser, speech, out, str(manifest), without_audio)


def transcribe_examples(
    recogniser: Recogniser, speech: list[SLUExample], out: Path, source: str, without_audio: int | None = None
) -> dict:
    """Write ``out``, the transcripts of ``speech`` as text rows, and ``out.summary.json``, which
    names the recogniser (with a digest of its weights) and the ``source`` of the audio, and counts
    the rows of ``source`` left out for having no audio where the caller knows them. The pair is
    written as ``_write_pair`` says, so that a kill between the two writes is seen."""
    from slu_lightning.pretrain.module import TinyPretrainModule

    if not speech:
        raise DataError("no rows with audio to transcribe", file=source)
    module = TinyPretrainModule(backbone=recogniser.backbone)
    texts = recogniser.domain_text
    fusion = domain_fusion(texts, module.processor.tokenizer) if texts else None
    readout = recogniser.readout
    hypotheses = transcribe(module, speech, readout, recogniser.batch_size, fusion)[readout]
    asr = f"{recogniser.backbone} ({readout})"
    rows = [
        _as_text(example, hypothesis, asr) for example, hypothesis in zip(speech, hypotheses, strict=True)
    ]
    summary = {
        **recogniser.identity(),
        "manifest": source,
        "rows": len(rows),
        **({} if without_audio is None else {"without_audio": without_audio}),
        "empty": sum(not h.strip() for h in hypotheses),
        "wer": corpus_wer([e.text for e in speech], hypotheses),
    }
    _write_pair(out, rows, summary)
    return summary


def _write_pair(out: Path, rows: list[SLUExample], summary: dict) -> None:
    """Write the summary first and rename the transcripts into place last, so that a summary always
    stands beside a transcripts file that ``transcribe`` wrote. The summary names the digest of the
    transcripts it describes and of the file they replace (None if none): after a kill between the
    two writes, ``out`` still holds the replaced file (or nothing), and ``ensure_transcripts`` sees it."""
    replaced = _sha256(out) if out.is_file() else None

    def write(staged: Path) -> None:
        write_manifest(staged, rows)
        summary.update(transcripts_sha256=_sha256(staged), replaces_sha256=replaced)
        atomic_write_text(summary_path(out), json.dumps(summary, indent=2) + "\n")

    atomic_write(out, write)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summary_path(out: Path) -> Path:
    return out.with_suffix(".summary.json")


def ensure_transcripts(recogniser: Recogniser, speech: list[SLUExample], out: Path, source: str) -> None:
    """Write ``out`` unless it already holds this recogniser's transcripts of ``source``; a file made
    by another recogniser or of other audio, without a summary or edited since, is an error, never
    silently reused or overwritten. This recogniser's file that a kill left unfinished is written again."""
    if not out.is_file():
        name = f"{recogniser.backbone} ({recogniser.readout} read-out)"
        log.info("transcribing %d clips of %s with %s", len(speech), source, name)
        transcribe_examples(recogniser, speech, out, source)
        return
    wanted = {**recogniser.identity(), "manifest": source}
    found = json.loads(summary_path(out).read_text(encoding="utf-8")) if summary_path(out).is_file() else {}
    keys = set(wanted) | set(OPTIONAL_IDENTITY)  # a part the file has and the request lacks differs too
    differing = sorted(key for key in keys if found.get(key) != wanted.get(key))
    if differing:
        changes = "; ".join(f"{key} {found.get(key)!r}, wanted {wanted.get(key)!r}" for key in differing)
        raise DataError(
            f"holds other transcripts ({changes}): delete it or name another transcripts file",
            file=str(out),
        )
    if not _finished(out, found):
        log.warning("%s is not what its summary describes (a transcribe stopped); transcribing again", out)
        transcribe_examples(recogniser, speech, out, source)
        return
    _check_same_clips(out, speech)
    log.info("reusing the transcripts in %s", out)


def _finished(out: Path, found: dict) -> bool:
    """Whether ``out`` holds the transcripts its summary ``found`` describes. False where the
    transcribe that wrote the summary stopped before renaming them in (``out`` is still the file they
    replace), or where the summary has no digest (written before the pair's order was fixed, it may
    be stale). A file changed any other way may hold someone's edits: an error, never overwritten."""
    digest = _sha256(out)
    written, replaced = found.get("transcripts_sha256"), found.get("replaces_sha256")
    if written is not None and digest not in (written, replaced):
        raise DataError(
            "changed since it was transcribed (its digest is not the one its summary names): "
            "delete it or name another transcripts file",
            file=str(out),
        )
    return digest == written


def _check_same_clips(out: Path, speech: list[SLUExample]) -> None:
    """A reused file must transcribe the clips the split holds now, ids and gold text alike: its
    summary names the split by its file paths only, and a test manifest edited in place keeps them."""
    written = {row.id: row.meta.get("gold_text") for row in read_manifest(out)}
    wanted = {example.id: example.text for example in speech}
    if written != wanted:
        missing, extra = wanted.keys() - written.keys(), written.keys() - wanted.keys()
        changed = [key for key in wanted.keys() & written.keys() if wanted[key] != written[key]]
        raise DataError(
            f"transcribes other clips than the split holds now ({len(missing)} missing, {len(extra)} "
            f"extra, {len(changed)} with other gold text): delete it or name another transcripts file",
            file=str(out),
        )


def _as_text(example: SLUExample, hypothesis: str, asr: str) -> SLUExample:
    meta = {**example.meta, "gold_text": example.text, "asr": asr}
    return replace(example, text=hypothesis.strip() or EMPTY, audio=None, source="cascade", meta=meta)


def out_problem(out: Path, manifest: Path) -> str | None:
    """Why ``transcribe`` must not write ``out``: its own input, a folder, or a file that no earlier
    ``transcribe`` wrote (it has no summary beside it); None if it may."""
    if out.resolve() == manifest.resolve():
        return "is the --manifest being transcribed"
    if out.is_dir():
        return "is a folder; name the text manifest to write"
    if out.exists() and not summary_path(out).is_file():
        return f"exists and no earlier transcribe wrote it (no {summary_path(out).name}); choose another"
    return None


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="slu-lightning transcribe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", required=True, help="backbone directory or tiny preset")
    parser.add_argument("--manifest", type=Path, required=True, help="manifest whose audio to transcribe")
    parser.add_argument("--out", type=Path, required=True, help="text manifest to write")
    parser.add_argument("--readout", choices=READOUTS, default="decoder")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument(
        "--domain-text",
        type=Path,
        help="manifest (the parser's training split, never the test's) whose texts train a language "
        "model that joins the rescored read-out",
    )
    parsed = parser.parse_args(args)
    if problem := out_problem(parsed.out, parsed.manifest):
        parser.error(f"--out {parsed.out}: {problem}")
    texts, examples = None, read_manifest(parsed.manifest)
    if parsed.domain_text:  # one sentence per utterance, however many recordings it has
        domain = unique_utterances(read_manifest(parsed.domain_text))
        tested = {example.utterance_id for example in examples}
        if shared := [example.utterance_id for example in domain if example.utterance_id in tested]:
            parser.error(
                f"--domain-text shares {len(shared)} utterances with --manifest (e.g. {shared[0]!r}): a "
                "language model of the test sentences would read them out; give the training split"
            )
        texts = [example.text for example in domain]
    try:
        recogniser = Recogniser(parsed.backbone, parsed.readout, parsed.batch_size, texts)
    except ValueError as error:
        parser.error(f"--domain-text: {error}")
    summary = transcribe_manifest(recogniser, parsed.manifest, parsed.out, examples)
    print(json.dumps(summary, indent=2))
