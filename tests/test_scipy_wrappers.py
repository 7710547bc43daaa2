"""The SciPy wrappers: against scipy itself, implicit gradients against finite differences,
``jit``/``vmap``, result codes and bad input."""

from __future__ import annotations

import dataclasses
import doctest
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as sopt

import jaxopt_papers.scipy_wrappers as SW
from jaxopt_papers import RESULTS, Solution
from jaxopt_papers.scipy_wrappers import (
    ScipyBoundedMinimize,
    ScipyLeastSquares,
    ScipyMinimize,
    ScipyRootFinding,
)

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(40, 4)))
W_TRUE = np.array([1.0, -2.0, 0.5, 0.0])
Y = jnp.asarray((RNG.uniform(size=40) < 1 / (1 + np.exp(-np.asarray(X) @ W_TRUE))) * 1.0)
T = jnp.linspace(0.0, 2.0, 25)
Z = jnp.asarray(2.0 * np.exp(-1.3 * np.asarray(T)) + 0.05 * RNG.normal(size=25))
TIGHT = 1e-12
MIN_TOL = 1e-9  # BFGS/CG stop on lost precision below about this


def logreg(w, lam, X, y):
    z = X @ w
    return jnp.mean(jnp.logaddexp(0, z) - y * z) + 0.5 * lam * jnp.sum(w**2)


def rosen(p, a):
    x, y = p["x"], p["y"]
    return (a - x) ** 2 + 100 * (y - x**2) ** 2


def root_fun(x, c):
    return jnp.array([x[0] + 0.5 * (x[0] - x[1]) ** 3 - c, 0.5 * (x[1] - x[0]) ** 3 + x[1]])


def expfit(p, z):
    return p[0] * jnp.exp(p[1] * T) - z


def _np(f, *args):
    return lambda x: np.asarray(f(jnp.asarray(x), *args), np.float64)


def _fd_dir(f, x, v, h=1e-5):
    """Central difference of ``f`` at ``x`` along ``v``."""
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


def _fd(f, x, h=1e-5):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        g.flat[i] = (f(jnp.asarray(x + e)) - f(jnp.asarray(x - e))) / (2 * h)
    return g


# ----------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B"])
def test_minimize_matches_scipy(method):
    sol = ScipyMinimize(logreg, method=method, tol=MIN_TOL).run(jnp.zeros(4), 0.1, X, Y)
    ref = sopt.minimize(_np(logreg, 0.1, X, Y), np.zeros(4), jac=_np(jax.grad(logreg), 0.1, X, Y),
                        method=method, tol=MIN_TOL)  # fmt: skip
    np.testing.assert_allclose(sol.value, ref.x, rtol=1e-7, atol=1e-9)
    assert sol.result == RESULTS.successful and type(sol) is Solution
    assert int(sol.state.num_steps) == ref.nit and int(sol.num_fun_evals) == ref.nfev
    np.testing.assert_allclose(sol.state.fun_val, ref.fun, rtol=1e-12)
    params, info = sol  # jaxopt's unpacking
    assert params is sol.value and bool(info.success)


def test_minimize_pytree_params_under_jit():
    solver = ScipyMinimize(rosen, method="BFGS", tol=1e-10)
    sol = jax.jit(solver.run)({"x": jnp.asarray(-1.0), "y": jnp.asarray(1.0)}, 1.5)
    np.testing.assert_allclose([sol.value["x"], sol.value["y"]], [1.5, 2.25], rtol=1e-6)


def test_minimize_value_and_grad_and_has_aux():
    vg = lambda w, lam, X, y: jax.value_and_grad(logreg)(w, lam, X, y)
    aux = lambda w, lam, X, y: (logreg(w, lam, X, y), {"n": X.shape[0]})
    base = ScipyMinimize(logreg, method="BFGS", tol=MIN_TOL).run(jnp.zeros(4), 0.1, X, Y)
    for solver in (ScipyMinimize(vg, method="BFGS", tol=MIN_TOL, value_and_grad=True),
                   ScipyMinimize(aux, method="BFGS", tol=MIN_TOL, has_aux=True)):  # fmt: skip
        sol = solver.run(jnp.zeros(4), 0.1, X, Y)
        np.testing.assert_allclose(sol.value, base.value, rtol=1e-10)
        g = jax.grad(lambda lam: solver.run(jnp.zeros(4), lam, X, Y).value.sum())(0.1)
        g0 = jax.grad(lambda lam: ScipyMinimize(logreg, method="BFGS", tol=MIN_TOL)
                      .run(jnp.zeros(4), lam, X, Y).value.sum())(0.1)  # fmt: skip
        np.testing.assert_allclose(g, g0, rtol=1e-8)


def test_bounded_minimize_matches_scipy():
    lo, hi = jnp.array([-0.5, -1.0, 0.0, -1.0]), jnp.array([0.5, 1.0, 1.0, 1.0])
    sol = ScipyBoundedMinimize(logreg, tol=TIGHT).run(jnp.zeros(4), (lo, hi), 0.01, X, Y)
    ref = sopt.minimize(_np(logreg, 0.01, X, Y), np.zeros(4),
                        jac=_np(jax.grad(logreg), 0.01, X, Y), method="L-BFGS-B",
                        bounds=sopt.Bounds(np.asarray(lo), np.asarray(hi)), tol=TIGHT)  # fmt: skip
    np.testing.assert_allclose(sol.value, ref.x, rtol=1e-7, atol=1e-9)
    assert float(sol.value[1]) == -1.0 and float(sol.value[0]) == 0.5  # active bounds


@pytest.mark.parametrize("method", ["hybr", "lm", "broyden1", "df-sane"])
def test_root_matches_scipy(method):
    tol = 1e-12 if method in ("hybr", "lm") else 1e-11
    sol = ScipyRootFinding(root_fun, method=method, tol=tol).run(jnp.zeros(2), 1.0)
    jac = _np(jax.jacfwd(root_fun), 1.0) if method in ("hybr", "lm") else None
    ref = sopt.root(_np(root_fun, 1.0), np.zeros(2), method=method, tol=tol, jac=jac)
    np.testing.assert_allclose(sol.value, ref.x, rtol=1e-9, atol=1e-10)
    assert float(jnp.max(jnp.abs(root_fun(sol.value, 1.0)))) < 1e-8
    assert sol.result == RESULTS.successful


@pytest.mark.parametrize("loss", ["linear", "soft_l1", "huber", "cauchy", "arctan"])
def test_least_squares_matches_scipy(loss):
    opts = {"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15}
    solver = ScipyLeastSquares(expfit, loss=loss, f_scale=0.03, options=opts)
    sol = solver.run(jnp.array([1.0, 0.0]), Z)
    ref = sopt.least_squares(_np(expfit, Z), np.array([1.0, 0.0]), loss=loss, f_scale=0.03,
                             jac=_np(jax.jacfwd(expfit), Z), **opts)  # fmt: skip
    np.testing.assert_allclose(sol.value, ref.x, rtol=1e-8)
    np.testing.assert_allclose(sol.state.fun_val, ref.cost, rtol=1e-10)
    # our optimality condition (the gradient of scipy's cost) vanishes at scipy's answer
    assert float(jnp.linalg.norm(solver.optimality_fn(jnp.asarray(ref.x), Z))) < 1e-7


# --------------------------------------------------------------------------------- gradients


def test_minimize_gradient_against_finite_differences():
    solver = ScipyMinimize(logreg, method="L-BFGS-B", tol=TIGHT)
    target = jnp.asarray(RNG.normal(size=4))
    loss = lambda lam: jnp.sum((solver.run(jnp.zeros(4), lam, X, Y).value - target) ** 2)
    w = solver.run(jnp.zeros(4), 0.1, X, Y).value
    H = jax.hessian(logreg)(w, 0.1, X, Y)
    dw = -np.linalg.solve(H, np.asarray(w))  # IFT, dense: ∂∇f/∂λ = w
    g = jax.grad(loss)(0.1)
    np.testing.assert_allclose(g, 2 * (np.asarray(w) - np.asarray(target)) @ dw, rtol=1e-6)
    # finite differences with a step above the noise of scipy's solution
    np.testing.assert_allclose(g, _fd_dir(loss, 0.1, 1.0, h=1e-3), rtol=1e-4)
    # with respect to the data too: forward mode equals reverse mode
    gx = jax.grad(lambda X: solver.run(jnp.zeros(4), 0.1, X, Y).value[0])(X)
    v = jnp.asarray(RNG.normal(size=X.shape))
    fwd = jax.jvp(lambda X: solver.run(jnp.zeros(4), 0.1, X, Y).value[0], (X,), (v,))[1]
    np.testing.assert_allclose(fwd, jnp.sum(gx * v), rtol=1e-8)


def test_bounded_gradient_against_finite_differences_and_bounds():
    solver = ScipyBoundedMinimize(logreg, tol=TIGHT)
    lo = jnp.array([-0.5, -1.0, 0.0, -1.0])
    loss = lambda hi: jnp.sum(solver.run(jnp.zeros(4), (lo, hi), 0.01, X, Y).value ** 2)
    hi = jnp.array([0.5, 1.0, 1.0, 1.0])
    v = jnp.asarray(RNG.normal(size=4))
    np.testing.assert_allclose(jax.grad(loss)(hi) @ v, _fd_dir(loss, hi, v), rtol=1e-5)
    loss_c = lambda lam: solver.run(jnp.zeros(4), (lo, hi), lam[0], X, Y).value[2]
    np.testing.assert_allclose(jax.grad(loss_c)(jnp.array([0.01])),
                               _fd(loss_c, jnp.array([0.01])), rtol=1e-5)  # fmt: skip


def test_root_gradient_against_closed_form():
    solver = ScipyRootFinding(root_fun, tol=1e-13)
    x = solver.run(jnp.zeros(2), 1.0).value
    J = jax.jacfwd(root_fun)(x, 1.0)
    dx = np.linalg.solve(J, np.array([1.0, 0.0]))  # ∂F/∂c = (−1, 0): dx/dc = J⁻¹ e₁
    np.testing.assert_allclose(jax.jacfwd(lambda c: solver.run(jnp.zeros(2), c).value)(1.0), dx,
                               rtol=1e-8)  # fmt: skip
    np.testing.assert_allclose(jax.jacrev(lambda c: solver.run(jnp.zeros(2), c).value)(1.0), dx,
                               rtol=1e-8)  # fmt: skip


# Smooth losses (FD is meaningful). The step sits between the noise of scipy's solution and the
# truncation error: the linear problem is nearly quadratic in z, the soft_l1 one is not.
@pytest.mark.parametrize(("loss", "h"), [("linear", 1e-2), ("soft_l1", 1e-5)])
def test_least_squares_gradient_against_finite_differences(loss, h):
    opts = {"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15}
    solver = ScipyLeastSquares(expfit, loss=loss, f_scale=0.03, options=opts)
    f = lambda z: solver.run(jnp.array([1.0, 0.0]), z).value @ jnp.array([1.0, 3.0])
    for seed in (1, 2):
        v = jnp.asarray(np.random.default_rng(seed).normal(size=Z.shape))
        np.testing.assert_allclose(jax.grad(f)(Z) @ v, _fd_dir(f, Z, v, h=h), rtol=1e-4)


# ---------------------------------------------------------------------------- jit, vmap, codes


def test_vmap_equals_loop_and_codes_per_element():
    solver = ScipyMinimize(logreg, method="BFGS", tol=MIN_TOL, throw=False)
    lams = jnp.array([0.05, 0.5])
    batched = jax.vmap(lambda lam: solver.run(jnp.zeros(4), lam, X, Y))(lams)
    for i in range(2):
        np.testing.assert_allclose(batched.value[i], solver.run(jnp.zeros(4), lams[i], X, Y).value,
                                   rtol=1e-12)  # fmt: skip
    short = ScipyMinimize(logreg, method="BFGS", tol=MIN_TOL, throw=False, max_steps=2)
    limit = RESULTS.max_steps_reached
    codes = jax.vmap(lambda lam: short.run(jnp.zeros(4), lam, X, Y).result == limit)
    assert bool(jnp.all(codes(lams)))


@pytest.mark.parametrize(
    ("solver", "args"),
    [
        (ScipyMinimize(logreg, method="BFGS", max_steps=1), (jnp.zeros(4), 0.1, X, Y)),
        (ScipyBoundedMinimize(logreg, max_steps=1), (jnp.zeros(4), (-1.0, 1.0), 0.1, X, Y)),
        (ScipyRootFinding(root_fun, max_steps=2), (jnp.zeros(2), 1.0)),
        (ScipyLeastSquares(expfit, max_steps=1), (jnp.array([1.0, 0.0]), Z)),
    ],
    ids=["minimize", "bounded", "root", "least_squares"],
)
def test_iteration_limit_code_and_throw(solver, args):
    quiet = dataclasses.replace(solver, throw=False)
    assert quiet.run(*args).result == RESULTS.max_steps_reached
    name = type(solver).__name__
    with pytest.raises(Exception, match=rf"{name}: scipy.optimize.\w+ stopped at its iteration"):
        jax.block_until_ready(jax.jit(lambda a: solver.run(*a).stats["num_steps"])(args))


def test_nonfinite_data_gives_nonfinite():
    bad = X.at[0, 0].set(jnp.nan)
    sol = ScipyMinimize(logreg, method="BFGS", throw=False).run(jnp.zeros(4), 0.1, bad, Y)
    assert sol.result == RESULTS.nonfinite


def test_traced_empty_box_is_invalid_input():
    solver = ScipyBoundedMinimize(logreg, throw=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = jax.jit(lambda u: solver.run(jnp.zeros(4), (0.0, u), 0.1, X, Y))(-1.0)
        jax.block_until_ready(sol)
    assert sol.result == RESULTS.invalid_input
    assert any("raised" in str(w.message) for w in caught)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: ScipyMinimize(3), TypeError, r"`fun` must be callable"),
        (lambda: ScipyMinimize(logreg, method="newton"), ValueError, r"`method` must be one of"),
        (
            lambda: ScipyMinimize(logreg, options={"maxiter": 3}),
            ValueError,
            r"do not pass 'maxiter' in `options`; use the `max_steps`",
        ),
        (lambda: ScipyMinimize(logreg, max_steps=0), ValueError, r"`max_steps` must be an int"),
        (lambda: ScipyBoundedMinimize(logreg, method="BFGS"), ValueError, r"`method` must be"),
        (lambda: ScipyRootFinding(root_fun, method="newton"), ValueError, r"`method` must be"),
        (lambda: ScipyLeastSquares(expfit, loss="l1"), ValueError, r"`loss` must be one of"),
        (lambda: ScipyLeastSquares(expfit, f_scale=0.0), ValueError, r"`f_scale` must be"),
        (
            lambda: ScipyLeastSquares(expfit, options={"loss": "huber"}),
            ValueError,
            r"'loss' is an argument of ScipyLeastSquares",
        ),
        (
            lambda: ScipyMinimize(lambda w: w).run(jnp.zeros(3)),
            ValueError,
            r"`fun` must return a scalar",
        ),
        (
            lambda: ScipyMinimize(logreg).run(jnp.zeros(3), 0.1, X, Y),
            ValueError,
            r"`fun` could not be evaluated at `init_params`",
        ),
        (
            lambda: ScipyMinimize(logreg).run(jnp.zeros(4, jnp.int32), 0.1, X, Y),
            TypeError,
            r"`init_params` must have floating-point leaves",
        ),
        (
            lambda: ScipyBoundedMinimize(logreg).run(jnp.zeros(4), (1.0, 0.0), 0.1, X, Y),
            ValueError,
            r"`bounds` must have `lower <= upper`",
        ),
        (
            lambda: ScipyBoundedMinimize(logreg).run(jnp.zeros(4), (jnp.zeros(3), 1.0), 0.1, X, Y),
            ValueError,
            r"`bounds` `lower` must have the shapes of `init_params`",
        ),
        (
            lambda: ScipyBoundedMinimize(logreg).run(jnp.zeros(4), 1.0, 0.1, X, Y),
            TypeError,
            r"`bounds` must be a pair",
        ),
        (
            lambda: ScipyRootFinding(lambda x: x[:1]).run(jnp.zeros(2)),
            ValueError,
            r"`optimality_fun` must return a pytree with the structure",
        ),
    ],
    ids=lambda v: None,
)
def test_bad_input_raises_naming_the_argument(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_docstring_examples():
    tests = [t for t in doctest.DocTestFinder().find(SW) if t.examples]
    public = [n for n in SW.__all__ if n != "ScipyInfo"]
    assert set(public) <= {t.name.rsplit(".", 1)[-1] for t in tests}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0
