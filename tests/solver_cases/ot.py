"""Optimal-transport cases: Sinkhorn and Sinkhorn–Newton–Sparse on a small float64 problem whose
regularisation ``ε`` is the scalar; the output compared and differentiated is the plan."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.ot import OTProblem, Sinkhorn, SinkhornNewtonSparse, squared_euclidean
from tests.solver_cases._case import Case, _to_float32

_rng = np.random.default_rng(7)
COST = squared_euclidean(jnp.asarray(_rng.normal(size=(12, 2))),
                         jnp.asarray(1.0 + 0.5 * _rng.normal(size=(10, 2))))  # fmt: skip
A = jnp.asarray(_rng.uniform(0.5, 1.5, size=12))
A = A / A.sum()
B = jnp.full(10, 0.1)
SCALE = float(COST.mean())


def _plan(sol):
    return sol.plan


def _case(name, solver, values, **kw):
    def run(solver, v):
        return solver.run(OTProblem(COST, A, B, v * SCALE))

    def run32(solver, v):
        return solver.run(OTProblem(*_to_float32((COST, A, B)), jnp.float32(v) * SCALE))

    def manual(solver, v):
        problem = OTProblem(COST, A, B, v * SCALE)
        step = jax.jit(lambda p, s: solver.step(p, s, problem))
        params, state = None, solver.init(None, problem)
        while int(state.num_steps) == 0 or float(state.error) > float(solver.tol):
            params, state = step(params, state)
        return params, state.num_steps

    def plan_of(params):
        eps = values[0] * SCALE
        return jnp.exp((params.f[:, None] + params.g[None, :] - COST) / eps)

    return Case(
        name, solver, run, values, output=_plan, run32=run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-5), manual=manual,
        output_of_value=plan_of, fd_step=1e-4, **kw,
    )  # fmt: skip


CASES = [
    _case("sinkhorn", Sinkhorn(tol=1e-12, max_steps=200), (0.1, 0.2, 0.3)),
    _case("sinkhorn-newton-sparse", SinkhornNewtonSparse(tol=1e-12, max_newton_steps=50),
          (0.01, 0.03, 0.1), short=lambda s: dataclasses.replace(s, max_newton_steps=1),
          unrolled=None),
]  # fmt: skip
