"""Bilevel case: the implicit-differentiation baseline on the closed-form quadratic problem.

The scalar value scales the upper level's target ``t``; the solution ``x*`` depends on it
linearly, and its implicit derivative goes through the joint optimality condition (a
hypergradient inside an implicit derivative).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxopt_papers import bilevel
from tests.solver_cases._case import Case, _to_float32

RP = bilevel.problems.quadratic(dim_x=2, dim_y=3)


def _data(v, dtype=None):
    (t, rho), lower = RP.upper_data, RP.lower_data
    data = ((v * t, rho), lower)
    return _to_float32(data) if dtype == jnp.float32 else data


def _run(solver, v):
    upper, lower = _data(v)
    return solver.run(RP.x0, RP.y0, upper, lower)


def _run32(solver, v):
    upper, lower = _data(jnp.float32(v), jnp.float32)
    return solver.run(*_to_float32((RP.x0, RP.y0)), upper, lower)


def _manual(solver, v):
    upper, lower = _data(v)
    params = bilevel.BilevelParams(RP.x0, RP.y0)
    state = solver.init(params, upper, lower)
    step = jax.jit(lambda p, s: solver.step(p, s, upper, lower))
    while int(state.num_steps) < solver.max_steps and float(state.error) > solver.tol:
        params, state = step(params, state)
    return params, state.num_steps


CASES = [
    Case(
        "implicit-bilevel-quadratic",
        bilevel.ImplicitBilevel(RP.problem, outer_lr=0.5, inner_tol=1e-12, tol=1e-9, max_steps=400),
        _run, (0.8, 1.0, 1.2), output=lambda sol: sol.x, run32=_run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-4, lower_tol=1e-2),
        manual=_manual, output_of_value=lambda p: p.x,
        vmap_solver=lambda s: dataclasses.replace(s, throw=False),
    ),
]  # fmt: skip
