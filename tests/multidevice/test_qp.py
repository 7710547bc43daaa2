"""BoxOSQP on a constraint matrix sharded by rows: the single-device answer and gradients.

Runs with 8 simulated CPU devices (see tests/test_multidevice.py). ``A`` (32 rows) and the
bounds ``l``, ``u`` are sharded over the 8 devices by rows (each device holds 4 constraints);
``Q`` and ``c`` are replicated. The solution, the multipliers and the gradients of a loss of the
solution with respect to ``c``, ``A`` and ``u`` must equal the unsharded computation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers.qp import BoxOSQP


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((8,), ("rows",), axis_types=(AxisType.Auto,))


def problem():
    rng = np.random.default_rng(0)
    n, m = 8, 32
    M = rng.normal(size=(n, n))
    Q = M @ M.T / n + 0.5 * np.eye(n)
    c = 3.0 * rng.normal(size=n)
    A = rng.normal(size=(m, n))
    lower, upper = -rng.uniform(0.5, 1.5, size=m), rng.uniform(0.5, 1.5, size=m)
    return [jnp.asarray(v) for v in (Q, c, A, lower, upper)]


SOLVER = BoxOSQP(tol=1e-11, max_steps=5000)


def solve_and_grad(Q, c, A, lower, upper):
    def loss(c, A, upper):
        sol = SOLVER.run(None, (Q, c), A, (lower, upper))
        x, y = sol.params.primal[0], sol.params.dual_eq
        return jnp.sum(x**2) + jnp.sum(jnp.sin(y)), (x, y)

    (value, (x, y)), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(c, A, upper)
    return value, x, y, grads


def test_row_sharded_boxosqp_equals_single_device(mesh):
    Q, c, A, lower, upper = problem()
    ref = jax.jit(solve_and_grad)(Q, c, A, lower, upper)
    rows = NamedSharding(mesh, P("rows"))
    A_s, lower_s, upper_s = (jax.device_put(v, rows) for v in (A, lower, upper))
    out = jax.jit(solve_and_grad)(Q, c, A_s, lower_s, upper_s)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    y = np.asarray(out[2])
    assert 0 < np.count_nonzero(np.abs(y) > 1e-8) < 32  # some constraints active, not all
