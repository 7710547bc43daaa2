"""L-BFGS and BFGS against jaxopt 0.8.5 (same iterates, same iteration counts) and scipy
(solutions), with pytrees, complex parameters, the options, and implicit gradients against
central finite differences."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import RESULTS
from jaxopt_papers.smooth import BFGS, LBFGS
from tests.smooth._problems import X_CANCER, Y_CANCER, logreg, rosenbrock, scipy_minimize

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import jaxopt

PAIRS = [(LBFGS, jaxopt.LBFGS), (BFGS, jaxopt.BFGS)]
X, Y = X_CANCER, Y_CANCER


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=["lbfgs", "bfgs"])
@pytest.mark.parametrize("n", [2, 5])
def test_rosenbrock_iterates_equal_jaxopt(ours, theirs, n):
    x0 = jnp.zeros(n)
    sol = ours(rosenbrock, tol=1e-8).run(x0)
    params, state = theirs(rosenbrock, tol=1e-8, maxiter=500).run(x0)
    assert sol.result == RESULTS.successful
    assert int(sol.num_steps) == int(state.iter_num)
    np.testing.assert_allclose(sol.params, params, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.params, np.ones(n), atol=1e-7)
    assert float(sol.error) <= 1e-8
    # one evaluation per line-search trial, plus the initial one
    assert int(sol.num_fun_evals) == 1 + int(sol.num_linesearch_steps)


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=["lbfgs", "bfgs"])
def test_logistic_regression_equals_jaxopt_and_scipy(ours, theirs):
    w0 = jnp.zeros(X.shape[1])
    sol = ours(logreg, tol=1e-9).run(w0, 0.01, X, Y)
    params, state = theirs(logreg, tol=1e-9, maxiter=500).run(w0, 0.01, X, Y)
    assert int(sol.num_steps) == int(state.iter_num)
    np.testing.assert_allclose(sol.params, params, rtol=0, atol=1e-10)
    ref = scipy_minimize(lambda w: logreg(w, 0.01, X, Y), w0, "BFGS", gtol=1e-10)
    np.testing.assert_allclose(sol.params, ref.x, atol=1e-6)
    np.testing.assert_allclose(sol.objective, ref.fun, rtol=1e-12)


@pytest.mark.parametrize("ours", [LBFGS, BFGS], ids=["lbfgs", "bfgs"])
def test_hager_zhang_reaches_scipys_solution(ours):
    x0 = jnp.zeros(5)
    sol = ours(rosenbrock, tol=1e-9, linesearch="hager-zhang").run(x0)
    ref = scipy_minimize(rosenbrock, x0, "BFGS", gtol=1e-10)
    np.testing.assert_allclose(sol.params, ref.x, atol=1e-6)
    w0 = jnp.zeros(X.shape[1])
    sol = ours(logreg, tol=1e-9, linesearch="hager-zhang").run(w0, 0.01, X, Y)
    ref = scipy_minimize(lambda w: logreg(w, 0.01, X, Y), w0, "BFGS", gtol=1e-10)
    np.testing.assert_allclose(sol.params, ref.x, atol=1e-6)


def test_history_size_and_fixed_stepsize_match_jaxopt():
    x0 = jnp.zeros(6)
    for m in (1, 3):
        sol = LBFGS(rosenbrock, tol=1e-7, history_size=m, max_steps=3000).run(x0)
        params, state = jaxopt.LBFGS(rosenbrock, tol=1e-7, history_size=m, maxiter=3000).run(x0)
        assert int(sol.num_steps) == int(state.iter_num)
        np.testing.assert_allclose(sol.params, params, atol=1e-10)
    w0 = jnp.zeros(X.shape[1])
    sol = LBFGS(logreg, stepsize=0.5, tol=1e-8, max_steps=2000).run(w0, 0.1, X, Y)
    params, state = jaxopt.LBFGS(logreg, stepsize=0.5, tol=1e-8, maxiter=2000).run(w0, 0.1, X, Y)
    assert int(sol.num_steps) == int(state.iter_num)
    np.testing.assert_allclose(sol.params, params, atol=1e-10)


def test_pytree_params_equal_flat_params():
    def split(p, lam):
        return logreg(jnp.concatenate([p["a"], p["b"].ravel()]), lam, X, Y)

    w0 = jnp.zeros(X.shape[1])
    flat = LBFGS(logreg, tol=1e-9).run(w0, 0.01, X, Y)
    tree = LBFGS(split, tol=1e-9).run({"a": w0[:10], "b": w0[10:].reshape(4, 5)}, 0.01)
    np.testing.assert_allclose(
        jnp.concatenate([tree.params["a"], tree.params["b"].ravel()]), flat.params, atol=1e-12
    )
    assert int(tree.num_steps) == int(flat.num_steps)


def test_complex_params_match_jaxopt_and_least_squares():
    rng = np.random.default_rng(1)
    A = jnp.asarray(rng.normal(size=(12, 4)) + 1j * rng.normal(size=(12, 4)))
    b = jnp.asarray(rng.normal(size=12) + 1j * rng.normal(size=12))

    def fun(z):
        return jnp.sum(jnp.abs(A @ z - b) ** 2)

    z0 = jnp.zeros(4, jnp.complex128)
    sol = LBFGS(fun, tol=1e-10).run(z0)
    params, state = jaxopt.LBFGS(fun, tol=1e-10).run(z0)
    assert sol.params.dtype == jnp.complex128
    np.testing.assert_allclose(sol.params, np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-9)
    np.testing.assert_allclose(sol.params, params, atol=1e-9)
    # jaxopt's first line search on complex parameters ends elsewhere than its own
    # ZoomLineSearch run on the same direction (which ours reproduces); ours needs fewer steps.
    assert int(sol.num_steps) <= int(state.iter_num)


def test_value_and_grad_and_has_aux():
    w0 = jnp.zeros(X.shape[1])
    plain = LBFGS(logreg, tol=1e-9).run(w0, 0.01, X, Y)
    vg = LBFGS(jax.value_and_grad(logreg), value_and_grad=True, tol=1e-9).run(w0, 0.01, X, Y)
    np.testing.assert_allclose(vg.params, plain.params, atol=1e-12)

    def with_aux(w, lam):
        margin = Y * (X @ w)
        return logreg(w, lam, X, Y), jnp.mean(margin > 0)

    aux = LBFGS(with_aux, has_aux=True, tol=1e-9).run(w0, 0.01)
    np.testing.assert_allclose(aux.params, plain.params, atol=1e-12)
    accuracy = np.mean(np.asarray(Y) * (np.asarray(X) @ np.asarray(plain.params)) > 0)
    assert float(aux.aux) == pytest.approx(accuracy)


def test_stop_if_linesearch_fails_reports_stagnation():
    # The gradient returned is wrong (it points uphill), so no step satisfies the conditions.
    def wrong(x):
        return jnp.sum(x**2), -2.0 * x

    first = LBFGS(wrong, value_and_grad=True, maxls=5, max_steps=1, throw=False).run(jnp.ones(3))
    assert bool(first.state.failed_linesearch)
    assert first.result == RESULTS.max_steps_reached
    # without the flag the solver goes on after the failure
    assert (
        int(LBFGS(wrong, value_and_grad=True, maxls=5, throw=False).run(jnp.ones(3)).num_steps) > 1
    )
    stopped = LBFGS(wrong, value_and_grad=True, maxls=5, stop_if_linesearch_fails=True,
                    throw=False).run(jnp.ones(3))  # fmt: skip
    assert stopped.result == RESULTS.stagnation
    assert int(stopped.num_steps) == 1
    with pytest.raises(Exception, match="stop_if_linesearch_fails"):
        LBFGS(wrong, value_and_grad=True, maxls=5, stop_if_linesearch_fails=True).run(jnp.ones(3))


def _central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("solver", [LBFGS, BFGS], ids=["lbfgs", "bfgs"])
def test_implicit_gradient_in_the_ridge_weight_equals_finite_differences(solver):
    Xtr, Ytr, Xva, Yva = X[:400], Y[:400], X[400:], Y[400:]
    w0 = jnp.zeros(X.shape[1])
    s = solver(logreg, tol=1e-11, max_steps=1000)

    def validation_loss(lam):
        w = s.run(w0, lam, Xtr, Ytr).params
        return jnp.mean(jnp.logaddexp(0.0, -Yva * (Xva @ w)))

    lam = 0.05
    grad = jax.grad(validation_loss)(lam)
    fd = _central_difference(validation_loss, lam, 1e-4)
    np.testing.assert_allclose(grad, fd, rtol=1e-6)
    # and the Jacobian of the solution in forward mode
    jac = jax.jacfwd(lambda lam: s.run(w0, lam, Xtr, Ytr).params)(lam)
    fd = _central_difference(lambda lam: s.run(w0, lam, Xtr, Ytr).params, lam, 1e-4)
    np.testing.assert_allclose(jac, fd, rtol=1e-5, atol=1e-9)


def test_jit_and_vmap_over_regularisation():
    w0 = jnp.zeros(X.shape[1])
    solver = LBFGS(logreg, tol=1e-9, throw=False)
    lams = jnp.array([0.01, 0.1, 1.0])
    batched = jax.jit(jax.vmap(lambda lam: solver.run(w0, lam, X, Y).params))(lams)
    for i, lam in enumerate(lams):
        np.testing.assert_allclose(batched[i], solver.run(w0, lam, X, Y).params, atol=1e-12)
