"""AdAdaGrad's batch-size tests against a float64 NumPy replay of the reference code.

The replay follows timlautk/AdAdaGrad ``tests.py``: ``var_sample_grad`` (lines 83-85),
``var_sample_batch_grad`` (87-91), ``var_orthogonality`` (93-100) and the tests ``norm_test``
(111-124), ``inner_product_test`` (126-139), ``orthogonality_test`` (141-154) and
``inner_product_orthogonality_test`` (156-171): per parameter tensor, summed, then
``ceil(max(b, requirement))``. The "global" mode replays the paper's formulas on the gradient
flattened over all tensors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import batch_size as bs

N = 12


def model(params, x):
    h = jnp.tanh(x @ params["w"] + params["b"])
    return h @ params["v"]


def per_example_grads(n=N, seed=0):
    k = jax.random.split(jax.random.key(seed), 5)
    params = {
        "w": jax.random.normal(k[0], (4, 3)),
        "b": 0.3 * jax.random.normal(k[1], (3,)),
        "v": jax.random.normal(k[2], (3, 2)),
    }
    x = jax.random.normal(k[3], (n, 4))
    y = jax.random.normal(k[4], (n, 2))
    loss = lambda p, xi, yi: jnp.sum((model(p, xi) - yi) ** 2)
    return jax.vmap(jax.grad(loss), (None, 0, 0))(params, x, y)


# ------------------------------------------------------------------------ NumPy replay


def replay(grads, kind, tol, mode):
    """The requirement (before ceil/max) in float64, as the reference code computes it."""
    gs = [np.asarray(g, np.float64).reshape(g.shape[0], -1) for g in jax.tree.leaves(grads)]
    means = [g.mean(0) for g in gs]
    sqnorm = sum(float(m @ m) for m in means)
    if kind == "norm":
        return sum(g.var(0, ddof=1).sum() for g in gs) / (tol[0] ** 2 * sqnorm)
    if mode == "per_tensor":
        ips = [g @ m for g, m in zip(gs, means, strict=True)]
        v_ip = sum(ip.var(ddof=1) for ip in ips)
        v_or = sum(
            (g - np.outer(ip, m) / (m @ m)).var(0, ddof=1).sum()
            for g, m, ip in zip(gs, means, ips, strict=True)
        )
    else:
        G, m = np.concatenate(gs, 1), np.concatenate(means)
        ip = G @ m
        v_ip = ip.var(ddof=1)
        v_or = (G - np.outer(ip, m) / (m @ m)).var(0, ddof=1).sum()
    r_ip = v_ip / (tol[0] ** 2 * sqnorm**2)
    nu = tol[1] if kind == "augmented" else tol[0]
    r_or = v_or / (nu**2 * sqnorm)
    return {"inner_product": r_ip, "orthogonality": r_or, "augmented": max(r_ip, r_or)}[kind]


def call(kind, grads, b, tol, mode, max_batch_size=None):
    kw = dict(max_batch_size=max_batch_size)
    if kind == "norm":
        return bs.norm_test(grads, b, tol[0], **kw)
    if kind == "inner_product":
        return bs.inner_product_test(grads, b, tol[0], mode=mode, **kw)
    if kind == "orthogonality":
        return bs.orthogonality_test(grads, b, tol[0], mode=mode, **kw)
    return bs.augmented_inner_product_test(grads, b, tol[0], tol[1], mode=mode, **kw)


CASES = [
    ("norm", "per_tensor"),
    ("inner_product", "per_tensor"),
    ("inner_product", "global"),
    ("orthogonality", "per_tensor"),
    ("orthogonality", "global"),
    ("augmented", "per_tensor"),
    ("augmented", "global"),
]


@pytest.mark.parametrize("kind, mode", CASES)
def test_matches_numpy_replay_over_tolerances(kind, mode):
    grads = per_example_grads()
    fn = jax.jit(lambda g, b, t0, t1: call(kind, g, b, (t0, t1), mode))
    checked = 0
    for t0 in np.geomspace(0.02, 3.0, 9):
        t1 = 0.7 * t0
        req = replay(grads, kind, (t0, t1), mode)
        want = math.ceil(max(N, req))
        if want < 2**31 - 1 and abs(req - round(req)) > 1e-6:  # not on a ceil boundary
            got = fn(grads, jnp.int32(N), t0, t1)
            assert got.dtype == jnp.int32
            assert int(got) == want, (t0, req)
            checked += 1
    # the grid spans both outcomes: the batch kept (test passed) and grown (failed)
    reqs = [replay(grads, kind, (t, 0.7 * t), mode) for t in (0.02, 3.0)]
    assert reqs[0] > N > reqs[1] and checked >= 7


def test_modes_differ_and_per_tensor_drops_cross_terms():
    """On one tensor both modes agree; on several they differ (the reference's per-tensor sums)."""
    grads = per_example_grads()
    one = {"w": grads["w"]}
    for fn in (bs.inner_product_test, bs.orthogonality_test):
        a = int(fn(one, N, 0.05, mode="per_tensor"))
        b = int(fn(one, N, 0.05, mode="global"))
        assert a == b == math.ceil(max(N, replay(one, fn.__name__[:-5], (0.05,), "global")))
    r_pt = replay(grads, "inner_product", (0.05,), "per_tensor")
    r_gl = replay(grads, "inner_product", (0.05,), "global")
    assert abs(r_pt - r_gl) > 1.0
    assert int(bs.inner_product_test(grads, N, 0.05)) == math.ceil(r_pt)
    assert int(bs.inner_product_test(grads, N, 0.05, mode="global")) == math.ceil(r_gl)


@pytest.mark.parametrize("kind", ["norm", "inner_product", "orthogonality", "augmented"])
def test_never_smaller_and_capped(kind):
    grads = per_example_grads()
    # a batch size larger than the requirement is kept
    req = replay(grads, kind, (1.0, 1.0), "per_tensor")
    assert req < 500
    assert int(call(kind, grads, 500, (1.0, 1.0), "per_tensor")) == 500
    # identical per-example gradients: no variance, the batch size is kept
    same = jax.tree.map(lambda g: jnp.broadcast_to(g[:1], g.shape), grads)
    assert int(call(kind, same, N, (0.01, 0.01), "per_tensor")) == N
    # a large requirement is capped
    big = replay(grads, kind, (0.01, 0.01), "per_tensor")
    assert big > 64
    assert int(call(kind, grads, N, (0.01, 0.01), "per_tensor", max_batch_size=64)) == 64
    # a zero mean gradient (infinite requirement) gives the cap
    sym = jax.tree.map(lambda g: jnp.concatenate([g[:6], -g[:6]]), grads)
    assert int(call(kind, sym, N, (0.1, 0.1), "per_tensor", max_batch_size=1000)) == 1000


def test_batch_size_may_differ_from_the_examples():
    """``b`` is the current batch size; the statistics come from the examples given."""
    grads = per_example_grads()
    req = replay(grads, "norm", (0.1,), "per_tensor")
    assert 40 < req < 1000 and abs(req - round(req)) > 1e-6
    assert int(bs.norm_test(grads, 40, 0.1)) == math.ceil(req)
    assert int(bs.norm_test(grads, 1000, 0.1)) == 1000


# ------------------------------------------------------------------------ bad input


def test_bad_input_is_a_clear_error():
    g = per_example_grads()
    for fn, name in (
        (lambda t: bs.norm_test(g, N, t), "eta"),
        (lambda t: bs.inner_product_test(g, N, t), "theta"),
        (lambda t: bs.orthogonality_test(g, N, t), "nu"),
        (lambda t: bs.augmented_inner_product_test(g, N, 0.1, t), "nu"),
    ):
        for bad in (0.0, -0.1):
            with pytest.raises(ValueError, match=rf"`{name}` must be a finite number in \(0\.0"):
                fn(bad)
    with pytest.raises(ValueError, match=r"`batch_size` must be an int >= 2, got 1"):
        bs.norm_test(g, 1)
    with pytest.raises(TypeError, match=r"`batch_size` must be an int >= 2, got 12\.0"):
        bs.norm_test(g, 12.0)
    with pytest.raises(ValueError, match=r"same leading \(example\) dimension.*\['b'\]: 5"):
        bs.inner_product_test({**g, "b": g["b"][:5]}, N)
    with pytest.raises(ValueError, match=r"at least 2 examples.*leading dimension of 1"):
        bs.norm_test(jax.tree.map(lambda x: x[:1], g), N)
    with pytest.raises(ValueError, match=r"`batch_size` \(100\) must not exceed `max_batch_size`"):
        bs.norm_test(g, 100, max_batch_size=64)
    with pytest.raises(ValueError, match=r"`mode` must be one of"):
        bs.orthogonality_test(g, N, mode="layer")
    with pytest.raises(TypeError, match=r"`per_example_grads` must have floating-point leaves"):
        bs.norm_test({"w": jnp.ones((4, 2), jnp.int32)}, 4)


# ------------------------------------------------------------------------ the loop helper


def _regression(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=n)
    return x, y


def _loss(w, batch):
    return jnp.mean((batch[0] @ w - batch[1]) ** 2)


def test_fixed_batch_loop_equals_a_manual_loop():
    x, y = _regression()
    r = bs.grow_batch_training(
        _loss, jnp.zeros(3), optax.sgd(0.05), (x, y), num_steps=20, test=None,
        initial_batch_size=32, seed=3,
    )  # fmt: skip
    rng = np.random.default_rng(3)
    order = np.concatenate([rng.permutation(256) for _ in range(3)])
    w = np.zeros(3)
    for t in range(20):
        idx = order[32 * t : 32 * (t + 1)]
        xb, yb = x[idx], y[idx]
        w = w - 0.05 * 2 * xb.T @ (xb @ w - yb) / 32
    np.testing.assert_allclose(np.asarray(r.params), w, rtol=1e-12)
    assert list(r.batch_sizes) == [32] * 20 and int(r.examples[-1]) == 640


def test_growing_loop_rescales_lr_and_compiles_once_per_size():
    x, y = _regression()
    traces = []

    def loss(w, batch):
        traces.append(batch[0].shape[0])
        return _loss(w, batch)

    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.02)
    r = bs.grow_batch_training(
        loss, jnp.zeros(3), tx, (x, y), num_steps=40, test="norm", eta=0.3,
        initial_batch_size=4, max_batch_size=256, round_to="power_of_two", lr_rule="sqrt",
    )  # fmt: skip
    sizes = r.batch_sizes
    assert np.all(np.diff(sizes) >= 0) and sizes[0] == 4 and sizes[-1] > 4
    assert all(s & (s - 1) == 0 for s in sizes)  # powers of two
    np.testing.assert_allclose(r.learning_rates, 0.02 * np.sqrt(sizes / 4), rtol=1e-6)
    np.testing.assert_array_equal(r.examples, np.cumsum(sizes))
    # one trace per distinct batch size and step kind (test steps trace per example: size 1)
    assert len(traces) <= 2 * len(set(sizes.tolist()))


def test_loop_growth_matches_norm_test_on_the_same_batch():
    x, y = _regression()
    idx = np.random.default_rng(1).permutation(256)[:8]
    per_ex = jax.vmap(jax.grad(lambda w, xi, yi: (xi @ w - yi) ** 2), (None, 0, 0))(
        jnp.zeros(3), x[idx], y[idx]
    )
    want = math.ceil(max(8, replay(per_ex, "norm", (0.2,), "per_tensor")))
    r = bs.grow_batch_training(
        _loss, jnp.zeros(3), optax.sgd(0.01), (x, y), num_steps=2, test="norm", eta=0.2,
        initial_batch_size=8, max_batch_size=256, seed=1,
    )  # fmt: skip
    assert want > 8
    assert int(r.batch_sizes[0]) == 8 and int(r.batch_sizes[1]) == min(want, 256)


def test_loop_bad_input():
    x, y = _regression()
    with pytest.raises(TypeError, match=r"`lr_rule='sqrt'` needs an optimizer made with"):
        bs.grow_batch_training(_loss, jnp.zeros(3), optax.sgd(0.1), (x, y), num_steps=1,
                               lr_rule="sqrt")  # fmt: skip
    with pytest.raises(ValueError, match=r"`test` must be one of"):
        bs.grow_batch_training(_loss, jnp.zeros(3), optax.sgd(0.1), (x, y), num_steps=1,
                               test="variance")  # fmt: skip
    with pytest.raises(ValueError, match=r"common leading example axis.*\[10, 256\]"):
        bs.grow_batch_training(_loss, jnp.zeros(3), optax.sgd(0.1), (x, y[:10]), num_steps=1)
    with pytest.raises(ValueError, match=r"`initial_batch_size` \(512\) must be at most"):
        bs.grow_batch_training(_loss, jnp.zeros(3), optax.sgd(0.1), (x, y), num_steps=1,
                               initial_batch_size=512)  # fmt: skip
