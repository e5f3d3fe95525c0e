"""The objective against an independent float64 NumPy implementation of the formulas in
docs/design.md."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from ahms_fm import losses


def _normalize(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_info_nce(u, v, pid, tau):
    """Literal loops over docs/design.md's two anchor formulas, float64."""
    u, v = _normalize(u.astype(np.float64)), _normalize(v.astype(np.float64))
    n = len(u)

    def e(a, b):
        return np.exp(np.dot(a, b) / tau)

    anchors_u, anchors_v = [], []
    for i in range(n):
        denom = sum(e(u[i], v[j]) for j in range(n))
        denom += sum(e(u[i], u[j]) for j in range(n) if pid[j] != pid[i])
        anchors_u.append(-np.log(e(u[i], v[i]) / denom))
    for j in range(n):
        denom = sum(e(u[i], v[j]) for i in range(n))
        denom += sum(e(v[j], v[k]) for k in range(n) if pid[k] != pid[j])
        anchors_v.append(-np.log(e(u[j], v[j]) / denom))
    return 0.5 * np.mean(anchors_u) + 0.5 * np.mean(anchors_v)


def reference_koleo(z):
    z = _normalize(z.astype(np.float64))
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return -np.mean(np.log(d.min(axis=1) + 1e-8))


def _batch(seed, n=24, d=16, correlated=True):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, d)).astype(np.float32)
    v = u + 0.5 * rng.normal(size=(n, d)) if correlated else rng.normal(size=(n, d))
    # Repeated participants: 24 rows from 9 participants, some 4 times.
    pid = rng.integers(0, 9, size=n)
    return u, v.astype(np.float32), pid


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.04, 0.1, 0.5])
def test_info_nce_matches_float64_reference(seed, tau):
    # Small embedding scale so that the reference's plain exp does not overflow at tau=0.04.
    u, v, pid = _batch(seed)
    assert len(set(pid)) < len(pid), "the batch must repeat participants"
    got = float(losses.info_nce(jnp.asarray(u), jnp.asarray(v), jnp.asarray(pid), tau))
    want = reference_info_nce(u, v, pid, tau)
    assert abs(got - want) / abs(want) <= 1e-5


def test_masking_changes_the_loss_only_through_within_view_terms():
    u, v, _ = _batch(3)
    same = np.zeros(len(u), int)  # one participant: no within-view negatives at all
    distinct = np.arange(len(u))
    l_same = float(losses.info_nce(u, v, same, 0.1))
    l_distinct = float(losses.info_nce(u, v, distinct, 0.1))
    assert l_same < l_distinct  # fewer negatives in the denominators
    assert abs(l_same - reference_info_nce(u, v, same, 0.1)) < 1e-5 * abs(l_same)
    # With no within-view terms, it is the plain symmetric cross-entropy over u.v^T.
    uu, vv = _normalize(u.astype(np.float64)), _normalize(v.astype(np.float64))
    logits = uu @ vv.T / 0.1
    ce_rows = -np.diag(logits) + np.log(np.exp(logits).sum(1))
    ce_cols = -np.diag(logits) + np.log(np.exp(logits).sum(0))
    assert abs(l_same - 0.5 * (ce_rows.mean() + ce_cols.mean())) < 1e-5 * l_same


def test_info_nce_is_stable_at_low_temperature():
    # Identical embeddings: every logit equals 1/tau = 25; plain exp of 1/0.001 overflows.
    z = jnp.ones((16, 8))
    pid = jnp.arange(16) // 2
    for tau in (0.04, 0.001):
        fn = jax.value_and_grad(lambda a, b, t=tau: losses.info_nce(a, b, pid, t), (0, 1))
        loss, grads = fn(z, z)
        assert np.isfinite(float(loss))
        assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    # All logits equal: each anchor sees 16 cross-view terms and 14 within-view ones.
    assert abs(float(losses.info_nce(z, z, pid, 0.04)) - np.log(30)) < 1e-5


def test_koleo_matches_reference_and_has_finite_gradients():
    u, _, _ = _batch(4)
    assert abs(float(losses.koleo(u)) - reference_koleo(u)) <= 1e-5 * abs(reference_koleo(u))
    dup = jnp.concatenate([jnp.asarray(u[:4]), jnp.asarray(u[:4])])  # exact duplicates
    value, grad = jax.value_and_grad(losses.koleo)(dup)
    assert abs(float(value) + np.log(1e-8)) < 1e-4  # every nearest distance is 0
    assert np.isfinite(np.asarray(grad)).all()


def test_contrastive_objective_combines_parts():
    u, v, pid = _batch(5)
    loss, parts = losses.contrastive_objective(u, v, pid, temperature=0.04, koleo_weight=0.1)
    want_nce = reference_info_nce(u, v, pid, 0.04)
    want_kl = 0.5 * (reference_koleo(u) + reference_koleo(v))
    assert abs(float(parts["info_nce"]) - want_nce) <= 1e-5 * want_nce
    # KoLeo is a mean of logs of both signs, near 0 here: compare on the scale of its terms.
    assert abs(float(parts["koleo"]) - want_kl) <= 1e-6
    assert abs(float(loss) - (want_nce + 0.1 * want_kl)) <= 1e-5 * abs(want_nce)
    no_koleo, _ = losses.contrastive_objective(u, v, pid, temperature=0.04, koleo_weight=0.0)
    assert abs(float(no_koleo) - want_nce) <= 1e-5 * want_nce


def test_symmetrize_swaps_the_views():
    rng = np.random.default_rng(6)
    sa, sb, ta, tb = (rng.normal(size=(12, 8)).astype(np.float32) for _ in range(4))
    pid = np.arange(12) // 3
    loss, parts = losses.symmetrize(
        losses.contrastive_objective, sa, sb, ta, tb, pid, temperature=0.1, koleo_weight=0.0
    )
    want = 0.5 * (reference_info_nce(sa, tb, pid, 0.1) + reference_info_nce(sb, ta, pid, 0.1))
    assert abs(float(loss) - want) <= 1e-5 * want
    assert abs(float(parts["info_nce"]) - want) <= 1e-5 * want


def test_segment_level_positives_use_distinct_ids():
    pid = jnp.array([3, 3, 3, 7])
    assert list(losses.positive_ids(pid, "participant")) == [3, 3, 3, 7]
    assert list(losses.positive_ids(pid, "segment")) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="positives"):
        losses.positive_ids(pid, "subject")


def test_byol_loss_is_normalized_regression():
    rng = np.random.default_rng(7)
    p, z = rng.normal(size=(10, 6)), rng.normal(size=(10, 6))
    cos = np.sum(_normalize(p) * _normalize(z), 1)
    assert abs(float(losses.byol_loss(p, z)) - np.mean(2 - 2 * cos)) < 1e-5
    loss, parts = losses.byol_objective(p, z)
    assert float(loss) == float(parts["byol"])
    # The target is a stop-gradient: the loss does not pull the teacher.
    grad = jax.grad(lambda t: losses.byol_objective(jnp.asarray(p), t)[0])(jnp.asarray(z))
    assert np.all(np.asarray(grad) == 0)


def test_loss_on_an_8_device_mesh_equals_the_global_batch_loss():
    # Auto axes: XLA's partitioner places the collectives (the project's mesh convention).
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rows = NamedSharding(mesh, PartitionSpec("data"))
    u, v, pid = _batch(8, n=64, d=32)
    pid = pid % 5  # same participants on different devices

    def objective(u, v, pid):
        return losses.contrastive_objective(u, v, pid, temperature=0.04, koleo_weight=0.1)[0]

    single = jax.jit(objective)(jax.device_put(u, jax.devices()[0]), v, pid)
    sharded_args = [jax.device_put(a, rows) for a in (u, v, pid)]
    assert sharded_args[0].sharding.num_devices == 8
    fn = jax.jit(objective)
    sharded = fn(*sharded_args)
    assert abs(float(sharded) - float(single)) <= 1e-5 * abs(float(single))
    # ... and the loss of each device's own rows is different: negatives cross devices.
    local = np.mean([float(objective(u[i::8], v[i::8], pid[i::8])) for i in range(8)])
    assert abs(local - float(single)) > 1e-2
    # Gradients agree as well.
    g1 = jax.grad(objective)(u, v, pid)
    g8 = jax.jit(jax.grad(objective))(*sharded_args)
    np.testing.assert_allclose(np.asarray(g8), np.asarray(g1), rtol=1e-4, atol=1e-6)
