"""Time to quality: minutes of pretraining on this machine until the probe reaches a level.

    python benchmarks/time_to_quality.py [--workdir runs/study] [--config configs/ppg.py:study]
                                         [--target age] [--levels 0.5,0.7]

Trains `--config` into `--workdir` unless that run is already finished (every
150th checkpoint is kept at the study scale), probes every kept checkpoint with
`ahms-fm probe --steps all` (skipped when its curves.csv exists), then reads the
target's headline metric per step from curves.csv and the training wall time per
step from the run's metrics.jsonl (the logged steps/s of each interval, so
evaluation and checkpoint pauses count). For each level it prints the first
checkpoint at or above it, the training minutes to that checkpoint, and the
baselines beside it (best random-init seed, the run's init, hand-crafted
features, the ground-truth ceiling).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train_seconds_by_step(metrics_path: Path) -> dict[int, float]:
    """Cumulative training wall seconds at each logged step (intervals of the run's log)."""
    rows = [json.loads(line) for line in open(metrics_path) if line.strip()]
    rows = [r for r in rows if "steps_per_second" in r]
    out, elapsed, last = {0: 0.0}, 0.0, 0
    for r in sorted(rows, key=lambda r: r["step"]):
        if r["step"] <= last:  # a resumed run logs a step again: keep the later value
            continue
        elapsed += (r["step"] - last) / r["steps_per_second"]
        out[r["step"]] = elapsed
        last = r["step"]
    return out


def seconds_at(step: int, by_step: dict[int, float]) -> float:
    """Training seconds at `step`, interpolated between the logged steps around it."""
    steps = sorted(by_step)
    lo = max((s for s in steps if s <= step), default=0)
    hi = min((s for s in steps if s >= step), default=lo)
    if hi == lo:
        return by_step[lo]
    return by_step[lo] + (by_step[hi] - by_step[lo]) * (step - lo) / (hi - lo)


def finished(workdir: Path, num_steps: int) -> bool:
    metrics = workdir / "metrics.jsonl"
    if not metrics.exists():
        return False
    return any(
        json.loads(line).get("step") == num_steps and "loss" in json.loads(line)
        for line in open(metrics)
        if line.strip()
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", default="runs/study")
    p.add_argument("--config", default="configs/ppg.py:study")
    p.add_argument("--num_steps", type=int, default=1500)
    p.add_argument("--target", default="age")
    p.add_argument("--levels", default="0.5,0.7")
    args = p.parse_args()
    workdir = Path(args.workdir)
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not finished(workdir, args.num_steps):
        subprocess.run(
            [
                python,
                "-m",
                "ahms_fm.main",
                "--config",
                args.config,
                "--workdir",
                str(workdir),
                f"--config.num_steps={args.num_steps}",
            ],
            check=True,
            cwd=REPO,
            env=env,
        )
    curves = workdir / "probe_curves" / "curves.csv"
    if not curves.exists():
        subprocess.run(
            [
                python,
                "-m",
                "ahms_fm.evaluation.probe",
                "--checkpoint",
                str(workdir),
                "--steps",
                "all",
                "--out",
                str(curves.parent),
            ],
            check=True,
            cwd=REPO,
            env=env,
        )
    rows = [r for r in csv.DictReader(open(curves)) if r["target"] == args.target]
    if not rows:
        sys.exit(f"{curves}: no rows for target {args.target!r}")
    rows.sort(key=lambda r: int(r["step"]))
    by_step = train_seconds_by_step(workdir / "metrics.jsonl")
    first = rows[0]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"run: {workdir} ({args.config}); target {args.target} ({first['metric']})"
    )
    print(
        f"baselines: best random seed {float(first['best_random']):.3f}, init "
        f"{float(first['init'] or 'nan'):.3f}, hand-crafted "
        f"{float(first['handcrafted'] or 'nan'):.3f}, ceiling "
        f"{float(first['ceiling'] or 'nan'):.3f}"
    )
    print("| step | training min | embedding [95% CI] |")
    for r in rows:
        s = int(r["step"])
        print(
            f"| {s} | {seconds_at(s, by_step) / 60:.1f} | {float(r['embedding']):.3f} "
            f"[{float(r['embedding_low']):.3f}, {float(r['embedding_high']):.3f}] |"
        )
    for level in (float(v) for v in args.levels.split(",")):
        hit = next((r for r in rows if float(r["embedding"]) >= level), None)
        if hit is None:
            print(f"{args.target} >= {level}: not reached by step {rows[-1]['step']}")
        else:
            s = int(hit["step"])
            print(
                f"{args.target} >= {level}: step {s}, {seconds_at(s, by_step) / 60:.1f} min "
                f"of training ({float(hit['embedding']):.3f})"
            )


if __name__ == "__main__":
    main()
