"""Training throughput of the real PPG and ECG configs, with the time split.

    python benchmarks/train.py [--batch 32] [--steps 12] [--dtype float32|bfloat16]
                               [--modality ppg ecg]

Runs `train_and_evaluate` on the synthetic cohort (the paper's encoder, batch
`--batch` pairs = 2 x batch segments per step) and reports, from the run's own
metrics after the first logged interval (compilation), steps/s, segments/s in
total and per device, and the split of wall time between waiting for data, the
step, and checkpointing. Evaluation is off; a checkpoint every 4 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import jax
from absl import logging

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ahms_fm import config_utils, host_memory, train


def run(modality: str, batch: int, steps: int, dtype: str, data_dir: str) -> dict:
    config = config_utils.load(modality)
    config.batch_size = batch
    config.num_steps = steps
    config.model.dtype = dtype
    config.data.participants = 256
    config.data.segments_per_participant = 4
    config.data.data_dir = data_dir
    config.log_every_steps = 2
    config.eval_every_steps = 10**9
    config.checkpoint_every_steps = 4
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        train.train_and_evaluate(config, workdir)
        total = time.perf_counter() - start
        rows = [json.loads(line) for line in open(Path(workdir) / "metrics.jsonl")]
    rows = [r for r in rows if "loss" in r][1:]  # drop the interval with compilation
    n = len(rows)
    mean = {
        k: sum(r[k] for r in rows) / n
        for k in (
            "steps_per_second",
            "segments_per_second",
            "segments_per_second_per_device",
            "step_time_s",
            "data_wait_s",
            "checkpoint_s",
        )
    }
    return {"modality": modality, "total_s": total, **mean}


def main():
    host_memory.keep_freed_memory()  # as `python -m ahms_fm.main` does
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--modality", nargs="+", default=["ppg", "ecg"])
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}"
    )
    data_dir = tempfile.mkdtemp(prefix="ahms_bench_train_")
    for modality in args.modality:
        r = run(modality, args.batch, args.steps, args.dtype, data_dir)
        per_step = r["step_time_s"] + r["data_wait_s"] + r["checkpoint_s"]
        print(
            f"{modality} batch {args.batch} {args.dtype}: {r['steps_per_second']:.3f} steps/s, "
            f"{r['segments_per_second']:.1f} segments/s "
            f"({r['segments_per_second_per_device']:.1f} per device); per step: "
            f"step {r['step_time_s']:.3f} s ({r['step_time_s'] / per_step:.0%}), "
            f"data {r['data_wait_s']:.4f} s ({r['data_wait_s'] / per_step:.1%}), "
            f"checkpoint {r['checkpoint_s']:.4f} s ({r['checkpoint_s'] / per_step:.1%}); "
            f"whole run incl. dataset and compile {r['total_s']:.0f} s"
        )


if __name__ == "__main__":
    main()
