"""L-BFGS (and L-BFGS-B) on data sharded by rows: the single-device answer and hypergradient.

Runs with 8 simulated CPU devices (see tests/test_multidevice.py). A ridge logistic regression
whose design matrix and labels are sharded over rows (data parallel) is solved by LBFGS and
LBFGSB (bounded) and differentiated in the regularisation weight and in the labels; solution,
validation loss and both gradients must equal the unsharded computation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers.smooth import LBFGS, LBFGSB


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))


def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 6))
    y = np.sign(X @ rng.normal(size=6) + 0.5 * rng.normal(size=96))
    return jnp.asarray(X), jnp.asarray(y)


def logreg(w, lam, X, y):
    return jnp.mean(jnp.logaddexp(0.0, -y * (X @ w))) + 0.5 * lam * jnp.sum(w**2)


SOLVERS = {
    "lbfgs": (LBFGS(logreg, tol=1e-11), lambda s, w0, lam, X, y: s.run(w0, lam, X, y)),
    "lbfgsb": (
        LBFGSB(logreg, tol=1e-11),
        lambda s, w0, lam, X, y: s.run(w0, (-0.3, 0.3), lam, X, y),
    ),
}


def hypergrads(name, X, y, w0, lam):
    solver, run = SOLVERS[name]

    def val(lam, y):
        w = run(solver, w0, lam, X[:64], y[:64]).params
        return logreg(w, 0.0, X[64:], y[64:]), w

    (v, w), g = jax.value_and_grad(val, argnums=(0, 1), has_aux=True)(lam, y)
    return v, w, g


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_sharded_rows_hypergradient_equals_single_device(mesh, name):
    X, y = problem()
    w0 = jnp.zeros(6)
    fn = jax.jit(hypergrads, static_argnums=0)
    ref = fn(name, X, y, w0, 0.05)
    Xs = jax.device_put(X, NamedSharding(mesh, P("data")))
    ys = jax.device_put(y, NamedSharding(mesh, P("data")))
    out = fn(name, Xs, ys, w0, 0.05)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert float(jnp.linalg.norm(out[2][1])) > 0  # the labels do move the solution
    if name == "lbfgsb":
        assert np.any(np.abs(np.asarray(out[1])) == 0.3)  # a bound is active
