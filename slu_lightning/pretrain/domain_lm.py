"""A token n-gram language model of the SLU domain's training text, for the recogniser's search.

The study's premise is that text is plentiful where speech is not. A cascade can spend that text on
its recogniser too: the stand-in's pretraining text never says a quarter of the SLU domain's words
(research log, *Why SLU phrasing is heard worse*), and its CTC read-out spells from the sound alone.
This model is trained on the transcripts of the parser's own training split (never the test split)
and scores the recogniser's candidates in the LLM's token vocabulary, which is also the CTC
read-out's, so it can steer the CTC prefix beam search token by token (``rescoring.py``).

Interpolated Kneser-Ney with one absolute discount (Chen & Goodman, 1998), floored by a uniform
distribution over the vocabulary so that no token is impossible. The demo's 3,000 training
sentences are counted in 0.12 s into about 1 MB.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BOS = -1
"""Context id before a sentence's first token."""
EOS = -2
"""Token id that ends a sentence."""
ORDER = 4
"""Longest n-gram counted. On the dev recordings below, orders 3 / 4 / 5 gave 0.364 / 0.359 / 0.355."""
LM_WEIGHT = 0.8
"""Weight of the language model's log probability in a candidate's score. Chosen with ``TOKEN_BONUS``
on 160 of the demo's dev recordings (held-out voices; 0.534 WER without it) from 22 settings,
weights 0.3-2.0 and bonuses 0-6 (research log, *A language model of the training text*)."""
TOKEN_BONUS = 4.0
"""Score added per token, chosen with ``LM_WEIGHT`` (0.359 WER on those recordings)."""
FUSED_READOUT = "rescored"
"""The one read-out a domain language model joins: it steers that read-out's CTC beam and adds to
each candidate's score; greedy read-outs have nothing for it to choose between."""


class TokenNgram:
    """log P(token | the previous ``order - 1`` tokens), trained on token-id sentences."""

    def __init__(
        self, sentences: Iterable[Sequence[int]], vocab_size: int, order: int = ORDER, discount: float = 0.75
    ):
        """
        Args:
            sentences: each sentence's token ids (no special tokens).
            vocab_size: size of the token vocabulary, for the uniform floor (``EOS`` is one more).
            order: longest n-gram counted.
            discount: absolute discount taken from every seen n-gram's count.
        """
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must lie in (0, 1), got {discount}")
        self.order, self.discount, self.vocab_size = order, discount, vocab_size
        self.sentences = 0
        highest: Counter[tuple[int, ...]] = Counter()
        for ids in sentences:
            padded = [BOS] * (order - 1) + list(ids) + [EOS]
            for end in range(order - 1, len(padded)):
                highest[tuple(padded[end - order + 1 : end + 1])] += 1
            self.sentences += 1
        if not self.sentences:
            raise ValueError("no sentences to count")
        self._counts = self._kneser_ney_counts(highest)
        self._context_totals: list[Counter[tuple[int, ...]]] = []
        self._context_types: list[Counter[tuple[int, ...]]] = []
        for counts in self._counts:
            totals, types = Counter(), Counter()
            for gram, count in counts.items():
                totals[gram[:-1]] += count
                types[gram[:-1]] += 1
            self._context_totals.append(totals)
            self._context_types.append(types)
        self._cache: dict[tuple[int, ...], float] = {}

    def _kneser_ney_counts(self, highest: Counter) -> list[Counter]:
        """Counts per n-gram length (index 0: unigrams): raw counts at the highest order, and below it
        the number of distinct tokens seen before each n-gram (its continuation count)."""
        counts: list[Counter] = [Counter() for _ in range(self.order)]
        counts[-1] = highest
        for length in range(self.order - 1, 0, -1):
            for gram in counts[length]:
                counts[length - 1][gram[1:]] += 1
        return counts

    def log_prob(self, context: Sequence[int], token: int) -> float:
        """Natural log of P(``token`` | ``context``), ``context`` the tokens before it (any length;
        ``BOS`` padding is implied before the sentence's start)."""
        history = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        history = (BOS,) * (self.order - 1 - len(history)) + history
        key = (*history, token)
        if key not in self._cache:
            self._cache[key] = math.log(self._prob(history, token))
        return self._cache[key]

    def _prob(self, history: tuple[int, ...], token: int) -> float:
        probability = 1.0 / (self.vocab_size + 1)  # the uniform floor, EOS included
        for length in range(len(history) + 1):
            context = history[len(history) - length :]
            total = self._context_totals[length][context]
            if not total:
                break
            seen = self._counts[length][(*context, token)]
            left = self.discount * self._context_types[length][context] / total
            probability = max(seen - self.discount, 0) / total + left * probability
        return probability

    def sentence_log_prob(self, ids: Sequence[int]) -> float:
        """Natural log of P(``ids``, then the sentence's end)."""
        ids = list(ids)
        return sum(self.log_prob(ids[:i], token) for i, token in enumerate([*ids, EOS]))


def domain_lm(texts: Iterable[str], tokenizer, order: int = ORDER) -> TokenNgram:
    """A ``TokenNgram`` of ``texts`` in ``tokenizer``'s ids: the vocabulary the CTC read-out writes."""
    sentences = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts)
    return TokenNgram(sentences, len(tokenizer), order)


@dataclass
class LMFusion:
    """How a ``TokenNgram`` joins a candidate's score: ``weight`` x its log probability, plus
    ``bonus`` per token (without it, the language model's every extra token is a cost, and the
    search prefers transcripts that drop words)."""

    lm: TokenNgram
    weight: float
    bonus: float

    def token_score(self, context: Sequence[int], token: int) -> float:
        """The fused score of ``token`` after ``context``."""
        return self.weight * self.lm.log_prob(context, token) + self.bonus

    def sentence_score(self, ids: Sequence[int]) -> float:
        """The fused score of a whole transcript, its end included."""
        return self.weight * self.lm.sentence_log_prob(ids) + self.bonus * len(ids)


def domain_fusion(texts: Sequence[str], tokenizer) -> LMFusion:
    """The rescored read-out's fusion with a language model of ``texts``, at the chosen settings."""
    return LMFusion(domain_lm(texts, tokenizer), LM_WEIGHT, TOKEN_BONUS)


def fusion_identity(texts: Sequence[str]) -> dict:
    """What decides the fused transcripts besides the recogniser: cached transcripts name it."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return {
        "order": ORDER,
        "lm_weight": LM_WEIGHT,
        "token_bonus": TOKEN_BONUS,
        "sentences": len(texts),
        "text_sha256": digest,
    }


def require_fused_readout(readouts: str | Sequence[str]) -> None:
    """Refuse a domain language model for ``readouts`` unless ``FUSED_READOUT`` is among them: one
    rule for every entry point (the transcribe command, cascade and noise configs, ``transcribe``)."""
    named = (readouts,) if isinstance(readouts, str) else tuple(readouts)
    if FUSED_READOUT not in named:
        raise ValueError(f"a domain language model joins only the {FUSED_READOUT} read-out, not {readouts!r}")
