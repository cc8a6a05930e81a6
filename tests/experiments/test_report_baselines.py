"""Which baseline row each row of the committed paper and demo sweeps is compared with."""

from pathlib import Path

import numpy as np
import pytest

from slu_lightning.evaluation.counts import count_example
from slu_lightning.experiments.report.cells import (
    PROPORTION_KEY,
    CellPredictions,
    Group,
    axis_keys,
    group_cells,
)
from slu_lightning.experiments.report.scores import (
    GroupScore,
    baseline_of,
    compare_with_baselines,
    parse_selector,
    score_group,
)
from slu_lightning.experiments.sweep import BASE_KEY, expand_cells, load_spec
from slu_lightning.task import ParseStatus, Prediction

LOCALES = "data.init_args.train_locales"


def default_pairing(sweep_file: str) -> list[GroupScore]:
    """The report's rows of a sweep file's cells, compared with the default baseline (speech
    proportion 0, not a cascade); every cell predicts the same 20 items."""
    cells = expand_cells(load_spec(Path(sweep_file)))
    keys = list(dict.fromkeys(key for cell in cells for key in cell.values))
    rows = [{"id": f"u{i}", "utterance_id": f"u{i}"} for i in range(20)]
    right = count_example("alarm", "set", (), Prediction("alarm", "set", (), ParseStatus.VALID))
    counts = np.stack([right] * len(rows))
    cascade = {"data": {"init_args": {"corpus": {"class_path": "CascadeCorpus"}}}}
    predictions = [
        CellPredictions(
            cell.name,
            cell.values,
            cascade if "cascade" in cell.base.stem else {},
            rows,
            counts,
            {row["id"]: i for i, row in enumerate(rows)},
        )
        for cell in cells
    ]
    scores = [score_group(group, 2, 0) for group in group_cells(keys, predictions)]
    compare_with_baselines(scores, parse_selector(None, axis_keys(keys)), 2, 0, skip_cascades=True)
    return scores


def test_every_row_of_the_adaptation_sweep_is_compared_with_its_regimes_text_only_row(monkeypatch):
    """Regimes (a) and (b) run text-only at proportion 0 (an include entry that sets the data class
    and frozen parts), their curriculum rows take those from their base: each row still pairs with
    the proportion-0 row of its own base and train locales."""
    monkeypatch.chdir(Path(__file__).parents[2])
    scores = default_pairing("configs/paper/speech_massive_adaptation_sweep.yaml")
    baselines = [score.group for score in scores if score.is_baseline]
    assert len(scores) == 24 and len(baselines) == 4
    for score in scores:
        if score.is_baseline:
            continue
        assert score.reference is not None and score.versus is not None, score.group.label
        for key in (BASE_KEY, LOCALES):
            assert score.reference.values[key] == score.group.values[key], score.group.label


@pytest.mark.parametrize(
    ("sweep_file", "baseline"),
    [
        (
            "configs/paper/speech_massive_sweep.yaml",
            "TextOnlyDataModule-p0-train_audio_encoder=false-train_projector=false",
        ),
        ("configs/paper/slurp_sweep.yaml", "slurp_text_only-p0"),
        ("configs/demo/sweep.yaml", "text_only-p0"),
        ("configs/demo/sweep_pretrained.yaml", "text_only-p0"),
        ("configs/demo/sweep_heard_voices.yaml", "text_only-p0"),
    ],
)
def test_every_row_of_the_other_grids_is_compared_with_their_one_text_only_row(
    monkeypatch, sweep_file, baseline
):
    monkeypatch.chdir(Path(__file__).parents[2])
    scores = default_pairing(sweep_file)
    assert [score.group.label for score in scores if score.is_baseline] == [baseline]
    for score in scores:
        if not score.is_baseline:
            assert score.reference is not None and score.reference.label == baseline, score.group.label
            assert score.versus is not None, score.group.label


def test_a_row_pairs_with_the_reference_that_leaves_unset_what_it_does_and_only_failing_that_ignores_it():
    """Keys a row leaves unset are compared first (unset on both counts as equal), so of two
    reference rows of one base, one of them text-only by an include entry, the other is chosen;
    only when no reference matches so are the keys the row leaves unset ignored."""
    class_path = "data.class_path"
    mixed = Group({BASE_KEY: "mixed", PROPORTION_KEY: 0}, "mixed-p0")
    text = Group({BASE_KEY: "text", PROPORTION_KEY: 0, class_path: "TextOnlyDataModule"}, "text-p0")
    mixed_text = Group({**mixed.values, class_path: "TextOnlyDataModule"}, "mixed-p0-text")
    differing = {BASE_KEY, class_path}
    assert baseline_of(Group({BASE_KEY: "mixed", PROPORTION_KEY: 0.1}, ""), [mixed, text], differing) is mixed
    assert baseline_of(Group({BASE_KEY: "text", PROPORTION_KEY: 0.1}, ""), [mixed, text], differing) is text
    row = Group({BASE_KEY: "mixed", PROPORTION_KEY: 0.1}, "")
    assert baseline_of(row, [mixed, mixed_text], {class_path}) is mixed
