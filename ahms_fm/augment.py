"""The paper's stochastic augmentation cascade as pure, batched JAX functions.

Each augmentation is `fn(key, x, **params) -> x` on signals `[batch, time,
channels]` with independent randomness per segment, the paper's parameters as
defaults, and the input's shape and dtype kept. `cascade` applies them in the
paper's order, each with its own coin flip per segment. Everything runs on the
accelerator inside the train step, so a step is reproducible from its key.

Speed: a segment whose coin says "skip" gets the augmentation's identity
parameters (a cut-out of length 0, a flat curve, the identity warp, zero
noise, the identity permutation) instead of a `where` between two copies, so
the whole cascade is three passes over the batch (see `_compose`); splines are
a fixed linear basis (a cubic spline through fixed knots is linear in the
knot values), and the noise comes from a counter-based hash rather than
threefry, whose bit generation alone costs more on a CPU than all the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from scipy.interpolate import CubicSpline

ORDER = ("cut_out", "magnitude_warp", "time_warp", "gaussian_noise", "channel_permute")


# ----------------------------------------------------------------------------
# Splines through equally spaced knots, as a fixed basis.
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def spline_basis(length: int, knots: int, integrate: bool = False) -> np.ndarray:
    """[knots + 2, length] basis of cubic splines through equally spaced knots.

    `values @ basis` gives, for each row of knot values (ends included), the
    curve `scipy.interpolate.CubicSpline` (not-a-knot ends) draws through them
    at 0, 1, ..., length - 1; with `integrate`, its integral from 0 instead.
    """
    n = knots + 2
    spline = CubicSpline(np.linspace(0.0, length - 1.0, n), np.eye(n), axis=0)
    if integrate:
        spline = spline.antiderivative()
    basis = spline(np.arange(length)).T
    return basis.astype(np.float32)


def spline_curves(values: jax.Array, length: int, integrate: bool = False) -> jax.Array:
    """Cubic splines (or their integrals) through `values` [..., n]: [..., length]."""
    basis = jnp.asarray(spline_basis(length, values.shape[-1] - 2, integrate))
    # A matmul, not a weighted sum of rows: XLA then computes each curve once
    # (a fused sum of rows measured 3-20x slower inside the cascade on a CPU).
    return jnp.matmul(values, basis, precision=jax.lax.Precision.HIGHEST)


# ----------------------------------------------------------------------------
# Noise from a counter-based hash.
# ----------------------------------------------------------------------------


def _mix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finalizer: a bijection with full avalanche."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def hashed_normal(key, shape, dtype=jnp.float32) -> jax.Array:
    """Standard normal samples as a pure function of (key, index).

    The counter of each sample is hashed twice (keyed with two words drawn from
    `key`); the top 24 bits give a uniform in (-1, 1), mapped to a normal by the
    inverse error function, as `jax.random.normal` does with threefry's bits.
    """
    seed = jax.random.bits(key, (2,), jnp.uint32)
    counter = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape)
    h = _mix32(_mix32(counter * jnp.uint32(0x9E3779B9) ^ seed[0]) ^ seed[1])
    u = ((h >> 8).astype(jnp.float32) + 0.5) * (2.0 / (1 << 24)) - 1.0
    return (np.sqrt(2.0) * jax.lax.erf_inv(u)).astype(dtype)


# ----------------------------------------------------------------------------
# Random parameters of each augmentation, one draw per segment. A segment whose
# `where` is False gets the identity: no stretch cut, a flat curve, the
# identity warp, zero noise, the identity permutation.
# ----------------------------------------------------------------------------


def _cut_out_gain(key, b, t, where, min_fraction=0.3, max_fraction=0.5):
    """[b, t] mask that zeros a stretch of 30-50% of each selected segment."""
    k_len, k_start = jax.random.split(key)
    frac = jax.random.uniform(k_len, (b,), minval=min_fraction, maxval=max_fraction)
    length = jnp.where(where, jnp.floor(frac * t), 0.0)
    start = jnp.floor(jax.random.uniform(k_start, (b,)) * (t - length + 1))
    time = jnp.arange(t, dtype=jnp.float32)[None, :]
    return ((time < start[:, None]) | (time >= (start + length)[:, None])).astype(jnp.float32)


def _magnitude_gain(key, b, t, where, sigma=0.2, knots=5):
    """[b, t] smooth curves through knots ~ N(1, sigma)."""
    curves = spline_curves(1.0 + sigma * jax.random.normal(key, (b, knots + 2)), t)
    # Exactly 1 where not selected (a spline through ones is 1 only up to rounding).
    return jnp.where(where[:, None], curves, 1.0)


def _warp_positions(key, b, t, c, where, sigma=0.1, knots=5):
    """[b, t, c] input time read by each output sample: a monotone warp, ends kept.

    The warp's speed is a cubic through knots ~ N(1, sigma), clipped to
    [0.5, 1.5] (5 sigma at the paper's 0.1), where every such spline stays
    positive; its integral, scaled to run from 0 to t - 1, is the warp.
    """
    values = jnp.clip(1.0 + sigma * jax.random.normal(key, (b, c, knots + 2)), 0.5, 1.5)
    warped = spline_curves(values, t, integrate=True)  # [b, c, t], 0 at the start
    warped = jnp.clip(warped * ((t - 1) / warped[..., -1:]), 0.0, t - 1.0)
    identity = jnp.arange(t, dtype=warped.dtype)  # exact, unlike a spline through ones
    return jnp.swapaxes(jnp.where(where[:, None, None], warped, identity), 1, 2)


def _noise_sigma(key, b, where, min_sigma=0.05, max_sigma=0.1):
    sigma = jax.random.uniform(key, (b,), minval=min_sigma, maxval=max_sigma)
    return jnp.where(where, sigma, 0.0)


def _permutation(key, b, c, where):
    """[b, c] source channel of each output channel."""
    perm = jnp.argsort(jax.random.uniform(key, (b, c)), axis=-1)
    return jnp.where(where[:, None], perm, jnp.arange(c))


def _compose(x, gain=None, warp=None, perm=None, noise=None):
    """The cascade's whole effect in three passes over the batch.

    y[b, t, o] = interp_{s = positions[b, t, o]} (x[b, s, perm[b, o]] * gain[b, s]) + noise.

    Cut-out and magnitude warp are gains over time shared by the channels,
    applied with the permutation in one elementwise pass; the warp then
    gathers from that materialized result, and the noise is added last. The
    warp and the noise each sit in a `lax.cond` that skips them when no
    segment of the batch drew them; the conditional is also a fusion
    boundary, without which XLA fuses every stage into the gather loop and
    recomputes it per gathered sample (10x slower on a CPU).

    Args:
      gain: [b, t] or None. warp: (positions [b, t, c], selected [b]) or None.
      perm: [b, c] source channel of each output channel, or None.
      noise: (sigma [b], key) or None.
    """
    c = x.shape[-1]
    if perm is not None:
        onehot = (perm[:, None, :, None] == jnp.arange(c)).astype(x.dtype)
        x = sum(x[:, :, None, i] * onehot[..., i] for i in range(c))
    if gain is not None:
        x = x * gain[:, :, None].astype(x.dtype)
    if warp is not None:
        positions, selected = warp
        x = jax.lax.cond(jnp.any(selected), _resample, lambda x, _: x, x, positions)
    if noise is not None:
        sigma, key = noise

        def add_noise(x):
            return x + (sigma[:, None, None] * hashed_normal(key, x.shape)).astype(x.dtype)

        x = jax.lax.cond(jnp.any(sigma > 0), add_noise, lambda x: x, x)
    return x


def _resample(x, positions):
    """Linear interpolation of each channel of x [b, t, c] at positions [b, t, c]."""
    b, t, c = x.shape
    lo = jnp.clip(jnp.floor(positions), 0, t - 2)
    frac = (positions - lo).astype(x.dtype)
    # Flat indices into x: one plain 1-D gather per neighbour.
    flat = (jnp.arange(b, dtype=jnp.int32)[:, None, None] * t + lo.astype(jnp.int32)) * c
    flat = flat + jnp.arange(c, dtype=jnp.int32)
    x_flat = x.reshape(-1)
    left = jnp.take(x_flat, flat, mode="clip")
    right = jnp.take(x_flat, flat + c, mode="clip")
    # (1 - f) a + f b is exact at f = 0 and f = 1: the identity warp is exact.
    return (1 - frac) * left + frac * right


# ----------------------------------------------------------------------------
# The augmentations, each on its own.
# ----------------------------------------------------------------------------


def _selected(x, where):
    return jnp.ones((x.shape[0],), bool) if where is None else where


def cut_out(key, x, min_fraction: float = 0.3, max_fraction: float = 0.5, where=None):
    """Zero a random stretch of 30-50% of the time axis (all channels) in each segment.

    `where` ([batch] bool), as for every augmentation here, limits it to some segments.
    """
    b, t, _ = x.shape
    gain = _cut_out_gain(key, b, t, _selected(x, where), min_fraction, max_fraction)
    return _compose(x, gain=gain)


def magnitude_warp(key, x, sigma: float = 0.2, knots: int = 5, where=None):
    """Multiply each segment by a smooth random curve (cubic through knots ~ N(1, sigma))."""
    b, t, _ = x.shape
    return _compose(x, gain=_magnitude_gain(key, b, t, _selected(x, where), sigma, knots))


def time_warp(key, x, sigma: float = 0.1, knots: int = 5, where=None):
    """Resample each channel along its own smooth monotone time warp, keeping the ends."""
    b, t, c = x.shape
    where = _selected(x, where)
    return _compose(x, warp=(_warp_positions(key, b, t, c, where, sigma, knots), where))


def gaussian_noise(key, x, min_sigma: float = 0.05, max_sigma: float = 0.1, where=None):
    """Add white noise with a standard deviation ~ U[min_sigma, max_sigma] per segment."""
    k_sigma, k_noise = jax.random.split(key)
    sigma = _noise_sigma(k_sigma, x.shape[0], _selected(x, where), min_sigma, max_sigma)
    return _compose(x, noise=(sigma, k_noise))


def channel_permute(key, x, where=None):
    """Shuffle the channels of each segment with its own random permutation."""
    b, _, c = x.shape
    return _compose(x, perm=_permutation(key, b, c, _selected(x, where)))


AUGMENTATIONS = {
    "cut_out": cut_out,
    "magnitude_warp": magnitude_warp,
    "time_warp": time_warp,
    "gaussian_noise": gaussian_noise,
    "channel_permute": channel_permute,
}


def cascade(
    key,
    x,
    probabilities: Mapping[str, float],
    params: Mapping[str, Mapping] | None = None,
):
    """Apply the augmentations in the paper's order, each with its own coin per segment.

    Equivalent to applying `cut_out`, `magnitude_warp`, `time_warp`,
    `gaussian_noise` and `channel_permute` one after another, each to the
    segments its coin selects; computed in three passes (see `_compose`).
    The channel permutation is applied to the input instead of last: every
    other augmentation treats channels exchangeably (one gain for all
    channels, i.i.d. warps and noise per channel), so the distribution of the
    output is the same.

    Args:
      key: PRNG key; the result is a function of (key, x).
      x: signals [batch, time, channels].
      probabilities: name -> probability for names in `ORDER` (Python floats;
        a missing name or 0 skips that augmentation at trace time).
      params: optional name -> keyword arguments of that augmentation.
    """
    params = dict(params or {})
    unknown = (set(probabilities) | set(params)) - set(ORDER)
    if unknown:
        raise ValueError(f"unknown augmentations {sorted(unknown)}; known: {ORDER}")
    b, t, c = x.shape
    draws = {}
    for name, k in zip(ORDER, jax.random.split(key, len(ORDER)), strict=True):
        p = float(probabilities.get(name, 0.0))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability of {name} must be in [0, 1], got {p}")
        if p > 0.0:
            k_coin, k_draw = jax.random.split(k)
            draws[name] = (jax.random.bernoulli(k_coin, p, (b,)), k_draw, params.get(name, {}))

    gain = warp = perm = noise = None
    if "cut_out" in draws:
        where, k, kw = draws["cut_out"]
        gain = _cut_out_gain(k, b, t, where, **kw)
    if "magnitude_warp" in draws:
        where, k, kw = draws["magnitude_warp"]
        curve = _magnitude_gain(k, b, t, where, **kw)
        gain = curve if gain is None else gain * curve
    if "time_warp" in draws:
        where, k, kw = draws["time_warp"]
        warp = (_warp_positions(k, b, t, c, where, **kw), where)
    if "gaussian_noise" in draws:
        where, k, kw = draws["gaussian_noise"]
        k_sigma, k_noise = jax.random.split(k)
        noise = (_noise_sigma(k_sigma, b, where, **kw), k_noise)
    if "channel_permute" in draws:
        where, k, kw = draws["channel_permute"]
        perm = _permutation(k, b, c, where, **kw)
    return _compose(x, gain, warp, perm, noise)


def from_config(augment_config) -> tuple[dict[str, float], dict[str, dict]]:
    """(probabilities, params) for `cascade` from a config's `augment` section."""
    probabilities, params = {}, {}
    for name in ORDER:
        entry = dict(augment_config[name])
        probabilities[name] = float(entry.pop("p"))
        params[name] = entry
    return probabilities, params
