"""QP cases: BoxOSQP and OSQP on a small strictly convex QP (tests/qp/_problems.py)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.qp import OSQP, BoxOSQP
from tests.qp._problems import box_qp
from tests.solver_cases._case import Case, _to_float32

_Q, _c, _A, _l, _u = (jnp.asarray(v) for v in box_qp(0))


def _primal(sol):
    return sol.value.primal[0] if isinstance(sol.value.primal, tuple) else sol.value.primal


def _box_case(name, solver):
    def problem(v):
        return (_Q, v * _c), _A, (_l, _u)

    def run(solver, v):
        return solver.run(None, *problem(v))

    def run32(solver, v):
        return solver.run(None, *_to_float32(problem(v)))

    def manual(solver, v):
        args = problem(v)
        params = solver.init_params(None, *args)
        state = solver.init(params, *args)
        step = jax.jit(lambda p, s: solver.step(p, s, *args))
        while int(state.num_steps) < solver.max_steps and float(state.error) > solver.tol:
            params, state = step(params, state)
        return params, state.num_steps

    return Case(
        name, solver, run, (0.8, 1.0, 1.25), output=_primal, run32=run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-4), manual=manual,
        output_of_value=lambda p: p.primal[0], fd_step=1e-4, rtol_fd=1e-6, rtol_jit=1e-10,
        atol_jit=1e-12,
    )  # fmt: skip


_G = np.asarray(_A)[2:]
_h = np.asarray(_u)[2:]


def _osqp_case(name, solver):
    def problem(v):
        return (_Q, _c), (_A[:1], _u[:1]), (jnp.asarray(_G), v * jnp.asarray(_h))

    def run(solver, v):
        return solver.run(None, *problem(v))

    def run32(solver, v):
        return solver.run(None, *_to_float32(problem(v)))

    # OSQP runs BoxOSQP's loop: its unrolled mode is the one checked in the BoxOSQP case (left
    # out here to keep the suite's compile time down).
    return Case(
        name, solver, run, (0.8, 1.0, 1.25), output=_primal, run32=run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-4), fd_step=1e-4, rtol_jit=1e-10,
        atol_jit=1e-12, unrolled=None,
    )  # fmt: skip


CASES = [
    _box_case("box-osqp", BoxOSQP(tol=1e-11, max_steps=150)),
    _osqp_case("osqp", OSQP(tol=1e-11, max_steps=150)),
]
