"""SLUMetrics: per-locale results, simulated DDP ranks, padding dedup, bootstrap intervals."""

import pytest
import torch
from torchmetrics.utilities import dim_zero_cat

from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.evaluation.counts import COUNT_FIELDS, count_rows, summarize
from slu_lightning.evaluation.metrics import SLUMetrics, rows_from_predictions
from slu_lightning.task import ParseStatus, Prediction, format_target, parse_prediction

LOCALES = ["en-US", "fr-FR", "de-DE"]

GOLDS = [
    SLUExample("en-1", "en-US", "wake me up at five am", "alarm", "set", (Entity("time", "five am"),)),
    SLUExample(
        "en-2", "en-US", "what is on next monday", "calendar", "query", (Entity("date", "next monday"),)
    ),
    SLUExample("fr-1", "fr-FR", "allume la lumière", "iot", "hue_lighton"),
    SLUExample("fr-2", "fr-FR", "joue du jazz", "play", "music", (Entity("music_genre", "jazz"),)),
]
PREDS = [
    Prediction("alarm", "set", (Entity("time", "five am"),), ParseStatus.VALID),
    Prediction("calendar", "set", (Entity("date", "monday"),), ParseStatus.VALID),
    Prediction("iot", "hue_lighton", (), ParseStatus.VALID),
    Prediction("", "", (), ParseStatus.INVALID),
]
LOCALE_IDX = torch.tensor([0, 0, 1, 1])
CLUSTER_IDX = torch.tensor([10, 11, 20, 21])


def test_rows_from_predictions_are_the_count_rows():
    rows = rows_from_predictions(GOLDS, PREDS)
    assert rows.dtype == torch.float64
    assert rows.shape == (4, len(COUNT_FIELDS))
    assert torch.equal(rows, torch.from_numpy(count_rows(GOLDS, PREDS)))


def test_compute_reports_overall_and_per_locale():
    metric = SLUMetrics(LOCALES)
    metric.update(rows_from_predictions(GOLDS[:3], PREDS[:3]), LOCALE_IDX[:3], CLUSTER_IDX[:3])
    metric.update(rows_from_predictions(GOLDS[3:], PREDS[3:]), LOCALE_IDX[3:], CLUSTER_IDX[3:])
    results = metric.compute()
    assert results["intent_acc"].item() == 0.5
    assert results["en-US/intent_acc"].item() == 0.5
    assert results["fr-FR/intent_acc"].item() == 0.5
    assert results["en-US/invalid_rate"].item() == 0.0
    assert results["fr-FR/invalid_rate"].item() == 0.5
    # en-US: word TP 2, FP 0.5, FN 0.5 -> F1 0.8; fr-FR: one missed entity -> 0
    assert results["en-US/word_f1"].item() == pytest.approx(0.8)
    assert results["fr-FR/slu_f1"].item() == 0.0
    expected = summarize(count_rows(GOLDS, PREDS))
    assert {name: results[name].item() for name in expected} == pytest.approx(expected)
    assert not any(name.startswith("de-DE/") for name in results)  # no examples, no entries


def test_gold_against_itself_is_perfect():
    metric = SLUMetrics(LOCALES)
    preds = [parse_prediction(format_target(g.scenario, g.action, g.entities)) for g in GOLDS]
    metric.update(rows_from_predictions(GOLDS, preds), LOCALE_IDX, CLUSTER_IDX)
    results = metric.compute()
    for name, value in results.items():
        if name.endswith("invalid_rate"):
            assert value.item() == 0.0, name
        elif not name.endswith("num_examples"):
            assert value.item() == 1.0, name


def test_two_ranks_merged_equal_one():
    rows = rows_from_predictions(GOLDS, PREDS)
    single = SLUMetrics(LOCALES)
    single.update(rows, LOCALE_IDX, CLUSTER_IDX)
    rank0, rank1 = SLUMetrics(LOCALES), SLUMetrics(LOCALES)
    rank0.update(rows[::2], LOCALE_IDX[::2], CLUSTER_IDX[::2])
    rank1.update(rows[1::2], LOCALE_IDX[1::2], CLUSTER_IDX[1::2])
    rank0.merge_state(rank1)
    assert rank0.compute() == pytest.approx(single.compute())


def test_gathered_tensor_states_equal_one():
    """After a DDP sync, each cat state is one tensor holding every rank's rows."""
    rows = rows_from_predictions(GOLDS, PREDS)
    single = SLUMetrics(LOCALES)
    single.update(rows, LOCALE_IDX, CLUSTER_IDX)
    gathered = SLUMetrics(LOCALES)
    gathered.rows = torch.cat([rows[2:], rows[:2]])
    gathered.locale_idx = torch.cat([LOCALE_IDX[2:], LOCALE_IDX[:2]])
    gathered.cluster_idx = torch.cat([CLUSTER_IDX[2:], CLUSTER_IDX[:2]])
    gathered.example_idx = torch.full((4,), -1)
    gathered._update_count = 1
    assert gathered.compute() == pytest.approx(single.compute())


def _gather_with(rank0: SLUMetrics):
    """A stand-in for the all-gather of two DDP ranks, ``rank0`` being the other one. Like
    ``torch.distributed``'s, it needs both ranks' tensors to agree in dtype and number of
    dimensions (only the first dimension's length may differ)."""
    theirs = iter([dim_zero_cat(getattr(rank0, name)) for name in rank0._reductions])

    def gather(tensor: torch.Tensor, group=None) -> list[torch.Tensor]:
        other = next(theirs)
        if (tensor.dtype, tensor.ndim) != (other.dtype, other.ndim):
            raise RuntimeError(
                f"collective mismatch: {tensor.dtype} {tuple(tensor.shape)} against "
                f"{other.dtype} {tuple(other.shape)}"
            )
        return [other, tensor]

    return gather


def test_a_rank_without_rows_joins_the_gather_of_a_rank_with_rows():
    """A rank that scored no example of a modality (an eval set smaller than the world, its clips
    all skipped) still joins the sync: its empty states must gather with the others' rows."""
    rows = rows_from_predictions(GOLDS, PREDS)
    rank0 = SLUMetrics(LOCALES)
    rank0.update(rows, LOCALE_IDX, CLUSTER_IDX)
    rank1 = SLUMetrics(LOCALES, dist_sync_fn=_gather_with(rank0), distributed_available_fn=lambda: True)
    with pytest.warns(UserWarning, match="before the ``update``"):
        gathered = rank1.compute()
    assert gathered == pytest.approx(rank0.compute())


def test_padded_repeats_are_counted_once():
    rows = rows_from_predictions(GOLDS, PREDS)
    example_idx = torch.arange(4)
    clean = SLUMetrics(LOCALES)
    clean.update(rows, LOCALE_IDX, CLUSTER_IDX, example_idx)
    padded = SLUMetrics(LOCALES)
    padded.update(rows[:2], LOCALE_IDX[:2], CLUSTER_IDX[:2], example_idx[:2])
    # the other rank's batch ends with a copy of example 3 (the invalid one) as padding
    padded.update(rows[[2, 3, 3]], LOCALE_IDX[[2, 3, 3]], CLUSTER_IDX[[2, 3, 3]], example_idx[[2, 3, 3]])
    assert padded.compute() == pytest.approx(clean.compute())
    assert padded.compute()["invalid_rate"].item() == 0.25
    undeduplicated = SLUMetrics(LOCALES)
    undeduplicated.update(rows[[0, 1, 2, 3, 3]], LOCALE_IDX[[0, 1, 2, 3, 3]], CLUSTER_IDX[[0, 1, 2, 3, 3]])
    assert undeduplicated.compute()["invalid_rate"].item() == 0.4


def test_bootstrap_intervals_bracket_the_values():
    metric = SLUMetrics(LOCALES, n_resamples=200)
    metric.update(rows_from_predictions(GOLDS, PREDS), LOCALE_IDX, CLUSTER_IDX)
    results = metric.compute()
    for prefix in ("", "en-US/", "fr-FR/"):
        for name in ("intent_acc", "slu_f1"):
            low, value, high = (results[f"{prefix}{name}{end}"].item() for end in ("_ci_low", "", "_ci_high"))
            assert low <= value <= high
    assert results["intent_acc_ci_low"].item() < results["intent_acc_ci_high"].item()
    without = SLUMetrics(LOCALES)
    without.update(rows_from_predictions(GOLDS, PREDS), LOCALE_IDX, CLUSTER_IDX)
    assert not any(name.endswith(("_ci_low", "_ci_high")) for name in without.compute())


def test_reset_and_empty_compute():
    metric = SLUMetrics(LOCALES)
    metric.update(rows_from_predictions(GOLDS, PREDS), LOCALE_IDX, CLUSTER_IDX)
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert metric.compute() == {}


def test_update_checks_its_inputs():
    metric = SLUMetrics(LOCALES)
    rows = rows_from_predictions(GOLDS, PREDS)
    with pytest.raises(ValueError, match="count_rows must be"):
        metric.update(rows[:, :3], LOCALE_IDX, CLUSTER_IDX)
    with pytest.raises(ValueError, match="cluster_idx must be"):
        metric.update(rows, LOCALE_IDX, CLUSTER_IDX[:2])
    with pytest.raises(ValueError, match="out of range"):
        metric.update(rows, torch.tensor([0, 1, 2, 3]), CLUSTER_IDX)
    with pytest.raises(ValueError, match="unique"):
        SLUMetrics(["en-US", "en-US"])
