"""The network training updates (encoder + projection head, + BYOL's predictor) and its
static half: how to run it on a state's plain arrays, for training and for inference."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from flax import nnx

from ahms_fm.models import Predictor, ProjectionHead, encoder_from_config


class Student(nnx.Module):
    """Encoder + projection head (+ BYOL's predictor). Only the encoder makes embeddings."""

    def __init__(self, config, rngs: nnx.Rngs):
        self.encoder = encoder_from_config(config, rngs=rngs)
        dtype = jnp.dtype(config.model.dtype)
        self.head = ProjectionHead(
            config.model.embed_dim,
            config.head.hidden_dim,
            config.head.out_dim,
            config.head.dropout,
            dtype=dtype,
            rngs=rngs,
        )
        self.predictor = (
            Predictor(config.head.out_dim, config.head.predictor_hidden_dim, dtype=dtype, rngs=rngs)
            if config.loss.name == "byol"
            else None
        )

    def __call__(self, x, rngs=None, predict: bool = False):
        z = self.head(self.encoder(x), rngs=rngs)
        return self.predictor(z, rngs=rngs) if predict and self.predictor else z


@dataclasses.dataclass(frozen=True)
class StudentGraph:
    """The static half of a `Student` (its NNX graph), run on a state's arrays: the
    student's or the teacher's parameters and batch-norm statistics."""

    graphdef: nnx.GraphDef
    other: nnx.State  # RNG streams we never use (dropout keys come from the step)

    def apply(self, params, stats, x, *, train: bool, rngs=None, predict=False):
        """Outputs and the updated batch-norm statistics."""
        module = nnx.merge(self.graphdef, params, stats, self.other, copy=True)
        module.train() if train else module.eval()
        out = module(x, rngs=rngs, predict=predict)
        return out, nnx.to_pure_dict(nnx.state(module, nnx.BatchStat))

    def embed(self, params, stats, x):
        module = nnx.merge(self.graphdef, params, stats, self.other, copy=True)
        module.eval()
        return module.encoder(x)


def split_student(student: Student) -> tuple[StudentGraph, dict, dict]:
    """(its graph, parameters, batch-norm statistics as plain nested dicts)."""
    graphdef, params, stats, other = nnx.split(student, nnx.Param, nnx.BatchStat, ...)
    return StudentGraph(graphdef, other), nnx.to_pure_dict(params), nnx.to_pure_dict(stats)
