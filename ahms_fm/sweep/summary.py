"""Sweep summaries: one row per run (from metrics.jsonl and probe/report.json), and the
runs that differ only in a seed pooled with t-intervals and paired differences."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
from pathlib import Path

from ahms_fm.sweep.runs import Run, is_complete, latest_step

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
            found.update(
                {k: v for k, v in record.items() if k == "loss" or k.startswith(("val/", "probe/"))}
            )
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
        status = (
            "done" if is_complete(run) else f"{step}/{run.num_steps}" if step else "not started"
        )
        rows.append(
            [
                run.name.split("/", 1)[1],
                *(labels.get(c) for c in swept),
                status,
                *(f.get(k) for k in names),
            ]
        )
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
    swept = header[1 : header.index("status")]
    if over not in swept:
        return []
    names = header[header.index("status") + 1 :]
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
            d, d_lo, d_hi = (
                _t_interval(paired) if paired and label != reference else ((math.nan,) * 3)
            )
            out.append(
                {
                    "group": label,
                    "metric": name,
                    "n": len(got),
                    "mean": mean,
                    "low": lo,
                    "high": hi,
                    "diff": d,
                    "diff_low": d_lo,
                    "diff_high": d_hi,
                    "reference": reference,
                }
            )
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
            lines.append(
                f"| {g} | "
                + " | ".join(cell(at[g, m]) if (g, m) in at else MISSING for m in names)
                + " |"
            )
        return "\n".join(lines)

    return (
        f"Mean over {over}s [95% t-interval] (n = {n} per group):\n\n"
        + table(lambda r: _interval_text(r["mean"], r["low"], r["high"]))
        + f"\n\nDifference from {ref}, paired by {over} [95% t-interval]:\n\n"
        + table(lambda r: _interval_text(r["diff"], r["diff_low"], r["diff_high"], True))
        + "\n"
    )


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
            err = (
                [[r["mean"] - r["low"]], [r["high"] - r["mean"]]]
                if not math.isnan(r["low"])
                else None
            )
            ax.errorbar([i], [r["mean"]], yerr=err, fmt="s", color="C0", capsize=3)
        values = [v for g in groups for v in runs_values.get((g, name), [])]
        if values:  # the runs' range, not a 2-seed t-interval's, sets the scale
            lo, hi = min(values), max(values)
            pad = 0.3 * (hi - lo) or 0.1 * abs(hi) or 0.1
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(range(len(groups)), groups, rotation=35, ha="right", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
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
    swept = header[1 : header.index("status")]
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
