"""The ``rescored`` read-out: a clip's candidate transcripts from both read-outs, each scored by
both.

Greedy CTC spells each token from the sound alone. On the stand-in it runs words together
("alarmat") and doubles vowels ("alaarma"), which a language model would not write; the decoder,
prompted to transcribe, is that language model, conditioned on the same clip, but it leans on its
prior and drifts from the sound. The candidates are the ``BEAM`` most probable labelings of a CTC
prefix beam search (summed over their paths) and the ``DECODER_BEAMS`` best transcripts of the
decoder's beam search; each clip's transcript is the candidate with the best
``(1 - weight) * log P_ctc + weight * log P_decoder``. An ``LMFusion`` (``domain_lm.py``) adds a
language model of the domain's text, in the beam search and in that score.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import Tensor

from slu_lightning.model.module import answer_cross_entropy
from slu_lightning.pretrain.batches import training_form
from slu_lightning.pretrain.domain_lm import LMFusion
from slu_lightning.pretrain.objectives import ctc_log_probs

BEAM = 32
"""Labelings kept per frame. On 240 SLU-phrased clips of ``tiny-heard`` (greedy: 0.718 WER), an
oracle picking the best of 8 by WER would read 0.632, of 32, 0.582; 32 take about 0.17 s a clip on
2 CPU cores."""
DECODER_BEAMS = 8
"""Transcripts the decoder's beam search adds. On the general held-out sentences, 1 / 4 / 8 of them
gave 0.464 / 0.399 / 0.380 WER (the CTC beam's 32 alone: 0.555)."""
DECODER_WEIGHT = 0.7
"""Share of the decoder's log-likelihood in a candidate's score, chosen on general held-out
sentences (research log, *Rescoring the CTC beam with the decoder*)."""
PRUNE = -8.0
"""Tokens less likely than ``exp(PRUNE)`` at a frame are not tried there."""
SETTINGS = {"beam": BEAM, "decoder_beams": DECODER_BEAMS, "decoder_weight": DECODER_WEIGHT, "prune": PRUNE}
"""What decides the read-out's transcripts besides the weights: cached transcripts name it."""


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high = max(a, b)
    return high + math.log1p(math.exp(-abs(a - b)))


def ctc_prefix_beam_search(
    log_probs: Tensor,
    blank: int,
    beam: int = BEAM,
    prune: float = PRUNE,
    fusion: LMFusion | None = None,
) -> list[tuple[list[int], float]]:
    """The ``beam`` most probable labelings of ``log_probs`` (frames, vocabulary), best first, and
    their CTC log probabilities (all paths summed). Exact when nothing is pruned and the beam holds
    every prefix. With a ``fusion``, prefixes are kept and ordered by their CTC log probability plus
    its language-model score (shallow fusion), so the language model steers which spellings survive."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # ending in blank, not
    fused: dict[tuple[int, ...], float] = {(): 0.0}

    def rank(prefix: tuple[int, ...]) -> float:
        if fusion is None:
            return 0.0
        if prefix not in fused:
            fused[prefix] = rank(prefix[:-1]) + fusion.token_score(prefix[:-1], prefix[-1])
        return fused[prefix]

    for frame in log_probs.float().cpu():
        scores = frame.tolist()
        tried = torch.nonzero(frame > prune).flatten().tolist()
        grown: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (ends_blank, ends_token) in beams.items():
            total = _logaddexp(ends_blank, ends_token)
            for token in tried:
                p = scores[token]
                if token == blank:
                    grown[prefix][0] = _logaddexp(grown[prefix][0], total + p)
                elif prefix and token == prefix[-1]:  # a repeat is a new token only after a blank
                    grown[prefix][1] = _logaddexp(grown[prefix][1], ends_token + p)
                    longer = grown[prefix + (token,)]
                    longer[1] = _logaddexp(longer[1], ends_blank + p)
                else:
                    longer = grown[prefix + (token,)]
                    longer[1] = _logaddexp(longer[1], total + p)
        scored = [(_logaddexp(*ends) + rank(prefix), prefix, ends) for prefix, ends in grown.items()]
        ranked = sorted((item for item in scored if item[0] > -math.inf), key=lambda item: -item[0])
        beams = {prefix: (ends[0], ends[1]) for _, prefix, ends in ranked[:beam]}
    return [(list(prefix), _logaddexp(*scores)) for prefix, scores in beams.items()]


@torch.no_grad()
def decoder_log_likelihoods(module, clip: Tensor, n_frames: int, transcripts: list[str]) -> list[float]:
    """log P(transcript | transcription prompt with ``clip``) under the LLM decoder, per transcript."""
    collator = module.collator
    prompt = collator.student_prompt(n_frames)
    answers = [collator.answer(text) for text in transcripts]
    rows = training_form("rows", [prompt] * len(answers), answers, collator.pad_id)
    rows = {name: value.to(module.device) for name, value in rows.items()}
    embeds = module.embed_with_audio(rows["rows_ids"], [clip] * len(answers))
    lm = module.model.model.language_model
    hidden = lm(inputs_embeds=embeds, attention_mask=rows["rows_mask"]).last_hidden_state
    sums, _ = answer_cross_entropy(hidden, rows["rows_labels"], module.model.lm_head)
    return (-sums).tolist()


def ctc_log_likelihoods(log_probs: Tensor, labelings: list[list[int]], blank: int) -> list[float]:
    """log P(each labeling) under the CTC posteriors ``log_probs`` (frames, vocabulary), all paths
    summed, in one call; ``-inf`` for a labeling no path of that many frames spells."""
    if not labelings:
        return []
    frames = log_probs.float().cpu()[:, None].expand(-1, len(labelings), -1)  # (frames, labelings, vocab)
    losses = F.ctc_loss(
        frames,
        torch.tensor([token for labeling in labelings for token in labeling], dtype=torch.long),
        torch.full((len(labelings),), len(log_probs), dtype=torch.long),
        torch.tensor([len(labeling) for labeling in labelings], dtype=torch.long),
        blank=blank,
        reduction="none",
    )
    return (-losses).tolist()


@torch.no_grad()
def rescored_transcripts(
    module,
    batch: dict,
    clips: list[Tensor],
    decoded: list[list[str]],
    beam: int = BEAM,
    weight: float = DECODER_WEIGHT,
    fusion: LMFusion | None = None,
) -> list[str]:
    """Each clip's best transcript (``clips``: the audio vectors of ``batch``) among its CTC beam
    and its ``decoded`` candidates (the decoder's beam), by CTC and decoder log-likelihood together,
    and by a domain language model when there is a ``fusion`` (which also steers the CTC beam)."""
    tokenizer = module.processor.tokenizer
    frames = batch["feature_attention_mask"].sum(-1).tolist()
    transcripts = []
    for clip, n_frames, decoder_texts in zip(clips, frames, decoded, strict=True):
        log_probs = ctc_log_probs(clip, module.embeddings)
        candidates = ctc_prefix_beam_search(log_probs, module.blank, beam, fusion=fusion)
        ids = [labeling for labeling, _ in candidates]
        ctc = [score for _, score in candidates]
        texts = [tokenizer.decode(labeling, skip_special_tokens=True) for labeling in ids]
        added = [
            text for text in dict.fromkeys(t.strip() for t in decoder_texts) if text and text not in texts
        ]
        added_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in added]
        ids, texts = ids + added_ids, texts + added
        ctc += ctc_log_likelihoods(log_probs, added_ids, module.blank)
        decoder = decoder_log_likelihoods(module, clip, int(n_frames), texts)
        scores = [(1 - weight) * c + weight * d for c, d in zip(ctc, decoder, strict=True)]
        if fusion is not None:
            scores = [score + fusion.sentence_score(i) for score, i in zip(scores, ids, strict=True)]
        transcripts.append(texts[max(range(len(texts)), key=scores.__getitem__)])
    return transcripts
