"""MASSIVE (``1.0/data/<locale>.jsonl``), text only, and the label helpers its speech versions share.

One JSON object per line, all partitions of one locale in one file::

    {"id": "0", "locale": "de-DE", "partition": "test", "scenario": "alarm", "intent": "alarm_set",
     "utt": "weck mich diese woche um fünf uhr morgens auf",
     "annot_utt": "weck mich [date : diese woche] um [time : fünf uhr morgens] auf", ...}

Speech-MASSIVE and ITALIC carry the same ``scenario_action`` intents and ``annot_utt`` annotations,
so ``split_intent`` and ``annotated_entities`` live here and their readers import them.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from slu_lightning.data.annotation import parse_annotation
from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.rows import collect, json_object, jsonl_records, nonempty_str, require_keys
from slu_lightning.data.records import Entity, SLUExample

SPLITS = ("train", "dev", "test")
"""MASSIVE's ``partition`` values."""
REQUIRED_KEYS = ("id", "locale", "partition", "scenario", "intent", "utt", "annot_utt")


def read_massive(
    path: str | Path, split: str, *, locale: str | None = None, skips: SkipLog | None = None
) -> list[SLUExample]:
    """The text examples of one MASSIVE partition, with ids ``"<locale>/<id>"``.

    Args:
        path: A locale file (``data/fr-FR.jsonl``), or the ``data`` folder together with ``locale``.
        split: ``train``, ``dev`` or ``test`` (the rows' ``partition``).
        locale: Required with a folder; with a file, rows of another locale are bad rows.
        skips: Bad-input policy; by default the first bad row raises a ``DataError``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown MASSIVE split {split!r}; choose one of {list(SPLITS)}")
    return _read(Path(path), locale, {split}, skips)


def massive_by_id(
    path: str | Path, *, locale: str | None = None, skips: SkipLog | None = None
) -> dict[str, SLUExample]:
    """Every partition of one locale, keyed by example id (``"<locale>/<id>"``), for joins."""
    return {example.id: example for example in _read(Path(path), locale, SPLITS, skips)}


def split_intent(intent: str) -> tuple[str, str]:
    """``("alarm", "set")`` from ``"alarm_set"``: scenario names contain no underscore."""
    scenario, separator, action = intent.partition("_")
    if not (scenario and separator and action):
        raise DataError(f"intent {intent!r} is not of the form scenario_action")
    return scenario, action


def annotated_entities(annot_utt: str) -> tuple[Entity, ...]:
    """The entities of a ``[type : filler]`` annotation; a malformed one is a ``DataError``."""
    try:
        return parse_annotation(annot_utt)[1]
    except ValueError as error:
        raise DataError(str(error)) from None


def massive_example(row: dict[str, Any], locale: str, intent: str, **fields: Any) -> SLUExample:
    """The example of a MASSIVE-style row (``id``, ``utt``, ``annot_utt``) with a ``scenario_action``
    intent; ``fields`` sets the rest (``source``, ``audio``, ``meta``)."""
    scenario, action = split_intent(intent)
    text, entities = (
        " ".join(nonempty_str(row, "utt").split()),
        annotated_entities(nonempty_str(row, "annot_utt")),
    )
    if missing := [entity.filler for entity in entities if _squeezed(entity.filler) not in _squeezed(text)]:
        raise DataError(
            f"annot_utt's entity {missing[0]!r} is not in utt {text!r}: the model would be taught an "
            "entity its input does not say"
        )
    return SLUExample(
        id=f"{locale}/{nonempty_str(row, 'id')}",
        locale=locale,
        text=text,
        scenario=scenario,
        action=action,
        entities=entities,
        **fields,
    )


def _squeezed(text: str) -> str:
    """``text`` case-folded without whitespace: how a filler is looked up in its utterance, so
    that spacing around brackets (``[date : today]'s``) and case never count as a mismatch."""
    return "".join(text.casefold().split())


def _locale_file(path: Path, locale: str | None) -> Path:
    """``path`` itself if it is a file, else ``path/<locale>.jsonl``, with a clear error if absent."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError("MASSIVE data not found", file=str(path))
    available = sorted(p.stem for p in path.glob("*.jsonl"))
    if locale is None:
        raise ValueError(f"{path} is a folder: pass locale, one of {available}")
    if locale not in available:
        raise DataError(f"no MASSIVE locale {locale!r}; available locales: {available}", file=str(path))
    return path / f"{locale}.jsonl"


def _read(
    path: Path, locale: str | None, partitions: Collection[str], skips: SkipLog | None
) -> list[SLUExample]:
    file = _locale_file(path, locale)

    def parse(line: str) -> list[SLUExample]:
        row = json_object(line)
        require_keys(row, REQUIRED_KEYS)
        partition = nonempty_str(row, "partition")
        if partition not in SPLITS:  # "validation" would otherwise leave the dev split silently empty
            raise DataError(f"partition {partition!r} is not one of {list(SPLITS)}")
        if partition not in partitions:
            return []
        return [_parse_row(row, locale)]

    return collect(file, jsonl_records(file), parse, skips)


def _parse_row(row: dict[str, Any], locale: str | None) -> SLUExample:
    row_locale = nonempty_str(row, "locale")
    if locale is not None and row_locale != locale:
        raise DataError(f"row is locale {row_locale!r}, expected {locale!r}")
    scenario, _ = split_intent(nonempty_str(row, "intent"))
    if scenario != nonempty_str(row, "scenario"):
        raise DataError(f"intent {row['intent']!r} does not start with scenario {row['scenario']!r}")
    return massive_example(row, row_locale, nonempty_str(row, "intent"), source="massive")
