"""A provenance record in every run directory: what code, packages, data and machine made it.

``provenance.json`` is written when fitting starts and completed when it ends (wall time, final
step), so a number in a report can be traced to the exact code, data files and hardware.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import lightning as L
import torch

from slu_lightning.atomic import atomic_write_text

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
    """The commit of the checkout holding ``source`` and whether it had uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
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
    """Writes ``<run dir>/provenance.json`` at fit start and completes it at fit end."""

    def __init__(self) -> None:
        self.record: dict = {}
        self.started = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run_dir = trainer.log_dir  # a collective under DDP: every rank asks
        self.started = time.time()
        datamodule = trainer.datamodule
        corpus = getattr(datamodule, "corpus", None)
        self.record = {
            "command": sys.argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "resumed_from": str(trainer.ckpt_path) if trainer.ckpt_path else None,
            "code": git_state(Path(__file__).parent),
            "packages": package_versions(),
            "device": device_description(trainer),
            "corpus": corpus.describe() if corpus is not None else None,
            "data_files": file_hashes(list(getattr(corpus, "paths", {}).values())),
        }
        self._write(trainer, run_dir)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run_dir = trainer.log_dir
        self.record.update(
            {"wall_seconds": round(time.time() - self.started, 1), "global_step": trainer.global_step}
        )
        self._write(trainer, run_dir)

    def _write(self, trainer: L.Trainer, run_dir: str | None) -> None:
        if trainer.is_global_zero and run_dir:
            training_data = Path(run_dir) / "training_data.json"
            if training_data.is_file():
                self.record["training_data"] = json.loads(training_data.read_text())
            atomic_write_text(Path(run_dir) / "provenance.json", json.dumps(self.record, indent=1))
