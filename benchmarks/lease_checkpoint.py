"""Pack a pretraining checkpoint to fit a GPU lease's 64 MiB carry limit, and unpack it there.

AdamW's two moment tensors are twice the model's size. Carried in bfloat16 they halve the file
(61 MB -> 41 MB for the tiny stand-in once every weight trains), which with the wheels the device
image lacks (24 MB) fits the limit. The weights stay float32. The moments come back as float32
holding bfloat16's 8 significant bits (relative error at most 0.4 %), far inside their own
step-to-step noise; the resumed run is otherwise the same.

A run started from an exported backbone (``--backbone DIR``) reloads DIR on resume before the
checkpoint replaces every weight. Where DIR's 11 MB of weights would pass the limit, carry DIR
without ``model.safetensors``: ``unpack`` writes it there from the checkpoint's own weights.

    python -m benchmarks.lease_checkpoint pack RUN_DIR      # checkpoints/last.ckpt -> lease.ckpt
    python -m benchmarks.lease_checkpoint unpack RUN_DIR    # checkpoints/lease.ckpt -> last.ckpt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from slu_lightning.atomic import atomic_write

MOMENTS = ("exp_avg", "exp_avg_sq")


def convert_moments(checkpoint: dict, dtype: torch.dtype) -> dict:
    """``checkpoint`` with every optimizer's moment tensors cast to ``dtype`` (in place)."""
    for optimizer in checkpoint["optimizer_states"]:
        for state in optimizer["state"].values():
            for name in MOMENTS:
                if name in state:
                    state[name] = state[name].to(dtype)
    return checkpoint


def convert(source: Path, target: Path, dtype: torch.dtype) -> dict:
    """Write ``source`` with its moments in ``dtype`` to ``target``; returns the checkpoint written."""
    checkpoint = convert_moments(torch.load(source, map_location="cpu", weights_only=True), dtype)
    atomic_write(target, lambda tmp: torch.save(checkpoint, tmp))
    sizes = [f"{path} ({path.stat().st_size / 1e6:.1f} MB)" for path in (source, target)]
    print(" -> ".join(sizes))
    return checkpoint


def restore_backbone_weights(run_dir: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """Give the run's backbone folder weights if it was carried without them (see above).

    The weights written are the checkpoint's (``state_dict``), not the backbone's original ones: the
    resumed run loads them only to replace them with the same checkpoint, so only their names and
    shapes matter.
    """
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    backbone = Path(json.loads((run_dir / "settings.json").read_text(encoding="utf-8"))["backbone"])
    if not (backbone / "config.json").is_file() or (backbone / "model.safetensors").is_file():
        return  # a named backbone ("tiny"), or one carried whole
    model = Qwen2AudioForConditionalGeneration(Qwen2AudioConfig.from_pretrained(backbone))
    model.load_state_dict({name.removeprefix("model."): tensor for name, tensor in state_dict.items()})
    model.half().save_pretrained(backbone)
    print(f"{backbone}/model.safetensors written from the checkpoint")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    folder = args.run_dir / "checkpoints"
    if args.action == "pack":
        convert(folder / "last.ckpt", folder / "lease.ckpt", torch.bfloat16)
    else:
        checkpoint = convert(folder / "lease.ckpt", folder / "last.ckpt", torch.float32)
        restore_backbone_weights(args.run_dir, checkpoint["state_dict"])


if __name__ == "__main__":
    main()
