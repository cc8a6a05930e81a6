"""Wall time of `slu-lightning test`: evaluation batches in decoding order against corpus order.

`SLUDataModule._eval_loader` sorts each rank's evaluation entries by `decoding_key` (speech
before text, longest prompt first), so a batch pads its audio and prompts to similar lengths
and stops decoding when its similar-length answers end. The baseline keeps the corpus order (a
stable sort on a constant key). Both run the real `test` command in this process, on a trained
checkpoint (a random model's answers all run to `max_new_tokens`, which hides half of the
effect): an untimed warm-up pass, then both orders alternating for `--repeats` rounds. The
predictions files of both orders are compared row by row (rows are written sorted by id).

Run from the repository root, after training the demo (README quick start):
`python -m benchmarks.eval_order` (about 5 x 90 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from benchmarks.train_step import machine_line
from slu_lightning.cli import main as cli
from slu_lightning.data.datamodules import SLUDataModule

ORDERS = {"corpus": lambda self, entry: 0, "decoding": SLUDataModule.decoding_key}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/demo/curriculum.yaml")
    parser.add_argument("--ckpt", default="logs/demo-curriculum-10pct/checkpoints/last.ckpt")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; each runs both orders")
    parser.add_argument("--max-eval-examples", type=int, default=480)
    args = parser.parse_args()
    if not Path(args.ckpt).is_file():
        raise SystemExit(f"no checkpoint at {args.ckpt}: train the demo first (README quick start)")

    print(machine_line())
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    seconds: dict[str, list[float]] = {order: [] for order in ORDERS}
    predictions: dict[str, str] = {}
    cli(test_args(args, "bench-eval-order-warm-up"))  # untimed: first imports, caches, allocations
    for _ in range(args.repeats):
        for order, key in ORDERS.items():
            SLUDataModule.decoding_key = key  # the baseline keeps the corpus order (a stable sort)
            run = f"bench-eval-order-{order}"
            start = time.perf_counter()
            cli(test_args(args, run))
            seconds[order].append(time.perf_counter() - start)
            predictions[order] = (Path("logs") / run / "predictions_test.jsonl").read_text()
    threads = torch.get_num_threads()
    print(f"{args.config}, {args.ckpt}, {args.max_eval_examples} examples, torch threads {threads}")
    print(f"{'order':<9} {'median s':>8} {'speed-up':>8}  passes (s)")
    base = statistics.median(seconds["corpus"])
    for order, passes in seconds.items():
        median = statistics.median(passes)
        print(f"{order:<9} {median:>8.1f} {base / median:>7.2f}x  {' '.join(f'{p:.1f}' for p in passes)}")
    rows = [text.splitlines() for text in predictions.values()]
    same = sum(a == b for a, b in zip(*rows, strict=True))
    print(f"identical prediction rows (other batch-mates change padding only): {same}/{len(rows[0])}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def test_args(args: argparse.Namespace, run: str) -> list[str]:
    return [
        "test",
        "--config",
        args.config,
        "--run.name",
        run,
        "--ckpt_path",
        args.ckpt,
        "--data.init_args.max_eval_examples",
        str(args.max_eval_examples),
    ]


if __name__ == "__main__":
    main()
