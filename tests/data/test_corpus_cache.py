import json
import os
import threading
from pathlib import Path

import pytest

from slu_lightning.data.corpus_cache import CorpusFolderError, build_cached, config_key

CONFIG = {"format": 1, "kind": "toy", "seed": 0}


def writer(marker: str, started: threading.Event | None = None, release: threading.Event | None = None):
    """A corpus build that leaves a file named ``marker``, optionally pausing half way."""

    def write(staging: Path) -> dict:
        if started is not None:
            started.set()
            assert release.wait(10)
        (staging / marker).write_text(marker)
        return {"config": CONFIG, "marker": marker, "hours": 0.5}

    return write


def summary(folder: Path) -> dict:
    return json.loads((folder / "corpus.json").read_text(encoding="utf-8"))


def second_waited_for_first(
    first: threading.Thread, second: threading.Thread, started: threading.Event, release: threading.Event
) -> None:
    """Start ``first``, paused half way through its build; start ``second``, check that it waits on
    the build lock rather than building; then let both finish."""
    first.start()
    assert started.wait(10)
    second.start()
    second.join(0.5)
    assert second.is_alive()
    release.set()
    first.join(10)
    second.join(10)


def test_runs_needing_one_corpus_at_once_build_it_once(tmp_path, caplog):
    """Two cells of a sweep on a fresh machine: the second waits for the first's build and uses it."""
    out = tmp_path / "corpus"
    started, release = threading.Event(), threading.Event()
    first = threading.Thread(
        target=build_cached, args=(out, CONFIG, "a toy corpus", writer("first", started, release))
    )
    second = threading.Thread(target=build_cached, args=(out, CONFIG, "a toy corpus", writer("second")))
    with caplog.at_level("INFO", logger="slu_lightning.data.corpus_cache"):
        second_waited_for_first(first, second, started, release)
    assert summary(out)["marker"] == "first" and summary(out)["config_key"] == config_key(CONFIG)
    assert (out / "first").is_file() and not (out / "second").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".corpus.lock", "corpus"]  # no staging folder left
    messages = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith("built a toy corpus") for m in messages) == 1  # only the run that built says so
    assert any(m.startswith("waiting for another process") for m in messages)
    assert any(m.startswith("another process built a toy corpus") for m in messages)


def test_a_finished_corpus_is_kept_and_one_of_another_config_replaced(tmp_path):
    out = tmp_path / "corpus"
    assert build_cached(out, CONFIG, "a toy corpus", writer("first")) == out
    inode = out.stat().st_ino
    build_cached(out, CONFIG, "a toy corpus", writer("second"))
    assert out.stat().st_ino == inode and not (out / "second").exists()
    build_cached(out, {**CONFIG, "seed": 1}, "a toy corpus", writer("third"))
    assert (out / "third").is_file() and not (out / "first").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".corpus.lock", "corpus"]  # no outdated copy left


def test_a_folder_of_another_kind_or_the_users_own_is_never_replaced(tmp_path):
    build_cached(tmp_path / "corpus", CONFIG, "a toy corpus", writer("first"))
    with pytest.raises(FileExistsError, match="corpus exists and is not an other corpus"):
        build_cached(tmp_path / "corpus", {**CONFIG, "kind": "other"}, "an other corpus", writer("x"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="mine exists and is not a toy corpus"):
        build_cached(tmp_path / "mine", CONFIG, "a toy corpus", writer("x"))
    assert (tmp_path / "corpus" / "first").is_file() and (
        tmp_path / "mine" / "notes.txt"
    ).read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    build_cached(tmp_path / "empty", CONFIG, "a toy corpus", writer("first"))  # an empty folder is fine
    assert (tmp_path / "empty" / "first").is_file()


def test_an_outdated_corpus_holding_the_users_files_is_kept_and_a_file_is_refused(tmp_path, caplog):
    out = tmp_path / "corpus"
    build_cached(out, CONFIG, "a toy corpus", writer("first"))
    (out / "my_results.txt").write_text("keep me")
    with pytest.raises(CorpusFolderError, match=r"files it did not write \(my_results.txt\)"):
        build_cached(out, {**CONFIG, "seed": 1}, "a toy corpus", writer("second"))
    assert (out / "my_results.txt").read_text() == "keep me" and (out / "first").is_file()
    (out / "my_results.txt").unlink()
    with caplog.at_level("WARNING", logger="slu_lightning.data.corpus_cache"):
        build_cached(out, {**CONFIG, "seed": 1}, "a toy corpus", writer("second"))
    assert "holds a toy corpus of another config: replacing it" in caplog.text
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CorpusFolderError, match="a_file is a file, not a folder"):
        build_cached(tmp_path / "a_file", CONFIG, "a toy corpus", writer("x"))


def test_a_killed_builds_leftovers_are_removed_and_the_corpus_is_readable_by_others(tmp_path):
    out = tmp_path / "corpus"
    killed = [tmp_path / ".corpus.ab12cd34.partial", tmp_path / ".corpus.4242.outdated"]
    unrelated = [tmp_path / ".corpus.v2.ab12cd34.partial", tmp_path / "corpus-b"]
    for folder in killed + unrelated:
        folder.mkdir()
    umask = os.umask(0o022)
    try:
        build_cached(out, CONFIG, "a toy corpus", writer("first"))
    finally:
        os.umask(umask)
    assert not any(folder.exists() for folder in killed) and all(folder.exists() for folder in unrelated)
    assert out.stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700: others on the machine may read it


def test_a_corpus_another_kind_installed_while_this_build_waited_is_not_replaced(tmp_path, caplog):
    """The second build passes the early check (nothing there yet), waits on the lock while the
    first installs its corpus, and must then refuse rather than replace it."""
    out = tmp_path / "corpus"
    started, release = threading.Event(), threading.Event()
    first = threading.Thread(
        target=build_cached, args=(out, CONFIG, "a toy corpus", writer("first", started, release))
    )
    errors: list[BaseException] = []

    def build_other() -> None:
        try:
            build_cached(out, {**CONFIG, "kind": "other"}, "an other corpus", writer("second"))
        except CorpusFolderError as error:
            errors.append(error)

    second = threading.Thread(target=build_other)
    with caplog.at_level("INFO", logger="slu_lightning.data.corpus_cache"):
        second_waited_for_first(first, second, started, release)  # past the early check
    assert len(errors) == 1 and "corpus exists and is not an other corpus" in str(errors[0])
    assert summary(out)["marker"] == "first" and (out / "first").is_file() and not (out / "second").exists()
    assert not any(record.getMessage().startswith("built an other corpus") for record in caplog.records)
