"""CTC compression of the audio prefix: one vector per recognised token, not one per 40 ms of audio.

Why: a stand-in pretrained by ``pretrain-tiny`` reads its audio vectors out with CTC through the
LLM's input-embedding matrix, and its alignment loss pulls the mean audio vector of each token's
frames to that token's embedding. Text-only fine-tuning teaches the LLM to read sequences of token
embeddings, one per token; the uncompressed audio prefix is about 3.5 times longer than what the
recogniser hears (43.9 vectors a demo test clip against 12.6 heard tokens) and mostly blank frames,
which that fine-tuning never shows it. Averaging each run of frames that share a
non-blank best label and dropping the blank frames (CTC compression, Gaido et al., 2021) gives a
prefix shaped like the transcript's embeddings, so what the LLM learnt from text applies to it.

Two kinds of vector per run:

- ``ctc``: the mean of the run's audio vectors, the audio side's own representation;
- ``ctc_posterior``: the mean over the run's frames of the CTC posterior's expectation of the token
  embedding (blank left out, the rest renormalised), as LegoSLM (Ma et al., 2025) connects a
  speech encoder to an LLM. It lies in the span of the embeddings the LLM reads in text, and keeps
  the recogniser's doubt between tokens, which a cascade's transcript throws away.

The compressed vectors fill the first slots of each clip's ``<|AUDIO|>`` run; the slots left over
are masked out of attention, and position ids count attended tokens only, so the LLM sees the same
sequence as if the prompt had held exactly that many audio tokens.
"""

import json
import logging
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from slu_lightning.pretrain.objectives import ctc_logits, label_runs, span_means

AudioCompression = Literal["none", "ctc", "ctc_posterior"]
log = logging.getLogger(__name__)


def heard_through_ctc(backbone: Path) -> bool:
    """Whether ``backbone``'s last pretraining stage (its ``pretraining.json``) trained the CTC loss;
    the record keeps only the commands of earlier stages, not their loss weights."""
    record = backbone / "pretraining.json"
    if not record.exists():
        return False
    weights = json.loads(record.read_text(encoding="utf-8")).get("settings", {}).get("weights", {})
    return weights.get("ctc", 0) > 0


def warn_unless_ctc_backbone(backbone: Path) -> None:
    """CTC labels read off a backbone never trained with CTC are arbitrary, and so is what they keep."""
    if not heard_through_ctc(backbone):
        log.warning(
            "audio_compression reads CTC labels, but %s was not pretrained with CTC through its "
            "embedding matrix (no pretraining.json with a ctc weight above 0): the compressed audio "
            "will be arbitrary",
            backbone,
        )


def ctc_compress(
    clips: list[Tensor], embeddings: Tensor, blank: int, posterior: bool = False
) -> list[Tensor]:
    """Mean vector of each run of frames with the same non-blank best CTC label, per clip.

    The whole batch takes one device-to-host copy (the best labels) and one gather-and-add (the
    means), whatever the number of clips and runs.

    Args:
        clips: Each clip's audio vectors, (frames, hidden).
        embeddings: The LLM's input-embedding matrix the CTC labels are read through, (vocab, hidden).
        blank: The token id that stands for CTC's blank.
        posterior: average each frame's expected token embedding under its CTC posterior (blank
            excluded) instead of its audio vector.

    Returns:
        (runs, hidden) per clip; a clip heard as all blank keeps one vector, the mean of its frames.
    """
    frames = torch.cat(clips)
    logits = ctc_logits(frames, embeddings)  # (frames, vocab)
    best = logits.detach().argmax(dim=-1).tolist()
    if posterior:
        frames = expected_embeddings(logits, embeddings, blank)
    spans, sizes, start = [], [], 0
    for clip in clips:
        runs = label_runs(best[start : start + len(clip)], blank) or [(0, len(clip))]
        spans += [(start + first, start + end) for first, end in runs]
        sizes.append(len(runs))
        start += len(clip)
    return list(torch.split(span_means(frames, spans), sizes))


def expected_embeddings(logits: Tensor, embeddings: Tensor, blank: int) -> Tensor:
    """Each frame's token embedding expected under its CTC posterior without blank: (frames, hidden)."""
    is_blank = torch.arange(logits.shape[-1], device=logits.device) == blank
    probs = logits.float().masked_fill(is_blank, float("-inf")).softmax(dim=-1)
    return probs.to(embeddings.dtype) @ embeddings


def place_compressed(
    embeds: Tensor, input_ids: Tensor, attention_mask: Tensor, clips: list[Tensor], audio_token_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Put each clip's compressed vectors in the first slots of its row's ``<|AUDIO|>`` run.

    Args:
        embeds: Token embeddings, (batch, tokens, hidden).
        input_ids: (batch, tokens); the rows with audio tokens hold one clip each, in ``clips`` order.
        attention_mask: (batch, tokens), 1 on attended tokens.
        clips: Compressed vectors per clip, each (runs, hidden), no longer than its row's run.

    Returns:
        The embeddings, the attention mask with each run's unused slots set to 0, and position ids
        that count attended tokens only, (batch, tokens).
    """
    slots = input_ids == audio_token_id  # (batch, tokens)
    rows = torch.nonzero(slots.any(dim=-1)).flatten().tolist()
    if len(rows) != len(clips):
        raise ValueError(f"batch has {len(rows)} rows with audio tokens but {len(clips)} audio clips")
    embeds, mask = embeds.clone(), attention_mask.clone()
    for row, clip in zip(rows, clips, strict=True):
        positions = torch.nonzero(slots[row]).flatten()
        if len(clip) > len(positions):
            raise ValueError(f"row {row}: {len(clip)} compressed vectors for {len(positions)} audio slots")
        embeds[row, positions[: len(clip)]] = clip.to(embeds.dtype)
        mask[row, positions[len(clip) :]] = 0
    positions = (mask.long().cumsum(dim=-1) - 1).clamp(min=0)
    return embeds, mask, positions
