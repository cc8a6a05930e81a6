"""Transcripts that read as the recogniser hears: a character channel estimated from a few recognised
clips, then applied to every training transcript.

Why: under ``audio_compression: ctc_posterior`` the LLM reads speech as the recogniser spells it.
Text-only fine-tuning never sees those misspellings, and 2 % of the speech shows too few of them.
``CharChannel.estimate`` counts, per reference character, how often the recogniser deleted or
replaced it (and with what), and how often it inserted a character, over (gold, recognised)
transcript pairs. ``corrupt`` then draws such errors into any transcript, so every transcript can
teach what only the speech subset could. The labels stay gold: the model learns to read through
the errors, not to repeat them.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from slu_lightning.curriculum import NOISY_SOURCE
from slu_lightning.data.asr_corpus import normalise
from slu_lightning.data.corpora import Corpus
from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.records import SLUExample, in_locales
from slu_lightning.data.subsets import SpeechSubset
from slu_lightning.model.tiny import cache_root
from slu_lightning.pretrain.domain_lm import require_fused_readout

Pair = tuple[str, str]
"""(gold transcript, recognised transcript)."""


def aligned_characters(reference: str, hypothesis: str) -> list[tuple[str, str]]:
    """A minimum-edit alignment as (reference char, hypothesis char) pairs; ``""`` on the side of an
    insertion or a deletion. Ties prefer a match or substitution, then a deletion."""
    rows, cols = len(reference) + 1, len(hypothesis) + 1
    cost = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        cost[i][0] = i
    for j in range(cols):
        cost[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            diagonal = cost[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1])
            cost[i][j] = min(diagonal, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    pairs, i, j = [], rows - 1, cols - 1
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            pairs.append((reference[i - 1], hypothesis[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((reference[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", hypothesis[j - 1]))
            j -= 1
    return pairs[::-1]


@dataclass(frozen=True)
class CharChannel:
    """Per-character error counts of a recogniser, and the rates drawn from them.

    A character seen ``n`` times has its deletion and substitution rates pulled towards the overall
    ones with weight ``smoothing`` (``(count + smoothing * overall) / (n + smoothing)``), so a rare
    character gets about the overall rates and a frequent one its own. Replacements likewise mix the
    character's own replacements with everyone's.
    """

    rates: dict[str, float]
    """Overall deletion and substitution rates per reference character, insertions per position."""
    seen: Counter
    """Reference characters counted; one never seen gets the overall rates."""
    deleted: Counter
    replaced: dict[str, Counter]
    """Per reference character, what the recogniser wrote instead."""
    replacements: Counter
    """What any character was replaced by (the smoothing's share of a replacement)."""
    inserted: Counter
    """What the recogniser inserted."""
    clips: int
    """How many (gold, recognised) pairs the counts come from."""
    smoothing: float = 20.0

    @classmethod
    def estimate(cls, pairs: list[Pair], smoothing: float = 20.0) -> CharChannel:
        """Count the errors of (gold, recognised) pairs, both compared ``normalise``d."""
        seen, deleted, inserted, replaced = Counter(), Counter(), Counter(), {}
        positions = 0
        for gold, heard in pairs:
            reference = normalise(gold)
            positions += len(reference) + 1  # an insertion may come before, between or after
            for ref, hyp in aligned_characters(reference, normalise(heard)):
                if not ref:
                    inserted[hyp] += 1
                    continue
                seen[ref] += 1
                if not hyp:
                    deleted[ref] += 1
                elif hyp != ref:
                    replaced.setdefault(ref, Counter())[hyp] += 1
        if not seen:
            raise ValueError("no characters to estimate a recogniser's errors from")
        replacements = sum(replaced.values(), Counter())
        total = seen.total()
        rates = {
            "deletion": deleted.total() / total,
            "substitution": replacements.total() / total,
            "insertion": inserted.total() / positions,
        }
        return cls(rates, seen, deleted, replaced, replacements, inserted, len(pairs), smoothing)

    def uniform(self, alphabet: str) -> CharChannel:
        """The same overall rates for every character, replacements and insertions drawn uniformly
        from ``alphabet``: the channel without the recogniser's particular confusions (an ablation)."""
        every = Counter(dict.fromkeys(sorted(set(alphabet)), 1))
        return replace(
            self, seen=Counter(), deleted=Counter(), replaced={}, replacements=every, inserted=every
        )

    def corrupt(self, text: str, rng: random.Random) -> str:
        """``text`` (``normalise``d) with errors drawn from the channel."""
        overall = self.rates
        out: list[str] = []
        for char in normalise(text):
            if self.inserted and rng.random() < overall["insertion"]:
                out.append(_draw(self.inserted, rng))
            replaced = self.replaced.get(char, Counter()).total()
            deletion = self._rate(self.deleted[char], char, overall["deletion"])
            substitution = self._rate(replaced, char, overall["substitution"])
            draw = rng.random()
            if draw < deletion:
                continue
            pool = self._replacements(char) if draw < deletion + substitution else None
            out.append(_draw(pool, rng) if pool else char)
        return " ".join("".join(out).split())

    def _rate(self, count: int, char: str, overall: float) -> float:
        """``char``'s own rate pulled towards ``overall``; ``overall`` for a character never seen."""
        seen = self.seen[char] + self.smoothing
        return (count + self.smoothing * overall) / seen if seen else overall

    def _replacements(self, char: str) -> Counter:
        """What ``char`` becomes when replaced: its own replacements plus everyone's, weighted
        ``smoothing`` in all; never ``char`` itself."""
        own, everyone = self.replaced.get(char, Counter()), self.replacements
        if not everyone:
            return own
        total = everyone.total()
        return own + Counter({c: self.smoothing * k / total for c, k in everyone.items() if c != char})


def _draw(weights: Counter, rng: random.Random) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass(frozen=True)
class RecogniserNoise:
    """Where the channel comes from and how much noisy text it makes (``data.init_args.recogniser_noise``).

    The recogniser transcribes the calibration clips (the corpus's speech training examples of the
    run's ``train_locales`` that ``speech_subset`` selects: give it the run's own subset, the same
    proportion and seed, and the channel learns from the clips the run trains on) once, into
    ``transcripts``; after that the file is reused while the recogniser, its weights, read-out and
    clips are the same.
    """

    recogniser: str = "tiny-heard"
    """Backbone whose read-out the LLM will hear (a bundled stand-in or a ``pretrain-tiny`` export)."""
    speech_subset: SpeechSubset = SpeechSubset(proportion=0.02)
    """The calibration clips: a few percent of the speech, as in the study."""
    copies: int = 1
    """Corrupted copies of every training transcript (each drawn apart)."""
    seed: int = 0
    """Seeds the corruption of each copy."""
    readout: Literal["ctc", "decoder", "rescored"] = "ctc"
    """How the recogniser transcribes: greedy CTC over its audio vectors (as ``ctc_posterior``
    reads), its decoder, or the cascade's rescored read-out (``pretrain/rescoring.py``)."""
    domain_lm: bool = False
    """Steer the ``rescored`` read-out with a language model of the corpus's training text, as the
    cascade's transcripts are (``CascadeCorpus(domain_lm=True)``). The calibration clips' own
    sentences are left out of it: the model knows no test sentence, so it must not know the
    sentences whose errors stand for the test's."""
    lm_holdout_key: str | None = None
    """A ``meta`` field (the demo corpus's ``template``): training sentences that share a calibration
    clip's value of it, in its locale, are left out of the language model too. The demo's test split
    shares no template with its training split; with only the clips' own sentences left out, the
    model still knows their templates, and the calibration transcripts read 0.166 WER where the
    test's read 0.359 (0.350 with their templates left out; research log)."""
    transcripts: str | None = None
    """The calibration transcripts' file; None: under the cache folder, named by recogniser, read-out
    (with what its language model leaves out) and clips."""
    smoothing: float = 20.0
    """``CharChannel.smoothing``."""
    confusions: Literal["recogniser", "uniform"] = "recogniser"
    """``recogniser``: each character's own error rates and replacements, as counted; ``uniform``:
    the overall rates for every character, replacements drawn uniformly from the characters of the
    training transcripts (the ablation: do the recogniser's particular confusions matter?)."""

    def __post_init__(self) -> None:
        if self.copies < 1 or not 0 < self.speech_subset.proportion <= 1:
            raise ValueError("recogniser_noise needs copies >= 1 and a speech_subset proportion in (0, 1]")
        if self.domain_lm:
            require_fused_readout(self.readout)
        elif self.lm_holdout_key:
            raise ValueError("recogniser_noise.lm_holdout_key needs domain_lm: true")

    def clips(self, corpus: Corpus, skips: SkipLog, locales: list[str] | None = None) -> list[SLUExample]:
        """The calibration clips, drawn from the training speech of ``locales`` (all for None): the
        channel must learn the errors made in the language whose transcripts it corrupts."""
        clips = self.speech_subset.select(in_locales(corpus.speech("train", skips), locales))
        if not clips:
            where = f" in {locales}" if locales is not None else ""
            raise DataError(
                f"recogniser_noise: no calibration clips in the training speech{where} of {corpus.describe()}"
            )
        return clips

    def prepare(self, corpus: Corpus, skips: SkipLog, locales: list[str] | None = None) -> None:
        """Transcribe the calibration clips unless their transcripts are already there."""
        from slu_lightning.experiments.cascade import Recogniser, ensure_transcripts

        clips = self.clips(corpus, skips, locales)
        source = f"{len(clips)} speech training clips of {corpus.describe()}"
        texts = self.domain_text(corpus, clips, skips) if self.domain_lm else None
        recogniser = Recogniser(self.recogniser, self.readout, domain_text=texts)
        ensure_transcripts(recogniser, clips, self._path(clips), source)

    def domain_text(self, corpus: Corpus, clips: list[SLUExample], skips: SkipLog) -> list[str]:
        """The language model's text: ``corpus``'s training transcripts but the ``clips``' own, and
        those that share their ``lm_holdout_key``."""
        calibration = {clip.utterance_id for clip in clips}
        shared = {self._holdout_value(clip) for clip in clips} if self.lm_holdout_key else set()
        return [
            example.text
            for example in corpus.text("train", skips)
            if example.utterance_id not in calibration
            and not (shared and self._holdout_value(example) in shared)
        ]

    def _holdout_value(self, example: SLUExample) -> tuple[str, str]:
        if self.lm_holdout_key not in example.meta:
            raise DataError(
                f"recogniser_noise.lm_holdout_key: no meta field {self.lm_holdout_key!r}",
                record=example.id,
            )
        return example.locale, example.meta[self.lm_holdout_key]

    def channel(
        self, corpus: Corpus, skips: SkipLog, transcripts: list[SLUExample], locales: list[str] | None = None
    ) -> CharChannel:
        """The channel estimated from the calibration clips' (gold, recognised) transcripts; under
        ``uniform``, its replacements are drawn from the characters of ``transcripts``."""
        from slu_lightning.experiments.cascade import EMPTY

        rows = read_manifest(self._path(self.clips(corpus, skips, locales)))
        pairs = [(row.meta["gold_text"], "" if row.text == EMPTY else row.text) for row in rows]
        channel = CharChannel.estimate(pairs, self.smoothing)
        if self.confusions == "uniform":
            channel = channel.uniform("".join(normalise(e.text) for e in transcripts))
        return channel

    def noisy_copies(self, transcripts: list[SLUExample], channel: CharChannel) -> list[SLUExample]:
        """``copies`` corrupted versions of each transcript, labels kept, ids ``<id>~noisy<k>``."""
        copies = []
        for example in transcripts:
            for k in range(self.copies):
                noisy = channel.corrupt(example.text, random.Random(f"{self.seed}:{example.id}:{k}"))
                copies.append(
                    replace(
                        example, id=f"{example.id}~noisy{k}", text=noisy or example.text, source=NOISY_SOURCE
                    )
                )
        return copies

    def _path(self, clips: list[SLUExample]) -> Path:
        if self.transcripts is not None:
            return Path(self.transcripts)
        key = hashlib.sha256("\n".join(sorted(c.id for c in clips)).encode()).hexdigest()[:12]
        name = f"{Path(self.recogniser).name}-{self._readout_name()}-{len(clips)}clips-{key}.jsonl"
        return cache_root() / "recognised" / name

    def _readout_name(self) -> str:
        """The read-out and what its language model leaves out, so that each setting has its file."""
        if not self.domain_lm:
            return self.readout
        return f"{self.readout}-lm-no{self.lm_holdout_key}" if self.lm_holdout_key else f"{self.readout}-lm"
