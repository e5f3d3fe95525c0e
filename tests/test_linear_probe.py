"""Linear probes against scikit-learn fits and brute-force cross-validation loops."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score
from sklearn.preprocessing import StandardScaler

from ahms_fm.evaluation import linear

N, M, D, K = 300, 120, 20, 5
STRENGTHS = [0.1, 3.0, 30.0, 300.0, 3000.0]


def _problem(seed=0):
    """Correlated, offset features; 2 regression and 2 binary targets; participant groups."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(D, D)) * np.linspace(2.0, 0.1, D)
    x = rng.normal(size=(N + M, D)) @ mix + rng.normal(size=D) * 5
    x[:, 3] = 7.0  # a constant feature
    signal = x @ rng.normal(size=(D, 4)) / D
    signal = (signal - signal.mean(0)) / signal.std(0)
    reg = signal[:, :2] * [1.0, 0.5] + 10 + rng.normal(size=(N + M, 2)) * [0.5, 3.0]
    binary = (signal[:, 2:] + rng.logistic(size=(N + M, 2)) * 0.8 > [0.0, 0.6]).astype(float)
    groups = rng.integers(0, 90, size=N)  # several rows per participant
    return x[:N], x[N:], reg, binary, groups


def _scaled(x_train, x_test):
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test)


def _brute_force_cv(xs, y, folds, strengths, model, score):
    """Mean over folds of the held-out score, one scikit-learn fit per (strength, fold)."""
    return np.array(
        [
            np.mean(
                [
                    score(
                        y[folds == f], model(s).fit(xs[folds != f], y[folds != f]), xs[folds == f]
                    )
                    for f in np.unique(folds)
                ]
            )
            for s in strengths
        ]
    )


def _mse(y, fitted, x):
    return mean_squared_error(y, fitted.predict(x))


def _logloss(y, fitted, x):
    return log_loss(y, fitted.predict_proba(x)[:, 1], labels=[0, 1])


def _logistic(strength):
    return LogisticRegression(C=1.0 / strength, tol=1e-10, max_iter=100_000)


def test_make_folds_keeps_groups_together_and_balances():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(53), rng.integers(1, 9, size=53))  # uneven group sizes
    groups = rng.permutation(groups).astype(str)
    folds = linear.make_folds(groups, 5, seed=3)
    assert set(folds) == set(range(5))
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    per_fold = [len(np.unique(groups[folds == f])) for f in range(5)]
    assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == 53
    np.testing.assert_array_equal(folds, linear.make_folds(groups, 5, seed=3))
    assert not np.array_equal(folds, linear.make_folds(groups, 5, seed=4))
    with pytest.raises(ValueError):
        linear.make_folds(np.array([1, 1, 2, 3]), 4)


def test_standardize_uses_training_statistics():
    x_train = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    x_test = np.array([[7.0, 6.0]])
    a, b = linear.standardize(x_train, x_test)
    sd = np.std([1.0, 3.0, 5.0])
    np.testing.assert_allclose(a[:, 0], [-2 / sd, 0, 2 / sd])
    np.testing.assert_allclose(b, [[4 / sd, 0.0]])  # the constant feature is 0
    np.testing.assert_allclose(a[:, 1], 0.0)


def test_ridge_matches_sklearn_and_brute_force_cv():
    x_train, x_test, reg, _, groups = _problem()
    folds = linear.make_folds(groups, K)
    xs, xts = _scaled(x_train, x_test)
    fit = linear.fit_ridge(x_train, reg[:N], x_test, folds=folds, strengths=STRENGTHS)
    for t in range(2):
        cv = _brute_force_cv(xs, reg[:N, t], folds, STRENGTHS, lambda s: Ridge(alpha=s), _mse)
        np.testing.assert_allclose(fit.cv_score[t], cv, rtol=1e-8)
        assert fit.strength[t] == STRENGTHS[int(np.argmin(cv))]
        ref = Ridge(alpha=fit.strength[t]).fit(xs, reg[:N, t])
        np.testing.assert_allclose(fit.predictions[:, t], ref.predict(xts), atol=1e-6)
        np.testing.assert_allclose(fit.coef[t], ref.coef_, atol=1e-8)
        np.testing.assert_allclose(fit.intercept[t], ref.intercept_, atol=1e-8)
    assert len(set(fit.strength)) == 2  # the two targets need different strengths
    # Each strength on its own (a one-point grid "chooses" it).
    for s in STRENGTHS:
        one = linear.fit_ridge(x_train, reg[:N, 1], x_test, folds=folds, strengths=[s])
        ref = Ridge(alpha=s).fit(xs, reg[:N, 1])
        np.testing.assert_allclose(one.predictions[:, 0], ref.predict(xts), atol=1e-6)


def test_logistic_matches_sklearn_and_brute_force_cv():
    x_train, x_test, _, binary, groups = _problem(1)
    y = binary[:N, 0]
    folds = linear.make_folds(groups, K)
    xs, xts = _scaled(x_train, x_test)
    fit = linear.fit_logistic(x_train, y, x_test, folds=folds, strengths=STRENGTHS)
    cv = _brute_force_cv(xs, y, folds, STRENGTHS, _logistic, _logloss)
    np.testing.assert_allclose(fit.cv_score[0], cv, atol=1e-7)
    assert fit.strength[0] == STRENGTHS[int(np.argmin(cv))]
    assert fit.strength[0] not in (STRENGTHS[0], STRENGTHS[-1])  # an interior optimum
    ref = _logistic(fit.strength[0]).fit(xs, y)
    prob = ref.predict_proba(xts)[:, 1]
    np.testing.assert_allclose(fit.predictions[:, 0], prob, atol=1e-4)
    np.testing.assert_allclose(fit.coef[0], ref.coef_[0], atol=1e-4)
    y_test = binary[N:, 0]
    assert roc_auc_score(y_test, fit.predictions[:, 0]) == roc_auc_score(y_test, prob)
    # A second-order reference converges further than lbfgs: agreement is much closer.
    tight = LogisticRegression(C=1.0 / fit.strength[0], tol=1e-12, solver="newton-cg").fit(xs, y)
    np.testing.assert_allclose(fit.predictions[:, 0], tight.predict_proba(xts)[:, 1], atol=1e-9)


def test_many_targets_with_missing_labels_equal_separate_fits():
    x_train, x_test, reg, binary, groups = _problem(2)
    folds = linear.make_folds(groups, K)
    xs, xts = _scaled(x_train, x_test)  # standardized on all training rows, labelled or not
    rng = np.random.default_rng(5)
    missing = rng.random(N) < 0.25
    # Target 0 and 2 share a label pattern, target 1 has its own, target 3 is complete.
    y_reg = np.stack([reg[:N, 0], reg[:N, 1], reg[:N, 0] * 2 - 3, reg[:N, 1] + 1], axis=1)
    y_reg[missing, 0] = y_reg[missing, 2] = np.nan
    y_reg[rng.random(N) < 0.4, 1] = np.nan
    y_bin = binary[:N].copy()
    y_bin[missing, 0] = np.nan
    cases = [
        (linear.fit_ridge, y_reg, lambda s: Ridge(alpha=s), _mse, 1e-6),
        (linear.fit_logistic, y_bin, _logistic, _logloss, 1e-4),
    ]
    for probe, y, model, score, atol in cases:
        fit = probe(x_train, y, x_test, folds=folds, strengths=STRENGTHS)
        for t in range(y.shape[1]):
            rows = ~np.isnan(y[:, t])
            cv = _brute_force_cv(xs[rows], y[rows, t], folds[rows], STRENGTHS, model, score)
            np.testing.assert_allclose(fit.cv_score[t], cv, rtol=1e-6)
            assert fit.strength[t] == STRENGTHS[int(np.argmin(cv))]
            ref = model(fit.strength[t]).fit(xs[rows], y[rows, t])
            pred = (
                ref.predict_proba(xts)[:, 1] if probe is linear.fit_logistic else ref.predict(xts)
            )
            np.testing.assert_allclose(fit.predictions[:, t], pred, atol=atol)


def test_refuses_bad_input_and_skips_one_class_folds():
    x_train, x_test, _, binary, groups = _problem()
    folds = linear.make_folds(groups, K)
    with pytest.raises(ValueError, match="0/1"):
        linear.fit_logistic(x_train, binary[:N] * 2, x_test, folds=folds, strengths=[1.0])
    with pytest.raises(ValueError, match="two classes"):
        linear.fit_logistic(x_train, np.zeros(N), x_test, folds=folds, strengths=[1.0])
    with pytest.raises(ValueError, match="positive"):
        linear.fit_ridge(x_train, binary[:N], x_test, folds=folds, strengths=[0.0])
    # Positives only in fold 0: training without fold 0 has one class, so fold 0 is
    # left out of the CV mean (scikit-learn could not fit it either).
    y = np.where((folds == 0) & (binary[:N, 0] == 1), 1.0, 0.0)
    fit = linear.fit_logistic(x_train, y, x_test, folds=folds, strengths=STRENGTHS)
    xs, _ = _scaled(x_train, x_test)
    cv = np.array(
        [
            np.mean(
                [
                    _logloss(
                        y[folds == f],
                        _logistic(s).fit(xs[folds != f], y[folds != f]),
                        xs[folds == f],
                    )
                    for f in range(1, K)
                ]
            )
            for s in STRENGTHS
        ]
    )
    np.testing.assert_allclose(fit.cv_score[0], cv, rtol=1e-6)
    # Labels in fold 0 only: no fold has both training rows and held-out labels.
    with pytest.raises(ValueError, match="no cross-validation fold"):
        linear.fit_ridge(
            x_train, np.where(folds == 0, 1.0, np.nan), x_test, folds=folds, strengths=[1.0]
        )
