"""Bilevel case: LV-HBA (Yao et al., ICLR 2024) on the closed-form quadratic problem.

The scalar value scales the upper level's target ``t`` of ``quadratic(dim_x=2, dim_y=3,
rho=1.0)`` (``ρ = 1``: the reduced problem's curvature is 1.0-2.2, ten times the default
``ρ = 0.1``'s, so the penalty schedule converges ten times sooner). The penalty weight
``c_k = 0.1 (k + 1)`` grows without bound, and LV-HBA's answer is ``O(1/c_k)`` from the
bilevel solution ``x*``, whose implicit derivative the suite computes. The run stops at
``error <= 4e-10``, after 1.7-2.0·10⁵ steps (about 0.5 s). There the relative residual of the
joint optimality condition is 5.7e-5 to 6.6e-5, below ``custom_root``'s check of 1e-4 (mostly
``y``'s bias), and ``x`` is 2e-6 to 6e-6 (relative) from ``x*``. Finite differences of the runs
and the derivative through the iterations see LV-HBA's ``x``, including the derivative of its
bias; the implicit derivative sees ``x*``. They differ by 2e-5 (measured), hence
``rtol_fd = rtol_unrolled = 2e-4``. ``x*`` is linear in
the value, so a large ``fd_step`` keeps the stopping rule's noise out of the quotient. No upper
values are recorded: the unrolled mode carries the state through every step. ``manual`` runs
``init`` and then ``step`` in a jitted ``while_loop``; a Python loop over 10⁵ steps would take
minutes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxopt_papers import bilevel
from jaxopt_papers.bilevel.lvhba import LVHBA
from tests.solver_cases._case import Case, _to_float32

RP = bilevel.problems.quadratic(dim_x=2, dim_y=3, rho=1.0)


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
    chunk = jax.jit(
        lambda p, s: jax.lax.while_loop(
            lambda c: (c[1].num_steps < solver.max_steps) & (c[1].error > solver.tol),
            lambda c: solver.step(*c, upper, lower),
            (p, s),
        )
    )
    params, state = chunk(params, state)
    return params, state.num_steps


CASES = [
    Case(
        "lvhba-quadratic",
        LVHBA(RP.problem, alpha=0.15, eta=0.15, gamma1=10.0, c_lower=0.1, p=1.0, tol=4e-10,
              max_steps=250_000, record_upper=False),
        _run, (0.8, 1.0, 1.2), output=lambda sol: sol.x, run32=_run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-6),
        manual=_manual, output_of_value=lambda p: p.x,
        vmap_solver=lambda s: dataclasses.replace(s, throw=False), fd_step=0.2, rtol_fd=2e-4,
        rtol_unrolled=2e-4,
    ),
]  # fmt: skip
