"""Bilevel case: the penalty method (Kwon et al., ICLR 2024) on the closed-form quadratic problem.

The scalar value scales the upper level's target ``t``; ``x*`` depends on it linearly. The
solver runs with a fixed ``σ = 1e-6`` (``sigma_decay=0``), so its answer ``x*_σ`` is within
``O(σ)`` of the bilevel solution whose implicit derivative (the joint condition) the suite
compares with finite differences of the runs and with differentiation through the iterations.
Finite differences see ``x*_σ`` and the implicit derivative ``x*``: they differ by about
``1e-6`` relative (measured 7.5e-7), hence ``rtol_fd=5e-6``; ``x*`` is linear in the value, so
a large ``fd_step`` is exact and keeps the solver's ``tol``-level noise out of the quotient.
In float32 the ``1/σ`` factor would amplify round-off: ``σ = 1e-3`` there.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxopt_papers import bilevel
from jaxopt_papers.bilevel.penalty import PenaltyBilevel
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
    while int(state.num_steps) < solver.max_steps and not (
        float(state.error) <= solver.tol and bool(state.settled)
    ):
        params, state = step(params, state)
    return params, state.num_steps


CASES = [
    Case(
        "penalty-bilevel-quadratic",
        PenaltyBilevel(RP.problem, sigma=1e-6, sigma_decay=0.0, alpha=1.0, beta=0.1,
                       inner_steps=10, tol=1e-9, max_steps=600),
        _run, (0.8, 1.0, 1.2), output=lambda sol: sol.x, run32=_run32,
        solver32=lambda s: dataclasses.replace(s, sigma=1e-3, tol=1e-4),
        manual=_manual, output_of_value=lambda p: p.x,
        vmap_solver=lambda s: dataclasses.replace(s, throw=False), fd_step=0.2, rtol_fd=5e-6,
    ),
]  # fmt: skip
