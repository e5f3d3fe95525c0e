"""The self-supervised objectives: participant-masked InfoNCE, KoLeo, and the ablations.

Formulas as in docs/design.md. For student outputs u and teacher outputs v (rows of
a batch of B, L2-normalized, temperature tau), with positives on the diagonal:

    anchor u_i:  -log e(u_i.v_i) / ( sum_j e(u_i.v_j) + sum_{pid_j != pid_i} e(u_i.u_j) )
    anchor v_j:  -log e(u_j.v_j) / ( sum_i e(u_i.v_j) + sum_{pid_k != pid_j} e(v_j.v_k) )
    InfoNCE = 0.5 mean_i(anchor u_i) + 0.5 mean_j(anchor v_j),   e(x) = exp(x / tau)

Same-participant pairs are masked from the within-view terms only. Each
anchor's loss is computed as log(1 + sum exp(negative - positive)) with the
maximum factored out, in float32: temperature 0.04 neither overflows nor loses
the digits of a small loss to cancellation. Under `jax.jit` with the batch sharded over a mesh, the
similarity matrices span the global batch: negatives come from every device.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST  # logits are divided by tau: no bf16 passes on TPU


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows of `x` scaled to unit L2 norm (zero rows stay zero), in float32."""
    x = x.astype(jnp.float32)
    sq = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def info_nce(
    u: jax.Array, v: jax.Array, participant_ids: jax.Array, temperature: float = 0.04
) -> jax.Array:
    """Symmetric InfoNCE with participant-level masking of within-view negatives.

    Args:
      u: student outputs [B, D] (normalized here).
      v: teacher outputs [B, D]; row i is the positive of u's row i.
      participant_ids: [B] integer ids; rows with equal ids are never each
        other's within-view negatives. Distinct ids give segment-level positives.
      temperature: tau.
    Returns:
      The scalar loss.
    """
    u, v = l2_normalize(u), l2_normalize(v)
    n = u.shape[0]
    same = participant_ids[:, None] == participant_ids[None, :]
    diagonal = jnp.eye(n, dtype=bool)
    uv = jnp.matmul(u, v.T, precision=_HIGHEST) / temperature
    uu = jnp.matmul(u, u.T, precision=_HIGHEST) / temperature
    vv = jnp.matmul(v, v.T, precision=_HIGHEST) / temperature
    positive = jnp.diagonal(uv)
    # Row i of each anchor: the cross-view terms but the positive, then the
    # within-view terms of other participants.
    loss_u = _log1p_sum_exp(
        jnp.concatenate([jnp.where(diagonal, -jnp.inf, uv), jnp.where(same, -jnp.inf, uu)], 1),
        positive,
    )
    loss_v = _log1p_sum_exp(
        jnp.concatenate([jnp.where(diagonal, -jnp.inf, uv.T), jnp.where(same, -jnp.inf, vv)], 1),
        positive,
    )
    return 0.5 * jnp.mean(loss_u) + 0.5 * jnp.mean(loss_v)


def _log1p_sum_exp(negatives: jax.Array, positive: jax.Array) -> jax.Array:
    """-log(e^p / (e^p + sum_j e^n_j)) = log(1 + sum_j e^(n_j - p)), per row, stably.

    Relative to the positive, a well-trained batch has every term tiny and the
    loss near 0, where the usual logsumexp(all) - p loses all its digits to
    cancellation (both are ~1/tau); log1p keeps them.
    """
    d = negatives - positive[:, None]
    m = jnp.maximum(jnp.max(d, axis=1), 0.0)
    m = jax.lax.stop_gradient(m)
    s = jnp.sum(jnp.exp(d - m[:, None]), axis=1)
    return m + jnp.log1p(jnp.expm1(-m) + s)


def koleo(z: jax.Array, eps: float = 1e-8) -> jax.Array:
    """KoLeo regularizer: -mean_i log(min_{j != i} ||z_i - z_j|| + eps) on normalized z.

    The nearest neighbour is found by cosine similarity (the same order as the
    distance on the unit sphere) and the distance is then computed directly
    from the difference, which is exact for near neighbours. Gradients stay
    finite when two rows coincide.
    """
    z = l2_normalize(z)
    n = z.shape[0]
    sim = jnp.matmul(z, z.T, precision=_HIGHEST)
    sim = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, sim)
    nearest = jnp.argmax(sim, axis=1)
    sq = jnp.sum(jnp.square(z - z[nearest]), axis=-1)
    positive = sq > 0
    dist = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    return -jnp.mean(jnp.log(dist + eps))


def contrastive_objective(
    u: jax.Array,
    v: jax.Array,
    participant_ids: jax.Array,
    *,
    temperature: float,
    koleo_weight: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """InfoNCE(u, v) + koleo_weight * mean(KoLeo(u), KoLeo(v)), with its parts."""
    nce = info_nce(u, v, participant_ids, temperature)
    kl = 0.5 * (koleo(u) + koleo(v)) if koleo_weight else jnp.zeros((), jnp.float32)
    return nce + koleo_weight * kl, {"info_nce": nce, "koleo": kl}


def byol_loss(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """BYOL's normalized regression: mean over rows of 2 - 2 cos(prediction, target)."""
    p, t = l2_normalize(prediction), l2_normalize(target)
    return jnp.mean(2.0 - 2.0 * jnp.sum(p * t, axis=-1))


def symmetrize(loss_fn, student_a, student_b, teacher_a, teacher_b, *args, **kwargs):
    """The paper's step loss: (loss(student_a, teacher_b) + loss(student_b, teacher_a)) / 2.

    View a goes through the student and view b through the teacher, then the
    views swap. `loss_fn` returns (loss, parts); the parts are averaged too.
    """
    l1, p1 = loss_fn(student_a, teacher_b, *args, **kwargs)
    l2, p2 = loss_fn(student_b, teacher_a, *args, **kwargs)
    return 0.5 * (l1 + l2), jax.tree.map(lambda a, b: 0.5 * (a + b), p1, p2)


def positive_ids(participant_ids: jax.Array, level: str) -> jax.Array:
    """Ids for the loss: participants' ids, or all-distinct ids for segment-level positives."""
    if level == "participant":
        return participant_ids
    if level == "segment":
        return jnp.arange(participant_ids.shape[0], dtype=jnp.int32)
    raise ValueError(f"positives must be 'participant' or 'segment', got {level!r}")


def byol_objective(prediction: jax.Array, target: jax.Array, participant_ids=None, **unused):
    """BYOL-style ablation: predictor output of the student against the teacher's projection.

    Same call shape as `contrastive_objective` so `symmetrize` and the train
    step treat both alike; negatives (and so participant ids) play no part.
    """
    del participant_ids, unused
    loss = byol_loss(prediction, jax.lax.stop_gradient(target))
    return loss, {"byol": loss}
