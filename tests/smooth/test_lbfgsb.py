"""L-BFGS-B against scipy's L-BFGS-B (solutions to 1e-6 on bounded problems) and jaxopt 0.8.5's
LBFGSB, with pytrees, no bounds, implicit gradients with respect to the bounds and to a
hyperparameter against central finite differences, and bad bounds."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import RESULTS
from jaxopt_papers.smooth import LBFGS, LBFGSB
from tests.smooth._problems import (
    X_CANCER,
    Y_CANCER,
    logreg,
    quartic_lsq,
    random_lsq,
    rosenbrock,
    scipy_minimize,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import jaxopt


def _problems():
    A, b = random_lsq(0)
    n = A.shape[1]
    lo = np.full(n, -0.15)
    hi = np.where(np.arange(n) % 2 == 0, 0.1, np.inf)
    X, Y = X_CANCER[:, :12], Y_CANCER
    return {
        "quartic-lsq": (lambda x: quartic_lsq(x, A, b), jnp.zeros(n), lo, hi),
        "rosenbrock": (rosenbrock, jnp.zeros(6), np.full(6, -2.0), np.full(6, 0.7)),
        "logreg": (lambda w: logreg(w, 1e-3, X, Y), jnp.zeros(12), np.full(12, -0.4),
                   np.full(12, 0.3)),
    }  # fmt: skip


PROBLEMS = _problems()


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_solution_equals_scipy_lbfgsb(name):
    fun, x0, lo, hi = PROBLEMS[name]
    sol = LBFGSB(fun, tol=1e-10, max_steps=2000).run(x0, (jnp.asarray(lo), jnp.asarray(hi)))
    assert sol.result == RESULTS.successful
    ref = scipy_minimize(
        fun, x0, "L-BFGS-B", bounds=list(zip(lo, hi, strict=True)), ftol=1e-16, gtol=1e-12,
        maxfun=20000,
    )  # fmt: skip
    np.testing.assert_allclose(sol.params, ref.x, rtol=0, atol=1e-6)
    active = (np.isclose(ref.x, lo) | np.isclose(ref.x, hi)).sum()
    assert active > 0, "the problem must have active bounds"
    # the same active set, with the bound values exactly
    at_lo, at_hi = np.asarray(sol.params) == lo, np.asarray(sol.params) == hi
    assert (at_lo | at_hi).sum() == active


@pytest.mark.parametrize("name", ["quartic-lsq", "rosenbrock"])
def test_solution_and_iterations_against_jaxopt(name):
    fun, x0, lo, hi = PROBLEMS[name]
    bounds = (jnp.asarray(lo), jnp.asarray(hi))
    sol = LBFGSB(fun, tol=1e-8, max_steps=500).run(x0, bounds)
    params, state = jaxopt.LBFGSB(fun, tol=1e-8, maxiter=500).run(x0, bounds)
    np.testing.assert_allclose(sol.params, params, atol=1e-6)
    assert int(sol.num_steps) <= 1.2 * int(state.iter_num) + 2


def test_no_bounds_is_unconstrained_and_pytrees_take_scalar_bounds():
    fun, x0, _, _ = PROBLEMS["rosenbrock"]
    free = LBFGSB(fun, tol=1e-9).run(x0, None)
    np.testing.assert_allclose(free.params, np.ones(6), atol=1e-7)
    np.testing.assert_allclose(free.params, LBFGS(fun, tol=1e-9).run(x0).params, atol=1e-7)

    def tree_fun(p):
        return rosenbrock(jnp.concatenate([p["u"], p["v"]]))

    tree = LBFGSB(tree_fun, tol=1e-10).run({"u": x0[:2], "v": x0[2:]}, (-2.0, 0.7))
    flat = LBFGSB(fun, tol=1e-10).run(x0, (-2.0, 0.7))
    np.testing.assert_allclose(
        jnp.concatenate([tree.params["u"], tree.params["v"]]), flat.params, atol=1e-10
    )


def test_infeasible_start_is_projected():
    fun, _, lo, hi = PROBLEMS["quartic-lsq"]
    bounds = (jnp.asarray(lo), jnp.asarray(hi))
    a = LBFGSB(fun, tol=1e-10).run(jnp.full(len(lo), 5.0), bounds)
    b = LBFGSB(fun, tol=1e-10).run(jnp.zeros(len(lo)), bounds)
    np.testing.assert_allclose(a.params, b.params, atol=1e-8)


def _central(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_implicit_gradient_with_respect_to_bounds_and_data():
    A, b = random_lsq(0)
    n = A.shape[1]
    solver = LBFGSB(quartic_lsq, tol=1e-12, max_steps=2000)
    target = jnp.asarray(np.random.default_rng(3).normal(size=n))

    def loss(lower, upper, b):
        x = solver.run(jnp.zeros(n), (lower, upper), A, b).params
        return jnp.sum((x - target) ** 2)

    lo, hi = jnp.full(n, -0.1), jnp.full(n, 0.1)
    g_lo, g_hi, g_b = jax.grad(loss, argnums=(0, 1, 2))(lo, hi, b)
    x = solver.run(jnp.zeros(n), (lo, hi), A, b).params
    assert np.any(np.asarray(x) == -0.1) and np.any(np.asarray(x) == 0.1)
    assert np.any((np.asarray(x) > -0.1) & (np.asarray(x) < 0.1))
    h = 1e-5
    # every coordinate of the gradient in the bound values (scalar shifts of each bound)
    for i in range(n):
        e = jnp.zeros(n).at[i].set(1.0)
        np.testing.assert_allclose(
            g_lo[i], _central(lambda t: loss(lo + t * e, hi, b), 0.0, h), rtol=1e-5, atol=1e-8
        )
        np.testing.assert_allclose(
            g_hi[i], _central(lambda t: loss(lo, hi + t * e, b), 0.0, h), rtol=1e-5, atol=1e-8
        )
    d = jnp.asarray(np.random.default_rng(4).normal(size=b.shape))
    np.testing.assert_allclose(
        g_b @ d, _central(lambda t: loss(lo, hi, b + t * d), 0.0, h), rtol=1e-5, atol=1e-8
    )


def test_jit_and_vmap_over_bound_values():
    fun, x0, lo, _ = PROBLEMS["quartic-lsq"]
    solver = LBFGSB(fun, tol=1e-10, throw=False)
    uppers = jnp.array([0.05, 0.1, 0.2])
    batched = jax.jit(jax.vmap(lambda u: solver.run(x0, (jnp.asarray(lo), u)).params))(uppers)
    for i, u in enumerate(uppers):
        np.testing.assert_allclose(batched[i], solver.run(x0, (jnp.asarray(lo), u)).params,
                                   atol=1e-12)  # fmt: skip


def test_bad_bounds():
    fun, x0, _, _ = PROBLEMS["rosenbrock"]
    solver = LBFGSB(fun)
    with pytest.raises(ValueError, match="lower <= upper"):
        solver.run(x0, (1.0, -1.0))
    with pytest.raises(TypeError, match=r"`bounds` must be None or a pair"):
        solver.run(x0, jnp.ones(6))
    with pytest.raises(ValueError, match=r"`lower` must broadcast"):
        solver.run(x0, (jnp.zeros(3), 1.0))
    traced = jax.jit(lambda u: LBFGSB(fun, throw=False).run(x0, (1.0, u)).result)(-1.0)
    assert traced == RESULTS.invalid_input
