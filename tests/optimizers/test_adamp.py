"""AdamP / SGDP against independent anchors.

* closed form of the projection: the update loses its radial component per channel (channel
  view) or for the whole tensor (layer view), computed here in NumPy from the Adam direction
  that ``optax.scale_by_adam`` gives (AdamP's moments never see the projection);
* no projection -> ``optax.adamw`` / ``optax.sgd`` exactly (1-D leaves are never projected);
* weight decay on zero gradients: ``-lr wd wd_ratio p`` where the projection fires;
* the SGDP in-place buffer projection (``nesterov=False``) and its absence with nesterov;
* layouts: a middle channel axis, a static ``channel_axis`` under ``optax.inject_hyperparams``;
* float16 leaves: the projection decision and the step in float32 arithmetic;
* bad hyperparameters raise errors naming the argument.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_papers as jop

LR, B1, B2, EPS = 0.05, 0.9, 0.999, 1e-8


def _orthogonal_per_channel(rng, p):
    """A random gradient with <g[..., c], p[..., c]> = 0 for every output channel c (last axis)."""
    g = rng.normal(size=p.shape)
    coef = (g * p).sum(axis=tuple(range(p.ndim - 1))) / (p * p).sum(axis=tuple(range(p.ndim - 1)))
    return g - coef * p


def _project_rows(p, u):
    """Remove from ``u`` its component along ``p``, per output channel (last axis)."""
    axes = tuple(range(p.ndim - 1))
    norm = np.sqrt((p * p).sum(axis=axes)) + EPS
    return u - p * (p * u).sum(axis=axes) / norm**2


def _project_layer(p, u):
    norm = np.sqrt((p * p).sum()) + EPS
    return u - p * (p * u).sum() / norm**2


def _adam_directions(params_seq, grads_seq):
    """The bias-corrected Adam direction per step, from optax (independent of AdamP)."""
    tx = optax.scale_by_adam(b1=B1, b2=B2, eps=EPS)
    state = tx.init(params_seq[0])
    out = []
    for g in grads_seq:
        d, state = tx.update(g, state)
        out.append(np.asarray(d))
    return out


def test_channel_projection_closed_form():
    rng = np.random.default_rng(0)
    ps = [rng.normal(size=(6, 4)) for _ in range(5)]
    gs = [_orthogonal_per_channel(rng, p) for p in ps]
    adam = _adam_directions(ps, gs)
    tx = jop.adamp(LR, b1=B1, b2=B2, eps=EPS)
    state = tx.init(jnp.asarray(ps[0]))
    for p, g, d in zip(ps, gs, adam, strict=True):
        upd, state = tx.update(jnp.asarray(g), state, jnp.asarray(p))
        upd = np.asarray(upd)
        np.testing.assert_allclose(upd, -LR * _project_rows(p, d), rtol=1e-10, atol=1e-14)
        # the radial component is gone in every channel, though Adam's direction has one
        radial = np.abs((upd * p).sum(axis=0)) / (
            np.linalg.norm(upd, axis=0) * np.linalg.norm(p, axis=0)
        )
        assert radial.max() < 1e-7
        assert np.abs((d * p).sum(axis=0)).max() > 1e-2


def test_layer_projection_closed_form():
    """Channels correlated with the gradient, the whole tensor not: the layer view fires."""
    rng = np.random.default_rng(1)
    p = rng.normal(size=(3, 3, 2, 4))
    g = rng.normal(size=p.shape)
    g[..., 0] += 3.0 * p[..., 0]  # channel 0 strongly aligned ...
    g[..., 1] -= 3.0 * p[..., 1]  # ... channel 1 anti-aligned
    g = g - p * (g * p).sum() / (p * p).sum()  # ... and no radial component for the tensor
    (d,) = _adam_directions([p], [g])
    wd = 0.3
    upd, _ = jop.adamp(LR, b1=B1, b2=B2, eps=EPS, weight_decay=wd, wd_ratio=0.25).update(
        jnp.asarray(g), jop.adamp(LR).init(jnp.asarray(p)), jnp.asarray(p)
    )
    expected = -LR * (_project_layer(p, d) + wd * 0.25 * p)
    np.testing.assert_allclose(np.asarray(upd), expected, rtol=1e-10, atol=1e-14)


def test_no_projection_is_adamw():
    """Gradients aligned with the weights never fire: AdamP is AdamW (decay ratio 1)."""
    rng = np.random.default_rng(2)
    p = {"w": rng.normal(size=(5, 3)), "b": rng.normal(size=(3,))}
    tx = jop.adamp(LR, b1=B1, b2=B2, eps=EPS, weight_decay=0.1)
    ref = optax.adamw(LR, b1=B1, b2=B2, eps=EPS, weight_decay=0.1)
    s, sr = tx.init(p), ref.init(p)
    for _ in range(6):
        g = jax.tree.map(lambda x: x + 0.1 * rng.normal(size=x.shape), p)
        u, s = tx.update(g, s, p)
        ur, sr = ref.update(g, sr, p)
        for k in p:
            np.testing.assert_allclose(u[k], ur[k], rtol=1e-10, atol=1e-14)
        p = optax.apply_updates(p, u)


def test_bias_only_tree_is_adamw_and_sgd():
    """1-D (and 0-D) leaves are never projected, even with orthogonal gradients."""
    rng = np.random.default_rng(3)
    target = {"b": rng.normal(size=(7,)), "s": np.array(0.5)}

    def loss(p):  # gradient of a normalised bias is orthogonal to it: would fire if projected
        b = p["b"] / jnp.linalg.norm(p["b"])
        return jnp.sum((b - target["b"]) ** 2) + (p["s"] - target["s"]) ** 2

    pairs = [
        (jop.adamp(LR, weight_decay=0.2), optax.adamw(LR, eps=EPS, weight_decay=0.2)),
        (jop.sgdp(LR, momentum=0.9), optax.sgd(LR, momentum=0.9)),
        (jop.sgdp(LR, momentum=0.9, nesterov=True), optax.sgd(LR, momentum=0.9, nesterov=True)),
    ]
    p0 = {"b": rng.normal(size=(7,)), "s": np.array(-1.0)}
    for tx, ref in pairs:
        p, q = p0, p0
        s, sr = tx.init(p), ref.init(q)
        for _ in range(10):
            u, s = tx.update(jax.grad(loss)(p), s, p)
            ur, sr = ref.update(jax.grad(loss)(q), sr, q)
            p, q = optax.apply_updates(p, u), optax.apply_updates(q, ur)
        for k in p:
            np.testing.assert_allclose(p[k], q[k], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["adamp", "sgdp"])
def test_zero_gradient_decays_by_wd_ratio(name):
    """g = 0 has cosine 0, so the channel view fires on kernels: decay is scaled by wd_ratio."""
    p = {"w": jnp.arange(1.0, 13.0).reshape(3, 4), "b": jnp.ones(4)}
    wd, ratio, mom = 0.2, 0.3, 0.5
    if name == "adamp":
        tx = jop.adamp(LR, weight_decay=wd, wd_ratio=ratio)
        factor = 1.0
    else:
        tx = jop.sgdp(LR, momentum=mom, weight_decay=wd, wd_ratio=ratio)
        factor = 1.0 / (1 - mom)
    u, _ = tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p)
    np.testing.assert_allclose(u["w"], -LR * wd * ratio * factor * p["w"], rtol=1e-12)
    np.testing.assert_allclose(u["b"], -LR * wd * factor * p["b"], rtol=1e-12)


def test_sgdp_buffer_projected_in_place_without_nesterov():
    rng = np.random.default_rng(4)
    p = rng.normal(size=(5, 3))
    g = _orthogonal_per_channel(rng, p)
    # make the buffer radial first (aligned gradient: no projection), then feed an orthogonal g
    for nesterov in (False, True):
        tx = jop.sgdp(LR, momentum=0.9, nesterov=nesterov)
        s = tx.init(p)
        _, s = tx.update(jnp.asarray(p), s, jnp.asarray(p))
        buf0 = np.asarray(s[0].momentum)
        _, s = tx.update(jnp.asarray(g), s, jnp.asarray(p))
        buf = np.asarray(s[0].momentum)
        raw = 0.9 * buf0 + g
        if nesterov:
            np.testing.assert_allclose(buf, raw, rtol=1e-12)
        else:
            np.testing.assert_allclose(buf, _project_rows(p, raw), rtol=1e-10, atol=1e-14)
            assert np.abs((buf * p).sum(axis=0)).max() < 1e-6 * np.abs((raw * p).sum(axis=0)).max()


def test_middle_channel_axis_matches_channels_last():
    rng = np.random.default_rng(5)
    p = rng.normal(size=(3, 2, 5, 4))  # channels on axis 2
    # first step fires the channel view; later ones are whatever they are
    gs = [np.moveaxis(_orthogonal_per_channel(rng, np.moveaxis(p, 2, -1)), -1, 2)]
    gs += [rng.normal(size=p.shape) for _ in range(2)]
    makers = (
        lambda ax: jop.adamp(LR, weight_decay=0.1, channel_axis=ax),
        lambda ax: jop.sgdp(LR, 0.9, weight_decay=0.1, channel_axis=ax),
    )
    for make in makers:
        a, b = make(2), make(-1)
        pa, pb = p, np.moveaxis(p, 2, -1)
        sa, sb = a.init(pa), b.init(pb)
        for g in gs:
            ua, sa = a.update(g, sa, pa)
            ub, sb = b.update(np.moveaxis(g, 2, -1), sb, pb)
            np.testing.assert_allclose(
                np.moveaxis(np.asarray(ua), 2, -1), ub, rtol=1e-12, atol=1e-15
            )
            pa, pb = pa + np.asarray(ua), pb + np.asarray(ub)


@pytest.mark.parametrize("name", ["adamp", "sgdp"])
def test_inject_hyperparams_static_channel_axis(name):
    """``channel_axis`` is structural: ``static_args`` keeps it, forgetting it says so."""
    rng = np.random.default_rng(6)
    kw = dict(learning_rate=LR, weight_decay=0.1, channel_axis=0)
    if name == "sgdp":
        kw["momentum"] = 0.9
    factory = getattr(jop, name)
    p = {"w": rng.normal(size=(4, 6)), "c": rng.normal(size=(3, 2, 2)), "b": rng.normal(size=(3,))}
    with pytest.raises(TypeError, match=r'`channel_axis`.*static_args=\("channel_axis",\)'):
        optax.inject_hyperparams(factory)(**kw).init(p)
    plain = factory(**kw)
    injected = optax.inject_hyperparams(factory, static_args=("channel_axis",))(**kw)
    s1, s2 = plain.init(p), injected.init(p)
    step1, step2 = jax.jit(plain.update), jax.jit(injected.update)
    for _ in range(4):
        g = jax.tree.map(lambda x: rng.normal(size=x.shape), p)
        g["w"] = g["w"] - p["w"] * (g["w"] * p["w"]).sum(1, keepdims=True) / (p["w"] ** 2).sum(
            1, keepdims=True
        )  # fire the channel view on "w"
        u1, s1 = step1(g, s1, p)
        u2, s2 = step2(g, s2, p)
        for k in p:
            np.testing.assert_allclose(u1[k], u2[k], rtol=1e-12, atol=1e-15)
        p = optax.apply_updates(p, u1)


def test_channel_axis_and_flags_are_static():
    with pytest.raises(TypeError, match=r"`channel_axis`.*static_args"):
        jop.adamp(channel_axis=jnp.asarray(0))
    with pytest.raises(TypeError, match="`nesterov` must be a bool"):
        jop.sgdp(0.1, nesterov="yes")
    with pytest.raises(TypeError, match="positional"):
        jop.adamp(1e-3, 0.9, 0.999, 1e-8, 0.0, 0.1, 0.1, True)  # nesterov is keyword-only


def test_float16_projection_closed_form():
    """float16 kernel, orthogonal gradient with a zero entry: the float32 closed form, rounded."""
    rng = np.random.default_rng(7)
    p = rng.normal(size=(6, 4)).astype(np.float16).astype(np.float64)
    g = _orthogonal_per_channel(rng, p)
    g[0, 0] = 0.0
    (d,) = _adam_directions([p], [g])
    tx = jop.adamp(LR, b1=B1, b2=B2, eps=EPS)
    p16, g16 = jnp.asarray(p, jnp.float16), jnp.asarray(g, jnp.float16)
    upd, _ = tx.update(g16, tx.init(p16), p16)
    assert upd.dtype == jnp.float16
    np.testing.assert_allclose(
        np.asarray(upd, np.float64), -LR * _project_rows(p, d), rtol=1e-2, atol=1e-5
    )


def test_mask_selects_decayed_leaves():
    p = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    zeros = jax.tree.map(jnp.zeros_like, p)
    for tx in (
        jop.adamp(LR, weight_decay=0.5, mask={"w": False, "b": True}),
        jop.sgdp(LR, weight_decay=0.5, mask=lambda params: {"w": False, "b": True}),
    ):
        u, _ = tx.update(zeros, tx.init(p), p)
        np.testing.assert_array_equal(u["w"], np.zeros((3, 2)))
        np.testing.assert_allclose(u["b"], -LR * 0.5 * np.ones(2))


@pytest.mark.parametrize("name", ["adamp", "sgdp"])
def test_dtypes_and_extra_args(name):
    tx = jop.adamp(1e-2) if name == "adamp" else jop.sgdp(1e-2, momentum=0.9)
    p = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.ones(3, jnp.float32)}
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.5), p)
    state = tx.init(p)
    u, state = jax.jit(lambda g, s, p: tx.update(g, s, p, value=1.0, unknown=2))(g, state, p)
    assert u["w"].dtype == jnp.bfloat16 and u["b"].dtype == jnp.float32
    for moment in state[0][1:]:
        assert moment["w"].dtype == jnp.bfloat16 and moment["b"].dtype == jnp.float32
    assert state[0].count.dtype == jnp.int32
    assert np.all(np.isfinite(np.asarray(u["w"], np.float32)))


@pytest.mark.parametrize(
    ("factory", "kwargs", "name"),
    [
        (jop.adamp, dict(b1=1.0), "b1"),
        (jop.adamp, dict(b2=-0.1), "b2"),
        (jop.adamp, dict(eps=-1e-8), "eps"),
        (jop.adamp, dict(learning_rate=-1.0), "learning_rate"),
        (jop.adamp, dict(weight_decay=-0.1), "weight_decay"),
        (jop.adamp, dict(delta=-0.1), "delta"),
        (jop.adamp, dict(wd_ratio=-1.0), "wd_ratio"),
        (jop.sgdp, dict(learning_rate=0.1, momentum=1.0), "momentum"),
        (jop.sgdp, dict(learning_rate=0.1, dampening=1.5), "dampening"),
        (jop.sgdp, dict(learning_rate=0.1, delta=float("nan")), "delta"),
        (jop.scale_by_adamp, dict(b1=2.0), "b1"),
        (jop.scale_by_sgdp, dict(wd_ratio=-0.5), "wd_ratio"),
    ],
)
def test_bad_hyperparameters(factory, kwargs, name):
    with pytest.raises(ValueError, match=name):
        factory(**kwargs)


def test_bad_channel_axis_and_missing_params():
    with pytest.raises(TypeError, match="channel_axis"):
        jop.adamp(channel_axis=1.5)
    p = jnp.ones((2, 3))
    tx = jop.sgdp(0.1, channel_axis=2)
    with pytest.raises(ValueError, match="channel_axis"):
        tx.update(p, tx.init(p), p)
    tx = jop.adamp()
    with pytest.raises(ValueError, match="params"):
        tx.update(p, tx.init(p))
