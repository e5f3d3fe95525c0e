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
            skm.average_precision_score(y, score), abs=1e-12
        )
        label = score > 0.4
        assert stats.balanced_accuracy(y, label) == pytest.approx(
            skm.balanced_accuracy_score(y, label), abs=1e-12
        )
    # Distinct scores too, and the perfect ranking.
    rng = np.random.default_rng(3)
    y, score = (rng.random(300) < 0.2).astype(float), rng.random(300)
    assert stats.pr_auc(y, score) == pytest.approx(skm.average_precision_score(y, score), abs=1e-12)
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
        _pairwise_auc(rep(y), rep(score)), abs=1e-12
    )
    label = score > 0.3
    assert stats.balanced_accuracy(y, label, weight) == pytest.approx(
        skm.balanced_accuracy_score(rep(y), rep(label)), abs=1e-12
    )
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
        skm.balanced_accuracy_score(y, prob > 0.6), abs=1e-12
    )
    y_missing = y.copy()
    y_missing[:50] = np.nan  # unlabelled rows are left out
    assert stats.binary_metrics(y_missing, prob, 0.6)["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y[50:], prob[50:]), abs=1e-12
    )
    # One threshold per row (cross-fitting: each row's own training prevalence).
    per_row = np.where(np.arange(len(y)) % 2 == 0, 0.3, 0.7)
    expected = skm.balanced_accuracy_score(y[50:], prob[50:] > per_row[50:])
    assert stats.binary_metrics(y_missing, prob, per_row)["balanced_accuracy"] == pytest.approx(
        expected, abs=1e-12
    )
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


# --- paired differences (embedding - baseline on the same resampled participants) -------


def test_paired_difference_is_the_difference_of_the_metrics():
    rng = np.random.default_rng(10)
    y = (rng.random(300) < 0.4).astype(float)
    shared = rng.normal(size=300)
    a, b = y + shared + rng.normal(size=300), 0.3 * y + shared + rng.normal(size=300)
    d = stats.paired_difference(y, a, b, "binary", "roc_auc", n_boot=300)
    assert d["a"] == pytest.approx(skm.roc_auc_score(y, a), abs=1e-12)
    assert d["b"] == pytest.approx(skm.roc_auc_score(y, b), abs=1e-12)
    assert d["value"] == pytest.approx(d["a"] - d["b"], abs=1e-12) and d["n"] == 300
    assert d["low"] > 0  # a is far better: the interval excludes 0 on the right side
    # Swapped: the same draws, so exactly the negated interval.
    e = stats.paired_difference(y, b, a, "binary", "roc_auc", n_boot=300)
    assert (e["value"], e["low"], e["high"]) == pytest.approx(
        (-d["value"], -d["high"], -d["low"]), abs=1e-12
    )
    assert e["high"] < 0
    # A prediction against itself: exactly 0 in every replicate.
    same = stats.paired_difference(y, a, a, "binary", "roc_auc", n_boot=100)
    assert same["value"] == same["low"] == same["high"] == 0.0
    # Regression, with unlabelled rows left out.
    yr = rng.normal(size=300)
    pa, pb = yr + 0.5 * rng.normal(size=300), yr + rng.normal(size=300)
    yr[:20] = np.nan
    d = stats.paired_difference(yr, pa, pb, "regression", "r2", n_boot=100)
    want = skm.r2_score(yr[20:], pa[20:]) - skm.r2_score(yr[20:], pb[20:])
    assert d["value"] == pytest.approx(want, rel=1e-10) and d["n"] == 280
    with pytest.raises(ValueError, match="not one of the 'regression' metrics"):
        stats.paired_difference(yr, pa, pb, "regression", "roc_auc")


def test_paired_difference_is_narrower_than_unpaired_when_errors_are_shared():
    """Two probes that err on the same participants: pairing removes the shared part."""
    rng = np.random.default_rng(11)
    y = rng.normal(size=400)
    shared = 0.6 * rng.normal(size=400)
    a, b = y + shared + 0.2 * rng.normal(size=400), y + shared + 0.4 * rng.normal(size=400)
    d = stats.paired_difference(y, a, b, "regression", "r2", n_boot=500)
    ca = stats.bootstrap(y, a, "regression", n_boot=500)["r2"]
    cb = stats.bootstrap(y, b, "regression", n_boot=500, seed=1)["r2"]
    unpaired = np.hypot(ca["high"] - ca["low"], cb["high"] - cb["low"])
    assert d["high"] - d["low"] < 0.5 * unpaired
    assert d["low"] > 0  # and so a small real difference is seen


def _paired_coverage(simulate, truth, kind, metric, sims=200):
    hits = 0
    rng = np.random.default_rng(12)
    for i in range(sims):
        y, a, b, groups = simulate(rng)
        d = stats.paired_difference(y, a, b, kind, metric, groups=groups, n_boot=500, seed=i)
        hits += d["low"] <= truth <= d["high"]
    return hits / sims


def test_paired_difference_coverage():
    """95% intervals of a known population difference cover it ~95% of the time: R² with
    row-level noise, and ROC AUC with participants of 3 rows (one label each) whose
    probes err per participant, resampled as clusters (as rows: 0.78 coverage)."""

    def regression(rng):  # R² = 1 - E(y - pred)^2 / var(y): 1 - 0.25 and 1 - 0.52
        y = rng.normal(size=300)
        shared = 0.4 * rng.normal(size=300)
        return (
            y,
            y + shared + 0.3 * rng.normal(size=300),
            y + shared + 0.6 * rng.normal(size=300),
            None,
        )

    def clustered(rng):  # score - mu y ~ N(0, 1 + 0.25) per row: AUC = Phi(mu / sqrt(2.5))
        groups = np.repeat(np.arange(120), 3)
        y = (rng.random(120) < 0.5).astype(float)[groups]
        ua, ub = rng.normal(size=(2, 120))[:, groups]
        return (
            y,
            1.0 * y + ua + 0.5 * rng.normal(size=360),
            0.5 * y + ub + 0.5 * rng.normal(size=360),
            groups,
        )

    # 200 simulations: the coverage's binomial sd at 0.95 is 0.015.
    assert 0.89 <= _paired_coverage(regression, 0.52 - 0.25, "regression", "r2") <= 0.99
    truth = sps.norm.cdf(1 / np.sqrt(2.5)) - sps.norm.cdf(0.5 / np.sqrt(2.5))
    assert 0.89 <= _paired_coverage(clustered, truth, "binary", "roc_auc") <= 0.99
