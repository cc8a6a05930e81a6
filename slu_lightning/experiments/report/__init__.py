"""``slu-lightning report``: the paper's tables and plot, recomputed from a sweep's predictions.

Every number comes from the finished cells' ``predictions_test.jsonl`` through the one counting
core (``evaluation.counts``) and its bootstrap (``evaluation.bootstrap``); nothing is read back from
``metrics_test.json``. Only rows of one modality are scored (speech by default). A cascade cell
(``CascadeCorpus``) answers speech through its recogniser: its transcript rows are its speech rows.

- Rows: cells that differ only in a seed axis (``seed_everything`` or a key ending in ``.seed``)
  form one row; its metrics are the mean over seeds, ``± std`` across seeds when there are several.
  A cell not finished, or with no rows to score (a cascade under ``--modality text``, a run tested
  on the other modality, none of ``--locales``), is named in the notes with why it is left out.
- Items: a row's seeds (and, for a comparison, its baseline's) are scored on the example ids that
  all of them predicted, side by side, so one bootstrap draw picks the same items for every seed;
  cells whose shared ids carry other gold labels or locales (tested on other data) are refused.
- Intervals: 95 % cluster bootstrap of the seed mean, clusters = ``utterance_id`` (recordings of
  one utterance are resampled together).
- Locales: ``--locales L1[,L2]`` scores only those locales' rows, everywhere (tables, plot,
  differences): a cross-lingual grid's main table is its training locale alone, as the paper's.
- Baseline: ``--baseline KEY=VALUE[,KEY=VALUE]`` picks the reference rows (default: speech
  proportion 0, i.e. text-only; a cascade row only when named). Each other row is compared with
  the reference row that shares its values on the axes where reference rows differ (failing any,
  on those of these axes the row sets: a text-only include entry may also set the data class and
  frozen parts that its regime's other rows take from their base), seed by seed (a seed whose
  baseline cell is missing is left out of the difference, and named); the paired bootstrap gives
  the difference and a two-sided p-value.

Outputs in ``--out`` (default: the sweep root): ``results.md`` (results; when several locales are
scored, SLU-F1 per locale or, when rows trained on some locales only, intent accuracy, entity F1
and SLU-F1 per locale with each row's average over its target locales, its interval, and that
average's relative change from the baseline row's on the same targets; error analysis, whose
per-category ``n`` counts the items any of a row's seeds scored in the category), ``results.csv``
and, when rows have a speech proportion, ``slu_f1_vs_proportion.png``.

Modules: ``cells`` (finished cells and rows), ``scores`` (metrics, intervals, baseline deltas),
``tables`` (results table), ``breakdowns`` (per category, cross-lingual, error analysis), ``plot``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from slu_lightning.atomic import atomic_write_text
from slu_lightning.evaluation.scoring import NOT_JSON_NAMES, STRICT_HELP
from slu_lightning.experiments.report.breakdowns import crosslingual_section, error_analysis_section
from slu_lightning.experiments.report.cells import (
    ReportError,
    axis_keys,
    display_key,
    group_cells,
    is_seed_axis,
    read_cells,
)
from slu_lightning.experiments.report.plot import plot_slu_f1
from slu_lightning.experiments.report.scores import (
    axis_values,
    compare_with_baselines,
    parse_selector,
    score_group,
)
from slu_lightning.experiments.report.tables import per_seed_section, results_tables

log = logging.getLogger(__name__)

__all__ = ["ReportError", "main", "write_report"]


def write_report(
    root: Path,
    out: Path,
    baseline: str | None = None,
    modality: str = "speech",
    resamples: int = 1000,
    seed: int = 0,
    strict: bool = False,
    locales: list[str] | None = None,
) -> list[Path]:
    """Score a sweep's finished cells and write the report files; returns their paths. ``strict``
    scores ``NOT_JSON_NAMES`` answers as empty (``score --strict``); ``locales`` scores only
    those locales' rows (a cross-lingual grid's training locale, as the paper's main table does)."""
    keys, cells, left_out = read_cells(root, modality, strict, locales)
    groups = group_cells(keys, cells)
    selector = parse_selector(baseline, axis_keys(keys))
    scores = [score_group(group, resamples, seed) for group in groups]
    compare_with_baselines(scores, selector, resamples, seed, skip_cascades=baseline is None)
    if baseline is not None and not any(score.is_baseline for score in scores):
        raise ReportError(
            f"--baseline {baseline!r} matches no row; the rows' values: {axis_values(scores, selector)}"
        )
    scores.sort(key=lambda score: not score.is_baseline)  # references first, then sweep order
    md_table, csv_text = results_tables(scores, keys)
    selector_text = ",".join(f"{k}={v}" for k, v in selector.items()) or "none"
    seeds = [display_key(key) for key in keys if is_seed_axis(key)]
    notes = [
        f"Modality: {modality}. Point estimates recomputed from predictions with the counting core; "
        f"[95 % cluster-bootstrap interval over utterances, {resamples} resamples].",
        f"Seeds: mean ± std over the seed axes {seeds}." if seeds else "One seed per row.",
        f"Δ: difference from the baseline row ({selector_text}) on the same items, with its paired "
        "bootstrap interval and p-value.",
    ]
    unpaired = [name for score in scores for name in score.unpaired]
    if unpaired:
        notes.append(
            "Δ over the seeds whose baseline cell exists; without one (failed or not finished), left "
            f"out of Δ only: {', '.join(unpaired)}."
        )
    if locales is not None:
        notes.append(f"Locales: {', '.join(locales)} only (`--locales`); other locales' rows are not scored.")
    if strict:
        notes.append(f"Strict scoring (`--strict`): {NOT_JSON_NAMES} answers count as empty.")
    for reason, names in left_out.items():
        notes.append(f"{reason[:1].upper()}{reason[1:]}, left out: {', '.join(names)}.")
        log.warning("%d of the sweep's cells are left out, %s: %s", len(names), reason, names)
    sections = [
        f"# Results: {root}\n\n" + "\n".join(f"- {note}" for note in notes) + "\n\n" + md_table,
        per_seed_section(scores, keys),
        crosslingual_section(scores, resamples, seed),
        error_analysis_section(scores),
    ]
    paths = [
        atomic_write_text(out / "results.md", "\n".join(filter(None, sections))),
        atomic_write_text(out / "results.csv", csv_text),
    ]
    plot = out / "slu_f1_vs_proportion.png"
    return [*paths, plot] if plot_slu_f1(scores, keys, plot) else paths


def locale_list(text: str) -> list[str]:
    """``--locales``'s ``L1,L2`` as a list; an empty one would silently score nothing."""
    locales = [part.strip() for part in text.split(",") if part.strip()]
    if not locales:
        raise argparse.ArgumentTypeError("expected locales as L1[,L2], e.g. fr-FR")
    return locales


def main(args: list[str]) -> None:
    """``slu-lightning report --root ROOT [--out DIR] [--baseline KEY=VALUE,...] [--locales L1,...]``."""
    parser = argparse.ArgumentParser(
        prog="slu-lightning report",
        description="Tables and plots of a sweep, recomputed from its predictions.",
    )
    parser.add_argument("--root", type=Path, required=True, help="the sweep root (holds sweep.json)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the sweep root)")
    parser.add_argument(
        "--baseline",
        default=None,
        help="reference rows as KEY=VALUE[,KEY=VALUE] (default: speech proportion 0, not a cascade)",
    )
    parser.add_argument("--modality", choices=("speech", "text"), default="speech", help="rows scored")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--strict", action="store_true", help=STRICT_HELP)
    parser.add_argument(
        "--locales",
        type=locale_list,
        default=None,
        help="score only rows of these locales, L1[,L2] (default: every row), e.g. fr-FR",
    )
    options = parser.parse_args(args)
    try:
        paths = write_report(
            options.root,
            options.out or options.root,
            options.baseline,
            options.modality,
            options.resamples,
            options.seed,
            options.strict,
            options.locales,
        )
    except ReportError as error:
        print(f"slu-lightning report: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print("\n".join(map(str, paths)))
