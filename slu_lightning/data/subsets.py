"""Speech proportions: seeded, intent-stratified, nested subsets of the speech training examples.

Nested means the 2 % subset lies inside the 5 % subset, which lies inside the 10 % subset, and so
on, so that results across proportions differ only by the added speech. One seeded global order
of the selection units is built so that every prefix is stratified by intent; the subset for
proportion p is the prefix holding ``round(p * n_units)`` units.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jsonargparse.typing import ClosedUnitInterval

from slu_lightning.atomic import atomic_write_text
from slu_lightning.data.errors import ConfigError, DataError
from slu_lightning.data.records import SLUExample

PAPER_PROPORTIONS = (0.0, 0.02, 0.05, 0.10, 0.25, 1.0)


@dataclass(frozen=True)
class SpeechSubset:
    """Which speech training examples a run uses."""

    proportion: ClosedUnitInterval = 1.0  # a float the config parser checks, so a sweep's pre-check sees 1.5
    """Fraction of the speech units kept: 0, 0.02, 0.05, 0.10, 0.25 or 1.0 in the paper."""
    unit: Literal["utterance", "recording"] = "utterance"
    """Select whole utterances (all their recordings) or single recordings."""
    seed: int = 0
    """Seeds the order; the same seed gives nested subsets across proportions."""
    ids_file: str | None = None
    """Instead of sampling, keep exactly the example ids listed in this file (one per line)."""
    locales: list[str] | None = None
    """The locales whose speech is subsampled; other locales' speech is kept whole (a target
    locale's few-shot recordings beside a proportion of the source's). None: every locale."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.proportion <= 1.0:
            raise ConfigError(f"speech proportion must be within [0, 1], got {self.proportion}")
        object.__setattr__(self, "proportion", float(self.proportion))

    def select(self, speech: list[SLUExample]) -> list[SLUExample]:
        """The kept examples, in their original order."""
        if self.ids_file is not None:
            return select_ids(speech, self.ids_file)
        present = sorted({example.locale for example in speech})
        unmatched = sorted(set(self.locales or ()) - set(present))
        if unmatched:  # a misspelt locale would keep its real namesake's speech whole
            raise DataError(
                f"speech_subset.locales {unmatched} match no speech training example (locales: {present})"
            )
        sampled = [example for example in speech if self._subsampled(example)]
        if not sampled:
            raise DataError(
                f"speech_subset.locales {self.locales} match no speech training example (locales: {present})"
            )
        units = _units(sampled, self.unit)
        order = stratified_order(units, self.seed)
        n_keep = round(self.proportion * len(order))
        if n_keep == 0 and self.proportion > 0:
            raise ConfigError(
                f"speech proportion {self.proportion:g} of {len(order)} {self.unit}s keeps none; "
                f"one takes a proportion above {0.5 / len(order):.2g}; 0 means no speech"
            )
        kept = {example.id for key in order[:n_keep] for example in units[key]}
        kept |= {example.id for example in speech if not self._subsampled(example)}
        return [example for example in speech if example.id in kept]

    def _subsampled(self, example: SLUExample) -> bool:
        return self.locales is None or example.locale in self.locales


def _units(speech: list[SLUExample], unit: str) -> dict[str, list[SLUExample]]:
    groups: dict[str, list[SLUExample]] = defaultdict(list)
    for example in speech:
        groups[example.utterance_id if unit == "utterance" else example.id].append(example)
    return dict(groups)


def stratified_order(units: dict[str, list[SLUExample]], seed: int) -> list[str]:
    """Unit keys in a seeded order whose every prefix holds each intent in proportion.

    Within an intent with n units, the unit of seeded rank r gets the key (r + u) / n, with u a
    seeded jitter in [0, 1): sorting all units by key interleaves the intents evenly.
    """
    rng = random.Random(seed)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for key in sorted(units):
        by_intent[units[key][0].intent].append(key)
    keyed = []
    for intent in sorted(by_intent):
        keys = by_intent[intent]
        rng.shuffle(keys)
        keyed.extend(((rank + rng.random()) / len(keys), key) for rank, key in enumerate(keys))
    return [key for _, key in sorted(keyed)]


def read_ids(path: str | Path) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def write_ids(path: str | Path, examples: list[SLUExample]) -> Path:
    """Write the ids of ``examples``, one per line, so a subset can be reloaded exactly."""
    return atomic_write_text(path, "".join(f"{example.id}\n" for example in examples))


def select_ids(examples: list[SLUExample], ids_file: str | Path) -> list[SLUExample]:
    """The ``examples`` listed in ``ids_file``, every listed id required."""
    wanted = set(read_ids(ids_file))
    selected = [example for example in examples if example.id in wanted]
    missing = wanted - {example.id for example in selected}
    if missing:
        sample = ", ".join(sorted(missing)[:5])
        raise DataError(
            f"{len(missing)} ids of the subset file are not among the {len(examples)} speech training "
            f"examples the run selects from (e.g. {sample}): not in the corpus, of a locale outside "
            "train_locales, or skipped as bad input",
            file=str(ids_file),
        )
    return selected
