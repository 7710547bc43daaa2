"""Bilevel case: BSVRBv1 with all blocks and full batches on the multi-block quadratic.

The scalar value scales the upper level's targets ``tᵢ``; the solution ``x*`` depends on it
linearly. Deterministic (no sampling), so ``run`` needs no key.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxopt_papers import bilevel
from jaxopt_papers.bilevel.bsvrb import BSVRB
from tests.solver_cases._case import Case, _to_float32

RP = bilevel.problems.multi_block_quadratic(num_blocks=3, dim_x=2, dim_y=3)


def _data(v, dtype=None):
    data = (v * RP.upper_data, RP.lower_data)
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
        "bsvrb-v1-multi-block-quadratic",
        BSVRB(RP.problem, version="v1", lr=4.0, tau=0.3, tol=1e-11, max_steps=400),
        _run, (0.8, 1.0, 1.2), output=lambda sol: sol.x, run32=_run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-5),
        manual=_manual, output_of_value=lambda p: p.x,
        vmap_solver=lambda s: dataclasses.replace(s, throw=False),
    ),
]  # fmt: skip
