"""SciPy-wrapper cases: logistic regression (free and boxed), a root, an exponential fit."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxopt_papers.scipy_wrappers import (
    ScipyBoundedMinimize,
    ScipyLeastSquares,
    ScipyMinimize,
    ScipyRootFinding,
)
from tests.solver_cases._case import Case, _to_float32

_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(40, 4)))
Y = jnp.asarray((_rng.uniform(size=40) < 0.5) * 1.0)
A = jnp.asarray(_rng.normal(size=(4, 4)) / 2 + 2 * np.eye(4))
T = jnp.linspace(0.0, 2.0, 25)
Z = jnp.asarray(2.0 * np.exp(-1.3 * np.asarray(T)) + 0.05 * _rng.normal(size=25))


def logreg(w, lam, X, y):
    z = X @ w
    return jnp.mean(jnp.logaddexp(0, z) - y * z) + 0.5 * lam * jnp.sum(w**2)


def root_fun(x, v, A):
    return A @ x + 0.2 * jnp.tanh(x) - v


def expfit(p, v, z):
    return p[0] * jnp.exp(p[1] * T) - v * z


def _case(name, solver, x0, args_of, values, **kw):
    return Case(
        name, solver,
        lambda s, v: s.run(x0, *args_of(v)),
        values,
        run32=lambda s, v: s.run(x0.astype(jnp.float32), *_to_float32(args_of(v))),
        solver32=lambda s: s,
        unrolled=None,
        short=lambda s: dataclasses.replace(s, max_steps=1),
        fd_step=1e-2,
        rtol_fd=1e-4,  # scipy's own stopping rule limits the FD accuracy
        rtol_jit=1e-10, atol_jit=1e-12,
        **kw,
    )  # fmt: skip


CASES = [
    _case("scipy-minimize-logreg", ScipyMinimize(logreg, method="L-BFGS-B", tol=1e-12),
          jnp.zeros(4), lambda v: (v, X, Y), (0.05, 0.1, 0.2)),
    _case("scipy-bounded-logreg", ScipyBoundedMinimize(logreg, tol=1e-12),
          jnp.zeros(4), lambda v: ((-0.3, 0.3), 0.1 * v, X, Y), (0.05, 0.1, 0.2)),
    _case("scipy-root", ScipyRootFinding(root_fun, tol=1e-12), jnp.zeros(4),
          lambda v: (v, A), (0.5, 1.0, 2.0)),
    _case("scipy-least-squares", ScipyLeastSquares(expfit, options={"xtol": 1e-15, "ftol": 1e-15,
                                                                    "gtol": 1e-15}),
          jnp.array([1.0, 0.0]), lambda v: (v, Z), (0.5, 1.0, 2.0)),
]  # fmt: skip
