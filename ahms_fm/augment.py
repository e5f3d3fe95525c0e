"""The paper's stochastic augmentation cascade as pure, batched JAX functions.

Each augmentation is `fn(key, x, **params) -> x` on signals `[batch, time,
channels]` with independent randomness per segment, the paper's parameters as
defaults, and the input's shape and dtype kept. `cascade` applies them in the
paper's order, each with its own coin flip per segment. Everything runs on the
accelerator inside the train step, so a step is reproducible from its key.

Speed: a segment whose coin says "skip" gets the augmentation's identity
parameters (a cut-out of length 0, a flat curve, the identity warp, zero
noise, the identity permutation) instead of a `where` between two copies, so
the cut-out, magnitude warp and permutation are one pass over the batch; the
time warp and the noise, which only some segments draw, are computed on those
segments alone and scattered back (see `_compose`); splines are a fixed linear
basis (a cubic spline through fixed knots is linear in the
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

    The counter of each sample (its flat index in `shape`) is hashed twice
    (keyed with two words drawn from `key`); the top 24 bits give a uniform in
    (-1, 1), mapped to a normal by the inverse error function, as
    `jax.random.normal` does with threefry's bits.
    """
    counter = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape)
    return hashed_normal_at(key, counter, dtype)


def hashed_normal_at(key, counter: jax.Array, dtype=jnp.float32) -> jax.Array:
    """`hashed_normal`'s samples at the given flat indices (uint32 counters)."""
    seed = jax.random.bits(key, (2,), jnp.uint32)
    h = _mix32(_mix32(counter * jnp.uint32(0x9E3779B9) ^ seed[0]) ^ seed[1])
    return bits_to_normal(h).astype(dtype)


def bits_to_normal(h: jax.Array) -> jax.Array:
    """uint32 hashes -> standard normal float32, always finite.

    The top 23 bits give a uniform strictly inside (-1, 1): (k + 0.5) is exact in
    float32 for k < 2^23. With 24 bits, k = 2^24 - 1 rounded k + 0.5 up to 2^24, so
    u = 1 and erf_inv(1) = inf, once in 2^24 samples: a training run met it at step 112.
    """
    u = ((h >> 9).astype(jnp.float32) + 0.5) * (2.0 / (1 << 23)) - 1.0
    return np.sqrt(2.0) * jax.lax.erf_inv(u)


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


def _warp_knots(key, b, c, where, sigma=0.1, knots=5):
    """[b, c, knots + 2] speeds of each channel's warp at its knots (see `_warp_positions`)."""
    del where  # unselected segments get the identity in `_warp_positions`
    return jnp.clip(1.0 + sigma * jax.random.normal(key, (b, c, knots + 2)), 0.5, 1.5)


def _warp_positions(values, where, t):
    """[b, t, c] input time read by each output sample: a monotone warp, ends kept.

    The warp's speed is a cubic through `values` [b, c, knots + 2] ~ N(1, sigma),
    clipped to [0.5, 1.5] (5 sigma at the paper's 0.1), where every such spline
    stays positive; its integral, scaled to run from 0 to t - 1, is the warp.
    Segments whose `where` is False get the identity.
    """
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


def capacity(batch: int, p: float, z: float = 5.0) -> int:
    """Rows set aside for the segments an augmentation of probability `p` selects.

    The mean plus `z` standard deviations of the binomial count, rounded up to
    a multiple of 8: at z = 5 a batch overflows it about once in 3 million
    (and is then computed on all rows, so the result never changes). Returns
    `batch` when setting rows aside would not save much.
    """
    cap = batch * p + z * np.sqrt(batch * p * (1.0 - p))
    cap = int(np.ceil(cap / 8.0) * 8)
    return batch if cap >= 0.75 * batch else cap


def _on_selected_rows(fn, x, where, cap, add=False):
    """Replace (or, with `add`, increment) the rows of `x` that `where` selects by `fn`'s.

    `fn(index, selected)` computes new rows [n, t, c] for the segments
    `index` [n] of `x`, reading `x` itself if it needs to; a row whose
    `selected` flag is False must come out unchanged (or zero, with `add`).
    With `cap` < batch it runs on the (at most `cap`) selected segments only,
    whose rows are then scattered into `x` (padding rows, index = batch, are
    dropped); when more than `cap` segments are selected, it runs on the whole
    batch instead, so the result does not depend on `cap` (beyond the float
    rounding of a matmul over a different number of rows).
    """
    b = x.shape[0]

    def everything(x):
        rows = fn(jnp.arange(b, dtype=jnp.int32), where)
        return x + rows if add else rows

    if cap >= b:
        return everything(x)

    def compact(x):
        index = jnp.nonzero(where, size=cap, fill_value=b)[0].astype(jnp.int32)
        rows = fn(index, index < b)
        at = x.at[index]
        kw = dict(mode="drop", unique_indices=True, indices_are_sorted=True)
        return at.add(rows, **kw) if add else at.set(rows, **kw)

    return jax.lax.cond(jnp.sum(where) > cap, everything, compact, x)


def _compose(x, gain=None, warp=None, perm=None, noise=None):
    """The cascade's whole effect: a pass over the batch, then work on selected rows only.

    y[b, t, o] = interp_{s = positions[b, t, o]} (x[b, s, perm[b, o]] * gain[b, s]) + noise.

    Cut-out and magnitude warp are gains over time shared by the channels,
    applied with the permutation in one elementwise pass over the batch. The
    time warp and the noise then each run on the segments their coins select
    only (see `_on_selected_rows`): the warp's positions and the gather that
    resamples, and the noise, are computed for those rows alone and scattered
    into the batch. The noise of sample (segment i, time s, channel j) is a
    function of the key and of (i, s, j) only, the same whichever rows are
    set aside. Each stage sits in a `lax.cond` that skips it when no segment
    drew it; the conditional is also a fusion boundary, without which XLA
    fuses the gain pass into the resampling gather and recomputes it per
    gathered sample (10x slower on a CPU).

    Args:
      gain: [b, t] or None. perm: [b, c] source channel of each output channel, or None.
      warp: (knot values [b, c, n], selected [b], capacity) or None.
      noise: (sigma [b], key, selected [b], capacity) or None.
    """
    _, t, c = x.shape
    if perm is not None:
        onehot = (perm[:, None, :, None] == jnp.arange(c)).astype(x.dtype)
        x = sum(x[:, :, None, i] * onehot[..., i] for i in range(c))
    if gain is not None:
        x = x * gain[:, :, None].astype(x.dtype)
    if warp is not None:
        values, selected, cap = warp

        def warp_rows(x, index, sel):
            positions = _warp_positions(jnp.take(values, index, axis=0, mode="clip"), sel, t)
            return _resample(x, index, positions)

        x = jax.lax.cond(
            jnp.any(selected),
            lambda x: _on_selected_rows(functools.partial(warp_rows, x), x, selected, cap),
            lambda x: x,
            x,
        )
    if noise is not None:
        sigma, key, selected, cap = noise

        def noise_rows(index, sel):
            s = jnp.where(sel, jnp.take(sigma, index, mode="clip"), 0.0)
            counter = index.astype(jnp.uint32)[:, None, None] * jnp.uint32(t * c) + jax.lax.iota(
                jnp.uint32, t * c
            ).reshape(1, t, c)
            return (s[:, None, None] * hashed_normal_at(key, counter)).astype(x.dtype)

        x = jax.lax.cond(
            jnp.any(selected),
            lambda x: _on_selected_rows(noise_rows, x, selected, cap, add=True),
            lambda x: x,
            x,
        )
    return x


def _resample(x, index, positions):
    """Linear interpolation of each channel of the segments `index` of x [b, t, c].

    positions [n, t, c] are the times read for segment index[n] (clipped to the batch).
    """
    b, t, c = x.shape
    lo = jnp.clip(jnp.floor(positions), 0, t - 2)
    frac = (positions - lo).astype(x.dtype)
    # Flat indices into x: one plain 1-D gather per neighbour.
    row = jnp.minimum(index, b - 1)[:, None, None]
    flat = (row * t + lo.astype(jnp.int32)) * c + jnp.arange(c, dtype=jnp.int32)
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
    b, _, c = x.shape
    where = _selected(x, where)
    return _compose(x, warp=(_warp_knots(key, b, c, where, sigma, knots), where, b))


def gaussian_noise(key, x, min_sigma: float = 0.05, max_sigma: float = 0.1, where=None):
    """Add white noise with a standard deviation ~ U[min_sigma, max_sigma] per segment."""
    k_sigma, k_noise = jax.random.split(key)
    where = _selected(x, where)
    sigma = _noise_sigma(k_sigma, x.shape[0], where, min_sigma, max_sigma)
    return _compose(x, noise=(sigma, k_noise, where, x.shape[0]))


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
    cap = {name: capacity(b, float(probabilities[name])) for name in draws}
    if "cut_out" in draws:
        where, k, kw = draws["cut_out"]
        gain = _cut_out_gain(k, b, t, where, **kw)
    if "magnitude_warp" in draws:
        where, k, kw = draws["magnitude_warp"]
        curve = _magnitude_gain(k, b, t, where, **kw)
        gain = curve if gain is None else gain * curve
    if "time_warp" in draws:
        where, k, kw = draws["time_warp"]
        warp = (_warp_knots(k, b, c, where, **kw), where, cap["time_warp"])
    if "gaussian_noise" in draws:
        where, k, kw = draws["gaussian_noise"]
        k_sigma, k_noise = jax.random.split(k)
        noise = (_noise_sigma(k_sigma, b, where, **kw), k_noise, where, cap["gaussian_noise"])
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
