"""The probe evaluation's wiring: targets, units, protocols, leakage, the report, and the
whole path from a checkpoint to a report (`ahms-fm probe`)."""

import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import load_config

from ahms_fm.evaluation import command, probe, report
from ahms_fm.evaluation import targets as targets_lib


def _pc(**kw):
    pc = probe.probe_defaults()
    pc.update({"n_boot": 200, **kw})
    return pc


@pytest.mark.parametrize(
    "text,want",
    [
        ("age", ("age", "age", "participant", None, None)),
        ("age>50", ("age>50", "age", "participant", ">", "50")),
        ("bmi >= 30", ("bmi>=30", "bmi", "participant", ">=", "30")),
        ("rhythm==A", ("rhythm==A", "rhythm", "participant", "==", "A")),
        ("segment.heart_rate", ("segment.heart_rate", "heart_rate", "segment", None, None)),
        ("stress=segment.label in a|b", ("stress", "label", "segment", "in", "a|b")),
    ],
)
def test_target_grammar(text, want):
    t = targets_lib.parse_target(text)
    assert (t.name, t.column, t.level, t.op, t.value) == want


def test_target_values_and_kinds():
    v = targets_lib.values
    p = targets_lib.parse_target
    y, kind = v(p("age"), [30.0, None, 61.5, float("nan")])
    assert kind == "regression" and np.array_equal(y, [30.0, np.nan, 61.5, np.nan], equal_nan=True)
    assert v(p("age>50"), [30, 50, 51, None])[1] == "binary"
    assert np.array_equal(v(p("age>50"), [30, 50, 51, None])[0], [0, 0, 1, np.nan], equal_nan=True)
    assert np.array_equal(v(p("af"), [True, False, "True", "false"])[0], [1, 0, 1, 0])
    assert v(p("sex"), [0, 1, 1])[1] == "binary"
    assert np.array_equal(
        v(p("x=label in a|b"), ["a", "c", "b", ""])[0], [1, 0, 1, np.nan], equal_nan=True
    )
    with pytest.raises(ValueError, match=r"non-numeric value 'N'.*rhythm==N"):
        v(p("rhythm"), ["N", "A"])
    with pytest.raises(ValueError, match="cannot parse"):
        p("age >> 3")
    with pytest.raises(ValueError, match="no participant label 'weight'"):
        targets_lib.participant_column(
            [{"participant_index": 0, "age": 3}], "weight", np.array([0]), "ds"
        )


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
    participants = [
        {
            "participant_index": i,
            "age": float(a),
            "sex": int(s),
            "split": "test" if i % 5 == 0 else "train",
        }
        for i, (a, s) in enumerate(zip(age, sex, strict=True))
    ]
    pid = np.repeat(np.arange(n), segments)
    signal = np.stack([(age - 50) / 15, sex - 0.5], axis=1)[pid]
    x = np.concatenate(
        [signal + rng.normal(0, 0.3, signal.shape), rng.normal(size=(len(pid), 6))], axis=1
    )
    table = pd.DataFrame(
        {
            "participant_index": pid,
            "split": [participants[i]["split"] for i in pid],
            "heart_rate": 60 + 10 * signal[:, 0] + rng.normal(0, 1, len(pid)),
        }
    )
    return participants, table, x


@pytest.mark.parametrize("protocol", ["split", "crossfit"])
def test_probes_read_known_signals_and_not_noise(protocol):
    participants, table, x = _cohort()
    rng = np.random.default_rng(1)
    units = probe.make_units("participant", table, {"signal": x, "noise": rng.normal(size=x.shape)})
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
    assert (
        got["age", "signal"].metrics["mae"]["low"]
        < got["age", "signal"].metrics["mae"]["value"]
        < got["age", "signal"].metrics["mae"]["high"]
    )


def test_segment_targets_keep_participants_together_and_leakage_is_refused():
    participants, table, x = _cohort(n=60, segments=4)
    units = probe.make_units("segment", table, {"signal": x})
    results = probe.probe_units(
        units,
        targets_lib.parse_targets("segment.heart_rate"),
        participants,
        _pc(protocol="crossfit"),
        "test",
    )
    (r,) = results
    assert r.n_test == 240 and r.metrics["pearson_r"]["value"] > 0.9
    # A participant with segments on both sides of a split is refused.
    y = table[["heart_rate"]].to_numpy()
    test = np.zeros(len(table), bool)
    test[:6] = True  # participant 1 has segments 3..7: split across train and test
    with pytest.raises(ValueError, match="1 participants in both the training and the test"):
        probe.fit_predict(
            x,
            y,
            np.array([False]),
            units.groups,
            test,
            folds=3,
            strengths=np.logspace(-1, 3, 3),
            seed=0,
        )


def test_random_seeds_are_distinct_and_never_the_runs_own():
    from ahms_fm.evaluation.baselines import random_seeds

    for run_seed in (-3, 0, 1, 7):
        for probe_seed in (-2, -1, 0, 1, 2):
            for k in (1, 5):
                seeds = random_seeds(run_seed, probe_seed, k)
                assert len(set(seeds)) == k and run_seed not in seeds
        # Other probe seeds, other initializations (non-negative probe seeds).
        sets = [set(random_seeds(run_seed, p, 5)) for p in range(3)]
        assert not (sets[0] & sets[1]) and not (sets[1] & sets[2])
    assert random_seeds(0, 0, 1) == [1]  # the single seed the baseline used before


def test_a_strength_at_the_end_of_the_grid_is_warned_and_marked(caplog):
    """Noiseless features want the weakest penalty, pure noise the strongest: both sit at
    an end of a grid that does not reach past them."""
    participants, table, _ = _cohort(n=200)
    rng = np.random.default_rng(2)
    age = np.array([p["age"] for p in participants])[table["participant_index"]]
    units = probe.make_units(
        "participant",
        table,
        {
            "exact": np.c_[age, rng.normal(size=(len(age), 3))],
            "noise": rng.normal(size=(len(age), 4)),
        },
    )
    with caplog.at_level("WARNING"):
        results = probe.probe_units(
            units,
            targets_lib.parse_targets("age"),
            participants,
            _pc(protocol="crossfit", log10_strengths=(-1.0, 2.0), num_strengths=4),
            "cohort",
        )
    got = {r.features: r for r in results}
    assert got["exact"].grid_edge == ["lowest"] and got["noise"].grid_edge == ["highest"]
    assert np.isclose(got["exact"].strength, 0.1).all()  # every fold
    warned = [r.getMessage() for r in caplog.records if "strength of its grid" in r.getMessage()]
    assert any("age on exact chose the lowest strength" in w for w in warned)
    assert any("age on noise chose the highest strength" in w for w in warned)
    md = report.markdown(results)
    assert "| age | exact | crossfit |" in md and "0.1 † |" in md
    assert "age / exact (lowest); age / noise (highest)" in md
    assert probe.grid_edges([1.0, 10.0], np.logspace(-1, 2, 4)) == []
    assert probe.grid_edges([0.1, 100.0], np.logspace(-1, 2, 4)) == ["lowest", "highest"]


def test_compare_takes_the_strongest_baseline_and_pairs_the_participants():
    """The embedding against random seeds (noise: it is ahead), an `init` that is the
    embedding itself (exactly 0, not distinguishable), and hand-crafted features better
    at age and blind to sex (behind, then ahead)."""
    from sklearn.metrics import r2_score, roc_auc_score

    from ahms_fm.evaluation import compare

    participants, table, x = _cohort(n=300)
    rng = np.random.default_rng(3)
    age = np.array([p["age"] for p in participants])[table["participant_index"]]
    features = {
        "embedding": x,
        "init": x.copy(),
        "handcrafted": np.c_[age + rng.normal(0, 1, len(age))],
        **{f"random_init/{i}": rng.normal(size=x.shape) for i in range(3)},
    }
    units = probe.make_units("participant", table, features)
    results = probe.probe_units(
        units, targets_lib.parse_targets("age,sex"), participants, _pc(protocol="split"), "cohort"
    )
    by = {(r.target, r.features): r for r in results}
    score = {"age": r2_score, "sex": roc_auc_score}

    def metric(target, features):
        r = by[target, features]
        return score[target](r.y, r.pred)

    rows = {c["target"]: c for c in compare.compare(results, n_boot=300, level=0.95, seed=0)}
    no_init = {
        c["target"]: c
        for c in compare.compare(
            [r for r in results if r.features != "init"], n_boot=300, level=0.95, seed=0
        )
    }
    for target in ("age", "sex"):
        seeds = {f"random_init/{i}": metric(target, f"random_init/{i}") for i in range(3)}
        best = max(seeds, key=seeds.get)
        assert rows[target]["best_random"]["features"] == best
        assert rows[target]["best_random"]["value"] == pytest.approx(seeds[best])
        # init (= the embedding) beats every noise seed: the difference is exactly 0.
        assert rows[target]["strongest_untrained"] == "init"
        d = rows[target]["vs_untrained"]
        assert d["value"] == d["low"] == d["high"] == 0.0
        assert d["verdict"] == "not distinguishable"
        # Without init, the best seed: far behind a probe that reads the target.
        d = no_init[target]["vs_untrained"]
        assert no_init[target]["strongest_untrained"] == best and d["verdict"] == "ahead"
        assert d["value"] == pytest.approx(metric(target, "embedding") - seeds[best])
        assert no_init[target]["init"] is None
        h = rows[target]["vs_handcrafted"]
        assert h["value"] == pytest.approx(
            metric(target, "embedding") - metric(target, "handcrafted")
        )
    assert rows["age"]["vs_handcrafted"]["verdict"] == "behind"  # 1 year of noise vs 4.5
    assert rows["sex"]["vs_handcrafted"]["verdict"] == "ahead"
    assert rows["age"]["sentence"] == (
        "age (R²): the embedding is not distinguishable from "
        "the best untrained encoder (init); behind "
        "hand-crafted features."
    )
    md = report.markdown(results, comparison=list(rows.values()))
    assert "| age | random_init (best of 3) |" in md and "| sex | random_init | ROC AUC |" in md
    assert "+0.000 [+0.000, +0.000] vs init" in md and f"- {rows['sex']['sentence']}" in md


def _with_truth(participants, modality="ppg", seed=0):
    """The participant table with the synthetic generator's ground truth of a cohort."""
    from ahms_fm.data import synthetic as syn

    truth = syn.ground_truth(syn.sample_participants(seed, len(participants)), modality)
    return [{**p, **{f: v[i].item() for f, v in truth.items()}} for i, p in enumerate(participants)]


def test_ceiling_features_of_the_units_or_none_without_ground_truth(caplog):
    participants, _, _ = _cohort(n=40)
    groups = np.arange(40)[::-1]
    with_truth = _with_truth(participants)
    x = probe.ceiling_units(with_truth, groups, "ppg", "ds")
    np.testing.assert_allclose(
        x[:, 0], [with_truth[g]["truth_resting_hr"] for g in groups], rtol=1e-6
    )
    with caplog.at_level("WARNING"):
        assert probe.ceiling_units(participants, groups, "ppg", "ds") is None  # real data
        assert not caplog.records
        mixed = with_truth[:30] + participants[30:]  # a synthetic and a real cohort
        assert probe.ceiling_units(mixed, groups, "ppg", "ds") is None
    assert "ds: 10 of 40 participants have no ground truth" in caplog.text
    # Only the units' participants count.
    assert probe.ceiling_units(mixed, np.arange(30), "ppg", "ds").shape[0] == 30


def test_the_comparison_reads_each_feature_set_as_a_fraction_of_the_ceiling():
    """A ceiling that reads age almost exactly, an embedding with more noise, noise seeds
    and hand-crafted features: fractions (value - chance) / (ceiling - chance) of the
    headline metric, in the rows, the sentence and the report's table and footnote."""
    from ahms_fm.evaluation import ceiling, compare

    participants, table, x = _cohort(n=300)
    rng = np.random.default_rng(4)
    pid = table["participant_index"].to_numpy()
    age = np.array([p["age"] for p in participants])
    sex = np.array([p["sex"] for p in participants])
    truth = np.c_[(age - 50) / 15, sex, rng.normal(size=(300, 2))][pid]
    noisier = x + np.c_[rng.normal(0, 1.0, (len(pid), 2)), np.zeros((len(pid), 6))]
    features = {
        "embedding": noisier,
        "handcrafted": x[:, [0]] + rng.normal(0, 1, (len(pid), 1)),
        **{f"random_init/{i}": rng.normal(size=x.shape) for i in range(2)},
        "ceiling": truth,
    }
    units = probe.make_units("participant", table, features)
    results = probe.probe_units(
        units, targets_lib.parse_targets("age,sex"), participants, _pc(protocol="split"), "cohort"
    )
    by = {(r.target, r.features): r for r in results}
    rows = {c["target"]: c for c in compare.compare(results, n_boot=200, level=0.95, seed=0)}
    md = report.markdown(results, comparison=list(rows.values()))
    for target, metric, chance in (("age", "r2", 0.0), ("sex", "roc_auc", 0.5)):
        c = rows[target]
        top = by[target, "ceiling"].metrics[metric]["value"]
        assert c["ceiling"]["value"] == top and c["ceiling"]["features"] == "ceiling"
        assert top > c["embedding"]["value"] > chance + 0.2
        shares = c["fraction_of_ceiling"]
        for key in ("embedding", "best_random", "handcrafted"):
            want = (c[key]["value"] - chance) / (top - chance)
            assert shares[key] == pytest.approx(want)
        assert 0.2 < shares["embedding"] < 1 and abs(shares["best_random"]) < 0.3
        assert np.isnan(shares["init"])  # no init here
        assert c["sentence"].endswith(f"; it reaches {shares['embedding']:.2f} of the ceiling.")
        cells = " / ".join(f"{shares[k]:.2f}" for k in ("embedding", "best_random", "handcrafted"))
        assert f"| {report._cell(c['ceiling'])} | {cells} |" in md
    assert "| ceiling | fraction of ceiling: embedding / best random / hand-crafted |" in md
    assert "| age | ceiling | split |" in md and report.CEILING_NOTE in md
    assert ceiling.fraction_of_ceiling(0.75, 1.0, 0.5) == 0.5
    # Without a ceiling: no such columns, no footnote, the sentence as before.
    plain = [r for r in results if r.features != "ceiling"]
    rows = compare.compare(plain, n_boot=200, level=0.95, seed=0)
    assert all(c["ceiling"] is None and c["fraction_of_ceiling"] is None for c in rows)
    md = report.markdown(plain, comparison=rows)
    assert "ceiling" not in md and "ceiling" not in rows[0]["sentence"]


def test_external_cohort_shifts_the_test_side_and_refuses_shared_ids(tmp_path):
    from ahms_fm.evaluation import cohort

    spec = {"modality": "ppg", "sample_rate": 64.0}

    def folder(name, ids, splits, spec=spec):
        (tmp_path / name).mkdir()
        people = [
            {"participant": pid, "participant_index": i, "split": sp, "age": 20 + i}
            for i, (pid, sp) in enumerate(zip(ids, splits, strict=True))
        ]
        (tmp_path / name / "ahms_fm.json").write_text(
            json.dumps({"name": name, "modality_spec": spec, "participants": people})
        )
        return tmp_path / name

    a = folder("a", ["a0", "a1", "a2"], ["train", "validation", "test"])
    b = folder("b", ["b0", "b1"], ["train", "test"])
    c = cohort.external(cohort.part(str(a), "", {}), cohort.part(f"{b}:test", "", {}))
    assert c.parts[1].splits == ("test",) and c.offsets == (0, 3)
    assert [(p["participant"], p["participant_index"], p["split"]) for p in c.participants] == [
        ("a0", 0, "train"),
        ("a1", 1, "train"),
        ("a2", 2, "train"),
        ("b1", 4, "test"),
    ]
    # By name under a data folder, with several splits.
    assert cohort.part("a:train+test", str(tmp_path), {}).splits == ("train", "test")
    shared = folder("shared", ["x", "a2", "a1"], ["train", "train", "test"])
    with pytest.raises(
        ValueError,
        match=rf"2 participant id\(s\) are in both {a} \(training\) "
        rf"and {shared} \(test\): a1, a2$",
    ):
        cohort.external(cohort.part(str(a), "", {}), cohort.part(str(shared), "", {}))
    # Disjoint splits of one dataset are fine; overlapping ones are not.
    cohort.external(cohort.part(f"{a}:train", "", {}), cohort.part(f"{a}:test", "", {}))
    with pytest.raises(ValueError, match="1 participant id"):
        cohort.external(cohort.part(f"{a}:train+test", "", {}), cohort.part(f"{a}:test", "", {}))
    other = folder("other", ["o0"], ["test"], {"modality": "ecg", "sample_rate": 128.0})
    with pytest.raises(ValueError, match="different modality specs"):
        cohort.external(cohort.part(str(a), "", {}), cohort.part(str(other), "", {}))


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
    """A tiny PPG model trained for 4 steps, checkpoints 0 (its initialization), 2 and 4
    kept, and its synthetic dataset."""
    from ahms_fm import train

    config = load_config("ppg", "tiny")
    root = tmp_path_factory.mktemp("probe_run")
    config.data.data_dir = str(root / "datasets")
    config.data.participants = 60
    config.num_steps = 4
    config.checkpoint_every_steps = 2
    config.eval_every_steps = 2
    config.keep_checkpoints = 10
    train.train_and_evaluate(config, root / "run")
    return root


def _dataset(root):
    """(the tiny run's dataset folder, its participant table)."""
    meta_file = next((root / "datasets").glob("**/ahms_fm.json"))
    return meta_file.parent, json.loads(meta_file.read_text())["participants"]


def test_probe_command_writes_the_report(tiny_run, monkeypatch, capsys):
    from sklearn.metrics import r2_score, roc_auc_score

    monkeypatch.chdir(tiny_run)  # the checkpoint names its dataset relative to the cwd
    with pytest.raises(SystemExit) as done:
        command.run(
            [
                "ahms-fm probe",
                "--checkpoint",
                "run",
                "--targets",
                "age,age>50,sex,diabetes",
                "--n_boot",
                "100",
                "--random_seeds",
                "3",
                "--out",
                "report",
            ]
        )
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "| age | embedding | crossfit |" in printed and "report" in printed
    rep = json.loads((tiny_run / "report" / "report.json").read_text())
    rows = {(r["target"], r["features"]) for r in rep["results"]}
    seeds = [f"random_init/{i}" for i in range(3)]
    for target in ("age", "age>50", "sex", "diabetes"):
        for features in ("embedding", *seeds, "init", "handcrafted", "ceiling"):  # defaults
            assert (target, features) in rows, (target, features)
    # Three initializations, none of them the run's own (that one is `init`).
    assert len(set(rep["random_seeds"])) == 3 and rep["probe"]["seed"] == 0
    assert load_config("ppg", "tiny").seed not in rep["random_seeds"]
    # The demographic baseline only for conditions, never for age or sex themselves.
    assert ("diabetes", "demographic") in rows and ("age>50", "demographic") not in rows
    for name in (
        "report.md",
        "predictions.csv",
        "pred_vs_true.png",
        "roc.png",
        "map.png",
        "embeddings.parquet",
    ):
        assert (tiny_run / "report" / name).stat().st_size > 0, name
    preds = pd.read_csv(tiny_run / "report" / "predictions.csv")
    truth = {p["participant_index"]: p["age"] for p in _dataset(tiny_run)[1]}
    ages = preds[(preds.target == "age") & (preds.features == "embedding")]
    np.testing.assert_allclose(ages.y, ages.participant_index.map(truth))  # aligned
    assert len(ages) == 60  # crossfit: every participant predicted once

    # The seeds: each one's headline value, their mean and range, the best one's row.
    by = {(r["target"], r["features"]): r for r in rep["results"]}
    summary = {(s["target"], s["metric"]): s for s in rep["random_init_seeds"]}
    auc = [by["sex", s]["metrics"]["roc_auc"]["value"] for s in seeds]
    got = summary["sex", "roc_auc"]
    assert got["values"] == pytest.approx(auc) and got["mean"] == pytest.approx(np.mean(auc))
    assert (got["min"], got["max"]) == pytest.approx((min(auc), max(auc)))
    assert got["best"] == seeds[int(np.argmax(auc))]
    assert (
        "| sex | random_init (best of 3) |" in printed
        and "| sex | random_init | ROC AUC |" in printed
    )

    # "Did pretraining help": each difference is the two probes' metric on the same test
    # participants (recomputed here from predictions.csv), one sentence per target.
    comparison = {c["target"]: c for c in rep["comparison"]}
    assert list(comparison) == ["age", "age>50", "sex", "diabetes"]
    for target, c in comparison.items():
        score = r2_score if target == "age" else roc_auc_score
        assert c["metric"] == ("r2" if target == "age" else "roc_auc")

        def metric(features, target=target, score=score):
            p = preds[(preds.target == target) & (preds.features == features)]
            return score(p.y, p.prediction)

        untrained = {f: metric(f) for f in (*seeds, "init")}
        best = max(seeds, key=untrained.get)
        strongest = max((best, "init"), key=untrained.get)
        assert c["best_random"]["features"] == best and c["strongest_untrained"] == strongest
        assert c["vs_untrained"]["value"] == pytest.approx(
            metric("embedding") - untrained[strongest], abs=1e-9
        )
        assert c["vs_handcrafted"]["value"] == pytest.approx(
            metric("embedding") - metric("handcrafted"), abs=1e-9
        )
        for d in (c["vs_untrained"], c["vs_handcrafted"]):
            assert d["low"] <= d["value"] <= d["high"]
            want = "ahead" if d["low"] > 0 else "behind" if d["high"] < 0 else "not distinguishable"
            assert d["verdict"] == want
        assert f"- {c['sentence']}" in printed and c["sentence"].startswith(target)
    assert "Did pretraining help?" in printed

    # Participant identification across time, for every feature set.
    found = {r["features"]: r for r in rep["retrieval"]}
    assert set(found) == {"embedding", *seeds, "init", "handcrafted"}
    assert all(0 <= r["low"] <= r["top1"] <= r["high"] <= 1 for r in found.values())
    assert "Participant identification across time" in printed


def test_the_ceiling_of_a_synthetic_cohort_for_participant_targets(tiny_run, monkeypatch):
    """The tiny run's (fresh) synthetic dataset has ground truth: a `ceiling` probe for each
    participant target, under the same protocol and on the same participants, none for a
    segment target; the report's fractions follow from its own numbers."""
    from ahms_fm.evaluation import ceiling

    monkeypatch.chdir(tiny_run)
    rep = probe.run_probe(
        "run",
        target_texts="age,age>50,sex,segment.heart_rate",
        out_dir="ceiling",
        baselines="handcrafted,ceiling",
        progress=False,
        probe_overrides={"n_boot": 50},
    )
    participant_targets = {"age": "r2", "age>50": "roc_auc", "sex": "roc_auc"}
    by = {(r["target"], r["features"]): r for r in rep["results"]}
    assert ("segment.heart_rate", "embedding") in by
    assert not [k for k in by if k[0] == "segment.heart_rate" and k[1] == "ceiling"]
    for target in participant_targets:
        mine, emb = by[target, "ceiling"], by[target, "embedding"]
        assert (mine["protocol"], mine["n_test"]) == (emb["protocol"], emb["n_test"])
    md = (tiny_run / "ceiling" / "report.md").read_text()
    rows = {c["target"]: c for c in rep["comparison"]}
    finite = []
    for target, metric in participant_targets.items():
        c = rows[target]
        top = c["ceiling"]["value"]
        assert top == by[target, "ceiling"]["metrics"][metric]["value"]
        chance = ceiling.CHANCE[metric]
        share = c["fraction_of_ceiling"]
        for key in ("embedding", "handcrafted"):  # recomputed from the report's numbers
            want = (c[key]["value"] - chance) / (top - chance) if top > chance else np.nan
            assert share[key] == pytest.approx(want, abs=1e-12, nan_ok=True)
        cells = [f"{share[k]:.2f}" if top > chance else "–" for k in ("embedding", "handcrafted")]
        assert f"| {cells[0]} / – / {cells[1]} |" in md, target  # no random seeds here
        finite += [target] if top > chance else []
    # (60 participants: sex may have no linear trace above chance; its fractions are –.)
    assert {"age", "age>50"} <= set(finite)
    assert rows["segment.heart_rate"]["ceiling"] is None
    assert rows["segment.heart_rate"]["fraction_of_ceiling"] is None
    assert "fraction of ceiling: embedding / best random / hand-crafted" in md
    assert report.CEILING_NOTE in md and "| age | ceiling | crossfit |" in md
    print(md[md.index("Did pretraining help?") :])


def test_no_ceiling_without_ground_truth(tiny_run, tmp_path, monkeypatch):
    """The same dataset with its truth_* fields removed (like a real one, or a synthetic
    one built before they existed): no ceiling row, no column, no error."""
    import shutil

    monkeypatch.chdir(tiny_run)
    path, participants = _dataset(tiny_run)
    copy = tmp_path / "no_truth"
    shutil.copytree(path, copy)
    meta = json.loads((copy / "ahms_fm.json").read_text())
    meta["participants"] = [
        {k: v for k, v in p.items() if not k.startswith("truth_")} for p in meta["participants"]
    ]
    (copy / "ahms_fm.json").write_text(json.dumps(meta))
    assert any(k.startswith("truth_") for k in participants[0])  # the original has them
    rep = probe.run_probe(
        "run",
        dataset_arg=str(copy),
        target_texts="age,sex",
        out_dir=tmp_path / "report",
        baselines="handcrafted,ceiling",
        progress=False,
        probe_overrides={"n_boot": 50},
    )
    assert {(r["target"], r["features"]) for r in rep["results"]} == {
        (t, f) for t in ("age", "sex") for f in ("embedding", "handcrafted")
    }
    assert all(c["ceiling"] is None for c in rep["comparison"])
    assert "ceiling" not in rep["markdown"]


def test_init_baseline_is_the_runs_initialization_recalibrated(tiny_run):
    """`init` holds the step-0 weights (a fresh model from the run's own seed) and gets the
    random seeds' batch-norm treatment: statistics re-estimated on training windows."""
    from ahms_fm.data import dataset
    from ahms_fm.evaluation import baselines, embeddings

    path, _ = _dataset(tiny_run)
    split = dataset.load_split(path, "train")
    x = dataset.read_signals(split, np.arange(32))
    step_dir = embeddings.find_checkpoint(tiny_run / "run")
    trained = embeddings.load_encoder(step_dir)
    config = trained.config
    got = baselines.untrained_encoders(
        config, step_dir, "teacher", x, seeds=[config.seed], passes=40
    )
    assert list(got) == ["random_init/0", "init"]
    init = got["init"]
    fresh = embeddings.random_encoder(config, seed=config.seed)
    close = [
        np.allclose(a, b, atol=1e-6)
        for a, b in zip(jax.tree.leaves(init.params), jax.tree.leaves(fresh.params), strict=True)
    ]
    assert all(close)
    assert not all(
        np.allclose(a, b, atol=1e-6)
        for a, b in zip(jax.tree.leaves(init.params), jax.tree.leaves(trained.params), strict=True)
    )
    # The stem's batch norm holds its input's batch statistics (an independent conv).
    h = np.asarray(jax_conv(x, init.params["encoder"]["stem"]["kernel"]))
    stem = init.stats["encoder"]["stem_bn"]
    np.testing.assert_allclose(stem["mean"], h.mean(axis=(0, 1)), rtol=0.03, atol=0.03 * h.std())
    # (0.9^40 = 1.5% of the initial variance, 1, remains after 40 passes.)
    np.testing.assert_allclose(stem["var"], h.var(axis=(0, 1)), rtol=0.03, atol=0.02)
    assert not np.allclose(stem["var"], 1.0, atol=0.1)  # not the fresh statistics
    # The same treatment as a random seed: the run's seed as a "random" one ends equal.
    for a, b in zip(
        jax.tree.leaves(init.stats), jax.tree.leaves(got["random_init/0"].stats), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_run_without_step_zero_warns_once_and_goes_on(tiny_run, tmp_path, caplog):
    import shutil

    from ahms_fm.evaluation import baselines, embeddings

    shutil.copytree(tiny_run / "run" / "checkpoints" / "4", tmp_path / "checkpoints" / "4")
    step_dir = embeddings.find_checkpoint(tmp_path)
    config = embeddings.load_encoder(step_dir).config
    x = (
        np.random.default_rng(0)
        .normal(size=(8, *embeddings.load_encoder(step_dir).spec_shape))
        .astype(np.float32)
    )
    with caplog.at_level("WARNING"):
        got = baselines.untrained_encoders(config, step_dir, "teacher", x, seeds=[5], passes=2)
    assert list(got) == ["random_init/0"]
    warned = [r for r in caplog.records if "no step-0 checkpoint" in r.getMessage()]
    assert len(warned) == 1 and str(tmp_path) in warned[0].getMessage()


def test_learning_curves_probe_every_kept_checkpoint(tiny_run, monkeypatch):
    from ahms_fm.evaluation import curves, embeddings

    monkeypatch.chdir(tiny_run)
    loaded, baseline_calls = [], []
    load, base = embeddings.load_encoder, probe.baseline_features
    monkeypatch.setattr(
        embeddings, "load_encoder", lambda p, **kw: loaded.append(Path(p).name) or load(p, **kw)
    )
    monkeypatch.setattr(
        probe, "baseline_features", lambda *a, **kw: baseline_calls.append(1) or base(*a, **kw)
    )
    rep = curves.run_curves(
        "run",
        "all",
        target_texts="age,sex",
        out_dir="curves",
        baselines="random_init,init,handcrafted,ceiling",
        progress=False,
        probe_overrides={"n_boot": 50, "random_seeds": 1},
    )
    kept = [0, 2, 4]
    assert rep["steps"] == kept and {"0", "2", "4"} <= set(loaded)
    assert len(baseline_calls) == 1  # the baselines once, not per step
    table = pd.read_csv(tiny_run / "curves" / "curves.csv")
    assert sorted(zip(table.step, table.target, strict=True)) == [
        (s, t) for s in kept for t in ("age", "sex")
    ]  # one row per step and target
    assert list(table.metric[table.target == "age"].unique()) == ["r2"]
    assert (
        table.embedding_low.le(table.embedding).all()
        and table.embedding.le(table.embedding_high).all()
    )
    # Every step its own checkpoint (age; sex at this size is probed by a constant, the
    # strongest penalty of the grid, at every step) ...
    assert table.embedding[table.target == "age"].nunique() == len(kept)
    for target, part in table.groupby("target"):
        for column in ("best_random", "random_min", "random_max", "init", "handcrafted", "ceiling"):
            assert part[column].nunique() == 1, column  # ... the baselines the same
        np.testing.assert_allclose(part.vs_handcrafted, part.embedding - part.handcrafted)
        chance = curves.CHANCE[part.metric.iloc[0]]  # NaN where the ceiling is not above it
        np.testing.assert_allclose(
            part.fraction_of_ceiling,
            np.where(
                part.ceiling > chance, (part.embedding - chance) / (part.ceiling - chance), np.nan
            ),
        )
        assert target != "age" or part.fraction_of_ceiling.notna().all()
    md = (tiny_run / "curves" / "curves.md").read_text()
    assert all(f"| {s} |" in md for s in kept) and "Baselines (probed once)" in md
    assert (tiny_run / "curves" / "curves.png").stat().st_size > 0
    # Chosen steps, and a missing one named with what is kept.
    assert list(curves.select_steps("run", "4,2")) == [2, 4]
    with pytest.raises(FileNotFoundError, match=r"step\(s\) \[3\]; kept: \[0, 2, 4\]"):
        curves.select_steps("run/checkpoints/4", "2,3")


def test_external_validation_trains_on_one_cohort_and_tests_on_another(tiny_run, monkeypatch):
    monkeypatch.chdir(tiny_run)
    path, participants = _dataset(tiny_run)
    split_of = {p["participant"]: p["split"] for p in participants}
    # A participant on both sides is refused, naming both datasets and some ids.
    with pytest.raises(ValueError) as refused:
        probe.run_probe(
            "run",
            train_dataset=f"{path}:train+validation",
            test_dataset=f"{path}:validation+test",
            target_texts="age",
        )
    message = str(refused.value)
    shared = sorted(p for p, s in split_of.items() if s == "validation")
    assert f"{len(shared)} participant id(s)" in message and shared[0] in message
    assert f"{path}:train+validation" in message and f"{path}:validation+test" in message

    rep = probe.run_probe(
        "run",
        train_dataset=f"{path}:train",
        test_dataset=f"{path}:validation+test",
        target_texts="age,sex",
        out_dir="external",
        baselines="random_init,handcrafted",
        progress=False,
        probe_overrides={"n_boot": 50, "random_seeds": 1},
    )
    tested = [p for p, s in split_of.items() if s != "train"]
    trained = [p for p, s in split_of.items() if s == "train"]
    assert {(r["target"], r["features"]) for r in rep["results"]} == {
        (t, f) for t in ("age", "sex") for f in ("embedding", "random_init/0", "handcrafted")
    }
    for r in rep["results"]:
        assert r["protocol"] == "external"
        assert (r["n_train"], r["n_test"]) == (len(trained), len(tested))
    # Every prediction is of a test-side participant, with its own label.
    preds = pd.read_csv(tiny_run / "external" / "predictions.csv")
    table = pd.read_parquet(tiny_run / "external" / "embeddings.parquet")
    who = dict(zip(table.participant_index, table.participant, strict=False))
    age = {p["participant"]: p["age"] for p in participants}
    names = preds.participant_index.map(who)
    assert set(names) == set(tested)
    ages = preds.target == "age"
    np.testing.assert_allclose(preds.y[ages], names[ages].map(age))
    assert [c["target"] for c in rep["comparison"]] == ["age", "sex"]


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
            units.features["noise"],
            y,
            np.array([True, False]),
            units,
            "crossfit",
            folds=5,
            strengths=np.logspace(-1, 6, 8),
            seed=rep,
        )
        assert tested.all()
        aucs.append(stats.roc_auc(y[:, 0], pred[:, 0]))
        rs.append(stats.pearson_r(y[:, 1], pred[:, 1]))
    assert np.mean(aucs) > 0.46 and np.mean(rs) > -0.07  # standard errors 0.005, 0.009


@pytest.mark.parametrize("fit", ["logistic", "ridge"])
def test_crossfit_scores_are_pooled_without_the_folds_intercepts(fit):
    """Where every fold's probe is near-constant (the strongest penalty), pooled raw
    scores rank units by their fold's training prevalence: on noise, with 7 positives
    in 40, the pooled AUC averaged 0.41 over 20 cohorts (logistic; ridge on 0/1 labels,
    as the quick probe fits, alike). Fold-standardized scores put it back at chance;
    within a fold, order and labels are unchanged."""
    from ahms_fm.evaluation import stats

    aucs = []
    for rep in range(20):
        rng = np.random.default_rng(rep)
        n = 40
        y = rng.permutation(np.arange(n) < 7).astype(float)[:, None]
        table = pd.DataFrame({"participant_index": np.arange(n), "split": "train"})
        units = probe.make_units("participant", table, {"noise": rng.normal(size=(n, 8))})
        _, pred, _, _, _ = probe.predictions(
            units.features["noise"],
            y,
            np.array([fit == "logistic"]),
            units,
            "crossfit",
            folds=5,
            strengths=np.array([1e6]),
            seed=rep,
            ranked=[True],
        )
        aucs.append(stats.roc_auc(y[:, 0], pred[:, 0]))
    assert abs(np.mean(aucs) - 0.5) < 0.07  # standard error ~0.04 (0.41 before)

    prob = np.array([0.2, 0.1, 0.35, 0.3, 0.05])
    score, thr = probe.fold_scores(prob, 0.25)
    assert np.array_equal(np.argsort(score), np.argsort(prob))
    assert np.array_equal(score >= thr, prob >= 0.25)
    assert abs(score.mean()) < 1e-12 and abs(score.std() - 1) < 1e-12


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
    np.testing.assert_allclose(got["mean"], h.mean(axis=(0, 1)), rtol=0.03, atol=0.03 * h.std())
    np.testing.assert_allclose(got["var"], h.var(axis=(0, 1)), rtol=0.03)
    assert cal.embed_windows(x).std(0).mean() > 10 * raw.embed_windows(x).std(0).mean()


def jax_conv(x, kernel):
    """The stem: a stride-2 'SAME' convolution without bias, written independently."""
    import jax

    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(2,), padding="SAME", dimension_numbers=("NWC", "WIO", "NWC")
    )


def test_targets_that_cannot_be_probed_are_reported_and_none_is_an_error(tiny_run, monkeypatch):
    """Before: such targets were dropped with a log line; with none left the command wrote
    an empty report, after embedding everything, and exited 0."""
    monkeypatch.chdir(tiny_run)
    embedded = []
    real_embed = probe.embed
    monkeypatch.setattr(probe, "embed", lambda *a, **k: embedded.append(1) or real_embed(*a, **k))
    with pytest.raises(probe.NoTargets) as none:
        probe.run_probe(
            "run",
            target_texts="age>200,hypertension>5",
            out_dir="nothing",
            baselines="",
            progress=False,
        )
    assert none.value.reasons == {
        "age>200": "one class only (every label is 0)",
        "hypertension>5": "one class only (every label is 0)",
    }
    assert not embedded and not (tiny_run / "nothing").exists()  # checked before embedding

    rep = probe.run_probe(
        "run",
        target_texts="age,age>200",
        out_dir="some",
        baselines="",
        progress=False,
        probe_overrides={"n_boot": 50},
    )
    assert rep["skipped"] == {"age>200": "one class only (every label is 0)"}
    assert (
        "Not probed: age>200 (one class only (every label is 0))."
        in (tiny_run / "some" / "report.md").read_text()
    )
    assert {r["target"] for r in rep["results"]} == {"age"}


def test_the_probe_command_exits_non_zero_when_nothing_can_be_probed(tiny_run):
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ahms_fm.evaluation.probe",
            "--checkpoint",
            "run",
            "--targets",
            "age>200",
            "--baselines=",
        ],
        cwd=tiny_run,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "none of the targets can be probed: age>200 (one class only" in done.stderr
