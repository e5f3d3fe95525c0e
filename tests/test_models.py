"""Encoder, batch norm, depthwise convolution and heads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ahms_fm.models import (
    EfficientNet1D,
    Predictor,
    ProjectionHead,
    count_params,
    encoder_from_config,
)
from ahms_fm.models.batchnorm import BatchNorm
from ahms_fm.models.layers import (
    PointwiseConv1D,
    depthwise_conv_shift,
    depthwise_conv_shift_vjp,
    depthwise_conv_xla,
    pointwise_conv,
    same_padding,
)


def abstract(fn):
    """The module `fn` builds, with shapes only (no initialization cost)."""
    return nnx.eval_shape(fn)


def apply(model, x):
    return nnx.jit(lambda m, x: m(x))(model, x)


def test_parameter_counts_match_the_paper_shapes():
    # docs/design.md: 3,146,129 (PPG, 4 channels, expansion 7) and 2,468,755 (ECG, 1, 6).
    assert count_params(abstract(lambda: EfficientNet1D(4, 256, 7, rngs=nnx.Rngs(0)))) == 3_146_129
    assert count_params(abstract(lambda: EfficientNet1D(1, 256, 6, rngs=nnx.Rngs(0)))) == 2_468_755


def test_configs_build_the_paper_encoders():
    from conftest import load_config

    for name, params in (("ppg", 3_146_129), ("ecg", 2_468_755)):
        config = load_config(name)
        model = abstract(lambda c=config: encoder_from_config(c, rngs=nnx.Rngs(0)))
        assert count_params(model) == params


def test_encoder_shapes_and_downsampling():
    model = EfficientNet1D(4, 256, 7, rngs=nnx.Rngs(0))
    assert model.downsampling == 64
    y = apply(model, jnp.ones((2, 3840, 4)))
    assert y.shape == (2, 256) and y.dtype == jnp.float32
    assert np.isfinite(np.asarray(y)).all()
    with pytest.raises(ValueError, match=r"\[batch, time, 4\]"):
        apply(model, jnp.ones((2, 3840, 1)))
    # Any length works ("same" padding).
    assert apply(model, jnp.ones((1, 1000, 4))).shape == (1, 256)


def _reference_depthwise(x, kernel, stride):
    """np.correlate per channel of the TF-"same"-padded signal, then the stride."""
    b, t, c = x.shape
    k = kernel.shape[0]
    lo, hi = same_padding(t, k, stride)
    out = np.zeros((b, -(-t // stride), c))
    for i in range(b):
        for j in range(c):
            full = np.correlate(np.pad(x[i, :, j], (lo, hi)), kernel[:, j], mode="valid")
            out[i, :, j] = full[::stride]
    return out


@pytest.mark.parametrize("length", [64, 65, 3840])
@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_implementations_agree_with_numpy(length, kernel_size, stride):
    rng = np.random.default_rng(length + kernel_size + stride)
    x = rng.normal(size=(2, length, 6)).astype(np.float32)
    w = rng.normal(size=(kernel_size, 6)).astype(np.float32)
    want = _reference_depthwise(x, w, stride)
    for fn in (depthwise_conv_shift, depthwise_conv_shift_vjp, depthwise_conv_xla):
        np.testing.assert_allclose(
            np.asarray(fn(jnp.asarray(x), jnp.asarray(w), stride)), want, rtol=1e-5, atol=1e-5
        )
    # ... and so do their gradients.
    grads = [
        jax.grad(lambda x, w, f=f: jnp.sum(f(x, w, stride) ** 2), (0, 1))(x, w)
        for f in (depthwise_conv_shift, depthwise_conv_xla)
    ]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    # The hand-written gradient of the shifted copies is autodiff's, to 1e-5.
    weights = rng.normal(size=(2, -(-length // stride), 6)).astype(np.float32)
    grads = [
        jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w, stride)) * weights), (0, 1)))(
            x, w
        )
        for f in (depthwise_conv_shift_vjp, depthwise_conv_shift)
    ]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_encoder_is_the_same_function_with_either_depthwise_form():
    x = jax.random.normal(jax.random.key(0), (4, 512, 4))
    shift = EfficientNet1D(4, 72, 7, depthwise_impl="shift", rngs=nnx.Rngs(1))
    xla = EfficientNet1D(4, 72, 7, depthwise_impl="xla", rngs=nnx.Rngs(1))
    np.testing.assert_allclose(
        np.asarray(apply(shift, x)), np.asarray(apply(xla, x)), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="depthwise_impl"):
        EfficientNet1D(4, 72, 7, depthwise_impl="fft", rngs=nnx.Rngs(1))


@pytest.mark.parametrize("shape", [(3, 50, 7, 11), (4, 1, 16, 5), (2, 33, 40, 280)])
def test_pointwise_conv_matches_einsum_forward_and_gradients(shape):
    b, t, c_in, c_out = shape
    kx, kw, kg = jax.random.split(jax.random.key(sum(shape)), 3)
    x = jax.random.normal(kx, (b, t, c_in))
    w = jax.random.normal(kw, (c_in, c_out)) / np.sqrt(c_in)
    weights = jax.random.normal(kg, (b, t, c_out))

    def plain(x, w):
        return jnp.einsum("btc,cd->btd", x, w, precision="highest")

    for f in (jax.jit(pointwise_conv), pointwise_conv):
        np.testing.assert_allclose(
            np.asarray(f(x, w)), np.asarray(plain(x, w)), rtol=1e-5, atol=1e-5
        )
    grads = [
        jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w)) * weights), (0, 1)))(x, w)
        for f in (pointwise_conv, plain)
    ]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_pointwise_conv_module_is_nnx_linear():
    x = jax.random.normal(jax.random.key(0), (2, 9, 6))
    for use_bias in (True, False):
        ours = PointwiseConv1D(6, 4, use_bias=use_bias, rngs=nnx.Rngs(3))
        theirs = nnx.Linear(6, 4, use_bias=use_bias, rngs=nnx.Rngs(3))
        assert jax.tree.structure(nnx.state(ours, nnx.Param)) == jax.tree.structure(
            nnx.state(theirs, nnx.Param)
        )
        np.testing.assert_array_equal(np.asarray(ours.kernel[...]), np.asarray(theirs.kernel[...]))
        np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), rtol=1e-5, atol=1e-6)


def test_batch_norm_matches_flax_forward_gradients_and_running_averages():
    x = jax.random.normal(jax.random.key(1), (8, 50, 6)) * 3 + 1
    ours = BatchNorm(6, epsilon=1e-3, momentum=0.9)
    theirs = nnx.BatchNorm(6, epsilon=1e-3, momentum=0.9, rngs=nnx.Rngs(0))
    for bn in (ours, theirs):
        bn.scale[...] = jnp.linspace(0.5, 2.0, 6)
        bn.bias[...] = jnp.linspace(-1.0, 1.0, 6)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.mean[...]), np.asarray(theirs.mean[...]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(ours.var[...]), np.asarray(theirs.var[...]), atol=1e-5)

    def loss(module, x):
        return jnp.sum(jnp.sin(module(x)) * jnp.arange(6))

    g_ours = nnx.grad(loss, argnums=(0, 1))(ours, x)
    g_theirs = nnx.grad(loss, argnums=(0, 1))(theirs, x)
    np.testing.assert_allclose(np.asarray(g_ours[1]), np.asarray(g_theirs[1]), atol=1e-5)
    for name in ("scale", "bias"):
        np.testing.assert_allclose(
            np.asarray(getattr(g_ours[0], name)[...]),
            np.asarray(getattr(g_theirs[0], name)[...]),
            atol=1e-4,
        )
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), atol=1e-5)


def test_train_and_eval_modes():
    model = EfficientNet1D(1, 72, 6, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (6, 256, 1))
    model.train()
    before = model.blocks[0].depthwise_bn.mean[...]
    train_out = apply(model, x)  # nnx.jit writes the updated running averages back
    assert not np.allclose(np.asarray(before), np.asarray(model.blocks[0].depthwise_bn.mean[...]))
    model.eval()
    full = apply(model, x)
    # In eval mode a segment's embedding does not depend on the rest of its batch.
    np.testing.assert_allclose(np.asarray(apply(model, x[:1])), np.asarray(full[:1]), atol=1e-5)
    assert not np.allclose(np.asarray(train_out), np.asarray(full))


def test_bfloat16_compute_keeps_float32_parameters():
    model = EfficientNet1D(4, 72, 7, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    y = apply(model, jnp.ones((2, 512, 4)))
    assert y.dtype == jnp.bfloat16
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert {p.dtype for p in params} == {jnp.dtype(jnp.float32)}


def test_heads():
    head = ProjectionHead(rngs=nnx.Rngs(0))
    assert count_params(head) == 256 * 1024 + 1024 + 1024 * 128 + 128
    x = jnp.ones((4, 256))
    head.eval()
    np.testing.assert_array_equal(np.asarray(head(x)), np.asarray(head(x)))
    head.train()  # dropout 0.1 is active in training
    assert not np.array_equal(np.asarray(head(x)), np.asarray(head(x)))
    assert Predictor(rngs=nnx.Rngs(0))(jnp.ones((3, 128))).shape == (3, 128)


def test_jitted_train_step_compiles_once():
    model = EfficientNet1D(4, 72, 7, rngs=nnx.Rngs(0))
    optimizer_lr = 1e-2
    traces = []

    @nnx.jit
    def step(model, x):
        traces.append(1)

        def loss(model):
            return jnp.mean(model(x) ** 2)

        value, grads = nnx.value_and_grad(loss)(model)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - optimizer_lr * g, params, grads))
        return value

    for i in range(3):
        step(model, jax.random.normal(jax.random.key(i), (4, 512, 4)))
    assert len(traces) == 1
