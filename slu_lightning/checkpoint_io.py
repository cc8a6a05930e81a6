"""Checkpoint files written atomically, next to their final name.

Lightning's own save goes through an fsspec transaction that stages the file in the system temp
folder and then moves it; when that folder is on another disk the move is a copy straight into
``last.ckpt``, and a crash mid-copy leaves a truncated newest checkpoint. Here the file is written
beside its target and renamed into place, so the newest checkpoint is always a complete one.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from slu_lightning.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are a temporary file in the same folder plus ``os.replace``."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
