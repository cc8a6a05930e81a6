"""The plain JSONL manifest: bring-your-own data, and the format the demo corpus is written in.

One JSON object per line::

    {"id": "demo-en-000017", "locale": "en-US", "text": "wake me up at seven",
     "scenario": "alarm", "action": "set", "entities": [{"type": "time", "filler": "seven"}],
     "audio": "audio/train/demo-en-000017.flac", "utterance_id": "...", "meta": {"voice": "en+m3"}}

``audio``, ``utterance_id`` and ``meta`` are optional. A relative ``audio`` path is resolved
against the manifest's folder, so a corpus folder can be moved as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slu_lightning.atomic import atomic_write_text
from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.rows import (
    collect,
    gold_entities,
    json_object,
    jsonl_records,
    nonempty_str,
    require_keys,
)
from slu_lightning.data.records import SLUExample

REQUIRED_KEYS = ("id", "locale", "text", "scenario", "action", "entities")


def read_manifest(path: str | Path, skips: SkipLog | None = None) -> list[SLUExample]:
    """Read a manifest; each bad row raises a ``DataError`` or is counted in ``skips``."""
    path = Path(path)
    return collect(
        path, jsonl_records(path), lambda line: [_parse_row(json_object(line), path.parent)], skips
    )


def _parse_row(row: dict, root: Path) -> SLUExample:
    require_keys(row, REQUIRED_KEYS)
    labels = {key: nonempty_str(row, key) for key in ("id", "locale", "text", "scenario", "action")}
    entities = gold_entities(row["entities"])
    audio = _optional(row, "audio", str, "a non-empty path string")
    if audio is not None and not audio.strip():  # would make the row text-only: the speech view drops it
        raise DataError(f"'audio' must be a non-empty path string, got {audio!r}")
    source = _optional(row, "source", str, "a string")
    meta = _optional(row, "meta", dict, "an object of attributes")
    return SLUExample(
        **labels,
        entities=entities,
        audio=str(root / audio) if audio is not None else None,
        # an int is an id, as SLURP's are; nonempty_str turns it into a string
        utterance_id="" if _blank(row.get("utterance_id")) else nonempty_str(row, "utterance_id"),
        source="manifest" if source is None else source,
        meta={str(k): str(v) for k, v in (meta or {}).items()},
    )


def _optional(row: dict, key: str, kind: type, described: str) -> Any:
    """``row[key]`` if it is a ``kind``, ``None`` if absent or null; a ``DataError`` otherwise."""
    value = row.get(key)
    if value is not None and not isinstance(value, kind):
        raise DataError(f"{key!r} must be {described}, got {value!r}")
    return value


def manifest_row(example: SLUExample, root: Path) -> dict:
    """The JSON row for ``example``; audio paths under ``root`` are written relative to it."""
    row = {
        "id": example.id,
        "locale": example.locale,
        "text": example.text,
        "scenario": example.scenario,
        "action": example.action,
        "entities": [{"type": e.type, "filler": e.filler} for e in example.entities],
    }
    if example.audio is not None and not isinstance(example.audio, str | Path):
        raise ValueError(f"example {example.id}: write the audio bytes to a file before writing a manifest")
    if example.audio is not None:
        audio = Path(example.audio).resolve()
        row["audio"] = str(audio.relative_to(root)) if audio.is_relative_to(root) else str(audio)
    if example.utterance_id != example.id:
        row["utterance_id"] = example.utterance_id
    if example.source:
        row["source"] = example.source
    if example.meta:
        row["meta"] = dict(example.meta)
    return row


def write_manifest(path: str | Path, examples: Iterable[SLUExample]) -> Path:
    """Write ``examples`` atomically as a manifest; audio paths become relative to its folder."""
    path = Path(path)
    root = path.parent.resolve()
    lines = (json.dumps(manifest_row(e, root), ensure_ascii=False) for e in examples)
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def _blank(value: Any) -> bool:
    """An absent ``utterance_id``: missing, null or an empty string (the example is its own utterance)."""
    return value is None or (isinstance(value, str) and not value.strip())
