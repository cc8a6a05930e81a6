"""Speech-MASSIVE (FBK-MT/Speech-MASSIVE): MASSIVE utterances read aloud in 12 locales.

Accepted layouts under ``path``:

* the hub snapshot: ``<locale>/<split>-00000-of-0000N.parquet`` shards (as in FBK-MT/Speech-MASSIVE;
  the test split comes from the separate FBK-MT/Speech-MASSIVE-test repository in the same
  layout, so pass that snapshot's folder for ``test``), or the shards directly in ``path``;
* ``datasets`` ``save_to_disk`` output: a ``DatasetDict`` of splits at ``path`` (one locale, or the
  ``all`` configuration: rows are filtered by their ``locale`` column), or one ``DatasetDict`` per
  locale in ``path/<locale>/``.

Rows have ``id``, ``locale``, ``utt``, ``annot_utt``, ``intent_str`` (``scenario_action``; the
``scenario`` column is a class index) and ``audio``, read undecoded: speech examples carry a
``TableAudio`` (the encoded clip, left in the memory-mapped table until it is decoded), or the file
path when a row has no bytes. Full ``train`` exists for fr-FR and de-DE
only; every locale has ``train_115`` (few-shot), ``validation`` and ``test``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.massive import massive_example
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

LOCALES = (
    "ar-SA", "de-DE", "es-ES", "fr-FR", "hu-HU", "ko-KR", "nl-NL", "pl-PL", "pt-PT", "ru-RU", "tr-TR", "vi-VN"
)  # fmt: skip
SPLITS = ("train", "train_115", "validation", "test")
META_COLUMNS = ("speaker_id", "is_validated", "is_transcript_reported")
"""Columns kept in a speech example's ``meta`` (as strings) where a row has them: its speaker, and
the corpus's own quality flags (``True``/``False``), so that predictions can be analysed by them."""
FULL_TRAIN_LOCALES = ("de-DE", "fr-FR")
REQUIRED_COLUMNS = ("id", "locale", "utt", "annot_utt", "intent_str")


def read_speech_massive(
    path: str | Path,
    locale: str,
    split: str,
    *,
    modality: Modality = "speech",
    skips: SkipLog | None = None,
) -> list[SLUExample]:
    """The examples of one locale and split, with ids ``"<locale>/<id>"``.

    Args:
        path: A hub snapshot or ``save_to_disk`` folder (see the module docstring for layouts).
        locale: One of ``LOCALES``.
        split: ``train`` (fr-FR and de-DE only), ``train_115``, ``validation`` or ``test``.
        modality: ``speech`` keeps the audio (bytes or path); ``text`` drops it without reading it.
        skips: Bad-input policy; by default the first bad row raises a ``DataError``.
    """
    check_modality(modality)
    if locale not in LOCALES:
        raise ValueError(f"unknown Speech-MASSIVE locale {locale!r}; choose one of {list(LOCALES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown Speech-MASSIVE split {split!r}; choose one of {list(SPLITS)}")
    if split == "train" and locale not in FULL_TRAIN_LOCALES:
        raise ValueError(
            f"the full train split exists only for {list(FULL_TRAIN_LOCALES)}; use 'train_115' for {locale}"
        )
    table, file, root = _load(Path(path), locale, split)
    table = prepare_table(table, file=file, required=REQUIRED_COLUMNS, with_audio=modality == "speech")
    locales = table.unique("locale")
    if locale not in locales:
        raise DataError(
            f"no rows of locale {locale!r}; locales in this table: {sorted(map(str, locales))}", file=file
        )

    def parse(row: dict[str, Any]) -> list[SLUExample]:
        if nonempty_str(row, "locale") != locale:
            return []
        return [
            massive_example(
                row,
                locale,
                nonempty_str(row, "intent_str"),
                audio=audio_value(row["audio"], root) if modality == "speech" else None,
                source="speech-massive",
                meta={name: str(row[name]) for name in META_COLUMNS if row.get(name) is not None},
            )
        ]

    return collect(file, table_records(table, file), parse, skips)


def _load(path: Path, locale: str, split: str) -> tuple[Any, str, Path]:
    """The split's table, the name to report errors against, and the folder audio paths are under."""
    if (path / "dataset_dict.json").is_file():
        return load_saved_split(path, split), str(path), path
    if (path / locale / "dataset_dict.json").is_file():
        return load_saved_split(path / locale, split), str(path / locale), path / locale
    folder = path / locale if (path / locale).is_dir() else path
    shards = sorted(str(shard) for shard in folder.glob(f"{split}-*.parquet"))
    if shards:
        return _load_parquet(shards, split), str(folder / f"{split}-*.parquet"), folder
    if not path.is_dir():
        raise DataError("Speech-MASSIVE data not found", file=str(path))
    if folder == path:
        found = sorted(p.name for p in path.iterdir() if p.is_dir() and _holds_data(p))
        raise DataError(
            f"no Speech-MASSIVE data for locale {locale!r}; locales found: {found}", file=str(path)
        )
    found = sorted({shard.name.split("-", 1)[0] for shard in folder.glob("*.parquet")})
    raise DataError(f"no split {split!r} for {locale}; splits found: {found}{_hint(split)}", file=str(folder))


def _hint(split: str) -> str:
    """Where a missing split is: the test split is released apart from the others."""
    if split != "test":
        return ""
    return (
        "; the test split is released apart (FBK-MT/Speech-MASSIVE-test): pass its folder as the "
        "corpus's test_path"
    )


def _holds_data(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or any(folder.glob("*.parquet"))


def _load_parquet(shards: list[str], split: str) -> Any:
    from datasets import load_dataset

    return load_dataset("parquet", data_files={split: shards}, split=split)
