"""``provenance.json`` across the fits of one run: a resume adds its segment, never replaces the record."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from slu_lightning.provenance import ProvenanceCallback, git_state


def fake_trainer(run_dir: Path, ckpt_path: str | None, global_step: int) -> SimpleNamespace:
    """What the callback asks of a trainer: the run folder, the checkpoint resumed and the step."""
    return SimpleNamespace(
        log_dir=str(run_dir),
        ckpt_path=ckpt_path,
        global_step=global_step,
        is_global_zero=True,
        datamodule=None,
        world_size=1,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


def fit(run_dir: Path, monkeypatch, command: str, ckpt_path: str | None, steps: tuple[int, int]) -> dict:
    """One fit's hooks, from the step it resumes at to the step it ends at; the record it leaves."""
    monkeypatch.setattr(sys, "argv", ["slu-lightning", command])
    callback, trainer = ProvenanceCallback(), fake_trainer(run_dir, ckpt_path, steps[0])
    callback.on_fit_start(trainer, None)
    callback.on_train_start(trainer, None)
    trainer.global_step = steps[1]
    callback.on_fit_end(trainer, None)
    return json.loads((run_dir / "provenance.json").read_text())


def test_a_resume_appends_its_segment_and_keeps_the_first_fits(tmp_path, monkeypatch):
    first = fit(tmp_path, monkeypatch, "fit", None, (0, 10))["segments"][0]
    record = fit(tmp_path, monkeypatch, "fit --ckpt_path last", "last.ckpt", (10, 14))
    assert record["segments"][0] == first  # its command, commit, device, start and wall time
    resumed = record["segments"][1]
    assert resumed["command"] == ["slu-lightning", "fit --ckpt_path last"]
    assert resumed["resumed_from"] == "last.ckpt" and "CPU" in resumed["device"]
    assert [(s["first_step"], s["last_step"]) for s in record["segments"]] == [(0, 10), (10, 14)]
    assert record["global_step"] == 14
    assert record["wall_seconds"] == round(first["wall_seconds"] + resumed["wall_seconds"], 1)


def test_a_fresh_fit_starts_a_new_record_and_a_fit_that_trains_nothing_adds_nothing(tmp_path, monkeypatch):
    fit(tmp_path, monkeypatch, "fit", None, (0, 10))
    assert len(fit(tmp_path, monkeypatch, "fit again", None, (0, 4))["segments"]) == 1
    before = (tmp_path / "provenance.json").read_text()
    callback, trainer = ProvenanceCallback(), fake_trainer(tmp_path, "last.ckpt", 4)
    callback.on_fit_start(trainer, None)  # a finished run resumed, or a resume refused at its restore
    callback.on_fit_end(trainer, None)
    assert (tmp_path / "provenance.json").read_text() == before


def test_a_record_written_before_segments_becomes_the_first_segment(tmp_path, monkeypatch):
    old = {
        "command": ["slu-lightning", "fit"],
        "started": "2026-01-02T03:04:05+0000",
        "resumed_from": None,
        "code": {"commit": "a" * 40, "dirty": False},
        "device": "1 x GPU",
        "wall_seconds": 60.0,
        "global_step": 10,
        "training_data": {"text_examples": 24},
    }
    (tmp_path / "provenance.json").write_text(json.dumps(old))
    record = fit(tmp_path, monkeypatch, "fit --ckpt_path last", "last.ckpt", (10, 12))
    first = record["segments"][0]
    assert first["code"] == old["code"] and first["started"] == old["started"]
    assert (first["first_step"], first["last_step"], first["wall_seconds"]) == (0, 10, 60.0)
    assert "training_data" not in first and record["global_step"] == 12 and record["wall_seconds"] >= 60.0


def test_a_new_untracked_module_marks_the_code_dirty_and_an_untracked_file_elsewhere_does_not(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    package = tmp_path / "package"
    package.mkdir()
    (package / "module.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "package/module.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    (tmp_path / "notes.txt").write_text("scratch\n")
    assert git_state(package)["dirty"] is False
    (package / "new_module.py").write_text("y = 2\n")
    assert git_state(package)["dirty"] is True
