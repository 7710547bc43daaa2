"""Implicitly differentiated solvers on sharded data: the single-device answer and gradient.

Runs with 8 simulated CPU devices (see tests/test_multidevice.py). A lasso whose design matrix is
sharded over rows (data parallel) and over columns (features, with the coefficients sharded
alike) is solved by ProximalGradient and differentiated in the regularisation and in the data;
value, solution and both gradients must equal the unsharded computation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers.proximal import ProximalGradient, prox_lasso


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))


def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 16))
    w_true = np.where(rng.random(16) < 0.4, rng.normal(size=16), 0.0)
    y = X @ w_true + 0.1 * rng.normal(size=64)
    return jnp.asarray(X), jnp.asarray(y)


def mse(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


SOLVER = ProximalGradient(mse, prox_lasso, stepsize=0.2, tol=1e-12, max_steps=5000)


def hypergrads(X, y, w0, alpha):
    def val(alpha, y):
        w = SOLVER.run(w0, alpha, X[:48], y[:48]).params
        return mse(w, X[48:], y[48:]), w

    (v, w), g = jax.value_and_grad(val, argnums=(0, 1), has_aux=True)(alpha, y)
    return v, w, g


@pytest.mark.parametrize("layout", ["rows", "rows-and-features"])
def test_sharded_lasso_hypergradient_equals_single_device(mesh, layout):
    X, y = problem()
    w0 = jnp.zeros(16)
    ref = jax.jit(hypergrads)(X, y, w0, 0.05)
    x_spec, w_spec = (P("data"), P()) if layout == "rows" else (P("data", "model"), P("model"))
    Xs = jax.device_put(X, NamedSharding(mesh, x_spec))
    ys = jax.device_put(y, NamedSharding(mesh, P("data")))
    w0s = jax.device_put(w0, NamedSharding(mesh, w_spec))
    out = jax.jit(hypergrads)(Xs, ys, w0s, 0.05)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    assert np.count_nonzero(np.asarray(out[1])) < 16  # a sparse solution: the prox is active
