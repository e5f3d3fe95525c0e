"""Representation metrics against cases whose answer is known."""

import numpy as np

from ahms_fm import representation as metrics


def test_effective_rank_of_known_spectra():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    flat = q[:, :16] * 3.0  # 16 equal singular values
    assert abs(metrics.effective_rank(flat) - 16.0) < 1e-6
    one = np.outer(rng.normal(size=64), rng.normal(size=8))  # rank one
    assert abs(metrics.effective_rank(one) - 1.0) < 1e-6
    two = q[:, :2] * np.array([3.0, 1.0])  # p = (3/4, 1/4)
    expected = np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert abs(metrics.effective_rank(two) - expected) < 1e-6


def test_alignment_and_uniformity():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 16))
    assert metrics.alignment(z, 3.0 * z) < 1e-12  # the scale does not matter
    assert abs(metrics.alignment(z, -z) - 4.0) < 1e-9  # antipodal: ||2z||^2 = 4
    collapsed = np.ones((50, 16)) + 1e-9 * rng.normal(size=(50, 16))
    assert abs(metrics.uniformity(collapsed)) < 1e-6  # log mean exp(0)
    assert metrics.uniformity(z) < -1.0  # spread out: much lower
    # A brute-force double loop for a small set.
    small = metrics._normalize(rng.normal(size=(7, 3)))
    terms = [
        np.exp(-2 * np.sum((small[i] - small[j]) ** 2)) for i in range(7) for j in range(7) if i < j
    ]
    assert abs(metrics.uniformity(small) - np.log(np.mean(terms))) < 1e-9


def test_retrieval_top1():
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(10, 32))
    participants = np.repeat(np.arange(10), 3)
    tight = centers[participants] + 0.01 * rng.normal(size=(30, 32))
    assert metrics.retrieval_top1(tight, participants) == 1.0
    noise = rng.normal(size=(30, 32))
    assert metrics.retrieval_top1(noise, participants) < 0.5
    lonely = np.array([0, 0, 1])  # participant 1 has no pair: left out
    z = np.array([[1.0, 0], [0.8, 0.6], [0.6, 0.8]])  # 0 -> 1 (right), 1 -> 2 (wrong)
    assert metrics.retrieval_top1(z, lonely) == 0.5


def _with_singular_values(s, n=200, d=40, seed=3, mean=False):
    """An [n, d] matrix whose singular values are `s`. Its left singular vectors are
    orthogonal to the all-ones vector (its columns have zero mean), except, if `mean`,
    the first, which is the constant vector: all of the matrix's mean is then that one
    component."""
    rng = np.random.default_rng(seed)
    ones = np.ones((n, 1))
    u, _ = np.linalg.qr(np.concatenate([ones, rng.normal(size=(n, len(s)))], axis=1))
    u = u[:, : len(s)] if mean else u[:, 1:]
    v, _ = np.linalg.qr(rng.normal(size=(d, len(s))))
    return (u * np.asarray(s, float)) @ v.T


def _entropy_rank(s):
    p = np.asarray(s, float) / np.sum(s)
    return float(np.exp(-np.sum(p * np.log(p))))


def test_centered_and_uncentered_effective_rank_of_known_spectra():
    s = [8.0, 4.0, 2.0, 1.0, 1.0, 0.5]
    z = _with_singular_values(s)
    assert abs(z.mean(axis=0)).max() < 1e-12  # already centered: both ranks agree
    np.testing.assert_allclose(metrics.effective_rank(z), _entropy_rank(s), rtol=1e-8)
    np.testing.assert_allclose(
        metrics.effective_rank(z, centered=True), _entropy_rank(s), rtol=1e-8
    )
    # A common offset: the centered rank does not move; the uncentered one falls towards 1
    # as the offset (one more singular value, sqrt(n) x its norm) dominates. (A small offset
    # may raise it: a new direction.)
    direction = np.random.default_rng(4).normal(size=40)
    direction /= np.linalg.norm(direction)
    previous = metrics.effective_rank(z)
    for scale in (10.0, 100.0, 1e4):
        shifted = z + scale * direction
        np.testing.assert_allclose(
            metrics.effective_rank(shifted, centered=True), _entropy_rank(s), rtol=1e-8
        )
        now = metrics.effective_rank(shifted)
        assert now < previous
        previous = now
    assert previous < 1.01
    # A matrix whose mean is its first singular component: the uncentered rank is that of
    # the whole spectrum, the centered one that of the rest.
    s = [30.0, 5.0, 5.0, 5.0]
    z = _with_singular_values(s, mean=True, seed=5)
    assert abs(z.mean(axis=0)).max() > 0.1
    np.testing.assert_allclose(metrics.effective_rank(z), _entropy_rank(s), rtol=1e-8)
    np.testing.assert_allclose(metrics.effective_rank(z, centered=True), 3.0, rtol=1e-8)


def test_representation_metrics_report_both_ranks():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(30, 8)) + 30.0, rng.normal(size=(30, 8)) + 30.0
    got = metrics.representation_metrics(a, b, np.arange(30))
    both = np.concatenate([a, b])
    assert got["effective_rank"] == metrics.effective_rank(both)
    assert got["effective_rank_centered"] == metrics.effective_rank(both, centered=True)
    assert got["effective_rank"] < 2.0 < 6.0 < got["effective_rank_centered"]
