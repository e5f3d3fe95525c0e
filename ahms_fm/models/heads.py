"""Heads on top of the encoder: the projection head and BYOL's predictor."""

from __future__ import annotations

import jax
from flax import nnx


class MLPHead(nnx.Module):
    """Linear -> ReLU -> dropout -> Linear; used for training only, never for embeddings."""

    def __init__(
        self,
        in_dim: int = 256,
        hidden_dim: int = 1024,
        out_dim: int = 128,
        dropout: float = 0.1,
        *,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        self.hidden = nnx.Linear(in_dim, hidden_dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(hidden_dim, out_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        """`rngs`, where given, drives the dropout (the train step passes keys from its seed)."""
        return self.out(self.dropout(jax.nn.relu(self.hidden(x)), rngs=rngs))


def ProjectionHead(in_dim=256, hidden_dim=1024, out_dim=128, dropout=0.1, *, dtype=None, rngs):
    """The paper's projection head: 256 -> 1024 -> 128, ReLU, dropout 0.1."""
    return MLPHead(in_dim, hidden_dim, out_dim, dropout, dtype=dtype, rngs=rngs)


def Predictor(dim=128, hidden_dim=1024, dropout=0.0, *, dtype=None, rngs):
    """BYOL-style predictor on the student's projections (for the BYOL ablation)."""
    return MLPHead(dim, hidden_dim, dim, dropout, dtype=dtype, rngs=rngs)
