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


def span_means(frames: Tensor, spans: list[tuple[int, int]]) -> Tensor:
    """Mean of ``frames[start:end]`` for each span, in one gather and one ``index_add_``: (spans, hidden).

    A mean per span (small kernels each, forward and backward) gave the alignment loss four times
    as many operators as the other five pretraining losses together at batch 96, and a GPU step
    bound by launches; this costs a few whatever the number of spans. Sums in float32, returns
    ``frames``' dtype."""
    index = [i for start, end in spans for i in range(start, end)]
    owner = [k for k, (start, end) in enumerate(spans) for _ in range(end - start)]
    device = frames.device
    sums = frames.new_zeros((len(spans), frames.shape[-1]), dtype=torch.float32).index_add_(
        0, torch.tensor(owner, device=device), frames[torch.tensor(index, device=device)].float()
    )
    counts = torch.tensor([end - start for start, end in spans], dtype=torch.float32, device=device)
    return (sums / counts[:, None]).to(frames.dtype)


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


def label_runs(path: list[int], blank: int) -> list[tuple[int, int]]:
    """Frame span [start, end) of each run of one non-blank label in a CTC path: the tokens it
    spells, repeats merged and blanks dropped. Plain Python on a host list: torchaudio's
    ``merge_tokens`` also averages a score per span, a tensor op and a host read per token."""
    runs: list[tuple[int, int]] = []
    for i, label in enumerate(path):
        if label == blank:
            continue
        if i > 0 and path[i - 1] == label:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def greedy_ctc_ids(clips: list[Tensor], embeddings: Tensor, blank: int) -> list[list[int]]:
    """Best-path CTC read-out of each clip: argmax per vector, repeats merged, blanks dropped
    (one argmax and one device-to-host copy for the whole batch)."""
    best = ctc_logits(torch.cat(clips), embeddings).argmax(dim=-1).tolist()
    ids, start = [], 0
    for clip in clips:
        path, start = best[start : start + len(clip)], start + len(clip)
        ids.append([path[first] for first, _ in label_runs(path, blank)])
    return ids


def token_segments(log_probs: Tensor, target: list[int], blank: int) -> list[tuple[int, int]] | None:
    """Frame span [start, end) of each target token on the Viterbi CTC path; None if it cannot fit."""
    from torchaudio.functional import forced_align

    if not target or len(target) > len(log_probs):
        return None
    labels = torch.tensor([target], dtype=torch.int32)
    path, _ = forced_align(log_probs.detach().float().cpu()[None], labels, blank=blank)
    spans = label_runs(path[0].tolist(), blank)
    return spans if len(spans) == len(target) else None


def token_alignment_loss(
    clips: list[Tensor], targets: list[list[int]], embeddings: Tensor, blank: int
) -> tuple[Tensor, int]:
    """How far each token's mean audio vector is from its (fixed) embedding: cosine distance plus the
    squared log ratio of their norms. Bounded in direction and scale-free in norm, so tiny token
    embeddings early in training do not blow it up.

    Returns the mean over aligned tokens and how many tokens were aligned (clips too short for
    their transcript are left out). The token embeddings are the target, not a moving part.
    """
    frames = torch.cat(clips)  # (frames, hidden)
    with torch.no_grad():  # one device-to-host copy; the Viterbi paths run on the CPU
        log_probs = ctc_log_probs(frames, embeddings).cpu()
    spans, wanted, start = [], [], 0
    for clip, target in zip(clips, targets, strict=True):
        segments = token_segments(log_probs[start : start + len(clip)], target, blank)
        if segments is not None:
            spans += [(start + first, start + end) for first, end in segments]
            wanted += target
        start += len(clip)
    if not spans:
        return embeddings.sum() * 0.0, 0
    return token_distance(span_means(frames, spans), wanted, embeddings), len(wanted)


def token_distance(audio: Tensor, tokens: list[int], embeddings: Tensor) -> Tensor:
    """Mean over rows of cosine distance plus squared log norm ratio between each audio vector
    (aligned tokens, hidden) and its token's embedding, which is detached: the target, not moved."""
    audio = audio.float()
    text = embeddings.detach()[torch.tensor(tokens, device=embeddings.device)].float()
    cosine = F.cosine_similarity(audio, text, dim=-1)
    log_ratio = torch.log(audio.norm(dim=-1).clamp(min=1e-6) / text.norm(dim=-1).clamp(min=1e-6))
    return (1 - cosine + log_ratio.pow(2)).mean()


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
