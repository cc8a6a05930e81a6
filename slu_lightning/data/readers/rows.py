"""Where corpus rows come from, and how a bad row becomes an error that names its file and record.

Every corpus reader has the same shape: raw rows, each with a location (``line 17``,
``row 3 (id 1234)``), go through a parse function that returns zero or more ``SLUExample`` or
raises ``DataError``; ``collect`` applies the bad-input policy with the file and record filled in.
Rows come from JSONL files (SLURP, MASSIVE) or from ``datasets`` tables (Speech-MASSIVE, ITALIC),
read with ``Audio(decode=False)`` because decoding goes through torchcodec, which fails here.
``datasets`` is imported inside the functions that need it: it takes seconds to import, and the
JSONL readers do not use it.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.records import Entity, SLUExample

Row = Mapping[str, Any]
Modality = Literal["text", "speech"]


def check_modality(modality: str) -> None:
    if modality not in ("text", "speech"):
        raise ValueError(f"modality must be 'text' or 'speech', got {modality!r}")


def collect(
    file: str | Path,
    records: Iterable[tuple[str, Any]],
    parse: Callable[[Any], list[SLUExample]],
    skips: SkipLog | None,
    unique: tuple[str, ...] = ("id",),
    per_record: tuple[str, ...] = (),
) -> list[SLUExample]:
    """Parse ``(record, raw)`` pairs; a ``DataError`` raises or is counted, naming file and record.

    An example whose ``unique`` attributes (``id``) repeat those of another example, of an earlier
    record or of the same one, is an error too: predictions, paired comparisons, bootstrap clusters
    and speech subsets are keyed by them, and a repeat would silently pair or pool the wrong rows.
    ``per_record`` attributes (a SLURP row's ``utterance_id``, shared by its recordings) may repeat
    within a record but not across records. (A predictions file of a run on both modalities holds
    each id twice: it passes ``()``.)"""
    skips = skips or SkipLog("error")
    examples: list[SLUExample] = []
    first_seen: dict[tuple[str, str], str] = {}
    for record, raw in records:
        try:
            parsed = parse(raw)
            _check_repeats(parsed, record, unique, per_record, first_seen)
            examples.extend(parsed)
        except DataError as error:
            skips.handle(DataError(error.reason, file=str(file), record=record))
    return examples


def _check_repeats(
    parsed: list[SLUExample],
    record: str,
    unique: tuple[str, ...],
    per_record: tuple[str, ...],
    first_seen: dict[tuple[str, str], str],
) -> None:
    """Raise on a key of ``parsed`` that ``first_seen`` holds or that ``parsed`` repeats, then add
    its keys; a record that raises adds none, so a skipped record never makes a later one a repeat."""
    keys = [(attribute, getattr(example, attribute)) for example in parsed for attribute in unique]
    keys += dict.fromkeys((name, getattr(example, name)) for example in parsed for name in per_record)
    in_record: set[tuple[str, str]] = set()
    for attribute, value in keys:
        name = attribute.replace("_", " ")
        if (attribute, value) in in_record:
            raise DataError(f"{name} {value!r} appears twice in this record")
        if (earlier := first_seen.get((attribute, value))) is not None:
            raise DataError(f"{name} {value!r} repeats the one at {earlier}")
        in_record.add((attribute, value))
    first_seen.update(dict.fromkeys(keys, record))


def jsonl_records(path: Path) -> Iterator[tuple[str, str]]:
    """``("line N", text)`` for every non-blank line of a UTF-8 JSONL file (a leading byte-order
    mark, as some Windows editors write, is dropped).

    A line with bytes that are not UTF-8 comes as a ``NotUtf8Line``, which ``json_object`` refuses,
    so that it is one bad record like any other rather than an exception that ends the read.

    Raises:
        DataError: the file does not exist, or is UTF-16 or UTF-32 (every line would be bad).
    """
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    with path.open("rb") as head:
        if wide := _wide_encoding(head.read(4)):
            raise DataError(f"not UTF-8: {wide}; re-save it as UTF-8", file=str(path))
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as lines:
        for line_number, line in enumerate(lines, start=1):
            if line.strip():
                yield f"line {line_number}", _utf8_checked(line)


def _wide_encoding(head: bytes) -> str | None:
    """Why a file starting with ``head`` looks UTF-16 or UTF-32, or ``None``: JSON text in UTF-8
    starts with neither such a byte-order mark nor NUL bytes."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # UTF-32's marks start so too
        return "it starts with a UTF-16 or UTF-32 byte-order mark"
    if b"\x00" in head:
        return "its first bytes hold NUL bytes, as UTF-16 or UTF-32 text does"
    return None


class NotUtf8Line(str):
    """A JSONL line with bytes that are not UTF-8, those written ``\\xe9``; ``reason`` names the
    first. ``json_object`` raises it, and the scorer can still read the line's key from the text."""

    reason: str


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
"""What ``surrogateescape`` decodes a byte that is not UTF-8 to; valid UTF-8 never gives these."""


def _utf8_checked(line: str) -> str:
    """``line`` as read with ``surrogateescape``; a ``NotUtf8Line`` if it holds escaped bytes."""
    bad = _ESCAPED_BYTE.search(line)
    if bad is None:
        return line
    shown = NotUtf8Line(line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    byte = ord(bad.group()) - 0xDC00
    shown.reason = f"not UTF-8 (byte 0x{byte:02x} at column {bad.start() + 1}); re-save the file as UTF-8"
    return shown


def json_object(line: str) -> dict[str, Any]:
    """The JSON object on ``line``; anything else, a ``NotUtf8Line`` included, is a ``DataError``."""
    if isinstance(line, NotUtf8Line):
        raise DataError(line.reason)
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise DataError("row is not a JSON object")
    return row


def require_keys(row: Row, keys: Iterable[str]) -> None:
    missing = [key for key in keys if key not in row]
    if missing:
        raise DataError(f"missing keys {missing}")


def nonempty_str(row: Row, key: str) -> str:
    """``row[key]`` stripped; a ``DataError`` unless it is a non-empty string (ids may be ints)."""
    value = row.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def entity_list(value: Any) -> tuple[Entity, ...] | None:
    """The entities of a JSON ``[{type, filler}]`` list; ``None`` unless it is exactly that."""
    if not isinstance(value, list) or not all(
        isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("filler"), str)
        for e in value
    ):
        return None
    return tuple(Entity(e["type"], e["filler"]) for e in value)


def gold_entities(value: Any) -> tuple[Entity, ...]:
    """The entities of a gold ``[{type, filler}]`` list. A filler with no words is an error here, as
    the scorer's span distance is relative to the gold filler's length."""
    entities = entity_list(value)
    if entities is None:
        raise DataError("'entities' must be a list of {type, filler} objects")
    for entity in value:
        if not entity["type"].strip() or not entity["filler"].strip():
            raise DataError(f"entity {entity!r} has an empty type or filler")
    return entities


def table_records(table: Any, file: str, id_column: str = "id") -> Iterator[tuple[str, dict[str, Any]]]:
    """``("row N (id X)", row)`` for every row of a ``datasets.Dataset``, class labels as names.

    ``ClassLabel`` columns are stored as integers; they come back as their names so that parse
    functions see the same strings whichever way a corpus was saved. An ``audio`` column comes as
    ``TableAudio`` cells of ``file``: its bytes stay in the table.
    """
    from datasets import ClassLabel

    labels = {name: feature for name, feature in table.features.items() if isinstance(feature, ClassLabel)}
    audio = table_audio(table, file) if "audio" in table.column_names else None
    rows = table if audio is None else table.remove_columns("audio")
    for index, row in enumerate(rows):
        for name, feature in labels.items():
            if isinstance(row[name], int) and row[name] >= 0:
                row[name] = feature.int2str(row[name])
        if audio is not None:
            row["audio"] = audio[index]
        yield f"row {index} (id {row.get(id_column)})", row


def table_audio(table: Any, file: str) -> list[TableAudio]:
    """A ``TableAudio`` for every undecoded ``audio`` cell of ``table``, read from arrow without
    copying a clip: only the byte counts and paths."""
    import pyarrow.compute as pc

    cells = table.select_columns(["audio"]).with_format("arrow")
    sizes: list[int | None] = []
    paths: list[str | None] = []
    for batch in cells.iter(batch_size=4096):
        column = batch.column("audio")
        sizes += pc.binary_length(pc.struct_field(column, "bytes")).to_pylist()
        paths += pc.struct_field(column, "path").to_pylist()
    return [
        TableAudio(cells, index, file, size or 0, path)
        for index, (size, path) in enumerate(zip(sizes, paths, strict=True))
    ]


def prepare_table(table: Any, *, file: str, required: Iterable[str], with_audio: bool) -> Any:
    """Check ``table`` has the ``required`` columns; keep audio undecoded, or drop it for text.

    Raises:
        DataError: a required column is missing (the whole table is unusable, not one row).
    """
    from datasets import Audio

    required = [*required, "audio"] if with_audio else list(required)
    missing = [column for column in required if column not in table.column_names]
    if missing:
        raise DataError(f"missing columns {missing}; the table has {table.column_names}", file=file)
    if not with_audio:
        return table.remove_columns("audio") if "audio" in table.column_names else table
    return table.cast_column("audio", Audio(decode=False))


def load_saved_split(folder: Path, split: str) -> Any:
    """One split of a ``DatasetDict`` written with ``save_to_disk``.

    Raises:
        DataError: ``folder`` is not a saved ``DatasetDict`` or has no such split (the message
            lists the splits it has).
    """
    from datasets import load_from_disk

    if not folder.exists():
        raise DataError("not found", file=str(folder))
    if not (folder / "dataset_dict.json").is_file():
        raise DataError("not a DatasetDict saved with save_to_disk (no dataset_dict.json)", file=str(folder))
    splits = load_from_disk(str(folder))
    if split not in splits:
        raise DataError(f"no split {split!r}; available splits: {sorted(splits)}", file=str(folder))
    return splits[split]


def audio_value(cell: TableAudio, root: Path) -> TableAudio | str:
    """The encoded audio of an undecoded ``Audio`` cell: the cell itself when it holds bytes (read
    when the clip is decoded), else its file path.

    A relative path is resolved against ``root`` (the dataset folder), as ``datasets`` does.

    Raises:
        DataError: the cell has neither bytes nor a path to an existing file.
    """
    if cell.size:
        return cell
    if not cell.path:
        raise DataError("audio has neither bytes nor a path")
    resolved = Path(cell.path) if Path(cell.path).is_absolute() else root / cell.path
    if not resolved.is_file():
        raise DataError(f"audio has no bytes and its file {str(resolved)!r} does not exist")
    return str(resolved)


@dataclass(frozen=True)
class TableAudio:
    """An encoded clip left in the dataset table it was read from, and read only when decoded.

    Holding every clip's bytes would cost a split's whole size in every process (about 3.6 GB for
    Speech-MASSIVE fr-FR train). Tables loaded from parquet shards or ``save_to_disk`` are
    memory-mapped, and pickle to loader workers as their file names, not their contents.
    """

    cells: Any = field(compare=False, repr=False)
    """The table's ``audio`` column, arrow-formatted."""
    index: int
    table: str
    """The parquet shards or saved dataset the table was read from, to name a bad clip by."""
    size: int
    """Bytes of the encoded clip."""
    path: str | None = None
    """The cell's own path (the clip's original file name), if any."""

    def encoded(self) -> EncodedAudio:
        """The clip's bytes, named by where they were read from."""
        data = self.cells[self.index].column("audio")[0].as_py()["bytes"]
        return EncodedAudio(data, f"{self.table}, audio {self.path}" if self.path else self.table)


class EncodedAudio(bytes):
    """An encoded clip held in memory, with where it was read from."""

    def __new__(cls, data: bytes, origin: str) -> EncodedAudio:
        audio = super().__new__(cls, data)
        audio.origin = origin
        return audio

    def __reduce__(self):  # loader workers and caches get the origin too
        return EncodedAudio, (bytes(self), self.origin)
