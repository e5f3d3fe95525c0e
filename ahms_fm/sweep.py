"""Sweeps: many training runs from one config, varying some of its keys.

A sweep file (`ahms_fm/configs/sweeps/*.py`, named or by path) defines `get_sweep()`,
returning a dict:

    from ahms_fm.sweep import product, values, zip_

    def get_sweep():
        return {
            "config": "configs/ppg.py:runlocal",
            "sweep": product(values("loss.koleo_weight", [0.0, 0.1]),
                             zip_(values("optimizer.learning_rate", [1e-3, 3e-4]),
                                  values("schedule.warmup_steps", [0, 10]))),
        }

`expand` turns it into runs, each with a name, a workdir and `--config.key=value`
overrides, checked against the config exactly as `python -m ahms_fm.main` applies
them. `ahms-fm sweep` trains the runs one after another (or submits one job each
through `launch/<launcher>`) and tabulates their metrics. See docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import difflib
import fnmatch
import importlib.util
import io
import itertools
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

from ahms_fm import config_utils

# The keys a sweep file's dict may hold; anything else is a typo.
SWEEP_KEYS = ("config", "sweep", "name", "overrides", "metrics", "probe_args", "group_over")
REPO = Path(__file__).resolve().parents[1]


class SweepError(ValueError):
    """A sweep that cannot be expanded: the message names the key and the sweep file."""


# ----------------------------------------------------------------------------
# Axes: values, variants, and their product, zip and chain.
# ----------------------------------------------------------------------------


class Label(NamedTuple):
    """How a point shows in run names and the summary: `column=text`, or `text` alone."""

    column: str
    text: str
    keyed: bool = True


@dataclasses.dataclass(frozen=True)
class Point:
    """One setting of the swept keys: config overrides, config variants, labels."""

    overrides: tuple[tuple[str, Any], ...] = ()
    variants: tuple[str, ...] = ()
    labels: tuple[Label, ...] = ()

    def __add__(self, other: Point) -> Point:
        keys = {k for k, _ in self.overrides} & {k for k, _ in other.overrides}
        if keys:
            raise SweepError(f"config key(s) {sorted(keys)} set by two axes")
        columns = {c.column for c in self.labels} & {c.column for c in other.labels}
        if columns:
            raise SweepError(f"column(s) {sorted(columns)} labelled by two axes; "
                             "give one of them name=...")
        return Point(self.overrides + other.overrides, self.variants + other.variants,
                     self.labels + other.labels)


Axis = tuple[Point, ...]


def values(key: str, vals, *, labels=None, name: str | None = None) -> Axis:
    """An axis over one config key (dotted, e.g. "optimizer.learning_rate").

    `labels` replaces each value's text in run names (e.g. for tuples); `name` the
    column (default: the key, shortened to its shortest unambiguous ending).
    """
    vals = list(vals)
    labels = [_text(v) for v in vals] if labels is None else [str(s) for s in labels]
    if not vals or len(labels) != len(vals):
        raise SweepError(f"values({key!r}): need values, and one label per value")
    return tuple(Point(overrides=((key, v),), labels=(Label(name or key, s),))
                 for v, s in zip(vals, labels, strict=True))


def variants(names, *, labels=None, name: str = "variant") -> Axis:
    """An axis over config variants, appended to the config's `:variant` list.

    "" is the config as given, labelled "recipe"; "a,b" applies both, labelled "a+b".
    Run names show the label alone, without a column name.
    """
    names = list(names)
    if labels is None:
        labels = [n.replace(",", "+") or "recipe" for n in names]
    labels = [str(s) for s in labels]
    if not names or len(labels) != len(names):
        raise SweepError("variants(): need names, and one label per name")
    return tuple(Point(variants=tuple(v for v in n.split(",") if v),
                       labels=(Label(name, s, keyed=False),))
                 for n, s in zip(names, labels, strict=True))


def product(*axes: Axis) -> Axis:
    """Every combination, the first axis outermost (like itertools.product)."""
    return tuple(sum(combo, Point()) for combo in itertools.product(*axes))


def zip_(*axes: Axis) -> Axis:
    """The i-th point of every axis together; the axes must have one length."""
    lengths = [len(a) for a in axes]
    if len(set(lengths)) > 1:
        raise SweepError(f"zip_ over axes of different lengths {lengths}")
    return tuple(sum(points, Point()) for points in zip(*axes, strict=True))


def chain(*axes: Axis) -> Axis:
    """The points of each axis after one another (runs may differ in their columns)."""
    return tuple(p for axis in axes for p in axis)


def _text(value) -> str:
    """A value as it shows in run names."""
    if isinstance(value, (list, tuple)):
        return "_".join(_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _flag_text(value) -> str:
    """A value as `--config.key=` text that ml_collections parses back to it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        value = tuple(value)  # config sequences are tuples
    return value if isinstance(value, str) else repr(value)


# ----------------------------------------------------------------------------
# Sweep files and their expansion into runs.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A loaded sweep file: the base config, its points, and overrides shared by all."""

    name: str
    config: str  # config file[:variants]
    points: Axis
    overrides: tuple[tuple[str, Any], ...] = ()
    metrics: tuple[str, ...] = ()  # summary columns (glob patterns); () = all
    source: str = "<sweep>"
    probe_args: tuple[str, ...] = ()  # extra `ahms-fm probe` flags for every run
    group_over: str = "seed"  # the column the grouped summary takes intervals over


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of a sweep."""

    name: str  # "<sweep>/<point>", also its workdir under the root
    workdir: str
    config: str  # config file[:variants], as `--config` takes it
    overrides: tuple[tuple[str, str], ...]  # (dotted key, flag text)
    columns: tuple[tuple[str, str], ...]  # the swept columns and this run's labels
    num_steps: int
    index: int = 1  # its place in the sweep, from 1
    probe_args: tuple[str, ...] = ()

    @property
    def flags(self) -> list[str]:
        return [f"--config.{k}={v}" for k, v in self.overrides]

    def train_command(self, python: str = sys.executable) -> list[str]:
        return [python, "-m", "ahms_fm.main", "--config", self.config,
                "--workdir", self.workdir, *self.flags]

    def launch_command(self, launcher: str, extra=()) -> list[str]:
        """`launch/<launcher> EXTRA --config ... --workdir ... overrides`; in EXTRA, {run},
        {sweep} and {index} become this run's, e.g. for per-run job names."""
        sweep, run = self.name.split("/", 1)
        fill = {"{run}": run, "{sweep}": sweep, "{index}": str(self.index)}
        extra = [re.sub(r"\{run\}|\{sweep\}|\{index\}", lambda m: fill[m[0]], a) for a in extra]
        return [launcher_path(launcher), *extra, "--config", self.config,
                "--workdir", self.workdir, *self.flags]

    def probe_command(self, python: str = sys.executable) -> list[str]:
        return [python, "-m", "ahms_fm.evaluation.probe", "--checkpoint", self.workdir,
                *self.probe_args]


def load_sweep(path, *, config: str | None = None, overrides=()) -> Sweep:
    """Read a sweep file; `config` replaces its base config, `overrides` ("key=value"
    texts) are added to every run."""
    path = str(path)
    if not os.path.isfile(path):
        try:  # a packaged sweep by name (ablations, positives, ...)
            path = config_utils.resolve(path, config_utils.PACKAGE_CONFIGS / "sweeps")
        except config_utils.ConfigError as e:
            raise SweepError(f"no sweep file {path}: {e}") from None
    spec = importlib.util.spec_from_file_location(f"ahms_fm_sweep_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise SweepError(f"{path}: defines no get_sweep()")
    d = dict(module.get_sweep())
    unknown = sorted(set(d) - set(SWEEP_KEYS))
    if unknown or "sweep" not in d or not (config or d.get("config")):
        raise SweepError(f"{path}: get_sweep() must return 'config' and 'sweep' (optional: "
                         f"{', '.join(repr(k) for k in SWEEP_KEYS[2:])}); unknown: {unknown}")
    fixed = dict(d.get("overrides") or {})
    for text in overrides:
        key, sep, value = text.partition("=")
        if not sep:
            raise SweepError(f"override {text!r} is not key=value")
        fixed[key.removeprefix("--").removeprefix("config.")] = value
    points = tuple(d["sweep"])
    if not points or not all(isinstance(p, Point) for p in points):
        raise SweepError(f"{path}: 'sweep' must be an axis: values(), variants(), product() ...")
    metrics = d.get("metrics") or ()
    probe_args = d.get("probe_args") or ()
    if isinstance(probe_args, str) or not all(isinstance(a, str) for a in probe_args):
        raise SweepError(f"{path}: 'probe_args' must be a list of flag strings, e.g. "
                         "['--baselines=', '--targets=age,sex']")
    return Sweep(name=_sanitize(d.get("name") or Path(path).stem), config=config or d["config"],
                 points=points, overrides=tuple(fixed.items()),
                 metrics=(metrics,) if isinstance(metrics, str) else tuple(metrics),
                 source=path, probe_args=tuple(probe_args),
                 group_over=str(d.get("group_over", "seed")))


def expand(sweep: Sweep, root="runs/sweeps") -> list[Run]:
    """The sweep's runs, in order, each checked by loading its config with its overrides."""
    short = _short_columns([c.column for p in sweep.points for c in p.labels])
    fixed_keys = {k for k, _ in sweep.overrides}
    runs, seen, bases = [], {}, {}
    for point in sweep.points:
        both = fixed_keys & {k for k, _ in point.overrides}
        if both:
            raise SweepError(f"{sweep.source}: {sorted(both)} both swept and fixed")
        name = _sanitize(",".join(f"{short[c.column]}={c.text}" if c.keyed else c.text
                                  for c in point.labels) or "base")
        if name in seen:
            raise SweepError(f"{sweep.source}: two runs named {name!r}; "
                             "give values(..., labels=...) to tell them apart")
        seen[name] = point
        config = _with_variants(sweep.config, point.variants)
        overrides = tuple((k, _flag_text(v)) for k, v in sweep.overrides + point.overrides)
        loaded = _check(sweep.source, f"{sweep.name}/{name}", config, overrides, bases)
        runs.append(Run(
            name=f"{sweep.name}/{name}", workdir=os.path.join(str(root), sweep.name, name),
            config=config, overrides=overrides,
            columns=tuple((short[c.column], c.text) for c in point.labels),
            num_steps=int(loaded.num_steps), index=len(runs) + 1,
            probe_args=sweep.probe_args))
    return runs


def select(runs: list[Run], only: str | None) -> list[Run]:
    """The runs whose name (with or without the sweep's prefix) matches any of the
    comma-separated glob patterns in `only`."""
    if not only:
        return runs
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    picked = [r for r in runs if any(fnmatch.fnmatchcase(n, p) for p in patterns
                                     for n in (r.name, r.name.split("/", 1)[1]))]
    if not picked:
        raise SweepError(f"--only {only!r} matches none of {[r.name for r in runs]}")
    return picked


def _short_columns(columns) -> dict[str, str]:
    """Each column's shortest dotted ending that is no ending of another column."""
    columns = list(dict.fromkeys(columns))
    out = {}
    for c in columns:
        parts = c.split(".")
        others = [o for o in columns if o != c]
        out[c] = next((".".join(parts[-k:]) for k in range(1, len(parts) + 1)
                       if not any(_ends_with(o, ".".join(parts[-k:])) for o in others)), c)
    return out


def _ends_with(column: str, ending: str) -> bool:
    return column == ending or column.endswith("." + ending)


def _sanitize(name: str) -> str:
    # Names become folder names: keep them to characters every file system and shell likes.
    return re.sub(r"[^A-Za-z0-9._=,+-]+", "_", name)


def _with_variants(config: str, names) -> str:
    path, _, arg = config.partition(":")
    arg = ",".join([a for a in arg.split(",") if a] + list(names))
    return f"{path}:{arg}" if arg else path


def _check(source: str, run: str, config: str, overrides, bases: dict):
    """The run's config with its overrides applied as `ahms_fm.main` would (same flag
    parser), after refusing keys the config does not have (`bases`: loaded configs)."""
    try:
        if config not in bases:
            bases[config] = config_utils.load(config)
        base = bases[config]
        for key, _ in overrides:
            if not _has_key(base, key):
                raise SweepError(f"unknown config key {key!r}{_hint(base, key)}")
        return config_utils.load(config, [f"{k}={v}" for k, v in overrides])
    except SweepError as e:
        raise SweepError(f"{source}: run {run} ({config}): {e}") from None
    except Exception as e:  # the flag parser's errors: bad values, unknown variants
        last = str(e).strip().splitlines()[-1]  # not the traceback it may quote
        raise SweepError(f"{source}: run {run} ({config}): {last}") from e


def _hint(config, key: str) -> str:
    """What the config has where `key` was looked for."""
    parent = key.rpartition(".")[0]
    if parent and _has_key(config, parent) and hasattr(_get(config, parent), "keys"):
        return f"; {parent} has: {', '.join(_get(config, parent).keys())}"
    near = difflib.get_close_matches(key, list(_all_keys(config)), n=3)
    return f"; did you mean {' or '.join(map(repr, near))}?" if near else ""


def _get(config, key: str):
    for part in key.split("."):
        config = config[part]
    return config


def _has_key(config, key: str) -> bool:
    node = config
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node.keys():
            return False
        node = node[part]
    return True


def _all_keys(config, prefix=""):
    for k in config.keys():
        v = config[k]
        if hasattr(v, "keys"):
            yield from _all_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


# ----------------------------------------------------------------------------
# Running: one after another here, or one job each through a launcher.
# ----------------------------------------------------------------------------


def launcher_path(name: str) -> str:
    """`launch/<name>` of this checkout, relative to the working directory when inside it."""
    path = REPO / "launch" / name
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def latest_step(workdir) -> int | None:
    """The latest complete checkpoint's step (`checkpoint.list_checkpoints`), None if none."""
    from ahms_fm import checkpoint  # JAX and Orbax: only once there are runs to look at

    try:
        return max(checkpoint.list_checkpoints(workdir))
    except FileNotFoundError:
        return None


def is_complete(run: Run) -> bool:
    step = latest_step(run.workdir)
    return step is not None and step >= run.num_steps


def _needs_probe(run: Run) -> bool:
    report = Path(run.workdir) / "probe" / "report.json"
    if not report.is_file():
        return True
    return json.loads(report.read_text()).get("step") != latest_step(run.workdir)


def _say(line: str) -> None:
    print(line, flush=True)  # before the subprocess's own output


def run_local(runs: list[Run], *, dry_run=False, probe=False, out=_say) -> list[str]:
    """Train each run in turn (resuming partial ones, skipping complete ones), probing it
    afterwards if `probe`; returns the names of the runs that failed."""
    failed = []
    for i, run in enumerate(runs, 1):
        done, step = is_complete(run), latest_step(run.workdir)
        out(f"# [{i}/{len(runs)}] {run.name}: " + (
            "complete" if done else f"resuming from step {step}" if step else "training"))
        commands = [] if done else [run.train_command()]
        if probe and (not done or _needs_probe(run)):
            commands.append(run.probe_command())
        for cmd in commands:
            out(shlex.join(cmd))
            if not dry_run and subprocess.run(cmd).returncode != 0:
                out(f"# {run.name}: failed ({shlex.join(cmd[:3])})")
                failed.append(run.name)
                break
    return failed


def run_launcher(runs: list[Run], launcher: str, *, extra=(), dry_run=False,
                 out=_say) -> list[str]:
    """One `launch/<launcher>` call per run not yet complete; returns the failed names."""
    if not dry_run and not (REPO / "launch" / launcher).is_file():
        raise SweepError(f"no launcher {launcher_path(launcher)}")
    failed = []
    for run in runs:
        if is_complete(run):
            out(f"# {run.name}: complete, skipped")
            continue
        cmd = run.launch_command(launcher, extra)
        out(shlex.join(cmd))
        if not dry_run and subprocess.run(cmd).returncode != 0:
            failed.append(run.name)
    return failed


# ----------------------------------------------------------------------------
# The summary: one row per run, from metrics.jsonl and probe/report.json.
# ----------------------------------------------------------------------------

# The probe report's numbers kept per target (the embedding's, not the baselines'):
# the same metrics the quick probe logs as probe/<target>/<metric> while training.
REPORT_METRICS = {"regression": ("mae", "r2"), "binary": ("roc_auc",)}
MISSING = "–"


def run_metrics(workdir) -> dict[str, float]:
    """The last logged loss, val/* and probe/* values of a run, its last logged `step`,
    and report/<target>/<metric> from `probe/report.json`."""
    workdir = Path(workdir)
    found: dict[str, float] = {}
    path = workdir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a killed run
                continue
            found["step"] = max(found.get("step", 0), record.get("step", 0))
            found.update({k: v for k, v in record.items()
                          if k == "loss" or k.startswith(("val/", "probe/"))})
    report = workdir / "probe" / "report.json"
    if report.is_file():
        for r in json.loads(report.read_text()).get("results", []):
            if r.get("features") == "embedding":
                for m in REPORT_METRICS.get(r.get("kind"), ()):
                    if m in r.get("metrics", {}):
                        found[f"report/{r['target']}/{m}"] = r["metrics"][m]["value"]
    return found


def summarize(runs: list[Run], metrics=()) -> tuple[list[str], list[list]]:
    """(header, rows): run, swept columns, status, then the metrics (those matching any
    glob in `metrics`, or all), in the order first seen."""
    found = [run_metrics(r.workdir) for r in runs]
    swept = list(dict.fromkeys(c for r in runs for c, _ in r.columns))
    names = list(dict.fromkeys(k for f in found for k in f if k != "step"))
    if metrics:
        names = [k for k in names if any(fnmatch.fnmatchcase(k, p) for p in metrics)]
    rows = []
    for run, f in zip(runs, found, strict=True):
        labels = dict(run.columns)
        step = latest_step(run.workdir) or f.get("step")
        status = ("done" if is_complete(run) else f"{step}/{run.num_steps}" if step
                  else "not started")
        rows.append([run.name.split("/", 1)[1], *(labels.get(c) for c in swept), status,
                     *(f.get(k) for k in names)])
    return ["run", *swept, "status", *names], rows


def _cell(v) -> str:
    if v is None:
        return MISSING
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_table(header, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


def write_summary(runs: list[Run], folder, metrics=()) -> str:
    """Write `folder`/summary.md and summary.csv; return the Markdown table."""
    header, rows = summarize(runs, metrics)
    table = markdown_table(header, rows)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.md").write_text(table)
    (folder / "summary.csv").write_text(csv_table(header, rows))
    return table


# ----------------------------------------------------------------------------
# The grouped summary: runs that differ only in `group_over` (the seed) pooled, the
# mean with a t-interval over them, and each group's difference from the first.
# ----------------------------------------------------------------------------


def _t_interval(xs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean; (mean, nan, nan) below n=2."""
    from scipy import stats

    n, mean = len(xs), sum(xs) / len(xs)
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def summarize_groups(runs: list[Run], metrics=(), over: str = "seed") -> list[dict]:
    """One record per (group, metric): the group's label (its swept columns but `over`),
    n, mean and 95% t-interval over the `over` values, and the mean difference from the
    first group with its t-interval, paired by the `over` value (same seed: same
    initialization and data order). Only finished runs count (a run in progress has
    logged early values); runs missing a metric are left out of that metric."""
    return _pool(*summarize(runs, metrics), over)


def _pool(header, rows, over: str) -> list[dict]:
    """`summarize_groups` on a summary already made (header, rows)."""
    swept = header[1:header.index("status")]
    if over not in swept:
        return []
    names = header[header.index("status") + 1:]
    groups: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        label = ",".join(str(cells[c]) for c in swept if c != over) or "all"
        per_metric = groups.setdefault(label, {})
        if cells["status"] != "done":
            continue
        for name in names:
            v = cells[name]
            if isinstance(v, (int, float)) and math.isfinite(v):
                per_metric.setdefault(name, {})[str(cells[over])] = float(v)
    reference = next(iter(groups), None)
    out = []
    for label, per_metric in groups.items():
        for name in names:
            got = per_metric.get(name, {})
            if not got:
                continue
            mean, lo, hi = _t_interval(list(got.values()))
            ref = groups[reference].get(name, {})
            paired = [got[k] - ref[k] for k in got if k in ref]
            d, d_lo, d_hi = _t_interval(paired) if paired and label != reference else (
                (math.nan,) * 3)
            out.append({"group": label, "metric": name, "n": len(got), "mean": mean,
                        "low": lo, "high": hi, "diff": d, "diff_low": d_lo,
                        "diff_high": d_hi, "reference": reference})
    return out


def _interval_text(mean, lo, hi, signed=False) -> str:
    if math.isnan(mean):
        return MISSING
    f = "{:+.3g}" if signed else "{:.3g}"
    if math.isnan(lo):
        return f.format(mean)
    return f"{f.format(mean)} [{f.format(lo)}, {f.format(hi)}]"


def groups_markdown(records: list[dict], over: str = "seed") -> str:
    """Two tables: each group's mean [95% interval over `over`], then its difference
    from the reference group."""
    if not records:
        return ""
    groups = list(dict.fromkeys(r["group"] for r in records))
    names = list(dict.fromkeys(r["metric"] for r in records))
    at = {(r["group"], r["metric"]): r for r in records}
    ref = records[0]["reference"]
    n = max(r["n"] for r in records)

    def table(cell):
        lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for g in groups:
            lines.append(f"| {g} | " + " | ".join(
                cell(at[g, m]) if (g, m) in at else MISSING for m in names) + " |")
        return "\n".join(lines)

    return (f"Mean over {over}s [95% t-interval] (n = {n} per group):\n\n"
            + table(lambda r: _interval_text(r["mean"], r["low"], r["high"]))
            + f"\n\nDifference from {ref}, paired by {over} [95% t-interval]:\n\n"
            + table(lambda r: _interval_text(r["diff"], r["diff_low"], r["diff_high"], True))
            + "\n")


def plot_groups(records: list[dict], runs_values: dict, path, over: str = "seed") -> None:
    """One panel per metric: each run's value as a dot, the group's mean and interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["metric"] for r in records))
    groups = list(dict.fromkeys(r["group"] for r in records))
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    at = {(r["group"], r["metric"]): r for r in records}
    for ax, name in zip(axes.flat, names, strict=False):
        for i, g in enumerate(groups):
            r = at.get((g, name))
            if r is None:
                continue
            dots = runs_values.get((g, name), [])
            ax.plot([i] * len(dots), dots, "o", color="0.6", ms=3)
            err = [[r["mean"] - r["low"]], [r["high"] - r["mean"]]] if not math.isnan(
                r["low"]) else None
            ax.errorbar([i], [r["mean"]], yerr=err, fmt="s", color="C0", capsize=3)
        values = [v for g in groups for v in runs_values.get((g, name), [])]
        if values:  # the runs' range, not a 2-seed t-interval's, sets the scale
            lo, hi = min(values), max(values)
            pad = 0.3 * (hi - lo) or 0.1 * abs(hi) or 0.1
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(range(len(groups)), groups, rotation=35, ha="right", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"each run (grey), mean and 95% t-interval over {over}s (blue)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_groups(runs: list[Run], folder, metrics=(), over: str = "seed") -> str:
    """Write `folder`/groups.md, groups.csv and groups.png; return the Markdown ('' when
    the sweep has no `over` column)."""
    header, rows = summarize(runs, metrics)  # read the runs' files once
    records = _pool(header, rows, over)
    if not records:
        return ""
    folder = Path(folder)
    text = groups_markdown(records, over)
    (folder / "groups.md").write_text(text)
    keys = list(records[0])
    (folder / "groups.csv").write_text(csv_table(keys, [[r[k] for k in keys] for r in records]))
    swept = header[1:header.index("status")]
    dots: dict = {}
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        label = ",".join(str(cells[c]) for c in swept if c != over) or "all"
        if cells["status"] != "done":
            continue
        for r in records:
            v = cells.get(r["metric"])
            if r["group"] == label and isinstance(v, (int, float)):
                dots.setdefault((label, r["metric"]), []).append(v)
    plot_groups(records, dots, folder / "groups.png", over)
    return text


# ----------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Expand a sweep file into runs; train them one after another, "
        "or one job each through launch/<launcher>; tabulate their metrics. Extra "
        "--config.key=value arguments apply to every run.")
    p.add_argument("--sweep", required=True, help="A sweep: a packaged name (ablations, "
                   "positives, learning_rate) or a file.")
    p.add_argument("--root", default="runs/sweeps", help="Workdirs go to ROOT/<sweep>/<run>.")
    p.add_argument("--config", help="Replace the sweep's base config (file[:variants]).")
    p.add_argument("--only", help="Comma-separated run names or globs (e.g. 'byol,*koleo*').")
    p.add_argument("--dry-run", "--dry_run", action="store_true",
                   help="Print the commands, run nothing.")
    p.add_argument("--launcher", help="Submit one job per run through launch/LAUNCHER "
                   "(local, slurm, tpu_pod) instead of training here one after another.")
    p.add_argument("--launcher_args", default="", help="Flags for the launcher, one string; "
                   "{run}, {sweep}, {index} become each run's (e.g. --job-name={run}).")
    p.add_argument("--probe", action="store_true", help="Local sweeps: `ahms-fm probe` each run "
                   "after training (or its latest checkpoint, if the report is older).")
    p.add_argument("--summary", action="store_true", help="Only print and write the summary.")
    p.add_argument("--metrics", help="Summary columns: comma-separated globs, e.g. "
                   "'loss,val/*,report/*' (default: the sweep file's, or all).")
    return p


def _print_summaries(runs, folder, metrics, over) -> None:
    print(write_summary(runs, folder, metrics))
    print(f"# written: {folder / 'summary.md'}, {folder / 'summary.csv'}")
    grouped = write_groups(runs, folder, metrics, over)
    if grouped:
        print(grouped)
        print(f"# written: {folder / 'groups.md'}, groups.csv, groups.png")


def run(argv=None) -> int:
    """Command line `ahms-fm sweep`."""
    argv = sys.argv if argv is None else argv
    parser = _parser(argv[0])
    args, extra = parser.parse_known_args(argv[1:])
    bad = [a for a in extra if not re.match(r"--config\.[\w.]+=", a)]
    if bad:
        parser.error(f"unrecognized arguments {bad} (overrides are --config.key=value)")
    try:
        sweep = load_sweep(args.sweep, config=args.config, overrides=extra)
        every = expand(sweep, args.root)  # the summary covers them all
        runs = select(every, args.only)
    except SweepError as e:
        print(f"ahms-fm sweep: {e}", file=sys.stderr)
        return 2
    metrics = args.metrics.split(",") if args.metrics else sweep.metrics
    folder = Path(args.root) / sweep.name
    if args.summary:
        _print_summaries(every, folder, metrics, sweep.group_over)
        return 0
    if args.launcher:
        failed = run_launcher(runs, args.launcher, extra=shlex.split(args.launcher_args),
                              dry_run=args.dry_run)
    else:
        failed = run_local(runs, dry_run=args.dry_run, probe=args.probe)
        if not args.dry_run:
            _print_summaries(every, folder, metrics, sweep.group_over)
    if failed:
        print(f"# failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    # Through the imported module: sweep files import ahms_fm.sweep, not __main__.
    from ahms_fm import sweep as _module

    sys.exit(_module.run())
