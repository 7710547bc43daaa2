"""8-bit optimizer states on 8 simulated devices (run by tests/test_multidevice.py).

Parameters sharded FSDP-style over a (4, 2) mesh: ``state_shardings`` gives the uint8 codes
their parameter's sharding and replicates the block maxima, for a jitted ``init`` and (as
``out_shardings``) for the train step; the sharded steps give the single-device result, codes
identical, also when the state is requantised in runs of blocks that cross shard boundaries.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxopt_papers.quantized as Q
from jaxopt_papers.sharding import state_shardings


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))


def make_params():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return {
        "w": jax.random.normal(k1, (128, 64), jnp.float32),  # 8192 entries: 8-bit
        "conv": jax.random.normal(k3, (3, 3, 32, 64), jnp.float32),  # 18432: 8-bit
        "b": jax.random.normal(k2, (64,), jnp.float32),  # 32-bit
    }


def specs():
    return {"w": P("data", "model"), "b": P("model"), "conv": P(None, None, "data", "model")}


def loss(p):
    return sum(jnp.sum(jnp.sin(3 * x) + 0.5 * x**2) for x in jax.tree.leaves(p))


def train(tx, params, state, steps=4, out_shardings=None):
    def step(params, state):
        u, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, u), state

    step = jax.jit(step) if out_shardings is None else jax.jit(step, out_shardings=out_shardings)

    for _ in range(steps):
        params, state = step(params, state)
    return params, state


@pytest.mark.parametrize(
    "make",
    [
        lambda: Q.adamw8bit(1e-2),
        lambda: Q.lion8bit(1e-3, weight_decay=0.1),
        lambda: optax.chain(Q.quantize_state(optax.scale_by_adam()), optax.scale(-1e-2)),
    ],
    ids=["adamw8bit", "lion8bit", "quantize_state"],
)
@pytest.mark.parametrize("chunk", [None, 5], ids=["one_run", "runs_of_5_blocks"])
def test_sharded_equals_single_device(make, chunk, mesh, request, monkeypatch):
    # the wrapper runs optax's own arithmetic, whose sharded program may round a moment by an
    # ulp differently, which can move a code by one: a tolerance there, exact equality for ours
    exact = "quantize_state" not in request.node.name
    if chunk is not None:  # the optimizers requantise large tensors in runs of blocks
        from jaxopt_papers.quantized import _moments

        monkeypatch.setattr(_moments, "CHUNK_BLOCKS", chunk)
    tx = make()
    params = make_params()
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs())
    sharded = jax.device_put(params, shardings)
    single = jax.device_put(params, jax.devices()[0])

    out_single, st_single = train(tx, single, tx.init(single))
    target = state_shardings(tx, sharded, shardings)
    st0 = jax.jit(tx.init, out_shardings=target)(sharded)
    # the train step keeps the state where state_shardings puts it (codes like their params,
    # block maxima replicated); without out_shardings XLA may gather the codes
    out_sharded, st_sharded = train(tx, sharded, st0, out_shardings=(shardings, target))

    for k in params:
        np.testing.assert_allclose(
            np.asarray(out_sharded[k]),
            np.asarray(out_single[k]),
            rtol=1e-6 if exact else 1e-4,
            atol=1e-7 if exact else 1e-5,
        )
        assert out_sharded[k].sharding.is_equivalent_to(shardings[k], params[k].ndim)
    codes = [x for x in jax.tree.leaves(st_sharded) if x.dtype == jnp.uint8]
    assert len(codes) >= 2
    trees = (st_sharded, st_single, target)
    for a, b, want in zip(*(jax.tree.leaves(t) for t in trees), strict=True):
        if a.dtype == jnp.uint8:  # codes: identical, sharded like their parameter
            if exact:
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            else:
                assert np.mean(np.asarray(a) != np.asarray(b)) <= 0.01
            assert not want.is_fully_replicated
        assert a.sharding.is_equivalent_to(want, a.ndim)
    for leaf, want in zip(jax.tree.leaves(st0), jax.tree.leaves(target), strict=True):
        assert leaf.sharding.is_equivalent_to(want, leaf.ndim)
