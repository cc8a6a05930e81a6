"""Atomic file writes: a reader never sees a half-written file, and a crash leaves the old one."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
# what atomic_write's mkstemp names: "." + the target's name + "." + 8 random characters + ".tmp"
TEMPORARY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the normal permissions
    try:
        write(Path(tmp))
        _fsync(tmp)  # else a power loss after the rename can leave the new name on an empty file
        os.replace(tmp, path)
        _fsync_folder(path.parent)  # the rename itself
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's entries where the file system can: some (network ones) refuse to sync a
    folder, and the file is already complete and in place."""
    try:
        _fsync(folder)
    except OSError as error:
        log.debug("could not sync the folder %s: %s", folder, error)


def _fsync(path: str | Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of ``atomic_write`` that a killed process (SIGKILL, power loss)
    left in ``folder``: nothing else removes them, and a checkpoint's can be as large as the model.
    Only for a folder no other process is writing to (a run's checkpoints as the run starts)."""
    stale = [p for p in sorted(folder.glob(".*.tmp")) if TEMPORARY.fullmatch(p.name) and p.is_file()]
    for path in stale:
        log.warning(
            "removing %s (%.1f MB), left by a write that never finished", path, path.stat().st_size / 1e6
        )
        path.unlink()
    return stale


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_dir(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` on a temporary folder beside ``path``, then swap it into place."""
    path = Path(path)
    atomic_write_dirs({path: write})
    return path


def atomic_write_dirs(writes: dict[Path, Callable[[Path], None]]) -> None:
    """Write several folders as one: call each ``write(tmp_dir)`` on a temporary folder beside its
    path, in order, then swap them all into place. A failure while writing changes none of them. The
    old folders are moved aside before the new ones are renamed in, and deleted after, so that only a
    crash among those few renames can leave a folder missing; none is ever left half-written."""
    staged: dict[Path, Path] = {}
    try:
        for path, write in writes.items():
            staged[path] = staging_dir(path)
            write(staged[path])
        # renaming a folder onto an empty one replaces it (POSIX)
        old = [path.rename(staging_dir(path, ".old")) for path in staged if path.exists()]
        for path, staging in staged.items():
            staging.rename(path)
    finally:  # the staging folders of a failed write; those renamed into place are gone already
        for staging in staged.values():
            shutil.rmtree(staging, ignore_errors=True)
    for folder in old:
        shutil.rmtree(folder)


def replace_problem(folder: Path, record: str, writer: str) -> str | None:
    """Why ``folder`` may not be replaced whole by a new output of ``writer``: it is a file, or it
    holds files and no ``record`` (the file each ``writer`` output carries), so the user's own
    files could be in it. None when it may: absent, empty, or an earlier output."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if folder.is_dir() and any(folder.iterdir()) and not (folder / record).is_file():
        return (
            f"{folder} exists and no earlier {writer} wrote it (no {record}): it is left as it is; "
            "choose another --out, or move it"
        )
    return None


def staging_dir(path: Path, suffix: str = "") -> Path:
    """A new empty folder beside ``path`` (hidden, named after it) to build it in before a rename,
    with the normal permissions: ``mkdtemp`` makes it 0700, and a renamed corpus or model would
    keep that, unreadable to the rest of a shared machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent))
    staging.chmod(0o777 & ~_umask())
    return staging


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
