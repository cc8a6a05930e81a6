"""Cluster bootstrap intervals and the paired and unpaired tests on synthetic count rows."""

import time

import numpy as np
import pytest

from slu_lightning.evaluation import bootstrap
from slu_lightning.evaluation.bootstrap import bootstrap_ci, cluster_key, paired_bootstrap, unpaired_bootstrap
from slu_lightning.evaluation.counts import COUNT_FIELDS, summarize

COLUMN = {name: i for i, name in enumerate(COUNT_FIELDS)}


def utterance_rows(correct: np.ndarray, recordings: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``recordings`` identical recordings per utterance, intent right where ``correct``."""
    rows = np.zeros((len(correct), len(COUNT_FIELDS)))
    rows[:, COLUMN["examples"]] = 1.0
    rows[:, COLUMN["valid"]] = 1.0
    rows[:, COLUMN["intent_correct"]] = correct
    rows[:, COLUMN["exact_match"]] = correct
    rows[:, COLUMN["word_tp"]] = correct
    rows[:, COLUMN["word_fn"]] = 1.0 - correct
    return np.repeat(rows, recordings, axis=0), np.repeat(np.arange(len(correct)), recordings)


@pytest.fixture(scope="module")
def correlated():
    """300 utterances x 4 recordings that always agree: the SLURP situation at its extreme."""
    correct = (np.random.default_rng(1).random(300) < 0.7).astype(float)
    return utterance_rows(correct, recordings=4)


def width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def test_the_same_seed_gives_the_same_intervals(correlated):
    rows, clusters = correlated
    first = bootstrap_ci(rows, clusters, n_resamples=200, seed=3)
    assert first == bootstrap_ci(rows, clusters, n_resamples=200, seed=3)
    assert first["intent_acc"] != bootstrap_ci(rows, clusters, n_resamples=200, seed=4)["intent_acc"]


def test_intervals_contain_the_point_estimate(correlated):
    rows, clusters = correlated
    point = summarize(rows)
    intervals = bootstrap_ci(rows, clusters, n_resamples=500)
    for name in ("intent_acc", "word_f1", "slu_f1", "exact_match"):
        low, high = intervals[name]
        assert low < point[name] < high, name
    assert intervals["invalid_rate"] == (0.0, 0.0)


def test_clusters_widen_the_interval_when_recordings_agree(correlated):
    rows, clusters = correlated
    by_utterance = bootstrap_ci(rows, clusters)["intent_acc"]
    by_recording = bootstrap_ci(rows, np.arange(len(rows)))["intent_acc"]
    # four perfectly correlated copies: the honest interval is about sqrt(4) = 2 times wider
    assert 1.6 < width(by_utterance) / width(by_recording) < 2.5


def test_cluster_resampling_equals_resampling_one_row_per_cluster(correlated):
    rows, clusters = correlated
    one_per_utterance = rows[::4]
    expected = bootstrap_ci(one_per_utterance, np.arange(300), n_resamples=300, seed=7)
    actual = bootstrap_ci(rows, clusters, n_resamples=300, seed=7)
    for name, interval in expected.items():
        if name != "num_examples":
            assert actual[name] == pytest.approx(interval), name


def test_cluster_ids_need_not_be_contiguous(correlated):
    rows, clusters = correlated
    relabelled = clusters * 1000 + 17
    assert bootstrap_ci(rows, relabelled, n_resamples=100) == bootstrap_ci(rows, clusters, n_resamples=100)


def test_one_cluster_gives_a_zero_width_interval_and_a_warning(correlated, caplog, monkeypatch):
    monkeypatch.setattr(bootstrap, "_few_items_warned", False)
    rows, clusters = correlated
    point = summarize(rows)["intent_acc"]
    with caplog.at_level("WARNING", logger="slu_lightning.evaluation.bootstrap"):
        interval = bootstrap_ci(rows, np.zeros(len(rows), dtype=int), n_resamples=50)["intent_acc"]
    assert interval == pytest.approx((point, point))
    assert "a bootstrap over 1 item: with fewer than 20" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="slu_lightning.evaluation.bootstrap"):
        bootstrap_ci(rows, clusters, n_resamples=50)
    assert len(np.unique(clusters)) >= 20 and caplog.text == ""


def test_the_few_items_warning_comes_once(correlated, caplog, monkeypatch):
    """A report bootstraps each metric of a cell, and a test each locale: one warning in all."""
    monkeypatch.setattr(bootstrap, "_few_items_warned", False)
    rows, _ = correlated
    with caplog.at_level("WARNING", logger="slu_lightning.evaluation.bootstrap"):
        for _ in range(3):
            bootstrap_ci(rows[:6], np.arange(6), n_resamples=20)
            paired_bootstrap(rows[:6], rows[6:12], np.arange(6), "intent_acc", n_resamples=20)
        bootstrap_ci(rows[:5], np.arange(5), n_resamples=20)
    assert caplog.text.count("a bootstrap over 6 items") == 1
    assert "a bootstrap over 5 items" not in caplog.text


def test_alpha_sets_the_coverage(correlated):
    rows, clusters = correlated
    assert width(bootstrap_ci(rows, clusters, alpha=0.01)["intent_acc"]) > width(
        bootstrap_ci(rows, clusters, alpha=0.2)["intent_acc"]
    )


def test_slurp_sized_bootstrap_is_fast():
    correct = (np.random.default_rng(0).random(3000) < 0.8).astype(float)
    rows, clusters = utterance_rows(correct, recordings=4)
    start = time.perf_counter()
    bootstrap_ci(rows, clusters, n_resamples=1000)
    assert time.perf_counter() - start < 3.0


def test_paired_bootstrap_finds_a_clearly_better_system(correlated):
    rows_b, clusters = correlated
    rows_a = rows_b.copy()
    wrong = np.flatnonzero(rows_a[:, COLUMN["intent_correct"]] == 0)[: 4 * 40]  # fix 40 utterances
    rows_a[wrong, COLUMN["intent_correct"]] = 1.0
    difference, low, high, p_value = paired_bootstrap(rows_a, rows_b, clusters, "intent_acc")
    assert difference == pytest.approx(summarize(rows_a)["intent_acc"] - summarize(rows_b)["intent_acc"])
    assert 0 < low < difference < high
    assert p_value < 0.01
    reverse = paired_bootstrap(rows_b, rows_a, clusters, "intent_acc")
    assert reverse.difference == pytest.approx(-difference)
    assert (reverse.low, reverse.high) == pytest.approx((-high, -low))  # the same draws, mirrored
    assert reverse.p_value == p_value


def test_the_paired_interval_is_narrower_than_the_two_intervals_side_by_side(correlated):
    rows_b, clusters = correlated
    rows_a = rows_b.copy()
    wrong = np.flatnonzero(rows_a[:, COLUMN["intent_correct"]] == 0)[: 4 * 10]  # fix 10 utterances
    rows_a[wrong, COLUMN["intent_correct"]] = 1.0
    paired = paired_bootstrap(rows_a, rows_b, clusters, "intent_acc")
    ci_a, ci_b = (bootstrap_ci(rows, clusters)["intent_acc"] for rows in (rows_a, rows_b))
    assert ci_a[0] < ci_b[1]  # side by side, the intervals overlap...
    assert paired.low > 0  # ...yet pairing shows A better on every resample's share of utterances


def test_paired_bootstrap_of_identical_systems_is_not_significant(correlated):
    rows, clusters = correlated
    assert paired_bootstrap(rows, rows.copy(), clusters, "slu_f1") == (0.0, 0.0, 0.0, 1.0)


def test_paired_bootstrap_of_a_small_noisy_difference_is_not_significant(correlated):
    rows_b, clusters = correlated
    rows_a = rows_b.copy()
    wrong = np.flatnonzero(rows_a[:, COLUMN["intent_correct"]] == 0)[:4]  # one utterance fixed
    rights = np.flatnonzero(rows_a[:, COLUMN["intent_correct"]] == 1)[:4]  # one utterance broken
    rows_a[wrong, COLUMN["intent_correct"]] = 1.0
    rows_a[rights, COLUMN["intent_correct"]] = 0.0
    difference, low, high, p_value = paired_bootstrap(rows_a, rows_b, clusters, "intent_acc")
    assert difference == 0.0
    assert low < 0 < high
    assert p_value > 0.5


def rows_with_accuracy(n: int, accuracy: float, seed: int) -> np.ndarray:
    return utterance_rows((np.random.default_rng(seed).random(n) < accuracy).astype(float), 1)[0]


def test_unpaired_bootstrap_tells_samples_of_different_sizes_apart():
    better, worse = rows_with_accuracy(400, 0.8, seed=2), rows_with_accuracy(250, 0.6, seed=3)
    difference, low, high, p_value = unpaired_bootstrap(better, worse, "intent_acc")
    assert difference == pytest.approx(summarize(better)["intent_acc"] - summarize(worse)["intent_acc"])
    assert 0 < low < difference < high and p_value < 0.01
    reverse = unpaired_bootstrap(worse, better, "intent_acc")
    assert reverse.difference == pytest.approx(-difference) and reverse.high < 0


def test_unpaired_interval_is_wider_than_the_paired_one_on_the_same_rows(correlated):
    rows_b, clusters = correlated
    rows_a = rows_b.copy()
    wrong = np.flatnonzero(rows_a[:, COLUMN["intent_correct"]] == 0)[: 4 * 10]
    rows_a[wrong, COLUMN["intent_correct"]] = 1.0
    one_row_each = np.arange(len(rows_a))
    paired = paired_bootstrap(rows_a, rows_b, one_row_each, "intent_acc")
    unpaired = unpaired_bootstrap(rows_a, rows_b, "intent_acc")
    assert unpaired.difference == pytest.approx(paired.difference)
    assert width(unpaired[1:3]) > 3 * width(paired[1:3])  # pairing cancels what the samples share
    assert unpaired.p_value > paired.p_value


def test_bad_inputs_are_refused(correlated):
    rows, clusters = correlated
    with pytest.raises(ValueError, match="clusters"):
        bootstrap_ci(rows, clusters[:-1])
    with pytest.raises(ValueError, match="zero examples"):
        bootstrap_ci(rows[:0], clusters[:0])
    with pytest.raises(ValueError, match="equal shapes"):
        paired_bootstrap(rows, rows[:-1], clusters, "slu_f1")


def test_a_massive_utterance_is_one_item_in_every_locale_and_other_ids_are_their_own():
    assert cluster_key("fr-FR/17", "fr-FR") == cluster_key("de-DE/17", "de-DE") == "*/17"
    assert cluster_key("fr-FR/17", "de-DE") == "fr-FR/17"  # not its own locale's prefix: a user's id
    assert cluster_key("10358", "en-US") == "10358"  # SLURP
    assert cluster_key("demo-fr-fr-test-00001", "fr-FR") == "demo-fr-fr-test-00001"
