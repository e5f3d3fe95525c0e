"""Sweeps: many training runs from one config, varying some of its keys.

A sweep file (`ahms_fm/configs/sweeps/*.py`, named or by path) defines `get_sweep()`,
returning a dict:

    from ahms_fm.sweep.axes import product, values, zip_

    def get_sweep():
        return {
            "config": "ppg:runlocal",
            "sweep": product(values("loss.koleo_weight", [0.0, 0.1]),
                             zip_(values("optimizer.learning_rate", [1e-3, 3e-4]),
                                  values("schedule.warmup_steps", [0, 10]))),
        }

`expand` turns it into runs, each with a name, a workdir and `--config.key=value`
overrides, checked against the config exactly as `python -m ahms_fm.main` applies
them. `ahms-fm sweep` trains the runs one after another (or submits one job each
through `launch/<launcher>`) and tabulates their metrics. See docs/sweeps.md.

Modules: `axes` (the language), `runs` (files, expansion, running), `summary` (tables).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from ahms_fm.sweep.axes import Label, Point, SweepError, chain, product, values, variants, zip_
from ahms_fm.sweep.runs import (
    Run,
    Sweep,
    _short_columns,  # noqa: F401 (tests)
    expand,
    is_complete,
    latest_step,
    load_sweep,
    run_launcher,
    run_local,
    select,
)
from ahms_fm.sweep.summary import (
    markdown_table,
    run_metrics,
    summarize,
    summarize_groups,
    write_groups,
    write_summary,
)

__all__ = [  # noqa: RUF022 (by kind)
    "values",
    "variants",
    "product",
    "zip_",
    "chain",
    "Label",
    "Point",
    "SweepError",
    "Sweep",
    "Run",
    "load_sweep",
    "expand",
    "select",
    "run_local",
    "run_launcher",
    "latest_step",
    "is_complete",
    "run_metrics",
    "summarize",
    "summarize_groups",
    "markdown_table",
    "write_summary",
    "write_groups",
    "run",
]


# ----------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Expand a sweep file into runs; train them one after another, "
        "or one job each through launch/<launcher>; tabulate their metrics. Extra "
        "--config.key=value arguments apply to every run.",
    )
    p.add_argument(
        "--sweep",
        required=True,
        help="A sweep: a packaged name (ablations, positives, learning_rate) or a file.",
    )
    p.add_argument("--root", default="runs/sweeps", help="Workdirs go to ROOT/<sweep>/<run>.")
    p.add_argument("--config", help="Replace the sweep's base config (file[:variants]).")
    p.add_argument("--only", help="Comma-separated run names or globs (e.g. 'byol,*koleo*').")
    p.add_argument(
        "--dry-run", "--dry_run", action="store_true", help="Print the commands, run nothing."
    )
    p.add_argument(
        "--launcher",
        help="Submit one job per run through launch/LAUNCHER "
        "(local, slurm, tpu_pod) instead of training here one after another.",
    )
    p.add_argument(
        "--launcher_args",
        default="",
        help="Flags for the launcher, one string; "
        "{run}, {sweep}, {index} become each run's (e.g. --job-name={run}).",
    )
    p.add_argument(
        "--probe",
        action="store_true",
        help="Local sweeps: `ahms-fm probe` each run "
        "after training (or its latest checkpoint, if the report is older).",
    )
    p.add_argument("--summary", action="store_true", help="Only print and write the summary.")
    p.add_argument(
        "--metrics",
        help="Summary columns: comma-separated globs, e.g. "
        "'loss,val/*,report/*' (default: the sweep file's, or all).",
    )
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
        failed = run_launcher(
            runs, args.launcher, extra=shlex.split(args.launcher_args), dry_run=args.dry_run
        )
    else:
        failed = run_local(runs, dry_run=args.dry_run, probe=args.probe)
        if not args.dry_run:
            _print_summaries(every, folder, metrics, sweep.group_over)
    if failed:
        print(f"# failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
