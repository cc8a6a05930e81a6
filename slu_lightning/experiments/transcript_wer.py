"""Compare transcript files of the same recordings: each one's WER, overall and per locale, and its
difference from the first file's, paired over recordings and resampled by utterance (a bootstrap
CI and p-value: the recordings of one utterance are drawn together).

The files are what ``slu-lightning transcribe`` writes, or a cascade's cached transcripts: text rows
whose ``meta.gold_text`` holds the reference. Which read-out, or which language model, writes the
better transcripts is then one command:

    slu-lightning compare-transcripts logs/cascade/tiny-heard-rescored-test.jsonl \\
        logs/cascade/tiny-heard-domain-lm-test.jsonl
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from slu_lightning.data.errors import DataError
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.evaluation.error_rates import corpus_wer
from slu_lightning.experiments.cascade import EMPTY
from slu_lightning.pretrain.coverage import comparison_table, word_error_rows


def read_transcripts(path: Path) -> dict[str, tuple[SLUExample, str]]:
    """``{id: (the row with its reference as text, its transcript)}`` of one transcript file."""
    rows = {}
    for example in read_manifest(path):
        if "gold_text" not in example.meta:
            raise DataError("no meta.gold_text: not a transcript file", file=str(path), record=example.id)
        transcript = "" if example.text == EMPTY else example.text
        rows[example.id] = (replace(example, text=example.meta["gold_text"]), transcript)
    return rows


def aligned(files: list[Path]) -> tuple[list[SLUExample], dict[str, list[str]]]:
    """The recordings of the first file, and each file's transcripts of them in that order; every
    file must transcribe the same recordings."""
    read = [read_transcripts(path) for path in files]
    for path, rows in zip(files[1:], read[1:], strict=True):
        if rows.keys() != read[0].keys():
            missing = sorted(read[0].keys() ^ rows.keys())
            raise DataError(
                f"transcribes other recordings than {files[0]} ({missing[:3]} ...)", file=str(path)
            )
        first = read[0]
        relabelled = [
            i for i in first if (rows[i][0].text, rows[i][0].locale) != (first[i][0].text, first[i][0].locale)
        ]
        if relabelled:  # the same ids over other audio (a demo corpus of another seed reuses them)
            raise DataError(
                f"has other references or locales than {files[0]} for {len(relabelled)} recordings "
                f"(e.g. {relabelled[0]!r}): these are transcripts of different data",
                file=str(path),
            )
    ids = list(read[0])
    examples = [read[0][i][0] for i in ids]
    return examples, {str(path): [rows[i][1] for i in ids] for path, rows in zip(files, read, strict=True)}


def locale_table(examples: list[SLUExample], transcripts: dict[str, list[str]]) -> str:
    """Each file's WER per locale, the files as columns."""
    locales = sorted({example.locale for example in examples})
    names = [Path(name).stem for name in transcripts]
    lines = [f"| locale | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    for locale in locales:
        rows = [i for i, example in enumerate(examples) if example.locale == locale]
        rates = [
            corpus_wer([examples[i].text for i in rows], [written[i] for i in rows])
            for written in transcripts.values()
        ]
        lines.append(f"| {locale} | {' | '.join(f'{rate:.3f}' for rate in rates)} |")
    return "\n".join(lines)


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="slu-lightning compare-transcripts", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("files", type=Path, nargs="+", help="transcript files; the first is the baseline")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    parsed = parser.parse_args(args)
    if len(set(parsed.files)) != len(parsed.files) or len(parsed.files) < 2:
        parser.error("name at least two transcript files, each once")
    examples, transcripts = aligned(parsed.files)
    rows = [(Path(name).stem, word_error_rows(examples, written)) for name, written in transcripts.items()]
    utterances = [example.utterance_id for example in examples]
    print(comparison_table(rows, parsed.seed, what="WER", label="transcripts", utterances=utterances))
    baseline = corpus_wer([example.text for example in examples], transcripts[str(parsed.files[0])])
    print(f"\nWER of {rows[0][0]}: {baseline:.3f}\n\nWER per locale:\n")
    print(locale_table(examples, transcripts))
