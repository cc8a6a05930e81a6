"""Compare test runs of one model family on the same examples: each run's SLU metrics with 95 %
intervals, and its difference from the first run, paired over examples (a bootstrap CI and a
p-value).

Two runs that predicted the same example ids pair: one checkpoint tested on two speaker sets (the
demo corpus's ``test_voices``), or two regimes on one test split. Each argument is a run folder
(its ``predictions_test.jsonl``) or a predictions file:

    slu-lightning compare-runs logs/demo-curriculum-10pct logs/demo-curriculum-10pct-unheard

A cascade run (its run config, beside its predictions, tests on ``CascadeCorpus``) hears the test
speech through its recogniser: as in ``report``, its transcript rows are its speech rows, so it
pairs with an end-to-end run's speech rows by recording id; it has no rows on gold transcripts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from slu_lightning.data.errors import DataError
from slu_lightning.evaluation.bootstrap import bootstrap_ci, paired_bootstrap
from slu_lightning.evaluation.counts import summarize_totals
from slu_lightning.evaluation.scoring import STRICT_HELP
from slu_lightning.experiments.report.cells import (
    count_row,
    gold_of,
    prediction_rows,
    run_config,
    scored_modality,
    utterance_clusters,
)
from slu_lightning.experiments.sweep import PREDICTIONS

METRICS = ("intent_acc", "entity_f1", "slu_f1")
"""The columns of the table, each with its interval and its paired difference."""


def read_rows(path: Path, modality: str, strict: bool = False) -> dict[str, dict]:
    """``{key: prediction row}`` of one run's rows that answer ``modality`` (a cascade's transcript
    rows answer speech: ``scored_modality`` of the run config in its folder), read as ``score``
    reads them."""
    file = path / PREDICTIONS if path.is_dir() else path
    if not path.exists():
        raise DataError("not found", file=str(path))
    if not file.is_file():
        raise DataError(f"no {PREDICTIONS}: has this run been tested?", file=str(path))
    wanted = scored_modality(run_config(file.parent), modality)
    if wanted is None:
        raise DataError(
            f"a cascade run has no {modality} predictions: it answers speech with its recogniser's "
            "transcripts (compare it with --modality speech)",
            file=str(file),
        )
    rows = prediction_rows(file, wanted, strict)
    if not rows:
        raise DataError(f"no {modality} predictions", file=str(file))
    return rows


def paired_counts(
    paths: list[Path], modality: str, strict: bool = False
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each run's count rows over the first run's examples, in its order, and their utterance
    clusters; every run must have predicted the same examples."""
    runs = [read_rows(path, modality, strict) for path in paths]
    for path, rows in zip(paths[1:], runs[1:], strict=True):
        if rows.keys() != runs[0].keys():
            differing = sorted(rows.keys() ^ runs[0].keys())
            raise DataError(f"predicted other examples than {paths[0]} ({differing[:3]} ...)", file=str(path))
        relabelled = [i for i in runs[0] if _gold(rows[i]) != _gold(runs[0][i])]
        if relabelled:  # the same ids over another corpus (a demo corpus of another seed reuses them)
            raise DataError(
                f"has other gold labels or locales than {paths[0]} for {len(relabelled)} examples "
                f"(e.g. {relabelled[0]!r}): these runs were tested on different data",
                file=str(path),
            )
    ids = list(runs[0])
    counts = [np.stack([count_row(rows[i]) for i in ids]) for rows in runs]  # each (examples, F)
    return counts, utterance_clusters([runs[0][i] for i in ids])


def _gold(row: dict) -> tuple:
    """What two runs' rows of one example share: ``gold_of`` (locale and gold labels) and the gold
    transcript (a cascade's ``reference`` text is its recogniser's transcript, the gold one is its
    ``meta``'s)."""
    return *gold_of(row), (row.get("meta") or {}).get("gold_text", row["reference"].get("text"))


def comparison_table(names: list[str], counts: list[np.ndarray], clusters: np.ndarray, seed: int) -> str:
    """One line per run: ``METRICS`` with their intervals, then each one's paired difference from
    the first run."""
    header = " | ".join(f"{metric} [95 % CI]" for metric in METRICS)
    versus = " | ".join(f"{metric} vs first [95 % CI] (p)" for metric in METRICS)
    lines = [f"| run | examples | {header} | {versus} |", "|---|---|" + "---|" * 2 * len(METRICS)]
    for i, (name, rows) in enumerate(zip(names, counts, strict=True)):
        point, ci = summarize_totals(rows.sum(axis=0)), bootstrap_ci(rows, clusters, seed=seed)
        cells = [f"{float(point[m]):.3f} [{ci[m][0]:.3f}, {ci[m][1]:.3f}]" for m in METRICS]
        cells += [_versus(rows, counts[0], clusters, m, seed) if i else "-" for m in METRICS]
        lines.append(f"| {name} | {len(rows)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _versus(rows: np.ndarray, baseline: np.ndarray, clusters: np.ndarray, metric: str, seed: int) -> str:
    d = paired_bootstrap(rows, baseline, clusters, metric, seed=seed)
    return f"{d.difference:+.3f} [{d.low:+.3f}, {d.high:+.3f}] ({d.p_value:.3f})"


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="slu-lightning compare-runs", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run folders or predictions files; the first is the baseline"
    )
    parser.add_argument("--modality", choices=("speech", "text"), default="speech", help="rows compared")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    parser.add_argument("--strict", action="store_true", help=STRICT_HELP)
    parsed = parser.parse_args(args)
    if len(set(parsed.runs)) != len(parsed.runs) or len(parsed.runs) < 2:
        parser.error("name at least two runs, each once")
    counts, clusters = paired_counts(parsed.runs, parsed.modality, parsed.strict)
    names = [str(path) for path in parsed.runs]
    paired = "paired by id, strict scoring" if parsed.strict else "paired by id"
    print(f"{len(clusters)} {parsed.modality} examples, {clusters.max() + 1} utterances, {paired}\n")
    print(comparison_table(names, counts, clusters, parsed.seed))
