"""AdAdaGrad's batch-size tests on 8 simulated devices (run by tests/test_multidevice.py).

Per-example gradients sharded over their example (batch) axis, as a data-parallel step computes
them: the jitted tests give the single-device values (the means and variances over examples
become cross-device reductions).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers import batch_size as bs


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))


def per_example_grads(n=64):
    k = jax.random.split(jax.random.key(0), 5)
    params = {"w": jax.random.normal(k[0], (6, 4)), "b": jax.random.normal(k[1], (4,))}
    x = jax.random.normal(k[2], (n, 6))
    y = jax.random.normal(k[3], (n, 4))
    loss = lambda p, xi, yi: jnp.sum((jnp.tanh(xi @ p["w"] + p["b"]) - yi) ** 2)
    return jax.vmap(jax.grad(loss), (None, 0, 0))(params, x, y)


@pytest.mark.parametrize("mode", ["per_tensor", "global"])
def test_sharded_tests_equal_single_device(mesh, mode):
    grads = per_example_grads()
    sharded = jax.device_put(grads, NamedSharding(mesh, P("data")))
    assert not sharded["w"].sharding.is_fully_replicated

    @jax.jit
    def all_tests(g):
        return jnp.stack(
            [
                bs.norm_test(g, 64, 0.05),
                bs.inner_product_test(g, 64, 0.05, mode=mode),
                bs.orthogonality_test(g, 64, 0.05, mode=mode),
                bs.augmented_inner_product_test(g, 64, 0.05, 0.05, mode=mode),
            ]
        )

    single = all_tests(jax.device_put(grads, jax.devices()[0]))
    got = all_tests(sharded)
    assert got.tolist() == single.tolist()
    assert 64 < min(single.tolist()) and max(single.tolist()) < 2**31 - 1  # grown, finite
