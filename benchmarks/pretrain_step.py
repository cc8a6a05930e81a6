"""Pretraining step time of the tiny stand-in: the alignment loss per token (the old path) against
one gather-and-add for the whole batch (`span_means`), in the same process, on the same batch.

On a GPU the tiny model's step is bound by kernel launches, not arithmetic: a lent H100 ran the
six-loss recipe at 1.67 steps a second at batch 96 (three times the time of batch 32), because the
alignment loss took a mean per token (forward and backward) and read each clip's CTC
log-probabilities back to the host one clip at a time. This script times one training step
(`TinyPretrainModule.losses` with the run's loss weights + backward + AdamW; bf16 autocast on a
GPU, float32 on a CPU) per path and batch size, and counts the aten operators a step dispatches
(the launch count on a GPU).

Paths:
- `per-token`: the alignment loss as it was computed before `span_means`: per clip, its
  log-probabilities copied to the host and forced-aligned, then one mean per aligned token
  (`per_token_alignment_loss` below; its spans come from today's `token_segments`, so the old
  `merge_tokens` score means are not in it and the speed-up is, if anything, understated);
- `batched`: `slu_lightning.pretrain.objectives.token_alignment_loss`.
Both give the same loss (printed).

Data: the `tiny` ASR pretraining corpus (eSpeak NG, built on first use), one batch per size; the
model: the bundled `tiny-heard`. Run from the repository root:

    python -m benchmarks.pretrain_step                 # GPU if there is one
    python -m benchmarks.pretrain_step --batch-sizes 8 --steps 2 --warmup 1   # a quick CPU look
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from contextlib import nullcontext
from unittest import mock

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus
from slu_lightning.pretrain import module as pretrain_module
from slu_lightning.pretrain.data import PretrainDataModule
from slu_lightning.pretrain.module import TinyPretrainModule
from slu_lightning.pretrain.objectives import ctc_log_probs, token_distance, token_segments


def per_token_alignment_loss(
    clips: list[Tensor], targets: list[list[int]], embeddings: Tensor, blank: int
) -> tuple[Tensor, int]:
    """The baseline: the alignment loss with a host copy per clip and a mean per aligned token."""
    means, wanted = [], []
    for clip, target in zip(clips, targets, strict=True):
        with torch.no_grad():
            segments = token_segments(ctc_log_probs(clip, embeddings), target, blank)
        if segments is None:
            continue
        means += [clip[start:end].mean(dim=0) for start, end in segments]
        wanted += target
    return token_distance(torch.stack(means), wanted, embeddings), len(wanted)


class OperatorCount(TorchDispatchMode):
    """Counts the aten operators dispatched while active (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def first_batch(module: TinyPretrainModule, batch_size: int, device: torch.device) -> dict:
    """One training batch of the tiny ASR corpus, its tensors on ``device``."""
    corpus = make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0)
    data = PretrainDataModule(module.collator, corpus=corpus, batch_size=batch_size, num_workers=0)
    data.setup("fit")
    data.trainer = mock.Mock(current_epoch=0, global_step=0, fit_loop=None)
    with mock.patch("slu_lightning.pretrain.data.resume_batch", return_value=0):
        batch = next(iter(data.train_dataloader()))
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def step(module: TinyPretrainModule, batch: dict, optimizer: torch.optim.Optimizer) -> float:
    """One training step; returns the weighted loss."""
    autocast = torch.autocast("cuda", torch.bfloat16) if batch["input_features"].is_cuda else nullcontext()
    with autocast:
        losses = module.losses(batch)
        total = sum(getattr(module.weights, name) * value for name, value in losses.items())
    total.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return losses["align"].item()


def time_path(
    module: TinyPretrainModule, batch: dict, args: argparse.Namespace
) -> tuple[float, int | None, float]:
    """Median seconds a step, operators a step (None on CUDA, whose ``ctc_loss`` refuses host
    lengths under the counting mode), and the first step's alignment loss."""
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-9)
    on_gpu = batch["input_features"].is_cuda
    with nullcontext() if on_gpu else OperatorCount() as ops:
        align = step(module, batch, optimizer)
    for _ in range(args.warmup):
        step(module, batch, optimizer)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    times = []
    for _ in range(args.steps):
        sync()
        start = time.perf_counter()
        step(module, batch, optimizer)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), None if on_gpu else ops.count, align


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per path and size")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "CPU"
    print(f"{name}; torch {torch.__version__}; {'bf16 autocast' if device.type == 'cuda' else 'float32'}")
    module = TinyPretrainModule(backbone="tiny-heard", audio_tasks="transcribe,json,first_words").to(device)
    print("| batch | path | ms / step | clips / s | operators / step | align loss |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in args.batch_sizes:
        batch = first_batch(module, size, device)
        figures = {}
        for path, loss in (("per-token", per_token_alignment_loss), ("batched", None)):
            patch = (
                mock.patch.object(pretrain_module, "token_alignment_loss", loss) if loss else nullcontext()
            )
            with patch:
                seconds, ops, align = time_path(module, batch, args)
            figures[path] = seconds
            counted = "—" if ops is None else ops
            print(
                f"| {size} | {path} | {seconds * 1e3:.0f} | {size / seconds:.0f} | {counted} | {align:.4f} |"
            )
        print(
            f"batch {size}: batched is {figures['per-token'] / figures['batched']:.2f}x as fast", flush=True
        )


if __name__ == "__main__":
    main()
