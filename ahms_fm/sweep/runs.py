"""Sweep files and their expansion into runs (`load_sweep`, `expand`, `select`), and
running them: one after another here, or one job each through a launcher."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from ahms_fm import config_utils
from ahms_fm.sweep.axes import Axis, Point, SweepError, _flag_text

# The keys a sweep file's dict may hold; anything else is a typo.
SWEEP_KEYS = ("config", "sweep", "name", "overrides", "metrics", "probe_args", "group_over")
REPO = Path(__file__).resolve().parents[2]


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
        return [
            python,
            "-m",
            "ahms_fm.main",
            "--config",
            self.config,
            "--workdir",
            self.workdir,
            *self.flags,
        ]

    def launch_command(self, launcher: str, extra=()) -> list[str]:
        """`launch/<launcher> EXTRA --config ... --workdir ... overrides`; in EXTRA, {run},
        {sweep} and {index} become this run's, e.g. for per-run job names."""
        sweep, run = self.name.split("/", 1)
        fill = {"{run}": run, "{sweep}": sweep, "{index}": str(self.index)}
        extra = [re.sub(r"\{run\}|\{sweep\}|\{index\}", lambda m: fill[m[0]], a) for a in extra]
        return [
            launcher_path(launcher),
            *extra,
            "--config",
            self.config,
            "--workdir",
            self.workdir,
            *self.flags,
        ]

    def probe_command(self, python: str = sys.executable) -> list[str]:
        return [
            python,
            "-m",
            "ahms_fm.evaluation.probe",
            "--checkpoint",
            self.workdir,
            *self.probe_args,
        ]


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
        raise SweepError(
            f"{path}: get_sweep() must return 'config' and 'sweep' (optional: "
            f"{', '.join(repr(k) for k in SWEEP_KEYS[2:])}); unknown: {unknown}"
        )
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
        raise SweepError(
            f"{path}: 'probe_args' must be a list of flag strings, e.g. "
            "['--baselines=', '--targets=age,sex']"
        )
    return Sweep(
        name=_sanitize(d.get("name") or Path(path).stem),
        config=config or d["config"],
        points=points,
        overrides=tuple(fixed.items()),
        metrics=(metrics,) if isinstance(metrics, str) else tuple(metrics),
        source=path,
        probe_args=tuple(probe_args),
        group_over=str(d.get("group_over", "seed")),
    )


def expand(sweep: Sweep, root="runs/sweeps") -> list[Run]:
    """The sweep's runs, in order, each checked by loading its config with its overrides."""
    short = _short_columns([c.column for p in sweep.points for c in p.labels])
    fixed_keys = {k for k, _ in sweep.overrides}
    runs, seen, bases = [], {}, {}
    for point in sweep.points:
        both = fixed_keys & {k for k, _ in point.overrides}
        if both:
            raise SweepError(f"{sweep.source}: {sorted(both)} both swept and fixed")
        name = _sanitize(
            ",".join(f"{short[c.column]}={c.text}" if c.keyed else c.text for c in point.labels)
            or "base"
        )
        if name in seen:
            raise SweepError(
                f"{sweep.source}: two runs named {name!r}; "
                "give values(..., labels=...) to tell them apart"
            )
        seen[name] = point
        config = _with_variants(sweep.config, point.variants)
        overrides = tuple((k, _flag_text(v)) for k, v in sweep.overrides + point.overrides)
        loaded = _check(sweep.source, f"{sweep.name}/{name}", config, overrides, bases)
        runs.append(
            Run(
                name=f"{sweep.name}/{name}",
                workdir=os.path.join(str(root), sweep.name, name),
                config=config,
                overrides=overrides,
                columns=tuple((short[c.column], c.text) for c in point.labels),
                num_steps=int(loaded.num_steps),
                index=len(runs) + 1,
                probe_args=sweep.probe_args,
            )
        )
    return runs


def select(runs: list[Run], only: str | None) -> list[Run]:
    """The runs whose name (with or without the sweep's prefix) matches any of the
    comma-separated glob patterns in `only`."""
    if not only:
        return runs
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    picked = [
        r
        for r in runs
        if any(
            fnmatch.fnmatchcase(n, p) for p in patterns for n in (r.name, r.name.split("/", 1)[1])
        )
    ]
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
        out[c] = next(
            (
                ".".join(parts[-k:])
                for k in range(1, len(parts) + 1)
                if not any(_ends_with(o, ".".join(parts[-k:])) for o in others)
            ),
            c,
        )
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
        out(
            f"# [{i}/{len(runs)}] {run.name}: "
            + ("complete" if done else f"resuming from step {step}" if step else "training")
        )
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


def run_launcher(runs: list[Run], launcher: str, *, extra=(), dry_run=False, out=_say) -> list[str]:
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
