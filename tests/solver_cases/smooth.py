"""Smooth-solver cases: ridge logistic regression (L-BFGS, BFGS; zoom line search), a
box-constrained least squares (L-BFGS-B) and ridge regression (gradient descent)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from sklearn.datasets import load_breast_cancer, load_diabetes

from jaxopt_papers.smooth import BFGS, LBFGS, LBFGSB, GradientDescent
from tests.solver_cases._case import Case, _to_float32

_Xc, _yc = load_breast_cancer(return_X_y=True)
_Xc = (_Xc - _Xc.mean(0)) / _Xc.std(0)
XC, YC = jnp.asarray(_Xc[:120, :8]), jnp.asarray(2.0 * _yc[:120] - 1.0)

_Xd, _yd = load_diabetes(return_X_y=True)
_Xd = (_Xd - _Xd.mean(0)) / _Xd.std(0)
_yd = (_yd - _yd.mean()) / _yd.std()
XD, YD = jnp.asarray(_Xd[:200]), jnp.asarray(_yd[:200])


def logreg(w, lam, X, y):
    return jnp.mean(jnp.logaddexp(0.0, -y * (X @ w))) + 0.5 * lam * jnp.sum(w**2)


def ridge(w, lam, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2) + 0.5 * lam * jnp.sum(w**2)


def lsq(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def _manual(solver, x0, args):
    params, state = x0, solver.init(x0, *args)
    step = jax.jit(lambda p, s: solver.step(p, s, *args))
    while int(state.num_steps) < solver.max_steps and float(state.error) > solver.tol:
        params, state = step(params, state)
    return params, state.num_steps


def _unconstrained(name, solver, fun, X, y, n, values, **options):
    def run(solver, v):
        return solver.run(jnp.zeros(n), v, X, y)

    def run32(solver, v):
        return solver.run(jnp.zeros(n, jnp.float32), jnp.float32(v), *_to_float32((X, y)))

    return Case(
        name, solver, run, values, run32=run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-4),
        manual=lambda s, v: _manual(s, jnp.zeros(n), (v, X, y)), **options,
    )  # fmt: skip


def _box(name, solver, values):
    def run(solver, v):
        return solver.run(jnp.zeros(10), (-v, v), XD, YD)

    def run32(solver, v):
        v = jnp.float32(v)
        return solver.run(jnp.zeros(10, jnp.float32), (-v, v), *_to_float32((XD, YD)))

    return Case(
        name, solver, run, values, run32=run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-4),
        manual=lambda s, v: _manual(s, jnp.zeros(10), ((-v, v), XD, YD)),
    )  # fmt: skip


CASES = [
    _unconstrained("lbfgs-logreg", LBFGS(logreg, tol=1e-10, max_steps=200),
                   logreg, XC, YC, 8, (0.05, 0.1, 0.2)),
    # BFGS and GradientDescent: the unrolled comparison runs on L-BFGS (same line-search loop)
    _unconstrained("bfgs-logreg", BFGS(logreg, tol=1e-10, max_steps=200),
                   logreg, XC, YC, 8, (0.05, 0.1, 0.2), unrolled=None),
    _box("lbfgsb-box-lsq", LBFGSB(lsq, tol=1e-11, max_steps=200), (0.12, 0.15, 0.18)),
    _unconstrained("gradient-descent-ridge",
                   GradientDescent(ridge, acceleration=False, tol=1e-12, max_steps=3000),
                   ridge, XD, YD, 10, (1.0, 2.0, 4.0), fd_step=1e-4, unrolled=None),
]  # fmt: skip
