"""Benchmarks of the data path on this machine.

    python benchmarks/data.py [--quick] [--only generator|ingest|pipeline|memory]

- generator: synthetic segments per second on one core (PPG 4 x 3,840; ECG 1 x 3,840);
- ingest: synthetic PPG segments per second through preprocessing into ArrayRecord;
- pipeline: participant pairs per second out of the Grain pipeline at batch 256,
  PPG 4 x 3,840 from ArrayRecord, in-process (threads) and with 1 and 2 workers;
- memory: peak resident memory of ingesting a synthetic dataset of
  `--memory_segments` segments (1,000,000 by default: about 31 GB of disk, and
  most of an hour here), read from /proc by a sampling thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
from absl import logging

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ahms_fm.data import dataset, synthetic, write
from ahms_fm.data.pipeline import pair_pipeline
from ahms_fm.data.preprocess import ModalitySpec, QualitySpec
from ahms_fm.data.sources import synthetic_source

PPG = ModalitySpec("ppg", 64.0, 60.0, 4, (0.5, 8.0))
ECG = ModalitySpec("ecg", 128.0, 30.0, 1, (0.5, 40.0))


def bench_generator(quick: bool):
    table = synthetic.sample_participants(0, 1000)
    n = 256
    rng = np.random.default_rng(0)
    for name, fn in (
        ("PPG 4 x 3840", lambda i, s: synthetic.ppg_segments(0, table, i, s)),
        ("ECG 1 x 3840", lambda i, s: synthetic.ecg_segments(0, table, i, s)),
    ):
        best = np.inf
        for _ in range(2 if quick else 5):
            index, segment = rng.integers(1000, size=n), rng.integers(10_000, size=n)
            start = time.perf_counter()
            fn(index, segment)
            best = min(best, time.perf_counter() - start)
        print(f"generator {name}: {n / best:8.0f} segments/s (one core, batches of {n})")


def bench_ingest(root: str, participants: int, per: int):
    source = synthetic_source(
        PPG, QualitySpec(), participants=participants, segments_per_participant=per
    )
    start = time.perf_counter()
    path = write.build(source, PPG, root)
    seconds = time.perf_counter() - start
    kept = dataset.load_metadata(path)["summary"]["segments_kept"]
    print(
        f"ingest synthetic PPG: {participants * per / seconds:8.0f} segments/s "
        f"({kept} kept of {participants * per}, {seconds:.1f} s, generate + preprocess + "
        "write)"
    )
    return path


def bench_pipeline(path, batches: int):
    split = dataset.load_split(path, "train")
    rates = {}
    for workers in (0, 1, 2):
        it = iter(pair_pipeline(split, global_batch=256, seed=0, num_workers=workers))
        for _ in range(3):  # start-up: workers, file handles, first prefetch
            next(it)
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates[workers] = batches * 256 / (time.perf_counter() - start)
        del it
    base = rates[0]
    for workers, rate in rates.items():
        how = "in-process (threads)" if workers == 0 else f"{workers} worker process(es)"
        print(f"pipeline, {how:22s}: {rate:8.0f} pairs/s  ({rate / base:.2f}x)")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_memory(root: str, segments: int):
    per = 100
    peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], _rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    source = synthetic_source(
        PPG, QualitySpec(), participants=segments // per, segments_per_participant=per
    )
    path = write.build(source, PPG, root)
    done.set()
    thread.join()
    kept = dataset.load_metadata(path)["summary"]["segments_kept"]
    size = sum(f.stat().st_size for f in path.iterdir()) / 1e9
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"memory: {segments:,} synthetic PPG segments ({kept:,} kept, {size:.1f} GB on disk) "
        f"in {time.perf_counter() - start:.0f} s; peak RSS {max(peak[0], max_rss):,.0f} MB"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("generator", "ingest", "pipeline", "memory"))
    parser.add_argument("--memory_segments", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=None, help="where datasets go (default: a tmp dir)")
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    root = args.workdir or tempfile.mkdtemp(prefix="ahms_bench_")
    try:
        if args.only in (None, "generator"):
            bench_generator(args.quick)
        if args.only in (None, "ingest", "pipeline"):
            path = bench_ingest(root, 200 if args.quick else 1000, 8)
            if args.only in (None, "pipeline"):
                bench_pipeline(path, 5 if args.quick else 20)
        if args.only == "memory":
            bench_memory(root, args.memory_segments)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
