import os

import pytest

from slu_lightning.atomic import atomic_write, atomic_write_dir, atomic_write_text, replace_problem


def test_atomic_write_replaces_whole_files_with_normal_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "old")

    def crash(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_dir_swaps_whole_folders_and_keeps_the_old_one_on_failure(tmp_path):
    target = atomic_write_dir(tmp_path / "model", lambda tmp: (tmp / "a").write_text("one"))
    atomic_write_dir(target, lambda tmp: (tmp / "b").write_text("two"))
    assert [p.name for p in target.iterdir()] == ["b"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask

    def crash(tmp):
        (tmp / "c").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_dir(target, crash)
    assert [p.name for p in target.iterdir()] == ["b"] and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_only_absent_empty_or_earlier_outputs_may_be_replaced_whole(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "export.json").write_text("{}")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    (tmp_path / "a_file").write_text("")
    problems = {
        name: replace_problem(tmp_path / name, "export.json", "export")
        for name in ("absent", "empty", "earlier", "mine", "a_file")
    }
    assert problems == {
        "absent": None,
        "empty": None,
        "earlier": None,
        "mine": f"{tmp_path / 'mine'} exists and no earlier export wrote it (no export.json): it is left "
        "as it is; choose another --out, or move it",
        "a_file": f"{tmp_path / 'a_file'} is a file, not a folder",
    }


def test_atomic_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """A rename that reaches the disk before the data leaves the name on an empty file after a power loss."""
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or fsync(fd)
    )
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", str(b))) or replace(a, b))
    path = atomic_write_text(tmp_path / "a.txt", "one")
    assert [event for event, _ in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(str(tmp_path / ".a.txt.")) and events[2][1] == str(tmp_path)
    assert path.read_text() == "one"


def test_a_file_system_that_cannot_sync_a_folder_still_gets_the_file(tmp_path, monkeypatch):
    fsync = os.fsync

    def refuse_folders(fd: int) -> None:
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(22, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", refuse_folders)
    assert atomic_write_text(tmp_path / "a.txt", "one").read_text() == "one"
