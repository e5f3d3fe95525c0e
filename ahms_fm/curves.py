"""Training curves: `ahms-fm curves RUN [RUN ...]`.

Reads each run's `metrics.jsonl` and writes `training_curves.png` and
`training_curves.csv` (not to be confused with the probe's learning curves,
`ahms-fm probe --steps`, in the probe's report folder): the loss, the
validation representation metrics (`val/effective_rank`,
`val/effective_rank_centered`, `val/retrieval_top1`, `val/uniformity`,
`val/alignment`) and the in-training quick probe (`probe/<target>/<metric>`)
against the step, one panel per metric, the runs overlaid (legend: the runs'
folder names).

Runs that are seeds of one setting are drawn as one curve, the mean over them,
with a band from their minimum to their maximum. They are grouped by `--group
PREFIX` (runs whose name starts with PREFIX), or by default by their names
without a seed: `koleo_weight=0.1,seed=0` and `koleo_weight=0.1,seed=1` (a
sweep's names), or `ppg_seed0` and `ppg_seed1`. The mean is taken at the steps
every run of the group logged (so a seed still training shortens its group's
curve rather than changing the mean's meaning mid-way).

A step logged twice (a run resumed from an earlier checkpoint logs the steps
after it again) counts once, with its later value, as docs/launch.md says.

The CSV is long, one row per value: `kind` (`run`, or `mean` for a group),
`series` (the run's or the group's name), `group` (a run's group, or empty),
`runs` (how many runs the row summarizes), `metric`, `step`, `value`, and `min`
and `max` for groups.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import os
import re
import sys

import numpy as np

from ahms_fm.checkpoint import as_path, is_remote

DEFAULT_METRICS = ("loss", "val/*", "probe/*")
# Panels in this order first, then the other val/*, probe/*, and the rest, sorted.
FIRST = (
    "loss",
    "val/effective_rank",
    "val/effective_rank_centered",
    "val/retrieval_top1",
    "val/uniformity",
    "val/alignment",
)
CSV_HEADER = ("kind", "series", "group", "runs", "metric", "step", "value", "min", "max")

Series = dict[str, dict[int, float]]  # metric -> step -> value


def read_metrics(workdir) -> Series:
    """metric -> {step: value} from `workdir/metrics.jsonl`; a step logged twice keeps its
    later value; lines cut short (a killed run) and non-numbers are skipped."""
    path = as_path(workdir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (is {workdir} a run's workdir?)")
    series: Series = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = record.get("step")
        if not isinstance(step, int):
            continue
        for key, value in record.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                series.setdefault(key, {})[step] = float(value)
    return series


def seed_group(name: str) -> str | None:
    """`name` without its seed (`...,seed=3`, `..._seed3`, `...-seed-3`), or None."""
    parts = name.split(",")
    kept = [p for p in parts if not re.fullmatch(r"seed=\d+", p)]
    if len(kept) < len(parts):
        return ",".join(kept) or "seed"
    stripped = re.sub(r"[_.\-]?seed[_=\-]?\d+$", "", name, flags=re.IGNORECASE)
    if stripped != name:
        return stripped or "seed"
    return None


def group_runs(names: list[str], prefixes=(), auto: bool = True) -> dict[str, list[str]]:
    """{group: its runs} for groups of two runs or more, in the order first seen: runs
    starting with one of `prefixes` (the first that matches), else, if `auto`, runs with
    the same name but for the seed."""
    groups: dict[str, list[str]] = {}
    for name in names:
        key = next((p for p in prefixes if name.startswith(p)), None)
        if key is None and auto:
            key = seed_group(name)
        if key is not None:
            groups.setdefault(key, []).append(name)
    return {k: v for k, v in groups.items() if len(v) > 1}


def aggregate(members: list[dict[int, float]]) -> dict[int, tuple[float, float, float]]:
    """step -> (mean, min, max) over the runs, at the steps all of them logged."""
    steps = sorted(set.intersection(*(set(m) for m in members)))
    out = {}
    for step in steps:
        values = np.array([m[step] for m in members])
        out[step] = (float(values.mean()), float(values.min()), float(values.max()))
    return out


def select_metrics(runs: dict[str, Series], patterns=DEFAULT_METRICS) -> list[str]:
    """The metrics any run logged that match a glob of `patterns`, in panel order."""
    found = {
        k
        for series in runs.values()
        for k in series
        if any(fnmatch.fnmatchcase(k, p) for p in patterns)
    }

    def order(k):
        section = (
            0 if k in FIRST else 1 if k.startswith("val/") else 2 if k.startswith("probe/") else 3
        )
        return section, FIRST.index(k) if k in FIRST else 0, k

    return sorted(found, key=order)


def run_names(workdirs) -> list[str]:
    """Each run's folder name; the path below the runs' common folder where two share one."""
    names = [as_path(w).name for w in workdirs]
    if len(set(names)) == len(names):
        return names
    paths = [str(as_path(w)) for w in workdirs]
    common = os.path.commonpath(paths) if not any(map(is_remote, paths)) else ""
    return [os.path.relpath(p, common) if common else p for p in paths]


def table(runs: dict[str, Series], groups: dict[str, list[str]], metrics: list[str]) -> list:
    """The CSV's rows (without its header): every run's values, then every group's mean."""
    group_of = {name: g for g, names in groups.items() for name in names}
    rows = []
    for name, series in runs.items():
        for metric in metrics:
            for step, value in sorted(series.get(metric, {}).items()):
                rows.append(["run", name, group_of.get(name, ""), 1, metric, step, value, "", ""])
    for group, names in groups.items():
        for metric in metrics:
            members = [runs[n][metric] for n in names if metric in runs[n]]
            if len(members) < len(names):
                continue  # not logged by every run of the group
            for step, (mean, lo, hi) in aggregate(members).items():
                rows.append(["mean", group, group, len(names), metric, step, mean, lo, hi])
    return rows


def plot(runs: dict[str, Series], groups: dict[str, list[str]], metrics: list[str]):
    """A matplotlib Figure (no pyplot): one panel per metric, a line per run, the mean and
    a min-max band per group."""
    from matplotlib.figure import Figure

    # One colour per curve: a group, or a run in none; in the order first seen.
    curves, seen = [], set()
    for name in runs:
        group = next((g for g, names in groups.items() if name in names), None)
        if group is None:
            curves.append((name, None))
        elif group not in seen:
            seen.add(group)
            curves.append((group, groups[group]))
    cols = min(len(metrics), 3)
    rows = -(-len(metrics) // cols)
    fig = Figure(
        figsize=(4.4 * cols, 3.3 * rows + 0.3 * (1 + len(curves) // 3)), layout="constrained"
    )
    axes = fig.subplots(rows, cols, squeeze=False).flat
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    handles = {}
    for ax, metric in zip(axes, metrics, strict=False):
        for i, (label, members) in enumerate(curves):
            colour = f"C{i % 10}"
            if members is None:  # a run
                values = runs[label].get(metric, {})
                stats = {s: (v, v, v) for s, v in values.items()}
            elif all(metric in runs[n] for n in members):
                stats = aggregate([runs[n][metric] for n in members])
            else:
                stats = {}
            if not stats:
                continue
            steps = sorted(stats)
            mean, lo, hi = (np.array([stats[s][k] for s in steps]) for k in range(3))
            (line,) = ax.plot(
                steps, mean, color=colour, lw=1.4, ms=3, marker="o" if len(steps) <= 40 else None
            )
            if members is None:
                handles.setdefault(label, line)
            else:
                band = ax.fill_between(steps, lo, hi, color=colour, alpha=0.25, lw=0)
                handles.setdefault(f"{label} (mean of {len(members)}, min-max)", (line, band))
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncol=min(3, len(handles)),
            fontsize=8,
            frameon=False,
        )
    return fig


def curves(
    workdirs, out=None, *, prefixes=(), auto_group=True, metrics=DEFAULT_METRICS
) -> tuple[str, str]:
    """Write `out`/training_curves.png and training_curves.csv for the runs in `workdirs`;
    return their paths. `out` defaults to the run's folder (one run) or the runs' common folder."""
    workdirs = [str(w) for w in workdirs]
    if not workdirs:
        raise ValueError("no runs given")
    names = run_names(workdirs)
    runs = {name: read_metrics(w) for name, w in zip(names, workdirs, strict=True)}
    chosen = select_metrics(runs, metrics)
    if not chosen:
        raise ValueError(
            f"no metric matching {', '.join(metrics)} in "
            f"{', '.join(w + '/metrics.jsonl' for w in workdirs)}"
        )
    groups = group_runs(names, prefixes, auto=auto_group)
    if out is None:
        if len(workdirs) == 1:
            out = workdirs[0]
        elif any(map(is_remote, workdirs)):
            raise ValueError("runs in Cloud Storage: say where the curves go (--out)")
        else:
            out = os.path.commonpath([os.path.abspath(w) for w in workdirs])
    folder = as_path(out)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(table(runs, groups, chosen))
    (folder / "training_curves.csv").write_text(buffer.getvalue())
    image = io.BytesIO()
    plot(runs, groups, chosen).savefig(image, format="png", dpi=110)
    (folder / "training_curves.png").write_bytes(image.getvalue())
    return str(folder / "training_curves.png"), str(folder / "training_curves.csv")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Plot and tabulate training curves (loss, validation metrics, "
        "quick probe) from runs' metrics.jsonl; seeds of one setting as their mean with a "
        "min-max band.",
    )
    p.add_argument("workdirs", nargs="+", metavar="RUN", help="A run's workdir.")
    p.add_argument(
        "--out",
        help="Folder for training_curves.png and training_curves.csv "
        "(default: the run's folder, or the runs' common folder).",
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="PREFIX",
        help="Runs whose name starts with PREFIX are seeds of one setting "
        "(repeatable). Without it: runs named alike but for their seed.",
    )
    p.add_argument("--no-group", "--no_group", action="store_true", help="Every run its own curve.")
    p.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help="Comma-separated globs of metrics to plot (default: %(default)s).",
    )
    return p


def run(argv=None) -> int:
    """Command line `ahms-fm curves`."""
    argv = sys.argv if argv is None else argv
    args = _parser(argv[0]).parse_args(argv[1:])
    try:
        png, table_path = curves(
            args.workdirs,
            args.out,
            prefixes=tuple(args.group),
            auto_group=not args.no_group and not args.group,
            metrics=tuple(m for m in args.metrics.split(",") if m),
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"ahms-fm curves: {e}", file=sys.stderr)
        return 2
    print(f"written: {png}, {table_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
