"""ITALIC (RiTA-nlp/ITALIC): Italian speakers reading MASSIVE it-IT utterances.

ITALIC is read from ``datasets`` ``save_to_disk`` output of one configuration (``massive``,
``hard_speaker`` or ``hard_noisy``): a ``DatasetDict`` with ``train``, ``validation`` and ``test``.
Its rows have ``id``, ``utt``, ``intent`` (``scenario_action``), ``audio`` and speaker and recording
metadata (``speaker``, ``environment``, ``device``...), but no slot annotation: entities come from
the MASSIVE it-IT row with the same ``id``. A row without a MASSIVE match is a bad row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.massive import massive_by_id, split_intent
from slu_lightning.data.readers.rows import (
    Modality,
    audio_value,
    check_modality,
    collect,
    load_saved_split,
    nonempty_str,
    prepare_table,
    table_records,
)
from slu_lightning.data.records import SLUExample

LOCALE = "it-IT"
SPLITS = ("train", "validation", "test")
REQUIRED_COLUMNS = ("id", "utt", "intent")
META_COLUMNS = ("speaker", "speaker_id", "environment", "device")
"""Copied into ``SLUExample.meta`` when present, for error analysis."""


def read_italic(
    path: str | Path,
    split: str,
    *,
    massive_it: str | Path,
    modality: Modality = "speech",
    skips: SkipLog | None = None,
) -> list[SLUExample]:
    """The examples of one ITALIC split, ids ``"it-IT/<id>"`` (the same ids as MASSIVE it-IT).

    Args:
        path: The ``save_to_disk`` folder of one ITALIC configuration.
        split: ``train``, ``validation`` or ``test``.
        massive_it: MASSIVE's ``it-IT.jsonl``, or its ``data`` folder; all partitions are joined,
            since the ``hard_*`` configurations re-split the utterances.
        modality: ``speech`` keeps the audio (bytes or path); ``text`` drops it without reading it.
        skips: Bad-input policy for both files; by default the first bad row raises a ``DataError``.
    """
    check_modality(modality)
    if split not in SPLITS:
        raise ValueError(f"unknown ITALIC split {split!r}; choose one of {list(SPLITS)}")
    annotations = massive_by_id(massive_it, locale=LOCALE, skips=skips)
    folder = Path(path)
    table = prepare_table(
        load_saved_split(folder, split),
        file=str(folder),
        required=REQUIRED_COLUMNS,
        with_audio=modality == "speech",
    )

    def parse(row: dict[str, Any]) -> list[SLUExample]:
        example_id = f"{LOCALE}/{nonempty_str(row, 'id')}"
        annotated = annotations.get(example_id)
        if annotated is None:
            raise DataError(f"id {row['id']!r} has no MASSIVE it-IT row to take its entities from")
        scenario, action = split_intent(nonempty_str(row, "intent"))
        return [
            SLUExample(
                id=example_id,
                locale=LOCALE,
                text=" ".join(nonempty_str(row, "utt").split()),
                scenario=scenario,
                action=action,
                entities=annotated.entities,
                audio=audio_value(row["audio"], folder) if modality == "speech" else None,
                source="italic",
                meta={key: str(row[key]) for key in META_COLUMNS if row.get(key) is not None},
            )
        ]

    return collect(folder, table_records(table, str(folder)), parse, skips)
