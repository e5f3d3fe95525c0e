"""Fitting a probe under a protocol: what one row is (`Units`: participant means or
segments), the targets as a matrix, the cross-validated fit, the protocols (`split`,
`crossfit`, `external`) and fold-standardized scores for pooling cross-fitted folds."""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from ahms_fm.evaluation import linear, stats
from ahms_fm.evaluation import targets as targets_lib

# ----------------------------------------------------------------------------
# Units: what one row of a probe is.
# ----------------------------------------------------------------------------


def group_means(x: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique groups, [g, d] mean of each group's rows), NaN-aware (all-NaN -> NaN)."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    finite = np.isfinite(x)
    sums = np.zeros((len(uniq), x.shape[1]))
    counts = np.zeros((len(uniq), x.shape[1]))
    np.add.at(sums, inverse, np.where(finite, x, 0.0))
    np.add.at(counts, inverse, finite)
    with np.errstate(invalid="ignore", divide="ignore"):
        return uniq, (sums / counts).astype(np.float32)


@dataclasses.dataclass
class Units:
    """The rows of the probes at one level: features per feature set, who, and which split."""

    level: str  # "participant" | "segment"
    groups: np.ndarray  # participant_index of each unit
    is_test: np.ndarray  # in the dataset's test split
    features: dict  # feature set name -> [n, d]
    segments: object  # pandas.DataFrame of segment rows (segment level) or None


def make_units(level: str, table, features: dict) -> Units:
    """Units from the segment table (participant_index, split, ...) and per-segment features."""
    if level == "segment":
        return Units(
            level,
            table["participant_index"].to_numpy(),
            (table["split"] == "test").to_numpy(),
            features,
            table,
        )
    pid = table["participant_index"].to_numpy()
    means = {}
    for name, x in features.items():
        groups, means[name] = group_means(x, pid)
    split_of = dict(zip(pid, table["split"], strict=True))
    is_test = np.array([split_of[g] == "test" for g in groups])
    return Units(level, groups, is_test, means, None)


def target_matrix(units: Units, targets, participants, where: str):
    """[n, t] y (NaN = missing) and the kind of each target."""
    ys, kinds = [], []
    for t in targets:
        if units.level == "segment":
            if t.column not in units.segments:
                raise ValueError(
                    f"{where}: segments have no field {t.column!r}; fields: "
                    f"{sorted(units.segments.columns)}"
                )
            raw = units.segments[t.column].tolist()
        else:
            raw = targets_lib.participant_column(participants, t.column, units.groups, where)
        y, kind = targets_lib.values(t, raw)
        ys.append(y)
        kinds.append(kind)
    return np.stack(ys, axis=1) if ys else np.zeros((len(units.groups), 0)), kinds


# ----------------------------------------------------------------------------
# Fitting under a protocol.
# ----------------------------------------------------------------------------


def _impute(x_train, x_test):
    """NaN features -> the training mean (0 where a column has no value at all)."""
    mean = (
        np.nanmean(np.where(np.isfinite(x_train), x_train, np.nan), axis=0)
        if len(x_train)
        else np.zeros(x_train.shape[1])
    )
    mean = np.where(np.isfinite(mean), mean, 0.0)
    fix = lambda a: np.where(np.isfinite(a), a, mean).astype(np.float32)  # noqa: E731
    return fix(x_train), fix(x_test)


def fit_predict(x, y, binary, groups, test, *, folds, strengths, seed):
    """Train on ~test, predict test: (predictions [n_test, t], thresholds [t], strengths [t]).

    Regression targets use ridge, binary ones L2 logistic regression; each target's
    strength is chosen by `folds`-fold cross-validation over the training participants.
    Thresholds (for balanced accuracy) are the training prevalences.
    """
    stats.assert_disjoint(groups[~test], groups[test])
    x_train, x_test = _impute(x[~test], x[test])
    y_train = y[~test]
    # Small cohorts: at most one fold per training participant.
    inner = linear.make_folds(groups[~test], min(folds, len(np.unique(groups[~test]))), seed)
    pred = np.full((int(test.sum()), y.shape[1]), np.nan)
    strength = np.full(y.shape[1], np.nan)
    for is_binary, fit in ((False, linear.fit_ridge), (True, linear.fit_logistic)):
        cols = np.flatnonzero(binary == is_binary)
        if len(cols):
            r = fit(x_train, y_train[:, cols], x_test, folds=inner, strengths=strengths)
            pred[:, cols], strength[cols] = r.predictions, r.strength
    threshold = np.nanmean(y_train, axis=0)
    return pred, threshold, strength


HELD_OUT = ("split", "external")  # protocols that test on a fixed set of test units


def protocol_for(units: Units, requested: str, min_test: int) -> str:
    """`external` (set for external validation), `split` or `crossfit`; `auto` decides."""
    if requested not in ("auto", *HELD_OUT, "crossfit"):
        raise ValueError(f"protocol must be auto, split or crossfit, got {requested!r}")
    if requested != "auto":
        return requested
    test_participants = len(np.unique(units.groups[units.is_test]))
    return "split" if test_participants >= min_test else "crossfit"


def stratified_folds(groups, y, k: int, seed: int) -> np.ndarray:
    """Fold id per row: groups kept together, folds balanced in the target.

    Groups are sorted by their mean label (unlabelled ones last, ties at random) and
    each run of k consecutive groups is dealt to the k folds in a random order. Without
    this, a fold's held-out prevalence and its training prevalence move in opposite
    directions, and pooling the folds' predictions biases AUC and r below chance when
    the features carry little signal.
    """
    uniq, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, np.nan_to_num(y), len(uniq))
    counts = np.bincount(inverse, np.isfinite(y), len(uniq))
    with np.errstate(invalid="ignore", divide="ignore"):
        key = np.where(counts > 0, sums / counts, np.inf)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(uniq)), key))
    fold_of = np.empty(len(uniq), np.int64)
    for start in range(0, len(order), k):
        block = order[start : start + k]
        fold_of[block] = rng.permutation(k)[: len(block)]
    return fold_of[inverse.ravel()]


def predictions(x, y, binary, units: Units, protocol: str, *, folds, strengths, seed, ranked=None):
    """Held-out predictions for every test unit: (tested mask [n], pred [n, t], thr [n, t],
    chosen strengths [folds or 1, t], labelled training units [t] (most over folds)).

    `binary` targets get logistic probes, the others ridge. `crossfit` draws outer folds
    per target, stratified on it (`stratified_folds`); the `ranked` targets' scores
    (default: the binary ones; also ridge on 0/1 labels, as the quick probe does) are
    pooled over folds as `fold_scores`."""
    ranked = binary if ranked is None else np.asarray(ranked, bool)
    n, t = y.shape
    pred, thr = np.full((n, t), np.nan), np.full((n, t), np.nan)
    n_train = np.zeros(t, int)
    if protocol in HELD_OUT:
        p, th, s = fit_predict(
            x, y, binary, units.groups, units.is_test, folds=folds, strengths=strengths, seed=seed
        )
        pred[units.is_test], thr[units.is_test] = p, th
        n_train[:] = np.isfinite(y[~units.is_test]).sum(axis=0)
        return units.is_test.copy(), pred, thr, s[None], n_train
    k = min(folds, len(np.unique(units.groups)))
    chosen = np.full((k, t), np.nan)
    for j in range(t):
        outer = stratified_folds(units.groups, y[:, j], k, seed + 1)
        for f in range(k):
            test = outer == f
            p, th, s = fit_predict(
                x,
                y[:, [j]],
                binary[[j]],
                units.groups,
                test,
                folds=folds,
                strengths=strengths,
                seed=seed,
            )
            if ranked[j]:
                p, th = fold_scores(p[:, 0], th[0], logit=bool(binary[j]))
                p, th = p[:, None], np.array([th])
            pred[test, j], thr[test, j], chosen[f, j] = p[:, 0], th[0], s[0]
            n_train[j] = max(n_train[j], np.isfinite(y[~test, j]).sum())
    return np.ones(n, bool), pred, thr, chosen, n_train


def fold_scores(score, threshold, *, logit: bool = True):
    """One outer fold's scores made poolable across folds: centred and scaled by their
    spread over the fold's test units, after the logit if they are probabilities (and
    the threshold mapped alike, so each fold's labels are unchanged).

    Why: pooling raw probabilities ranks units of different folds by their probes'
    intercepts, which follow each training fold's prevalence: the fold trained on more
    positives holds fewer and scores all its units higher. With little signal (a strong
    penalty) that offset dominates and the pooled ROC AUC falls below 0.5 (on pure noise,
    0.476 +- 0.016 over 20 cohorts of 173 with 30 positives; ~0.40 where every fold
    chose the strongest penalty). Forman & Scholz (SIGKDD Explorations 12(1), 2010) and
    Airola et al. (Comput. Stat. Data Anal. 55(4), 2011) describe this pooling bias.
    Only labels-free statistics of the fold's features' scores are used."""
    if logit:
        z = np.log(np.clip(score, 1e-300, None)) - np.log(np.clip(1 - score, 1e-300, None))
        zt = np.log(threshold) - np.log1p(-threshold) if 0 < threshold < 1 else threshold
    else:
        z, zt = np.asarray(score, float), threshold
    ok = np.isfinite(z)
    mu = z[ok].mean() if ok.any() else 0.0
    sd = z[ok].std() if ok.sum() > 1 else 0.0
    sd = sd if sd > 0 else 1.0
    return (z - mu) / sd, (zt - mu) / sd


# ----------------------------------------------------------------------------
# Probing every target of one feature set.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    target: str
    kind: str
    level: str
    features: str
    protocol: str
    n_train: int  # labelled units a probe was trained on (largest over outer folds)
    n_test: int
    n_positive: int | None
    strength: list  # chosen per fold
    metrics: dict  # metric -> {"value", "low", "high", "n"}
    y: np.ndarray = dataclasses.field(repr=False)  # test truth, for figures
    pred: np.ndarray = dataclasses.field(repr=False)
    groups: np.ndarray = dataclasses.field(repr=False)
    rows: np.ndarray = dataclasses.field(repr=False)  # the test units' rows (for pairing)
    grid_edge: list = dataclasses.field(default_factory=list)  # "lowest" / "highest"

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("y", "pred", "groups", "rows"):
            d.pop(k)
        return d


def grid_edges(chosen, strengths) -> list[str]:
    """Which ends of the strength grid the chosen strengths (one per fold) sit at."""
    chosen = np.asarray(chosen, float)
    chosen = chosen[np.isfinite(chosen)]
    return [
        edge
        for edge, value in (("lowest", strengths[0]), ("highest", strengths[-1]))
        if np.isclose(chosen, value, rtol=1e-9).any()
    ]


EDGE_MEANING = {
    "lowest": "the weakest penalty won (a nearly noiseless relation); the best may lie below",
    "highest": "the strongest penalty won: near-constant predictions, little or no linear signal",
}


def _warn_edge(where, target, features, edge, chosen, strengths):
    value = strengths[0 if edge == "lowest" else -1]
    logging.warning(
        "%s: the probe of %s on %s chose the %s strength of its grid (%g) in %d "
        "of %d folds: %s (probe.log10_strengths)",
        where,
        target,
        features,
        edge,
        value,
        int(np.isclose(chosen, value, rtol=1e-9).sum()),
        len(chosen),
        EDGE_MEANING[edge],
    )


def probe_units(
    units: Units,
    targets,
    participants,
    probe_config,
    where: str,
    feature_sets=None,
    skipped: dict | None = None,
) -> list[Result]:
    """Every (target, feature set) probe at one level; targets that cannot be probed are
    left out, their reason put in `skipped` (target name -> reason)."""
    y, kinds = target_matrix(units, targets, participants, where)
    binary = np.array([k == "binary" for k in kinds], bool)
    protocol = protocol_for(units, probe_config.protocol, probe_config.min_test_participants)
    strengths = np.logspace(*probe_config.log10_strengths, probe_config.num_strengths)
    results = []
    for fname, x in units.features.items():
        use = [
            j
            for j, t in enumerate(targets)
            if feature_sets is None or fname in feature_sets.get(t.name, (fname,))
        ]
        reasons = {j: unprobeable(y[:, j], binary[j], units, protocol) for j in use}
        usable = [j for j in use if reasons[j] is None]
        for j in sorted(set(use) - set(usable)):
            logging.warning(
                "%s: target %s skipped for %s: %s", where, targets[j].name, fname, reasons[j]
            )
            if skipped is not None:
                skipped.setdefault(targets[j].name, reasons[j])
        if not usable:
            continue
        tested, pred, thr, chosen, n_train = predictions(
            x,
            y[:, usable],
            binary[usable],
            units,
            protocol,
            folds=probe_config.folds,
            strengths=strengths,
            seed=probe_config.seed,
        )
        for c, j in enumerate(usable):
            ok = tested & np.isfinite(y[:, j]) & np.isfinite(pred[:, c])
            kind = "binary" if binary[j] else "regression"
            m = stats.bootstrap(
                y[ok, j],
                pred[ok, c],
                kind,
                groups=units.groups[ok],
                threshold=thr[ok, c],
                n_boot=probe_config.n_boot,
                level=probe_config.level,
                seed=probe_config.seed,
            )
            edges = grid_edges(chosen[:, c], strengths)
            for edge in edges:
                _warn_edge(where, targets[j].name, fname, edge, chosen[:, c], strengths)
            results.append(
                Result(
                    targets[j].name,
                    kind,
                    units.level,
                    fname,
                    protocol,
                    int(n_train[c]),
                    int(ok.sum()),
                    int(y[ok, j].sum()) if binary[j] else None,
                    chosen[:, c].tolist(),
                    m,
                    y[ok, j],
                    pred[ok, c],
                    units.groups[ok],
                    np.flatnonzero(ok),
                    edges,
                )
            )
    return results


def unprobeable(y, binary, units, protocol, minimum=10) -> str | None:
    """Why a target's labels `y` (NaN = missing) cannot be probed, or None."""
    labelled = np.isfinite(y)
    if not labelled.any():
        return "no unit has a label"
    if binary and not 0 < np.sum(y[labelled]) < labelled.sum():
        return f"one class only (every label is {int(y[labelled][0])})"
    test = labelled & units.is_test if protocol in HELD_OUT else labelled
    if labelled.sum() < 2 * minimum:
        return f"{int(labelled.sum())} labelled units, fewer than {2 * minimum}"
    if test.sum() < minimum:
        return f"{int(test.sum())} labelled test units, fewer than {minimum}"
    return None
