"""Peak host memory of the training step, JAX against PyTorch, each in a fresh process.

    python benchmarks/memory.py [--setting study full] [--steps 5]
        [--variants jax jax-default-malloc torch torch-keep-freed]
        [--window-seconds S] [--embed-dim D] [--hidden-dim H] [--out-dim O] [--batch B]

For every setting (a window length, an encoder width, a head and a batch of
pairs; the size flags override every selected setting) and every variant, a
new Python process measures its own resident set (VmRSS, and its high-water
mark VmHWM from /proc/self/status):

- `imports`: after importing the framework and the model code (JAX: also the
  CPU backend started), before anything is built - the baseline;
- `built`: model, teacher, optimizer state and one batch in memory;
- `compile peak` (JAX only): the high-water mark through `lower().compile()`;
- then the high-water mark is reset (`/proc/self/clear_refs`) and the step
  runs: `warm-up peak` after the first step, `step peak` after `--steps` more,
  each waited for (`block_until_ready`) before the next is dispatched;
- `loop peak`: then `--steps` more as `train_and_evaluate`'s loop dispatches
  them, each before the previous one has finished (JAX's asynchronous
  dispatch; PyTorch's eager step is synchronous, so its loop peak is its step
  peak). `loop peak - imports` is the step's own memory, and `vs torch` its
  ratio to PyTorch's.

The JAX step is the one training runs: `ahms_fm.train.init_state`,
`make_optimizer` and `make_train_step` on `configs/ppg.py:runlocal` with the
setting's sizes, jitted with the shardings and donated state of
`train_and_evaluate` (augmentation of both views, EMA teacher forward, student
forward + backward on both views concatenated, InfoNCE + KoLeo, Adam). `jax`
calls `host_memory.keep_freed_memory()` first, as `python -m ahms_fm.main`
does; `jax-default-malloc` leaves glibc's malloc alone. XLA's own account of
the executable (`compiled.memory_analysis()`: arguments, outputs, aliased
(donated) bytes, temporaries) is printed with it.

The PyTorch step (`torch_reference.make_ssl_train_step`) is the same encoder
and head in eager PyTorch, an EMA teacher under `no_grad` on both views
concatenated, the same loss and Adam, on the same batch (its augmentation
would run in the data loader: not included). `torch` runs with glibc's
defaults, as a PyTorch codebase would; `torch-keep-freed` with the
`host_memory` setting. PyTorch is not a dependency: install it by hand.

The proposed fix (BENCHMARKS.md, issue 11), prototyped here without touching
the package: `jax-clear-caches` calls `jax.clear_caches()` once the state is
built (the executables of the eager initialization ops stay resident
otherwise), `jax-trim` calls `malloc_trim(0)` once the step is compiled (the
compiler's freed scratch stays resident otherwise); `jax-proposed` does both
and its loop waits for each step before dispatching the next (otherwise the
next step's temporaries are allocated before the previous step's are freed,
and the heap grows to hold both). Diagnostics: `jax-no-augment` (the step
without the augmentation), `jax-no-teacher` (SimCLR-style step:
`teacher.kind="none"`).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The candidate scale of the training study, and the paper's recipe.
SETTINGS = {
    "study": dict(
        window_seconds=20.0,
        sample_rate=64.0,
        channels=4,
        embed_dim=72,
        hidden_dim=128,
        out_dim=32,
        batch=64,
        expansion=7,
    ),
    "full": dict(
        window_seconds=60.0,
        sample_rate=64.0,
        channels=4,
        embed_dim=256,
        hidden_dim=1024,
        out_dim=128,
        batch=32,
        expansion=7,
    ),
}
VARIANTS = (
    "jax",
    "jax-default-malloc",
    "torch",
    "torch-keep-freed",
    "jax-clear-caches",
    "jax-trim",
    "jax-proposed",
    "jax-no-augment",
    "jax-no-teacher",
)
DEFAULT_VARIANTS = ("jax", "jax-default-malloc", "torch", "torch-keep-freed")
MB = 1 << 20


# ----------------------------------------------------------------------------
# In the measured process.
# ----------------------------------------------------------------------------


def memory() -> dict[str, float]:
    """Resident set and its high-water mark (VmRSS, VmHWM), and glibc's own account of
    its heap (`mallinfo2`: bytes in use by the program, and free bytes it keeps), in MiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1]) / 1024
    r = {"rss": out["VmRSS"], "hwm": out["VmHWM"]}
    info = _mallinfo2()
    if info is not None:
        r["malloc_in_use"] = (info.uordblks + info.hblkhd) / MB
        r["malloc_free"] = info.fordblks / MB
    return r


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc():
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _mallinfo2():
    """glibc >= 2.33's heap statistics (all arenas), or None elsewhere."""
    fn = getattr(_libc(), "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = _MallInfo2
    return fn()


def release_freed_memory() -> bool:
    """`malloc_trim(0)`: give the free pages of every glibc arena back to the system.

    This is the proposed fix measured by `jax-trim` / `jax-proposed`: once, after the
    step is compiled, so the compiler's scratch memory (freed, but kept resident by
    `keep_freed_memory`'s infinite trim threshold, and by fragmentation without it)
    is returned before the step allocates its temporaries; the step's own blocks are
    still reused from the second step on.
    """
    fn = getattr(_libc(), "malloc_trim", None)
    if fn is None:
        return False
    fn.argtypes = (ctypes.c_size_t,)
    fn(0)
    return True


def reset_peak() -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def batch_arrays(s: dict, seed: int = 0):
    """One batch of pairs as the pipeline yields it: float16 [B, T, C] views, int32 ids."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = int(s["sample_rate"] * s["window_seconds"])
    shape = (s["batch"], t, s["channels"])
    return {
        "view_a": rng.standard_normal(shape).astype(np.float16),
        "view_b": rng.standard_normal(shape).astype(np.float16),
        "participant": np.arange(s["batch"], dtype=np.int32),
    }


def run_jax(s: dict, steps: int, variant: str) -> dict:
    from ahms_fm import host_memory

    keep = variant != "jax-default-malloc" and host_memory.keep_freed_memory()
    clear_caches = variant in ("jax-clear-caches", "jax-proposed")
    trim = variant in ("jax-trim", "jax-proposed")
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from ahms_fm import augment, config_utils, train

    jax.devices()
    r = {"keep_freed_memory": keep, "version": f"jax {jax.__version__}", "imports": memory()}

    config = config_utils.load("ppg:runlocal")
    config.input.sample_rate = s["sample_rate"]
    config.input.window_seconds = s["window_seconds"]
    config.input.channels = s["channels"]
    config.model.embed_dim = s["embed_dim"]
    config.model.expansion = s["expansion"]
    config.head.hidden_dim = s["hidden_dim"]
    config.head.out_dim = s["out_dim"]
    config.batch_size = s["batch"]
    config.model.dtype = "float32"
    if variant == "jax-no-augment":
        augment.cascade = lambda key, x, *args, **kwargs: x
    if variant == "jax-no-teacher":
        config.teacher.kind = "none"

    # As train_and_evaluate builds and jits the step.
    mesh = train.make_mesh()
    batch_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    tx, schedule = train.make_optimizer(config)
    model, state = train.init_state(config, tx)
    state = jax.device_put(state, replicated)
    if clear_caches:  # drop the executables of the ~100 eager ops that built the state
        jax.clear_caches()
    state_sharding = jax.tree.map(lambda _: replicated, state)
    step_fn = jax.jit(
        train.make_train_step(config, model, tx, schedule),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=(state_sharding, replicated),
        donate_argnums=0,
    )
    host_batch = batch_arrays(s)
    batch = train.to_global(host_batch, batch_sharding)
    r["state_mb"] = sum(x.nbytes for x in jax.tree.leaves(state)) / MB
    r["built"] = memory()

    start = time.perf_counter()
    compiled = step_fn.lower(state, batch).compile()
    r["compile_s"] = time.perf_counter() - start
    r["compile"] = memory()
    if trim:
        release_freed_memory()
        r["trimmed"] = memory()
    ma = compiled.memory_analysis()
    r["xla"] = (
        {
            k: getattr(ma, f"{k}_size_in_bytes") / MB
            for k in ("argument", "output", "alias", "temp", "generated_code")
        }
        if ma
        else None
    )

    r["peak_reset"] = reset_peak()
    old = jax.tree.leaves(state)
    start = time.perf_counter()
    state, out = compiled(state, batch)
    jax.block_until_ready(out)
    r["first_step_s"] = time.perf_counter() - start
    r["donated"] = all(x.is_deleted() for x in old)
    del old
    r["warmup"] = memory()
    times, rss = [], []
    for _ in range(steps):
        start = time.perf_counter()
        batch = train.to_global(host_batch, batch_sharding)
        state, out = compiled(state, batch)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
        rss.append(memory()["rss"])
    r["steps"] = memory()
    r["rss_per_step"] = rss
    r["step_s"] = min(times)
    # Then as train_and_evaluate's loop calls the step: the next step is dispatched
    # while the previous one still runs (JAX's asynchronous dispatch), except in
    # `jax-proposed`, whose loop waits for each step (the proposed fix).
    for _ in range(steps):
        batch = train.to_global(host_batch, batch_sharding)
        state, out = compiled(state, batch)
        if variant == "jax-proposed":
            jax.block_until_ready(out)
    jax.block_until_ready(out)
    r["loop"] = memory()
    r["loss"] = float(out["loss"])
    r["live_arrays_mb"] = sum(x.nbytes for x in jax.live_arrays()) / MB
    return r


def run_torch(s: dict, steps: int, variant: str) -> dict:
    from ahms_fm import host_memory

    keep = variant == "torch-keep-freed" and host_memory.keep_freed_memory()
    import torch
    from torch_reference import make_ssl_train_step

    torch.ones(1).sum()
    r = {
        "keep_freed_memory": keep,
        "version": f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
        "imports": memory(),
    }
    torch.manual_seed(0)
    student, step = make_ssl_train_step(
        s["channels"], s["embed_dim"], s["expansion"], s["hidden_dim"], s["out_dim"]
    )
    host_batch = batch_arrays(s)
    # The loader hands PyTorch float32 [B, C, T] tensors.
    view_a = torch.from_numpy(host_batch["view_a"].astype("float32").transpose(0, 2, 1).copy())
    view_b = torch.from_numpy(host_batch["view_b"].astype("float32").transpose(0, 2, 1).copy())
    ids = torch.from_numpy(host_batch["participant"])
    r["state_mb"] = 2 * sum(p.numel() * 4 for p in student.parameters()) / MB  # + Adam later
    r["built"] = memory()
    r["compile"] = None

    r["peak_reset"] = reset_peak()
    start = time.perf_counter()
    loss = step(view_a, view_b, ids)
    r["first_step_s"] = time.perf_counter() - start
    r["warmup"] = memory()
    times, rss = [], []
    for _ in range(steps):
        start = time.perf_counter()
        loss = step(view_a, view_b, ids)
        times.append(time.perf_counter() - start)
        rss.append(memory()["rss"])
    r["steps"] = memory()
    r["rss_per_step"] = rss
    r["step_s"] = min(times)
    r["loop"] = r["steps"]  # eager PyTorch runs each step to the end before returning
    r["loss"] = float(loss)
    return r


def worker(args) -> None:
    s = json.loads(args.worker_setting)
    sys.path.insert(0, HERE)
    sys.path.insert(0, ROOT)
    run = run_torch if args.worker.startswith("torch") else run_jax
    print("RESULT " + json.dumps(run(s, args.steps, args.worker)), flush=True)


# ----------------------------------------------------------------------------
# The driver: one fresh process per (setting, variant), then the table.
# ----------------------------------------------------------------------------


def measure(setting: dict, variant: str, steps: int) -> dict | None:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        variant,
        "--worker-setting",
        json.dumps(setting),
        "--steps",
        str(steps),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    print(f"  {variant}: failed (exit {proc.returncode}): " + " | ".join(tail))
    return None


def describe(name: str, s: dict) -> str:
    t = int(s["sample_rate"] * s["window_seconds"])
    return (
        f"{name}: PPG {s['channels']} x {t} ({s['window_seconds']:g} s at "
        f"{s['sample_rate']:g} Hz), embed_dim {s['embed_dim']}, head "
        f"{s['embed_dim']}->{s['hidden_dim']}->{s['out_dim']}, batch {s['batch']} pairs "
        f"(student and teacher {2 * s['batch']} segments each), float32"
    )


def _mib(x) -> str:
    return f"{x:,.0f}"


def report(results: dict[str, dict]) -> None:
    ref = results.get("torch")
    header = (
        "variant",
        "imports",
        "built",
        "compile peak",
        "before step 1",
        "warm-up peak",
        "step peak",
        "loop peak",
        "loop peak - imports",
        "vs torch",
        "step (loaded)",
    )
    print("  | " + " | ".join(header) + " |")
    print("  |" + "---|" * len(header))
    for variant, r in results.items():
        own = r["loop"]["hwm"] - r["imports"]["rss"]
        ratio = f"{own / (ref['loop']['hwm'] - ref['imports']['rss']):.2f}x" if ref else "-"
        before = r.get("trimmed") or r.get("compile") or r["built"]
        cells = (
            variant,
            _mib(r["imports"]["rss"]),
            _mib(r["built"]["rss"]),
            _mib(r["compile"]["hwm"]) if r.get("compile") else "-",
            _mib(before["rss"]),
            _mib(r["warmup"]["hwm"]),
            _mib(r["steps"]["hwm"]),
            _mib(r["loop"]["hwm"]),
            _mib(own),
            ratio,
            f"{r['step_s']:.2f} s",
        )
        print("  | " + " | ".join(cells) + " |")
    print(
        "  (MiB resident; peaks are VmHWM, reset after building and compiling; 'before "
        "step 1': after the compile, and after malloc_trim where the variant trims; 'step "
        "peak': waiting for each step; 'loop peak': then as the training loop dispatches)"
    )
    for variant, r in results.items():
        extra = [
            r["version"],
            f"keep_freed_memory={r['keep_freed_memory']}",
            f"state {r['state_mb']:.1f} MiB",
            f"first step {r['first_step_s']:.2f} s",
            f"loss {r['loss']:.3f}",
            "RSS per step " + ", ".join(_mib(x) for x in r["rss_per_step"]),
        ]
        if "xla" in r:
            extra.insert(2, f"compile {r['compile_s']:.1f} s")
            extra.append(f"donated {r['donated']}")
            extra.append(f"live arrays {r['live_arrays_mb']:.1f} MiB")
            if r["xla"]:
                extra.append(
                    "XLA memory_analysis (MiB): "
                    + ", ".join(f"{k} {v:,.1f}" for k, v in r["xla"].items())
                )
        if "malloc_in_use" in r["imports"]:
            stages = [
                k
                for k in ("imports", "built", "compile", "trimmed", "warmup", "steps", "loop")
                if r.get(k)
            ]
            extra.append(
                "malloc in use / free kept (MiB): "
                + ", ".join(
                    f"{k} {_mib(r[k]['malloc_in_use'])} / {_mib(r[k]['malloc_free'])}"
                    for k in stages
                )
            )
        if not r["peak_reset"]:
            extra.append("VmHWM could not be reset: peaks include earlier phases")
        print(f"  {variant}: " + "; ".join(extra))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", nargs="+", default=["study", "full"], choices=SETTINGS)
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=5, help="steps after the warm-up")
    for flag in ("window_seconds", "embed_dim", "hidden_dim", "out_dim", "batch"):
        parser.add_argument(
            "--" + flag.replace("_", "-"),
            type=float if flag == "window_seconds" else int,
            help=f"override {flag} in every selected setting",
        )
    parser.add_argument("--json", help="also write all results to this file")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-setting", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"machine: {cpu}, {os.cpu_count()} cores; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    everything = {}
    for name in args.setting:
        s = dict(SETTINGS[name])
        for flag in ("window_seconds", "embed_dim", "hidden_dim", "out_dim", "batch"):
            if getattr(args, flag) is not None:
                s[flag] = getattr(args, flag)
        print("\n" + describe(name, s))
        results = {}
        for variant in args.variants:
            r = measure(s, variant, args.steps)
            if r is not None:
                results[variant] = r
        report(results)
        everything[name] = {"setting": s, "results": results}
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1)


if __name__ == "__main__":
    main()
