"""``slu-lightning score``: the metrics of a predictions file against a gold file, with no model.

Predictions are one JSON object per line in the SLURP scorer's format, which is also what
``slu-lightning test`` writes: a key, ``scenario``, ``action`` and ``entities: [{type, filler}]``.
The key is ``file`` (the SLURP scorer's key, a recording name), else ``id``, else ``slurp_id``.
Scores come from the one counting core (``counts.count_rows``, ``counts.summarize``) and the
cluster bootstrap (``bootstrap.bootstrap_ci``, clusters = utterances, in the order
``bootstrap.utterance_cluster_id`` gives them, as in ``test``), so they equal the numbers of
``SLUMetrics``, intervals included (same seed and resamples), and of the official scorer
(pswietojanski/slurp, ``scripts/evaluation``).

Gold formats (``auto`` reads the keys of the first line):

- ``slurp``: a SLURP release file (``test.jsonl``), read by ``read_slurp``. One gold item per
  recording, keyed by its file name, as the official scorer does by default. The official scorer
  keys by ``slurp_id`` only in its ``--load-gold`` mode (gold transcripts: one item per utterance);
  it never copies an utterance's prediction to its recordings, and neither does this module: when
  more prediction keys name utterances than recordings, the gold is one item per utterance.
- ``massive``: a MASSIVE locale file or its ``data`` folder (every ``<locale>.jsonl``), partition
  ``split``, read by ``read_massive``. Speech-MASSIVE shares MASSIVE's ids and labels, so its
  predictions are scored against the MASSIVE files. Gold ids are ``<locale>/<id>``; a prediction
  may give the bare ``<id>`` (with a ``locale`` field, or without one where the bare id is
  unambiguous; a line of another locale matches no gold item).
- ``manifest``: this project's manifest (``read_manifest``), keyed by ``id``.
- ``predictions``: a file written by ``slu-lightning test``; each line's ``reference`` is the gold.

Where this differs from the official scorer, which skips gold items that have no prediction and
stops at the first malformed line:

- a gold item with no prediction is scored as an empty, invalid prediction (wrong); the numbers on
  covered items only (the official ones) are reported beside them;
- a malformed line (bad JSON, missing keys, ``entities`` not a list of ``{type, filler}``) is
  reported with its line number and scored as a wrong prediction for its key (for bad JSON, the
  key and ``modality`` are recovered from the text when they can be: a line of another modality
  than ``--modality`` is left out); a line with no key at all is reported and left out;
- of several predictions for one key the first well-formed one is kept (the official scorer keeps
  the last); a malformed line counts only for a key that no well-formed line predicts. The others
  are counted and reported. ``compare-runs`` and ``report`` read runs by the same rule
  (``read_run_lines``);
- a file with lines of both modalities (a run with ``eval_modality: both``) is refused unless
  ``--modality`` picks one: its speech and text lines would be pooled into one number.

Scoring is lenient by default: an answer whose JSON object did not parse as the model wrote it
(status ``truncated`` or ``malformed``) was repaired by the parser and is scored on what was
kept, and one with text after its object (``trailing``) on that object. ``strict`` scores those
answers as empty, as an evaluation that runs ``json.loads`` on each answer and counts a failure
as wrong would; they stay invalid either way.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from slu_lightning.data.errors import DataError
from slu_lightning.data.readers import read_manifest, read_massive, read_slurp
from slu_lightning.data.readers.rows import (
    collect,
    entity_list,
    gold_entities,
    json_object,
    jsonl_records,
    nonempty_str,
)
from slu_lightning.data.records import SLUExample
from slu_lightning.evaluation.bootstrap import bootstrap_ci, cluster_ids
from slu_lightning.evaluation.counts import count_rows, summarize
from slu_lightning.task import ParseStatus, Prediction

GOLD_FORMATS = ("auto", "slurp", "massive", "manifest", "predictions")
KEY_FIELDS = ("file", "id", "slurp_id")
"""Where a prediction line's key is read, first present wins."""
SHOWN_METRICS = (
    "scenario_acc", "action_acc", "intent_acc", "exact_match", "entity_f1", "word_f1", "char_f1", "slu_f1"
)  # fmt: skip
"""The metrics of the text table; ``to_json`` has every metric of ``counts.summarize``."""
NO_PREDICTION = Prediction("", "", (), ParseStatus.INVALID)
"""What a gold item without a prediction, or with a malformed one, is scored against."""
NOT_JSON_AS_WRITTEN = frozenset(
    {ParseStatus.TRUNCATED, ParseStatus.MALFORMED, ParseStatus.LEADING, ParseStatus.TRAILING}
)
"""Statuses of answers that ``json.loads`` would refuse (the parser repaired them or read past their
end); ``strict`` empties them."""
NOT_JSON_NAMES = "truncated, malformed, leading and trailing"
"""``NOT_JSON_AS_WRITTEN`` in words, for help texts and reports."""
UNKNOWN_LOCALE = "und"
"""The locale of a predictions-format gold line that has none."""
STRICT_HELP = (
    f"score {NOT_JSON_NAMES} answers as empty instead of on what the parser kept (as a "
    "json.loads evaluation would); files without a status field are unaffected"
)
"""The ``--strict`` flag's help, shared by ``score``, ``compare-runs`` and ``report``."""
MAX_LISTED = 5
"""How many example keys a coverage warning lists."""
MAX_SHOWN_WARNINGS = 20
"""How many warnings the text report prints; ``to_json`` has them all."""


@dataclass(frozen=True)
class PredictionLine:
    """One usable line of a predictions file."""

    record: str
    """Where it is, ``line N``."""
    key: str
    locale: str | None
    prediction: Prediction
    row: dict[str, Any] | None = None
    """The line's JSON object with its prediction fields as scored (a malformed line's are those of a
    wrong prediction); None for a line that is not JSON."""
    malformed: bool = False


@dataclass(frozen=True)
class Coverage:
    """How the predictions file lines up with the gold items."""

    gold_items: int
    predicted: int
    """Gold items with a prediction (malformed ones included: they are scored as wrong)."""
    missing: int
    """Gold items with no prediction: scored as wrong in ``metrics``, left out of ``covered_metrics``."""
    unmatched_predictions: int
    """Prediction lines whose key names no gold item."""
    duplicate_predictions: int
    """Prediction lines for a key that another line predicts (ignored; see ``first_per_key``)."""
    malformed_lines: int


@dataclass(frozen=True)
class GroupScore:
    """The metrics of one group of gold items (all of them, or one locale)."""

    num_items: int
    metrics: dict[str, float]
    """Every gold item of the group; an item without prediction counts as wrong."""
    cis: dict[str, tuple[float, float]]
    """95 % cluster-bootstrap intervals of ``metrics`` (clusters = utterances); empty without resamples."""
    num_covered: int
    covered_metrics: dict[str, float]
    """Gold items with a prediction only: what the official scorer reports."""

    def to_json(self) -> dict[str, Any]:
        return {
            "num_items": self.num_items,
            "metrics": self.metrics,
            "ci95": {name: list(bounds) for name, bounds in self.cis.items()},
            "num_covered": self.num_covered,
            "covered_metrics": self.covered_metrics,
        }


@dataclass(frozen=True)
class ScoreReport:
    """Everything ``slu-lightning score`` reports, as a table (``to_text``) or JSON (``to_json``)."""

    gold: str
    predictions: str
    gold_format: str
    unit: str
    """What one gold item is: ``recording`` or ``utterance`` (SLURP), else ``example``."""
    overall: GroupScore
    per_locale: dict[str, GroupScore]
    """One entry per locale when the gold has more than one, else empty."""
    coverage: Coverage
    strict: bool = False
    """Answers ``json.loads`` would refuse scored as empty (``NOT_JSON_AS_WRITTEN``)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        return self.overall.metrics

    @property
    def cis(self) -> dict[str, tuple[float, float]]:
        return self.overall.cis

    @property
    def covered_metrics(self) -> dict[str, float]:
        return self.overall.covered_metrics

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the whole report."""
        return {
            "gold": self.gold,
            "predictions": self.predictions,
            "gold_format": self.gold_format,
            "unit": self.unit,
            "strict": self.strict,
            **self.overall.to_json(),
            "per_locale": {locale: group.to_json() for locale, group in self.per_locale.items()},
            "coverage": asdict(self.coverage),
            "warnings": list(self.warnings),
        }

    def to_text(self) -> str:
        """A readable report: coverage, the metric table overall and per locale, then warnings."""
        c = self.coverage
        lines = [
            f"gold {self.gold} ({self.gold_format}, one item per {self.unit})",
            f"predictions {self.predictions}"
            + (f" (strict: {NOT_JSON_NAMES} answers scored as empty)" if self.strict else ""),
            f"coverage: {c.gold_items} gold items, {c.predicted} predicted, {c.missing} missing (scored "
            f"wrong); unmatched predictions {c.unmatched_predictions} (ignored), duplicates "
            f"{c.duplicate_predictions} (first kept), malformed lines {c.malformed_lines}",
            "",
            *_table("overall", self.overall),
        ]
        for locale, group in self.per_locale.items():
            lines += ["", *_table(locale, group)]
        if self.warnings:
            lines += ["", f"warnings ({len(self.warnings)}):"]
            lines += [f"  {warning}" for warning in self.warnings[:MAX_SHOWN_WARNINGS]]
            if len(self.warnings) > MAX_SHOWN_WARNINGS:
                lines.append(f"  ... {len(self.warnings) - MAX_SHOWN_WARNINGS} more (all of them in --json)")
        return "\n".join(lines)


def score_files(
    gold: str | Path,
    pred: str | Path,
    *,
    gold_format: str = "auto",
    split: str = "test",
    modality: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    strict: bool = False,
) -> ScoreReport:
    """Score a predictions file against a gold file.

    Args:
        gold: The gold file (or a MASSIVE ``data`` folder), in one of ``GOLD_FORMATS``.
        pred: The predictions file, one JSON object per line (see the module docstring).
        gold_format: ``auto`` tells the format from the first gold line's keys.
        split: The MASSIVE partition to score (``train``, ``dev`` or ``test``); other formats ignore it.
        modality: ``speech`` or ``text``: keep only lines of that ``modality`` (a field written by
            ``slu-lightning test``), in a predictions-format gold and in the predictions; lines
            without the field are kept. Needed when a run scored both modalities of one key.
        n_resamples: Bootstrap resamples of the confidence intervals; 0 computes none.
        seed: Seed of the bootstrap.
        strict: Score the answers of ``NOT_JSON_AS_WRITTEN`` statuses as empty, not on what was kept.

    Raises:
        DataError: the gold file cannot be read, its format is unknown, or a key repeats in it.
    """
    if gold_format not in GOLD_FORMATS:
        raise ValueError(f"unknown gold format {gold_format!r}; choose one of {list(GOLD_FORMATS)}")
    gold, pred = Path(gold), Path(pred)
    lines, warnings, malformed = read_predictions(pred, modality=modality, strict=strict)
    if gold_format == "auto":
        gold_format = detect_gold_format(gold)
    examples, unit = _load_gold(gold, gold_format, split, modality, {line.key for line in lines})
    if gold_format == "manifest" and (modality or _only_modality(lines)) == "speech":
        examples, silent = _speech_rows(examples)
        warnings += _listed(silent, "manifest rows without audio are not speech gold items, left out")
    chosen, unmatched, duplicates = _match(lines, [example.id for example in examples])
    warnings += duplicates
    missing = [example.id for example in examples if example.id not in chosen]
    warnings += _listed(missing, "gold items have no prediction and are scored as wrong")
    warnings += _listed(unmatched, "predictions match no gold item and are ignored")

    rows = count_rows(examples, [chosen.get(example.id, NO_PREDICTION) for example in examples])  # (N, F)
    covered = np.array([example.id in chosen for example in examples])  # (N,)
    locale_of = np.array([example.locale for example in examples])  # (N,)
    clusters = cluster_ids([example.utterance_id for example in examples], locale_of)  # (N,), as test's
    per_locale = {}
    if len(set(locale_of.tolist())) > 1:
        for locale in sorted(set(locale_of.tolist())):
            mask = locale_of == locale
            per_locale[locale] = _score_group(rows[mask], clusters[mask], covered[mask], n_resamples, seed)
    return ScoreReport(
        gold=str(gold),
        predictions=str(pred),
        gold_format=gold_format,
        unit=unit,
        strict=strict,
        overall=_score_group(rows, clusters, covered, n_resamples, seed),
        per_locale=per_locale,
        coverage=Coverage(
            gold_items=len(examples),
            predicted=len(examples) - len(missing),
            missing=len(missing),
            unmatched_predictions=len(unmatched),
            duplicate_predictions=len(duplicates),
            malformed_lines=malformed,
        ),
        warnings=warnings,
    )


def read_predictions(
    path: Path, *, modality: str | None = None, strict: bool = False
) -> tuple[list[PredictionLine], list[str], int]:
    """The keyed lines of a predictions file, the warnings about its bad lines, and their number.

    A malformed line with a key becomes an empty prediction with status ``INVALID`` (not JSON) or
    ``MISSING_KEYS`` (keys missing or of the wrong type); a line without a key is only reported.
    A well-formed line keeps its ``status`` when it has a known one (``slu-lightning test`` writes
    it), else it is ``VALID``; with ``strict``, one of a ``NOT_JSON_AS_WRITTEN`` status is emptied. Lines of
    another ``modality`` are left out, those that are not JSON too when their text shows it.

    Raises:
        DataError: without ``modality``, the file holds lines of several modalities.
    """
    lines: list[PredictionLine] = []
    warnings: list[str] = []
    malformed = 0
    seen: set[str] = set()  # the modalities of the file's lines
    for record, text in jsonl_records(path):
        try:
            row = json_object(text)
        except DataError as error:
            malformed += 1
            seen.update(filter(None, [_salvaged(text, "modality")]))
            line, warning = _unreadable_line(record, text, error.reason, modality)
            lines += [line] if line else []
            warnings.append(warning)
            continue
        if isinstance(row.get("modality"), str):
            seen.add(row["modality"])
        if modality is not None and row.get("modality", modality) != modality:
            continue
        line, problem = _keyed_line(record, row, strict)
        if problem is not None:
            malformed += 1
            warnings.append(f"{record}: {problem}")
        lines += [line] if line else []
    if modality is None:
        _refuse_mixed_modalities(path, seen)
    return lines, warnings, malformed


def _unreadable_line(
    record: str, text: str, reason: str, modality: str | None
) -> tuple[PredictionLine | None, str]:
    """A line that is not JSON as a wrong prediction for the key its text names, and its warning; no
    line when it names no key or shows another modality than the one scored."""
    shown, key = _salvaged(text, "modality"), _salvaged_key(text)
    if modality is not None and shown not in (None, modality):
        return None, f"{record}: {reason}; a {shown} line, left out of the {modality} scoring"
    if key is None:
        return None, f"{record}: {reason}; no key found, the line is left out"
    line = PredictionLine(record, key, None, NO_PREDICTION, malformed=True)
    return line, f"{record}: {reason}; scored as a wrong prediction for {key!r}"


def _keyed_line(record: str, row: dict[str, Any], strict: bool) -> tuple[PredictionLine | None, str | None]:
    """A JSON line as a prediction for its key, and what is wrong with it (None when nothing is)."""
    key = _key(row)
    if key is None:
        return None, f"no {' / '.join(KEY_FIELDS)} key, the line is left out"
    prediction, problem = _prediction_of(row)
    if strict and prediction.status in NOT_JSON_AS_WRITTEN:
        prediction = Prediction("", "", (), prediction.status)
    scored = {**row, **prediction.to_json(), "status": prediction.status.value}
    locale = row.get("locale") if isinstance(row.get("locale"), str) else None
    line = PredictionLine(record, key, locale, prediction, scored, malformed=problem is not None)
    return line, None if problem is None else f"{problem}; scored as a wrong prediction for {key!r}"


def _refuse_mixed_modalities(path: Path, modalities: set[str]) -> None:
    """A run tested on speech and on transcripts writes lines of both: scored together they would
    pool into a number that is neither modality's (SLURP keys speech by recording and text by
    utterance, so the two never even share a key)."""
    if len(modalities) > 1:
        raise DataError(
            f"holds predictions of several modalities ({', '.join(sorted(modalities))}), as a run tested "
            "with eval_modality: both writes: score one with --modality speech or --modality text",
            file=str(path),
        )


def first_per_key(lines: list[PredictionLine]) -> tuple[list[PredictionLine], list[str]]:
    """The line kept for each key, in file order, and a warning for each other line of a key.

    The first well-formed line of a key is kept; a malformed one only where no well-formed line
    predicts the key, so a cut-off line never displaces the real prediction.
    """
    kept: dict[str, PredictionLine] = {}
    for line in sorted(lines, key=lambda line: line.malformed):  # stable: file order within each kind
        kept.setdefault(line.key, line)
    warnings = [
        f"{line.record}: another prediction for {line.key!r}; the "
        f"{'well-formed' if line.malformed and not kept[line.key].malformed else 'first'} one is kept"
        for line in lines
        if kept[line.key] is not line
    ]
    return [line for line in lines if kept[line.key] is line], warnings


def read_run_lines(path: Path, modality: str, strict: bool = False) -> tuple[list[PredictionLine], list[str]]:
    """The ``modality`` lines of a ``slu-lightning test`` predictions file, one per key as ``score``
    keeps them (``first_per_key``), each with its row (whose ``reference`` is its gold), and the
    warnings about the others: ``compare-runs`` and ``report`` read runs through it, so that one file
    gives them the numbers ``score --gold FILE --pred FILE`` gives (``strict`` as ``score``'s).

    Raises:
        DataError: a kept line is not JSON, or has no ``reference`` with the gold labels, so it
            cannot be scored.
    """
    lines, warnings, _ = read_predictions(path, modality=modality, strict=strict)
    kept, duplicates = first_per_key(lines)
    unscorable = [line.record for line in kept if not _has_reference(line.row)]
    if unscorable:
        raise DataError(
            f"{', '.join(unscorable[:MAX_LISTED])}: not JSON, or no reference (scenario, action, "
            "entities) to score against",
            file=str(path),
        )
    return kept, warnings + duplicates


def _has_reference(row: dict | None) -> bool:
    reference = (row or {}).get("reference")
    return isinstance(reference, dict) and {"scenario", "action", "entities"} <= reference.keys()


def detect_gold_format(path: Path) -> str:
    """The gold format of ``path`` from the keys of its first line (or its folder's first JSONL file)."""
    file = min(path.glob("*.jsonl"), default=path) if path.is_dir() else path
    first = next(iter(jsonl_records(file)), None)
    if first is None:
        raise DataError("the gold file has no lines", file=str(file))
    record, text = first
    try:
        keys = set(json_object(text))
    except DataError as error:
        raise DataError(
            f"cannot tell the gold format: {error.reason}", file=str(file), record=record
        ) from None
    if "recordings" in keys or {"slurp_id", "tokens"} <= keys:
        return "slurp"
    if "annot_utt" in keys:
        return "massive"
    if "reference" in keys:
        return "predictions"
    if {"id", "locale", "text", "scenario", "action", "entities"} <= keys:
        return "manifest"
    raise DataError(
        f"cannot tell the gold format from the keys {sorted(keys)}: expected a SLURP release file "
        "(slurp_id, tokens, recordings), MASSIVE (annot_utt), a manifest (id, locale, text, scenario, "
        "action, entities) or a predictions file of `slu-lightning test` (reference); "
        "or pass --gold-format",
        file=str(file),
        record=record,
    )


def score_main(args: list[str]) -> None:
    """``slu-lightning score``: print the report of ``score_files`` as a table or as JSON."""
    parser = argparse.ArgumentParser(
        prog="slu-lightning score", description="Score a SLURP-format predictions file against gold data."
    )
    parser.add_argument("--gold", type=Path, required=True, help="gold file (or MASSIVE data folder)")
    parser.add_argument("--pred", type=Path, required=True, help="predictions, one JSON object a line")
    parser.add_argument("--gold-format", choices=GOLD_FORMATS, default="auto")
    parser.add_argument("--split", default="test", help="MASSIVE partition (train, dev, test)")
    parser.add_argument(
        "--modality",
        choices=("speech", "text"),
        default=None,
        help="keep only lines of this modality (predictions of `slu-lightning test`)",
    )
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples; 0: no CIs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--strict", action="store_true", help=STRICT_HELP)
    options = parser.parse_args(args)
    report = score_files(
        options.gold,
        options.pred,
        gold_format=options.gold_format,
        split=options.split,
        modality=options.modality,
        n_resamples=options.resamples,
        seed=options.seed,
        strict=options.strict,
    )
    print(json.dumps(report.to_json(), ensure_ascii=False) if options.json else report.to_text())


def _speech_rows(examples: list[SLUExample]) -> tuple[list[SLUExample], list[str]]:
    """A manifest's rows with audio and the ids of its others, when it has both (``predict``'s
    input); a manifest of labels alone, without audio, is every row's gold."""
    heard = [example for example in examples if example.audio is not None]
    if not heard:
        return examples, []
    return heard, [example.id for example in examples if example.audio is None]


def _only_modality(lines: list[PredictionLine]) -> str | None:
    """The ``modality`` every line names (``predict`` writes ``speech``), else ``None``."""
    named = {(line.row or {}).get("modality") for line in lines}
    return named.pop() if len(named) == 1 and None not in named else None


def _load_gold(
    path: Path, gold_format: str, split: str, modality: str | None, pred_keys: set[str]
) -> tuple[list[SLUExample], str]:
    """The gold items and what one item is; a key that repeats is a ``DataError``."""
    unit = "example"
    if gold_format == "slurp":
        examples = read_slurp(path, path.parent, modality="speech")  # audio paths are never opened
        unit = "recording"
        utterances = {example.utterance_id for example in examples}
        if len(pred_keys & utterances) > len(pred_keys & {example.id for example in examples}):
            examples, unit = read_slurp(path, modality="text"), "utterance"
    elif gold_format == "massive":
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        examples = [example for file in files for example in read_massive(file, split)]
    elif gold_format == "manifest":
        examples = read_manifest(path)
    else:
        examples = _read_predictions_gold(path, modality)
    if not examples:
        raise DataError(f"no gold items ({gold_format} format, split {split!r})", file=str(path))
    repeated = [key for key, n in Counter(example.id for example in examples).items() if n > 1]
    if repeated:
        hint = "; a run on both modalities: pick one with --modality" if gold_format == "predictions" else ""
        raise DataError(f"gold keys repeat: {repeated[:MAX_LISTED]}{hint}", file=str(path))
    return examples, unit


def _read_predictions_gold(path: Path, modality: str | None) -> list[SLUExample]:
    """The ``reference`` of each line of a ``slu-lightning test`` predictions file, keyed as predicted.

    Raises:
        DataError: without ``modality``, the file holds lines of several modalities.
    """
    seen: set[str] = set()  # the modalities of the file's lines

    def parse(text: str) -> list[SLUExample]:
        row = json_object(text)
        if isinstance(row.get("modality"), str):
            seen.add(row["modality"])
        if modality is not None and row.get("modality", modality) != modality:
            return []
        key, reference = _key(row), row.get("reference")
        if key is None:
            raise DataError(f"no {' / '.join(KEY_FIELDS)} key")
        if not isinstance(reference, dict):
            raise DataError("'reference' must be an object with scenario, action and entities")
        entities = gold_entities(reference.get("entities"))
        return [
            SLUExample(
                id=key,
                locale=row.get("locale") or UNKNOWN_LOCALE,
                text=str(reference.get("text", "")),
                scenario=nonempty_str(reference, "scenario"),
                action=nonempty_str(reference, "action"),
                entities=entities,
                utterance_id=str(row.get("utterance_id") or ""),
                source="predictions",
            )
        ]

    gold = collect(path, jsonl_records(path), parse, None, unique=())  # _load_gold says why they repeat
    if modality is None:
        _refuse_mixed_modalities(path, seen)
    return gold


def _key(row: dict[str, Any]) -> str | None:
    """The first of ``KEY_FIELDS`` that holds a non-empty string or an integer."""
    for name in KEY_FIELDS:
        try:
            return nonempty_str(row, name)
        except DataError:
            continue
    return None


_SALVAGE = {name: re.compile(rf'"{name}"\s*:\s*(?:"([^"\\]+)"|(\d+))') for name in (*KEY_FIELDS, "modality")}


def _salvaged_key(text: str) -> str | None:
    """The key of a line that is not valid JSON, read from its text (e.g. a truncated line)."""
    return next(filter(None, (_salvaged(text, name) for name in KEY_FIELDS)), None)


def _salvaged(text: str, name: str) -> str | None:
    """The string or integer value of field ``name`` in a line that is not JSON, if its text shows it."""
    match = _SALVAGE[name].search(text)
    return (match.group(1) or match.group(2)) if match else None


def _prediction_of(row: dict[str, Any]) -> tuple[Prediction, str | None]:
    """The prediction of a keyed row, and ``None``; or, if malformed, a wrong one and the problem."""
    bad = [name for name in ("scenario", "action") if not isinstance(row.get(name), str)]
    entities = entity_list(row.get("entities"))
    if bad or entities is None:
        problem = (
            f"{' and '.join(map(repr, bad))} missing or not a string"
            if bad
            else "'entities' missing or not a list of {type, filler} objects"
        )
        return Prediction("", "", (), ParseStatus.MISSING_KEYS), problem
    status = row.get("status")
    if status not in {known.value for known in ParseStatus}:
        status = ParseStatus.VALID
    return Prediction(row["scenario"], row["action"], entities, ParseStatus(status)), None


def _match(
    lines: list[PredictionLine], gold_ids: list[str]
) -> tuple[dict[str, Prediction], list[str], list[str]]:
    """Each gold id's prediction (the line ``first_per_key`` keeps for it), the keys matching no gold
    id (with the locale a line names, which may be why), and a warning for each other line of a
    gold id."""
    resolve = _key_resolver(gold_ids)
    resolved = [(line, resolve(line.key, line.locale)) for line in lines]
    unmatched = [
        f"{line.key} ({line.locale})" if line.locale else line.key for line, key in resolved if key is None
    ]
    kept, duplicates = first_per_key([replace(line, key=key) for line, key in resolved if key is not None])
    return {line.key: line.prediction for line in kept}, unmatched, duplicates


def _key_resolver(gold_ids: list[str]) -> Callable[[str, str | None], str | None]:
    """Maps a prediction key (and its locale) to a gold id, or ``None`` if it names no gold item.

    Keys match exactly; ``<locale>/<id>`` gold ids (MASSIVE) also match ``<id>`` with that locale,
    or, from a line that names no locale (or ``und``), a bare ``<id>`` that only one gold id ends
    in. A line of another locale matches nothing: the same MASSIVE id is a translation elsewhere.
    """
    known = set(gold_ids)
    bare = Counter(gold_id.rpartition("/")[2] for gold_id in gold_ids if "/" in gold_id)
    by_bare = {gold_id.rpartition("/")[2]: gold_id for gold_id in gold_ids if "/" in gold_id}

    def resolve(key: str, locale: str | None) -> str | None:
        if key in known:
            return key
        if locale not in (None, UNKNOWN_LOCALE):
            return f"{locale}/{key}" if f"{locale}/{key}" in known else None
        return by_bare[key] if bare[key] == 1 else None

    return resolve


def _score_group(
    rows: np.ndarray, clusters: np.ndarray, covered: np.ndarray, n_resamples: int, seed: int
) -> GroupScore:
    """Metrics of count rows ``(N, F)``, their cluster-bootstrap CIs, and the covered rows' metrics."""
    cis = bootstrap_ci(rows, clusters, n_resamples=n_resamples, seed=seed) if n_resamples > 0 else {}
    cis.pop("num_examples", None)  # a resample's size varies with its clusters: no interval to report
    return GroupScore(
        num_items=len(rows),
        metrics=summarize(rows),
        cis=cis,
        num_covered=int(covered.sum()),
        covered_metrics=summarize(rows[covered]),
    )


def _listed(keys: list[str], what: str) -> list[str]:
    """One warning naming the first few ``keys``, or none when there are none."""
    if not keys:
        return []
    shown = ", ".join(map(repr, keys[:MAX_LISTED])) + (", ..." if len(keys) > MAX_LISTED else "")
    return [f"{len(keys)} {what}: {shown}"]


def _table(title: str, group: GroupScore) -> list[str]:
    """The lines of one metric table: value and 95 % CI on all items, value on covered items."""
    lines = [
        f"{title:<14} {'all items (n=' + str(group.num_items) + ')':<34}"
        f"covered only (n={group.num_covered}, official)"
    ]
    for name in SHOWN_METRICS:
        low, high = group.cis.get(name, (float("nan"), float("nan")))
        interval = f"[{low:.4f}, {high:.4f}]" if group.cis else ""
        covered = f"{group.covered_metrics[name]:.4f}" if group.num_covered else "n/a"
        lines.append(f"{name:<14} {group.metrics[name]:.4f} {interval:<27}{covered}")
    return lines
