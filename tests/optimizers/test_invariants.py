"""The shared invariant suite: every optimizer of ``registry.ENTRIES`` must pass every test.

Each test compares against something independent of the optimizer under test: the same
computation on another path (eager vs jit, plain vs ``inject_hyperparams``), optax's own
wrappers' documented semantics (``MultiSteps`` = averaged gradient, ``masked`` = untouched
leaves, ``apply_if_finite`` = skipped step), or a closed-form minimiser.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.optimizers.registry import ENTRIES, IDS

pytestmark = pytest.mark.parametrize("entry", ENTRIES, ids=IDS)


def make_params(dtype=jnp.float64, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return {
        "w": jax.random.normal(k1, (6, 4), dtype),
        "b": 0.1 * jax.random.normal(k2, (4,), dtype),
        "conv": jax.random.normal(k3, (2, 2, 3, 4), dtype),
    }


def loss(params):
    return sum(jnp.sum(jnp.sin(3 * x) + 0.5 * x**2 + 0.1 * x) for x in jax.tree.leaves(params))


def grads_at(params):
    return jax.grad(lambda p: loss(p).astype(jnp.float32))(params)


def run(tx, params, steps=8, jit=True, **extra):
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    for _ in range(steps):
        updates, state = update(grads_at(params), state, params, **extra)
        params = optax.apply_updates(params, updates)
    return params, state


def assert_trees_close(a, b, rtol, atol=0.0):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol
        )


def test_jit_equals_eager(entry):
    p = make_params()
    eager, _ = run(entry.make(), p, jit=False)
    jitted, _ = run(entry.make(), p, jit=True)
    assert_trees_close(eager, jitted, rtol=1e-10, atol=1e-12)


def test_no_recompilation(entry):
    tx = entry.make()
    p = make_params()
    update = jax.jit(tx.update)
    state = tx.init(p)
    for _ in range(3):
        u, state = update(grads_at(p), state, p)
        p = optax.apply_updates(p, u)
    assert update._cache_size() == 1


def test_unknown_extra_args_ignored(entry):
    p = make_params()
    plain, _ = run(entry.make(), p)
    extra, _ = run(
        entry.make(), p, unexpected_extra_arg_your_optimizer_does_not_expect=1, value=jnp.array(1.0)
    )
    assert_trees_close(plain, extra, rtol=0)


def test_inject_hyperparams_identical(entry):
    p = make_params()
    plain, _ = run(entry.make(), p)
    injected, state = run(entry.make_injected(), p)
    assert_trees_close(plain, injected, rtol=1e-12, atol=1e-14)
    assert "learning_rate" in state.hyperparams


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_dtypes_preserved(entry, dtype):
    p = make_params(dtype)
    tx = entry.make()
    state = tx.init(p)
    u, new_state = jax.jit(tx.update)(
        jax.tree.map(lambda x: x.astype(dtype), grads_at(p)), state, p
    )
    assert all(x.dtype == dtype for x in jax.tree.leaves(u))
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)
    assert all(bool(jnp.all(jnp.isfinite(x.astype(jnp.float32)))) for x in jax.tree.leaves(u))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_state_type_stable_in_cond(entry, dtype):
    p = make_params(dtype)
    tx = entry.make()
    state = tx.init(p)
    g = jax.tree.map(lambda x: x.astype(dtype), grads_at(p))

    @jax.jit
    def f(pred, state):
        return jax.lax.cond(pred, lambda s: tx.update(g, s, p)[1], lambda s: s, state)

    out = f(True, state)  # raises if the branches' types differ
    assert jax.tree.structure(out) == jax.tree.structure(state)


def test_multisteps_averages_gradients(entry):
    p = make_params()
    k = 3
    multi = optax.MultiSteps(entry.make(), every_k_schedule=k, accumulator_dtype=jnp.float64)
    tx = entry.make()
    ms, s = multi.init(p), tx.init(p)
    multi_update, tx_update = jax.jit(multi.update), jax.jit(tx.update)
    params_m, params_s = p, p
    for step in range(2):
        gs = [
            jax.tree.map(lambda x, i=i: x * (1 + 0.3 * i + step), grads_at(params_s))
            for i in range(k)
        ]
        for g in gs:
            u, ms = multi_update(g, ms, params_m)
            params_m = optax.apply_updates(params_m, u)
        mean = jax.tree.map(lambda *xs: sum(xs) / k, *gs)
        u, s = tx_update(mean, s, params_s)
        params_s = optax.apply_updates(params_s, u)
    assert_trees_close(params_m, params_s, rtol=1e-7, atol=1e-9)


def test_masked_leaves_untouched(entry):
    p = make_params()
    mask = {"w": True, "b": False, "conv": True}
    masked = optax.masked(entry.make(), mask)
    sub = {k: v for k, v in p.items() if mask[k]}
    tx = entry.make()
    g = grads_at(p)
    u, _ = masked.update(g, masked.init(p), p)
    u_sub, _ = tx.update({k: g[k] for k in sub}, tx.init(sub), sub)
    np.testing.assert_array_equal(u["b"], g["b"])  # masked-out leaves pass through unchanged
    assert_trees_close({k: u[k] for k in sub}, u_sub, rtol=1e-12)


def test_init_on_abstract_params(entry):
    p = make_params(jnp.float32)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), p)
    tx = entry.make()
    shapes = jax.eval_shape(tx.init, abstract)
    concrete = tx.init(p)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), shapes) == jax.tree.map(
        lambda x: (x.shape, x.dtype), concrete
    )


def test_nan_gradient_skipped_by_apply_if_finite(entry):
    p = make_params()
    tx = optax.apply_if_finite(entry.make(), max_consecutive_errors=5)
    state = tx.init(p)
    u, state = tx.update(grads_at(p), state, p)
    p = optax.apply_updates(p, u)
    bad = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan), grads_at(p))
    u_bad, state_bad = tx.update(bad, state, p)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u_bad))
    assert_trees_close(state_bad.inner_state, state.inner_state, rtol=0)
    assert int(state_bad.notfinite_count) == 1
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state_bad.inner_state))


def _minimise(entry, fn, x0, steps):
    peak = entry.converge.get("learning_rate", entry.kwargs["learning_rate"])
    sched = optax.cosine_decay_schedule(peak, steps, alpha=0.0)
    tx = entry.make(**{**entry.converge, "learning_rate": sched})

    @jax.jit
    def solve(x0):
        def step(carry, _):
            x, s = carry
            u, s = tx.update(jax.grad(fn)(x), s, x)
            return (optax.apply_updates(x, u), s), None

        (x, _), _ = jax.lax.scan(step, (x0, tx.init(x0)), None, length=steps)
        return x

    return solve(x0)


def test_converges_on_quadratic(entry):
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(40, 8)))
    target = jnp.asarray(rng.normal(size=(40, 4)))
    x_star = np.linalg.lstsq(np.asarray(a), np.asarray(target), rcond=None)[0]

    def f(x):
        return 0.5 * jnp.mean(jnp.sum((a @ x["w"] - target) ** 2, axis=1))

    x = _minimise(entry, f, {"w": jnp.zeros((8, 4))}, 2000)["w"]
    err = np.linalg.norm(np.asarray(x) - x_star) / np.linalg.norm(x_star)
    assert err < 2e-2, f"relative distance to the least-squares solution {err:.3g}"


def test_converges_on_rosenbrock(entry):
    def f(x):
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    x = _minimise(entry, f, jnp.array([-1.2, 1.0]), 4000)
    assert np.linalg.norm(np.asarray(x) - 1.0) < 5e-2, f"ended at {x}"
