"""The paper's encoder: a 1-D EfficientNet in Flax NNX (shapes as in docs/design.md).

[batch, time, channels] -> stem (conv k3 s2) -> 16 MBConv blocks with
squeeze-excite -> 1x1 conv to embed_dim -> global average pool -> [batch, embed_dim].
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ahms_fm.configs.common import PAPER_STAGES
from ahms_fm.models.batchnorm import BatchNorm
from ahms_fm.models.layers import DepthwiseConv1D, PointwiseConv1D

# Stages (PAPER_STAGES, the config's model.stages): one row per stage, (width multiplier
# k, kernel size, repeats, stride of its first block). Widths are int(k * f) with
# f = embed_dim / 36; the stem is int(6 f) wide and the final 1x1 conv 36 f. Stride 2 on
# the stem and five stages: 64x downsampling.
STEM_MULTIPLIER = 6
HEAD_MULTIPLIER = 36


class SqueezeExcite(nnx.Module):
    """Channel gate from the time-mean: 1x1 conv down, swish, 1x1 conv up, sigmoid."""

    def __init__(self, channels: int, reduced: int, *, dtype, rngs: nnx.Rngs):
        self.reduce = nnx.Linear(channels, reduced, dtype=dtype, rngs=rngs)
        self.expand = nnx.Linear(reduced, channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        s = jnp.mean(x, axis=1, keepdims=True)
        s = self.expand(jax.nn.swish(self.reduce(s)))
        return x * jax.nn.sigmoid(s)


class MBConv(nnx.Module):
    """Inverted-residual block: expand, depthwise, squeeze-excite, project (+ skip)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expansion: int,
        *,
        se_ratio: float,
        bn: Callable[[int], BatchNorm],
        depthwise_impl: str,
        dtype,
        rngs: nnx.Rngs,
    ):
        hidden = in_channels * expansion
        if expansion != 1:
            self.expand = PointwiseConv1D(
                in_channels, hidden, use_bias=False, dtype=dtype, rngs=rngs
            )
            self.expand_bn = bn(hidden)
        else:
            self.expand = None
            self.expand_bn = None
        self.depthwise = DepthwiseConv1D(
            hidden, kernel_size, stride, impl=depthwise_impl, dtype=dtype, rngs=rngs
        )
        self.depthwise_bn = bn(hidden)
        self.se = SqueezeExcite(hidden, max(1, int(se_ratio * hidden)), dtype=dtype, rngs=rngs)
        self.project = PointwiseConv1D(hidden, out_channels, use_bias=False, dtype=dtype, rngs=rngs)
        self.project_bn = bn(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        if self.expand is not None:
            h = jax.nn.swish(self.expand_bn(self.expand(h)))
        h = jax.nn.swish(self.depthwise_bn(self.depthwise(h)))
        h = self.se(h)
        h = self.project_bn(self.project(h))
        return h + x if self.residual else h


class EfficientNet1D(nnx.Module):
    """1-D EfficientNet encoder: [batch, time, in_channels] -> [batch, embed_dim].

    With the defaults and `expansion=7, in_channels=4` (PPG) it has 3,146,129
    trainable parameters; with `expansion=6, in_channels=1` (ECG) 2,468,755.
    Batch norm follows NNX's modes: `model.train()` uses and updates batch
    statistics, `model.eval()` the running averages.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 256,
        expansion: int = 7,
        *,
        stages: Sequence[tuple[float, int, int, int]] = PAPER_STAGES,
        stem_kernel: int = 3,
        se_ratio: float = 0.25,
        bn_epsilon: float = 1e-3,
        bn_momentum: float = 0.9,
        depthwise_impl: str = "auto",
        dtype=None,
        rngs: nnx.Rngs,
    ):
        f = embed_dim / HEAD_MULTIPLIER
        # Flax's `momentum` weighs the running average: 0.9 = weight 0.1 for the batch.
        bn = functools.partial(
            BatchNorm, epsilon=bn_epsilon, momentum=bn_momentum, dtype=dtype, rngs=rngs
        )
        width = int(STEM_MULTIPLIER * f)
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.dtype = dtype
        self.stem = nnx.Conv(
            in_channels,
            width,
            stem_kernel,
            strides=2,
            padding="SAME",
            use_bias=False,
            dtype=dtype,
            rngs=rngs,
        )
        self.stem_bn = bn(width)
        blocks = []
        for i, (k, kernel, repeats, stride) in enumerate(stages):
            out = int(k * f)
            for r in range(repeats):
                blocks.append(
                    MBConv(
                        width,
                        out,
                        kernel,
                        stride if r == 0 else 1,
                        1 if i == 0 else expansion,
                        se_ratio=se_ratio,
                        bn=bn,
                        depthwise_impl=depthwise_impl,
                        dtype=dtype,
                        rngs=rngs,
                    )
                )
                width = out
        self.blocks = nnx.List(blocks)
        self.head = PointwiseConv1D(width, embed_dim, use_bias=False, dtype=dtype, rngs=rngs)
        self.head_bn = bn(embed_dim)

    @property
    def downsampling(self) -> int:
        """Factor by which the time axis shrinks before pooling."""
        return self.stem.strides * 2 ** sum(b.depthwise.stride == 2 for b in self.blocks)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"EfficientNet1D expects [batch, time, {self.in_channels}] signals, "
                f"got shape {x.shape}"
            )
        h = jax.nn.swish(self.stem_bn(self.stem(x)))
        for block in self.blocks:
            h = block(h)
        h = jax.nn.swish(self.head_bn(self.head(h)))
        return jnp.mean(h, axis=1)


def count_params(module: nnx.Module) -> int:
    """Number of trainable parameters (nnx.Param leaves) of a module."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
