"""Fixed-point and root-finding cases: a nonlinear contraction, ISTA on ridge regression, a root."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.fixed_point import (
    AndersonAcceleration,
    AndersonWrapper,
    Broyden,
    FixedPointIteration,
)
from jaxopt_papers.proximal import ProximalGradient, prox_ridge
from tests.solver_cases._case import Case, _to_float32
from tests.solver_cases.proximal import L, X, Y, lsq

_rng = np.random.default_rng(0)
N = 6
_M = _rng.normal(size=(N, N))
M = jnp.asarray(0.6 * _M / np.linalg.norm(_M, 2))  # ‖M‖₂ = 0.6: T is a contraction
B = jnp.asarray(_rng.normal(size=N))
A = jnp.asarray(_rng.normal(size=(N, N)) / np.sqrt(N) + 2 * np.eye(N))


def contraction(x, v, M, b):
    """``T(x) = 0.8 tanh(Mx) + v b``: Lipschitz constant ≤ 0.48."""
    return 0.8 * jnp.tanh(M @ x) + v * b


def root_fun(x, v, A, b):
    return A @ x + 0.3 * jnp.tanh(x) - v * b


def _manual(solver, x0, args):
    params, state = x0, solver.init(x0, *args)
    step = jax.jit(lambda p, s: solver.step(p, s, *args))
    while int(state.num_steps) < solver.max_steps and float(state.error) > solver.tol:
        params, state = step(params, state)
    return params, state.num_steps


def _case(name, solver, x0, args_of, solver32=None, **kw):
    def run(solver, v):
        return solver.run(x0, *args_of(v))

    def run32(solver, v):
        return solver.run(x0.astype(jnp.float32), *_to_float32(args_of(v)))

    return Case(
        name, solver, run, (0.5, 1.0, 2.0), run32=run32,
        solver32=solver32 or (lambda s: dataclasses.replace(s, tol=1e-4)),
        manual=lambda s, v: _manual(s, x0, args_of(v)), **kw,
    )  # fmt: skip


_fp_args = lambda v: (v, M, B)
_root_args = lambda v: (v, A, B)
_ridge_args = lambda v: (0.5 * v, X, Y)

CASES = [
    _case("fixed-point-iteration", FixedPointIteration(contraction, tol=1e-12),
          jnp.zeros(N), _fp_args),
    _case("anderson", AndersonAcceleration(contraction, tol=1e-12, ridge=1e-14),
          jnp.zeros(N), _fp_args,
          solver32=lambda s: dataclasses.replace(s, tol=1e-4, ridge=1e-6)),
    _case("anderson-wrapper-ista-ridge",
          AndersonWrapper(ProximalGradient(lsq, prox_ridge, stepsize=1 / L, acceleration=False,
                                           tol=1e-11, max_steps=400), ridge=1e-14),
          jnp.zeros(10), _ridge_args,
          solver32=lambda s: dataclasses.replace(s, tol=1e-4, ridge=1e-6)),
    _case("broyden", Broyden(root_fun, tol=1e-12, max_steps=40), jnp.zeros(N), _root_args),
]  # fmt: skip
