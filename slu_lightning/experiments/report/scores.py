"""Each row's metrics with seed spread and bootstrap intervals, and its paired difference from the
baseline row."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import yaml

from slu_lightning.evaluation.bootstrap import Difference, MetricFn, bootstrap_ci, paired_bootstrap
from slu_lightning.evaluation.counts import summarize_totals
from slu_lightning.experiments.report.cells import (
    PROPORTION_KEY,
    CellPredictions,
    Group,
    ReportError,
    is_seed_axis,
    seed_of,
    utterance_clusters,
)
from slu_lightning.experiments.sweep import value_label

METRICS = {"intent_acc": "intent acc.", "entity_f1": "entity F1", "slu_f1": "SLU-F1"}


def seed_mean(n_seeds: int) -> MetricFn:
    """Metric function of ``n_seeds`` count matrices side by side ``(..., n_seeds * F)``: the mean
    over seeds of each seed's pooled metrics (``summarize_totals``)."""

    def metric_fn(totals: np.ndarray) -> dict[str, np.ndarray]:
        per_seed = [summarize_totals(part) for part in np.split(np.asarray(totals), n_seeds, axis=-1)]
        return {name: np.mean([metrics[name] for metrics in per_seed], axis=0) for name in per_seed[0]}

    return metric_fn


def aligned(cells: list[CellPredictions]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Example keys every cell predicted, their count rows side by side ``(N, len(cells) * F)``
    and their utterance cluster ids ``(N,)``.

    Raises:
        ReportError: the cells share no example, or share ids with other gold labels or locales
            (tested on different data), which pairing by id would silently mix.
    """
    first = cells[0]
    ids = [key for key in first.index if all(key in cell.index for cell in cells[1:])]
    if not ids:
        raise ReportError(f"cells {[cell.name for cell in cells]} share no scored example")
    for cell in cells[1:]:
        other = [key for key in ids if cell.golds[cell.index[key]] != first.golds[first.index[key]]]
        if other:  # the same ids over other data (a demo corpus of another seed reuses them)
            raise ReportError(
                f"{cell.name} has other gold labels or locales than {first.name} for {len(other)} "
                f"of their {len(ids)} shared examples (e.g. {other[0]!r}): they were tested on "
                "different data, so their examples cannot be paired by id"
            )
    counts = np.concatenate([cell.counts[[cell.index[i] for i in ids]] for cell in cells], axis=1)
    return ids, counts, utterance_clusters([first.rows[first.index[i]] for i in ids])


@dataclass
class GroupScore:
    """One row of the results table."""

    group: Group
    n: int
    point: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_seed: list[dict[str, float]]
    """Each cell's own metrics, in the order of ``group.cells``."""
    versus: dict[str, Difference] | None = None
    """Metric to (difference from the baseline, p-value); None without a comparable baseline."""
    is_baseline: bool = False
    reference: Group | None = None
    """The baseline row it is compared with; None for a baseline row or one without a baseline."""
    unpaired: list[str] = field(default_factory=list)
    """Names of its cells left out of ``versus``: their seed's baseline cell is missing."""

    @property
    def std(self) -> dict[str, float]:
        """Each metric's standard deviation over the seeds (0 for one seed)."""
        if len(self.per_seed) < 2:
            return dict.fromkeys(self.point, 0.0)
        return {name: float(np.std([m[name] for m in self.per_seed], ddof=1)) for name in self.point}


def score_group(group: Group, resamples: int, seed: int) -> GroupScore:
    _, counts, clusters = aligned(group.cells)
    per_seed = [
        {name: float(value) for name, value in summarize_totals(part).items()}
        for part in np.split(counts.sum(axis=0), len(group.cells))
    ]
    point = {name: float(np.mean([metrics[name] for metrics in per_seed])) for name in per_seed[0]}
    ci = bootstrap_ci(
        counts, clusters, metric_fn=seed_mean(len(group.cells)), n_resamples=resamples, seed=seed
    )
    return GroupScore(group, len(counts), point, ci, per_seed)


def parse_selector(text: str | None, keys: list[str]) -> dict[str, str]:
    """``KEY=VALUE[,KEY=VALUE]`` as value labels; the default picks speech proportion 0."""
    if text is None:
        return {PROPORTION_KEY: "0"} if PROPORTION_KEY in keys else {}
    selector = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in keys or is_seed_axis(key.strip()):
            raise ReportError(f"--baseline {text!r}: expected KEY=VALUE pairs over the non-seed axes {keys}")
        selector[key.strip()] = value_label(key.strip(), yaml.safe_load(value))
    return selector


def compare_with_baselines(
    scores: list[GroupScore], selector: dict[str, str], resamples: int, seed: int, skip_cascades: bool = False
) -> None:
    """Mark the baseline rows; of every other row that has one baseline (``baseline_of``), name it
    (``reference``) and fill ``versus`` over the seeds that pair (``_seed_partners``; the others
    are named in ``unpaired``). ``skip_cascades``: cascade rows are never baselines (the default
    selector's text-only row is)."""

    def selected(group: Group) -> bool:
        if skip_cascades and group.is_cascade:
            return False
        return bool(selector) and all(
            key in group.values and value_label(key, group.values[key]) == value
            for key, value in selector.items()
        )

    references = [score.group for score in scores if selected(score.group)]
    differing = {
        key
        for ref in references
        for key in ref.values
        if len({value_label(key, other.values.get(key)) for other in references}) > 1
    }
    for score in scores:
        score.is_baseline = selected(score.group)
        reference = None if score.is_baseline else baseline_of(score.group, references, differing)
        if reference is None:
            continue
        score.reference = reference
        cells, partners = _seed_partners(score.group, reference)
        score.unpaired = [cell.name for cell in score.group.cells if cell not in cells]
        if not cells:
            continue
        _, counts, clusters = aligned(cells + partners)
        half = counts.shape[1] // 2
        metric_fn = seed_mean(len(partners))
        score.versus = {
            name: paired_bootstrap(
                counts[:, :half],
                counts[:, half:],
                clusters,
                name,
                metric_fn=metric_fn,
                n_resamples=resamples,
                seed=seed,
            )
            for name in METRICS
        }


def baseline_of(group: Group, references: list[Group], differing: set[str]) -> Group | None:
    """The one reference row that has the row's values on the ``differing`` keys (where reference
    rows differ; unset on both counts as equal); failing any, the one that has them on those of
    these keys the row sets: a regime's text-only row at proportion 0 is often an include entry
    that also sets the data class and frozen parts, which the regime's other rows take from their
    base (``configs/paper/speech_massive_adaptation_sweep.yaml``). None when there is no such
    reference, or several."""
    for compared in (differing, differing & group.values.keys()):
        candidates = [
            ref
            for ref in references
            if all(value_label(k, ref.values.get(k)) == value_label(k, group.values.get(k)) for k in compared)
        ]
        if candidates:
            return candidates[0] if len(candidates) == 1 else None
    return None


def axis_values(scores: list[GroupScore], selector: dict[str, str]) -> dict[str, list[str]]:
    """The labels each selected axis takes over the rows, for an error that shows what exists."""
    return {
        key: sorted({value_label(key, score.group.values.get(key)) for score in scores}) for key in selector
    }


def _seed_partners(group: Group, baseline: Group) -> tuple[list[CellPredictions], list[CellPredictions]]:
    """The group's cells that pair and the baseline cell of each: the baseline's only cell, else
    the one of the same seed. A seed whose baseline cell is missing (failed, not finished) is left
    out, so that one missing cell costs the comparison that seed, not every seed's."""
    if len(baseline.cells) == 1:
        return group.cells, baseline.cells * len(group.cells)
    by_seed = {seed_of(cell): cell for cell in baseline.cells}
    cells = [cell for cell in group.cells if seed_of(cell) in by_seed]
    return cells, [by_seed[seed_of(cell)] for cell in cells]
