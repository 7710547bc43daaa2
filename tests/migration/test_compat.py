"""jaxopt's calling conventions run unchanged and give jaxopt's answers (float64)."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.implicit import IterativeSolver, LinearSolve, custom_fixed_point, custom_root
from jaxopt_papers.proximal import (
    ProjectedGradient,
    ProximalGradient,
    projection_box,
    projection_non_negative,
    prox_lasso,
)
from tests.migration._jaxopt import jaxopt, module

jlinear_solve = module("linear_solve")
jprox = module("prox")
jprojection = module("projection")
jimplicit = module("implicit_diff")


def _data(seed: int = 0, n: int = 30, d: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    return jnp.asarray(X), jnp.asarray(y)


def least_squares(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def _step(X):
    return 1.0 / float(jnp.linalg.norm(X, 2) ** 2 / X.shape[0])


def test_solution_unpacks_as_params_state():
    X, y = _data()
    sol = ProximalGradient(least_squares, prox_lasso, tol=1e-10, max_steps=5000).run(
        jnp.zeros(5), 0.05, X, y
    )
    params, state = sol
    assert params is sol.value and state is sol.state
    ref_params, _ = jaxopt.ProximalGradient(
        least_squares, jprox.prox_lasso, tol=1e-10, maxiter=5000
    ).run(jnp.zeros(5), 0.05, X, y)
    np.testing.assert_allclose(params, ref_params, atol=1e-9)
    assert int(state.num_steps) >= 1 and float(state.error) <= 1e-10


def test_maxiter_is_max_steps_and_replays_jaxopt():
    X, y = _data(1)
    s = _step(X)
    ours = ProximalGradient(least_squares, prox_lasso, stepsize=s, maxiter=7, tol=0.0, throw=False)
    assert ours.max_steps == 7
    ref = jaxopt.ProximalGradient(least_squares, jprox.prox_lasso, stepsize=s, maxiter=7, tol=0.0)
    p, state = ours.run(jnp.zeros(5), 0.05, X, y)
    rp, rstate = ref.run(jnp.zeros(5), 0.05, X, y)
    assert int(state.num_steps) == int(rstate.iter_num) == 7
    np.testing.assert_allclose(p, rp, rtol=0, atol=1e-12)


def test_maxiter_with_max_steps_is_an_error():
    with pytest.raises(TypeError, match="both `maxiter`"):
        ProximalGradient(least_squares, maxiter=3, max_steps=4)


def test_implicit_diff_solve_is_linear_solve():
    solve = LinearSolve("lu")
    assert ProximalGradient(least_squares, implicit_diff_solve=solve).linear_solve is solve


def _subclasses() -> list[tuple[str, object]]:
    import jaxopt_papers.fixed_point as fp
    import jaxopt_papers.ot as ot
    import jaxopt_papers.qp as qp
    import jaxopt_papers.smooth as sm

    T = lambda x, a: 0.5 * x + a
    cases = [
        ("Sinkhorn", lambda **kw: ot.Sinkhorn(**kw)),
        ("LBFGS", lambda **kw: sm.LBFGS(least_squares, **kw)),
        ("BFGS", lambda **kw: sm.BFGS(least_squares, **kw)),
        ("LBFGSB", lambda **kw: sm.LBFGSB(least_squares, **kw)),
        ("GradientDescent", lambda **kw: sm.GradientDescent(least_squares, **kw)),
        ("BoxOSQP", lambda **kw: qp.BoxOSQP(**kw)),
        ("OSQP", lambda **kw: qp.OSQP(**kw)),
        ("FixedPointIteration", lambda **kw: fp.FixedPointIteration(T, **kw)),
        ("AndersonAcceleration", lambda **kw: fp.AndersonAcceleration(T, **kw)),
    ]
    return cases


@pytest.mark.parametrize(("name", "make"), _subclasses(), ids=[c[0] for c in _subclasses()])
def test_maxiter_alias_on_every_solver(name, make):
    solver = make(maxiter=13)
    assert isinstance(solver, IterativeSolver), name
    assert solver.max_steps == 13
    with pytest.raises(TypeError, match="maxiter"):
        make(maxiter=13, max_steps=14)


def test_value_and_grad_and_has_aux_match_jaxopt():
    X, y = _data(2)

    def vg(w, X, y):
        r = X @ w - y
        return (0.5 * jnp.mean(r**2), jnp.max(jnp.abs(r))), X.T @ r / X.shape[0]

    def with_aux(w, X, y):
        r = X @ w - y
        return 0.5 * jnp.mean(r**2), jnp.max(jnp.abs(r))

    kw = dict(tol=1e-10, maxiter=5000)
    for ours_kw, fun in (
        (dict(value_and_grad=True, has_aux=True), vg),
        (dict(has_aux=True), with_aux),
    ):
        p, state = ProximalGradient(fun, prox_lasso, **ours_kw, **kw).run(jnp.zeros(5), 0.1, X, y)
        rp, rstate = jaxopt.ProximalGradient(fun, jprox.prox_lasso, **ours_kw, **kw).run(
            jnp.zeros(5), 0.1, X, y
        )
        np.testing.assert_allclose(p, rp, atol=1e-9)
        np.testing.assert_allclose(state.aux, rstate.aux, rtol=1e-8)
    # value_and_grad=True alone, and the implicit gradient through the user's gradient
    fun = lambda w, X, y: (least_squares(w, X, y), X.T @ (X @ w - y) / X.shape[0])
    solver = ProximalGradient(fun, prox_lasso, value_and_grad=True, tol=1e-12, max_steps=20000)
    ref = ProximalGradient(least_squares, prox_lasso, tol=1e-12, max_steps=20000)
    g = jax.grad(lambda lam: solver.run(jnp.zeros(5), lam, X, y).params.sum())(0.1)
    g_ref = jax.grad(lambda lam: ref.run(jnp.zeros(5), lam, X, y).params.sum())(0.1)
    np.testing.assert_allclose(g, g_ref, rtol=1e-8)


def test_projected_gradient_without_hyperparams_proj():
    X, y = _data(3)
    f = lambda w, data: least_squares(w, *data)
    kw = dict(tol=1e-10, maxiter=5000)
    p = ProjectedGradient(f, projection_non_negative, **kw).run(jnp.zeros(5), data=(X, y)).params
    rp = jaxopt.ProjectedGradient(f, jprojection.projection_non_negative, **kw).run(
        jnp.zeros(5), data=(X, y)
    )
    np.testing.assert_allclose(p, rp.params, atol=1e-9)
    box = (-0.2, 0.3)
    p = ProjectedGradient(f, projection_box, **kw).run(
        jnp.zeros(5), hyperparams_proj=box, data=(X, y)
    )
    rp = jaxopt.ProjectedGradient(f, jprojection.projection_box, **kw).run(
        jnp.zeros(5), hyperparams_proj=box, data=(X, y)
    )
    np.testing.assert_allclose(p.params, rp.params, atol=1e-9)
    with pytest.raises(TypeError, match="hyperparams_proj"):
        ProjectedGradient(f, projection_box).run(jnp.zeros(5), box, hyperparams_proj=box, data=1)


def _ridge_problem():
    X, y = _data(4, n=20, d=4)

    def F(w, lam, X, y):  # the gradient of the ridge objective
        return X.T @ (X @ w - y) + lam * w

    def solver(init, lam, X, y):
        w = jnp.linalg.solve(X.T @ X + lam * jnp.eye(X.shape[1]), X.T @ y)
        return w, {"norm": jnp.linalg.norm(w)}

    return X, y, F, solver


def test_custom_root_jaxopt_positional_order_and_keywords():
    X, y, F, solver = _ridge_problem()
    ref = jimplicit.custom_root(F, True, jlinear_solve.solve_lu)(solver)
    jac_ref = jax.jacobian(lambda lam: ref(None, lam, X, y)[0])(2.0)
    closed = -jnp.linalg.solve(X.T @ X + 2.0 * jnp.eye(4), solver(None, 2.0, X, y)[0])
    np.testing.assert_allclose(jac_ref, closed, rtol=1e-10)
    for ours in (
        custom_root(F, True)(solver),  # has_aux second, as in jaxopt
        custom_root(F, True, LinearSolve("lu"))(solver),
        custom_root(optimality_fun=F, has_aux=True)(solver),
        custom_root(F, True, reference_signature=F)(solver),
    ):
        jac = jax.jacobian(lambda lam, s=ours: s(None, lam, X, y)[0])(2.0)
        np.testing.assert_allclose(jac, jac_ref, rtol=1e-10)
    with pytest.raises(TypeError, match="has_aux"):
        custom_root(F, LinearSolve("lu"))
    with pytest.raises(TypeError, match="both"):
        custom_root(F, optimality_fun=F)


def test_reference_signature_binds_keywords_for_a_varargs_optimality_fn():
    X, y, F, solver = _ridge_problem()
    F_varargs = lambda w, *args: F(w, *args)  # cannot take `lam=` by keyword
    ours = custom_root(F_varargs, True, reference_signature=F)(solver)
    ref = jimplicit.custom_root(F_varargs, True, jlinear_solve.solve_lu, reference_signature=F)(
        solver
    )
    g = jax.grad(lambda lam: ours(None, lam=lam, X=X, y=y)[0].sum())(2.0)
    g_ref = jax.grad(lambda lam: ref(None, lam=lam, X=X, y=y)[0].sum())(2.0)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10)
    sig = inspect.signature(F)
    ours_sig = custom_root(F_varargs, True, reference_signature=sig)(solver)
    np.testing.assert_allclose(
        jax.grad(lambda lam: ours_sig(None, lam=lam, X=X, y=y)[0].sum())(2.0), g_ref, rtol=1e-10
    )


def test_custom_fixed_point_jaxopt_order():
    T = lambda x, a: 0.5 * x + jnp.sin(a)  # fixed point 2 sin(a)

    def solver(init, a):
        x = jax.lax.fori_loop(0, 80, lambda _, x: T(x, a), init)
        return x, x - T(x, a)

    for ours in (
        custom_fixed_point(T, True)(solver),
        custom_fixed_point(fixed_point_fun=T, has_aux=True)(solver),
    ):
        g = jax.grad(lambda a, s=ours: s(0.0, a)[0])(0.7)
        np.testing.assert_allclose(g, 2 * np.cos(0.7), rtol=1e-10)
    ref = jimplicit.custom_fixed_point(T, True, jlinear_solve.solve_lu)(solver)
    np.testing.assert_allclose(jax.grad(lambda a: ref(0.0, a)[0])(0.7), 2 * np.cos(0.7), rtol=1e-10)
