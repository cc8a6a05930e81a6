"""Evaluation decoding utterances/s: dynamic-length audio encoder against the stock 30 s padding.

`SLUModule.generate_texts` (audio embedding + `generate` with the KV cache) on batches of speech
examples, with beam 3 (the paper's test-time setting) and greedy, `max_new_tokens` 48, eval mode,
batches in corpus order as `SLUDataModule._eval_loader` builds them (no bucketing). The two audio
paths differ only in `module.dynamic_audio`; the decoded strings of both are compared (a random
model's outputs are long and arbitrary, so equal strings are a strict parity check).
Data: the same noise clips as `train_step.py` (`--corpus slurp`: log-normal median 3 s, sigma 0.5;
`demo`: the built demo corpus's durations, else log-normal median 2 s). Paths and beam settings
are interleaved within each of `--repeats` passes; the median pass gives utterances/s.

Run from the repository root: `python -m benchmarks.decoding` (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import transformers

from benchmarks.train_step import corpus_examples, machine_line, noise_items
from slu_lightning.data.collate import SLUCollator
from slu_lightning.model.module import GenerationSettings, SLUModule

PATHS = ("padded", "dynamic")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", help="tiny backbone preset (tiny-test for a smoke run)")
    parser.add_argument("--corpus", choices=("slurp", "demo"), default="slurp")
    parser.add_argument("--examples", type=int, default=32, help="utterances decoded per pass")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--beams", type=int, nargs="+", default=[3, 1], help="beam widths (1 = greedy)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median reported)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads; 1 is steadier on a shared machine"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(args.seed)

    module = SLUModule(backbone=args.preset, finetuning="lora")
    module.configure_model()
    module.eval()
    pairs, source = corpus_examples(args.corpus, args.examples, args.seed)
    items = noise_items(pairs, module.n_mels, args.seed)
    collate = SLUCollator(module.tokenizer, module.prompt, with_labels=False, with_prompts=True)
    batches = [collate(items[i : i + args.batch_size]) for i in range(0, len(items), args.batch_size)]
    frames = statistics.mean(b["input_features"].shape[-1] for b in batches)

    print(machine_line())
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"preset {args.preset} + LoRA, fp32, {module.hf.config._attn_implementation}, "
        f"batch {args.batch_size}, "
        f"max_new_tokens {args.max_new_tokens}, {len(items)} utterances per pass, median of {args.repeats}"
    )
    print(f"{source}; dynamic path keeps {frames:.0f} frames per batch on average (padded: 3000)")

    cells = [(beams, path) for beams in args.beams for path in PATHS]
    passes: dict[tuple[int, str], list[float]] = {cell: [] for cell in cells}
    outputs: dict[tuple[int, str], list[str]] = {}

    def decode(beams: int, path: str) -> list[str]:
        module.generation = GenerationSettings(num_beams=beams, max_new_tokens=args.max_new_tokens)
        module.dynamic_audio = path == "dynamic"
        return [text for batch in batches for text in module.generate_texts(batch)]

    for cell in cells:  # warm-up on one batch
        module.generation = GenerationSettings(num_beams=cell[0], max_new_tokens=args.max_new_tokens)
        module.dynamic_audio = cell[1] == "dynamic"
        module.generate_texts(batches[0])
    for _ in range(args.repeats):
        for cell in cells:
            start = time.perf_counter()
            outputs[cell] = decode(*cell)
            passes[cell].append(time.perf_counter() - start)

    print(
        f"{'decoding':<8} {'path':<8} {'utt/s':>7} {'speed-up':>8} {'out chars':>9} {'same text':>9} "
        f"{'passes (s)':>18}"
    )
    for beams, path in cells:
        rate = len(items) / statistics.median(passes[(beams, path)])
        base = len(items) / statistics.median(passes[(beams, "padded")])
        texts = outputs[(beams, path)]
        same = sum(a == b for a, b in zip(texts, outputs[(beams, "padded")], strict=True))
        chars = statistics.mean(len(t) for t in texts)  # re-tokenising a random model's text miscounts tokens
        name = "greedy" if beams == 1 else f"beam {beams}"
        spread = " ".join(f"{p:.1f}" for p in passes[(beams, path)])
        print(
            f"{name:<8} {path:<8} {rate:>7.2f} {rate / base:>7.1f}x {chars:>9.1f} "
            f"{same:>4}/{len(texts):<4} {spread:>18}"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
