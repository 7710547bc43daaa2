"""The shared invariant suite of the library's solvers (every IterativeSolver is registered here).

For each case: ``run`` under ``jit`` equals eager; a new hyperparameter value does not retrace;
``vmap`` over hyperparameters equals a loop; the implicit gradient equals the unrolled one and
central finite differences; float32 inputs stay float32; manual ``init``/``step`` reproduces
``run``; ``throw=False`` reports instead of raising. Later solvers (Sinkhorn–Newton, Krylov
recycling, bilevel) add a ``Case``.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from jaxopt_papers.implicit import RESULTS, IterativeSolver
from jaxopt_papers.proximal import (
    ProjectedGradient,
    ProximalGradient,
    projection_box,
    prox_elastic_net,
    prox_lasso,
)

_X, _y = load_diabetes(return_X_y=True)
_X = (_X - _X.mean(0)) / _X.std(0)
_y = (_y - _y.mean()) / _y.std()
X, Y = jnp.asarray(_X[:200]), jnp.asarray(_y[:200])
L = float(np.linalg.eigvalsh(_X[:200].T @ _X[:200] / 200)[-1])
TRACES = {"count": 0}


def lsq(w, X, y):
    TRACES["count"] += 1  # Python side effect: runs once per trace
    return 0.5 * jnp.mean((X @ w - y) ** 2)


@dataclasses.dataclass
class Case:
    name: str
    solver: IterativeSolver
    init: Any
    hyper: Callable[[jax.Array], Any]  # scalar -> the solver's hyperparameter argument
    values: tuple[float, float, float]
    args: tuple = (X, Y)


CASES = [
    Case("fista-lasso", ProximalGradient(lsq, prox_lasso, stepsize=1 / L, tol=1e-11,
                                         max_steps=3000), jnp.zeros(10), lambda a: a,
         (0.02, 0.05, 0.1)),
    Case("ista-backtracking-lasso", ProximalGradient(lsq, prox_lasso, acceleration=False,
                                                     tol=1e-11, max_steps=3000),
         jnp.zeros(10), lambda a: a, (0.02, 0.05, 0.1)),
    Case("fista-elastic-net", ProximalGradient(lsq, prox_elastic_net, tol=1e-11,
                                               max_steps=3000), jnp.zeros(10),
         lambda a: (a, 0.5), (0.02, 0.05, 0.1)),
    Case("projected-box", ProjectedGradient(lsq, projection_box, stepsize=1 / L, tol=1e-11,
                                            max_steps=3000), jnp.zeros(10),
         lambda a: (-a, a), (0.05, 0.1, 0.2)),
]  # fmt: skip
IDS = [c.name for c in CASES]


def solve(case, value, solver=None):
    solver = case.solver if solver is None else solver
    return solver.run(case.init, case.hyper(value), *case.args)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_equals_eager_and_no_retrace_for_new_values(case):
    eager = solve(case, case.values[0])
    jitted = jax.jit(lambda v: solve(case, v))
    np.testing.assert_allclose(jitted(case.values[0]).params, eager.params, rtol=1e-12, atol=1e-14)
    assert eager.result == RESULTS.successful
    assert {"num_steps", "error"} <= set(eager.stats)
    assert 0 < int(eager.stats["num_steps"]) < case.solver.max_steps
    assert float(eager.stats["error"]) <= case.solver.tol
    before = TRACES["count"]
    solve(case, case.values[1])  # eager run, another Python float: compiled run is reused
    jitted(case.values[2])
    assert TRACES["count"] == before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_hyperparameters_equals_loop(case):
    values = jnp.asarray(case.values)
    batched = jax.vmap(lambda v: solve(case, v).params)(values)
    for i, v in enumerate(case.values):
        np.testing.assert_allclose(batched[i], solve(case, v).params, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_implicit_gradient_equals_unrolled_and_finite_differences(case):
    target = jnp.asarray(np.random.default_rng(0).normal(size=10))
    f = lambda s: lambda v: jnp.sum((solve(case, v, s).params - target) ** 2)
    v = case.values[1]
    g = jax.grad(f(case.solver))(v)
    h = 1e-3 * v  # the solution error (tol) must be far below h·|g|
    fd = (f(case.solver)(v + h) - f(case.solver)(v - h)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    # The derivative of the iterates converges more slowly than the iterates (and FISTA's
    # momentum makes it oscillate), so unrolling agrees to a looser tolerance.
    unrolled = dataclasses.replace(case.solver, implicit_diff=False)
    np.testing.assert_allclose(jax.grad(f(unrolled))(v), g, rtol=1e-5)
    np.testing.assert_allclose(jax.jvp(f(case.solver), (v,), (1.0,))[1], g, rtol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32(case):
    solver = dataclasses.replace(case.solver, tol=1e-4)
    args32 = jax.tree.map(lambda a: a.astype(jnp.float32), case.args)
    init32 = case.init.astype(jnp.float32)
    sol = solver.run(init32, case.hyper(case.values[1]), *args32)
    assert sol.params.dtype == jnp.float32
    for leaf in jax.tree.leaves(sol.state):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
    g = jax.grad(lambda v: jnp.sum(solver.run(init32, case.hyper(v), *args32).params))(
        jnp.float32(case.values[1])
    )
    assert g.dtype == jnp.float32 and bool(jnp.isfinite(g))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_manual_steps_reproduce_run(case):
    solver, hp = case.solver, case.hyper(case.values[0])
    params, state = case.init, solver.init(case.init, hp, *case.args)
    step = jax.jit(lambda p, s: solver.step(p, s, hp, *case.args))
    while int(state.num_steps) < solver.max_steps and float(state.error) > solver.tol:
        params, state = step(params, state)
    sol = solve(case, case.values[0])
    assert int(state.num_steps) == int(sol.stats["num_steps"])
    np.testing.assert_allclose(params, sol.params, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_throw_false_reports_instead_of_raising(case):
    short = dataclasses.replace(case.solver, max_steps=2, throw=False)
    codes = jax.vmap(lambda v: solve(case, v, short).result == RESULTS.max_steps_reached)(
        jnp.asarray(case.values)
    )
    assert bool(jnp.all(codes))
