"""Every zeroth-order transformation as an optax citizen: jit, chains, inject_hyperparams,
dtypes, pytrees, MultiSteps, unknown extra arguments, abstract init.

(Each test compiles one program where it can: eager calls of these transformations compile
their direction loop on every call.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.zeroth_order.cases import CASES, IDS

rng = np.random.default_rng(0)
PARAMS = {"a": {"kernel": rng.normal(size=(4, 3))}, "b": (rng.normal(size=3), rng.normal(size=()))}
ESTIMATORS = [c for c in CASES if c.name.startswith("scale_by")]
EST_IDS = [c.name for c in ESTIMATORS]


def loss(p):
    return sum(jnp.sum(jnp.cos(x) + 0.3 * x**2) for x in jax.tree.leaves(p))


def params(dtype=jnp.float64):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), PARAMS)


def close(a, b, rtol=1e-12):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=1e-14
        )


@pytest.mark.parametrize("case", ESTIMATORS, ids=EST_IDS)
def test_jit_equals_eager_ignores_extra_args_and_compiles_once(case):
    tx = case.make()
    p = params()
    eager_u, eager_s = tx.update(None, tx.init(p), p, value_fn=loss)
    traces = []

    @jax.jit
    def step(p, s):
        traces.append(1)
        return tx.update(None, s, p, value_fn=loss, batch=3, obj_fn=None)  # unknown: ignored

    jit_u, jit_s = step(p, tx.init(p))
    close(jit_u, eager_u)
    close(jit_s, eager_s)
    step(jax.tree.map(lambda x: x + 0.1, p), jit_s)
    assert len(traces) == 1
    assert jax.tree.structure(jit_u) == jax.tree.structure(p)  # pytree params kept
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), p)
    assert jax.tree.structure(jax.eval_shape(tx.init, abstract)) == jax.tree.structure(jit_s)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inject_hyperparams_gives_identical_updates(case):
    p = params()
    tx, injected = case.make(), case.make_injected()

    @jax.jit
    def both(s1, s2):
        return (
            tx.update(None, s1, p, value_fn=loss)[0],
            injected.update(None, s2, p, value_fn=loss),
        )

    u1, (u2, s2) = both(tx.init(p), injected.init(p))
    # equal up to rounding: XLA may turn a division by a constant (not by an injected array)
    # into a multiplication by its reciprocal, which forward differences amplify by 1/μ
    close(u1, u2, rtol=1e-10)
    assert case.traced in s2.hyperparams


@pytest.mark.parametrize("case", ESTIMATORS, ids=EST_IDS)
def test_bfloat16_params(case):
    tx = case.make()
    p = params(jnp.bfloat16)
    u, s = jax.jit(lambda s: tx.update(None, s, p, value_fn=loss))(tx.init(p))
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
    assert all(bool(jnp.all(jnp.isfinite(x.astype(jnp.float32)))) for x in jax.tree.leaves(u))
    s0 = tx.init(p)
    assert jax.tree.map(lambda x: x.dtype, s) == jax.tree.map(lambda x: x.dtype, s0)


def test_chain_with_adam_converges_and_multisteps():
    case = CASES[0]  # scale_by_spsa
    p0 = params()
    f = lambda p: sum(jnp.sum((x - 0.5) ** 2) for x in jax.tree.leaves(p))
    # optax.chain(estimator, adam) minimises a quadratic
    tx = optax.chain(case.make(num_directions=4), optax.adam(0.05))

    def step(carry, _):
        p, s = carry
        u, s = tx.update(None, s, p, value_fn=f)
        return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=200))(p0)
    assert float(f(p)) < 1e-3 * float(f(p0))

    # MultiSteps around the optimizer that follows: k estimates averaged, then one step
    ms = optax.chain(case.make(), optax.MultiSteps(optax.sgd(0.1), every_k_schedule=2))
    inner = case.make()

    @jax.jit
    def run():
        s = ms.init(p0)
        u1, s = ms.update(None, s, p0, value_fn=f)
        u2, s = ms.update(None, s, p0, value_fn=f)
        g1, st = inner.update(None, inner.init(p0), p0, value_fn=f)
        g2, _ = inner.update(None, st, p0, value_fn=f)
        return u1, u2, g1, g2

    u1, u2, g1, g2 = run()
    assert all(float(jnp.max(jnp.abs(x))) == 0 for x in jax.tree.leaves(u1))
    # (MultiSteps keeps its running mean with float32 weights: agreement to ~1e-7)
    close(u2, jax.tree.map(lambda a, b: -0.1 * (a + b) / 2, g1, g2), rtol=1e-6)
