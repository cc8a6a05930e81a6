"""Training samples/s and peak memory: this project's audio path against the stock 30 s padding.

Three paths through the same `SLUModule.example_losses` + backward + AdamW step, on the same items:

- `padded`: the plain Hugging Face path. Every clip padded to 3000 mel frames (30 s) through the
  stock `Qwen2AudioEncoder.forward` (`module.dynamic_audio = False`), batches in random order.
- `dynamic`: features cut to the batch's longest clip + 2 margin frames (`encode_audio`), random order.
- `dynamic+bucket`: the same with `EpochBatchSampler` length bucketing, keyed as the project keys it
  (`datamodules.prompt_length` with no file durations: it falls back on the transcript's length;
  `--bucket-key frames` for the true length, which the data modules read from the file headers).

Data: speech examples whose audio is white noise (a random model cannot tell noise from speech) of
durations drawn from
- `slurp`: a log-normal fit of SLURP's clip lengths, median 3 s, sigma 0.5 (95 % of clips between
  1.1 and 8.2 s), clipped to [0.5, 15] s;
- `demo`: the real clip durations (and transcripts, labels) of the built demo corpus
  `default_demo_dir("small", 0)` when it exists, else the same log-normal with median 2 s.
Transcripts of the synthetic examples have ~14 characters per second of audio (x a log-normal
jitter, sigma 0.25), so the project's transcript-based bucketing key is only roughly the audio length.
Features come from `LogMelExtractor`; feature extraction and collation are not timed (they run in
DataLoader workers; see `feature_extraction.py`).

Timing: one epoch of `--examples` items (default 400 = 50 batches of 8, one bucketing window) is
batched by each path's sampler; `--batches` of its batches are timed, a stratified sample (the
batches at evenly spaced quantiles of their longest clip), so the sample's samples/s estimates the
epoch's. Paths are interleaved within each of `--repeats` passes (machine load hits every path
alike); the median pass gives samples/s. Memory: a fresh subprocess per configuration builds the
same data and model, resets the kernel's peak-RSS mark (`/proc/self/clear_refs`; else uses the
`ru_maxrss` high-water mark), runs two steps on the sample's longest batch and reports peak RSS
minus the RSS before the first step: activations, gradients, AdamW state and allocator slack of one
step, in a CPU process (on a GPU, `torch.cuda.max_memory_allocated` is the figure; see gpu_7b.py).

Run from the repository root: `python -m benchmarks.train_step` (about 20 minutes on 2 busy cores);
`--help` for options.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from slu_lightning.data.collate import SLUCollator, SLUItem
from slu_lightning.data.datamodules import prompt_length
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.data.sampler import EpochBatchSampler
from slu_lightning.data.tts import SAMPLE_RATE
from slu_lightning.model.audio_encoder import PADDED_FRAMES
from slu_lightning.model.module import SLUModule

PATHS = ("padded", "dynamic", "dynamic+bucket")
MODES = ("full", "lora")
CORPORA = ("slurp", "demo")
LOGNORMAL_SIGMA = 0.5  # log-normal spread of clip durations: median x e^(+-2 sigma) = 0.37x..2.7x
CHARS_PER_SECOND = 14.0  # transcript characters per second of speech (SLURP-like read commands)
WORDS = (
    "wake",
    "me",
    "up",
    "at",
    "five",
    "am",
    "this",
    "week",
    "what",
    "is",
    "the",
    "weather",
    "in",
    "paris",
    "play",
    "some",
    "jazz",
    "music",
    "turn",
    "off",
    "lights",
    "kitchen",
    "please",
    "remind",
    "to",
    "call",
    "mom",
    "tomorrow",
    "morning",
    "how",
    "much",
    "time",
    "left",
)
INTENTS = (
    ("alarm", "set", "time"),
    ("weather", "query", "place_name"),
    ("play", "music", "music_genre"),
    ("iot", "hue_lightoff", "house_place"),
    ("calendar", "set", "date"),
)


# ---- data ------------------------------------------------------------------------------------
def lognormal_durations(n: int, median: float, rng: random.Random) -> list[float]:
    return [min(max(rng.lognormvariate(math.log(median), LOGNORMAL_SIGMA), 0.5), 15.0) for _ in range(n)]


def synthetic_example(index: int, seconds: float, rng: random.Random) -> SLUExample:
    """A SLURP-like speech example whose transcript length roughly follows the clip's duration."""
    n_chars = seconds * CHARS_PER_SECOND * rng.lognormvariate(0.0, 0.25)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < n_chars:
        words.append(rng.choice(WORDS))
    scenario, action, entity_type = rng.choice(INTENTS)
    entities = tuple(Entity(entity_type, " ".join(words[i : i + 2])) for i in range(0, min(len(words), 4), 2))
    return SLUExample(
        id=f"bench-{index}",
        locale="en-US",
        text=" ".join(words),
        scenario=scenario,
        action=action,
        entities=entities[: rng.randint(0, 2)],
        audio="noise",
        source="bench",
    )


def corpus_examples(corpus: str, n: int, seed: int) -> tuple[list[tuple[SLUExample, float]], str]:
    """`n` (example, seconds) pairs of `corpus`, and a line saying where the durations come from."""
    rng = random.Random(seed)
    if corpus == "demo":
        from slu_lightning.data.audio import audio_seconds
        from slu_lightning.data.demo_corpus import default_demo_dir
        from slu_lightning.data.readers.manifest import read_manifest

        manifest = default_demo_dir("small", 0) / "train.jsonl"
        if manifest.is_file():
            speech = [e for e in read_manifest(manifest) if e.audio is not None]
            chosen = [speech[i] for i in sorted(rng.sample(range(len(speech)), min(n, len(speech))))]
            pairs = [(e, audio_seconds(e.audio)) for e in chosen]
            return pairs, f"demo: clip durations and labels of {manifest.parent} ({len(speech)} clips)"
        median, where = 2.0, "demo: corpus not built; log-normal median 2 s, sigma 0.5"
    else:
        median, where = 3.0, "slurp: log-normal median 3 s, sigma 0.5, clipped to [0.5, 15] s"
    durations = lognormal_durations(n, median, rng)
    return [(synthetic_example(i, s, rng), s) for i, s in enumerate(durations)], where


def noise_items(pairs: list[tuple[SLUExample, float]], n_mels: int, seed: int) -> list[SLUItem]:
    """Items with white-noise audio of each example's duration, featurised as the datamodule does."""
    extractor = LogMelExtractor(n_mels=n_mels)
    generator = torch.Generator().manual_seed(seed)
    items = []
    for example, seconds in pairs:
        waveform = 0.1 * torch.randn(int(seconds * SAMPLE_RATE), generator=generator)  # (samples,)
        features, n_frames = extractor(waveform)  # (mels, frames + 2)
        items.append(SLUItem(example, features, n_frames))
    return items


def epoch_batches(
    items: list[SLUItem], path: str, batch_size: int, bucket_key: str, seed: int
) -> list[list[int]]:
    """Batch indices of epoch 0 as `EpochBatchSampler` yields them for this path."""
    lengths = None
    if path == "dynamic+bucket":
        lengths = [
            item.n_frames if bucket_key == "frames" else prompt_length(item.example, True, {})
            for item in items
        ]
    return EpochBatchSampler(len(items), batch_size, seed=seed, epoch=0, lengths=lengths).batches()


def stratified(batches: list[list[int]], items: list[SLUItem], n: int) -> list[list[int]]:
    """`n` batches at evenly spaced quantiles of their longest clip (the dynamic path's cost driver)."""
    ranked = sorted(batches, key=lambda b: max(items[i].n_frames for i in b))
    return [ranked[min(int((k + 0.5) * len(ranked) / n), len(ranked) - 1)] for k in range(n)]


@dataclass
class Workload:
    """The collated batches each path trains on, for one corpus."""

    batches: dict[str, list[dict]]
    kept_frames: dict[str, float]
    """Mean mel frames per clip that the encoder runs on, per path."""
    source: str


def build_workload(corpus: str, module: SLUModule, args: argparse.Namespace) -> Workload:
    pairs, source = corpus_examples(corpus, args.examples, args.seed)
    items = noise_items(pairs, module.n_mels, args.seed)
    collate = SLUCollator(module.tokenizer, module.prompt)
    batches, kept = {}, {}
    for path in PATHS:
        chosen = stratified(
            epoch_batches(items, path, args.batch_size, args.bucket_key, args.seed), items, args.batches
        )
        batches[path] = [collate([items[i] for i in batch]) for batch in chosen]
        kept[path] = (
            PADDED_FRAMES
            if path == "padded"
            else statistics.mean(b["input_features"].shape[-1] for b in batches[path])
        )
    seconds = [s for _, s in pairs]
    median, mean = statistics.median(seconds), statistics.mean(seconds)
    source += f"; {len(pairs)} clips, median {median:.2f} s, mean {mean:.2f} s"
    return Workload(batches, kept, source)


# ---- model -----------------------------------------------------------------------------------
def build_module(mode: str, preset: str) -> tuple[SLUModule, torch.optim.Optimizer]:
    """`full`: every weight of all three parts trains. `lora`: adapters on the LLM, encoder and
    projector frozen (the module's defaults, and LLaMA-Factory's / ms-swift's)."""
    full = mode == "full"
    module = SLUModule(backbone=preset, finetuning=mode, train_audio_encoder=full, train_projector=full)
    module.configure_model()
    settings = module.optimizer_settings
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
    )
    return module, optimizer


def train_step(module: SLUModule, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    """`SLUModule._loss`'s loss without logging, backward, AdamW step."""
    sums, counts = module.example_losses(batch)
    (sums.sum() / counts.sum().clamp(min=1)).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def set_path(module: SLUModule, path: str) -> None:
    module.dynamic_audio = path != "padded"


# ---- memory (child process) ------------------------------------------------------------------
def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def memory_child(args: argparse.Namespace) -> None:
    """Print one JSON line: peak RSS growth (MiB) over two steps on the longest batch of the sample."""
    corpus, mode, path = args.memory_child
    torch.manual_seed(args.seed)
    module, optimizer = build_module(mode, args.preset)
    set_path(module, path)
    batches = build_workload(corpus, module, args).batches[path]
    batch = max(batches, key=lambda b: b["input_features"].shape[-1])
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before, method = _status_kib("VmRSS"), "VmHWM after clear_refs"
    except OSError:
        before, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    for _ in range(2):
        train_step(module, optimizer, batch)
    peak = (
        _status_kib("VmHWM")
        if method.startswith("VmHWM")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    print(json.dumps({"delta_mib": (peak - before) / 1024, "peak_mib": peak / 1024, "method": method}))


def measure_memory(corpus: str, mode: str, path: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.train_step",
        "--memory-child",
        corpus,
        mode,
        path,
        "--preset",
        args.preset,
        "--examples",
        str(args.examples),
        "--batches",
        str(args.batches),
        "--batch-size",
        str(args.batch_size),
        "--bucket-key",
        args.bucket_key,
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- main ------------------------------------------------------------------------------------
def machine_line() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    return (
        f"{cpu}, os.cpu_count()={os.cpu_count()}, torch threads={torch.get_num_threads()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"python {platform.python_version()}"
    )


def time_corpus(corpus: str, mode: str, args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    module, optimizer = build_module(mode, args.preset)
    work = build_workload(corpus, module, args)
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    print(f"\n## {corpus}, {mode} ({trainable:,} trainable parameters); {work.source}")
    for path in PATHS:  # warm-up: one step per path on its shortest batch
        set_path(module, path)
        train_step(module, optimizer, min(work.batches[path], key=lambda b: b["input_features"].shape[-1]))
    passes: dict[str, list[float]] = {path: [] for path in PATHS}
    for _ in range(args.repeats):
        for path in PATHS:
            set_path(module, path)
            start = time.perf_counter()
            for batch in work.batches[path]:
                train_step(module, optimizer, batch)
            passes[path].append(time.perf_counter() - start)
    samples = args.batches * args.batch_size
    base = samples / statistics.median(passes["padded"])
    print(
        f"{'path':<15} {'frames':>6} {'s/step':>7} {'samples/s':>9} {'speed-up':>8} "
        f"{'peak RSS +MiB':>13} {'passes (s)':>20}"
    )
    for path in PATHS:
        rate = samples / statistics.median(passes[path])
        memory = (
            measure_memory(corpus, mode, path, args) if not args.no_memory else {"delta_mib": float("nan")}
        )
        spread = " ".join(f"{p:.1f}" for p in passes[path])
        print(
            f"{path:<15} {work.kept_frames[path]:>6.0f} {args.batch_size / rate:>7.2f} {rate:>9.2f} "
            f"{rate / base:>7.1f}x {memory['delta_mib']:>13.0f} {spread:>20}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", help="tiny backbone preset (tiny-test for a smoke run)")
    parser.add_argument("--corpora", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--examples", type=int, default=400, help="items in the epoch that is batched")
    parser.add_argument(
        "--batches", type=int, default=4, help="stratified sample of the epoch's batches timed per pass"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per path (median reported)")
    parser.add_argument(
        "--bucket-key",
        choices=("transcript", "frames"),
        default="transcript",
        help="transcript: the project's key (characters x 10); frames: the true clip length",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads; 1 is steadier on a shared machine"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the per-configuration memory subprocesses"
    )
    parser.add_argument("--memory-child", nargs=3, metavar=("CORPUS", "MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.memory_child:
        memory_child(args)
        return
    print(machine_line())
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"preset {args.preset}, fp32, batch {args.batch_size}, {args.batches} of "
        f"{math.ceil(args.examples / args.batch_size)} batches timed per pass, median of {args.repeats} "
        f"interleaved passes; bucket key: {args.bucket_key}; speed-up vs padded"
    )
    for corpus in args.corpora:
        for mode in args.modes:
            time_corpus(corpus, mode, args)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
