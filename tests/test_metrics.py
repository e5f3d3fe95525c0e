"""Representation metrics against cases whose answer is known."""

import numpy as np

from ahms_fm import metrics


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
    terms = [np.exp(-2 * np.sum((small[i] - small[j]) ** 2))
             for i in range(7) for j in range(7) if i < j]
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
