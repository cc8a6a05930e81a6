"""Who gets which eSpeak voices and which templates: the one place that decides it.

Three uses share the synthetic material of each locale:

- ``pretrain``: a future ASR pretraining of the tiny model. It gets voices, but no SLU template,
  so that no SLU test sentence can leak into pretraining.
- ``train``: the SLU training split.
- ``heldout``: the SLU dev and test splits. Their voices and templates never occur in ``train``,
  so dev/test measure generalisation to new speakers and new phrasings, not memorisation.

The three voice sets of a locale are disjoint and together cover every variant; likewise the
train and heldout templates of each intent. The held-out rate and pitch ranges are wider than
train's, so held-out speech also reaches speaking rates and pitches that training never heard.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from slu_lightning.data.demo_lexicon import INTENTS, LOCALES, STYLES, TEMPLATES
from slu_lightning.data.tts import voice_variants

Use = Literal["pretrain", "train", "heldout"]
USES: tuple[Use, ...] = ("pretrain", "train", "heldout")

MALE_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7")  # "" is the language's default voice
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4")
VOICE_ALIASES = frozenset({"fast"})
"""Variants that speak as the language's default voice ``""``: eSpeak's ``!v/fast`` only sets
``fast_test2``, which changes nothing at the rates used here (``de+fast`` and ``de`` give the same
samples). Handed out as an unused voice, it would hand out the default voice, which the partition
gives to one of its uses."""
VOICES_PER_USE: dict[Use, tuple[int, int]] = {
    # (male, female) voices per locale; the totals use up MALE_VARIANTS and FEMALE_VARIANTS
    "pretrain": (3, 1),
    "train": (3, 2),
    "heldout": (2, 1),
}
RATES: dict[Use, tuple[int, int]] = {"pretrain": (120, 220), "train": (150, 190), "heldout": (135, 205)}
"""Inclusive speaking-rate range in words per minute (eSpeak's default is 175)."""
PITCHES: dict[Use, tuple[int, int]] = {"pretrain": (20, 80), "train": (35, 65), "heldout": (25, 75)}
"""Inclusive eSpeak pitch range (0-100, 50 is the voice's normal pitch)."""
HELDOUT_TEMPLATE_SHARE = 1 / 3
"""Share of each intent's templates kept for dev/test (at least one)."""


@dataclass(frozen=True)
class Share:
    """What one use gets in one locale."""

    voices: tuple[str, ...]
    """eSpeak voice names, e.g. ``fr+m3``."""
    rate: tuple[int, int]
    pitch: tuple[int, int]
    templates: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Intent -> indices into ``TEMPLATES[locale][intent]``; empty for ``pretrain``."""


def voice_name(language: str, variant: str) -> str:
    return f"{language}+{variant}" if variant else language


def unused_variants() -> list[str]:
    """The installed eSpeak variants that ``partition`` never hands out ("klatt3", "grandma", "m8"...),
    aliases of its voices left out."""
    return [variant for variant in _outside_family() if variant not in VOICE_ALIASES]


def _outside_family() -> list[str]:
    return sorted(voice_variants() - {*MALE_VARIANTS, *FEMALE_VARIANTS})


def extra_pretrain_voices(locale: str, count: int, seed: int = 0) -> tuple[str, ...]:
    """``count`` more voices for pretraining, drawn (seeded, per locale) from ``unused_variants``.

    Why: four pretraining voices per locale teach the recogniser those four speakers; held-out
    voices are then heard worse than the same sentences spoken by a pretraining voice. The SLU
    splits' voices stay untouched, so dev/test speakers remain unheard.

    The order is drawn over every variant outside the family and an alias is passed over, so a
    stand-in pretrained before aliases were known keeps its voices wherever it drew no alias.
    """
    unused = unused_variants()
    if not 0 <= count <= len(unused):
        raise ValueError(f"extra voices: choose 0 to {len(unused)} (the unused variants), not {count}")
    outside = _outside_family()
    order = random.Random(f"extra-voices:{seed}:{locale}").sample(outside, len(outside))
    variants = [variant for variant in order if variant not in VOICE_ALIASES][:count]
    return tuple(sorted(voice_name(STYLES[locale].espeak, variant) for variant in variants))


def unheard_voices(locale: str, extra_voices: int = 0, seed: int = 0) -> tuple[str, ...]:
    """The voices of ``locale`` outside the partition's family that a pretraining with
    ``--extra-voices extra_voices`` never heard: who a model card's ``unheard-voices`` set speaks in."""
    language = STYLES[locale].espeak
    heard = set(extra_pretrain_voices(locale, extra_voices, seed))
    return tuple(
        v for v in (voice_name(language, variant) for variant in unused_variants()) if v not in heard
    )


def partition(seed: int = 0, locales: Sequence[str] | None = None) -> dict[str, dict[Use, Share]]:
    """Split each locale's voices and templates between the three uses.

    Args:
        seed: Decides which voices and templates go where; the same seed gives the same split.
        locales: Locales to split (default: all of ``LOCALES``). A locale's split does not depend
            on which other locales are asked for.

    Returns:
        ``{locale: {use: Share}}``.
    """
    result = {}
    for locale in locales or LOCALES:
        rng = random.Random(f"partition:{seed}:{locale}")
        language = STYLES[locale].espeak
        voices = {use: [] for use in USES}
        for variants, gender in ((MALE_VARIANTS, 0), (FEMALE_VARIANTS, 1)):
            shuffled = rng.sample(variants, len(variants))
            for use in USES:
                count = VOICES_PER_USE[use][gender]
                voices[use] += [voice_name(language, variant) for variant in shuffled[:count]]
                shuffled = shuffled[count:]
        train_templates, heldout_templates = {}, {}
        for intent in INTENTS:
            indices = rng.sample(range(len(TEMPLATES[locale][intent])), len(TEMPLATES[locale][intent]))
            n_heldout = max(1, round(len(indices) * HELDOUT_TEMPLATE_SHARE))
            heldout_templates[intent] = tuple(sorted(indices[:n_heldout]))
            train_templates[intent] = tuple(sorted(indices[n_heldout:]))
        templates: dict[Use, dict[str, tuple[int, ...]]] = {
            "pretrain": {},
            "train": train_templates,
            "heldout": heldout_templates,
        }
        result[locale] = {
            use: Share(tuple(sorted(voices[use])), RATES[use], PITCHES[use], templates[use]) for use in USES
        }
    return result
