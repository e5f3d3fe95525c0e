"""Metrics of a run: JSON lines, TensorBoard event files (tensorboardX, no TensorFlow) and
a console line with throughput and ETA. Also saves the config and modality spec.

Throughput counts the segments the encoder sees: two views per pair.

A workdir in Cloud Storage (gs://...) works too. Objects there cannot be appended
to, so the metrics file and the event files are written in a local folder and
uploaded whole after each log (a few MB at most over a long run); the metrics
of earlier runs in that workdir are downloaded first, so a resumed run appends.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ahms_fm.checkpoint import as_path, is_remote


class Monitor:
    """Writes one JSON object per logged step to `workdir/metrics.jsonl` (at least `step`
    and `loss`), the same scalars as TensorBoard events, and a console line."""

    def __init__(
        self,
        workdir,
        config,
        spec,
        *,
        total_steps: int,
        devices: int,
        active: bool = True,
        fresh: bool = True,
    ):
        self.active = active
        self.total = total_steps
        self.devices = devices
        self.segments_per_step = 2 * config.batch_size
        self._t0 = self._tick = time.perf_counter()
        self._steps = 0
        self._data = self._ckpt = 0.0
        self._writer = self._jsonl = None
        self._remote = None  # where the local folder is uploaded to, for a gs:// workdir
        if active:
            if is_remote(workdir):
                self._remote = as_path(workdir)
                (self._remote / "tensorboard").mkdir(parents=True, exist_ok=True)
                workdir = Path(tempfile.mkdtemp(prefix="ahms_fm_monitor_"))
                if (self._remote / "metrics.jsonl").exists():  # a resumed run appends
                    (workdir / "metrics.jsonl").write_bytes(
                        (self._remote / "metrics.jsonl").read_bytes()
                    )
            workdir = Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            home = workdir if self._remote is None else self._remote  # written once: direct
            # A resumed run keeps the config.json it was started with (changes that a
            # resume allows are logged by the trainer, not written over the original).
            if fresh or not (home / "config.json").exists():
                (home / "config.json").write_text(config.to_json_best_effort(indent=2))
                (home / "modality_spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
            from tensorboardX import SummaryWriter

            self._local = workdir
            # Remote: never reuse an event file name (time in s + host) of an earlier run.
            suffix = "" if self._remote is None else f".{uuid.uuid4().hex[:8]}"
            self._writer = SummaryWriter(str(workdir / "tensorboard"), filename_suffix=suffix)
            self._jsonl = open(workdir / "metrics.jsonl", "a")

    @contextlib.contextmanager
    def waiting_for_data(self):
        start = time.perf_counter()
        yield
        self._data += time.perf_counter() - start

    @contextlib.contextmanager
    def checkpointing(self):
        start = time.perf_counter()
        yield
        self._ckpt += time.perf_counter() - start

    def count_step(self):
        self._steps += 1

    def log(self, step: int, values: dict, console: bool | None = None):
        """Log `values` at `step`; training logs add throughput and timing."""
        values = dict(values)
        if "loss" in values:  # a training log: close the interval
            self.count_step()
            now = time.perf_counter()
            elapsed = max(now - self._tick, 1e-9)
            rate = self._steps / elapsed
            values.update(
                {
                    "steps_per_second": rate,
                    "segments_per_second": rate * self.segments_per_step,
                    "segments_per_second_per_device": rate * self.segments_per_step / self.devices,
                    "step_time_s": (elapsed - self._data - self._ckpt) / self._steps,
                    "data_wait_s": self._data / self._steps,
                    "checkpoint_s": self._ckpt / self._steps,
                }
            )
            self._tick, self._steps, self._data, self._ckpt = now, 0, 0.0, 0.0
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            line = (
                f"step {step}/{self.total}  loss {values['loss']:.4f}  "
                f"{values['segments_per_second']:.1f} seg/s  eta {_duration(eta)}"
            )
            console = True if console is None else console
        else:
            line = f"step {step}/{self.total}  " + "  ".join(
                f"{k} {v:.4g}" for k, v in values.items()
            )
        if not self.active:
            return
        self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self._jsonl.flush()
        for k, v in values.items():
            self._writer.add_scalar(k, v, step)
        self._writer.flush()
        self._upload()
        if console:
            print(line, file=sys.stderr, flush=True)

    def _upload(self):
        """Copy the metrics and event files, whole, to a gs:// workdir."""
        if self._remote is None:
            return
        for file in [self._local / "metrics.jsonl", *self._local.glob("tensorboard/*")]:
            target = self._remote / file.relative_to(self._local).as_posix()
            target.write_bytes(file.read_bytes())

    def close(self):
        if self.active:
            self._writer.close()
            self._jsonl.close()
            self._upload()
            if self._remote is not None:
                shutil.rmtree(self._local, ignore_errors=True)


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
