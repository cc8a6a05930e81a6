"""A provenance record in every run directory: what code, packages, data and machine made it.

``provenance.json`` holds one segment per fit of the run: a fresh fit starts the record, and each
resume appends its own segment to the earlier ones (the commit, command, packages, device and data
it ran with, when it started, its wall time and the steps it trained), so a number in a report can
be traced to the exact code, data files and hardware of every part of the training. Its totals are
the run's last step and the wall time of all segments together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import lightning as L
import torch

from slu_lightning.atomic import atomic_write_text

log = logging.getLogger(__name__)
RECORD = "provenance.json"

PACKAGES = (
    "slu-lightning",
    "torch",
    "torchaudio",
    "lightning",
    "transformers",
    "peft",
    "torchmetrics",
    "datasets",
    "tokenizers",
    "soundfile",
    "espeakng-loader",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_state(source: Path) -> dict[str, str | bool]:
    """The commit of the checkout holding ``source`` and whether it had uncommitted changes: to a
    tracked file anywhere, or a file under ``source`` that git does not track yet (a new module the
    run may import)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(
                git("status", "--porcelain", "--untracked-files=no")
                or git("status", "--porcelain", "--untracked-files=all", "--", ".")
            ),
        }
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown (not a git checkout)", "dirty": False}


def file_hashes(paths: list[str]) -> dict[str, str]:
    """SHA-256 of each existing data file (manifests, corpus JSONL files)."""
    hashes = {}
    for path in paths:
        if Path(path).is_file():
            hashes[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return hashes


def device_description(trainer: L.Trainer) -> str:
    if torch.cuda.is_available() and trainer.strategy.root_device.type == "cuda":
        return f"{trainer.world_size} x {torch.cuda.get_device_name(trainer.strategy.root_device)}"
    cpu = platform.processor() or platform.machine()
    return f"{trainer.world_size} x CPU ({cpu}, {torch.get_num_threads()} threads)"


class ProvenanceCallback(L.Callback):
    """Adds this fit's segment to ``<run dir>/provenance.json`` when training starts and completes it
    when the fit ends.

    The segment is written once the checkpoint is restored (``on_train_start``), at the step it
    resumes from: a refused resume adds nothing, and neither does the resume of a run with nothing
    left to train."""

    def __init__(self) -> None:
        self.segments: list[dict] = []
        self.started = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started, self.segments = time.time(), []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run_dir = trainer.log_dir  # a collective under DDP: every rank asks
        corpus = getattr(trainer.datamodule, "corpus", None)
        earlier = earlier_segments(Path(run_dir) / RECORD) if trainer.ckpt_path and run_dir else []
        self.segments = [
            *earlier,
            {
                "command": sys.argv,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
                "resumed_from": str(trainer.ckpt_path) if trainer.ckpt_path else None,
                "code": git_state(Path(__file__).parent),
                "packages": package_versions(),
                "device": device_description(trainer),
                "corpus": corpus.describe() if corpus is not None else None,
                "data_files": file_hashes(list(getattr(corpus, "paths", {}).values())),
                "first_step": trainer.global_step,
            },
        ]
        self._write(trainer, run_dir)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run_dir = trainer.log_dir
        if self.segments:  # training started
            self.segments[-1].update(
                {"last_step": trainer.global_step, "wall_seconds": round(time.time() - self.started, 1)}
            )
            self._write(trainer, run_dir)

    def _write(self, trainer: L.Trainer, run_dir: str | None) -> None:
        if trainer.is_global_zero and run_dir:
            record = totals(self.segments)
            training_data = Path(run_dir) / "training_data.json"
            if training_data.is_file():
                record["training_data"] = json.loads(training_data.read_text())
            atomic_write_text(Path(run_dir) / RECORD, json.dumps(record, indent=1))


def totals(segments: list[dict]) -> dict:
    """The record of a run's segments: its last step (the step the running segment resumed from,
    until it ends) and the wall time of the segments that ended, summed."""
    last = segments[-1]
    return {
        "global_step": last.get("last_step", last.get("first_step")),
        "wall_seconds": round(sum(segment.get("wall_seconds", 0.0) for segment in segments), 1),
        "segments": segments,
    }


def earlier_segments(path: Path) -> list[dict]:
    """The segments of the run's earlier fits in ``path``; a record written before segments (one
    fit, the last, with its final step as ``global_step``) is read as one segment. None readable:
    none, with a warning, so that a resume never fails over its provenance."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        log.warning("%s cannot be read (%s): the run's earlier fits are left out of it", path, error)
        return []
    if "segments" in record:
        return record["segments"]
    segment = {key: value for key, value in record.items() if key not in ("training_data", "global_step")}
    first = 0 if record.get("resumed_from") is None else None  # the fits before it were overwritten
    return [{**segment, "first_step": first, "last_step": record.get("global_step")}]
