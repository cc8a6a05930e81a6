"""Clips per second of LogMelExtractor against WhisperFeatureExtractor, one clip per call.

One call per clip is how a Dataset's ``__getitem__`` or a collate would use either. Whisper's
``__call__`` takes its torch STFT path whenever torch is installed; its numpy path is reached here
through the private ``_np_extract_fbank_features`` on a clip padded by hand to 30 s.
``padding="longest"`` on a single clip means no padding at all; note that it then marks
``floor(samples / hop)`` frames valid instead of the padded path's ``ceil``.

Run from the repository root: ``python -m benchmarks.feature_extraction [--clips 200] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from transformers import WhisperFeatureExtractor

from slu_lightning.data.features import LogMelExtractor

SAMPLE_RATE = 16000


def synthetic_clips(count: int, seed: int = 0) -> list[np.ndarray]:
    """Noisy harmonic clips of 1-8 s, the length range of SLURP and Speech-MASSIVE utterances."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        n_samples = int(rng.integers(1 * SAMPLE_RATE, 8 * SAMPLE_RATE + 1))
        t = np.arange(n_samples) / SAMPLE_RATE
        pitch = rng.uniform(90, 250)
        voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        clips.append((0.2 * voice + 0.01 * rng.standard_normal(n_samples)).astype(np.float32))
    return clips


def clips_per_second(
    extract: Callable[[np.ndarray], np.ndarray], clips: list[np.ndarray], repeats: int
) -> float:
    """Best of ``repeats`` timed passes: other processes on the machine only ever slow a pass down."""
    extract(clips[0])  # warm-up: first-call allocations and lazy imports
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for clip in clips:
            extract(clip)
        best = min(best, time.perf_counter() - start)
    return len(clips) / best


def max_difference(
    extract: Callable[[np.ndarray], np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray],
    clips: list[np.ndarray],
) -> float:
    """Largest absolute difference over the frames that both extractors return, over ``clips``."""
    worst = 0.0
    for clip in clips:
        theirs, ours = extract(clip), reference(clip)  # (n_mels, frames) each
        frames = min(theirs.shape[1], ours.shape[1])
        worst = max(worst, float(np.abs(theirs[:, :frames] - ours[:, :frames]).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--numpy-clips", type=int, default=40, help="the numpy path is slow; time fewer")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the fastest is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads; DataLoader workers use 1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clips = synthetic_clips(args.clips)
    ours = LogMelExtractor(n_mels=128)
    whisper = WhisperFeatureExtractor(feature_size=128)

    def run_ours(clip: np.ndarray) -> np.ndarray:
        features, n_real = ours(torch.from_numpy(clip))  # (128, n_real + margin), int
        return features[:, :n_real].numpy()

    def run_torch_padded(clip: np.ndarray) -> np.ndarray:
        out = whisper(clip, sampling_rate=SAMPLE_RATE, device="cpu", return_tensors="np")
        return out["input_features"][0]  # (128, 3000)

    def run_numpy_padded(clip: np.ndarray) -> np.ndarray:
        padded = np.pad(clip, (0, whisper.n_samples - clip.size))  # (480000,)
        return whisper._np_extract_fbank_features(padded[None], "cpu")[0]  # (128, 3000)

    def run_longest(clip: np.ndarray) -> np.ndarray:
        out = whisper(clip, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np")
        return out["input_features"][0]  # (128, samples // 160)

    rows = [
        ("LogMelExtractor (clip + 2 margin frames)", run_ours, clips),
        ("Whisper torch path, padded to 30 s", run_torch_padded, clips),
        ("Whisper numpy path, padded to 30 s", run_numpy_padded, clips[: args.numpy_clips]),
        ('Whisper torch path, padding="longest"', run_longest, clips),
    ]
    mean_seconds = sum(clip.size for clip in clips) / len(clips) / SAMPLE_RATE
    print(
        f"{len(clips)} synthetic clips of 1-8 s (mean {mean_seconds:.2f} s), 128 mels, "
        f"{torch.get_num_threads()} torch thread(s), best of {args.repeats} passes"
    )
    print(f"{'extractor':<42} {'clips':>6} {'clips/s':>9} {'ours is':>9} {'max |diff| vs ours':>19}")
    ours_rate = None
    for name, extract, subset in rows:
        rate = clips_per_second(extract, subset, args.repeats)
        ours_rate = ours_rate or rate
        diff = max_difference(extract, run_ours, subset[:20])
        print(f"{name:<42} {len(subset):>6} {rate:>9.1f} {ours_rate / rate:>8.1f}x {diff:>19.2e}")
    print(
        'max |diff| is over the frames both return (the real frames; padding="longest" has one fewer '
        "when the length is not a multiple of 160), on the first 20 clips"
    )


if __name__ == "__main__":
    main()
