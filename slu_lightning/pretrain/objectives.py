"""The losses that teach the tiny stand-in to hear, and to hear the way it reads.

- ``ctc_loss``: CTC over the projector's audio vectors, scored against the LLM's *input*
  embedding matrix (logit = scaled cosine of audio vector and token embedding). It gives
  word-level recognition a direct, early signal (the decoder alone ignores the audio for hundreds
  of steps) and puts the audio vectors in the space of the token embeddings.
- ``token_alignment_loss``: per-token regression. The CTC path is forced-aligned to the
  transcript; the audio vectors of each token's frames are averaged and pulled towards that
  token's embedding (direction and norm). A pooled (sentence-level) similarity is satisfied
  trivially; this one is not.
- ``hidden_distillation_loss``: cross-modal distillation. The same prompt is run with the
  transcript as text (teacher, no gradient) and with the audio (student); the LLM's hidden states
  after the input (instruction tail and answer) are matched layer by layer, so the LLM treats an
  audio prefix the way it treats the same words as text: what text-only fine-tuning relies on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def split_clips(audio: Tensor, counts: Tensor) -> list[Tensor]:
    """Concatenated audio vectors (total, hidden) -> one (tokens, hidden) tensor per clip."""
    return list(torch.split(audio, [int(n) for n in counts]))


CTC_SCALE = 20.0
"""Logit of a cosine of 1. Cosines (not dot products) let the alignment loss pull audio vectors to
the token embeddings' small norms without flattening the CTC distribution."""


def ctc_logits(audio: Tensor, embeddings: Tensor) -> Tensor:
    """``CTC_SCALE`` x cosine between each audio vector and each token embedding: (..., vocab).

    Computed in float32 even under bf16 autocast, where the product would round 20 x cosine by up
    to 0.06 and blur the read-out's argmax between near tokens."""
    with torch.autocast(audio.device.type, enabled=False):
        return CTC_SCALE * F.normalize(audio.float(), dim=-1) @ F.normalize(embeddings.float(), dim=-1).T


def ctc_log_probs(audio: Tensor, embeddings: Tensor) -> Tensor:
    """Log-probabilities over the vocabulary for each audio vector: (..., vocab)."""
    return F.log_softmax(ctc_logits(audio, embeddings), dim=-1)


def ctc_loss(clips: list[Tensor], targets: list[list[int]], embeddings: Tensor, blank: int) -> Tensor:
    """Mean CTC loss per target token over a batch of clips (blank = a reserved token id)."""
    padded = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)  # (clips, frames, hidden)
    log_probs = ctc_log_probs(padded, embeddings).transpose(0, 1)  # (frames, clips, vocab)
    flat = torch.tensor([t for row in targets for t in row], dtype=torch.long, device=log_probs.device)
    input_lengths = torch.tensor([len(c) for c in clips], dtype=torch.long)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    return F.ctc_loss(
        log_probs, flat, input_lengths, target_lengths, blank=blank, reduction="sum", zero_infinity=True
    ) / target_lengths.sum().clamp(min=1)


def greedy_ctc_ids(clip: Tensor, embeddings: Tensor, blank: int) -> list[int]:
    """Best-path CTC read-out of one clip: argmax per vector, repeats merged, blanks dropped."""
    best = ctc_logits(clip, embeddings).argmax(dim=-1).tolist()
    return [token for i, token in enumerate(best) if token != blank and (i == 0 or best[i - 1] != token)]


def token_segments(log_probs: Tensor, target: list[int], blank: int) -> list[tuple[int, int]] | None:
    """Frame span [start, end) of each target token on the Viterbi CTC path; None if it cannot fit."""
    from torchaudio.functional import forced_align, merge_tokens

    if not target or len(target) > len(log_probs):
        return None
    labels = torch.tensor([target], dtype=torch.int32)
    path, scores = forced_align(log_probs.detach().float().cpu()[None], labels, blank=blank)
    spans = merge_tokens(path[0], scores[0].exp(), blank=blank)
    if len(spans) != len(target):
        return None
    return [(span.start, span.end) for span in spans]


def token_alignment_loss(
    clips: list[Tensor], targets: list[list[int]], embeddings: Tensor, blank: int
) -> tuple[Tensor, int]:
    """How far each token's mean audio vector is from its (fixed) embedding: cosine distance plus the
    squared log ratio of their norms. Bounded in direction and scale-free in norm, so tiny token
    embeddings early in training do not blow it up.

    Returns the mean over aligned tokens and how many tokens were aligned (clips too short for
    their transcript are left out). The token embeddings are the target, not a moving part.
    """
    means, wanted = [], []
    for clip, target in zip(clips, targets, strict=True):
        with torch.no_grad():
            segments = token_segments(ctc_log_probs(clip, embeddings), target, blank)
        if segments is None:
            continue
        means += [clip[start:end].mean(dim=0) for start, end in segments]
        wanted += target
    if not means:
        return embeddings.sum() * 0.0, 0
    audio = torch.stack(means).float()  # (aligned tokens, hidden)
    text = embeddings.detach()[torch.tensor(wanted, device=embeddings.device)].float()
    cosine = F.cosine_similarity(audio, text, dim=-1)
    log_ratio = torch.log(audio.norm(dim=-1).clamp(min=1e-6) / text.norm(dim=-1).clamp(min=1e-6))
    return (1 - cosine + log_ratio.pow(2)).mean(), len(wanted)


def hidden_distillation_loss(
    student: tuple[Tensor, ...], teacher: tuple[Tensor, ...], student_rows: Tensor, teacher_rows: Tensor
) -> Tensor:
    """Mean over layers of the squared error between student and teacher hidden states at matching
    positions, each layer divided by the teacher's spread there (mean squared distance of its states
    from their mean): scale-free, and not satisfied by what all positions share.

    Args:
        student, teacher: Hidden states of every layer, each (batch, tokens, hidden).
        student_rows, teacher_rows: (n, 2) index pairs (row, position) of the positions to match,
            in the same order.
    """
    losses = []
    for s, t in zip(student[1:], teacher[1:], strict=True):  # [0] is the input embedding itself
        s_at = s[student_rows[:, 0], student_rows[:, 1]].float()  # (n, hidden)
        t_at = t[teacher_rows[:, 0], teacher_rows[:, 1]].detach().float()
        spread = (t_at - t_at.mean(dim=0)).pow(2).sum(-1).mean().clamp(min=1e-8)
        losses.append((s_at - t_at).pow(2).sum(-1).mean() / spread)
    return torch.stack(losses).mean()
