"""The training loop: equivalence across devices and processes, exact resume after
SIGTERM and after SIGKILL, one compilation, and no checkpoint of a non-finite state.

Runs use `configs/ppg.py:tiny` (the training machinery with a 3-block encoder)
as separate processes with their own fake CPU device counts.
"""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import ROOT, load_config

STEPS = 6


CACHE = ROOT / ".pytest_cache" / "jax_compilation"  # runs of one program compile once


def _env(devices: int, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
        PYTHONPATH=str(ROOT),
        JAX_COMPILATION_CACHE_DIR=str(CACHE),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        **extra,
    )
    return env


def _start(workdir, data_dir, devices=8, env=None, steps=STEPS, extra=()):
    # A larger Adam epsilon: with 1e-8, parameters whose gradient is ~0 move by +-lr on
    # the sign of float rounding noise, which differs with the reduction order across
    # devices; this compares the sharding, not Adam's amplification of that noise.
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
        "--config.optimizer.adam_eps=1e-3",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env or _env(devices),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _losses(workdir) -> dict[int, float]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


def _params(workdir, step=STEPS):
    """A checkpoint's state as NumPy arrays, whatever devices wrote it."""
    path = workdir / "checkpoints" / str(step) / "state"
    checkpointer = ocp.PyTreeCheckpointer()
    tree = checkpointer.metadata(path).item_metadata.tree
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The tiny synthetic cohort, built once for every run here."""
    from ahms_fm.ingest import ingest

    path = tmp_path_factory.mktemp("datasets")
    config = load_config("ppg", "tiny")
    config.data.data_dir = str(path)
    ingest(config, progress=False)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """An uninterrupted run on 8 devices."""
    workdir = tmp_path_factory.mktemp("reference")
    # The quick probe on the ~20 validation segments (too few participants for theirs).
    _finish(
        _start(
            workdir,
            data_dir,
            extra=[
                "--config.probe.every_steps=3",
                "--config.probe.train_targets=segment.heart_rate",
            ],
        )
    )
    return workdir


def _rows(workdir) -> list[dict]:
    return [json.loads(r) for r in (workdir / "metrics.jsonl").read_text().splitlines()]


def _steps_saved(workdir) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_run_writes_metrics_checkpoints_and_config(reference):
    losses = _losses(reference)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert all(np.isfinite(v) for v in losses.values())
    rows = _rows(reference)
    assert [r["step"] for r in rows if "val/retrieval_top1" in r] == [0, 4, 6]
    assert all(
        {"val/effective_rank", "val/effective_rank_centered"} <= set(r)
        for r in rows
        if "val/retrieval_top1" in r
    )
    probed = [r for r in rows if "probe/segment.heart_rate/r2" in r]
    assert [r["step"] for r in probed] == [3, 6]
    assert all(np.isfinite(r["probe/segment.heart_rate/mae"]) for r in probed)
    first = next(r for r in rows if "loss" in r)
    assert {"segments_per_second", "data_wait_s", "learning_rate", "grad_norm"} <= set(first)
    # keep_checkpoints=3 keeps 2, 4, 6; step 0, the initialization, is kept besides.
    assert _steps_saved(reference) == [0, 2, 4, 6]
    assert list((reference / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((reference / "config.json").read_text())
    assert saved["model"]["embed_dim"] == 36
    assert json.loads((reference / "modality_spec.json").read_text())["channels"] == 4


def test_step_zero_is_the_initialization(reference):
    """Checkpoint 0 holds exactly what init_state makes of the run's config: the probe's
    "init" baseline is this run's own starting point."""
    from ahms_fm import train

    config = load_config("ppg", "tiny")
    config.optimizer.adam_eps = 1e-3  # as _start runs it (the state does not depend on it)
    tx, _ = train.make_optimizer(config)
    _, state = train.init_state(config, tx)
    saved = _params(reference, step=0)
    assert int(saved["step"]) == 0
    for key in ("params", "stats", "teacher_params", "teacher_stats", "opt"):
        want, got = jax.tree.leaves(state[key]), jax.tree.leaves(saved[key])
        assert len(want) == len(got) > 0, key
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(np.asarray(a), b)
    # ... and it is not the trained state.
    trained = _params(reference)["params"]["encoder"]["stem"]
    assert not np.array_equal(trained["kernel"], saved["params"]["encoder"]["stem"]["kernel"])


def test_curves_of_a_real_run(reference, tmp_path):
    """`ahms-fm curves` reads what train.py writes: the loss of every step, the validation
    metrics (from step 0) and the quick probe, each value as logged."""
    from ahms_fm import curves

    png, table = curves.curves([reference], tmp_path)
    got = {}
    with open(table) as f:
        for r in csv.DictReader(f):
            assert (r["kind"], r["series"], r["runs"]) == ("run", reference.name, "1")
            got.setdefault(r["metric"], {})[int(r["step"])] = float(r["value"])
    assert got["loss"] == _losses(reference)
    logged = {
        k: {r["step"]: v for r in _rows(reference) for kk, v in r.items() if kk == k} for k in got
    }
    assert got == logged
    for metric in (
        "val/effective_rank",
        "val/effective_rank_centered",
        "val/retrieval_top1",
        "val/uniformity",
        "val/alignment",
    ):
        assert sorted(got[metric]) == [0, 4, 6], metric
    assert sorted(got["probe/segment.heart_rate/r2"]) == [3, 6]
    assert "learning_rate" not in got
    assert os.path.getsize(png) > 10_000


def test_one_device_and_two_processes_match_eight_devices(reference, data_dir, tmp_path):
    one = tmp_path / "one"
    single = _start(one, data_dir, devices=1)
    port = socket.socket()
    port.bind(("localhost", 0))
    address = f"localhost:{port.getsockname()[1]}"
    port.close()
    multi = tmp_path / "multi"
    procs = [
        _start(
            multi,
            data_dir,
            env=_env(
                4, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)
            ),
        )
        for i in range(2)
    ]
    _finish(single)
    for p in procs:
        _finish(p)
    want = _losses(reference)
    for run in (one, multi):
        got = _losses(run)
        np.testing.assert_allclose(
            [got[s] for s in sorted(want)], [want[s] for s in sorted(want)], rtol=1e-5
        )
        ref, params = _params(reference)["params"], _params(run)["params"]
        for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(params), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def _wait_for_step(workdir, step, proc, timeout=300):
    start = time.time()
    while time.time() - start < timeout:
        if (workdir / "metrics.jsonl").exists() and max(_losses(workdir), default=0) >= step:
            return
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


def test_sigterm_then_resume_is_bitwise_exact(reference, data_dir, tmp_path):
    """... and keeps what it should across the resumption: the last checkpoint, step 0 (not
    written again) and every third step (keep_every_steps, saved even where
    checkpoint_every_steps=2 would not)."""
    keeping = [
        "--config.keep_checkpoints=1",
        "--config.keep_every_steps=3",
        "--config.best_metric=",
    ]
    stop_at = int(np.random.default_rng().integers(1, STEPS - 1))
    proc = _start(tmp_path, data_dir, extra=keeping)
    _wait_for_step(tmp_path, stop_at, proc)
    proc.send_signal(signal.SIGTERM)
    out = _finish(proc)
    assert "preempted" in out
    saved = _steps_saved(tmp_path)
    assert saved[0] == 0 and saved[-1] >= stop_at and saved[-1] < STEPS
    step_zero = {
        p: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints" / "0").rglob("*") if p.is_file()
    }
    _finish(_start(tmp_path, data_dir, extra=keeping))  # resumes
    for a, b in zip(
        jax.tree.leaves(_params(reference)), jax.tree.leaves(_params(tmp_path)), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert _steps_saved(tmp_path) == [0, 3, 6]
    assert {
        p: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints" / "0").rglob("*") if p.is_file()
    } == step_zero
    assert [r["step"] for r in _rows(tmp_path)].count(0) == 1  # step 0 evaluated once


def test_sigkill_with_a_half_written_checkpoint_resumes_from_the_last_complete_one(
    reference, data_dir, tmp_path
):
    proc = _start(tmp_path, data_dir)
    ckpts = tmp_path / "checkpoints"
    _wait_for_step(tmp_path, 3, proc)
    while not any(p.name.isdigit() for p in ckpts.iterdir()) and proc.poll() is None:
        time.sleep(0.05)  # the step-2 checkpoint is written in the background
    proc.kill()
    proc.communicate()
    complete = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert complete and complete[-1] < STEPS
    # What a writer killed mid-save leaves: Orbax's temporary folder of the next step,
    # with part of the files.
    partial = ckpts / f"{complete[-1] + 2}.orbax-checkpoint-tmp-1234567890"
    shutil.copytree(ckpts / str(complete[-1]), partial)
    for f in sorted(p for p in partial.rglob("*") if p.is_file())[::2]:
        f.unlink()
    _finish(_start(tmp_path, data_dir))
    assert not partial.exists()
    for a, b in zip(
        jax.tree.leaves(_params(reference)), jax.tree.leaves(_params(tmp_path)), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_a_non_finite_state_is_never_checkpointed(data_dir, tmp_path, monkeypatch):
    from ahms_fm import train

    config = load_config("ppg", "tiny")
    config.data.data_dir = str(data_dir)
    # Infinite in float32: the first update makes the state non-finite while the first
    # loss (computed before that update) is finite.
    config.optimizer.learning_rate = 1e39
    config.checkpoint_every_steps = 1
    traces = []
    jit = jax.jit

    def counting_jit(fn, **kwargs):
        if fn.__name__ != "train_step":
            return jit(fn, **kwargs)

        def train_step(*args):
            traces.append(1)  # runs once per trace (compilation), not per call
            return fn(*args)

        return jit(train_step, **kwargs)

    monkeypatch.setattr(train.jax, "jit", counting_jit)
    with pytest.raises(train.NonFiniteLoss, match="without a checkpoint") as raised:
        train.train_and_evaluate(config, tmp_path)
    assert "non-finite values in the state after step 1" in str(raised.value)
    assert len(traces) == 1
    assert np.isfinite(_losses(tmp_path)[1])  # the loss alone would not have stopped it
    assert _steps_saved(tmp_path) == [0]  # before the fix: step 1, non-finite, was saved


@pytest.mark.parametrize("variant", ["segment_level", "no_koleo", "simclr", "byol", "bf16"])
def test_ablation_variants_train(variant):
    """Each ablation switch runs the step: finite loss, and the teacher it should have."""
    import jax.numpy as jnp

    from ahms_fm import train

    config = load_config("ppg", "tiny" if variant == "bf16" else f"tiny,{variant}")
    if variant == "bf16":
        config.model.dtype = "bfloat16"
    config.model.stages = ((4, 3, 1, 1),)  # one block: these runs test the switches
    tx, schedule = train.make_optimizer(config)
    model, state = train.init_state(config, tx)
    step = jax.jit(train.make_train_step(config, model, tx, schedule))
    rng = np.random.default_rng(0)
    shape = (8, config.input.segment_length, config.input.channels)
    batch = {
        "view_a": jnp.asarray(rng.normal(size=shape), jnp.float16),
        "view_b": jnp.asarray(rng.normal(size=shape), jnp.float16),
        "participant": jnp.arange(8, dtype=jnp.int32),
    }
    for _ in range(2):
        state, out = step(state, batch)
    assert np.isfinite(float(out["loss"]))
    assert ("byol" in out) == (variant == "byol")
    assert ("koleo" in out) == (variant != "byol")
    if variant == "no_koleo":
        assert float(out["koleo"]) == 0.0
    has_teacher = bool(jax.tree.leaves(state["teacher_params"]))
    assert has_teacher == (variant != "simclr")
    if variant == "byol":
        assert "predictor" in state["params"]
    if variant == "bf16":  # parameters stay float32
        assert {x.dtype for x in jax.tree.leaves(state["params"])} == {jnp.dtype("float32")}


def test_a_second_trainer_on_a_workdir_is_refused(data_dir, tmp_path):
    """Before: both crashed inside Orbax and interleaved metrics.jsonl."""
    first = _start(tmp_path, data_dir, steps=12)
    lock = tmp_path / "lock.json"
    deadline = time.time() + 300
    while not lock.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert lock.exists(), "the first trainer never took the lock"
    second = _start(tmp_path, data_dir, steps=12)
    out, _ = second.communicate(timeout=300)
    assert second.returncode != 0
    assert f"is in use by process {first.pid} on {socket.gethostname()}" in out
    _finish(first)
    assert sorted(_losses(tmp_path)) == list(range(1, 13))  # one trainer's lines only
    assert not lock.exists()  # released at the end


def test_resume_refuses_a_changed_config_and_a_finished_run_says_so(reference, data_dir, tmp_path):
    """Before: batch size 16 -> 32 resumed silently, a changed architecture failed deep
    in Orbax, and config.json was overwritten."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    original = (run / "config.json").read_text()
    changed = _start(
        run, data_dir, steps=9, extra=["--config.batch_size=32", "--config.model.embed_dim=40"]
    )
    out, _ = changed.communicate(timeout=300)
    assert changed.returncode != 0
    assert "batch_size: 16 -> 32" in out and "model.embed_dim: 36 -> 40" in out
    assert "num_steps" not in out.split("may not change:")[1].split("Use the run")[0]
    assert (run / "config.json").read_text() == original
    assert _steps_saved(run) == _steps_saved(reference)

    out = _finish(_start(run, data_dir, steps=STEPS))
    assert f"finished at step {STEPS} (num_steps {STEPS}); nothing to do" in out
    out = _finish(_start(run, data_dir, steps=STEPS + 1, extra=["--config.log_every_steps=2"]))
    assert "resuming from step 6 with changed" in out and "log_every_steps: 1 -> 2" in out
    assert STEPS + 1 in _steps_saved(run)
    assert (run / "config.json").read_text() == original
