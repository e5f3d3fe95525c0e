"""Kill training at random moments, resume each time, and compare with a run never killed.

    python benchmarks/fault_injection.py --kills 20 [--steps 60] [--seed 0]

A tiny run (`configs/ppg.py:tiny`, 8 fake CPU devices, a checkpoint every 2 steps) is
trained once without interruption. Then the same run is started, SIGKILLed, started
again (it resumes from its latest complete checkpoint), `--kills` times: half of the
kills at a random moment after a random step, half while Orbax is writing a checkpoint
(its temporary folder exists). The run then trains to the end. It passes when the final
parameters, optimizer state and data-iterator position are bitwise equal to the
uninterrupted run's, every logged loss of the interrupted run equals the reference's at
its step, and no temporary or corrupt folder is left. Prints one line per kill and a
verdict; exits 1 on any difference. (Minutes: every restart pays JAX's start-up.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        PYTHONPATH=str(ROOT),
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )
    return env


def _start(workdir: Path, data_dir: Path, steps: int, env: dict) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "ahms_fm.main",
        "--config",
        "configs/ppg.py:tiny",
        "--workdir",
        str(workdir),
        f"--config.data.data_dir={data_dir}",
        f"--config.num_steps={steps}",
        "--config.checkpoint_every_steps=2",
        "--config.optimizer.adam_eps=1e-3",
        "--config.eval_every_steps=1000",
    ]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _logged_losses(workdir: Path) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
        if "loss" in row:
            out.setdefault(row["step"], []).append(row["loss"])
    return out


def _temporary(workdir: Path) -> set[str]:
    """Orbax's temporary folders: checkpoints being written (or left by a kill)."""
    ckpts = workdir / "checkpoints"
    return {p.name for p in ckpts.iterdir() if "tmp" in p.name} if ckpts.is_dir() else set()


def _state(workdir: Path, step: int):
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    path = workdir / "checkpoints" / str(step) / "state"
    checkpointer = ocp.PyTreeCheckpointer()
    tree = checkpointer.metadata(path).item_metadata.tree
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    state = checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
    data = json.loads((workdir / "checkpoints" / str(step) / "data" / "metadata").read_text())
    return state, data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="ahms_fm_faults_"))
    cache, data_dir = tmp / "jax_cache", tmp / "datasets"
    env = _env(cache)

    subprocess.run(
        [
            sys.executable,
            "-m",
            "ahms_fm.ingest",
            "--config",
            "configs/ppg.py:tiny",
            f"--config.data.data_dir={data_dir}",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.time()
    reference = tmp / "reference"
    ref = _start(reference, data_dir, args.steps, env)
    if ref.wait() != 0:
        print("the reference run failed")
        return 1
    print(f"reference: {args.steps} steps in {time.time() - t0:.0f} s")

    faulted = tmp / "faulted"
    kills = 0
    while kills < args.kills:
        left = _temporary(faulted)  # by the last kill; the new process removes them
        proc = _start(faulted, data_dir, args.steps, env)
        in_write = kills % 2 == 1
        done_before = max(_logged_losses(faulted), default=0)
        if in_write:  # wait for a new temporary folder (a write begun), then kill at once
            while proc.poll() is None and not (_temporary(faulted) - left):
                time.sleep(0.005)
        else:  # after a random number of new steps (0: during start-up), plus a jitter
            target = done_before + rng.randint(0, 3)
            while proc.poll() is None and max(_logged_losses(faulted), default=0) < target:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:  # it finished first: every kill must hit one run
            print(f"the run reached step {args.steps} after {kills} kills; give more --steps")
            return 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        saved = (
            sorted(int(q.name) for q in (faulted / "checkpoints").iterdir() if q.name.isdigit())
            if (faulted / "checkpoints").is_dir()
            else []
        )
        print(
            f"kill {kills:2d} ({'inside a checkpoint write' if in_write else 'random'}): "
            f"last logged step {max(_logged_losses(faulted), default=0)}, checkpoints "
            f"{saved}, temporary folders {sorted(_temporary(faulted)) or 'none'}"
        )
    proc = _start(faulted, data_dir, args.steps, env)
    if proc.wait() != 0:
        print("the final resumption failed")
        return 1

    import jax
    import numpy as np

    problems = []
    a_state, a_data = _state(reference, args.steps)
    b_state, b_data = _state(faulted, args.steps)
    leaves = list(
        zip(jax.tree_util.tree_leaves_with_path(a_state), jax.tree.leaves(b_state), strict=True)
    )
    differ = [
        jax.tree_util.keystr(path)
        for (path, x), y in leaves
        if not np.array_equal(np.asarray(x), np.asarray(y))
    ]
    if differ:
        problems.append(f"{len(differ)} of {len(leaves)} arrays differ: {differ[:3]}")
    if a_data != b_data:
        problems.append(f"data iterator: {a_data} != {b_data}")
    ref_losses = {k: v[0] for k, v in _logged_losses(reference).items()}
    for step, values in _logged_losses(faulted).items():
        if any(v != ref_losses.get(step) for v in values):
            problems.append(f"loss at step {step}: {values} vs {ref_losses.get(step)}")
    left = [q.name for q in (faulted / "checkpoints").iterdir() if not q.name.isdigit()]
    if left or (faulted / "corrupt_checkpoints").exists() or (faulted / "lock.json").exists():
        problems.append(f"left behind: {left}, corrupt_checkpoints or lock.json")
    print(
        f"{kills} kills, {time.time() - t0:.0f} s in all: "
        + (
            "final state bitwise equal to the uninterrupted run's, every logged loss equal"
            if not problems
            else "DIFFERENT: " + "; ".join(problems)
        )
    )
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
