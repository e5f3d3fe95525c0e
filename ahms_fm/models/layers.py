"""Building blocks of the 1-D encoder: depthwise convolution and "same" padding.

XLA's CPU backend runs grouped (depthwise) convolutions, and above all their
gradients, far slower than the arithmetic they need. A depthwise convolution
with a short kernel is a sum of `kernel_size` shifted, scaled copies of its
input, which XLA fuses into one pass over memory on every backend. Both forms
compute the same thing (tested against each other); `benchmarks/` measures them.
The 1x1 convolutions get a hand-written gradient for the same reason.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

DEPTHWISE_IMPLS = ("shift", "xla", "auto")


def same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TensorFlow/Flax "SAME" padding: output length ceil(length / stride)."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


def depthwise_conv_xla(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Depthwise conv of `x` [B, T, C] with `kernel` [K, C] as one grouped XLA conv."""
    k, c = kernel.shape
    return jax.lax.conv_general_dilated(
        x,
        kernel[:, None, :],
        window_strides=(stride,),
        padding=[same_padding(x.shape[1], k, stride)],
        dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=c,
    )


def depthwise_conv_shift(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Depthwise conv of `x` [B, T, C] with `kernel` [K, C] as a sum of shifted copies."""
    k = kernel.shape[0]
    length = x.shape[1]
    lo, hi = same_padding(length, k, stride)
    xp = jnp.pad(x, ((0, 0), (lo, hi), (0, 0)))
    out_len = math.ceil(length / stride)
    span = stride * (out_len - 1) + 1
    taps = [
        jax.lax.slice_in_dim(xp, i, i + span, stride=stride, axis=1) * kernel[i] for i in range(k)
    ]
    return sum(taps[1:], taps[0])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_conv_shift_vjp(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`depthwise_conv_shift` with a hand-written gradient (the same function).

    dx is the transposed convolution written as shifted copies of g (with zeros
    between its samples for stride 2) times the flipped kernel, one fused pass;
    dkernel is one reduction per tap. About 5% of the PPG training step faster
    than what autodiff derives from the shifted copies (`benchmarks/`)."""
    return depthwise_conv_shift(x, kernel, stride)


def _dw_fwd(x, kernel, stride):
    return depthwise_conv_shift(x, kernel, stride), (x, kernel)


def _dw_bwd(stride, residuals, g):
    x, kernel = residuals
    k = kernel.shape[0]
    length = x.shape[1]
    lo, hi = same_padding(length, k, stride)
    out_len = g.shape[1]
    span = stride * (out_len - 1) + 1
    # dx: the transposed convolution, as shifted copies of g (zeros between its
    # samples for stride 2) scaled by the flipped kernel.
    left = k - 1 - lo
    right = length - span + lo
    gp = jax.lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), (left, right, stride - 1), (0, 0, 0)))
    taps = [jax.lax.slice_in_dim(gp, j, j + length, axis=1) * kernel[k - 1 - j] for j in range(k)]
    dx = sum(taps[1:], taps[0])
    xp = jnp.pad(x, ((0, 0), (lo, hi), (0, 0)))
    dk = jnp.stack(
        [
            jnp.sum(jax.lax.slice_in_dim(xp, i, i + span, stride=stride, axis=1) * g, (0, 1))
            for i in range(k)
        ]
    )
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


depthwise_conv_shift_vjp.defvjp(_dw_fwd, _dw_bwd)


def resolve_depthwise_impl(impl: str) -> str:
    """'auto' picks the fused shift form on CPU and XLA's grouped conv elsewhere."""
    if impl not in DEPTHWISE_IMPLS:
        raise ValueError(f"depthwise_impl must be one of {DEPTHWISE_IMPLS}, got {impl!r}")
    if impl == "auto":
        return "shift" if jax.default_backend() == "cpu" else "xla"
    return impl


class DepthwiseConv1D(nnx.Module):
    """Depthwise 1-D convolution, "same" padding, no bias: [B, T, C] -> [B, ceil(T/s), C]."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        impl: str = "auto",
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        # He-normal over the fan-out of one depthwise filter, as Keras' EfficientNet.
        init = jax.nn.initializers.normal(stddev=math.sqrt(2.0 / kernel_size))
        self.kernel = nnx.Param(init(rngs.params(), (kernel_size, channels), param_dtype))
        self.stride = stride
        self.impl = resolve_depthwise_impl(impl)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        x = x.astype(dtype)
        kernel = self.kernel[...].astype(dtype)
        fn = depthwise_conv_shift_vjp if self.impl == "shift" else depthwise_conv_xla
        return fn(x, kernel, self.stride)


@jax.custom_vjp
def pointwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """1x1 convolution of `x` [..., C_in] with `kernel` [C_in, C_out]: a dot over channels.

    Its gradient is written out as two plain dots on [B*T, C] matrices: dx = g W^T
    and dW = x^T g, contracted over the rows of both. What autodiff derives from
    `nnx.Linear` made XLA:CPU write the batch-norm backward that feeds g in a
    transposed [C_out, B*T] layout for the weight-gradient dot, an extra pass
    over the widest tensors of a block; this form keeps g as it is produced.
    """
    return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))


def _pointwise_fwd(x, kernel):
    return pointwise_conv(x, kernel), (x, kernel)


def _pointwise_bwd(residuals, g):
    x, kernel = residuals
    c_in, c_out = kernel.shape
    x2 = x.reshape(-1, c_in)
    g2 = g.reshape(-1, c_out)
    dx = jax.lax.dot_general(g2, kernel, (((1,), (1,)), ((), ())))
    dw = jax.lax.dot_general(x2, g2, (((0,), (0,)), ((), ())))
    return dx.reshape(x.shape).astype(x.dtype), dw.astype(kernel.dtype)


pointwise_conv.defvjp(_pointwise_fwd, _pointwise_bwd)


class PointwiseConv1D(nnx.Module):
    """1x1 convolution [B, T, C_in] -> [B, T, C_out] with the gradient of `pointwise_conv`.

    Parameters as `nnx.Linear`'s (`kernel` [C_in, C_out], optional `bias`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        # Initialized as nnx.Linear (same keys drawn), so a seed gives the same values.
        init = nnx.initializers.lecun_normal()
        self.kernel = nnx.Param(init(rngs.params(), (in_features, out_features), param_dtype))
        if use_bias:
            zeros = nnx.initializers.zeros
            self.bias = nnx.Param(zeros(rngs.params(), (out_features,), param_dtype))
        else:
            self.bias = nnx.data(None)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        y = pointwise_conv(x.astype(dtype), self.kernel[...].astype(dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(dtype)
        return y
