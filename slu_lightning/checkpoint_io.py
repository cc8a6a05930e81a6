"""Checkpoint files: written atomically, next to their final name, and read with clear errors.

Lightning's own save goes through an fsspec transaction that stages the file in the system temp
folder and then moves it; when that folder is on another disk the move is a copy straight into
``last.ckpt``, and a crash mid-copy leaves a truncated newest checkpoint. Here the file is written
beside its target and renamed into place, so the newest checkpoint is always a complete one.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from slu_lightning.atomic import atomic_write


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not belong to this configuration."""


def check_checkpoint_file(path: str | Path) -> None:
    """Refuse a checkpoint file that is missing, truncated or not a checkpoint before Lightning
    meets it deep in a restore, its tensors mapped, not read. A folder, FSDP's sharded checkpoint,
    is left to Lightning."""
    path = Path(path)
    if not path.is_dir():
        _load(path, mmap=True)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ``slu-lightning fit`` checkpoint's contents, loaded tensors-only (``weights_only=True``)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder (a sharded FSDP checkpoint?), not a checkpoint file")
    return _load(path, mmap=False)


def _load(path: Path, mmap: bool) -> dict[str, Any]:
    """The checkpoint at ``path``, or a ``CheckpointError`` that says what the file is instead."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file{_others(path)}")
    try:
        with zipfile.ZipFile(path):
            pass
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({error}): it is truncated, empty or another kind of "
            f"file{_others(path)}"
        ) from error
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # a torch archive of other objects, or damaged inside
        raise CheckpointError(f"{path}: cannot be loaded as a checkpoint ({error})") from error
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= set(checkpoint):
        raise CheckpointError(
            f"{path}: not a checkpoint of `slu-lightning fit` (no state_dict and hyper_parameters)"
            f"{_others(path)}"
        )
    return checkpoint


def _others(path: Path) -> str:
    """The other checkpoints of ``path``'s folder, as the end of an error message."""
    siblings = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path) if path.parent.is_dir() else []
    return f"; the folder holds {', '.join(siblings)}" if siblings else ""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are a temporary file in the same folder plus ``os.replace``."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
