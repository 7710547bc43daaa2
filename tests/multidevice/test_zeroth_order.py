"""MeZO on 8 simulated devices (run by tests/test_multidevice.py).

Parameters sharded FSDP-style over a (4, 2) mesh. A jitted MeZO step on sharded params gives the
single-device result and keeps every parameter's sharding, and its compiled program gathers no
parameter: the Gaussian directions are generated shard by shard (JAX's partitionable threefry,
the default) and the only collectives are all-reduces of the scalar losses. We check the second
claim on the compiled HLO text: no all-gather, all-to-all or collective-permute at all, and
every all-reduce has scalar results, and no array of a whole parameter's shape appears in the
per-device program. (With ``jax_threefry_partitionable=False`` the same step compiles to
collective-permutes of key material and full-size random arrays, and this test fails.)
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers import zeroth_order as zo


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))


def make_params():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return {
        "w": jax.random.normal(k1, (128, 64), jnp.float64),
        "conv": jax.random.normal(k3, (3, 3, 32, 64), jnp.float64),
        "bias": jax.random.normal(k2, (64,), jnp.float64),
    }


def specs():
    return {"w": P("data", "model"), "bias": P("model"), "conv": P(None, None, "data", "model")}


def loss(p):
    return sum(jnp.sum(jnp.sin(3 * x) + 0.5 * x**2) for x in jax.tree.leaves(p))


def make_step(tx):
    def step(params, state):
        u, state = tx.update(None, state, params, value_fn=loss)
        return optax.apply_updates(params, u), state

    return jax.jit(step)


def collectives(hlo: str) -> dict[str, list[str]]:
    """Each collective instruction of a compiled module with its result shape."""
    found: dict[str, list[str]] = {}
    pattern = r"= (.+?) (all-gather|all-reduce|collective-permute|all-to-all)(-start)?\("
    for m in re.finditer(pattern, hlo):
        found.setdefault(m.group(2), []).append(m.group(1))
    return found


def test_sharded_mezo_equals_single_device_without_gathering(mesh):
    tx = zo.mezo(1e-3, eps=1e-3, weight_decay=0.1, num_directions=2, seed=2)
    params = make_params()
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs())
    sharded = jax.device_put(params, shardings)
    single = jax.device_put(params, jax.devices()[0])
    step = make_step(tx)

    out_single, st_single = single, tx.init(single)
    out_sharded, st_sharded = sharded, tx.init(sharded)
    for _ in range(3):
        out_single, st_single = step(out_single, st_single)
        out_sharded, st_sharded = step(out_sharded, st_sharded)
    for k in params:
        # the losses are summed in another order on 8 devices: 1e-12 of a loss of ~2e4, over
        # 2 eps = 2e-3, moves the projected gradient by ~1e-8 relative
        np.testing.assert_allclose(
            np.asarray(out_sharded[k]), np.asarray(out_single[k]), rtol=1e-8, atol=1e-9
        )
        assert out_sharded[k].sharding.is_equivalent_to(shardings[k], params[k].ndim)
        assert np.max(np.abs(np.asarray(out_sharded[k]) - np.asarray(params[k]))) > 1e-6

    hlo = step.lower(sharded, tx.init(sharded)).compile().as_text()
    found = collectives(hlo)
    assert not found.get("all-gather"), found["all-gather"]
    assert not found.get("all-to-all"), found["all-to-all"]
    assert not found.get("collective-permute"), found["collective-permute"]
    reduced = found.get("all-reduce", [])
    assert reduced, "the losses are sums over shards: they need all-reduces"
    # the result of every all-reduce is a scalar or a tuple of scalars (the losses)
    dims = [d for shape in reduced for d in re.findall(r"\w+\[([\d,]*)\]", shape)]
    assert dims and all(d == "" for d in dims), reduced
    for k, x in params.items():  # only shards: no array of a whole parameter's shape
        assert f"[{','.join(map(str, x.shape))}]" not in hlo, k
