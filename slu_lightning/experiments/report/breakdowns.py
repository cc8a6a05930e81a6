"""Metrics per category (scenario, entity type, microphone, locale): the cross-lingual table and the
error analysis."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np

from slu_lightning.evaluation.bootstrap import bootstrap_ci
from slu_lightning.evaluation.counts import count_example
from slu_lightning.experiments.report.cells import (
    WIDTH,
    CellPredictions,
    Group,
    entities_of,
    prediction_of,
    training_locales,
)
from slu_lightning.experiments.report.scores import METRICS, GroupScore, aligned, seed_mean
from slu_lightning.experiments.report.tables import markdown_table

Split = Callable[[dict, np.ndarray], list[tuple[str, np.ndarray]]]
"""A prediction row and its count row to the (category, count row) pairs of a breakdown."""


def by_scenario(row: dict, counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
    return [(row["reference"]["scenario"], counts)]


def by_locale(row: dict, counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
    return [(row["locale"], counts)]


def by_microphone(row: dict, counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """SLURP recordings by microphone (``headset`` close-talk or ``far_field``); others have none."""
    mic = (row.get("meta") or {}).get("mic")
    return [(mic, counts)] if mic else []


def by_entity_type(row: dict, counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each entity type of the gold or predicted entities, counted with both lists cut to it."""
    reference, prediction = row["reference"], prediction_of(row)
    gold = entities_of(reference["entities"])
    pairs = []
    for kind in sorted({entity.type for entity in gold + prediction.entities}):
        only = replace(prediction, entities=tuple(e for e in prediction.entities if e.type == kind))
        kept_gold = [e for e in gold if e.type == kind]
        pairs.append((kind, count_example(reference["scenario"], reference["action"], kept_gold, only)))
    return pairs


def breakdown(
    scores: list[GroupScore], split: Split, metrics: tuple[str, ...]
) -> dict[str, dict[str, tuple]]:
    """Category to row label to (each metric, items): seed-averaged metrics of the pooled count
    rows of each category, over each row's aligned items; its items are those that any of the
    row's seeds scored in the category (a category of the gold, such as a scenario, has the same
    items in every seed; a predicted entity type may have them in one seed only)."""
    table: dict[str, dict[str, tuple]] = defaultdict(dict)
    for score in scores:
        cells = score.group.cells
        ids, _, _ = aligned(cells)
        totals: dict[str, np.ndarray] = defaultdict(partial(np.zeros, len(cells) * WIDTH))
        items: dict[str, set[str]] = defaultdict(set)
        for s, cell in enumerate(cells):
            for i in ids:
                for category, counts in split(cell.rows[cell.index[i]], cell.counts[cell.index[i]]):
                    totals[category][s * WIDTH : (s + 1) * WIDTH] += counts
                    items[category].add(i)
        metric_fn = seed_mean(len(cells))
        for category, summed in totals.items():
            values = metric_fn(summed)
            table[category][score.group.label] = (*(float(values[m]) for m in metrics), len(items[category]))
    return dict(sorted(table.items()))


def breakdown_table(table: dict[str, dict[str, tuple]], labels: list[str], first: str) -> str:
    """One line per category of a two-metric breakdown; ``n`` counts its items in the first row
    that has it (those that any of that row's seeds scored in the category: ``breakdown``)."""
    rows = [
        [category, str(next(iter(cells.values()))[-1])]
        + [f"{cells[label][0]:.3f} / {cells[label][1]:.3f}" if label in cells else "—" for label in labels]
        for category, cells in table.items()
    ]
    return markdown_table([first, "n", *labels], rows)


def locale_rows(table: dict[str, dict[str, tuple]], labels: list[str], column: int) -> list[list[str]]:
    """One line per locale: each row's metric number ``column`` of the breakdown."""
    return [
        [locale] + [f"{cells[label][column]:.4f}" if label in cells else "—" for label in labels]
        for locale, cells in table.items()
    ]


def targets(table: dict[str, dict[str, tuple]], train: list[str]) -> list[str]:
    """The locales the report scores that a row did not train on: where it is zero-shot. A row that
    did not score one of them has no average over them (``mean_over``), rather than an average over
    fewer locales printed beside the others'."""
    return [locale for locale in table if locale not in train]


def mean_over(
    table: dict[str, dict[str, tuple]], label: str, locales: list[str], column: int
) -> float | None:
    """A row's unweighted mean of a metric over ``locales`` (the paper averages locales, not items);
    None when it scored none of them or not all of them, so that two rows' means share locales."""
    if not locales or any(label not in table[locale] for locale in locales):
        return None
    return float(np.mean([table[locale][label][column] for locale in locales]))


def locale_means(
    rows: list[list[CellPredictions]], locales: list[str], metric: str
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], list[np.ndarray]]]:
    """What a cluster bootstrap of rows' unweighted means of ``metric`` over ``locales`` resamples:
    the items every cell of ``rows`` scored, each count row in its locale's block ``(N, L * F)``,
    their clusters ``(N,)``, and the function from pooled totals ``(..., L * F)`` to each row's
    seed-averaged mean ``(...)``, as ``breakdown`` averages seeds. One draw of utterances serves
    every locale and row, a MASSIVE utterance's translations one cluster (``bootstrap.cluster_key``):
    how well a row does in one locale goes with how well it does on the same utterances in others."""
    cells = [cell for row in rows for cell in row]
    ids, counts, clusters = aligned(cells)  # (N,), (N, seeds * WIDTH), (N,)
    first = cells[0]
    slot = {locale: i for i, locale in enumerate(locales)}
    where = [slot.get(first.rows[first.index[key]]["locale"]) for key in ids]
    kept = np.array([n for n, place in enumerate(where) if place is not None])
    blocks = np.zeros((len(kept), len(locales), counts.shape[1]))
    blocks[np.arange(len(kept)), [where[n] for n in kept]] = counts[kept]
    bounds = np.cumsum([0, *(len(row) * WIDTH for row in rows)])

    def means(totals: np.ndarray) -> list[np.ndarray]:
        split = totals.reshape(*totals.shape[:-1], len(locales), counts.shape[1])  # (..., L, seeds * F)
        return [
            seed_mean(len(row))(split[..., start:stop])[metric].mean(axis=-1)
            for row, start, stop in zip(rows, bounds[:-1], bounds[1:], strict=True)
        ]

    return blocks.reshape(len(kept), -1), clusters[kept], means


def mean_interval(
    score: GroupScore, locales: list[str], metric: str, resamples: int, seed: int
) -> tuple[float, float]:
    """95 % cluster-bootstrap interval of a row's unweighted mean of ``metric`` over ``locales``."""
    counts, clusters, means = locale_means([score.group.cells], locales, metric)
    interval = bootstrap_ci(
        counts, clusters, metric_fn=lambda t: {metric: means(t)[0]}, n_resamples=resamples, seed=seed
    )
    return interval[metric]


def relative_interval(
    score: GroupScore, locales: list[str], metric: str, resamples: int, seed: int
) -> tuple[float, float]:
    """95 % paired cluster-bootstrap interval, in %, of the relative change of a row's mean over
    ``locales`` from its baseline row's: both drawn on the same utterances."""
    rows = [score.group.cells, score.reference.cells]
    counts, clusters, means = locale_means(rows, locales, metric)

    def change(totals: np.ndarray) -> dict[str, np.ndarray]:
        row, base = means(totals)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {metric: 100 * (row / base - 1)}

    return bootstrap_ci(counts, clusters, metric_fn=change, n_resamples=resamples, seed=seed)[metric]


def average_text(
    table: dict[str, dict[str, tuple]],
    score: GroupScore,
    train: list[str],
    column: int,
    resamples: int,
    seed: int,
) -> str:
    """A row's average over its targets, with its interval when resamples are asked for."""
    locales = targets(table, train)
    average = mean_over(table, score.group.label, locales, column)
    if average is None:
        return "—"
    if not resamples:
        return f"{average:.4f}"
    low, high = mean_interval(score, locales, list(METRICS)[column], resamples, seed)
    return f"{average:.4f} [{low:.4f}, {high:.4f}]"


def relative_text(
    table: dict[str, dict[str, tuple]],
    score: GroupScore,
    train: list[str],
    column: int,
    resamples: int,
    seed: int,
) -> str:
    """The relative change of a row's target average from its baseline row's average over the same
    targets (the paper's "+20-33 % relative"), so that a row's own targets decide what is averaged;
    with its paired interval when resamples are asked for."""
    if score.is_baseline:
        return "baseline"
    if score.reference is None:
        return "—"
    locales = targets(table, train)
    row = mean_over(table, score.group.label, locales, column)
    base = mean_over(table, score.reference.label, locales, column)
    if row is None or not base:
        return "—"
    if not resamples:
        return f"{100 * (row / base - 1):+.1f} %"
    low, high = relative_interval(score, locales, list(METRICS)[column], resamples, seed)
    return f"{100 * (row / base - 1):+.1f} % [{low:+.1f}, {high:+.1f}]"


def crosslingual_table(
    table: dict[str, dict[str, tuple]],
    scores: list[GroupScore],
    trained_on: list[list[str]],
    column: int,
    resamples: int,
    seed: int,
) -> str:
    """One metric per locale, each row's train locales, its average over its targets with its
    interval and, when there is a baseline row, that average's relative change from the baseline's."""
    labels = [score.group.label for score in scores]
    averages = [
        average_text(table, score, train, column, resamples, seed)
        for score, train in zip(scores, trained_on, strict=True)
    ]
    rows = locale_rows(table, labels, column) + [
        ["**train locales**", *("+".join(train) or "all" for train in trained_on)],
        ["**average over targets**", *averages],
    ]
    if any(score.is_baseline for score in scores):
        rows.append(
            [
                "**relative to baseline**",
                *(
                    relative_text(table, s, t, column, resamples, seed)
                    for s, t in zip(scores, trained_on, strict=True)
                ),
            ]
        )
    return markdown_table(["locale", *labels], rows)


def crosslingual_section(scores: list[GroupScore], resamples: int, seed: int) -> str:
    """Intent accuracy, entity F1 and SLU-F1 per locale (the paper's cross-lingual tables) with,
    when a row trained on some locales only (``training_locales`` of its saved run config), the
    average over its target (non-training) locales; empty for one locale. When every row trained on
    every locale nothing is cross-lingual: one SLU-F1 table, kept as committed reports print it."""
    table = breakdown(scores, by_locale, tuple(METRICS))
    if len(table) < 2:
        return ""
    labels = [score.group.label for score in scores]
    trained_on = [training_locales(score.group.cells[0].config) for score in scores]
    if not any(trained_on):
        slu_f1 = list(METRICS).index("slu_f1")
        return "## SLU-F1 per locale\n\n" + markdown_table(
            ["locale", *labels], locale_rows(table, labels, slu_f1)
        )
    return (
        "## Cross-lingual: intent accuracy, entity F1 and SLU-F1 per locale\n\nTargets are the locales a "
        "row did not train on (all of them when its config lists no train locales); their average "
        "is unweighted, with its 95 % cluster-bootstrap interval (one draw of utterances for every "
        "locale, a MASSIVE utterance's translations together), and — where the row did not score "
        "every target. Relative to baseline: the "
        "change of that average from the baseline row's average over the same targets, with its paired "
        "interval (both rows drawn on the same utterances).\n\n"
        + "\n".join(
            f"### {name[0].upper() + name[1:]} per locale\n\n"
            + crosslingual_table(table, scores, trained_on, column, resamples, seed)
            for column, name in enumerate(METRICS.values())
        )
    )


def confusions(group: Group, field_name: str, top: int = 3) -> str:
    counter: Counter[tuple[str, str]] = Counter()
    ids, _, _ = aligned(group.cells)
    for cell in group.cells:
        for i in ids:
            row = cell.rows[cell.index[i]]
            gold, predicted = row["reference"][field_name], row[field_name] or "(none)"
            if gold != predicted:
                counter[gold, predicted] += 1
    return (
        ", ".join(f"{gold} → {predicted} ({n})" for (gold, predicted), n in counter.most_common(top))
        or "none"
    )


def error_analysis_section(scores: list[GroupScore]) -> str:
    labels = [score.group.label for score in scores]
    invalid = markdown_table(
        ["row", "invalid output rate"],
        [[score.group.label, f"{score.point['invalid_rate']:.2%}"] for score in scores],
    )
    scenarios = breakdown(scores, by_scenario, ("slu_f1", "intent_acc"))
    types = breakdown(scores, by_entity_type, ("slu_f1", "entity_f1"))
    microphones = breakdown(scores, by_microphone, ("slu_f1", "intent_acc"))
    microphone_table = (
        "\n### Per microphone (SLURP headset vs far-field): SLU-F1 / intent accuracy\n\n"
        + breakdown_table(microphones, labels, "microphone")
        if microphones
        else ""
    )
    confused = "\n".join(
        f"- **{score.group.label}**: scenarios {confusions(score.group, 'scenario')}; "
        f"actions {confusions(score.group, 'action')}"
        for score in scores
    )
    return (
        "## Error analysis\n\n### Invalid outputs\n\n"
        + invalid
        + "\n### Per scenario: SLU-F1 / intent accuracy\n\n"
        + breakdown_table(scenarios, labels, "scenario")
        + "\n### Per entity type: SLU-F1 / entity F1\n\n"
        + breakdown_table(types, labels, "entity type")
        + microphone_table
        + "\n### Most frequent confusions (gold → predicted, counts summed over seeds)\n\n"
        + confused
        + "\n"
    )
