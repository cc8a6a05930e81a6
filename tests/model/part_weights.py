"""What the per-phase freeze switches did to the weights, per rank: a callback that keeps each part's
trainable tensors at the start of a fit and at each epoch's end, a curriculum that switches the audio
side at its phase boundary, and the checks the one-process and DDP tests make."""

from pathlib import Path

import lightning as L
import torch
import yaml

from tests.test_cli import write_config

AUDIO_SIDE = ("audio_encoder", "projector")


class PartWeights(L.Callback):
    """Saves ``{"start" | "epoch <e>": {part: [tensors]}}`` as ``<out>/rank<r>.pt`` at each epoch's end."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.snapshots: dict[str, dict[str, list[torch.Tensor]]] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.snapshots["start"] = part_weights(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.snapshots[f"epoch {trainer.current_epoch}"] = part_weights(pl_module)
        torch.save(self.snapshots, self.out / f"rank{trainer.global_rank}.pt")


def part_weights(module) -> dict[str, list[torch.Tensor]]:
    """A copy of the tensors each part trains when switched on."""
    return {part: [p.detach().clone() for p in params] for part, params in module.candidates.items()}


def freezing_config(tmp_path: Path, corpus: Path, audio_side_by_default: bool) -> Path:
    """The test CLI's two-epoch curriculum with the audio side frozen in the text phase and trained in
    the text+speech one: switched off by the phase (``audio_side_by_default``, as the LoRA configs
    do) or switched on by the next. Weight decay: a part that got zero gradients would still move."""
    path = write_config(tmp_path, corpus, "CurriculumDataModule")
    config = yaml.safe_load(path.read_text())
    model = config["model"]["init_args"]
    model["optimizer"]["weight_decay"] = 0.1
    if audio_side_by_default:
        model.update(train_audio_encoder=True, train_projector=True)
        config["data"]["init_args"]["phases"][0].update(train_audio_encoder=False, train_projector=False)
    config["trainer"]["callbacks"] = [
        {"class_path": f"{__name__}.{PartWeights.__name__}", "init_args": {"out": str(tmp_path)}}
    ]
    path.write_text(yaml.safe_dump(config))
    return path


def changed(before: list[torch.Tensor], after: list[torch.Tensor]) -> list[bool]:
    return [not torch.equal(a, b) for a, b in zip(before, after, strict=True)]


def assert_frozen_then_trained(snapshots: dict) -> None:
    """The audio side did not move in the text phase (epoch 0) and every tensor of it moved in the next;
    the language model's adapters moved in both."""
    start, first, second = snapshots["start"], snapshots["epoch 0"], snapshots["epoch 1"]
    for part in AUDIO_SIDE:
        assert not any(changed(start[part], first[part])), part
        assert all(changed(first[part], second[part])), part
    assert any(changed(start["llm"], first["llm"])) and any(changed(first["llm"], second["llm"]))
