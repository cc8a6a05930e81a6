"""The paper's figure: SLU-F1 against the speech proportion, one line per regime."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from slu_lightning.atomic import atomic_write
from slu_lightning.experiments.report.cells import PROPORTION_KEY
from slu_lightning.experiments.report.scores import GroupScore
from slu_lightning.experiments.sweep import axis_labels, cell_name


def plot_slu_f1(scores: list[GroupScore], keys: list[str], path: Path) -> bool:
    """SLU-F1 against speech proportion (symmetric-log x axis, so 0 fits), one line per regime.

    Returns False, writing nothing, when the speech proportion is not an axis of the sweep (e.g. a
    backbone ablation, whose runs all record the same proportion in their configs)."""
    if PROPORTION_KEY not in keys:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = axis_labels(keys)
    lines: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    for score in scores:
        proportion = score.group.values.get(PROPORTION_KEY)
        if proportion is None:
            continue
        others = {key: value for key, value in score.group.values.items() if key != PROPORTION_KEY}
        lines[cell_name(others, labels) or "all"].append(
            (float(proportion), score.point["slu_f1"], *score.ci["slu_f1"])
        )
    if not lines:
        return False
    figure, axis = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for label, points in lines.items():
        x, y, low, high = np.array(sorted(points)).T
        axis.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=label)
    proportions = sorted({x for points in lines.values() for x, *_ in points})
    axis.set_xscale("symlog", linthresh=min([x for x in proportions if x > 0], default=0.01))
    axis.set_xticks(proportions, [f"{x:.0%}" for x in proportions])
    axis.set(xlabel="speech proportion of the training data", ylabel="SLU-F1 (95 % CI)")
    axis.grid(alpha=0.3)
    figure.legend(loc="outside lower center", fontsize="small")  # below the axes: labels may be long
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))
    plt.close(figure)
    return True
