"""Statistics capture against a hand-written forward and backward pass, per layer type.

Each model is a convolution (3×3, stride 2, padding 1) followed by tanh and a dense layer, with
a mean-squared loss. The reference statistics come from an explicit NumPy im2col of the input
(loops over positions), the hand-written forward ``y1 = patches @ W``, and ``∂loss/∂y1`` from
``jax.grad`` of the rest of the network written out in ``jnp`` as a function of ``y1``.
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxopt_papers import curvature

N, H, C, OUT, K = 3, 5, 2, 3, 3  # batch, height = width, in channels, conv channels, kernel
HO = 3  # output height = width (stride 2, padding 1)


def _patches(x_nhwc: np.ndarray, order: str) -> np.ndarray:
    """(N, HO, HO, C·K·K) patches, features ordered (kh, kw, c) or (c, kh, kw)."""
    xp = np.pad(x_nhwc, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((x_nhwc.shape[0], HO, HO, K, K, C))
    for i in range(HO):
        for j in range(HO):
            out[:, i, j] = xp[:, 2 * i : 2 * i + K, 2 * j : 2 * j + K, :]
    if order == "chw":
        out = out.transpose(0, 1, 2, 5, 3, 4)
    return out.reshape(x_nhwc.shape[0], HO, HO, -1)


def _reference(x_nhwc, conv_w_flat, conv_b, dense_w_io, dense_b, order, y_fn, clip=100.0):
    """Hand-written statistics. ``conv_w_flat``: (C·K·K, OUT) in ``order``; dense (in, out)."""
    p = _patches(x_nhwc, order)
    y1 = jnp.asarray(p @ conv_w_flat + conv_b)  # (N, HO, HO, OUT)

    def head(y1):
        h = jnp.tanh(y1)
        h = y_fn(h)  # flatten as the model does
        return jnp.mean((h @ dense_w_io + dense_b) ** 2), h

    (_, h), dy1 = jax.value_and_grad(head, has_aux=True)(y1)
    h = np.asarray(h)
    dy2 = np.asarray(jax.grad(lambda y2: jnp.mean(y2**2))(h @ dense_w_io + dense_b))
    a_conv = np.append(np.clip(p.mean(axis=(1, 2)), -clip, clip).mean(0), 1.0)
    g_conv = N * np.asarray(dy1).mean(axis=(1, 2)).mean(0)
    a_dense = np.clip(h, -clip, clip).mean(0)
    g_dense = N * dy2.mean(0)
    return y1, (a_conv, g_conv), (a_dense, g_dense)


def _close(got, want, tol=1e-12):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= tol * max(1.0, np.max(np.abs(want)))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(N, H, H, C))


def _check(value, grads, stats, loss, params, args, ref, conv_key, dense_key):
    v0, g0 = jax.jit(jax.value_and_grad(loss))(params, *args)  # compiled like ours
    assert float(value) == float(v0)  # the same forward pass
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(g0), strict=True):
        np.testing.assert_array_equal(a, b)  # gradients unchanged
    _, (a_c, g_c), (a_d, g_d) = ref
    _close(stats[conv_key].a, a_c)
    _close(stats[conv_key].g, g_c)
    _close(stats[dense_key].a, a_d)
    _close(stats[dense_key].g, g_d)


def test_flax_linen_dense_and_conv(x):
    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Conv(OUT, (K, K), strides=2, padding=1)(x)
            return nn.Dense(2, use_bias=False)(jnp.tanh(h).reshape(x.shape[0], -1))

    model = Model()
    params = model.init(jax.random.key(0), x)["params"]
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    loss = lambda p, x: jnp.mean(model.apply({"params": p}, x) ** 2)
    value, grads, stats = jax.jit(lambda p, x: curvature.value_grad_and_stats(loss, p, x))(
        params, x
    )
    kc = np.asarray(params["Conv_0"]["kernel"]).reshape(-1, OUT)  # (kh, kw, c) order
    ref = _reference(
        x,
        kc,
        np.asarray(params["Conv_0"]["bias"]),
        np.asarray(params["Dense_0"]["kernel"]),
        0.0,
        "hwc",
        lambda h: h.reshape(N, -1),
    )
    # the hand-written forward is the model's convolution
    conv = nn.Conv(OUT, (K, K), strides=2, padding=1)
    _close(conv.apply({"params": params["Conv_0"]}, x), ref[0])
    _check(value, grads, stats, loss, params, (x,), ref, "Conv_0", "Dense_0")
    assert stats["Dense_0"].a.shape == (HO * HO * OUT,)  # no bias: no appended 1


def test_flax_nnx_linear_and_conv(x):
    class Model(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(C, OUT, (K, K), strides=2, padding=1, rngs=rngs)
            self.dense = nnx.Linear(HO * HO * OUT, 2, rngs=rngs)

        def __call__(self, x):
            return self.dense(jnp.tanh(self.conv(x)).reshape(x.shape[0], -1))

    graphdef, params = nnx.split(Model(nnx.Rngs(0)))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    loss = lambda s, x: jnp.mean(nnx.merge(graphdef, s)(x) ** 2)
    value, grads, stats = jax.jit(lambda p, x: curvature.value_grad_and_stats(loss, p, x))(
        params, x
    )
    pure = nnx.to_pure_dict(params)
    ref = _reference(
        x,
        np.asarray(pure["conv"]["kernel"]).reshape(-1, OUT),
        np.asarray(pure["conv"]["bias"]),
        np.asarray(pure["dense"]["kernel"]),
        np.asarray(pure["dense"]["bias"]),
        "hwc",
        lambda h: h.reshape(N, -1),
    )
    ref = (ref[0], ref[1], (np.append(ref[2][0], 1.0), ref[2][1]))
    _check(value, grads, stats, loss, params, (x,), ref, "conv", "dense")


def test_equinox_linear_and_conv2d_under_vmap(x):
    class Model(eqx.Module):
        conv: eqx.nn.Conv2d
        dense: eqx.nn.Linear

        def __call__(self, x):  # one example (C, H, W)
            return self.dense(jnp.tanh(self.conv(x)).reshape(-1))

    k1, k2 = jax.random.split(jax.random.key(0))
    model = Model(
        eqx.nn.Conv2d(C, OUT, K, stride=2, padding=1, key=k1),
        eqx.nn.Linear(OUT * HO * HO, 2, key=k2),
    )
    model = jax.tree.map(lambda a: a.astype(jnp.float64), model)
    xc = np.moveaxis(x, -1, 1)  # NCHW
    loss = lambda m, x: jnp.mean(jax.vmap(m)(x) ** 2)
    value, grads, stats = jax.jit(lambda p, x: curvature.value_grad_and_stats(loss, p, x))(
        model, xc
    )
    ref = _reference(
        x,
        np.asarray(model.conv.weight).reshape(OUT, -1).T,  # (c, kh, kw) order
        np.asarray(model.conv.bias).reshape(-1),
        np.asarray(model.dense.weight).T,
        np.asarray(model.dense.bias),
        "chw",
        lambda h: jnp.moveaxis(h, -1, 1).reshape(N, -1),  # equinox flattens (out, h, w)
    )
    ref = (ref[0], ref[1], (np.append(ref[2][0], 1.0), ref[2][1]))
    _close(np.moveaxis(jax.vmap(model.conv)(xc), 1, -1), ref[0])
    _check(value, grads, stats, loss, model, (xc,), ref, "conv", "dense")


def test_input_rows_are_clamped_and_3d_inputs_are_rows():
    x = np.random.default_rng(1).normal(size=(2, 3, 4)) * 80.0  # some rows exceed 100
    layer = nn.Dense(2)
    params = layer.init(jax.random.key(0), x)["params"]
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    loss = lambda p, x: jnp.mean(layer.apply({"params": p}, x) ** 2)
    _, _, stats = curvature.value_grad_and_stats(loss, params, x, clipping=100.0)
    rows = x.reshape(-1, 4)
    y = rows @ np.asarray(params["kernel"]) + np.asarray(params["bias"])
    assert np.abs(rows).max() > 100.0
    _close(stats.a, np.append(np.clip(rows, -100, 100).mean(0), 1.0))
    _close(stats.g, 6 * (2 * y / y.size).mean(0))  # N = 6 rows, d loss / d y = 2 y / size


def test_layer_not_in_params_and_bad_input():
    layer = eqx.nn.Linear(3, 2, key=jax.random.key(0))
    frozen = eqx.nn.Linear(2, 2, key=jax.random.key(1))  # closed over, not a parameter
    loss = lambda m, x: jnp.sum(frozen(m(x)))
    _, _, stats = curvature.value_grad_and_stats(loss, layer, jnp.ones(3))
    assert isinstance(stats, curvature.KroneckerStats)  # only the layer in params
    np.testing.assert_allclose(stats.g, np.asarray(frozen.weight).sum(0))
    with pytest.raises(TypeError, match="loss_fn"):
        curvature.value_grad_and_stats(1.0, layer)
    with pytest.raises(TypeError, match="layer_type"):
        curvature.register_layer("Linear", lambda m, x: x, lambda m: m.weight, lambda m: True)
