"""The probe evaluation's wiring: targets, units, protocols, leakage, the report, and the
whole path from a checkpoint to a report (`ahms-fm probe`)."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import load_config

from ahms_fm.evaluation import probe, report
from ahms_fm.evaluation import targets as targets_lib


def _pc(**kw):
    pc = probe.probe_defaults()
    pc.update({"n_boot": 200, **kw})
    return pc


@pytest.mark.parametrize("text,want", [
    ("age", ("age", "age", "participant", None, None)),
    ("age>50", ("age>50", "age", "participant", ">", "50")),
    ("bmi >= 30", ("bmi>=30", "bmi", "participant", ">=", "30")),
    ("rhythm==A", ("rhythm==A", "rhythm", "participant", "==", "A")),
    ("segment.heart_rate", ("segment.heart_rate", "heart_rate", "segment", None, None)),
    ("stress=segment.label in a|b", ("stress", "label", "segment", "in", "a|b")),
])
def test_target_grammar(text, want):
    t = targets_lib.parse_target(text)
    assert (t.name, t.column, t.level, t.op, t.value) == want


def test_target_values_and_kinds():
    v = targets_lib.values
    p = targets_lib.parse_target
    y, kind = v(p("age"), [30.0, None, 61.5, float("nan")])
    assert kind == "regression" and np.array_equal(y, [30.0, np.nan, 61.5, np.nan],
                                                   equal_nan=True)
    assert v(p("age>50"), [30, 50, 51, None])[1] == "binary"
    assert np.array_equal(v(p("age>50"), [30, 50, 51, None])[0], [0, 0, 1, np.nan],
                          equal_nan=True)
    assert np.array_equal(v(p("af"), [True, False, "True", "false"])[0], [1, 0, 1, 0])
    assert v(p("sex"), [0, 1, 1])[1] == "binary"
    assert np.array_equal(v(p("x=label in a|b"), ["a", "c", "b", ""])[0], [1, 0, 1, np.nan],
                          equal_nan=True)
    with pytest.raises(ValueError, match=r"non-numeric value 'N'.*rhythm==N"):
        v(p("rhythm"), ["N", "A"])
    with pytest.raises(ValueError, match="cannot parse"):
        p("age >> 3")
    with pytest.raises(ValueError, match="no participant label 'weight'"):
        targets_lib.participant_column([{"participant_index": 0, "age": 3}], "weight",
                                       np.array([0]), "ds")


def test_group_means_match_pandas():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    x[3, 1] = np.nan
    g = rng.integers(0, 7, 50)
    uniq, means = probe.group_means(x, g)
    want = pd.DataFrame(x).groupby(g).mean()  # pandas skips NaN too
    assert np.array_equal(uniq, want.index)
    np.testing.assert_allclose(means, want.to_numpy(), rtol=1e-6)


def _cohort(n=300, segments=3, seed=0):
    """A segment table where each participant's features are a noisy function of age."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 80, n)
    sex = rng.integers(0, 2, n)
    participants = [{"participant_index": i, "age": float(a), "sex": int(s),
                     "split": "test" if i % 5 == 0 else "train"}
                    for i, (a, s) in enumerate(zip(age, sex, strict=True))]
    pid = np.repeat(np.arange(n), segments)
    signal = np.stack([(age - 50) / 15, sex - 0.5], axis=1)[pid]
    x = np.concatenate([signal + rng.normal(0, 0.3, signal.shape),
                        rng.normal(size=(len(pid), 6))], axis=1)
    table = pd.DataFrame({"participant_index": pid,
                          "split": [participants[i]["split"] for i in pid],
                          "heart_rate": 60 + 10 * signal[:, 0] + rng.normal(0, 1, len(pid))})
    return participants, table, x


@pytest.mark.parametrize("protocol", ["split", "crossfit"])
def test_probes_read_known_signals_and_not_noise(protocol):
    participants, table, x = _cohort()
    rng = np.random.default_rng(1)
    units = probe.make_units("participant", table,
                             {"signal": x, "noise": rng.normal(size=x.shape)})
    targets = targets_lib.parse_targets("age,age>50,sex")
    results = probe.probe_units(units, targets, participants, _pc(protocol=protocol), "test")
    got = {(r.target, r.features): r for r in results}
    assert len(got) == 6 and all(r.protocol == protocol for r in results)
    assert got["age", "signal"].metrics["mae"]["value"] < 3.0  # noise 0.3 sd ~ 4.5 years / sqrt 3
    assert got["age", "signal"].metrics["r2"]["value"] > 0.9
    assert got["sex", "signal"].metrics["roc_auc"]["value"] > 0.95
    assert got["age>50", "signal"].metrics["roc_auc"]["value"] > 0.9
    for name in ("age>50", "sex"):
        m = got[name, "noise"].metrics["roc_auc"]
        assert m["low"] < 0.5 < m["high"] or abs(m["value"] - 0.5) < 0.15
    assert got["age", "noise"].metrics["r2"]["value"] < 0.1
    n_test = 60 if protocol == "split" else 300
    assert got["age", "signal"].n_test == n_test
    assert got["age", "signal"].metrics["mae"]["low"] < got["age", "signal"].metrics["mae"][
        "value"] < got["age", "signal"].metrics["mae"]["high"]


def test_segment_targets_keep_participants_together_and_leakage_is_refused():
    participants, table, x = _cohort(n=60, segments=4)
    units = probe.make_units("segment", table, {"signal": x})
    results = probe.probe_units(units, targets_lib.parse_targets("segment.heart_rate"),
                                participants, _pc(protocol="crossfit"), "test")
    (r,) = results
    assert r.n_test == 240 and r.metrics["pearson_r"]["value"] > 0.9
    # A participant with segments on both sides of a split is refused.
    y = table[["heart_rate"]].to_numpy()
    test = np.zeros(len(table), bool)
    test[:6] = True  # participant 1 has segments 3..7: split across train and test
    with pytest.raises(ValueError, match="1 participants in both the training and the test"):
        probe.fit_predict(x, y, np.array([False]), units.groups, test, folds=3,
                          strengths=np.logspace(-1, 3, 3), seed=0)


def test_roc_curve_matches_sklearn():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # ties
    fpr, tpr = report.roc_curve(y, s)
    want_fpr, want_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, want_fpr)
    np.testing.assert_allclose(tpr, want_tpr)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny PPG model trained for 2 steps, and its synthetic dataset."""
    from ahms_fm import train

    config = load_config("ppg", "tiny")
    root = tmp_path_factory.mktemp("probe_run")
    config.data.data_dir = str(root / "datasets")
    config.data.participants = 60
    config.num_steps = 2
    config.checkpoint_every_steps = 2
    config.eval_every_steps = 2
    train.train_and_evaluate(config, root / "run")
    return root


def test_probe_command_writes_the_report(tiny_run, monkeypatch, capsys):
    monkeypatch.chdir(tiny_run)  # the checkpoint names its dataset relative to the cwd
    with pytest.raises(SystemExit) as done:
        probe.run(["ahms-fm probe", "--checkpoint", "run", "--targets", "age,age>50,sex,diabetes",
                   "--n_boot", "100", "--out", "report"])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "| age | embedding | crossfit |" in printed and "report" in printed
    rep = json.loads((tiny_run / "report" / "report.json").read_text())
    rows = {(r["target"], r["features"]) for r in rep["results"]}
    for target in ("age", "age>50", "sex", "diabetes"):
        for features in ("embedding", "random_init", "handcrafted"):
            assert (target, features) in rows
    # The demographic baseline only for conditions, never for age or sex themselves.
    assert ("diabetes", "demographic") in rows and ("age>50", "demographic") not in rows
    for name in ("report.md", "predictions.csv", "pred_vs_true.png", "roc.png", "map.png",
                 "embeddings.parquet"):
        assert (tiny_run / "report" / name).stat().st_size > 0, name
    preds = pd.read_csv(tiny_run / "report" / "predictions.csv")
    truth = {p["participant_index"]: p["age"] for p in json.loads(
        next((tiny_run / "datasets").glob("**/ahms_fm.json")).read_text())["participants"]}
    ages = preds[(preds.target == "age") & (preds.features == "embedding")]
    np.testing.assert_allclose(ages.y, ages.participant_index.map(truth))  # aligned
    assert len(ages) == 60  # crossfit: every participant predicted once


def test_crossfit_on_noise_is_centred_on_chance():
    """Pooling cross-fitted predictions whose folds differ in prevalence biases AUC and r
    below chance when the features carry no signal (0.43 and -0.13 here with unstratified
    folds); folds stratified per target keep both near chance."""
    from ahms_fm.evaluation import stats

    aucs, rs = [], []
    for rep in range(100):
        rng = np.random.default_rng(rep)
        n = 150
        y = np.stack([rng.random(n) < 0.7, rng.normal(size=n)], axis=1).astype(float)
        table = pd.DataFrame({"participant_index": np.arange(n), "split": "train"})
        units = probe.make_units("participant", table, {"noise": rng.normal(size=(n, 8))})
        tested, pred, _, _, _ = probe.predictions(
            units.features["noise"], y, np.array([True, False]), units, "crossfit", folds=5,
            strengths=np.logspace(-1, 6, 8), seed=rep)
        assert tested.all()
        aucs.append(stats.roc_auc(y[:, 0], pred[:, 0]))
        rs.append(stats.pearson_r(y[:, 1], pred[:, 1]))
    assert np.mean(aucs) > 0.46 and np.mean(rs) > -0.07  # standard errors 0.005, 0.009


def test_batch_norm_calibration_matches_the_batch_statistics():
    """The random-init baseline: its eval-mode statistics are re-estimated on data."""
    import jax.numpy as jnp

    from ahms_fm.evaluation import embeddings

    config = load_config("ppg", "tiny")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, config.input.segment_length, config.input.channels))
    x = (x * 3.0 + 2.0).astype(np.float32)  # far from what mean 0 / variance 1 expects
    raw = embeddings.random_encoder(config, seed=3)
    cal = embeddings.calibrate_batch_norm(raw, x, passes=40)
    # The stem's batch norm now holds the mean and variance of the stem conv's output.
    conv = raw.params["encoder"]["stem"]["kernel"]
    h = np.asarray(jnp.asarray(jax_conv(x, conv)))
    got = cal.stats["encoder"]["stem_bn"]
    np.testing.assert_allclose(got["mean"], h.mean(axis=(0, 1)), rtol=0.03,
                               atol=0.03 * h.std())
    np.testing.assert_allclose(got["var"], h.var(axis=(0, 1)), rtol=0.03)
    assert cal.embed_windows(x).std(0).mean() > 10 * raw.embed_windows(x).std(0).mean()


def jax_conv(x, kernel):
    """The stem: a stride-2 'SAME' convolution without bias, written independently."""
    import jax

    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(2,), padding="SAME",
        dimension_numbers=("NWC", "WIO", "NWC"))
