"""SLURP (``dataset/slurp/{train,devel,test}.jsonl`` and ``train_synthetic.jsonl``).

One row per utterance with its tokens, entity spans over token ids and its recordings::

    {"slurp_id": 9054, "sentence": "event reminder mona tuesday", "scenario": "calendar",
     "action": "set", "intent": "calendar_set",
     "tokens": [{"surface": "event", "id": 0, "lemma": "event", "pos": "NN"}, ...],
     "entities": [{"span": [2], "type": "event_name"}, ...],
     "recordings": [{"file": "audio-1497872916-headset.flac", "wer": 0.0, "ent_wer": 0.0,
                     "status": "correct"}, ...]}

Labels are built the way the official scorer builds its gold: the intent is ``scenario_action``
(the ``intent`` field disagrees with it in 37 test rows and is ignored), and an entity's filler is
the lower-cased surfaces of its span's tokens joined by single spaces (``jessica 's``), not the
bracketed text of ``sentence_annotation``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.rows import (
    Modality,
    check_modality,
    collect,
    json_object,
    jsonl_records,
    nonempty_str,
    require_keys,
)
from slu_lightning.data.records import Entity, SLUExample

MicFilter = Literal["all", "headset", "far_field"]

LOCALE = "en-US"
REQUIRED_KEYS = ("slurp_id", "sentence", "scenario", "action", "tokens", "entities")
SHARED_RECORDING = "a recording an earlier utterance lists too"
"""Why a recording of real SLURP's ``train.jsonl`` is left out of its second utterance."""
HEADSET_MARK = "-headset"
"""Close-talk recordings carry this in their file name; the others are far-field."""


def read_slurp(
    jsonl: str | Path,
    audio_dir: str | Path | None = None,
    *,
    modality: Modality,
    recordings: MicFilter = "all",
    skips: SkipLog | None = None,
) -> list[SLUExample]:
    """Read a SLURP JSONL file as text examples or as speech examples.

    Args:
        jsonl: ``train.jsonl``, ``devel.jsonl``, ``test.jsonl`` or ``train_synthetic.jsonl``.
        audio_dir: Folder holding the recordings (``slurp_real/``, or ``slurp_synth/`` for the
            synthetic file); required for speech. Files are not opened or checked here.
        modality: ``text``: one example per utterance, id ``str(slurp_id)``. ``speech``: one
            example per recording, id = the recording's file name (the official scorer's key),
            ``utterance_id`` = ``str(slurp_id)``, ``meta["mic"]`` = ``headset`` or ``far_field``.
            A recording the file lists under two utterances (the real ``train.jsonl`` gives
            ``audio-1502309360-headset.flac`` to two sentences; pswietojanski/slurp#7) is kept
            under the first, as ESPnet's SLURP recipe keeps it, and counted and logged under either
            policy; one listed twice in a row is bad input.
        recordings: For speech, keep all recordings or only one microphone type. Synthetic file
            names have no ``-headset`` mark, so they all count as ``far_field``.
        skips: Bad-input policy; by default the first bad row raises a ``DataError`` naming the
            file and line.
    """
    check_modality(modality)
    if recordings not in ("all", "headset", "far_field"):
        raise ValueError(f"recordings must be 'all', 'headset' or 'far_field', got {recordings!r}")
    if modality == "text" and recordings != "all":
        raise ValueError("recordings filters speech examples; text examples are one per utterance")
    if modality == "speech" and audio_dir is None:
        raise ValueError("audio_dir is required for speech examples (the folder of the recordings)")
    path = Path(jsonl)

    def parse(line: str) -> list[SLUExample]:
        row = json_object(line)
        utterance = _parse_utterance(row)
        if modality == "text":
            return [utterance]
        require_keys(row, ("recordings",))
        return _recording_examples(utterance, row["recordings"], Path(audio_dir), recordings)

    if modality == "text":
        return collect(path, jsonl_records(path), parse, skips)
    skips = skips or SkipLog("error")
    # a slurp_id on two lines would join two utterances in one bootstrap cluster and one subset unit
    examples = collect(path, jsonl_records(path), parse, skips, unique=(), per_record=("utterance_id",))
    return _first_listings(examples, path, skips)


def _first_listings(examples: list[SLUExample], path: Path, skips: SkipLog) -> list[SLUExample]:
    """Each recording once, under the first utterance that lists it: a recording listed twice would
    be scored twice, and trained with two labels."""
    owners: dict[str, str] = {}  # recording: the slurp_id it is kept under
    kept = []
    for example in examples:
        owner = owners.get(example.id)
        record = f"slurp_id {example.utterance_id}, recording {example.id}"
        if owner is None:
            owners[example.id] = example.utterance_id
            kept.append(example)
        elif owner == example.utterance_id:
            skips.handle(
                DataError("listed twice in its utterance's recordings", file=str(path), record=record)
            )
        else:
            skips.note(
                DataError(SHARED_RECORDING, file=str(path), record=f"{record}, kept under slurp_id {owner}")
            )
    return kept


def _parse_utterance(row: dict[str, Any]) -> SLUExample:
    require_keys(row, REQUIRED_KEYS)
    slurp_id = nonempty_str(row, "slurp_id")
    return SLUExample(
        id=slurp_id,
        locale=LOCALE,
        text=" ".join(nonempty_str(row, "sentence").split()),
        scenario=nonempty_str(row, "scenario"),
        action=nonempty_str(row, "action"),
        entities=_entities(row["tokens"], row["entities"]),
        source="slurp",
    )


def _entities(tokens: Any, entities: Any) -> tuple[Entity, ...]:
    surfaces = _token_surfaces(tokens)
    if not isinstance(entities, list):
        raise DataError("'entities' must be a list of {span, type} objects")
    parsed = []
    for entity in entities:
        if not isinstance(entity, dict) or not isinstance(entity.get("type"), str) or not entity["type"]:
            raise DataError(f"entity {entity!r} has no type")
        span = _span(entity, surfaces)
        parsed.append(Entity(entity["type"], " ".join(surfaces[token_id] for token_id in span)))
    return tuple(parsed)


def _token_surfaces(tokens: Any) -> dict[int, str]:
    """Each token's lower-cased surface by id. Ids must be integers (JSON ``true`` is not one) and
    distinct: a repeated id would silently give its entities the other token's surface."""
    if not isinstance(tokens, list) or not all(
        isinstance(t, dict) and _is_token_id(t.get("id")) and isinstance(t.get("surface"), str)
        for t in tokens
    ):
        raise DataError("'tokens' must be a list of {surface, id, ...} objects with integer ids")
    if repeated := sorted(i for i, n in Counter(t["id"] for t in tokens).items() if n > 1):
        raise DataError(f"'tokens' repeats the token ids {repeated}")
    return {token["id"]: token["surface"].lower() for token in tokens}


def _span(entity: dict[str, Any], surfaces: dict[int, str]) -> list[int]:
    """The token ids of ``entity``: a non-empty list of distinct ids of tokens of the row."""
    span = entity.get("span")
    if not isinstance(span, list) or not span or not all(map(_is_token_id, span)):
        raise DataError(f"entity {entity!r} has no span of integer token ids")
    unknown = [token_id for token_id in span if token_id not in surfaces]
    if unknown:
        raise DataError(f"entity {entity['type']!r} spans token ids {unknown} that are not in 'tokens'")
    if len(set(span)) < len(span):
        raise DataError(f"entity {entity['type']!r} spans a token id twice: {span}")
    return span


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _recording_examples(
    utterance: SLUExample, recordings: Any, audio_dir: Path, mic_filter: MicFilter
) -> list[SLUExample]:
    if not isinstance(recordings, list) or not all(
        isinstance(r, dict) and isinstance(r.get("file"), str) and r["file"] for r in recordings
    ):
        raise DataError("'recordings' must be a list of {file, wer, ent_wer, status} objects")
    examples = []
    for recording in recordings:
        mic = "headset" if HEADSET_MARK in recording["file"] else "far_field"
        if mic_filter in ("all", mic):
            examples.append(
                replace(
                    utterance,
                    id=recording["file"],
                    audio=str(audio_dir / recording["file"]),
                    utterance_id=utterance.id,
                    meta={"mic": mic},
                )
            )
    return examples
