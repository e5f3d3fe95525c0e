"""Representation metrics of a batch of embeddings, for monitoring pretraining.

- smooth effective rank (Roy & Vetterli 2007): exp of the entropy of the
  normalized singular values, of the embedding matrix as it is
  (`effective_rank`) and after subtracting its mean (`effective_rank_centered`);
- alignment and uniformity (Wang & Isola 2020) of L2-normalized embeddings;
- top-1 same-participant retrieval: how often a segment's nearest other
  segment (cosine) belongs to the same participant.

Pure NumPy on the host: these run every K steps on a validation sample.

Which rank is the paper's? Abbaspourazad et al. (2024, Table 3) report the
"smooth effective rank" of the embeddings, after Roy & Vetterli (2007) and
RankMe (Garrido et al. 2023), without saying whether they centered them. RankMe
defines it on the singular values of the embedding matrix as it is (Eq. 1-2:
p_k = sigma_k(Z) / ||sigma(Z)||_1 + eps), and the monitor of its authors'
group computed it so (rbalestr-lab/stable-ssl, stable_ssl/callbacks/rankme.py:
svdvals of the raw embeddings; its successor, stable-pretraining, now
subtracts the mean first: both conventions are in use). So `effective_rank`
(uncentered, the name it always had here) is our analogue of the paper's
numbers. It is dominated by the mean when the embeddings share a large
offset, as this encoder's post-swish, average-pooled embeddings can (a 30-step
runlocal run was reported at ~1.8): a common offset adds one large singular value, which says
little about how many directions the embeddings vary along. That is what
`effective_rank_centered` measures: the same entropy on the centered matrix
(the square roots of the covariance's eigenvalues), unchanged by adding a
constant vector to every embedding. Read both: the first to compare with the
paper, the second for how spread out the representation is.
"""

from __future__ import annotations

import numpy as np


def _normalize(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def effective_rank(z: np.ndarray, eps: float = 1e-12, *, centered: bool = False) -> float:
    """exp(-sum p log p) with p the singular values of `z` [n, d] divided by their sum;
    of `z` minus its mean over rows if `centered` (see the module's docstring)."""
    z = np.asarray(z, np.float64)
    if centered:
        z = z - z.mean(axis=0, keepdims=True)
    s = np.linalg.svd(z, compute_uv=False)
    p = s / max(s.sum(), eps) + eps
    return float(np.exp(-np.sum(p * np.log(p))))


def alignment(u: np.ndarray, v: np.ndarray, alpha: float = 2.0) -> float:
    """Mean ||u_i - v_i||^alpha over positive pairs (normalized; lower is better)."""
    return float(np.mean(np.linalg.norm(_normalize(u) - _normalize(v), axis=-1) ** alpha))


def uniformity(z: np.ndarray, t: float = 2.0) -> float:
    """log mean over pairs i != j of exp(-t ||z_i - z_j||^2) (normalized; lower is better)."""
    z = _normalize(z)
    sq = np.maximum(2.0 - 2.0 * z @ z.T, 0.0)
    iu = np.triu_indices(len(z), k=1)
    x = -t * sq[iu]
    m = x.max()
    return float(m + np.log(np.mean(np.exp(x - m))))


def retrieval_top1(z: np.ndarray, participants: np.ndarray) -> float:
    """Fraction of segments whose nearest other segment is the same participant's.

    Segments of participants with a single segment in `z` are left out (they
    have no right answer).
    """
    z = _normalize(z)
    participants = np.asarray(participants)
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argmax(sim, axis=1)
    counts = {p: c for p, c in zip(*np.unique(participants, return_counts=True), strict=True)}
    has_pair = np.array([counts[p] > 1 for p in participants])
    if not has_pair.any():
        return float("nan")
    return float(np.mean((participants[nearest] == participants)[has_pair]))


def representation_metrics(
    view_a: np.ndarray, view_b: np.ndarray, participants: np.ndarray
) -> dict[str, float]:
    """All of the above for paired embeddings [n, d] of one validation sample: rank,
    uniformity and retrieval over both views together, alignment between them."""
    both = np.concatenate([view_a, view_b])
    return {
        "effective_rank": effective_rank(both),
        "effective_rank_centered": effective_rank(both, centered=True),
        "uniformity": uniformity(both),
        "retrieval_top1": retrieval_top1(both, np.concatenate([participants, participants])),
        "alignment": alignment(view_a, view_b),
    }
