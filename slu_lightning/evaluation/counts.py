"""The one counting core behind every SLU score: per-example count rows and their pooled summary.

Each scored example becomes one row of additive counts (``COUNT_FIELDS``). Every reported metric
is a function of the column sums of those rows, so the same rows serve the torchmetrics metric,
file scoring and cluster bootstrap, and the three cannot drift apart.

Semantics follow the official SLURP scorer (pswietojanski/slurp, ``scripts/evaluation``):

- ``evaluate.py``: scenario, action and intent are scored by micro-F1, which equals accuracy;
  the intent is built as ``scenario + "_" + action`` on both sides, never from a stored label.
- ``metrics/metrics.py`` ``SpanFMeasure``: entity F1 counts exact ``(type, filler)`` matches as a
  multiset (a duplicated prediction only matches a duplicated gold entity).
- ``metrics/metrics.py`` ``SpanDistanceFMeasure``: span-distance F1, see ``_distance_counts``.
- ``metrics/metrics.py`` ``SLUF1``: SLU-F1 adds the word-level and char-level TP/FP/FN together
  and computes one micro P/R/F1; it is not the mean of the two F1 scores.
- ``metrics/metrics.py`` ``compute_metrics``: precision is 0 when TP and FP are both 0, recall is
  0 when TP and FN are both 0, and F1 is 0 when both are 0. Entity F1 is therefore 0.0, not 1.0,
  on data with no gold and no predicted entities at all.
- ``util.py`` ``release2prediction``: the gold filler is the lower-cased token surfaces of its span
  joined by single spaces; predicted fillers are compared as written (no lower-casing, no
  whitespace cleanup). Nothing here normalises either side: readers must build gold fillers the
  scorer's way, and model output is scored verbatim.

``exact_match`` (intent right and the entity multiset identical) and ``invalid_rate`` are not in the
SLURP scorer; exact match is MASSIVE's metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.evaluation.distance import char_distance, word_error_rate
from slu_lightning.task import Prediction

COUNT_FIELDS: tuple[str, ...] = (
    "examples",
    "scenario_correct",
    "action_correct",
    "intent_correct",
    "exact_match",
    "valid",
    "entity_tp",
    "entity_fp",
    "entity_fn",
    "word_tp",
    "word_fp",
    "word_fn",
    "char_tp",
    "char_fp",
    "char_fn",
)
"""Names of the columns of a count row, in order. ``examples`` is 1 per row, so sums carry N."""


def count_example(
    gold_scenario: str, gold_action: str, gold_entities: Sequence[Entity], pred: Prediction
) -> np.ndarray:
    """The count row of one example: a float64 vector laid out as ``COUNT_FIELDS``.

    Raises:
        ValueError: if a gold filler without words is compared with a predicted filler of its type
            (the scorer's jiwer 2.0.0 refuses an empty reference as well).
    """
    gold_entities = list(gold_entities)
    predicted = list(pred.entities)
    intent_correct = f"{gold_scenario}_{gold_action}" == pred.intent
    entity_tp, entity_fp, entity_fn = _exact_counts(gold_entities, predicted)
    values = {
        "examples": 1.0,
        "scenario_correct": float(gold_scenario == pred.scenario),
        "action_correct": float(gold_action == pred.action),
        "intent_correct": float(intent_correct),
        "exact_match": float(intent_correct and entity_fp == 0 and entity_fn == 0),
        "valid": float(pred.is_valid),
        "entity_tp": entity_tp,
        "entity_fp": entity_fp,
        "entity_fn": entity_fn,
    }
    for prefix, distance in (("word", word_error_rate), ("char", char_distance)):
        tp, fp, fn = _distance_counts(gold_entities, predicted, distance)
        values.update({f"{prefix}_tp": tp, f"{prefix}_fp": fp, f"{prefix}_fn": fn})
    return np.array([values[name] for name in COUNT_FIELDS], dtype=np.float64)


def count_rows(golds: Sequence[SLUExample], preds: Sequence[Prediction]) -> np.ndarray:
    """Count rows ``(N, len(COUNT_FIELDS))`` of paired gold examples and predictions."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold examples but {len(preds)} predictions")
    rows = [count_example(g.scenario, g.action, g.entities, p) for g, p in zip(golds, preds, strict=True)]
    return np.stack(rows) if rows else np.zeros((0, len(COUNT_FIELDS)), dtype=np.float64)


def summarize(counts: np.ndarray) -> dict[str, float]:
    """Pooled (micro) metrics of a count matrix ``(N, len(COUNT_FIELDS))``, one row per example."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != len(COUNT_FIELDS):
        raise ValueError(f"expected counts of shape (N, {len(COUNT_FIELDS)}), got {counts.shape}")
    return {name: float(value) for name, value in summarize_totals(counts.sum(axis=0)).items()}


def summarize_totals(totals: np.ndarray) -> dict[str, np.ndarray]:
    """Pooled metrics from column sums of count rows, vectorised over leading dimensions.

    Args:
        totals: ``(..., len(COUNT_FIELDS))`` sums of count rows, e.g. ``(resamples, F)`` in the
            bootstrap or ``(locales, F)`` per locale.

    Returns:
        Metric name to an array of shape ``totals.shape[:-1]``. Accuracies and rates are 0.0 when
        there are no examples; P/R/F1 follow the scorer's ``compute_metrics`` on zero counts.
    """
    totals = np.asarray(totals, dtype=np.float64)
    col = {name: totals[..., i] for i, name in enumerate(COUNT_FIELDS)}
    examples = col["examples"]
    metrics = {
        "num_examples": examples,
        "scenario_acc": _ratio(col["scenario_correct"], examples),
        "action_acc": _ratio(col["action_correct"], examples),
        "intent_acc": _ratio(col["intent_correct"], examples),
        "exact_match": _ratio(col["exact_match"], examples),
        "invalid_rate": _ratio(examples - col["valid"], examples),
    }
    for kind in ("entity", "word", "char"):
        metrics.update(_prf(kind, col[f"{kind}_tp"], col[f"{kind}_fp"], col[f"{kind}_fn"]))
    pooled = {part: col[f"word_{part}"] + col[f"char_{part}"] for part in ("tp", "fp", "fn")}
    metrics.update(_prf("slu", pooled["tp"], pooled["fp"], pooled["fn"]))
    return metrics


def _exact_counts(gold: list[Entity], predicted: list[Entity]) -> tuple[float, float, float]:
    """TP/FP/FN of exact (type, filler) matches, each gold entity matched at most once."""
    unmatched = Counter(gold)
    tp = fp = 0
    for entity in predicted:
        if unmatched[entity] > 0:
            unmatched[entity] -= 1
            tp += 1
        else:
            fp += 1
    return float(tp), float(fp), float(sum(unmatched.values()))


def _distance_counts(
    gold: list[Entity], predicted: list[Entity], distance: Callable[[str, str], float]
) -> tuple[float, float, float]:
    """TP/FP/FN with partial credit for fillers that are close but not equal.

    Follows ``SpanDistanceFMeasure`` in the scorer's ``metrics/metrics.py``: predicted entities are
    taken in order; one whose type is among the still unmatched gold entities is paired with the
    unmatched gold entity of that type at the smallest ``distance(gold_filler, pred_filler)`` (the
    first one on ties) and adds TP 1, FP d and FN d; one whose type is not adds FP 1. Gold
    entities left unmatched add FN 1 each. The word distance is not capped, so d may exceed 1.
    """
    unmatched = list(gold)
    tp = fp = fn = 0.0
    for entity in predicted:
        candidates = [i for i, g in enumerate(unmatched) if g.type == entity.type]
        if not candidates:
            fp += 1.0
            continue
        distances = [distance(unmatched[i].filler, entity.filler) for i in candidates]
        best = int(np.argmin(distances))  # first minimum, as the scorer's strict '<' scan
        tp += 1.0
        fp += distances[best]
        fn += distances[best]
        unmatched.pop(candidates[best])
    return tp, fp, fn + len(unmatched)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0.0 where the denominator is 0."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _prf(name: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 with the zero conventions of the scorer's ``compute_metrics``."""
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2.0 * precision * recall, precision + recall)
    return {f"{name}_precision": precision, f"{name}_recall": recall, f"{name}_f1": f1}
