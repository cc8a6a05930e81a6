"""``SLUMetrics``: the torchmetrics face of the counting core, overall and per locale.

The metric keeps the per-example count rows themselves (not running sums), with their locale and
cluster ids, as cat-reduced tensor states: DDP gathers them correctly, the summary is computed by
``counts.summarize`` exactly as file scoring does, and the rows stay available for cluster
bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from slu_lightning.data.records import SLUExample
from slu_lightning.evaluation import counts
from slu_lightning.evaluation.bootstrap import bootstrap_ci
from slu_lightning.task import Prediction


def rows_from_predictions(golds: Sequence[SLUExample], preds: Sequence[Prediction]) -> torch.Tensor:
    """Count rows ``(B, len(counts.COUNT_FIELDS))`` in float64 for ``SLUMetrics.update``."""
    return torch.from_numpy(counts.count_rows(golds, preds))


_ID_STATES = ("locale_idx", "cluster_idx", "example_idx")
"""The per-row integer id states, beside the float64 ``rows``."""


class SLUMetrics(Metric):
    """Intent accuracy, entity F1, SLU-F1 and the rest, overall and per locale.

    ``compute()`` returns a flat dict: ``{"slu_f1": ..., "intent_acc": ..., "fr-FR/slu_f1": ...}``
    with every name of ``counts.summarize``; a locale without examples gets no entries.
    With ``n_resamples > 0`` it adds ``<name>_ci_low`` and ``<name>_ci_high`` (cluster bootstrap,
    overall and per locale); that costs a fraction of a second per group, so keep it for testing.

    Cluster ids must mean the same utterance on every rank (e.g. an index into the dataset's list of
    utterances). Lightning's distributed sampler pads ranks by repeating examples; pass
    ``example_idx`` (a dataset-wide example index) to ``update`` and repeated indices are counted
    once. Rows updated without it are never deduplicated.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self, locales: list[str], n_resamples: int = 0, seed: int = 0, alpha: float = 0.05, **kwargs
    ) -> None:
        """
        Args:
            locales: the fixed locale vocabulary; ``update`` takes indices into it.
            n_resamples: bootstrap resamples for confidence intervals; 0 computes none.
            seed: seed of the bootstrap resampling.
            alpha: 1 - confidence level of the intervals.
            **kwargs: passed on to ``torchmetrics.Metric``.
        """
        super().__init__(**kwargs)
        if len(set(locales)) != len(locales):
            raise ValueError(f"locales must be unique, got {locales}")
        self.locales = list(locales)
        self.n_resamples = n_resamples
        self.seed = seed
        self.alpha = alpha
        self.add_state("rows", default=[], dist_reduce_fx="cat")
        self.add_state("locale_idx", default=[], dist_reduce_fx="cat")
        self.add_state("cluster_idx", default=[], dist_reduce_fx="cat")
        self.add_state("example_idx", default=[], dist_reduce_fx="cat")

    def update(
        self,
        count_rows: torch.Tensor,
        locale_idx: torch.Tensor,
        cluster_idx: torch.Tensor,
        example_idx: torch.Tensor | None = None,
    ) -> None:
        """Add a batch.

        Args:
            count_rows: ``(B, len(counts.COUNT_FIELDS))`` rows from ``rows_from_predictions``.
            locale_idx: ``(B,)`` indices into ``locales``.
            cluster_idx: ``(B,)`` cluster (utterance) ids for the bootstrap.
            example_idx: ``(B,)`` non-negative dataset-wide example indices for deduplication.
        """
        batch = count_rows.shape[0]
        if count_rows.ndim != 2 or count_rows.shape[1] != len(counts.COUNT_FIELDS):
            raise ValueError(
                f"count_rows must be (B, {len(counts.COUNT_FIELDS)}), got {tuple(count_rows.shape)}"
            )
        if example_idx is None:
            example_idx = torch.full((batch,), -1, dtype=torch.long, device=count_rows.device)
        ids = {"locale_idx": locale_idx, "cluster_idx": cluster_idx, "example_idx": example_idx}
        for name, values in ids.items():
            if values.shape != (batch,):
                raise ValueError(f"{name} must be ({batch},), got {tuple(values.shape)}")
        if batch and not 0 <= int(locale_idx.min()) <= int(locale_idx.max()) < len(self.locales):
            raise ValueError(f"locale_idx out of range for {len(self.locales)} locales")
        self.rows.append(count_rows.to(torch.float64))
        self.locale_idx.append(locale_idx.long())
        self.cluster_idx.append(cluster_idx.long())
        self.example_idx.append(example_idx.long())

    def sync(self, *args, **kwargs) -> None:
        """Give each state that saw no update an empty tensor of its own dtype and width, then sync.

        A rank that scored no example of this modality (an eval set smaller than the world, or
        every clip of its slice skipped) still joins the all-gather; torchmetrics would send a 1-D
        float32 placeholder, which does not gather with the other ranks' ``(B, F)`` float64 rows
        and int64 ids (gloo aborts, NCCL may hang).
        """
        empty = {
            "rows": torch.zeros((0, len(counts.COUNT_FIELDS)), dtype=torch.float64, device=self.device),
            **{name: torch.zeros(0, dtype=torch.long, device=self.device) for name in _ID_STATES},
        }
        for name, placeholder in empty.items():
            state = getattr(self, name)
            if isinstance(state, list) and not state:
                state.append(placeholder)
        super().sync(*args, **kwargs)

    def compute(self) -> dict[str, torch.Tensor]:
        """The flat metric dict described in the class docstring; empty before any update."""
        if isinstance(self.rows, list) and not self.rows:
            return {}
        rows = dim_zero_cat(self.rows)  # (N, F)
        locale_idx = dim_zero_cat(self.locale_idx)  # (N,)
        cluster_idx = dim_zero_cat(self.cluster_idx)  # (N,)
        keep = _first_occurrences(dim_zero_cat(self.example_idx))
        rows = rows[keep].cpu().numpy()
        locale_idx = locale_idx[keep].cpu().numpy()
        cluster_idx = cluster_idx[keep].cpu().numpy()

        groups = {"": np.ones(len(rows), dtype=bool)}
        groups.update({f"{loc}/": locale_idx == i for i, loc in enumerate(self.locales)})
        results: dict[str, float] = {}
        for prefix, mask in groups.items():
            if not mask.any():
                continue
            results.update({f"{prefix}{name}": value for name, value in counts.summarize(rows[mask]).items()})
            if self.n_resamples > 0:
                intervals = bootstrap_ci(
                    rows[mask],
                    cluster_idx[mask],
                    n_resamples=self.n_resamples,
                    seed=self.seed,
                    alpha=self.alpha,
                )
                for name, (low, high) in intervals.items():
                    if name == "num_examples":  # a count, not an estimate
                        continue
                    results[f"{prefix}{name}_ci_low"] = low
                    results[f"{prefix}{name}_ci_high"] = high
        return {name: torch.tensor(value, dtype=torch.float64) for name, value in results.items()}


def _first_occurrences(example_idx: torch.Tensor) -> torch.Tensor:
    """Boolean mask keeping rows with a negative index and the first row of each index >= 0."""
    positions = torch.arange(len(example_idx), device=example_idx.device)
    unique, inverse = torch.unique(example_idx, return_inverse=True)
    first = torch.full((len(unique),), len(example_idx), device=example_idx.device, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    keep = torch.zeros(len(example_idx), dtype=torch.bool, device=example_idx.device)
    keep[first] = True
    return keep | (example_idx < 0)


HEADLINE = ("intent_acc", "entity_f1", "slu_f1")
"""The metrics a test's one-line summary shows; ``metrics_test.json`` holds them all."""


def headline(name: str, metrics: dict[str, float]) -> str:
    """``name, N examples: intent_acc 0.341 [0.280, 0.402], ..., invalid_rate 0.044``."""
    if not metrics.get("num_examples"):
        return (
            f"{name}: no example scored (a limit_*_batches that stops before this modality's batches, "
            "or every one skipped as bad input)"
        )
    shown = [f"{metric} {metrics[metric]:.3f}{_interval(metrics, metric)}" for metric in HEADLINE]
    examples = int(metrics["num_examples"])
    return f"{name}, {examples} examples: {', '.join(shown)}, invalid_rate {metrics['invalid_rate']:.3f}"


def _interval(metrics: dict[str, float], metric: str) -> str:
    low, high = metrics.get(f"{metric}_ci_low"), metrics.get(f"{metric}_ci_high")
    return "" if low is None else f" [{low:.3f}, {high:.3f}]"
