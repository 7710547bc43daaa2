"""Bilevel case: BO-REP (Hao, Gong, Liu, ICLR 2024) on the closed-form quadratic problem.

The scalar value scales the upper level's target ``t``; ``x*`` depends on it linearly. The
normalised step needs a decaying ``outer_lr`` to converge (here ``0.1·0.5^(t/50)``), and
``tol`` stops the run on the momentum's norm. Deterministic (full data), so ``run`` needs no
key. BO-REP has no meaningful unrolled derivative: ``x ← x − η m/‖m‖`` differentiated through
the iterations drops the component of the tangent along ``m`` (in one dimension the step is
``−η·sign(m)``, with derivative 0), so the derivative through the loop is not that of the
solution and ``unrolled=None``; the implicit derivative (the joint condition) is checked
against finite differences. ``x*`` is linear in the value, so a large ``fd_step`` is exact and
keeps the solver's ``tol``-level noise out of the quotient.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import bilevel
from jaxopt_papers.bilevel.borep import BOREP
from tests.solver_cases._case import Case, _to_float32

RP = bilevel.problems.quadratic(dim_x=2, dim_y=3)
OUTER_LR = optax.exponential_decay(0.1, transition_steps=50, decay_rate=0.5)


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
        "borep-quadratic",
        BOREP(RP.problem, outer_lr=OUTER_LR, inner_lr=0.15, z_lr=0.15, tol=1e-10,
              max_steps=2000),
        _run, (0.8, 1.0, 1.2), output=lambda sol: sol.x, run32=_run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-5),
        manual=_manual, output_of_value=lambda p: p.x, unrolled=None,
        vmap_solver=lambda s: dataclasses.replace(s, throw=False), fd_step=0.2,
    ),
]  # fmt: skip
