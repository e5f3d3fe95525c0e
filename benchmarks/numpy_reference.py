"""The augmentation cascade as peer codebases run it: per segment, NumPy/SciPy, in the loader.

Same augmentations, parameters and order as `ahms_fm.augment.cascade`; used
by the benchmark as the baseline it has to beat.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline


def _curve(rng, t, sigma, knots, size=()):
    xs = np.linspace(0, t - 1, knots + 2)
    values = rng.normal(1.0, sigma, size=(knots + 2, *size))
    return CubicSpline(xs, values, axis=0)(np.arange(t))


def augment_segment(rng, x, probabilities):
    """One [time, channels] segment through the cascade, each step with its own coin."""
    t, c = x.shape
    x = x.copy()
    if rng.random() < probabilities.get("cut_out", 0.0):
        length = int(rng.uniform(0.3, 0.5) * t)
        start = rng.integers(0, t - length + 1)
        x[start : start + length] = 0.0
    if rng.random() < probabilities.get("magnitude_warp", 0.0):
        x *= _curve(rng, t, 0.2, 5)[:, None]
    if rng.random() < probabilities.get("time_warp", 0.0):
        speed = np.clip(_curve(rng, t, 0.1, 5, (c,)), 1e-2, None)
        warped = np.cumsum(speed, axis=0)
        warped = (warped - warped[0]) * (t - 1) / (warped[-1] - warped[0])
        grid = np.arange(t)
        x = np.stack([np.interp(warped[:, j], grid, x[:, j]) for j in range(c)], axis=1)
    if rng.random() < probabilities.get("gaussian_noise", 0.0):
        x += rng.normal(0.0, rng.uniform(0.05, 0.1), size=x.shape)
    if rng.random() < probabilities.get("channel_permute", 0.0):
        x = x[:, rng.permutation(c)]
    return x


def augment_batch(rng, batch, probabilities):
    return np.stack([augment_segment(rng, s, probabilities) for s in batch])
