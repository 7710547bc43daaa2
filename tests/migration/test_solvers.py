"""The solvers jaxopt users need most: the same problem under jaxopt 0.8.5 and here.

Each test solves one small problem tightly with both libraries, using jaxopt's calling
convention (``maxiter=``, ``params, state = run(...)``), and compares the solutions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_papers.fixed_point as fp
import jaxopt_papers.qp as qp
import jaxopt_papers.scipy_wrappers as sw
import jaxopt_papers.smooth as sm
from tests.migration._jaxopt import jaxopt

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(40, 4)))
Y = jnp.asarray((RNG.uniform(size=40) < jax.nn.sigmoid(X @ jnp.ones(4))).astype(float))


def logreg(w, X, y):
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.05 * jnp.sum(w**2)


def _close(ours, ref, atol):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, atol=atol), ours, ref)


def test_smooth_solvers_match_jaxopt():
    w0 = jnp.zeros(4)
    for name in ("LBFGS", "BFGS", "GradientDescent"):
        ours, _ = getattr(sm, name)(logreg, tol=1e-10, maxiter=5000).run(w0, X, Y)
        ref, _ = getattr(jaxopt, name)(logreg, tol=1e-10, maxiter=5000).run(w0, X, Y)
        _close(ours, ref, 1e-8)
    bounds = (jnp.full(4, -0.2), jnp.full(4, 0.4))
    ours, _ = sm.LBFGSB(logreg, tol=1e-10, maxiter=5000).run(w0, bounds, X, Y)
    ref, _ = jaxopt.LBFGSB(logreg, tol=1e-10, maxiter=5000).run(w0, bounds, X, Y)
    _close(ours, ref, 1e-7)


def test_qp_solvers_match_jaxopt():
    M = RNG.normal(size=(4, 4))
    Q, c = jnp.asarray(M @ M.T + np.eye(4)), jnp.asarray(RNG.normal(size=4))
    A, b = jnp.ones((1, 4)), jnp.ones(1)
    G, h = jnp.asarray(RNG.normal(size=(3, 4))), jnp.asarray(RNG.uniform(size=3))
    ours, _ = qp.OSQP(tol=1e-9, maxiter=20000).run(None, (Q, c), (A, b), (G, h))
    ref, _ = jaxopt.OSQP(tol=1e-9, maxiter=20000).run(
        params_obj=(Q, c), params_eq=(A, b), params_ineq=(G, h)
    )
    _close(ours.primal, ref.primal, 1e-6)
    lu = (jnp.full(4, -0.3), jnp.full(4, 0.3))
    ours, _ = qp.BoxOSQP(tol=1e-9, maxiter=20000).run(None, (Q, c), jnp.eye(4), lu)
    ref, _ = jaxopt.BoxOSQP(tol=1e-9, maxiter=20000).run(
        params_obj=(Q, c), params_eq=jnp.eye(4), params_ineq=lu
    )
    _close(ours.primal[0], ref.primal[0], 1e-6)


def test_fixed_point_solvers_match_jaxopt():
    T = lambda x, a: 0.5 * jnp.cos(x) + a
    x0, a = jnp.zeros(3), jnp.asarray([0.1, 0.2, -0.3])
    for name in ("FixedPointIteration", "AndersonAcceleration"):
        ours, _ = getattr(fp, name)(T, tol=1e-12, maxiter=500).run(x0, a)
        ref, _ = getattr(jaxopt, name)(T, tol=1e-12, maxiter=500).run(x0, a)
        _close(ours, ref, 1e-10)
    F = lambda x, a: x**3 + x - a
    ours, _ = fp.Broyden(F, tol=1e-12, maxiter=500).run(x0, a)
    ref, _ = jaxopt.Broyden(F, tol=1e-12, maxiter=500).run(x0, a)
    _close(ours, ref, 1e-9)


def test_scipy_wrappers_match_jaxopt():
    w0 = jnp.zeros(4)
    ours, _ = sw.ScipyMinimize(fun=logreg, method="BFGS", tol=1e-10).run(w0, X, Y)
    ref, _ = jaxopt.ScipyMinimize(fun=logreg, method="BFGS", tol=1e-10).run(w0, X, Y)
    _close(ours, ref, 1e-7)
    bounds = (jnp.full(4, -0.2), jnp.full(4, 0.4))
    ours, _ = sw.ScipyBoundedMinimize(fun=logreg, tol=1e-10).run(w0, bounds, X, Y)
    ref, _ = jaxopt.ScipyBoundedMinimize(fun=logreg, tol=1e-10).run(w0, bounds, X, Y)
    _close(ours, ref, 1e-6)
    F = lambda x, a: x**3 + x - a
    a = jnp.asarray([0.1, 0.2, -0.3])
    ours, _ = sw.ScipyRootFinding(optimality_fun=F, method="hybr", tol=1e-12).run(w0[:3], a)
    ref, _ = jaxopt.ScipyRootFinding(optimality_fun=F, method="hybr", tol=1e-12).run(w0[:3], a)
    _close(ours, ref, 1e-10)
    resid = lambda w, X, y: X @ w - y
    ours, _ = sw.ScipyLeastSquares(fun=resid, method="trf").run(w0, X, Y)  # no `tol=` here
    ref, _ = jaxopt.ScipyLeastSquares(fun=resid, method="trf").run(w0, X, Y)
    _close(ours, ref, 1e-8)
