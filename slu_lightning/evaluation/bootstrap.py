"""Cluster bootstrap confidence intervals and paired significance tests on count rows.

SLURP has about 4.4 recordings per utterance, and recordings of one utterance succeed or fail
together; resampling recordings as if independent gives intervals that are too narrow. Here whole
clusters (utterances) are resampled with replacement, and every metric is recomputed from the
pooled counts of each resample, as the micro-averaged metrics themselves are. MASSIVE's locales
are translations of one set of utterances, so a pooled multi-locale interval draws an utterance's
translations together too (``cluster_key``).

Because every metric is a function of summed count rows (``counts.summarize_totals``), the work is
vectorised: rows are summed per cluster once, each resample is a vector of multinomial draw
counts over clusters, and one matrix product gives the pooled totals of all resamples.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from slu_lightning.evaluation.counts import summarize_totals

log = logging.getLogger(__name__)
FEW_CLUSTERS = 20
"""Below this many resampled items (utterances), intervals and p-values are warned about."""
_few_items_warned = False
"""Whether a process has warned of a bootstrap over few items: a report bootstraps each metric of
each cell, and a test each locale, so one warning says all there is to say."""

MetricFn = Callable[[np.ndarray], dict[str, np.ndarray]]
"""Maps pooled totals ``(..., F)`` to metric arrays of shape ``(...)``, like ``summarize_totals``."""


def cluster_key(utterance_id: str, locale: str) -> str:
    """The item a row's outcome goes with: its utterance, and for a MASSIVE-family id
    (``"<locale>/<id>"``, as the MASSIVE, Speech-MASSIVE and ITALIC readers write it) the MASSIVE
    utterance whatever its locale. Translations of one utterance share its intent, entities and
    difficulty; counted as independent, they would make a pooled multi-locale interval too narrow."""
    prefix = f"{locale}/"
    if locale and utterance_id.startswith(prefix):
        return f"*/{utterance_id.removeprefix(prefix)}"
    return utterance_id


def utterance_cluster_id(utterance_id: str, locale: str) -> int:
    """The cluster id of an utterance (``cluster_key``): a CRC-32, an integer because ``SLUMetrics``
    holds clusters in tensor state, which cannot hold strings.

    A resample draws clusters in the order of their ids, so the ids fix which draws an utterance
    gets: ``test`` (``SLUMetrics``), ``score`` and ``report`` all name clusters with this function
    and report the same intervals on the same rows and seed. Numbering the utterances by their
    sorted string ids instead gives other draws, and intervals that differ in the second decimal.
    """
    return zlib.crc32(cluster_key(utterance_id, locale).encode()) & 0x7FFFFFFF


def cluster_ids(utterance_ids: Sequence[str], locales: Sequence[str]) -> np.ndarray:
    """``(N,)`` cluster ids ``0 .. C - 1`` of each row's utterance in its locale, numbered in the
    order of their ``utterance_cluster_id``: the order the bootstrap draws them in, whichever of the
    two a caller passes (the largest id + 1 counts the clusters)."""
    crc = [utterance_cluster_id(u, locale) for u, locale in zip(utterance_ids, locales, strict=True)]
    return np.unique(np.array(crc, dtype=np.int64), return_inverse=True)[1]


def bootstrap_ci(
    counts: np.ndarray,
    clusters: np.ndarray,
    *,
    metric_fn: MetricFn = summarize_totals,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile confidence intervals of every metric under cluster resampling.

    Args:
        counts: ``(N, F)`` count rows, one per scored example (recording).
        clusters: ``(N,)`` integer cluster ids (e.g. utterance index); rows sharing an id are
            resampled together. Pass ``np.arange(N)`` to resample rows independently.
        metric_fn: metrics from pooled totals, vectorised over leading dimensions.
        n_resamples: number of bootstrap resamples.
        seed: seed of the resampling; the same seed gives the same intervals.
        alpha: 1 - confidence level; 0.05 gives 95 % intervals.

    Returns:
        Metric name to ``(low, high)``: the ``alpha / 2`` and ``1 - alpha / 2`` quantiles.
    """
    resampled = metric_fn(_resampled_totals(counts, clusters, n_resamples, seed))
    quantiles = (alpha / 2, 1 - alpha / 2)
    intervals = {}
    for name, values in resampled.items():
        low, high = np.quantile(values, quantiles)
        intervals[name] = (float(low), float(high))
    return intervals


class Difference(NamedTuple):
    """``metric(a) - metric(b)`` on the full data, its percentile interval, and a two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float


def paired_bootstrap(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    clusters: np.ndarray,
    metric: str,
    *,
    metric_fn: MetricFn = summarize_totals,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Difference:
    """Difference ``metric(a) - metric(b)`` of two systems scored on the same items, its interval
    and its p-value.

    Both systems are resampled with the same cluster draws, so the interval is the difference's
    own, narrower than the two systems' intervals side by side. The two-sided p-value is twice the
    smaller share of resamples in which the difference is ``<= 0`` or ``>= 0`` (with the usual +1
    correction, capped at 1): near 0 when one system wins almost every resample, 1 for identical
    systems.

    Args:
        counts_a: ``(N, F)`` count rows of system A.
        counts_b: ``(N, F)`` count rows of system B, row ``i`` on the same item as in ``counts_a``.
        clusters: ``(N,)`` integer cluster ids shared by both systems.
        metric: name of the metric to compare, a key of ``metric_fn``'s result (e.g. ``slu_f1``).
        metric_fn: metrics from pooled totals, vectorised over leading dimensions.
        n_resamples: number of bootstrap resamples.
        seed: seed of the resampling.
        alpha: 1 - confidence level of the interval.

    Returns:
        The difference on the full data, the ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the
        resampled differences, and the two-sided p-value.
    """
    counts_a, counts_b = np.asarray(counts_a, dtype=np.float64), np.asarray(counts_b, dtype=np.float64)
    if counts_a.shape != counts_b.shape:
        raise ValueError(f"paired systems need equal shapes, got {counts_a.shape} and {counts_b.shape}")
    both = np.concatenate([counts_a, counts_b], axis=1)  # (N, 2F): one draw serves both systems
    totals = _resampled_totals(both, clusters, n_resamples, seed)  # (R, 2F)
    width = counts_a.shape[1]
    deltas = metric_fn(totals[:, :width])[metric] - metric_fn(totals[:, width:])[metric]  # (R,)
    difference = float(metric_fn(counts_a.sum(axis=0))[metric] - metric_fn(counts_b.sum(axis=0))[metric])
    return _difference(difference, deltas, alpha)


def unpaired_bootstrap(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    metric: str,
    *,
    metric_fn: MetricFn = summarize_totals,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Difference:
    """Difference ``metric(a) - metric(b)`` of two samples of different items (say, sentences seen
    in training against new ones), its interval and its two-sided p-value.

    Each sample's rows are resampled on their own, so the interval carries both samples'
    variability and is wider than a paired one would be. Rows are the clusters.
    """
    counts_a, counts_b = np.asarray(counts_a, dtype=np.float64), np.asarray(counts_b, dtype=np.float64)
    resampled = [
        metric_fn(_resampled_totals(counts, np.arange(len(counts)), n_resamples, seed + i))[metric]
        for i, counts in enumerate((counts_a, counts_b))
    ]
    difference = float(metric_fn(counts_a.sum(axis=0))[metric] - metric_fn(counts_b.sum(axis=0))[metric])
    return _difference(difference, resampled[0] - resampled[1], alpha)


def _difference(difference: float, deltas: np.ndarray, alpha: float) -> Difference:
    """``difference`` with the percentile interval of its resampled ``deltas`` and the two-sided
    p-value: twice the smaller share of resamples on either side of 0 (+1 corrected, capped at 1)."""
    extreme = min(np.count_nonzero(deltas <= 0), np.count_nonzero(deltas >= 0))
    p_value = min(1.0, 2.0 * (extreme + 1) / (len(deltas) + 1))
    low, high = np.quantile(deltas, (alpha / 2, 1 - alpha / 2))
    return Difference(difference, float(low), float(high), p_value)


def _resampled_totals(counts: np.ndarray, clusters: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Pooled totals ``(n_resamples, F)`` of cluster bootstrap resamples of ``counts``."""
    counts = np.asarray(counts, dtype=np.float64)
    clusters = np.asarray(clusters)
    if counts.ndim != 2 or clusters.shape != (counts.shape[0],):
        raise ValueError(f"expected counts (N, F) and clusters (N,), got {counts.shape} and {clusters.shape}")
    if counts.shape[0] == 0:
        raise ValueError("cannot bootstrap zero examples")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    _, cluster_of_row = np.unique(clusters, return_inverse=True)
    n_clusters = int(cluster_of_row.max()) + 1
    if n_clusters < FEW_CLUSTERS:
        _warn_few_items(n_clusters)
    cluster_sums = np.zeros((n_clusters, counts.shape[1]))
    np.add.at(cluster_sums, cluster_of_row, counts)  # (C, F)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_resamples)  # (R, C)
    return draws @ cluster_sums  # (R, F)


def _warn_few_items(n_clusters: int) -> None:
    global _few_items_warned
    if not _few_items_warned:
        _few_items_warned = True
        log.warning(
            "a bootstrap over %d item%s: with fewer than %d its intervals and p-values are not to be "
            "trusted (a single item gives a zero-width interval and p near 0); said once, for the "
            "first such set (a small locale's, say)",
            n_clusters,
            "" if n_clusters == 1 else "s",
            FEW_CLUSTERS,
        )
