"""Probe metrics against brute force, scikit-learn and SciPy; bootstrap interval coverage."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from ahms_fm.evaluation import stats


def _binary_case(n=400, seed=0):
    """0/1 labels and scores rounded to one decimal, so many scores tie."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    score = np.round(rng.normal(size=n) + y, 1)
    return y, score


def _pairwise_auc(y, score):
    """Mann-Whitney: over all (positive, negative) pairs, 1 if ordered right, 1/2 if tied."""
    pos, neg = score[y == 1][:, None], score[y == 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def test_roc_auc_brute_force_and_sklearn():
    y, score = _binary_case()
    assert len(np.unique(score)) < len(score) / 4  # plenty of ties
    assert stats.roc_auc(y, score) == pytest.approx(_pairwise_auc(y, score), abs=1e-12)
    assert stats.roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    assert stats.roc_auc(y, -score) == pytest.approx(1 - _pairwise_auc(y, score), abs=1e-12)
    assert math.isnan(stats.roc_auc(np.ones(5), np.arange(5.0)))  # one class: undefined


def test_pr_auc_and_balanced_accuracy_match_sklearn():
    for seed in range(3):
        y, score = _binary_case(seed=seed)
        assert stats.pr_auc(y, score) == pytest.approx(
            skm.average_precision_score(y, score), abs=1e-12)
        label = score > 0.4
        assert stats.balanced_accuracy(y, label) == pytest.approx(
            skm.balanced_accuracy_score(y, label), abs=1e-12)
    # Distinct scores too, and the perfect ranking.
    rng = np.random.default_rng(3)
    y, score = (rng.random(300) < 0.2).astype(float), rng.random(300)
    assert stats.pr_auc(y, score) == pytest.approx(
        skm.average_precision_score(y, score), abs=1e-12)
    assert stats.pr_auc(y, y + score * 0.1) == pytest.approx(1.0)


def test_regression_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(4)
    y = rng.normal(size=500) * 3 + 40
    pred = 0.6 * y + rng.normal(size=500) * 2 + 15
    assert stats.mae(y, pred) == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert stats.r2(y, pred) == pytest.approx(skm.r2_score(y, pred), rel=1e-10)
    assert stats.pearson_r(y, pred) == pytest.approx(sps.pearsonr(y, pred)[0], rel=1e-10)
    got = stats.regression_metrics(y, pred)
    assert set(got) == {"mae", "r2", "pearson_r"}
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-10)
    assert math.isnan(stats.r2(np.full(5, 2.0), np.arange(5.0)))
    assert math.isnan(stats.pearson_r(np.arange(5.0), np.full(5, 2.0)))


def test_weights_equal_repeated_rows():
    rng = np.random.default_rng(5)
    y, score = _binary_case(200, seed=6)
    weight = rng.integers(0, 4, size=200)  # bootstrap-like counts, zeros included

    def rep(a):
        return np.repeat(a, weight)

    for metric in (stats.roc_auc, stats.pr_auc):
        assert metric(y, score, weight) == pytest.approx(metric(rep(y), rep(score)), abs=1e-12)
    assert stats.roc_auc(y, score, weight) == pytest.approx(
        _pairwise_auc(rep(y), rep(score)), abs=1e-12)
    label = score > 0.3
    assert stats.balanced_accuracy(y, label, weight) == pytest.approx(
        skm.balanced_accuracy_score(rep(y), rep(label)), abs=1e-12)
    yr = rng.normal(size=200)
    pred = yr + rng.normal(size=200)
    for metric in (stats.mae, stats.r2, stats.pearson_r):
        assert metric(yr, pred, weight) == pytest.approx(metric(rep(yr), rep(pred)), rel=1e-10)
    assert stats.r2(yr, pred, weight) == pytest.approx(skm.r2_score(rep(yr), rep(pred)), rel=1e-10)
    with pytest.raises(ValueError):
        stats.mae(yr, pred, -weight - 1)


def test_binary_metrics_threshold_and_missing_labels():
    y, score = _binary_case(seed=7)
    prob = 1 / (1 + np.exp(-score))
    got = stats.binary_metrics(y, prob, threshold=0.6)
    assert set(got) == {"roc_auc", "pr_auc", "balanced_accuracy"}
    assert got["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(y, prob > 0.6), abs=1e-12)
    y_missing = y.copy()
    y_missing[:50] = np.nan  # unlabelled rows are left out
    assert stats.binary_metrics(y_missing, prob, 0.6)["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y[50:], prob[50:]), abs=1e-12)
    # One threshold per row (cross-fitting: each row's own training prevalence).
    per_row = np.where(np.arange(len(y)) % 2 == 0, 0.3, 0.7)
    expected = skm.balanced_accuracy_score(y[50:], prob[50:] > per_row[50:])
    assert stats.binary_metrics(y_missing, prob, per_row)["balanced_accuracy"] == pytest.approx(
        expected, abs=1e-12)
    out = stats.bootstrap(y_missing, prob, "binary", threshold=per_row, n_boot=50)
    assert out["balanced_accuracy"]["value"] == pytest.approx(expected, abs=1e-12)
    assert out["balanced_accuracy"]["n"] == len(y) - 50


def test_bootstrap_point_estimates_and_one_class_replicates():
    y, score = _binary_case(300, seed=8)
    out = stats.bootstrap(y, score, "binary", threshold=0.5, n_boot=200)
    for name, value in stats.binary_metrics(y, score, 0.5).items():
        assert out[name]["value"] == value
        assert out[name]["low"] < value < out[name]["high"]
        assert out[name]["n"] == 300
    # Two positives among 40 rows: many replicates have none; they are dropped.
    few = np.zeros(40)
    few[[3, 17]] = 1
    out = stats.bootstrap(few, np.linspace(0, 1, 40), "binary", n_boot=200)
    assert np.isfinite(out["roc_auc"]["low"]) and out["roc_auc"]["high"] <= 1.0
    with pytest.raises(ValueError):
        stats.bootstrap(y, score, "ranking")


def _coverage(simulate, truth, metric, kind, sims=200, seed=0):
    """Fraction of simulated data sets whose 95% interval contains the true value."""
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(sims):
        y, pred = simulate(rng)
        ci = stats.bootstrap(y, pred, kind, n_boot=1000, seed=i)[metric]
        hits += ci["low"] <= truth <= ci["high"]
    return hits / sims


def test_bootstrap_coverage_auc_and_correlation():
    # Two Gaussian classes one sd apart: the population AUC is Phi(1/sqrt(2)).
    def classes(rng):
        y = np.r_[np.zeros(150), np.ones(150)]
        return y, rng.normal(size=300) + y

    auc = sps.norm.cdf(1 / np.sqrt(2))
    # Bivariate normal with correlation 0.5.
    def bivariate(rng):
        a, b = rng.normal(size=(2, 300))
        return a, 0.5 * a + np.sqrt(0.75) * b

    # 200 simulations: the binomial sd of the coverage at 0.95 is 0.015; the bounds
    # are about 4 sd below and 2.5 sd above.
    assert 0.89 <= _coverage(classes, auc, "roc_auc", "binary") <= 0.99
    assert 0.89 <= _coverage(bivariate, 0.5, "pearson_r", "regression", seed=1) <= 0.99


def test_cluster_bootstrap_is_wider_for_correlated_rows():
    rng = np.random.default_rng(9)
    groups = np.repeat(np.arange(60), 10)
    shared = rng.normal(size=60)[groups]  # a participant effect in both label and prediction
    y = shared + 0.3 * rng.normal(size=600)
    pred = 0.5 * shared + 0.3 * rng.normal(size=600) + 0.5 * rng.normal(size=60)[groups]
    rows = stats.bootstrap(y, pred, "regression", n_boot=500)
    clusters = stats.bootstrap(y, pred, "regression", groups=groups, n_boot=500)
    for name in ("mae", "pearson_r"):
        width_rows = rows[name]["high"] - rows[name]["low"]
        width_clusters = clusters[name]["high"] - clusters[name]["low"]
        assert width_clusters > 1.8 * width_rows
        assert clusters[name]["value"] == rows[name]["value"]


def test_assert_disjoint():
    stats.assert_disjoint(["a", "b"], ["c"])
    train = [f"p{i}" for i in range(10)]
    test = ["p7", "p3", "x", "p5", "p0", "p1", "p2", "y", "p6"]
    with pytest.raises(ValueError, match=r"7 participants .*: p0, p1, p2, p3, p5, \.\.\.$"):
        stats.assert_disjoint(train, test)
    with pytest.raises(ValueError, match=r"1 segments.*: 3$"):
        stats.assert_disjoint([1, 2, 3], [3, 4], what="segments")
