"""Augmentations: frequencies, parameters, invariants, and splines against SciPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.interpolate import CubicSpline

from ahms_fm import augment

PAPER_PPG = dict(
    cut_out=0.40, magnitude_warp=0.25, time_warp=0.15, gaussian_noise=0.25, channel_permute=0.25
)


def _signals(b=512, t=384, c=4, seed=0):
    # Smooth, non-zero signals with distinct channels (offsets 1..c): every
    # augmentation visibly changes them.
    rng = np.random.default_rng(seed)
    time = np.arange(t) / t
    phase = rng.uniform(0, 2 * np.pi, size=(b, 1, c))
    x = np.sin(2 * np.pi * 3 * time[None, :, None] + phase) + np.arange(1, c + 1) * 3.0
    return jnp.asarray(x, jnp.float32)


def _binomial_bounds(n, p, z=4.0):
    sd = np.sqrt(n * p * (1 - p))
    return n * p - z * sd, n * p + z * sd


@pytest.mark.parametrize("name", augment.ORDER)
@pytest.mark.parametrize("p", [0.15, 0.5])
def test_each_augmentation_fires_at_its_probability(name, p):
    x = _signals(b=2000)
    y = jax.jit(lambda k, x: augment.cascade(k, x, {name: p}))(jax.random.key(1), x)
    changed = int(np.sum(np.any(np.asarray(y) != np.asarray(x), axis=(1, 2))))
    # A random permutation of 4 channels is the identity with probability 1/24.
    effective = p * (1 - 1 / 24) if name == "channel_permute" else p
    lo, hi = _binomial_bounds(len(x), effective)
    assert lo <= changed <= hi, (name, p, changed, len(x) * effective)


def test_coins_are_independent_between_augmentations():
    x = _signals(b=4000)
    probs = {"cut_out": 0.4, "channel_permute": 0.5}
    y = np.asarray(augment.cascade(jax.random.key(2), x, probs))
    cut = np.any(np.all(y == 0, axis=2), axis=1)
    # Where the signal survives, channel o holds 3 (o + 1) +- 1 unless another channel moved there.
    alive = np.all(y != 0, axis=2)
    home = 3.0 * np.arange(1, 5)
    permuted = np.array([np.any(np.abs(y[i, alive[i]] - home) > 1.5) for i in range(len(y))])
    n = len(y)
    for event, p in [(cut, 0.4), (permuted, 0.5 * 23 / 24), (cut & permuted, 0.4 * 0.5 * 23 / 24)]:
        lo, hi = _binomial_bounds(n, p)
        assert lo <= event.sum() <= hi


def test_cut_out_zeros_one_stretch_of_30_to_50_percent():
    x = jnp.ones((1000, 500, 2))
    y = np.asarray(augment.cut_out(jax.random.key(3), x))
    zero = np.all(y == 0, axis=2)  # all channels together
    assert np.array_equal(zero, np.any(y == 0, axis=2))
    fraction = zero.mean(axis=1)
    assert fraction.min() >= 0.3 - 1 / 500 and fraction.max() <= 0.5
    # One contiguous stretch per segment, at varied places and lengths.
    runs = np.sum(np.diff(zero.astype(int), axis=1) == 1, axis=1) + zero[:, 0]
    assert np.all(runs == 1)
    starts = zero.argmax(axis=1)
    assert len(np.unique(starts)) > 200 and fraction.std() > 0.04
    assert starts.min() == 0 or starts.min() < 20  # reaches the edges
    assert (starts + zero.sum(1)).max() >= 490


def test_time_warp_keeps_length_ends_and_order():
    b, t, c = 64, 1000, 3
    ramp = jnp.broadcast_to(jnp.arange(t, dtype=jnp.float32)[None, :, None], (b, t, c))
    y = np.asarray(augment.time_warp(jax.random.key(4), ramp))
    assert y.shape == (b, t, c)
    np.testing.assert_array_equal(y[:, 0], 0.0)
    np.testing.assert_allclose(y[:, -1], t - 1, rtol=1e-6)
    # Warping a ramp shows the warp itself: monotone, smooth, not the identity,
    # and different for each channel.
    assert np.all(np.diff(y, axis=1) > 0)
    displacement = np.abs(y - np.asarray(ramp)).max(axis=1)
    assert displacement.min() > 0.5 and displacement.max() < 0.2 * t
    assert np.all(np.abs(y[:, :, 0] - y[:, :, 1]).max(axis=1) > 0.1)


def test_identity_parameters_leave_segments_untouched():
    x = _signals(b=32)
    where = jnp.arange(32) % 2 == 0
    for name, fn in augment.AUGMENTATIONS.items():
        y = np.asarray(fn(jax.random.key(5), x, where=where))
        np.testing.assert_array_equal(y[1::2], np.asarray(x)[1::2], err_msg=name)
        assert np.any(y[0::2] != np.asarray(x)[0::2]), name


def test_magnitude_warp_is_a_shared_smooth_curve_around_one():
    x = jnp.ones((500, 400, 3))
    y = np.asarray(augment.magnitude_warp(jax.random.key(6), x))
    np.testing.assert_array_equal(y[:, :, 0], y[:, :, 2])  # same curve on every channel
    assert abs(y.mean() - 1.0) < 0.02
    # Knot values ~ N(1, 0.2): the ends are knots.
    assert abs(y[:, 0, 0].std() - 0.2) < 0.03 and abs(y[:, -1, 0].std() - 0.2) < 0.03
    assert np.abs(np.diff(y[:, :, 0], axis=1, n=2)).max() < 5e-3  # smooth


def test_spline_basis_matches_scipy_cubic_spline():
    rng = np.random.default_rng(7)
    values = rng.normal(1.0, 0.2, size=(5, 7))
    t = 997
    got = np.asarray(augment.spline_curves(jnp.asarray(values, jnp.float32), t))
    knots = np.linspace(0, t - 1, 7)
    want = CubicSpline(knots, values, axis=1)(np.arange(t))
    np.testing.assert_allclose(got, want, atol=1e-5)
    integral = np.asarray(augment.spline_curves(jnp.asarray(values, jnp.float32), t, True))
    want_integral = CubicSpline(knots, values, axis=1).antiderivative()(np.arange(t))
    np.testing.assert_allclose(integral, want_integral, rtol=1e-5, atol=1e-3)


def test_spline_speed_stays_positive_for_every_clipped_knot_pattern():
    # Each spline value is linear in the knots, so its minimum over the box
    # [0.5, 1.5]^7 is at a corner: checking the 128 corners proves positivity.
    corners = np.array(np.meshgrid(*[[0.5, 1.5]] * 7)).reshape(7, -1).T
    speed = np.asarray(augment.spline_curves(jnp.asarray(corners, jnp.float32), 3840))
    assert speed.min() > 0.01


def test_gaussian_noise_levels():
    x = jnp.zeros((400, 2000, 1))
    y = np.asarray(augment.gaussian_noise(jax.random.key(8), x))
    sd = y.std(axis=(1, 2))
    assert sd.min() > 0.05 * 0.95 and sd.max() < 0.1 * 1.05
    assert stats.kstest(sd, "uniform", args=(0.05, 0.05)).pvalue > 1e-3
    z = y[0, :, 0] / sd[0]
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_hashed_normal_is_finite_at_the_extreme_hashes():
    h = jnp.array([0, 1, 255, 511, 2**31, 2**32 - 512, 2**32 - 256, 2**32 - 1], jnp.uint32)
    z = np.asarray(augment.bits_to_normal(h))
    assert np.isfinite(z).all() and np.abs(z).max() < 6.0
    assert z[0] < -5.0 and z[-1] > 5.0 and z[0] == -z[-1]  # symmetric, both tails reached


def test_hashed_normal_is_standard_normal_and_independent():
    z = np.asarray(augment.hashed_normal(jax.random.key(9), (200_000,)))
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.01
    other = np.asarray(augment.hashed_normal(jax.random.key(10), (200_000,)))
    assert abs(np.corrcoef(z, other)[0, 1]) < 0.01
    again = np.asarray(augment.hashed_normal(jax.random.key(9), (200_000,)))
    np.testing.assert_array_equal(z, again)


def test_channel_permute_permutes_channels_per_segment():
    x = _signals(b=300)
    y = np.asarray(augment.channel_permute(jax.random.key(11), x))
    xs = np.asarray(x)
    orders = set()
    for i in range(len(y)):
        match = [int(np.flatnonzero(np.all(xs[i] == y[i][:, [o]], axis=0))[0]) for o in range(4)]
        assert sorted(match) == [0, 1, 2, 3]
        orders.add(tuple(match))
    assert len(orders) == 24  # every permutation of 4 channels occurs


def test_cascade_is_pure_deterministic_and_keeps_shape_and_dtype():
    x = _signals(b=16)
    f = jax.jit(lambda k, x: augment.cascade(k, x, PAPER_PPG))
    a, b = f(jax.random.key(12), x), f(jax.random.key(12), x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(f(jax.random.key(13), x)))
    assert a.shape == x.shape and a.dtype == x.dtype
    xb = x.astype(jnp.bfloat16)
    yb = augment.cascade(jax.random.key(12), xb, PAPER_PPG)
    assert yb.dtype == jnp.bfloat16 and yb.shape == x.shape
    # Every segment gets its own draw: no two segments share a result.
    same = np.asarray(x)[0:1].repeat(16, 0)
    out = np.asarray(augment.cascade(jax.random.key(14), jnp.asarray(same), {"time_warp": 1.0}))
    assert len({o.tobytes() for o in out}) == 16


def test_cascade_order_is_the_papers():
    # Noise after cut-out: the cut stretch is not exactly zero when both fire.
    x = _signals(b=64)
    y = np.asarray(augment.cascade(jax.random.key(15), x, {"cut_out": 1.0, "gaussian_noise": 1.0}))
    assert not np.any(np.all(y == 0, axis=2))
    # Cut-out before the time warp: the zeroed stretch is warped (its ends
    # interpolate), not cut after warping with straight edges only.
    y = np.asarray(augment.cascade(jax.random.key(16), x, {"cut_out": 1.0, "time_warp": 1.0}))
    zero = np.all(y == 0, axis=2).mean(1)
    assert zero.min() > 0.2 and zero.max() < 0.6


def test_cascade_rejects_bad_arguments():
    x = _signals(b=4)
    with pytest.raises(ValueError, match="unknown augmentations"):
        augment.cascade(jax.random.key(0), x, {"cutout": 0.5})
    with pytest.raises(ValueError, match="probability"):
        augment.cascade(jax.random.key(0), x, {"cut_out": 1.5})


def test_from_config_reads_probabilities_and_params():
    from conftest import load_config

    probs, params = augment.from_config(load_config("ecg").augment)
    assert probs == {
        "cut_out": 0.8,
        "magnitude_warp": 0.5,
        "time_warp": 0.3,
        "gaussian_noise": 0.5,
        "channel_permute": 0.0,
    }
    assert params["cut_out"] == {"min_fraction": 0.3, "max_fraction": 0.5}
    assert params["time_warp"] == {"sigma": 0.1, "knots": 5}


@pytest.mark.parametrize("cap", ["full", "overflow"])
def test_cascade_on_selected_rows_matches_the_whole_batch(monkeypatch, cap):
    # The cascade computes the time warp and the noise on the selected
    # segments only (a buffer of `augment.capacity` rows), falling back to the
    # whole batch when more are selected: all three give the same result.
    x = _signals(b=64, t=256)
    probs = {**PAPER_PPG, "time_warp": 0.3, "gaussian_noise": 0.3}

    def f():
        return np.asarray(jax.jit(lambda k, x: augment.cascade(k, x, probs))(jax.random.key(17), x))

    compact = f()
    assert augment.capacity(64, 0.3) < 64  # the default really sets rows aside
    monkeypatch.setattr(augment, "capacity", lambda b, p: b if cap == "full" else 2)
    np.testing.assert_allclose(f(), compact, rtol=1e-6, atol=1e-6)  # spline matmul rounding
