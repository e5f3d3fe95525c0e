"""Linear probes on frozen embeddings: ridge and L2 logistic regression with grouped CV.

Both probes z-score the features with the training rows' mean/std (computed once on
all training rows; the same standardized features are used inside cross-validation,
which keeps one feature space for every fold at a negligible leak of scale), pick a
regularization strength per target by K-fold cross-validation over participant folds
(`make_folds`), and refit on all labelled training rows with the chosen strength.

Conventions (checked against scikit-learn in tests/test_linear_probe.py):

- ridge == `Ridge(alpha=strength)`: minimize ||y - Xw - b||^2 + strength ||w||^2;
- logistic == `LogisticRegression(C=1/strength)`: minimize
  sum_i logloss_i + strength/2 ||w||^2; the intercept is never penalized.

The CV score of a strength is the mean over folds of the held-out mean squared error
(ridge) or mean log-loss (logistic), each fold weighted equally (as `GridSearchCV`);
folds without labelled held-out rows for a target are left out of its mean. The
chosen strength is the argmin (the first one on ties).

`y` is [n, t]: many targets in one call, NaN where a row has no label for a target;
each target uses only its own labelled rows, in CV and in the refit. Targets that
share a label pattern share the per-fold Gram matrices.

Ridge is closed form: per fold one centered Gram matrix and its eigendecomposition,
after which every strength and target costs a few d x d products (NumPy, float64).
Logistic runs every (fold, strength, target) problem at once, vmapped and jitted in
JAX with float64 inside a local `jax.enable_x64` context: a truncated Newton method
whose conjugate-gradient inner solves are preconditioned by c * X^T X + strength * I
(c the mean curvature sigma(1 - sigma) at the current iterate, X^T X the fold's
centered Gram, applied through its eigendecomposition, so one decomposition per fold
serves every strength). At the starting point (w = 0, b = logit of the prevalence)
this preconditioner is the exact Hessian. The gradient and Hessian-vector products
are dense [n, d] x [d, problems] products, so all problems share each pass over X.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class ProbeFit:
    """What a probe returns (t targets, s strengths, m test rows, d features)."""

    predictions: np.ndarray  # [m, t] test predictions: ridge -> values; logistic -> P(y=1)
    strength: np.ndarray  # [t] the chosen regularization strength per target
    cv_score: np.ndarray  # [t, s] mean CV score (ridge: MSE, logistic: log-loss; lower is better)
    coef: np.ndarray  # [t, d] weights in the standardized feature space
    intercept: np.ndarray  # [t]


def make_folds(groups, k: int, seed: int = 0) -> np.ndarray:
    """Fold id (0..k-1) per row; all rows of a group share one fold.

    The unique groups are shuffled with `seed` and dealt round-robin, so fold sizes
    differ by at most one group. Raises ValueError if there are fewer groups than k.
    """
    unique, inverse = np.unique(np.asarray(groups), return_inverse=True)
    if len(unique) < k:
        raise ValueError(f"{len(unique)} groups cannot fill {k} folds")
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of_group = np.empty(len(unique), np.int64)
    fold_of_group[order] = np.arange(len(unique)) % k
    return fold_of_group[inverse.ravel()]


def standardize(x_train, x_test) -> tuple[np.ndarray, np.ndarray]:
    """Z-score both with the training mean/std (float64); constant features become 0."""
    x_train = np.asarray(x_train, np.float64)
    x_test = np.asarray(x_test, np.float64)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    scale = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0)
    return (x_train - mean) * scale, (x_test - mean) * scale


def fit_ridge(x_train, y_train, x_test, *, folds, strengths) -> ProbeFit:
    """Ridge probes for the columns of y_train [n, t] (NaN = unlabelled), strength by CV."""
    x, y, x_test, folds, strengths, k = _check(x_train, y_train, x_test, folds, strengths)
    n_targets, n_strengths = y.shape[1], len(strengths)
    cv = np.full((n_targets, n_strengths), np.nan)
    coef = np.zeros((n_targets, x.shape[1]))
    intercept = np.zeros(n_targets)
    for rows, cols in _label_groups(y):
        xg, yg, fg = x[rows], y[rows][:, cols], folds[rows]
        stats = _fold_stats(xg, fg, k, yg)
        # w [k+1, s, d, t], b [k+1, s, t]: every fold-set, strength and target
        w, b = _ridge_solutions(stats, strengths)
        mse = np.full((k, n_strengths, len(cols)), np.nan)
        for f in range(k):
            held = fg == f
            if held.any() and stats.count[f] > 0:  # one [n_f, d] x [d, s*t] product
                pred = xg[held] @ w[f].transpose(1, 0, 2).reshape(x.shape[1], -1)
                pred = pred.reshape(len(pred), n_strengths, len(cols)) + b[f]
                mse[f] = np.mean((pred - yg[held][:, None]) ** 2, axis=0)
        cv[cols] = _mean_over_folds(mse.transpose(2, 0, 1), cols)
        best = np.argmin(cv[cols], axis=1)
        coef[cols] = w[k][best, :, np.arange(len(cols))]
        intercept[cols] = b[k][best, np.arange(len(cols))]
    return _finish(x_test, cv, coef, intercept, strengths, logistic=False)


def fit_logistic(
    x_train,
    y_train,
    x_test,
    *,
    folds,
    strengths,
    tol: float = 1e-13,
    max_newton: int = 40,
    max_cg: int = 100,
) -> ProbeFit:
    """L2 logistic probes for the 0/1 columns of y_train [n, t] (NaN = unlabelled).

    Every (fold, strength, target) problem and the refits on all labelled rows for
    every strength are solved together. A problem has converged when its Newton
    decrement per training row, g^T H^-1 g / n (about twice the gap to the optimum
    in mean log-loss), is below `tol`; `max_newton` and `max_cg` cap the outer and
    inner (conjugate-gradient) iterations.
    """
    x, y, x_test, folds, strengths, k = _check(x_train, y_train, x_test, folds, strengths)
    labels = y[~np.isnan(y)]
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("logistic targets must be 0/1 (or NaN for unlabelled)")
    n_targets, n_strengths = y.shape[1], len(strengths)
    # One problem per (target, fold-set, strength); fold-set k is the refit on all rows.
    problems = []  # (target, fold-set, strength index)
    mean, evecs, evals = [], [], []
    for rows, cols in _label_groups(y):
        stats = _fold_stats(x[rows], folds[rows], k)
        for t in cols:
            for f in _two_class_fold_sets(y[rows, t], folds[rows], k, t):
                for s in range(n_strengths):
                    problems.append((t, f, s))
                    mean.append(stats.mean[f])
                    evecs.append(stats.evecs[f])
                    evals.append(stats.evals[f])
    t_idx, f_idx, s_idx = (np.array(v) for v in zip(*problems, strict=True))
    with jax.enable_x64(True):
        w, b, score, converged = _solve_logistic(
            jnp.asarray(x),
            jnp.asarray(folds),
            jnp.asarray(y[:, t_idx].T),
            jnp.asarray(f_idx),
            jnp.asarray(strengths[s_idx]),
            jnp.asarray(np.array(mean)),
            jnp.asarray(np.array(evecs)),
            jnp.asarray(np.array(evals)),
            tol=tol,
            max_newton=max_newton,
            max_cg=max_cg,
        )
        w, b, score = np.asarray(w), np.asarray(b), np.asarray(score)
    if not np.all(converged):
        bad = sorted(
            {
                (int(t_idx[p]), float(strengths[s_idx[p]]))
                for p in np.flatnonzero(~np.asarray(converged))
            }
        )
        warnings.warn(
            f"logistic probe: (target, strength) {bad[:5]} did not converge in "
            f"{max_newton} Newton steps",
            RuntimeWarning,
            stacklevel=2,
        )
    cv_folds = np.full((n_targets, k, n_strengths), np.nan)
    refit_w = np.zeros((n_targets, n_strengths, x.shape[1]))
    refit_b = np.zeros((n_targets, n_strengths))
    for p, (t, f, s) in enumerate(problems):
        if f < k:
            cv_folds[t, f, s] = score[p]
        else:
            refit_w[t, s], refit_b[t, s] = w[p], b[p]
    cv = _mean_over_folds(cv_folds, np.arange(n_targets))
    best = np.argmin(cv, axis=1)
    coef = refit_w[np.arange(n_targets), best]
    intercept = refit_b[np.arange(n_targets), best]
    return _finish(x_test, cv, coef, intercept, strengths, logistic=True)


# --- shared helpers -----------------------------------------------------------------


def _check(x_train, y_train, x_test, folds, strengths):
    """Validated float64 arrays, with x standardized; y as [n, t]."""
    x, x_test = standardize(x_train, x_test)
    y = np.asarray(y_train, np.float64)
    if y.ndim == 1:
        y = y[:, None]
    folds = np.asarray(folds, np.int64)
    strengths = np.asarray(strengths, np.float64).ravel()
    if x.ndim != 2 or x_test.ndim != 2 or x.shape[1] != x_test.shape[1]:
        raise ValueError(f"x_train {x.shape} and x_test {x_test.shape} must be [n, d] alike")
    if len(y) != len(x) or folds.shape != (len(x),):
        raise ValueError(f"y_train {y.shape} and folds {folds.shape} need {len(x)} rows")
    if len(strengths) == 0 or np.any(strengths <= 0):
        raise ValueError(f"strengths must be positive, got {strengths}")
    if folds.min() < 0:
        raise ValueError("fold ids must be 0..k-1")
    return x, y, x_test, folds, strengths, int(folds.max()) + 1


def _label_groups(y: np.ndarray):
    """(rows, target columns) per distinct pattern of labelled rows."""
    labelled = ~np.isnan(y)
    groups = {}
    for t in range(y.shape[1]):
        groups.setdefault(labelled[:, t].tobytes(), []).append(t)
    return [(labelled[:, cols[0]], np.array(cols)) for cols in groups.values()]


@dataclasses.dataclass
class _FoldStats:
    """Training-set statistics per fold-set (0..k-1: all but fold f; k: all rows)."""

    count: np.ndarray  # [k+1]
    mean: np.ndarray  # [k+1, d]
    evals: np.ndarray  # [k+1, d] eigenvalues of the centered Gram matrix
    evecs: np.ndarray  # [k+1, d, d]
    y_mean: np.ndarray | None = None  # [k+1, t]
    xy: np.ndarray | None = None  # [k+1, d, t] centered X^T y


def _fold_stats(x, folds, k, y=None) -> _FoldStats:
    """Per-fold sums once, then each training set as the total minus its fold."""
    fold_sums = []
    for f in range(k):
        xf = x[folds == f]
        sums = [len(xf), xf.sum(0), xf.T @ xf]
        if y is not None:
            yf = y[folds == f]
            sums += [yf.sum(0), xf.T @ yf]
        fold_sums.append(sums)
    total = [sum(parts) for parts in zip(*fold_sums, strict=True)]
    train = [[a - b for a, b in zip(total, sums, strict=True)] for sums in fold_sums] + [total]
    count = np.array([s[0] for s in train], np.float64)
    per_row = 1.0 / np.maximum(count, 1.0)  # an empty training set gives zeros, never used
    mean = np.array([s[1] for s in train]) * per_row[:, None]
    gram = np.array([s[2] for s in train]) - count[:, None, None] * mean[:, :, None] * mean[:, None]
    evals, evecs = np.linalg.eigh(gram)
    stats = _FoldStats(count, mean, np.maximum(evals, 0.0), evecs)
    if y is not None:
        stats.y_mean = np.array([s[3] for s in train]) * per_row[:, None]
        stats.xy = np.array([s[4] for s in train]) - (
            count[:, None, None] * mean[:, :, None] * stats.y_mean[:, None, :]
        )
    return stats


def _ridge_solutions(stats: _FoldStats, strengths):
    """Weights [k+1, s, d, t] and intercepts [k+1, s, t] for every fold-set and strength."""
    rotated = np.einsum("fde,fdt->fet", stats.evecs, stats.xy)  # V^T X^T y
    shrink = 1.0 / (stats.evals[:, None, :] + strengths[None, :, None])  # [k+1, s, d]
    w = np.einsum("fde,fset->fsdt", stats.evecs, shrink[..., None] * rotated[:, None])
    b = stats.y_mean[:, None, :] - np.einsum("fd,fsdt->fst", stats.mean, w)
    return w, b


def _two_class_fold_sets(y, folds, k, target) -> list[int]:
    """The fold-sets whose training rows have both classes (else the unpenalized
    intercept has no optimum): CV folds without are skipped, all rows without refused."""
    if not 0 < y.sum() < len(y):
        raise ValueError(f"target {target} has fewer than two classes")
    return [f for f in range(k) if 0 < y[folds != f].sum() < np.sum(folds != f)] + [k]


def _mean_over_folds(scores, targets) -> np.ndarray:
    """[t, s] mean of [t, k, s] fold scores over the folds that have one (not NaN)."""
    usable = ~np.isnan(scores)
    if not np.all(usable.any(axis=1)):
        bad = [int(targets[j]) for j in np.flatnonzero(~usable.any(axis=1).all(axis=1))]
        raise ValueError(
            f"targets {bad}: no cross-validation fold has the training and held-out labels to score"
        )
    return np.nansum(scores, axis=1) / usable.sum(axis=1)


def _finish(x_test, cv, coef, intercept, strengths, *, logistic) -> ProbeFit:
    z = x_test @ coef.T + intercept
    pred = 1.0 / (1.0 + np.exp(-z)) if logistic else z
    return ProbeFit(pred, strengths[np.argmin(cv, axis=1)], cv, coef, intercept)


# --- logistic: truncated Newton, all problems vmapped ---------------------------------


def _softplus_sigmoid(z):
    """log(1 + e^z) and 1 / (1 + e^-z) from one exp."""
    e = jnp.exp(-jnp.abs(z))
    return jnp.maximum(z, 0.0) + jnp.log1p(e), jnp.where(z >= 0, 1.0, e) / (1.0 + e)


@functools.partial(jax.jit, static_argnames=("tol", "max_newton", "max_cg"))
def _solve_logistic(x, folds, y, fold, lam, mean, evecs, evals, *, tol, max_newton, max_cg):
    """Weights [P, d], intercepts [P] (uncentered), held-out mean log-loss [P], converged [P]."""
    solve = functools.partial(_newton_cg, tol=tol, max_newton=max_newton, max_cg=max_cg)
    return jax.vmap(solve, in_axes=(None, None, 0, 0, 0, 0, 0, 0))(
        x, folds, y, fold, lam, mean, evecs, evals
    )


def _newton_cg(x, folds, y, fold, lam, mean, evecs, evals, *, tol, max_newton, max_cg):
    """One problem: min sum_i logloss(y_i, (x_i - mean) w + b) + lam/2 ||w||^2.

    Rows with a label and outside `fold` train; labelled rows in `fold` are held out.
    The features are centered on the training rows (`mean`), which makes the Gram
    matrix of [X - mean, 1] block diagonal, so the preconditioner below needs only
    the eigendecomposition of the centered Gram (evecs, evals).
    """
    labelled = ~jnp.isnan(y)
    train = (labelled & (folds != fold)).astype(x.dtype)
    held = (labelled & (folds == fold)).astype(x.dtype)
    y = jnp.where(labelled, y, 0.0)
    n = train.sum()

    def design(vw, vb):  # [X - mean, 1] @ (vw, vb)
        return x @ vw + (vb - mean @ vw)

    def design_t(r):  # [X - mean, 1]^T @ r
        total = r.sum()
        return x.T @ r - mean * total, total

    def objective(z, w):
        softplus, _ = _softplus_sigmoid(z)
        return jnp.sum(train * (softplus - y * z)) + 0.5 * lam * (w @ w)

    def newton_step(state):
        it, w, b, z, f0, done = state
        _, sigma = _softplus_sigmoid(z)
        gw, gb = design_t(train * (sigma - y))
        gw = gw + lam * w
        curv = train * sigma * (1.0 - sigma)
        c = curv.sum() / n

        def precondition(rw, rb):
            return evecs @ ((evecs.T @ rw) / (c * evals + lam)), rb / (c * n)

        def cg_step(cg):
            j, sw, sb, su, rw, rb, pw, pb, rz, rz_stop = cg
            pu = design(pw, pb)
            hw, hb = design_t(curv * pu)
            hw = hw + lam * pw
            php = pw @ hw + pb * hb
            alpha = jnp.where(php > 0, rz / jnp.where(php > 0, php, 1.0), 0.0)
            sw, sb, su = sw + alpha * pw, sb + alpha * pb, su + alpha * pu
            rw, rb = rw - alpha * hw, rb - alpha * hb
            zw, zb = precondition(rw, rb)
            rz_new = rw @ zw + rb * zb
            beta = jnp.where(rz > 0, rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
            return j + 1, sw, sb, su, rw, rb, zw + beta * pw, zb + beta * pb, rz_new, rz_stop

        zw, zb = precondition(-gw, -gb)
        rz0 = -(gw @ zw + gb * zb)
        # Forcing term: loose solves far from the optimum, tight ones near it.
        eta = jnp.minimum(0.1, (rz0 / n) ** 0.25)
        zero = jnp.zeros_like(w)
        cg = (0, zero, 0.0 * b, 0.0 * z, -gw, -gb, zw, zb, rz0, eta**2 * rz0)
        # Under vmap the loops run until every problem is done: finished ones skip them.
        cg = jax.lax.while_loop(lambda cg: ~done & (cg[0] < max_cg) & (cg[8] > cg[9]), cg_step, cg)
        _, sw, sb, su = cg[:4]
        decrement = -(gw @ sw + gb * sb)  # ~ g^T H^-1 g

        # Backtracking (Armijo) line search; Newton steps near the optimum are taken
        # as they are, where the objective's rounding would blur the test.

        def shorter(ls):
            t, _ = ls
            t = t / 2
            return t, objective(z + t * su, w + t * sw)

        def too_long(ls):
            t, f = ls
            return ~done & (f > f0 - 1e-4 * t * decrement) & (t > 1e-10) & (decrement / n > 1e-9)

        t, f = jax.lax.while_loop(too_long, shorter, (1.0, objective(z + su, w + sw)))
        return it + 1, w + t * sw, b + t * sb, z + t * su, f, decrement / n < tol

    prevalence = jnp.sum(train * y) / n
    b0 = jnp.log(prevalence) - jnp.log1p(-prevalence)
    w0, z0 = jnp.zeros_like(mean), jnp.full_like(y, b0)
    state = (0, w0, b0, z0, objective(z0, w0), False)
    _, w, b, z, _, converged = jax.lax.while_loop(
        lambda s: (s[0] < max_newton) & ~s[5], newton_step, state
    )
    softplus, _ = _softplus_sigmoid(z)
    held_loss = jnp.sum(held * (softplus - y * z)) / jnp.maximum(held.sum(), 1.0)
    held_loss = jnp.where(held.sum() > 0, held_loss, jnp.nan)
    return w, b - mean @ w, held_loss, converged
