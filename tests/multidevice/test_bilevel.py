"""Bilevel hypergradients on data sharded by rows equal the single-device ones (8 CPU devices).

Ridge-strength selection for logistic regression (one strength per feature): the training and
validation rows are sharded over the 8 devices; the implicit hypergradient at the lower-level
solution, and a few outer steps of ``ImplicitBilevel``, must equal the unsharded computation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers import bilevel
from jaxopt_papers.smooth import LBFGS


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))


def upper(x, w, data):
    X, s = data
    return jnp.mean(jnp.logaddexp(0.0, -s * (X @ w)))


def lower(x, w, data):
    X, s = data
    return jnp.mean(jnp.logaddexp(0.0, -s * (X @ w))) + 0.5 * jnp.sum(jnp.exp(x) * w**2)


PROBLEM = bilevel.BilevelProblem(upper, lower)


def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 6))
    s = np.sign(X @ rng.normal(size=6) + 0.5 * rng.normal(size=160))
    return (jnp.asarray(X[:64]), jnp.asarray(s[:64])), (jnp.asarray(X[64:]), jnp.asarray(s[64:]))


def outputs(x, upper_data, lower_data):
    fun = lambda w, x, d: lower(x, w, d)
    w = LBFGS(fun, tol=1e-12).run(jnp.zeros(6), x, lower_data).value
    g = bilevel.hypergradient(PROBLEM, x, w, upper_data, lower_data)
    solver = bilevel.ImplicitBilevel(PROBLEM, outer_lr=1.0, inner_tol=1e-12, max_steps=5)
    sol = solver.run(x, jnp.zeros(6), upper_data, lower_data)
    return g, sol.x, sol.y


def test_sharded_rows_hypergradient_equals_single_device(mesh):
    upper_data, lower_data = data()
    x = jnp.full(6, -2.0)
    fn = jax.jit(outputs)
    ref = fn(x, upper_data, lower_data)
    shard = lambda t: jax.device_put(t, NamedSharding(mesh, P("data")))
    out = fn(x, jax.tree.map(shard, upper_data), jax.tree.map(shard, lower_data))
    for a, b in zip(out, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert float(jnp.linalg.norm(ref[1] - x)) > 1e-3  # the outer steps moved x
