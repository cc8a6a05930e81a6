"""How fast a backbone's LLM learns to read its input, as it is and with new layers (``--fresh-llm``).

The task is ``read``: the transcription prompt holds a sentence as text and the answer writes it
back. Both arms start from the same backbone, train the same batches of ASR-corpus sentences
(text only, AdamW) and print, every ``--every`` steps, the held-out read loss behind each sentence's
own text and behind another's. Their difference is ``val/input_gain``: 0 for an LLM that answers
from its language prior alone, large for one that copies.

    python benchmarks/reading_probe.py --backbone logs/pretrain/gpu-b96/backbone --steps 300
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.pretrain.module import TinyPretrainModule


def run_arm(args: argparse.Namespace, fresh_llm: bool, train: list[str], held: list[str]) -> None:
    torch.manual_seed(args.seed)
    module = TinyPretrainModule(backbone=args.backbone, fresh_llm=fresh_llm)
    optimizer = torch.optim.AdamW(module.parameters(), lr=args.lr, betas=(0.9, 0.98))
    others = held[1:] + held[:1]
    started = time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.every == 0:
            with torch.no_grad():
                own, other = module.reading_loss(held, held).item(), module.reading_loss(held, others).item()
            print(
                f"{'new layers' if fresh_llm else 'as trained':>10} step {step:>5}: read {own:.3f}, "
                f"behind another sentence {other:.3f}, gain {other - own:.3f} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        batch = train[step * args.batch_size % len(train) :][: args.batch_size]
        loss = module.reading_loss(batch, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--held-out", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = make_asr_corpus(default_asr_dir("large", 0), size="large", seed=0)
    texts = [example.text for example in read_manifest(corpus / "train.jsonl")]
    random.Random(args.seed).shuffle(texts)
    held, train = texts[: args.held_out], texts[args.held_out :]
    for fresh_llm in (False, True):
        run_arm(args, fresh_llm, train, held)


if __name__ == "__main__":
    main()
