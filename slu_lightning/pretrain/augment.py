"""SpecAugment for the pretraining batches: random bands of mel bins and runs of frames masked.

Why: a recogniser trained on four eSpeak voices per locale hears those voices better than new
ones (research log, *Whose voices the ear learns*). Masking parts of the spectrogram is the
standard cheap regulariser against learning the exact spectra of a few speakers (Park et al.,
2019). It runs on the batch in the training step only; validation and the export's error rates
see the clips unmasked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SpecAugment:
    """Mask sizes for short clips (3-4 s, 100 frames a second): about a sixth of each clip's cells.

    Not mild for an ear trained without masks: on 32 train clips, ``ctc-everyday``'s CTC loss
    rises from 1.13 to 2.57 (bands alone), 1.93 (runs alone) and 3.23 (both)."""

    freq_masks: int = 2
    """Bands of mel bins masked per clip."""
    max_freq_width: int = 16
    """Widest band, in mel bins (of 128)."""
    frames_per_time_mask: int = 100
    """One run of frames masked per this many frames of the clip, or part of them (one per second)."""
    max_time_width: int = 10
    """Longest run, in frames (0.1 s)."""

    def __call__(self, features: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``features`` (clips, mels, frames) with each clip's masked bins and frames set to that
        clip's mean over its own frames; ``mask`` (clips, frames) marks the real frames."""
        clips, mels, frames = features.shape
        lengths = mask.sum(-1).cpu()  # (clips,)
        valid = mask[:, None, :].to(features.dtype)  # (clips, 1, frames)
        means = (features * valid).sum((1, 2)) / (mask.sum(-1) * mels).clamp(min=1)  # (clips,)
        freq = _bands(torch.full((clips,), self.freq_masks), self.max_freq_width, mels, mels, generator)
        per_clip = (lengths + self.frames_per_time_mask - 1) // self.frames_per_time_mask  # ceil, >= 1
        time = _bands(per_clip.clamp(min=1), self.max_time_width, lengths, frames, generator)
        real = torch.arange(frames)[None, :] < lengths[:, None]  # padding stays as it was
        hit = (freq[:, :, None] | time[:, None, :]) & real[:, None, :]  # (clips, mels, frames)
        return torch.where(hit.to(features.device), means[:, None, None], features)


class AugmentedCollator:
    """A pretraining collator whose batches come out with ``SpecAugment`` applied to the features
    (in the loader's worker, beside training).

    Each batch's masks are drawn from a generator seeded by ``key`` (the run seed and the epoch) and
    the ids of the batch's clips, which together fix the step: not from the worker's own random
    stream, which restarts on a resume and is split differently among another number of workers."""

    def __init__(self, collator, augment: SpecAugment, key: str):
        self.collator, self.augment, self.key = collator, augment, key

    def __call__(self, items: list) -> dict:
        batch = self.collator(items)
        ids = "\n".join(item.example.id for item in items)
        digest = hashlib.sha256(f"spec-augment:{self.key}:{ids}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        batch["input_features"] = self.augment(
            batch["input_features"], batch["feature_attention_mask"], generator
        )
        return batch


def _bands(
    counts: Tensor, max_width: int, extent: Tensor | int, size: int, generator: torch.Generator | None
) -> Tensor:
    """(clips, size) booleans: ``counts[i]`` bands in clip ``i``, each 0..max_width wide and
    starting uniformly within that clip's ``extent``."""
    clips, most = len(counts), int(counts.max())
    extent = torch.as_tensor(extent).expand(clips)
    widths = torch.randint(0, max_width + 1, (clips, most), generator=generator)
    widths *= torch.arange(most)[None, :] < counts[:, None]  # clips with fewer bands: the rest empty
    starts = (torch.rand(clips, most, generator=generator) * extent[:, None]).long()
    positions = torch.arange(size)[None, None, :]  # (1, 1, size)
    inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
    return inside.any(dim=1)  # (clips, size)
