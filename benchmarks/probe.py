"""Linear probes at scale: `ahms_fm.evaluation.linear` against scikit-learn doing the same work.

    python benchmarks/probe.py [--participants 100000] [--dim 256] [--folds 5]
                               [--strengths 8] [--skip-sklearn]

A simulated cohort (one embedding per participant, 80/20 participant split):
features with a decaying spectrum (like embeddings: variance of the j-th principal
direction ~ 1/j, randomly rotated and offset), 3 regression targets and 2 binary
targets linear in the features plus noise (R^2 ~ .2/.4/.6; binary prevalence ~.3
and ~.15), 10% of labels missing in one regression and one binary target.

Ours: `fit_ridge` for the 3 regression targets in one call and `fit_logistic` for
the 2 binary targets in one call (5-fold CV over the strengths, refit, predict).
Each is timed twice: the logistic's first call includes XLA compilation, the
ridge's first call one-time BLAS/LAPACK warm-up. scikit-learn: per target, per
strength, per fold a `Ridge(alpha)` or `LogisticRegression(C=1/strength)` (lbfgs,
its default tol 1e-4, max_iter 1000) fit on the other folds' labelled rows and
scored (MSE / log-loss) on the fold; the lowest mean picks the strength; refit on
all labelled rows; predict. Both
standardize with the training mean/std and use the same folds and grid. Test
metrics of both are printed, with the largest difference of their predictions.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ahms_fm.evaluation import linear, stats


def simulate(participants: int, dim: int, seed: int = 0):
    """x [n, d], regression targets [n, 3], binary targets [n, 2] (NaN = missing)."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    spectrum = 1.0 / np.sqrt(np.arange(1, dim + 1))
    x = (rng.normal(size=(participants, dim)) * spectrum) @ rotation + rng.normal(size=dim)
    signal = x @ rng.normal(size=(dim, 5))
    signal = (signal - signal.mean(0)) / signal.std(0)
    noise_sd = np.array([2.0, 1.22, 0.82])  # R^2 = 1 / (1 + sd^2) ~ .2, .4, .6
    reg = signal[:, :3] * 3.0 + 50.0 + 3.0 * noise_sd * rng.normal(size=(participants, 3))
    logits = 1.5 * signal[:, 3:] + np.array([-1.2, -2.4])
    binary = (logits + rng.logistic(size=(participants, 2)) > 0).astype(np.float64)
    reg[rng.random(participants) < 0.1, 2] = np.nan
    binary[rng.random(participants) < 0.1, 1] = np.nan
    return x, reg, binary


def sklearn_probe(x_train, y_train, x_test, folds, strengths, logistic: bool):
    """Predictions [m, t] and chosen strengths [t], one target and one fit at a time."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import log_loss, mean_squared_error
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    def model(strength):
        if logistic:
            return LogisticRegression(C=1.0 / strength, max_iter=1000)
        return Ridge(alpha=strength)

    def score(fitted, x, y):
        if logistic:
            return log_loss(y, fitted.predict_proba(x)[:, 1], labels=[0, 1])
        return mean_squared_error(y, fitted.predict(x))

    preds, chosen = [], []
    for t in range(y_train.shape[1]):
        rows = ~np.isnan(y_train[:, t])
        x, y, f = x_train[rows], y_train[rows, t], folds[rows]
        cv = [
            np.mean(
                [
                    score(model(s).fit(x[f != k], y[f != k]), x[f == k], y[f == k])
                    for k in np.unique(f)
                ]
            )
            for s in strengths
        ]
        best = strengths[int(np.argmin(cv))]
        fitted = model(best).fit(x, y)
        preds.append(fitted.predict_proba(x_test)[:, 1] if logistic else fitted.predict(x_test))
        chosen.append(best)
    return np.stack(preds, axis=1), np.array(chosen)


def tight_logistic(x_train, y_train, x_test, strengths):
    """Test probabilities [m, t] of a second-order scikit-learn solver run to tol 1e-10."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    preds = []
    for t, strength in enumerate(strengths):
        rows = ~np.isnan(y_train[:, t])
        model = LogisticRegression(
            C=1.0 / strength, solver="newton-cholesky", tol=1e-10, max_iter=100
        )
        preds.append(model.fit(x_train[rows], y_train[rows, t]).predict_proba(x_test)[:, 1])
    return np.stack(preds, axis=1)


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def test_metrics(name, y_test, pred, threshold=None) -> np.ndarray:
    """Print and return the test metrics [t, 3] of each target."""
    values = []
    for t in range(y_test.shape[1]):
        if threshold is None:
            m = stats.regression_metrics(y_test[:, t], pred[:, t])
        else:
            m = stats.binary_metrics(y_test[:, t], pred[:, t], threshold[t])
        print(f"  {name} target {t}: " + ", ".join(f"{k} {v:.6f}" for k, v in m.items()))
        values.append(list(m.values()))
    return np.array(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--strengths", type=int, default=8)
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()

    import jax
    import sklearn

    cpu = (
        subprocess.run(
            ["sh", "-c", "grep -m1 'model name' /proc/cpuinfo"], capture_output=True, text=True
        )
        .stdout.split(":")[-1]
        .strip()
    )
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {cpu}, {os.cpu_count()} cores; "
        f"jax {jax.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}"
    )
    x, reg, binary = simulate(args.participants, args.dim)
    n_train = int(0.8 * args.participants)
    ids = np.arange(args.participants)  # one embedding per participant
    train, test = slice(0, n_train), slice(n_train, None)
    stats.assert_disjoint(ids[train], ids[test])
    folds = linear.make_folds(ids[train], args.folds)
    strengths = np.logspace(-2, 5, args.strengths)
    print(
        f"{n_train} training / {args.participants - n_train} test participants x {args.dim}, "
        f"{args.folds} folds x {len(strengths)} strengths {strengths[0]:g}..{strengths[-1]:g}"
    )

    print(f"load before: {load()}")

    def timed(probe, y):  # the first call includes XLA compilation (logistic) and warm-up
        times = []
        for _ in range(2):
            start = time.perf_counter()
            fit = probe(x[train], y[train], x[test], folds=folds, strengths=strengths)
            times.append(time.perf_counter() - start)
        return fit, times

    ridge, (t_ridge_cold, t_ridge) = timed(linear.fit_ridge, reg)
    logistic, (t_logistic_cold, t_logistic) = timed(linear.fit_logistic, binary)
    ours, ours_cold = t_ridge + t_logistic, t_ridge_cold + t_logistic_cold
    print(
        f"ours: ridge {t_ridge:.2f} s ({t_ridge_cold:.2f} s first call), logistic "
        f"{t_logistic:.2f} s ({t_logistic_cold:.2f} s first call, with compilation): "
        f"{ours:.2f} s, {ours_cold:.2f} s first calls (load {load()})"
    )
    prevalence = np.nanmean(binary[train], axis=0)
    ours_reg = test_metrics("ours, regression", reg[test], ridge.predictions)
    ours_bin = test_metrics("ours, binary", binary[test], logistic.predictions, prevalence)
    print(f"ours strengths: ridge {ridge.strength}, logistic {logistic.strength}")
    for kind, y, pred in (
        ("regression", reg[test, 0], ridge.predictions[:, 0]),
        ("binary", binary[test, 0], logistic.predictions[:, 0]),
    ):
        start = time.perf_counter()
        ci = stats.bootstrap(y, pred, kind, groups=ids[test], threshold=prevalence[0])
        first = next(iter(ci))
        print(
            f"bootstrap, {kind}, 1000 replicates of {len(y)} rows (by participant): "
            f"{time.perf_counter() - start:.2f} s; {first} {ci[first]['value']:.4f} "
            f"[{ci[first]['low']:.4f}, {ci[first]['high']:.4f}]"
        )
    if args.skip_sklearn:
        return

    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    sk_reg, sk_reg_strength = sklearn_probe(x[train], reg[train], x[test], folds, strengths, False)
    t_sk_ridge = time.perf_counter() - start
    start = time.perf_counter()
    sk_bin, sk_bin_strength = sklearn_probe(
        x[train], binary[train], x[test], folds, strengths, True
    )
    t_sk_logistic = time.perf_counter() - start
    theirs = t_sk_ridge + t_sk_logistic
    print(
        f"scikit-learn: ridge {t_sk_ridge:.2f} s, logistic {t_sk_logistic:.2f} s: "
        f"{theirs:.2f} s (load {load()})"
    )
    sk_reg_m = test_metrics("scikit-learn, regression", reg[test], sk_reg)
    sk_bin_m = test_metrics("scikit-learn, binary", binary[test], sk_bin, prevalence)
    print(f"sklearn strengths: ridge {sk_reg_strength}, logistic {sk_bin_strength}")
    print(
        f"max |prediction difference|: ridge {np.abs(sk_reg - ridge.predictions).max():.2e}, "
        f"logistic {np.abs(sk_bin - logistic.predictions).max():.2e}"
    )
    print(
        f"max |metric difference|: regression {np.abs(sk_reg_m - ours_reg).max():.2e}, "
        f"binary {np.abs(sk_bin_m - ours_bin).max():.2e}"
    )
    print(
        f"ratio: ridge {t_sk_ridge / t_ridge:.1f}x, logistic {t_sk_logistic / t_logistic:.1f}x, "
        f"total {theirs / ours:.1f}x ({theirs / ours_cold:.1f}x against first calls)"
    )
    tight = tight_logistic(x[train], binary[train], x[test], logistic.strength)
    print(
        f"logistic against a tight fit at the chosen strengths (newton-cholesky, tol 1e-10, "
        f"untimed): ours {np.abs(tight - logistic.predictions).max():.2e}, scikit-learn lbfgs "
        f"{np.abs(tight - sk_bin).max():.2e}"
    )


if __name__ == "__main__":
    main()
