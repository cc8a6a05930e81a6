"""Export a trained checkpoint for use outside the toolkit.

A LoRA run exports a peft adapter directory (``save_pretrained`` format, loadable with
``PeftModel.from_pretrained(base, dir)``) plus the processor; ``merged=True`` also writes the
base model with the adapters merged in, loadable with plain transformers. A full fine-tuning run
exports the full model. The checkpoint's own hyper-parameters say how to rebuild the model, so no
config file is needed. Each output directory is written to a temporary sibling and renamed into
place, so an interrupted export never leaves a half-written directory behind.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from slu_lightning.atomic import atomic_write_dir
from slu_lightning.model.finetuning import LoraSettings
from slu_lightning.model.module import SLUModule

log = logging.getLogger(__name__)


def load_for_export(ckpt: str | Path) -> SLUModule:
    """Rebuild the ``SLUModule`` of a checkpoint and load its trained tensors."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    module = SLUModule(
        backbone=hparams["backbone"],
        finetuning=hparams["finetuning"],
        lora=LoraSettings(**hparams["lora"]),
        audio_compression=hparams.get("audio_compression", "none"),
    )
    module.configure_model()
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    return module


def export_checkpoint(ckpt: str | Path, out: str | Path, merged: bool = False) -> Path:
    """Write ``out/adapter`` (LoRA) or ``out/model`` (full), and ``out/merged`` if asked."""
    module = load_for_export(ckpt)
    if module.audio_compression != "none":
        log.warning(
            "%s was trained to read audio compressed (audio_compression=%s), which SLUModule does; "
            "plain transformers run on the export reads uncompressed audio. Decode speech with "
            "`slu-lightning predict` on the checkpoint to get the run's behaviour",
            ckpt,
            module.audio_compression,
        )
    out = Path(out)
    if module.finetuning == "lora":
        atomic_write_dir(out / "adapter", lambda tmp: module.model.save_pretrained(tmp))
        if merged:
            merged_model = module.model.merge_and_unload()
            atomic_write_dir(out / "merged", lambda tmp: _save_full(merged_model, module, tmp))
    else:
        atomic_write_dir(out / "model", lambda tmp: _save_full(module.model, module, tmp))
    return out


def _save_full(model, module: SLUModule, directory: Path) -> None:
    model.save_pretrained(directory)
    module.processor.save_pretrained(directory)
