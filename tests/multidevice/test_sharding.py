"""Sharded parameters: same result as one device, state sharded like the params.

Runs with 8 simulated CPU devices (see tests/test_multidevice.py). Parameters are sharded over
a (4, 2) mesh FSDP-style (rows over ``data``, columns over ``model``); one jitted train step
must give the single-device result, keep every parameter's sharding on the state leaves that
mirror it, and ``state_shardings`` must place a jitted ``init`` the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers.sharding import state_shardings
from tests.optimizers.registry import ENTRIES, IDS


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))


def make_params():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return {
        "w": jax.random.normal(k1, (16, 8)),
        "b": jax.random.normal(k2, (8,)),
        "conv": jax.random.normal(k3, (3, 3, 4, 8)),
    }


def specs():
    return {"w": P("data", "model"), "b": P("model"), "conv": P(None, None, "data", "model")}


def loss(p):
    return sum(jnp.sum(jnp.sin(3 * x) + 0.5 * x**2) for x in jax.tree.leaves(p))


class _Pair:
    def __init__(self, leaf, shard):
        self.leaf, self.shard = leaf, shard


def params_shape(params, shard):
    return next(params[k].shape for k, s in specs().items() if s == shard.spec)


def train(tx, params, steps=4, state=None):
    @jax.jit
    def step(params, state):
        u, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, u), state

    state = tx.init(params) if state is None else state
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_sharded_equals_single_device(entry, mesh):
    tx = entry.make()
    params = make_params()
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs())
    sharded = jax.device_put(params, shardings)
    single = jax.device_put(params, jax.devices()[0])

    out_single, _ = train(tx, single)
    state_sh = jax.jit(tx.init, out_shardings=state_shardings(tx, sharded, shardings))(sharded)
    out_sharded, state = train(tx, sharded, state=state_sh)

    for k in params:
        np.testing.assert_allclose(
            np.asarray(out_sharded[k]), np.asarray(out_single[k]), rtol=1e-10, atol=1e-12
        )
        assert out_sharded[k].sharding.is_equivalent_to(shardings[k], params[k].ndim)

    # every state leaf that mirrors a parameter keeps that parameter's sharding
    mirrored = optax.tree.map_params(
        tx,
        lambda leaf, shard: _Pair(leaf, shard),
        state,
        shardings,
        transform_non_params=lambda _: None,
    )
    checked = 0
    for pair in jax.tree.leaves(mirrored, is_leaf=lambda x: isinstance(x, _Pair)):
        leaf, shard = pair.leaf, pair.shard
        if leaf.shape != params_shape(params, shard):
            continue
        assert leaf.sharding.is_equivalent_to(shard, leaf.ndim), (leaf.sharding, shard)
        checked += 1
    assert checked >= len(params)


def test_state_shardings_places_jitted_init(mesh):
    tx = ENTRIES[0].make()
    params = make_params()
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs())
    sharded = jax.device_put(params, shardings)
    target = state_shardings(tx, sharded, shardings)
    state = jax.jit(tx.init, out_shardings=target)(sharded)
    for leaf, want in zip(jax.tree.leaves(state), jax.tree.leaves(target), strict=True):
        assert leaf.sharding.is_equivalent_to(want, leaf.ndim)
    # the counter is replicated, the moments are sharded like w
    assert state[0].count.sharding.is_fully_replicated
    assert not state[0].mu["w"].sharding.is_fully_replicated


def test_state_shardings_rejects_mismatched_structure(mesh):
    tx = ENTRIES[0].make()
    params = make_params()
    with pytest.raises(ValueError, match="param_shardings"):
        state_shardings(tx, params, {"w": NamedSharding(mesh, P())})
