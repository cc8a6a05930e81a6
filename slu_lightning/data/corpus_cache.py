"""A synthesised corpus folder, built once for its config: the cache every generated corpus shares.

The demo corpus, the ASR pretraining corpus, TTS speech of text rows and the unheard-voice test
split are each a folder whose ``corpus.json`` records the key of the config that made it.
``build_cached`` returns at once when that key is the config's, replaces an outdated corpus of the
same kind, and refuses anything else (another kind of corpus, the user's own files). It builds in a
temporary sibling that is renamed into place, so an interrupted build never leaves a folder that
looks finished, and runs that need the same corpus at once (a sweep's cells on a fresh machine)
build it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from slu_lightning.atomic import atomic_write_text, staging_dir

log = logging.getLogger(__name__)


def config_key(config: dict) -> str:
    """The short digest of ``config`` that a finished corpus records as its ``config_key``."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def build_cached(out_dir: Path, config: dict, what: str, build: Callable[[Path], dict]) -> Path:
    """Make ``out_dir`` hold the corpus of ``config``, calling ``build(staging)`` only if it does not.

    ``build`` writes the corpus into an empty folder and returns its summary (with ``hours`` of
    audio), which becomes ``corpus.json``. ``what`` names the corpus in logs and errors, with its
    article ("a demo corpus"). A folder holding anything but a corpus of ``config["kind"]``, or
    such a corpus with files it did not write, is never replaced: ``CorpusFolderError``.
    """
    key = config_key(config)
    if finished_key(out_dir) == key:
        log.info("%s already holds %s of this config", out_dir, what)
        return out_dir
    _check_replaceable(out_dir, config, what)  # at once: a refusal need not wait for another build
    started = time.perf_counter()
    summary, built_here = _build_staged(out_dir, config, what, build)
    if built_here:
        seconds = time.perf_counter() - started
        log.info("built %s in %s (%.2f h of audio) in %.0f s", what, out_dir, summary["hours"], seconds)
    else:
        log.info("another process built %s in %s while this one waited; using it", what, out_dir)
    return out_dir


class CorpusFolderError(FileExistsError):
    """A corpus's output folder that holds something this build must not replace."""


def _check_replaceable(out_dir: Path, config: dict, what: str) -> bool:
    """Refuse a file, a folder of other things, or an outdated corpus with files added by hand;
    returns whether ``out_dir`` holds an outdated corpus of this kind, which a build replaces."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusFolderError(f"{out_dir} is a file, not a folder; choose another folder")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return False
    record = corpus_record(out_dir)
    if record is None or "config_key" not in record or record["config"].get("kind") != config.get("kind"):
        raise CorpusFolderError(f"{out_dir} exists and is not {what}; choose another folder")
    recorded = record.get("files")
    added = sorted({p.name for p in out_dir.iterdir()} - set(recorded)) if recorded else []
    if added:
        raise CorpusFolderError(
            f"{out_dir} holds {what} of another config and files it did not write ({', '.join(added[:5])}); "
            "move them, or choose another folder"
        )
    return True


def corpus_record(folder: Path) -> dict | None:
    """``folder``'s ``corpus.json`` (its ``config`` a dict), or ``None`` if it has none that reads."""
    try:
        record = json.loads((folder / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("config"), dict) else None


def finished_key(folder: Path) -> str | None:
    """The config key of the finished corpus in ``folder``, or ``None`` if there is none."""
    return (corpus_record(folder) or {}).get("config_key")


def _build_staged(out_dir: Path, config: dict, what: str, build: Callable[[Path], dict]) -> tuple[dict, bool]:
    """Build into a temporary sibling of ``out_dir`` under its lock, write ``corpus.json`` and rename
    it into place; returns the summary and whether this process built it (else it waited for
    another that did). What ``out_dir`` holds is checked again under the lock: another process may
    have installed a corpus of another kind there while this one waited."""
    key = config_key(config)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(out_dir):
        if finished_key(out_dir) == key:
            return json.loads((out_dir / "corpus.json").read_text(encoding="utf-8")), False
        if _check_replaceable(out_dir, config, what):
            log.warning("%s holds %s of another config: replacing it", out_dir, what)
        _remove_leftovers(out_dir)
        staging = staging_dir(out_dir, suffix=".partial")
        try:
            summary = {**build(staging), "config_key": key}
            summary["files"] = sorted({p.name for p in staging.iterdir()} | {"corpus.json"})
            text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
            atomic_write_text(staging / "corpus.json", text)
            _install(staging, out_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return summary, True


def _remove_leftovers(out_dir: Path) -> None:
    """Delete the staging and outdated folders of builds that were killed (SIGKILL, power loss):
    called under the build lock, so no live build owns them."""
    name = re.escape(out_dir.name)
    leftover = re.compile(rf"\.{name}\.([a-z0-9_]{{8}}\.partial|\d+\.outdated)")
    for path in out_dir.parent.iterdir():
        if leftover.fullmatch(path.name) and path.is_dir():
            log.info("removing %s, left by an interrupted build", path)
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _build_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s build lock, saying so when another process holds it."""
    lock = FileLock(out_dir.with_name(f".{out_dir.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process to finish building %s", out_dir)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _install(staging: Path, out_dir: Path) -> None:
    """Rename the finished ``staging`` folder to ``out_dir``, replacing an outdated corpus there."""
    outdated = None
    if out_dir.exists():
        outdated = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.outdated")
        os.replace(out_dir, outdated)
    os.replace(staging, out_dir)
    if outdated is not None:
        shutil.rmtree(outdated, ignore_errors=True)
