"""The ceiling of the linear probes: ground-truth physiology of the synthetic cohort as features."""

import json
import math

import numpy as np
import pytest
from scipy.stats import rankdata

from ahms_fm.data import sources
from ahms_fm.data import synthetic as syn
from ahms_fm.data.preprocess import ModalitySpec, QualitySpec
from ahms_fm.evaluation import ceiling, linear
from ahms_fm.evaluation import targets as targets_lib
from ahms_fm.jsonable import jsonable

STRENGTHS = np.logspace(-1, 6, 8)  # the recipe's probe.log10_strengths, num_strengths


def table_of(truth: dict, extra: dict | None = None) -> list[dict]:
    """A participant table (as in a dataset's ahms_fm.json) from columns of [n] arrays."""
    cols = {**truth, **(extra or {})}
    n = len(next(iter(cols.values())))
    rows = [{"participant_index": i, "split": "train"} for i in range(n)]
    for k, v in cols.items():
        for i in range(n):
            x = v[i].item()
            rows[i][k] = None if isinstance(x, float) and math.isnan(x) else x
    return rows


def crossfit(x, y, logistic=False, k=5):
    """Held-out predictions of the project's probe: outer participant folds, inner CV."""
    n = len(y)
    outer = linear.make_folds(np.arange(n), k, seed=1)
    pred = np.empty(n)
    fit = linear.fit_logistic if logistic else linear.fit_ridge
    for f in range(k):
        test = outer == f
        inner = linear.make_folds(np.flatnonzero(~test), k, seed=0)
        pred[test] = fit(x[~test], y[~test], x[test], folds=inner, strengths=STRENGTHS).predictions[
            :, 0
        ]
    return pred


def r2(y, pred):
    return 1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def auc(y, score):
    ranks = rankdata(score)
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def test_recovers_a_label_linear_in_a_ground_truth_quantity():
    rng = np.random.default_rng(0)
    n = 300
    truth = {f: np.exp(rng.normal(0.0, 0.3, n)) for f in syn.TRUTH_FIELDS["ppg"]}
    x, names = ceiling.ceiling_features(table_of(truth), np.arange(n), "ppg")
    assert x.dtype == np.float32 and x.shape == (n, len(names))
    # Linear in a field ...
    crest = truth["truth_crest_time"]
    y = 40.0 * crest + 7.0 + rng.normal(0.0, 0.05 * 40.0 * crest.std(), n)
    got = r2(y, crossfit(x, y))
    # ... and in the log of a multiplicative one (the log column is there for it).
    y_log = 10.0 * np.log(truth["truth_rmssd"]) + rng.normal(0.0, 0.15, n)
    got_log = r2(y_log, crossfit(x, y_log))
    print(f"R^2: linear in crest time {got:.4f}, linear in log RMSSD {got_log:.4f}")
    assert got > 0.99 and got_log > 0.99
    # A label unrelated to the ground truth gets nothing.
    noise = rng.normal(size=n)
    assert r2(noise, crossfit(x, noise)) < 0.05


def test_columns_rows_and_missing_values():
    p = syn.sample_participants(3, 60)
    truth = syn.ground_truth(p, "ecg")
    rows = table_of(truth, {"age": p["age"]})
    rows = rows[::-1]  # the table's order does not matter, participant_index does
    groups = np.array([5, 2, 2, 40])
    x, names = ceiling.ceiling_features(rows, groups, "ecg")
    fields = syn.TRUTH_FIELDS["ecg"]
    logs = [f for f in fields if f in ceiling.LOG_FIELDS]
    assert names == [*fields, *(f"log_{f}" for f in logs)]
    assert "age" not in names and np.isfinite(x).all()
    np.testing.assert_allclose(x[:, names.index("truth_qtc")], truth["truth_qtc"][groups], 1e-6)
    np.testing.assert_allclose(
        x[:, names.index("log_truth_rmssd")], np.log(truth["truth_rmssd"][groups]), 1e-6
    )
    # PR is not there in AF (no P wave): filled with the mean of the others.
    af = np.flatnonzero(p["af"])
    assert af.size and np.isnan(truth["truth_pr"][af]).all()
    every = np.arange(60)
    x, _ = ceiling.ceiling_features(rows, every, "ecg")
    pr = x[:, names.index("truth_pr")]
    np.testing.assert_allclose(pr[af], np.nanmean(truth["truth_pr"]), rtol=1e-6)


def test_no_ceiling_without_ground_truth():
    real = [{"participant_index": i, "age": 30.0 + i, "sex": i % 2} for i in range(10)]
    assert ceiling.ceiling_features(real, np.arange(10), "ppg") is None
    p = syn.sample_participants(0, 10)
    rows = table_of(syn.ground_truth(p, "ecg"))
    assert ceiling.ceiling_features(rows, np.arange(10), "eda") is None
    with pytest.raises(ValueError, match="another modality"):
        ceiling.ceiling_features(rows, np.arange(10), "ppg")
    with pytest.raises(ValueError, match="not in the participant table"):
        ceiling.ceiling_features(rows, np.array([3, 99]), "ecg")


def test_fraction_of_ceiling():
    f = ceiling.fraction_of_ceiling
    assert f(0.62, 0.80, ceiling.CHANCE["roc_auc"]) == pytest.approx(0.4)
    assert f(0.3, 0.6, ceiling.CHANCE["r2"]) == pytest.approx(0.5)
    assert f(0.5, 0.9, 0.5) == 0.0 and f(0.9, 0.9, 0.5) == 1.0
    assert f(0.45, 0.9, 0.5) < 0  # worse than chance
    assert math.isnan(f(0.6, 0.5, 0.5)) and math.isnan(f(0.6, 0.45, 0.5))  # no ceiling
    assert math.isnan(f(0.1, -0.2, 0.0)) and math.isnan(f(0.6, math.nan, 0.5))
    got = f(np.array([0.55, 0.7, 0.8]), np.array([0.6, 0.9, 0.5]), 0.5)
    np.testing.assert_allclose(got, [0.5, 0.5, np.nan])


@pytest.mark.parametrize("modality", ["ppg", "ecg"])
def test_ground_truth_predicts_the_labels_of_a_synthetic_cohort(modality):
    """What perfect per-participant features give the probe (the numbers are printed)."""
    n = 1000
    p = syn.sample_participants(0, n)
    x, _ = ceiling.ceiling_features(table_of(syn.ground_truth(p, modality)), np.arange(n), modality)
    regression = {"age": p["age"], "bmi": p["bmi"]}
    binary = {
        "age>50": p["age"] > 50,
        "bmi>30": p["bmi"] > 30,
        "sex": p["sex"] == 1,
        "hypertension": p["hypertension"],
        "diabetes": p["diabetes"],
        "af": p["af"],
    }
    got = {k: r2(y, crossfit(x, y)) for k, y in regression.items()}
    got |= {k: auc(y, crossfit(x, y.astype(float))) for k, y in binary.items()}
    print(
        f"{modality} ceiling (ridge, {n} participants, 5-fold crossfit): "
        + ", ".join(f"{k} {'R^2' if k in regression else 'AUC'} {v:.3f}" for k, v in got.items())
    )
    assert got["age"] > 0.6 and got["age>50"] > 0.85
    assert got["hypertension"] > 0.75 and got["diabetes"] > 0.7
    assert got["af"] > 0.99  # the RR irregularity
    assert 0.1 < got["bmi"] < 0.5  # BMI leaves weaker traces
    assert 0.6 < got["sex"] < 0.95  # heart rate, height in dT (PPG), QRS and QTc (ECG)


def test_a_synthetic_dataset_stores_the_ground_truth_but_probes_ignore_it():
    spec = ModalitySpec("ecg", 128.0, 30.0, 1, (0.5, 40.0))
    source = sources.synthetic_source(
        spec, QualitySpec(), participants=20, segments_per_participant=1, seed=4
    )
    # As the dataset's ahms_fm.json stores the table: through JSON (NaN -> null).
    rows = json.loads(
        json.dumps(
            jsonable(
                [
                    {"participant_index": i, **source.participants[pid]}
                    for i, pid in enumerate(sorted(source.participants))
                ],
                finite=True,
            )
        )
    )
    truth = syn.ground_truth(syn.sample_participants(4, 20), "ecg")
    assert set(syn.TRUTH_FIELDS["ecg"]) <= set(rows[0])
    assert rows[7]["truth_qtc"] == truth["truth_qtc"][7]
    x, _ = ceiling.ceiling_features(rows, np.arange(20), "ecg")
    assert np.isfinite(x).all()
    # Target discovery (a dataset renamed, so no default list) skips them.
    found = [t.column for t in targets_lib.default_targets("renamed", rows)]
    assert found and not [c for c in found if c.startswith(syn.TRUTH_PREFIX)]
    assert "age" in found
    assert not any(
        t.column.startswith(syn.TRUTH_PREFIX)
        for t in targets_lib.default_targets("synthetic_ecg", rows)
    )
