"""Memory a Speech-MASSIVE split costs once read: its examples against the clips' bytes held in memory.

`read_speech_massive` leaves each encoded clip in the memory-mapped table (`TableAudio`); until
session 38 every example held its clip's bytes, so a split cost its whole audio size in every
process that read it (about 3.6 GB for fr-FR train), and pickled that much to a spawned worker.

The benchmark writes `--clips` white-noise WAV clips of `--seconds` each as hub-layout parquet
shards, reads the split once to fill the arrow cache, then measures, in the same process:

- `held bytes` (the baseline): each row's clip bytes taken out of the same table, as the old reader
  kept them;
- `examples`: `read_speech_massive`'s examples.

For each: anonymous resident memory added (`RssAnon`, after garbage collection), read time, and
pickled size.

Run from the repository root: `python -m benchmarks.reader_memory` (about 30 s); `--help` for options.
"""

from __future__ import annotations

import argparse
import gc
import io
import pickle
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf
from datasets import Audio, Dataset, Features, Value

from slu_lightning.data.readers import read_speech_massive

COLUMNS = ("id", "locale", "utt", "annot_utt", "intent_str")


def write_split(folder: Path, clips: int, seconds: float, shards: int = 3) -> int:
    """Hub-layout fr-FR train shards of white-noise clips; returns the clips' total bytes."""
    rng = np.random.default_rng(0)
    audio = []
    for n in range(clips):
        buffer = io.BytesIO()
        noise = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        sf.write(buffer, noise, 16000, format="WAV", subtype="PCM_16")
        audio.append({"bytes": buffer.getvalue(), "path": f"{n}.wav"})
    rows = {
        "id": [str(n) for n in range(clips)],
        "locale": ["fr-FR"] * clips,
        "utt": ["mets une alarme à cinq heures"] * clips,
        "annot_utt": ["mets une alarme à [time : cinq heures]"] * clips,
        "intent_str": ["alarm_set"] * clips,
        "audio": audio,
    }
    features = Features(
        {
            **{name: Value("string") for name in COLUMNS},
            "audio": {"bytes": Value("binary"), "path": Value("string")},
        }
    )
    table = Dataset.from_dict(rows, features=features).cast_column("audio", Audio(sampling_rate=16000))
    (folder / "fr-FR").mkdir(parents=True)
    for shard in range(shards):
        path = folder / "fr-FR" / f"train-{shard:05d}-of-{shards:05d}.parquet"
        table.shard(shards, shard, contiguous=True).to_parquet(str(path))
    return sum(len(cell["bytes"]) for cell in audio)


def anonymous_mb() -> float:
    """Resident anonymous memory (heap): what a process holds, without the file pages of the
    memory-mapped arrow cache, which the kernel shares and can drop."""
    gc.collect()
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("RssAnon:")).split()[1]) / 1e3


def measure(name: str, read) -> None:
    before, start = anonymous_mb(), time.perf_counter()
    held = read()
    took, added, pickled = time.perf_counter() - start, anonymous_mb() - before, len(pickle.dumps(held)) / 1e6
    print(f"{name:>10}: +{added:7.1f} MB held, read in {took:5.2f} s, pickled {pickled:7.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=4.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        datasets.config.HF_DATASETS_CACHE = root / "hf_cache"
        total = write_split(root / "data", options.clips, options.seconds)
        print(f"{options.clips} clips of {options.seconds:g} s: {total / 1e6:.1f} MB of encoded audio")
        read_speech_massive(root / "data", "fr-FR", "train")  # fills the arrow cache
        shards = sorted(str(shard) for shard in (root / "data" / "fr-FR").glob("*.parquet"))
        table = datasets.load_dataset("parquet", data_files=shards, split="train")
        table = table.cast_column("audio", Audio(decode=False))
        measure("held bytes", lambda: [row["audio"]["bytes"] for row in table])
        measure("examples", lambda: read_speech_massive(root / "data", "fr-FR", "train"))


if __name__ == "__main__":
    main()
