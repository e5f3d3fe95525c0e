"""Probe metrics with (bootstrap) row weights, percentile bootstrap intervals, leakage check.

Every metric takes an optional non-negative weight per row, the number of times a
row was drawn in a bootstrap replicate; the metric equals the unweighted metric on
the rows repeated that many times (tests/test_probe_stats.py). Internally each
metric is computed for a whole matrix of weights [replicates, rows] at once: the
ranking metrics sort the scores once and take cumulative weighted class counts over
blocks of tied scores, so a replicate costs a few passes over its weights.

A metric that is undefined for some weights (one class only, a constant
prediction) is NaN there.

`paired_difference` scores two predictions of the same rows on the same
bootstrap draws: the interval of a difference between two probes (an embedding
and a baseline), from which what the two share cancels.
"""

from __future__ import annotations

import numpy as np

REGRESSION = ("mae", "r2", "pearson_r")
BINARY = ("roc_auc", "pr_auc", "balanced_accuracy")


def _weights(weight, n: int) -> np.ndarray:
    """[1, n] float64 weights (ones by default)."""
    if weight is None:
        return np.ones((1, n))
    weight = np.asarray(weight, np.float64).reshape(1, -1)
    if weight.shape[1] != n or np.any(weight < 0):
        raise ValueError(f"weight must be {n} non-negative numbers")
    return weight


def _divide(num, den):
    """num / den, NaN where den is 0."""
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


# --- batched over weight rows w [b, n] ------------------------------------------------


def _center(a):
    return a - a.mean() if len(a) else a


def _mae(y, pred, w):
    return _divide(w @ np.abs(y - pred), w.sum(1))


def _r2(y, pred, w):
    total = w.sum(1)
    yc = _center(y)  # against cancellation in the weighted moments
    ss_res = w @ (y - pred) ** 2
    ss_tot = w @ yc**2 - _divide((w @ yc) ** 2, total)
    return 1.0 - _divide(ss_res, np.where(ss_tot > 1e-12 * (w @ yc**2), ss_tot, 0.0))


def _pearson(y, pred, w):
    total = w.sum(1)
    yc, pc = _center(y), _center(pred)
    my, mp = _divide(w @ yc, total), _divide(w @ pc, total)
    cov = _divide(w @ (yc * pc), total) - my * mp
    vy = _divide(w @ yc**2, total) - my**2
    vp = _divide(w @ pc**2, total) - mp**2
    ok = (vy > 1e-12 * _divide(w @ yc**2, total)) & (vp > 1e-12 * _divide(w @ pc**2, total))
    return np.where(ok, cov / np.sqrt(np.where(ok, vy * vp, 1.0)), np.nan)


def _ranking(y, score, w):
    """ROC AUC and average precision [b] each, from one sort of the scores."""
    if len(y) == 0:
        return np.full(len(w), np.nan), np.full(len(w), np.nan)
    order = np.argsort(score, kind="stable")
    s, positive = score[order], y[order] == 1
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # blocks of tied scores
    w = w[:, order]
    pos = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)  # [b, blocks]
    neg = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    # AUC: (positive, negative) pairs ordered right, ties counting 1/2.
    neg_below = np.cumsum(neg, axis=1) - neg
    auc = _divide(np.sum(pos * (neg_below + 0.5 * neg), axis=1), n_pos * n_neg)
    # Average precision: each block's positives times the precision of the threshold
    # "score >= this block's" (scikit-learn's step-wise definition).
    tp = n_pos[:, None] - (np.cumsum(pos, axis=1) - pos)
    fp = n_neg[:, None] - neg_below
    precision = np.where(tp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
    ap = _divide(np.sum(pos * precision, axis=1), n_pos)
    return auc, ap


def _balanced_accuracy(y, label, w):
    positive, called = y == 1, label.astype(bool)
    tpr = _divide(w @ (positive & called), w @ positive)
    tnr = _divide(w @ (~positive & ~called), w @ ~positive)
    return (tpr + tnr) / 2


def _regression_batch(y, pred, w) -> dict[str, np.ndarray]:
    return {"mae": _mae(y, pred, w), "r2": _r2(y, pred, w), "pearson_r": _pearson(y, pred, w)}


def _binary_batch(y, prob, w, threshold) -> dict[str, np.ndarray]:
    auc, ap = _ranking(y, prob, w)
    return {
        "roc_auc": auc,
        "pr_auc": ap,
        "balanced_accuracy": _balanced_accuracy(y, prob > threshold, w),
    }


# --- public metrics ---------------------------------------------------------------------


def _arrays(*arrays):
    arrays = [np.asarray(a, np.float64).ravel() for a in arrays]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"lengths differ: {[len(a) for a in arrays]}")
    return arrays


def mae(y, pred, weight=None) -> float:
    """Mean absolute error."""
    y, pred = _arrays(y, pred)
    return float(_mae(y, pred, _weights(weight, len(y)))[0])


def r2(y, pred, weight=None) -> float:
    """Coefficient of determination, 1 - SS_res / SS_tot (NaN for a constant y)."""
    y, pred = _arrays(y, pred)
    return float(_r2(y, pred, _weights(weight, len(y)))[0])


def pearson_r(y, pred, weight=None) -> float:
    """Pearson correlation (NaN when either side is constant)."""
    y, pred = _arrays(y, pred)
    return float(_pearson(y, pred, _weights(weight, len(y)))[0])


def roc_auc(y, score, weight=None) -> float:
    """Area under the ROC curve for 0/1 labels; tied scores count 1/2 (NaN with one class)."""
    y, score = _arrays(y, score)
    return float(_ranking(y, score, _weights(weight, len(y)))[0][0])


def pr_auc(y, score, weight=None) -> float:
    """Average precision (scikit-learn's step-wise definition, no interpolation)."""
    y, score = _arrays(y, score)
    return float(_ranking(y, score, _weights(weight, len(y)))[1][0])


def balanced_accuracy(y, label, weight=None) -> float:
    """Mean of sensitivity and specificity of 0/1 labels (NaN with one class)."""
    y, label = _arrays(y, label)
    return float(_balanced_accuracy(y, label, _weights(weight, len(y)))[0])


def regression_metrics(y, pred) -> dict:
    """{"mae", "r2", "pearson_r"} on the rows with a label."""
    y, pred, _, _ = _labelled(y, pred)
    return {k: float(v[0]) for k, v in _regression_batch(y, pred, np.ones((1, len(y)))).items()}


def binary_metrics(y, prob, threshold) -> dict:
    """{"roc_auc", "pr_auc", "balanced_accuracy"}; label = prob > threshold.

    The caller passes the training prevalence as the threshold (a number, or one per
    row where rows come from different training sets, as in cross-fitting).
    """
    y, prob, threshold, _ = _labelled(y, prob, threshold)
    batch = _binary_batch(y, prob, np.ones((1, len(y))), threshold)
    return {k: float(v[0]) for k, v in batch.items()}


def _labelled(y, pred, threshold=0.5, groups=None):
    """y, pred, threshold (per row) and groups (or None) on the rows with a label."""
    y, pred = _arrays(y, pred)
    threshold = np.broadcast_to(np.asarray(threshold, np.float64), y.shape)
    keep = ~np.isnan(y)
    groups = None if groups is None else np.asarray(groups).ravel()[keep]
    return y[keep], pred[keep], threshold[keep], groups


# --- bootstrap --------------------------------------------------------------------------


def _draw_weights(rng, size: int, n_boot: int, inverse=None) -> np.ndarray:
    """[n_boot, rows] draw counts: rows, or groups (`inverse`: row -> group) with replacement."""
    draws = rng.integers(0, size, size=(n_boot, size))
    offsets = (np.arange(n_boot) * size)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * size)
    counts = counts.reshape(n_boot, size).astype(np.float64)
    return counts if inverse is None else counts[:, inverse]


def bootstrap(
    y, pred, kind, *, groups=None, threshold=0.5, n_boot=1000, level=0.95, seed=0, chunk: int = 100
) -> dict[str, dict]:
    """Point estimates and percentile bootstrap intervals of the probe metrics.

    kind "regression" (mae, r2, pearson_r) or "binary" (roc_auc, pr_auc,
    balanced_accuracy with label = pred > threshold, a number or one per row).
    With `groups` (participant per row) whole groups are resampled with replacement
    (cluster bootstrap: every row of a drawn group comes with it, weighted by how
    often it was drawn), else rows. Rows with a NaN label are left out; a replicate
    where a metric is undefined is left out of that metric's interval. Replicates
    are computed `chunk` at a time (memory: chunk x rows floats, a few times over).

    Returns {metric: {"value": estimate on all rows, "low", "high", "n": rows}}.
    """
    if kind not in ("regression", "binary"):
        raise ValueError(f"kind must be 'regression' or 'binary', got {kind!r}")
    y, pred, threshold, groups = _labelled(y, pred, threshold, groups)
    n = len(y)

    def batch(w):
        if kind == "regression":
            return _regression_batch(y, pred, w)
        return _binary_batch(y, pred, w, threshold)

    if groups is None:
        size, inverse = n, None
    else:
        unique, inverse = np.unique(groups, return_inverse=True)
        size, inverse = len(unique), inverse.ravel()
    rng = np.random.default_rng(seed)
    replicates: dict[str, list] = {}
    for start in range(0, n_boot, chunk):
        w = _draw_weights(rng, size, min(chunk, n_boot - start), inverse)
        for name, values in batch(w).items():
            replicates.setdefault(name, []).append(values)
    point = batch(np.ones((1, n)))
    tail = (1.0 - level) / 2
    out = {}
    for name, value in point.items():
        values = np.concatenate(replicates[name]) if n_boot else np.array([])
        values = values[np.isfinite(values)]
        low, high = np.quantile(values, [tail, 1 - tail]) if len(values) else (np.nan, np.nan)
        out[name] = {"value": float(value[0]), "low": float(low), "high": float(high), "n": n}
    return out


def paired_difference(
    y,
    pred_a,
    pred_b,
    kind,
    metric,
    *,
    groups=None,
    threshold_a=0.5,
    threshold_b=0.5,
    n_boot=1000,
    level=0.95,
    seed=0,
    chunk: int = 100,
) -> dict:
    """metric(a) - metric(b) of two predictions of the same rows, with a paired interval.

    Every bootstrap replicate draws one set of rows (or of whole `groups`, as in
    `bootstrap`) and scores both predictions on it, so what the two share (which
    participants happen to be easy) cancels in the difference. Rows with a NaN label
    are left out; replicates where either metric is undefined are left out of the
    interval. `threshold_a` / `threshold_b` (a number or one per row) matter only for
    balanced accuracy.

    Returns {"value": the difference on all rows, "low", "high" (percentile interval),
    "a", "b" (each metric on all rows), "n": rows}.
    """
    names = {"regression": REGRESSION, "binary": BINARY}.get(kind, ())
    if metric not in names:
        raise ValueError(f"metric {metric!r} is not one of the {kind!r} metrics")
    y, pred_a, pred_b = _arrays(y, pred_a, pred_b)
    keep = ~np.isnan(y)
    thresholds = [
        np.broadcast_to(np.asarray(t, np.float64), y.shape)[keep]
        for t in (threshold_a, threshold_b)
    ]
    y, preds = y[keep], (pred_a[keep], pred_b[keep])
    n = len(y)

    def difference(w):  # [b] metric(a) - metric(b), and both
        if kind == "regression":
            a, b = (_regression_batch(y, p, w)[metric] for p in preds)
        else:
            a, b = (
                _binary_batch(y, p, w, t)[metric] for p, t in zip(preds, thresholds, strict=True)
            )
        return a - b, a, b

    if groups is None:
        size, inverse = n, None
    else:
        unique, inverse = np.unique(np.asarray(groups).ravel()[keep], return_inverse=True)
        size, inverse = len(unique), inverse.ravel()
    rng = np.random.default_rng(seed)
    replicates = [
        difference(_draw_weights(rng, size, min(chunk, n_boot - start), inverse))[0]
        for start in range(0, n_boot, chunk)
    ]
    values = np.concatenate(replicates) if replicates else np.array([])
    values = values[np.isfinite(values)]
    tail = (1.0 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail]) if len(values) else (np.nan, np.nan)
    diff, a, b = (float(v[0]) for v in difference(np.ones((1, n))))
    return {"value": diff, "low": float(low), "high": float(high), "a": a, "b": b, "n": n}


def assert_disjoint(train_groups, test_groups, what="participants"):
    """Raise ValueError if any id is in both sets (names up to 5 of them and the count)."""
    both = np.intersect1d(np.asarray(train_groups).ravel(), np.asarray(test_groups).ravel())
    if len(both):
        shown = ", ".join(str(v) for v in both[:5]) + (", ..." if len(both) > 5 else "")
        raise ValueError(f"{len(both)} {what} in both the training and the test set: {shown}")
