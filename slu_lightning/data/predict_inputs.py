"""What ``predict`` reads: unlabelled speech from an audio file, a folder, a manifest or a list file.

Every input becomes an ``SLUExample`` without labels whose id is the file's name (SLURP's scorer
key), so that ``score`` can pair the predictions with a gold file; what cannot be an input is named
in a ``DataError`` (or, for a manifest's bad rows, counted in the run's ``SkipLog``).
"""

from __future__ import annotations

import codecs
import logging
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers import read_manifest
from slu_lightning.data.records import SLUExample

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf", ".w64"
)  # fmt: skip
"""What ``predict`` takes for audio by its name: the common suffixes of the formats libsndfile decodes
(``soundfile``, ``load_audio``). Any other file is read as a list of audio paths."""


def audio_inputs(source: str | None, skips: SkipLog | None = None) -> list[SLUExample]:
    """Unlabelled speech examples for ``predict`` from an audio file, a folder, a manifest (JSONL:
    its rows with audio, ids kept, so the predictions score against it) or a list file (one path a
    line, relative to the list's folder like a manifest's). A file's id is its name, the key of
    SLURP's scorer (a recording's name), unless two inputs share a name. A manifest's bad rows
    raise or are counted in ``skips`` (default: raise), like a corpus's."""
    if source is None:
        raise DataError(
            "predict needs data.init_args.predict_audio: an audio file, a folder, a list file or a manifest"
        )
    path = Path(source)
    if path.is_dir():
        found = _folder_files(path)
        audio = {p for p in found if p.suffix.lower() in AUDIO_SUFFIXES}
        files = sorted(audio)
        if others := Counter(p.suffix.lower() or "(none)" for p in found if p not in audio):
            kinds = ", ".join(f"{count} x {suffix}" for suffix, count in others.most_common())
            log.info("%s: ignoring the files that are not audio (%s)", source, kinds)
    elif path.suffix.lower() in AUDIO_SUFFIXES:
        files = [path]
    elif path.suffix.lower() == ".jsonl" and path.is_file():
        return _manifest_inputs(path, skips or SkipLog())
    elif path.is_file():
        files = _listed_files(path)
    else:
        raise DataError("no such audio file, folder or list", file=source)
    if not files:
        raise DataError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found", file=source)
    names = Counter(f.name for f in files)
    if shared := sorted(name for name, count in names.items() if count > 1):
        log.warning(
            "%s: file names that occur more than once: %d (%s...); those files keep their paths as ids",
            source,
            len(shared),
            shared[0],
        )
    return [
        SLUExample(
            id=f.name if names[f.name] == 1 else str(f),
            locale="und",
            text="",
            scenario="",
            action="",
            audio=str(f),
            source="predict",
        )
        for f in files
    ]


def _folder_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, linked folders searched too (each real folder once: a link to an
    ancestor would loop), and dangling links kept: a clip linked into storage that is gone is then
    named by the header check ('audio file not found'), or skipped and counted, not left out unsaid."""
    searched: set[str] = set()
    files: list[Path] = []
    for root, folders, names in os.walk(folder, followlinks=True):
        if os.path.realpath(root) in searched:
            folders.clear()
            continue
        searched.add(os.path.realpath(root))
        files += [Path(root, name) for name in names]
    return files


def _manifest_inputs(path: Path, skips: SkipLog) -> list[SLUExample]:
    """A manifest's speech rows; its text rows, which ``predict`` does not decode, are counted, and
    its bad rows raise or are counted in ``skips``."""
    skipped_before = skips.total
    try:
        rows = read_manifest(path, skips)
    except DataError as error:
        if not error.reason.startswith("missing keys"):
            raise
        hint = (
            "; a manifest carries labels to score against: for unlabelled audio pass a list file or a folder"
        )
        raise DataError(error.reason + hint, file=error.file, record=error.record) from error
    speech = [replace(e, source="predict") for e in rows if e.is_speech]
    every_row_skipped = not rows and skips.total > skipped_before  # setup says so, with the reasons
    if not speech and not every_row_skipped:
        raise DataError("a manifest without rows that have audio", file=str(path))
    if len(speech) < len(rows):
        log.info(
            "%s: rows without audio, not predicted (predict decodes speech): %d",
            path,
            len(rows) - len(speech),
        )
    return speech


def _listed_files(path: Path) -> list[Path]:
    """The files a list names, each once (a repeat, however spelled, would be a second prediction)."""
    listed = [path.parent / line for line in _list_lines(path)]
    once: dict[Path, Path] = {}
    for file in listed:
        once.setdefault(file.resolve(), file)
    files = list(once.values())
    if len(files) < len(listed):
        log.warning(
            "%s: lines repeating a file named before: %d (each file is predicted once)",
            path,
            len(listed) - len(files),
        )
    return files


def _list_lines(path: Path) -> list[str]:
    """The non-blank lines of a list file, stripped (a leading UTF-8 byte-order mark dropped).

    Raises:
        DataError: the file is not UTF-8 text: a list saved in another encoding, or audio (or
            video) of a format ``predict`` does not take; the message says what to do for either.
    """
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_a_list(path, data, error.start) from error
    if "\0" in text:  # valid UTF-8, yet binary: no path holds a NUL byte
        raise _not_a_list(path, data, data.index(b"\0"))
    return [line.strip() for line in text.splitlines() if line.strip()]


def _not_a_list(path: Path, data: bytes, offset: int) -> DataError:
    """The error for a file read as a list of audio paths whose byte at ``offset`` is not such text."""
    line = data.count(b"\n", 0, offset) + 1
    return DataError(
        f"not UTF-8 text (byte 0x{data[offset]:02x} on line {line}), so not a list of audio paths; "
        f"predict takes audio files named {', '.join(AUDIO_SUFFIXES)}: re-save a list as UTF-8, "
        "convert other audio (ffmpeg -i IN OUT.flac)",
        file=str(path),
    )
