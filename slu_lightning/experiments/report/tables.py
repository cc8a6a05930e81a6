"""The results table, as markdown (point, ± seed std, [CI], Δ [CI] and p) and as full-precision CSV."""

from __future__ import annotations

import csv
import io

from slu_lightning.experiments.report.cells import axis_keys, display_key, seed_of
from slu_lightning.experiments.report.scores import METRICS, GroupScore
from slu_lightning.experiments.sweep import value_label


def fmt(value: float) -> str:
    return f"{value:.4f}"


def metric_text(score: GroupScore, name: str) -> str:
    spread = f" ± {fmt(score.std[name])}" if len(score.group.cells) > 1 else ""
    low, high = score.ci[name]
    return f"{fmt(score.point[name])}{spread} [{fmt(low)}, {fmt(high)}]"


def versus_text(score: GroupScore, name: str) -> str:
    if score.is_baseline:
        return "baseline"
    if score.versus is None:
        return "—"
    d = score.versus[name]
    return f"{d.difference:+.4f} [{d.low:+.4f}, {d.high:+.4f}] (p={d.p_value:.3f})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"


def results_tables(scores: list[GroupScore], keys: list[str]) -> tuple[str, str]:
    """The main table as markdown and as CSV (full precision, one column per number)."""
    axes = axis_keys(keys)
    header = [display_key(key) for key in axes] + ["seeds", "n"]
    md_rows, csv_rows = [], []
    for score in scores:
        common = [*axis_values(score, axes), str(len(score.group.cells)), str(score.n)]
        md_rows.append(
            common
            + [metric_text(score, name) for name in METRICS]
            + [versus_text(score, name) for name in METRICS]
        )
        numbers = []
        for name in METRICS:
            versus = score.versus[name] if score.versus else ("", "", "", "")
            numbers += [score.point[name], score.std[name], *score.ci[name], *versus]
        csv_rows.append(common + [score.point["invalid_rate"], score.is_baseline] + numbers)
    md = markdown_table(
        header + list(METRICS.values()) + [f"Δ {label} (p)" for label in METRICS.values()], md_rows
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        header
        + ["invalid_rate", "baseline"]
        + [
            f"{name}{suffix}"
            for name in METRICS
            for suffix in ("", "_std", "_ci_low", "_ci_high", "_diff", "_diff_ci_low", "_diff_ci_high", "_p")
        ]
    )
    writer.writerows(csv_rows)
    return md, buffer.getvalue()


def axis_values(score: GroupScore, axes: list[str]) -> list[str]:
    """The row's value on each non-seed axis, as the tables print it (empty where it has none)."""
    values = score.group.values
    return [value_label(key, values[key]) if key in values else "" for key in axes]


def per_seed_section(scores: list[GroupScore], keys: list[str]) -> str:
    """Each seed's metrics, row by row, on the items its row was scored on; empty without seeds.
    The axis columns are the main table's, so a row reads across both tables."""
    axes = axis_keys(keys)
    rows = [
        [
            *axis_values(score, axes),
            ", ".join(value for _, value in seed_of(cell)),
            *(fmt(metrics[n]) for n in METRICS),
        ]
        for score in scores
        if len(score.group.cells) > 1
        for cell, metrics in zip(score.group.cells, score.per_seed, strict=True)
    ]
    if not rows:
        return ""
    header = [display_key(key) for key in axes] + ["seed", *METRICS.values()]
    return "## Per seed\n\n" + markdown_table(header, rows)
