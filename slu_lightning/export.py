"""Export a trained checkpoint for use outside the toolkit.

A LoRA run exports a peft adapter directory (``save_pretrained`` format, loadable with
``PeftModel.from_pretrained(base, dir)``), carrying the audio encoder and projector whole (peft's
``modules_to_save``) when the run trained them; ``merged=True`` also writes the base model with
the adapters merged in, loadable with plain transformers. A full fine-tuning run exports the full model.
Every directory also holds the processor, a ``generation_config.json`` with the run's decoding
(beam width, answer length, ``<|im_end|>`` as the end) and ``export.json``: the checkpoint it came
from, the dtype the run loaded its backbone in (``base_dtype``: load the base for the adapter in it),
the trainer's ``precision`` (a mixed-precision run's ``test`` decodes under autocast) and the run's
prompt templates, which a model fine-tuned on them needs, with the label inventory its ``{labels}``
slot was filled with (``prompt.labels``). The checkpoint's own
hyper-parameters say how to rebuild the model, so no config file is needed.

Each output directory is written to a temporary sibling, and all are renamed into place once every
one is written, so an interrupted export never leaves a half-written directory behind, nor an
adapter and a merged model of two checkpoints; an existing directory is replaced only when an
earlier export wrote it (its ``export.json``), never a folder of the user's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slu_lightning.atomic import atomic_write_dirs, replace_problem
from slu_lightning.checkpoint_io import read_checkpoint
from slu_lightning.data.datamodules import data_state
from slu_lightning.model.finetuning import WHOLE_MODULES, module_of, save_whole_modules
from slu_lightning.model.module import SLUModule

log = logging.getLogger(__name__)
RECORD = "export.json"
MIXED_PRECISIONS = {"bf16-mixed": "bfloat16", "16-mixed": "float16"}
"""Trainer precisions whose ``test`` decodes under autocast, with autocast's dtype."""


class ExportError(ValueError):
    """An export that cannot be written as asked (its output folder is a file, unwritable, or not an
    export's)."""


def load_for_export(ckpt: str | Path) -> SLUModule:
    """Rebuild the ``SLUModule`` of a checkpoint with its saved settings and load its trained tensors."""
    return module_from_checkpoint(read_checkpoint(ckpt))


def module_from_checkpoint(checkpoint: dict) -> SLUModule:
    """The ``SLUModule`` of a checkpoint already read (``read_checkpoint``), its tensors loaded, its
    backbone in the dtype the run loaded it in (``base_dtype``: a LoRA run's frozen base in bfloat16
    decodes otherwise than in float32). Checkpoints saved before it was recorded loaded float32."""
    module = SLUModule(**module_arguments({"base_dtype": "float32", **checkpoint["hyper_parameters"]}))
    module.configure_model()
    module.on_load_checkpoint(checkpoint)
    _hold_in_float32(module, checkpoint["state_dict"])
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    return module


def _hold_in_float32(module: SLUModule, trained: dict) -> None:
    """Make every parameter the checkpoint holds float32, as training held it: built without the
    run's data module, the module does not know which parts a curriculum phase trained, and would
    round a phase-trained audio side into a bfloat16 base (``test`` decodes it in float32)."""
    parameters = dict(module.named_parameters())
    for name in trained:
        if name in parameters:
            parameters[name].data = parameters[name].data.float()


def module_arguments(hparams: dict) -> dict:
    """``SLUModule`` arguments from a checkpoint's saved hyper-parameters, where settings such as
    ``lora`` or ``generation`` are stored as dicts: each becomes the dataclass its argument names."""
    hints = typing.get_type_hints(SLUModule.__init__)
    return {
        key: hints[key](**value) if dataclasses.is_dataclass(hints[key]) else value
        for key, value in hparams.items()
        if key in hints
    }


def export_checkpoint(ckpt: str | Path, out: str | Path, merged: bool = False) -> Path:
    """Write ``out/adapter`` (LoRA) or ``out/model`` (full), and ``out/merged`` if asked."""
    out = Path(out)
    if problem := out_problem(out):
        raise ExportError(problem)
    checkpoint = read_checkpoint(ckpt)
    lora = checkpoint["hyper_parameters"]["finetuning"] == "lora"
    if merged and not lora:
        log.warning(
            "--merged: %s is a full fine-tuning, with no adapters to merge; writing %s", ckpt, out / "model"
        )
    targets = [out / "adapter", *([out / "merged"] if merged else [])] if lora else [out / "model"]
    for directory in targets:  # before the model is built or anything written
        if problem := replace_problem(directory, RECORD, "export"):
            raise ExportError(problem)
    module = module_from_checkpoint(checkpoint)
    if module.audio_compression != "none":
        log.warning(
            "%s was trained to read audio compressed (audio_compression=%s), which SLUModule does; "
            "plain transformers run on the export reads uncompressed audio. Decode speech with "
            "`slu-lightning predict` on the checkpoint to get the run's behaviour",
            ckpt,
            module.audio_compression,
        )
    record = export_record(ckpt, module, checkpoint)
    if record["precision"] in MIXED_PRECISIONS:
        log.warning(
            "%s was tested under precision %s, which decodes under autocast; decode the export inside "
            "torch.autocast(device_type, dtype=torch.%s) to reproduce its test",
            ckpt,
            record["precision"],
            MIXED_PRECISIONS[record["precision"]],
        )
    if lora and (whole := whole_parts_trained(checkpoint)):
        save_whole_modules(module.model, whole)
    writes = {targets[0]: _contents(lambda: module.model, module, record)}  # adapter, or full model
    if lora and merged:  # merged after the adapter is saved: merging changes the model in place
        writes[out / "merged"] = _contents(module.model.merge_and_unload, module, record)
    atomic_write_dirs(writes)  # all or none: never an adapter and a merged model of two checkpoints
    log.info("wrote %s", ", ".join(map(str, writes)))
    _warn_of_other_exports(out, targets, record["checkpoint"])
    return out


def out_problem(out: Path) -> str | None:
    """Why no export can be written under ``out``, found before the model is built: a file on its
    path, or a folder that refuses a new entry. Tried by making one, since permission bits do not
    say (root passes every check, yet cannot write under ``/sys``); None when it can be written."""
    existing = next(folder for folder in (out, *out.parents) if folder.exists())
    if not existing.is_dir():
        return f"--out {out}: {existing} is a file, not a folder"
    try:
        Path(tempfile.mkdtemp(prefix=".export-probe.", dir=existing)).rmdir()
    except OSError as error:
        return f"--out {out} cannot be written: {error.strerror} in {existing}"
    return None


def whole_parts_trained(checkpoint: dict) -> list[str]:
    """The parts a LoRA run trained whole (audio encoder, projector): those its checkpoint holds
    tensors of, whether switched on for the whole run or in some curriculum phase only."""
    parts = {module_of(name.removeprefix("model.")) for name in checkpoint["state_dict"]}
    return sorted(parts & set(WHOLE_MODULES))


def _warn_of_other_exports(out: Path, written: list[Path], checkpoint: str) -> None:
    """Name the folders beside this export that an earlier export of another checkpoint wrote: they
    are left as they are, and would otherwise pass for this checkpoint's."""
    for folder in sorted({out / name for name in ("adapter", "merged", "model")} - set(written)):
        if (folder / RECORD).is_file():
            earlier = json.loads((folder / RECORD).read_text(encoding="utf-8")).get("checkpoint")
            if earlier != checkpoint:
                log.warning(
                    "%s is an earlier export of %s, not of this checkpoint; it is left as it is",
                    folder,
                    earlier,
                )


def export_record(ckpt: str | Path, module: SLUModule, checkpoint: dict) -> dict:
    """``export.json``: where the export came from, how its run decoded, and the prompts the model
    was fine-tuned on. ``float32_modules`` are the adapter's whole modules (a trained audio side),
    which the run held in float32: cast them so in a base loaded in ``base_dtype`` before loading the
    adapter, or peft rounds them into it. ``precision`` is ``None`` and ``prompt.labels`` empty for
    checkpoints saved before they were recorded."""
    labels = data_state(checkpoint).get("prompt_labels", "")
    lora = module.finetuning == "lora"
    return {
        "checkpoint": str(Path(ckpt).resolve()),
        "backbone": module.hparams["backbone"],
        "finetuning": module.finetuning,
        "audio_compression": module.audio_compression,
        "base_dtype": str(module.base_dtype).removeprefix("torch."),
        "float32_modules": [WHOLE_MODULES[part] for part in whole_parts_trained(checkpoint)] if lora else [],
        "precision": checkpoint.get("precision"),
        "prompt": dataclasses.asdict(module.prompt) | {"labels": labels},
        "generation": dataclasses.asdict(module.generation),
    }


def _contents(model: Callable[[], Any], module: SLUModule, record: dict) -> Callable[[Path], None]:
    """What fills an export folder: the ``model()`` (peft adapters or a full model, got only as the
    folder is written), the processor, the decoding and the record."""
    decoding = module.decoding()

    def save(tmp: Path) -> None:
        model().save_pretrained(tmp)
        module.processor.save_pretrained(tmp)
        decoding.save_pretrained(tmp)
        (tmp / RECORD).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    return save
