"""Benchmarks of the self-supervised core on this machine, printed side by side.

    python benchmarks/run.py [--quick]

(a) the augmentation cascade at batch 256 on 4 x 3,840 PPG segments: the
    jitted JAX cascade against a per-segment NumPy/SciPy implementation;
(b) the PPG encoder's training throughput (forward + backward, batch 32):
    JAX with each depthwise-convolution form against eager PyTorch (when
    PyTorch is installed; it is not a dependency).

Both run with glibc told to keep freed memory (`ahms_fm.host_memory`), as the
project's entry points do; `--default-malloc` measures without it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from ahms_fm import host_memory

# Before JAX or PyTorch start their threads (see ahms_fm/host_memory.py).
KEEP_FREED_MEMORY = "--default-malloc" not in sys.argv and host_memory.keep_freed_memory()

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(__file__))
from numpy_reference import augment_batch

from ahms_fm import augment
from ahms_fm.models import EfficientNet1D

PPG = dict(
    cut_out=0.40, magnitude_warp=0.25, time_warp=0.15, gaussian_noise=0.25, channel_permute=0.25
)


def best_of(fn, repeats):
    """Minimum wall time of `fn()` over `repeats` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_augment(repeats):
    batch = np.random.default_rng(0).normal(size=(256, 3840, 4)).astype(np.float32)
    x = jnp.asarray(batch)
    cascade = jax.jit(lambda k, x: augment.cascade(k, x, PPG))
    keys = iter(jax.random.split(jax.random.key(0), 1000))
    t_jax = best_of(lambda: cascade(next(keys), x).block_until_ready(), repeats)
    rng = np.random.default_rng(1)
    t_np = best_of(lambda: augment_batch(rng, batch, PPG), max(2, repeats // 3))
    print("\n(a) augmentation cascade, batch 256 x 3840 x 4 (PPG probabilities)")
    print(f"  {'numpy/scipy per segment':28s} {t_np * 1e3:8.1f} ms  {t_np / 256 * 1e6:7.1f} us/seg")
    print(f"  {'jax cascade (jit)':28s} {t_jax * 1e3:8.1f} ms  {t_jax / 256 * 1e6:7.1f} us/seg")
    print(f"  speed-up: {t_np / t_jax:.1f}x")
    return t_np, t_jax


def jax_train_step(impl, batch):
    model = EfficientNet1D(4, 256, 7, depthwise_impl=impl, rngs=nnx.Rngs(0))
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def step(params, rest, x):
        def loss(params, rest):
            m = nnx.merge(graphdef, params, rest, copy=True)
            return jnp.mean(m(x) ** 2), nnx.state(m, nnx.Not(nnx.Param))

        (value, rest), grads = jax.value_and_grad(loss, has_aux=True)(params, rest)
        return value, rest, grads

    x = jax.random.normal(jax.random.key(1), (batch, 3840, 4))
    return lambda: jax.block_until_ready(step(params, rest, x))


def torch_train_step(batch):
    import torch
    from torch_reference import TorchEfficientNet1D

    model = TorchEfficientNet1D(4, 256, 7).train()
    x = torch.randn(batch, 4, 3840)

    def step():
        model.zero_grad(set_to_none=True)
        (model(x) ** 2).mean().backward()

    return step, torch.__version__, torch.get_num_threads()


def bench_encoder(repeats, batch=32):
    print(f"\n(b) PPG encoder training step (forward + backward), batch {batch}")
    rows = []
    try:
        step, version, threads = torch_train_step(batch)
        rows.append((f"pytorch {version} eager ({threads} threads)", best_of(step, repeats)))
    except ImportError:
        print("  (PyTorch not installed: `pip install torch` to compare)")
    for impl in ("shift", "xla"):
        rows.append((f"jax jit, depthwise={impl}", best_of(jax_train_step(impl, batch), repeats)))
    base = rows[0][1]
    for name, t in rows:
        print(f"  {name:36s} {t * 1e3:8.0f} ms  {batch / t:6.1f} seg/s  {base / t:5.2f}x")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", choices=("augment", "encoder"))
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc as it is (see ahms_fm/host_memory.py)",
    )
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}; "
        f"malloc keeps freed memory: {KEEP_FREED_MEMORY}"
    )
    if args.only != "encoder":
        bench_augment(repeats)
    if args.only != "augment":
        bench_encoder(repeats)


if __name__ == "__main__":
    main()
