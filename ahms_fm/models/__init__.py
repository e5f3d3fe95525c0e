"""Encoder and heads (Flax NNX)."""

from ahms_fm.models.efficientnet import PAPER_STAGES, EfficientNet1D, count_params
from ahms_fm.models.heads import MLPHead, Predictor, ProjectionHead

__all__ = [
    "PAPER_STAGES",
    "EfficientNet1D",
    "MLPHead",
    "Predictor",
    "ProjectionHead",
    "count_params",
    "encoder_from_config",
]


def encoder_from_config(config, *, rngs):
    """The encoder a config describes (`config.input` and `config.model`)."""
    import jax.numpy as jnp

    m = config.model
    if m.name != "efficientnet1d":
        raise ValueError(f"unknown model.name {m.name!r}; known: 'efficientnet1d'")
    return EfficientNet1D(
        config.input.channels,
        m.embed_dim,
        m.expansion,
        stages=tuple(tuple(stage) for stage in m.stages),
        stem_kernel=m.stem_kernel,
        se_ratio=m.se_ratio,
        bn_epsilon=m.bn_epsilon,
        bn_momentum=m.bn_momentum,
        depthwise_impl=m.depthwise_impl,
        dtype=jnp.dtype(m.dtype),
        rngs=rngs,
    )
