"""``slu-lightning report``: the paper's tables and plot, recomputed from a sweep's predictions.

Every number comes from the finished cells' ``predictions_test.jsonl`` through the one counting
core (``evaluation.counts``) and its bootstrap (``evaluation.bootstrap``); nothing is read back from
``metrics_test.json``. Only rows of one modality are scored (speech by default).

- Rows: cells that differ only in a seed axis (``seed_everything`` or a key ending in ``.seed``)
  form one row; its metrics are the mean over seeds, ``± std`` across seeds when there are several.
- Items: a row's seeds (and, for a comparison, its baseline's) are scored on the example ids that
  all of them predicted, side by side, so one bootstrap draw picks the same items for every seed.
- Intervals: 95 % cluster bootstrap of the seed mean, clusters = ``utterance_id`` (recordings of
  one utterance are resampled together).
- Baseline: ``--baseline KEY=VALUE[,KEY=VALUE]`` picks the reference rows (default: speech
  proportion 0, i.e. text-only). Each other row is compared with the reference row that shares its
  values on the axes where reference rows differ, seed by seed; the paired bootstrap gives the
  difference and a two-sided p-value.

Outputs in ``--out`` (default: the sweep root): ``results.md`` (results, cross-lingual table when
several locales are scored, error analysis), ``results.csv`` and ``slu_f1_vs_proportion.png``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slu_lightning.atomic import atomic_write, atomic_write_text
from slu_lightning.data.records import Entity
from slu_lightning.evaluation.bootstrap import MetricFn, bootstrap_ci, paired_bootstrap
from slu_lightning.evaluation.counts import COUNT_FIELDS, count_example, summarize_totals
from slu_lightning.experiments.sweep import PREDICTIONS, SWEEP_FILE, axis_labels, cell_name, value_label
from slu_lightning.task import ParseStatus, Prediction

PROPORTION_KEY = "data.init_args.speech_subset.proportion"
TRAIN_LOCALES_KEY = "data.init_args.train_locales"
METRICS = {"intent_acc": "intent acc.", "entity_f1": "entity F1", "slu_f1": "SLU-F1"}
WIDTH = len(COUNT_FIELDS)


class ReportError(ValueError):
    """A sweep root that cannot be reported on (no sweep.json, no finished cell, bad selector)."""


def is_seed_axis(key: str) -> bool:
    return key == "seed_everything" or key.endswith(".seed")


def display_key(key: str) -> str:
    return key.replace("init_args.", "")


# ---- loading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellPredictions:
    """A finished cell: its axis values, run config and scored prediction rows of one modality."""

    name: str
    values: dict[str, Any]
    config: dict
    rows: list[dict]
    counts: np.ndarray
    """``(len(rows), F)`` count rows from the counting core."""
    index: dict[str, int] = field(default_factory=dict)
    """Example id to row position."""

    def value(self, key: str) -> Any:
        """The cell's value of a config key: its axis value, else its saved run config's."""
        if key in self.values:
            return self.values[key]
        node: Any = self.config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


def prediction_of(row: dict) -> Prediction:
    return Prediction(
        row["scenario"], row["action"], entities_of(row["entities"]), ParseStatus(row["status"])
    )


def entities_of(items: list[dict]) -> tuple[Entity, ...]:
    return tuple(Entity(item["type"], item["filler"]) for item in items)


def count_row(row: dict) -> np.ndarray:
    """The counting core's row for one line of a predictions file."""
    reference = row["reference"]
    return count_example(
        reference["scenario"],
        reference["action"],
        entities_of(reference["entities"]),
        prediction_of(row),
    )


def read_cells(root: Path, modality: str) -> tuple[list[str], list[CellPredictions], list[str]]:
    """The sweep's axis keys, its finished cells, and the names of cells not finished."""
    sweep_file = root / SWEEP_FILE
    if not sweep_file.is_file():
        raise ReportError(f"no {SWEEP_FILE} in {root}: is it the root of a `slu-lightning sweep`?")
    sweep = json.loads(sweep_file.read_text(encoding="utf-8"))
    keys = list(dict.fromkeys(key for record in sweep["cells"] for key in record["values"]))
    cells, unfinished = [], []
    for record in sweep["cells"]:
        run_dir = root / record["name"]
        if not (run_dir / PREDICTIONS).is_file():
            unfinished.append(record["name"])
            continue
        lines = (run_dir / PREDICTIONS).read_text(encoding="utf-8").splitlines()
        rows = [row for row in map(json.loads, filter(None, lines)) if row["modality"] == modality]
        config_file = run_dir / "config.yaml"
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        counts = np.stack([count_row(row) for row in rows]) if rows else np.zeros((0, WIDTH))
        cells.append(
            CellPredictions(
                record["name"],
                record["values"],
                config or {},
                rows,
                counts,
                {row["id"]: i for i, row in enumerate(rows)},
            )
        )
    if not any(cell.rows for cell in cells):
        raise ReportError(f"no finished cell in {root} has {modality} predictions")
    return keys, [cell for cell in cells if cell.rows], unfinished


# ---- scoring ---------------------------------------------------------------------------------
@dataclass
class Group:
    """Cells that differ only in their seeds: one row of the tables."""

    values: dict[str, Any]
    """Non-seed axis key to value."""
    label: str
    """The cells' name without the seed part, e.g. ``curriculum-p0.02``."""
    cells: list[CellPredictions] = field(default_factory=list)


def seed_of(cell: CellPredictions) -> tuple:
    return tuple((key, value_label(key, value)) for key, value in cell.values.items() if is_seed_axis(key))


def group_cells(keys: list[str], cells: list[CellPredictions]) -> list[Group]:
    labels = axis_labels(keys)
    groups: dict[str, Group] = {}
    for cell in cells:
        values = {key: cell.values[key] for key in keys if key in cell.values and not is_seed_axis(key)}
        label = cell_name(values, labels) or "all"
        groups.setdefault(label, Group(values, label)).cells.append(cell)
    return list(groups.values())


def seed_mean(n_seeds: int) -> MetricFn:
    """Metric function of ``n_seeds`` count matrices side by side ``(..., n_seeds * F)``: the mean
    over seeds of each seed's pooled metrics (``summarize_totals``)."""

    def metric_fn(totals: np.ndarray) -> dict[str, np.ndarray]:
        per_seed = [summarize_totals(part) for part in np.split(np.asarray(totals), n_seeds, axis=-1)]
        return {name: np.mean([metrics[name] for metrics in per_seed], axis=0) for name in per_seed[0]}

    return metric_fn


def aligned(cells: list[CellPredictions]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Example ids every cell predicted, their count rows side by side ``(N, len(cells) * F)``
    and their utterance cluster ids ``(N,)``."""
    first = cells[0]
    ids = [row["id"] for row in first.rows if all(row["id"] in cell.index for cell in cells[1:])]
    if not ids:
        raise ReportError(f"cells {[cell.name for cell in cells]} share no scored example")
    counts = np.concatenate([cell.counts[[cell.index[i] for i in ids]] for cell in cells], axis=1)
    utterances = [first.rows[first.index[i]]["utterance_id"] or i for i in ids]
    return ids, counts, np.unique(utterances, return_inverse=True)[1]


@dataclass
class GroupScore:
    """One row of the results table."""

    group: Group
    n: int
    point: dict[str, float]
    std: dict[str, float]
    ci: dict[str, tuple[float, float]]
    versus: dict[str, tuple[float, float]] | None = None
    """Metric to (difference from the baseline, p-value); None without a comparable baseline."""
    is_baseline: bool = False


def score_group(group: Group, resamples: int, seed: int) -> GroupScore:
    _, counts, clusters = aligned(group.cells)
    per_seed = [summarize_totals(part) for part in np.split(counts.sum(axis=0), len(group.cells))]
    point = seed_mean(len(group.cells))(counts.sum(axis=0))
    std = {
        name: float(np.std([m[name] for m in per_seed], ddof=1)) if len(per_seed) > 1 else 0.0
        for name in point
    }
    ci = bootstrap_ci(
        counts, clusters, metric_fn=seed_mean(len(group.cells)), n_resamples=resamples, seed=seed
    )
    return GroupScore(group, len(counts), {name: float(value) for name, value in point.items()}, std, ci)


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
    scores: list[GroupScore], selector: dict[str, str], resamples: int, seed: int
) -> None:
    """Mark the baseline rows and fill ``versus`` of every other row that has one baseline."""

    def selected(group: Group) -> bool:
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
        candidates = [
            ref
            for ref in references
            if all(
                value_label(key, ref.values.get(key)) == value_label(key, score.group.values.get(key))
                for key in differing
            )
        ]
        if score.is_baseline or len(candidates) != 1:
            continue
        partners = _seed_partners(score.group, candidates[0])
        if partners is None:
            continue
        _, counts, clusters = aligned(score.group.cells + partners)
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


def _seed_partners(group: Group, baseline: Group) -> list[CellPredictions] | None:
    """The baseline cell of each of the group's seeds: the same seed, or the baseline's only cell."""
    by_seed = {seed_of(cell): cell for cell in baseline.cells}
    partners = [
        by_seed.get(seed_of(cell)) or (baseline.cells[0] if len(baseline.cells) == 1 else None)
        for cell in group.cells
    ]
    return None if None in partners else partners


# ---- writing ---------------------------------------------------------------------------------
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
    difference, p_value = score.versus[name]
    return f"{difference:+.4f} (p={p_value:.3f})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"


def results_tables(scores: list[GroupScore], keys: list[str]) -> tuple[str, str]:
    """The main table as markdown and as CSV (full precision, one column per number)."""
    axis_keys = [key for key in keys if not is_seed_axis(key)]
    header = [display_key(key) for key in axis_keys] + ["seeds", "n"]
    md_rows, csv_rows = [], []
    for score in scores:
        axes = [
            value_label(key, score.group.values[key]) if key in score.group.values else ""
            for key in axis_keys
        ]
        common = [*axes, str(len(score.group.cells)), str(score.n)]
        md_rows.append(
            common
            + [metric_text(score, name) for name in METRICS]
            + [versus_text(score, name) for name in METRICS]
        )
        numbers = []
        for name in METRICS:
            difference, p_value = score.versus[name] if score.versus else ("", "")
            numbers += [score.point[name], score.std[name], *score.ci[name], difference, p_value]
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
            for suffix in ("", "_std", "_ci_low", "_ci_high", "_diff", "_p")
        ]
    )
    writer.writerows(csv_rows)
    return md, buffer.getvalue()


def plot_slu_f1(scores: list[GroupScore], keys: list[str], path: Path) -> None:
    """SLU-F1 against speech proportion (symmetric-log x axis, so 0 fits), one line per regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = axis_labels(keys)
    lines: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    for score in scores:
        proportion = score.group.cells[0].value(PROPORTION_KEY)
        if proportion is None:
            continue
        others = {key: value for key, value in score.group.values.items() if key != PROPORTION_KEY}
        lines[cell_name(others, labels) or "all"].append(
            (float(proportion), score.point["slu_f1"], *score.ci["slu_f1"])
        )
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for label, points in lines.items():
        x, y, low, high = np.array(sorted(points)).T
        axis.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=label)
    proportions = sorted({x for points in lines.values() for x, *_ in points})
    axis.set_xscale("symlog", linthresh=min([x for x in proportions if x > 0], default=0.01))
    axis.set_xticks(proportions, [f"{x:.0%}" for x in proportions])
    axis.set(xlabel="speech proportion of the training data", ylabel="SLU-F1 (95 % CI)")
    axis.grid(alpha=0.3)
    if lines:
        axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150))
    plt.close(figure)


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
    scores: list[GroupScore], split: Split, metrics: tuple[str, str]
) -> dict[str, dict[str, tuple]]:
    """Category to row label to (metric 1, metric 2, items): seed-averaged metrics of the pooled
    count rows of each category, over each row's aligned items."""
    table: dict[str, dict[str, tuple]] = defaultdict(dict)
    for score in scores:
        cells = score.group.cells
        ids, _, _ = aligned(cells)
        totals: dict[str, np.ndarray] = defaultdict(partial(np.zeros, len(cells) * WIDTH))
        for s, cell in enumerate(cells):
            for i in ids:
                for category, counts in split(cell.rows[cell.index[i]], cell.counts[cell.index[i]]):
                    totals[category][s * WIDTH : (s + 1) * WIDTH] += counts
        metric_fn = seed_mean(len(cells))
        for category, summed in totals.items():
            values = metric_fn(summed)
            examples = int(summed[COUNT_FIELDS.index("examples")])
            table[category][score.group.label] = (
                float(values[metrics[0]]),
                float(values[metrics[1]]),
                examples,
            )
    return dict(sorted(table.items()))


def breakdown_table(table: dict[str, dict[str, tuple]], labels: list[str], first: str) -> str:
    """One line per category; ``n`` counts its items in the first row that has it."""
    rows = [
        [category, str(next(iter(cells.values()))[2])]
        + [f"{cells[label][0]:.3f} / {cells[label][1]:.3f}" if label in cells else "—" for label in labels]
        for category, cells in table.items()
    ]
    return markdown_table([first, "n", *labels], rows)


def crosslingual_section(scores: list[GroupScore]) -> str:
    """SLU-F1 per locale and the average over target (non-training) locales; empty for one locale."""
    table = breakdown(scores, by_locale, ("slu_f1", "intent_acc"))
    if len(table) < 2:
        return ""
    labels = [score.group.label for score in scores]
    rows = [
        [locale] + [f"{cells[label][0]:.4f}" if label in cells else "—" for label in labels]
        for locale, cells in table.items()
    ]
    sources, averages = [], []
    for score in scores:
        train = score.group.cells[0].value(TRAIN_LOCALES_KEY) or []
        targets = [
            table[locale][score.group.label][0]
            for locale in table
            if locale not in train and score.group.label in table[locale]
        ]
        sources.append("+".join(train) or "all")
        averages.append(f"{np.mean(targets):.4f}" if targets else "—")
    rows += [["**train locales**", *sources], ["**average over targets**", *averages]]
    return (
        "## Cross-lingual: SLU-F1 per locale\n\nTargets are the locales a row did not train on "
        "(all of them when its config lists no train locales).\n\n"
        + markdown_table(["locale", *labels], rows)
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


def write_report(
    root: Path,
    out: Path,
    baseline: str | None = None,
    modality: str = "speech",
    resamples: int = 1000,
    seed: int = 0,
) -> list[Path]:
    """Score a sweep's finished cells and write the report files; returns their paths."""
    keys, cells, unfinished = read_cells(root, modality)
    groups = group_cells(keys, cells)
    selector = parse_selector(baseline, [key for key in keys if not is_seed_axis(key)])
    scores = [score_group(group, resamples, seed) for group in groups]
    compare_with_baselines(scores, selector, resamples, seed)
    scores.sort(key=lambda score: not score.is_baseline)  # references first, then sweep order
    md_table, csv_text = results_tables(scores, keys)
    selector_text = ",".join(f"{k}={v}" for k, v in selector.items()) or "none"
    seeds = [display_key(key) for key in keys if is_seed_axis(key)]
    notes = [
        f"Modality: {modality}. Point estimates recomputed from predictions with the counting core; "
        f"[95 % cluster-bootstrap interval over utterances, {resamples} resamples].",
        f"Seeds: mean ± std over the seed axes {seeds}." if seeds else "One seed per row.",
        f"Δ: difference from the baseline row ({selector_text}) on the same items, paired bootstrap p-value.",
    ]
    if unfinished:
        notes.append(f"Not finished, left out: {', '.join(unfinished)}.")
    sections = [
        f"# Results: {root}\n\n" + "\n".join(f"- {note}" for note in notes) + "\n\n" + md_table,
        crosslingual_section(scores),
        error_analysis_section(scores),
    ]
    paths = [
        atomic_write_text(out / "results.md", "\n".join(filter(None, sections))),
        atomic_write_text(out / "results.csv", csv_text),
    ]
    plot_slu_f1(scores, keys, out / "slu_f1_vs_proportion.png")
    return [*paths, out / "slu_f1_vs_proportion.png"]


def main(args: list[str]) -> None:
    """``slu-lightning report --root ROOT [--out DIR] [--baseline KEY=VALUE,...]``."""
    parser = argparse.ArgumentParser(
        prog="slu-lightning report",
        description="Tables and plots of a sweep, recomputed from its predictions.",
    )
    parser.add_argument("--root", type=Path, required=True, help="the sweep root (holds sweep.json)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the sweep root)")
    parser.add_argument(
        "--baseline",
        default=None,
        help="reference rows as KEY=VALUE[,KEY=VALUE] (default: speech proportion 0)",
    )
    parser.add_argument("--modality", choices=("speech", "text"), default="speech", help="rows scored")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    options = parser.parse_args(args)
    try:
        paths = write_report(
            options.root,
            options.out or options.root,
            options.baseline,
            options.modality,
            options.resamples,
            options.seed,
        )
    except ReportError as error:
        print(f"slu-lightning report: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print("\n".join(map(str, paths)))
