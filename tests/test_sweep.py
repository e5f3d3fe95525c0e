"""Sweeps: axes (product, zip, variants), expansion into named runs with checked overrides,
the commands a sweep runs (here and through a launcher), and the summary table.

No training here: expansion only loads configs; the summary reads fake metrics files.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from ahms_fm import cli, config_utils
from ahms_fm import sweep as sw
from ahms_fm.sweep import SweepError, product, values, variants, zip_

PPG = str(ROOT / "configs" / "ppg.py")


def _sweep_file(tmp_path, body: str, name="demo") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(
        "from ahms_fm.sweep import chain, product, values, variants, zip_\n\n"
        f"PPG = {PPG!r}\n\ndef get_sweep():\n    return {body}\n"
    )
    return str(path)


def _expand(tmp_path, body: str, root="runs/x"):
    return sw.expand(sw.load_sweep(_sweep_file(tmp_path, body)), root)


def test_product_and_zip_expand_in_order():
    axis = product(
        values("a.x", [1, 2]), zip_(values("b.y", ["p", "q", "r"]), values("c.z", [0.1, 0.2, 0.3]))
    )
    assert len(axis) == 2 * 3
    assert [dict(p.overrides) for p in axis[:4]] == [
        {"a.x": 1, "b.y": "p", "c.z": 0.1},
        {"a.x": 1, "b.y": "q", "c.z": 0.2},
        {"a.x": 1, "b.y": "r", "c.z": 0.3},
        {"a.x": 2, "b.y": "p", "c.z": 0.1},
    ]
    assert len(product(values("a.x", [1, 2]), values("b.y", [1, 2, 3]), variants(["", "v"]))) == 12
    with pytest.raises(SweepError, match=r"different lengths \[2, 3\]"):
        zip_(values("a.x", [1, 2]), values("b.y", [1, 2, 3]))
    with pytest.raises(SweepError, match=r"\['a.x'\] set by two axes"):
        product(values("a.x", [1]), values("a.x", [2]))


def test_names_are_readable_unique_and_stable(tmp_path):
    body = (
        '{"config": PPG + ":tiny", "name": "lr", "sweep": product('
        'values("loss.koleo_weight", [0.0, 0.1]), '
        'zip_(values("optimizer.learning_rate", [1e-3, 3e-4]), '
        'values("input.band_hz", [(0.5, 8.0), (1.0, 4.0)])))}'
    )
    runs = _expand(tmp_path, body)
    assert [r.name for r in runs] == [
        "lr/koleo_weight=0.0,learning_rate=0.001,band_hz=0.5_8.0",
        "lr/koleo_weight=0.0,learning_rate=0.0003,band_hz=1.0_4.0",
        "lr/koleo_weight=0.1,learning_rate=0.001,band_hz=0.5_8.0",
        "lr/koleo_weight=0.1,learning_rate=0.0003,band_hz=1.0_4.0",
    ]
    assert runs[1].workdir == "runs/x/lr/koleo_weight=0.0,learning_rate=0.0003,band_hz=1.0_4.0"
    assert runs[1].columns == (
        ("koleo_weight", "0.0"),
        ("learning_rate", "0.0003"),
        ("band_hz", "1.0_4.0"),
    )
    assert [r.name for r in _expand(tmp_path, body)] == [r.name for r in runs]  # stable
    # Same-named keys keep enough of their path to tell them apart.
    assert sw._short_columns(["head.dropout", "model.dropout", "loss.koleo_weight"]) == {
        "head.dropout": "head.dropout",
        "model.dropout": "model.dropout",
        "loss.koleo_weight": "koleo_weight",
    }
    with pytest.raises(SweepError, match="two runs named 'seed=1'"):
        _expand(tmp_path, '{"config": PPG, "sweep": values("seed", [1, "1"])}')


def test_unknown_keys_and_bad_values_are_refused_naming_them(tmp_path):
    path = _sweep_file(
        tmp_path, '{"config": PPG + ":tiny", "sweep": values("optimizer.lr", [1e-3])}', name="typo"
    )
    with pytest.raises(SweepError) as e:
        sw.expand(sw.load_sweep(path))
    assert "unknown config key 'optimizer.lr'" in str(e.value)
    assert path in str(e.value) and "optimizer has: adam_eps, grad_clip_norm, learning_rate" in (
        str(e.value)
    )
    with pytest.raises(SweepError, match=r"did you mean 'optimizer\.learning_rate'"):
        _expand(tmp_path, '{"config": PPG, "sweep": values("optimiser.learning_rate", [1e-3])}')
    with pytest.raises(SweepError, match=r"num_steps=1\.5"):
        _expand(tmp_path, '{"config": PPG, "sweep": values("num_steps", [1.5])}')
    with pytest.raises(SweepError, match="unknown config variant"):
        _expand(tmp_path, '{"config": PPG, "sweep": variants(["nope"])}')
    with pytest.raises(SweepError, match="unknown: \\['sweeps'\\]"):
        _expand(tmp_path, '{"config": PPG, "sweeps": variants([""])}')


def test_variants_axis_extends_the_config_string(tmp_path):
    runs = _expand(
        tmp_path,
        '{"config": PPG + ":tiny", "name": "abl", "sweep": product('
        'variants(["", "no_koleo", "simclr,byol"]), values("seed", [0]))}',
    )
    assert [r.name for r in runs] == [
        "abl/recipe,seed=0",
        "abl/no_koleo,seed=0",
        "abl/simclr+byol,seed=0",
    ]
    assert [r.config for r in runs] == [
        f"{PPG}:tiny",
        f"{PPG}:tiny,no_koleo",
        f"{PPG}:tiny,simclr,byol",
    ]
    config = config_utils.load(runs[2].config, runs[2].flags)
    assert (config.teacher.kind, config.loss.name, config.num_steps) == ("none", "byol", 8)


@pytest.mark.parametrize("name", ["ablations", "learning_rate"])
def test_every_run_of_the_shipped_sweeps_loads_with_its_overrides(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # their config paths are relative to the checkout
    sweep = sw.load_sweep(f"configs/sweeps/{name}.py")
    runs = sw.expand(sweep)
    assert len(runs) == {"ablations": 15, "learning_rate": 9}[name]
    assert len({r.workdir for r in runs}) == len(runs)
    for run, point in zip(runs, sweep.points, strict=True):
        config = config_utils.load(run.config, run.flags)
        for key, value in sweep.overrides + point.overrides:
            node = config
            for part in key.split("."):
                node = node[part]
            assert node == value, (run.name, key)
    if name == "ablations":
        # 3 seeds x 5 variants, seeds outermost; every run at the study scale, 600 steps.
        loaded = config_utils.load(runs[7].config, runs[7].flags)
        assert runs[7].name == "ablations/seed=1,no_koleo"
        assert (loaded.loss.koleo_weight, loaded.seed, loaded.num_steps) == (0.0, 1, 600)
        assert loaded.loss.temperature == 0.1 and loaded.input.window_seconds == 20.0


def _run_cli(capsys, *args) -> tuple[int, list[str]]:
    code = sw.run(["ahms-fm sweep", *args])
    return code, capsys.readouterr().out.splitlines()


def test_dry_run_prints_one_command_per_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = _sweep_file(
        tmp_path,
        '{"config": PPG + ":tiny", "name": "abl", "sweep": variants('
        '["", "no_koleo", "byol"]), "overrides": {"data.participants": 32}}',
    )
    root = tmp_path / "runs"
    (root / "abl" / "byol" / "checkpoints" / "3" / "state").mkdir(parents=True)  # complete: 3 of 3
    (root / "abl" / "no_koleo" / "checkpoints" / "1" / "state").mkdir(parents=True)  # 1 of 3
    code, lines = _run_cli(
        capsys, "--sweep", path, "--root", str(root), "--dry-run", "--config.num_steps=3"
    )
    assert code == 0
    common = "--config.data.participants=32 --config.num_steps=3"
    wd = root / "abl"
    assert lines == [
        "# [1/3] abl/recipe: training",
        f"{sys.executable} -m ahms_fm.main --config {PPG}:tiny --workdir {wd}/recipe {common}",
        "# [2/3] abl/no_koleo: resuming from step 1",
        f"{sys.executable} -m ahms_fm.main --config {PPG}:tiny,no_koleo --workdir "
        f"{wd}/no_koleo {common}",
        "# [3/3] abl/byol: complete",
    ]
    code, lines = _run_cli(
        capsys,
        "--sweep",
        path,
        "--root",
        str(root),
        "--dry-run",
        "--launcher",
        "slurm",
        "--only",
        "no_koleo,abl/byol",
        "--launcher_args=--nodes=2 --job-name={sweep}-{run}-{index}",
        "--config.num_steps=2",
    )
    assert lines == [
        f"launch/slurm --nodes=2 --job-name=abl-no_koleo-2 --config {PPG}:tiny,no_koleo "
        f"--workdir {wd}/no_koleo --config.data.participants=32 --config.num_steps=2",
        "# abl/byol: complete, skipped",
    ]
    # Through the `ahms-fm` entry point, with the probe after training.
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "ahms-fm",
            "sweep",
            "--sweep",
            path,
            "--root",
            str(root),
            "--only",
            "recipe",
            "--dry-run",
            "--probe",
        ],
    )
    assert cli.run() == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{sys.executable} -m ahms_fm.evaluation.probe --checkpoint {wd}/recipe"
    )
    assert sw.run(["ahms-fm sweep", "--sweep", path, "--config.nope=1"]) == 2  # unknown key
    assert "unknown config key 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not key=value
        sw.run(["ahms-fm sweep", "--sweep", path, "--config.num_steps", "3"])


def test_a_local_sweep_goes_on_after_a_failed_run(tmp_path, monkeypatch):
    runs = _expand(
        tmp_path, '{"config": PPG + ":tiny", "sweep": values("seed", [0, 1, 2])}', root=tmp_path
    )
    called = []

    def fake_run(cmd):
        called.append(cmd)
        return subprocess.CompletedProcess(cmd, 1 if "--config.seed=1" in cmd else 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    lines = []
    assert sw.run_local(runs, probe=True, out=lines.append) == ["demo/seed=1"]
    # seed=0: train, probe; seed=1: train fails, no probe; seed=2: train, probe.
    assert [c[2] for c in called] == [
        "ahms_fm.main",
        "ahms_fm.evaluation.probe",
        "ahms_fm.main",
        "ahms_fm.main",
        "ahms_fm.evaluation.probe",
    ]
    assert lines[-4].startswith("# demo/seed=1: failed")


def _write_run(workdir: Path, records, report=None, step=None):
    workdir.mkdir(parents=True)
    (workdir / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records) + '{"step": 9, "lo'
    )  # cut short
    if step is not None:
        (workdir / "checkpoints" / str(step) / "state").mkdir(parents=True)
    if report is not None:
        (workdir / "probe").mkdir()
        (workdir / "probe" / "report.json").write_text(json.dumps(report))


def test_summary_places_metrics_and_marks_missing_ones(tmp_path, capsys):
    path = _sweep_file(
        tmp_path,
        '{"config": PPG + ":tiny", "name": "s", "sweep": '
        'values("loss.koleo_weight", [0.0, 0.1, 0.3])}',
    )
    wd = tmp_path / "runs" / "s"
    result = lambda v: {"value": v, "low": v - 0.1, "high": v + 0.1, "n": 10}  # noqa: E731
    _write_run(
        wd / "koleo_weight=0.0",
        [
            {"step": 4, "loss": 5.0, "steps_per_second": 3.0},
            {"step": 4, "val/retrieval_top1": 0.25},
            {"step": 8, "loss": 4.5},
            {"step": 8, "val/retrieval_top1": 0.5, "probe/age/mae": 9.0},
        ],
        step=8,
        report={
            "step": 8,
            "results": [
                {
                    "target": "age",
                    "kind": "regression",
                    "features": "embedding",
                    "metrics": {"mae": result(8.25), "r2": result(0.3), "pearson_r": result(0.5)},
                },
                {
                    "target": "age",
                    "kind": "regression",
                    "features": "handcrafted",
                    "metrics": {"mae": result(1.0), "r2": result(0.9)},
                },
                {
                    "target": "sex",
                    "kind": "binary",
                    "features": "embedding",
                    "metrics": {"roc_auc": result(0.75)},
                },
            ],
        },
    )
    _write_run(wd / "koleo_weight=0.1", [{"step": 4, "loss": 6.0}], step=4)  # partial
    code, lines = _run_cli(capsys, "--sweep", path, "--root", str(tmp_path / "runs"), "--summary")
    assert code == 0
    table = (wd / "summary.md").read_text().splitlines()
    assert lines[:5] == table
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert rows[0] == [
        "run",
        "koleo_weight",
        "status",
        "loss",
        "val/retrieval_top1",
        "probe/age/mae",
        "report/age/mae",
        "report/age/r2",
        "report/sex/roc_auc",
    ]
    assert rows[2] == ["koleo_weight=0.0", "0.0", "done", "4.5", "0.5", "9", "8.25", "0.3", "0.75"]
    assert rows[3] == ["koleo_weight=0.1", "0.1", "4/8", "6", "–", "–", "–", "–", "–"]
    assert rows[4] == ["koleo_weight=0.3", "0.3", "not started", "–", "–", "–", "–", "–", "–"]
    with open(wd / "summary.csv") as f:
        table = list(csv.reader(f))
    assert table[2] == ["koleo_weight=0.1", "0.1", "4/8", "6.0", "", "", "", "", ""]
    header, _ = sw.summarize(
        sw.expand(sw.load_sweep(path), tmp_path / "runs"), metrics=["loss", "report/*/r2"]
    )
    assert header == ["run", "koleo_weight", "status", "loss", "report/age/r2"]


def test_grouped_summary_pools_seeds_with_t_intervals_and_paired_differences(tmp_path, capsys):
    from scipy import stats

    path = _sweep_file(
        tmp_path,
        '{"config": PPG + ":tiny", "name": "g", "sweep": product('
        'values("seed", [0, 1, 2, 3]), variants(["", "no_koleo"])), '
        '"probe_args": ["--baselines="], "overrides": {"num_steps": 3}}',
    )
    runs = sw.expand(sw.load_sweep(path), tmp_path / "runs")
    assert runs[0].probe_command()[-1] == "--baselines="
    loss = {
        ("recipe", 0): 4.0,
        ("recipe", 1): 5.0,
        ("recipe", 2): 6.0,
        ("no_koleo", 0): 4.5,
        ("no_koleo", 1): 6.0,
        ("no_koleo", 2): 7.5,
    }
    for (variant, seed), v in loss.items():
        _write_run(
            tmp_path / "runs" / "g" / f"seed={seed},{variant}", [{"step": 3, "loss": v}], step=3
        )
    # A run still in progress (checkpoint 1 of 3) is left out of the pooled numbers.
    _write_run(tmp_path / "runs" / "g" / "seed=3,recipe", [{"step": 1, "loss": 100.0}], step=1)
    code, lines = _run_cli(capsys, "--sweep", path, "--root", str(tmp_path / "runs"), "--summary")
    assert code == 0
    records = {r["group"]: r for r in sw.summarize_groups(runs, ["loss"])}
    assert list(records) == ["recipe", "no_koleo"]
    recipe, other = records["recipe"], records["no_koleo"]
    # Independent reference: scipy's t interval of the mean.
    lo, hi = stats.t.interval(0.95, 2, loc=5.0, scale=stats.sem([4.0, 5.0, 6.0]))
    assert recipe["n"] == 3 and recipe["mean"] == pytest.approx(5.0)
    assert (recipe["low"], recipe["high"]) == pytest.approx((lo, hi))
    # Paired by seed: differences 0.5, 1.0, 1.5.
    lo, hi = stats.t.interval(0.95, 2, loc=1.0, scale=stats.sem([0.5, 1.0, 1.5]))
    assert other["diff"] == pytest.approx(1.0)
    assert (other["diff_low"], other["diff_high"]) == pytest.approx((lo, hi))
    text = (tmp_path / "runs" / "g" / "groups.md").read_text()
    assert "| no_koleo | 6 [" in text and "Difference from recipe, paired by seed" in text
    assert (tmp_path / "runs" / "g" / "groups.png").stat().st_size > 0
    assert any("groups.md" in line for line in lines)


def test_probe_args_must_be_a_list_of_strings(tmp_path):
    path = _sweep_file(
        tmp_path,
        '{"config": PPG + ":tiny", "sweep": values("seed", [0]), "probe_args": "--baselines="}',
    )
    with pytest.raises(SweepError, match="probe_args"):
        sw.load_sweep(path)
