"""Training curves (`ahms-fm curves`) from metrics.jsonl files written here, whose values
are known; tests/test_train.py reads a real run's."""

import csv
import json
import sys

import numpy as np
import pytest

from ahms_fm import cli, curves

VAL = (
    "val/effective_rank",
    "val/effective_rank_centered",
    "val/retrieval_top1",
    "val/uniformity",
    "val/alignment",
)


def _value(run: int, metric: str, step: int) -> float:
    """A distinct, known number for each run, metric and step."""
    return 100.0 * run + 10.0 * (*VAL, "loss", "probe/age/mae").index(metric) + step / 8


def _lines(run: int, last: int = 6, val_steps=(0, 3, 6)) -> list[dict]:
    """What train.py logs: val/* rows, loss rows (with other training scalars) every step,
    quick-probe rows."""
    lines = []
    for step in range(0, last + 1):
        if step in val_steps:
            lines.append({"step": step, **{m: _value(run, m, step) for m in VAL}})
        if step:
            lines.append(
                {
                    "step": step,
                    "loss": _value(run, "loss", step),
                    "learning_rate": 1e-3,
                    "steps_per_second": 2.0,
                }
            )
        if step in (3, 6):
            lines.append({"step": step, "probe/age/mae": _value(run, "probe/age/mae", step)})
    return lines


def _write_run(folder, run: int, **kwargs) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _lines(run, **kwargs))
    )


def _read_csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def runs(tmp_path):
    """Three seeds of one setting (the third stopped at step 5, without its step-6
    evaluation; the second resumed from step 3, so it logged steps 4 and 5 twice, the first
    time with other numbers, and was killed mid-line once) and one run of another setting."""
    root = tmp_path / "runs"
    _write_run(root / "ppg_seed0", 0)
    # Seed 1: killed mid-line after step 5, resumed from its step-3 checkpoint.
    lines = _lines(1)
    first = [r for r in lines if r["step"] <= 3] + [
        {"step": 4, "loss": -1.0},
        {"step": 5, "loss": -1.0},
    ]
    then = [r for r in lines if r["step"] > 3]
    (root / "ppg_seed1").mkdir(parents=True)
    (root / "ppg_seed1" / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in first)
        + '{"step": 6, "lo\n'
        + "".join(json.dumps(r) + "\n" for r in then)
    )
    _write_run(root / "ppg_seed2", 2, last=5, val_steps=(0, 3))
    _write_run(root / "simclr", 3)
    return root


def test_read_metrics_keeps_the_later_value_of_a_step_logged_twice(runs):
    series = curves.read_metrics(runs / "ppg_seed1")
    assert series["loss"] == {s: _value(1, "loss", s) for s in range(1, 7)}
    assert series["val/retrieval_top1"] == {
        s: _value(1, "val/retrieval_top1", s) for s in (0, 3, 6)
    }
    assert "step" not in series


def test_csv_has_every_run_and_the_seed_mean_with_min_and_max(runs, tmp_path):
    png, table = curves.curves(
        [runs / n for n in ("ppg_seed0", "ppg_seed1", "ppg_seed2", "simclr")], tmp_path / "out"
    )
    rows = _read_csv(table)
    assert set(rows[0]) == set(curves.CSV_HEADER)
    # Every value of every run, under its folder's name, with its group.
    got = {
        (r["series"], r["metric"], int(r["step"])): float(r["value"])
        for r in rows
        if r["kind"] == "run"
    }
    want = {}
    for run, name, last, val in [
        (0, "ppg_seed0", 6, (0, 3, 6)),
        (1, "ppg_seed1", 6, (0, 3, 6)),
        (2, "ppg_seed2", 5, (0, 3)),
        (3, "simclr", 6, (0, 3, 6)),
    ]:
        want.update({(name, "loss", s): _value(run, "loss", s) for s in range(1, last + 1)})
        want.update({(name, m, s): _value(run, m, s) for m in VAL for s in val})
        want.update(
            {
                (name, "probe/age/mae", s): _value(run, "probe/age/mae", s)
                for s in (3, 6)
                if s <= last
            }
        )
    assert got == want  # learning_rate and the like are not plotted by default
    assert {r["group"] for r in rows if r["series"].startswith("ppg")} == {"ppg"}
    assert {r["group"] for r in rows if r["series"] == "simclr"} == {""}
    # The seeds' mean, min and max, at the steps all three logged.
    means = {(r["metric"], int(r["step"])): r for r in rows if r["kind"] == "mean"}
    assert {r["series"] for r in means.values()} == {"ppg"}
    assert {r["runs"] for r in means.values()} == {"3"}
    assert sorted(s for m, s in means if m == "loss") == [1, 2, 3, 4, 5]
    assert sorted(s for m, s in means if m == "val/effective_rank") == [0, 3]
    assert sorted(s for m, s in means if m == "probe/age/mae") == [3]
    for metric, step in [("loss", 4), ("val/alignment", 3), ("probe/age/mae", 3)]:
        values = [_value(run, metric, step) for run in range(3)]
        row = means[metric, step]
        np.testing.assert_allclose(
            [float(row["value"]), float(row["min"]), float(row["max"])],
            [np.mean(values), min(values), max(values)],
            rtol=1e-12,
        )
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "training_curves.png").stat().st_size > 10_000


def test_figure_panels_and_legend(runs):
    names = ["ppg_seed0", "ppg_seed1", "ppg_seed2", "simclr"]
    series = {n: curves.read_metrics(runs / n) for n in names}
    metrics = curves.select_metrics(series)
    assert metrics == ["loss", *VAL, "probe/age/mae"]
    fig = curves.plot(series, curves.group_runs(names), metrics)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == metrics
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "ppg (mean of 3, min-max)",
        "simclr",
    ]
    loss = visible[0]
    assert len(loss.lines) == 2 and len(loss.collections) == 1  # two curves, one band
    np.testing.assert_allclose(
        loss.lines[1].get_ydata(), [_value(3, "loss", s) for s in range(1, 7)]
    )
    ungrouped = curves.plot(series, {}, metrics)
    assert [t.get_text() for t in ungrouped.legends[0].get_texts()] == names


def test_grouping_by_seed_or_by_prefix():
    assert curves.seed_group("koleo_weight=0.1,seed=2") == "koleo_weight=0.1"
    assert curves.seed_group("seed=2,lr=0.001") == "lr=0.001"
    assert curves.seed_group("ppg_seed3") == curves.seed_group("ppg-seed-4") == "ppg"
    assert curves.seed_group("ppg") is None
    assert curves.seed_group("seed=1") == "seed"
    names = ["a,seed=0", "a,seed=1", "b,seed=0", "lr_x", "lr_y", "c"]
    assert curves.group_runs(names) == {"a": ["a,seed=0", "a,seed=1"]}  # b alone: no group
    assert curves.group_runs(names, prefixes=("lr_",), auto=False) == {"lr_": ["lr_x", "lr_y"]}
    assert curves.group_runs(names, auto=False) == {}


def test_command_line(runs, tmp_path, monkeypatch, capsys):
    def ahms_fm(*args):
        monkeypatch.setattr(sys, "argv", ["ahms-fm", "curves", *map(str, args)])
        return cli.run()

    # Several runs: the files go to their common folder.
    assert ahms_fm(runs / "ppg_seed0", runs / "ppg_seed1", "--metrics", "loss,learning_rate") == 0
    assert f"written: {runs / 'training_curves.png'}" in capsys.readouterr().out
    rows = _read_csv(runs / "training_curves.csv")
    assert {r["metric"] for r in rows} == {"loss", "learning_rate"}
    assert {r["series"] for r in rows if r["kind"] == "mean"} == {"ppg"}
    # --no-group: no mean; --group PREFIX: the runs starting with it.
    assert ahms_fm(runs / "ppg_seed0", runs / "simclr", "--no-group", "--out", tmp_path / "a") == 0
    rows = _read_csv(tmp_path / "a" / "training_curves.csv")
    assert rows and not [r for r in rows if r["kind"] == "mean"]
    _write_run(runs / "warmup_a", 4)
    _write_run(runs / "warmup_b", 5)
    assert (
        ahms_fm(
            *(runs / n for n in ("warmup_a", "warmup_b", "ppg_seed0", "ppg_seed1")),
            "--group",
            "warm",
            "--out",
            tmp_path / "b",
        )
        == 0
    )
    rows = _read_csv(tmp_path / "b" / "training_curves.csv")
    means = [r for r in rows if r["kind"] == "mean"]
    assert {(r["series"], r["runs"]) for r in means} == {("warm", "2")}  # no seed grouping
    loss = {int(r["step"]): float(r["value"]) for r in means if r["metric"] == "loss"}
    assert loss == {s: (_value(4, "loss", s) + _value(5, "loss", s)) / 2 for s in range(1, 7)}
    # One run: its own folder.
    assert ahms_fm(runs / "simclr") == 0
    assert (runs / "simclr" / "training_curves.png").stat().st_size > 0
    # Not a run: a clear error, exit status 2.
    assert ahms_fm(tmp_path / "nothing") == 2
    assert "nothing/metrics.jsonl: no such file" in capsys.readouterr().err
    assert ahms_fm(runs / "simclr", "--metrics", "nope/*") == 2
    assert "no metric matching nope/*" in capsys.readouterr().err
