"""Can the ear fit its own training clips? CTC alone on a few of them, WER read out as it learns.

``slu-lightning speaker-gap`` found that ``tiny-heard`` hears the clips it was pretrained on no
better than new sentences: it underfits its 36k clips rather than memorising them. This asks why.
The backbone trains CTC alone (AdamW, cosine schedule) on ``--clips`` train clips, spoken as
pretraining heard them, and prints the greedy CTC read-out's WER, every ``--every`` steps, on those
clips and on as many held-out sentences spoken by the held-out voices. If the training WER falls
towards 0, the ear can fit and what holds it back on the full corpus is steps and capacity for the
whole corpus; if it stalls, something in the read-out (the CTC targets, the tied embedding matrix)
caps what it can express.

    python -m benchmarks.fit_probe --backbone tiny-heard --clips 512 --steps 600
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from slu_lightning.data.datamodules import SLUDataset
from slu_lightning.data.records import SLUExample
from slu_lightning.pretrain.asr_eval import clip_features, error_rates, transcribe
from slu_lightning.pretrain.module import LossWeights, TinyPretrainModule
from slu_lightning.pretrain.speaker_gap import gap_sets


def read_out(module: TinyPretrainModule, examples: list[SLUExample]) -> str:
    rates = error_rates(examples, transcribe(module, examples, "ctc"))["ctc"]
    return f"WER {rates['wer']:.3f} (CER {rates['cer']:.3f})"


def train(args: argparse.Namespace, trained: list[SLUExample], heldout: list[SLUExample]) -> None:
    torch.manual_seed(args.seed)
    module = TinyPretrainModule(
        backbone=args.backbone,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        max_steps=args.steps,
        weights=LossWeights(asr=0, ctc=1, align=0, distill=0, continuation=0, read=0),
    )
    optimizer = module.configure_optimizers()
    dataset = SLUDataset([(example, True) for example in trained], clip_features(module))
    order, rng, started = [], random.Random(args.seed), time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.every == 0:
            clips, new, seconds = (
                read_out(module, trained),
                read_out(module, heldout),
                time.perf_counter() - started,
            )
            print(f"step {step:>5}: trained clips {clips}; held-out {new} ({seconds:.0f} s)")
        if step == args.steps:
            break
        if len(order) < args.batch_size:
            order += rng.sample(range(len(dataset)), len(dataset))
        batch = module.collator([dataset[i] for i in order[: args.batch_size]])
        del order[: args.batch_size]
        module.train()
        loss = module.losses(batch, module.weights)["ctc"]
        optimizer["optimizer"].zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer["optimizer"].step()
        optimizer["lr_scheduler"]["scheduler"].step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="tiny-heard")
    parser.add_argument("--clips", type=int, default=512, help="train clips to fit (and held-out clips)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--every", type=int, default=100, help="steps between read-outs")
    parser.add_argument("--asr-size", default="large", help="ASR corpus whose plan the clips come from")
    parser.add_argument("--everyday-words", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fit-probe-") as folder:
        sets = gap_sets(Path(folder), args.asr_size, args.seed, args.everyday_words, args.clips)
        train(args, sets["trained"], sets["held-out voices"])


if __name__ == "__main__":
    main()
