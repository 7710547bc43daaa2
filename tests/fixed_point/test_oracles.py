"""Fixed-point solvers against closed forms, scipy, finite differences; pytrees, aux, jit/vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as sopt

from jaxopt_papers import RESULTS
from jaxopt_papers.fixed_point import (
    AndersonAcceleration,
    AndersonWrapper,
    Broyden,
    FixedPointIteration,
)
from jaxopt_papers.proximal import ProximalGradient, prox_ridge
from tests.fixed_point._problems import A, B, M, N, affine, nonlinear, np_nonlinear, root_fun

X0 = jnp.zeros(N)
FP_SOLVERS = {
    "fpi": lambda fn, **kw: FixedPointIteration(fn, max_steps=500, **kw),
    "anderson": lambda fn, **kw: AndersonAcceleration(fn, ridge=1e-14, **kw),
}


@pytest.mark.parametrize("name", sorted(FP_SOLVERS))
def test_affine_fixed_point_closed_form(name):
    sol = FP_SOLVERS[name](affine, tol=1e-12).run(X0, M, B)
    x_star = np.linalg.solve(np.eye(N) - np.asarray(M), np.asarray(B))
    np.testing.assert_allclose(sol.value, x_star, rtol=1e-10, atol=1e-11)
    # d(sum x*)/db = (I − M)⁻ᵀ 1 and d(sum x*)/dM = (I − M)⁻ᵀ 1 x*ᵀ
    gM, gb = jax.grad(lambda M, b: FP_SOLVERS[name](affine, tol=1e-12).run(X0, M, b)
                      .value.sum(), argnums=(0, 1))(M, B)  # fmt: skip
    u = np.linalg.solve((np.eye(N) - np.asarray(M)).T, np.ones(N))
    np.testing.assert_allclose(gb, u, rtol=1e-8)
    np.testing.assert_allclose(gM, np.outer(u, x_star), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", sorted(FP_SOLVERS))
def test_nonlinear_fixed_point_against_scipy(name):
    sol = FP_SOLVERS[name](nonlinear, tol=1e-12).run(X0, M, B)
    ref = sopt.fixed_point(np_nonlinear, np.zeros(N), args=(M, B), xtol=1e-14, maxiter=2000)
    np.testing.assert_allclose(sol.value, ref, rtol=1e-10, atol=1e-11)
    assert sol.result == RESULTS.successful


def test_broyden_against_scipy_root():
    sol = Broyden(root_fun, tol=1e-12, max_steps=100).run(X0, A, B)
    f = lambda x: np.asarray(root_fun(jnp.asarray(x), A, B))
    ref = sopt.root(f, np.zeros(N), method="hybr", tol=1e-13)
    assert np.linalg.norm(ref.fun) < 1e-12
    np.testing.assert_allclose(sol.value, ref.x, rtol=1e-9, atol=1e-11)
    assert float(jnp.linalg.norm(root_fun(sol.value, A, B))) <= 1e-12


def _fd(f, x, h=1e-6):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        g.flat[i] = (f(jnp.asarray(x + e)) - f(jnp.asarray(x - e))) / (2 * h)
    return g


TARGET = jnp.asarray(np.random.default_rng(1).normal(size=N))


@pytest.mark.parametrize(
    "make",
    [
        lambda: (FixedPointIteration(nonlinear, tol=1e-13, max_steps=500), M),
        lambda: (AndersonAcceleration(nonlinear, tol=1e-13, ridge=1e-14), M),
        lambda: (Broyden(root_fun, tol=1e-13, max_steps=100), A),
    ],
    ids=["fpi", "anderson", "broyden"],
)
def test_implicit_gradient_against_finite_differences(make):
    solver, mat = make()
    loss = lambda b: jnp.sum((solver.run(X0, mat, b).value - TARGET) ** 2)
    g = jax.grad(loss)(B)
    np.testing.assert_allclose(g, _fd(loss, B), rtol=1e-6, atol=1e-8)
    # forward mode agrees with reverse mode
    v = jnp.asarray(np.random.default_rng(2).normal(size=N))
    np.testing.assert_allclose(jax.jvp(loss, (B,), (v,))[1], g @ v, rtol=1e-9)


def test_anderson_wrapper_gradient_against_closed_form_ridge():
    rng = np.random.default_rng(5)
    X = jnp.asarray(rng.normal(size=(40, 5)))
    y = jnp.asarray(rng.normal(size=40))
    fun = lambda w, X, y: 0.5 * jnp.mean((X @ w - y) ** 2)
    L = float(np.linalg.eigvalsh(np.asarray(X.T @ X) / 40)[-1])
    pg = ProximalGradient(fun, prox_ridge, stepsize=1 / L, acceleration=False, tol=1e-12,
                          max_steps=2000)  # fmt: skip
    solver = AndersonWrapper(pg, ridge=1e-14)
    H = np.asarray(X.T @ X) / 40
    lam = 0.3  # prox_ridge(x, λ, s) = x / (1 + sλ): the penalty is (λ/2)‖w‖²
    w_star = np.linalg.solve(H + lam * np.eye(5), np.asarray(X.T @ y) / 40)
    sol = solver.run(jnp.zeros(5), lam, X, y)
    np.testing.assert_allclose(sol.value, w_star, rtol=1e-9)
    g = jax.grad(lambda t: solver.run(jnp.zeros(5), t, X, y).value.sum())(lam)
    dw = -np.linalg.solve(H + lam * np.eye(5), w_star)  # dw*/dλ
    np.testing.assert_allclose(g, dw.sum(), rtol=1e-7)


def test_pytree_params_and_aux():
    def T(p, M, b):
        x = jnp.concatenate([p["a"], p["b"]])
        y = nonlinear(x, M, b)
        return {"a": y[:3], "b": y[3:]}, {"norm": jnp.linalg.norm(y)}

    p0 = {"a": jnp.zeros(3), "b": jnp.zeros(N - 3)}
    flat = FixedPointIteration(nonlinear, tol=1e-12, max_steps=500).run(X0, M, B).value
    for solver in (FixedPointIteration(T, tol=1e-12, max_steps=500, has_aux=True),
                   AndersonAcceleration(T, tol=1e-12, ridge=1e-14, has_aux=True)):  # fmt: skip
        sol = solver.run(p0, M, B)
        np.testing.assert_allclose(jnp.concatenate([sol.value["a"], sol.value["b"]]), flat,
                                   rtol=1e-10, atol=1e-11)  # fmt: skip
        np.testing.assert_allclose(sol.state.aux["norm"], np.linalg.norm(flat), rtol=1e-10)


def test_broyden_pytree_is_broyden_on_the_flat_vector():
    def F(p, A, b):
        x = jnp.concatenate([p["a"], p["b"]])
        f = root_fun(x, A, b)
        return {"a": f[:3], "b": f[3:]}

    p0 = {"a": jnp.zeros(3), "b": jnp.zeros(N - 3)}
    for k in (3, 8):
        tree = Broyden(F, tol=0.0, max_steps=k, throw=False).run(p0, A, B).value
        flat = Broyden(root_fun, tol=0.0, max_steps=k, throw=False).run(X0, A, B).value
        np.testing.assert_allclose(jnp.concatenate([tree["a"], tree["b"]]), flat, rtol=1e-10)


def test_vmap_with_throw_false_reports_per_element():
    solver = FixedPointIteration(nonlinear, tol=1e-12, max_steps=10, throw=False)
    scales = jnp.asarray([0.01, 1.0])  # the first contracts fast, the second needs > 10 steps
    sols = jax.vmap(lambda s: solver.run(X0, s * M, B))(scales)
    ok = np.asarray(sols.result == RESULTS.successful)
    limit = np.asarray(sols.result == RESULTS.max_steps_reached)
    assert ok.tolist() == [True, False] and limit.tolist() == [False, True]
    single = solver.run(X0, 0.01 * M, B)
    np.testing.assert_allclose(sols.value[0], single.value, rtol=1e-12)


def test_divergence_is_nonfinite_and_throw_raises():
    grow = lambda x, c: c * x**2 + 1.0  # no fixed point for c = 1: the iterates blow up
    quiet = FixedPointIteration(grow, tol=1e-8, max_steps=100, throw=False)
    assert quiet.run(jnp.ones(2), 1.0).result == RESULTS.nonfinite
    with pytest.raises(Exception, match="FixedPointIteration produced non-finite values"):
        jax.block_until_ready(jax.jit(lambda c: FixedPointIteration(grow, max_steps=100)
                                      .run(jnp.ones(2), c).value)(1.0))  # fmt: skip


def test_broyden_stop_if_linesearch_fails():
    # One trial per line search from far away: the first line search fails.
    kw = dict(tol=1e-10, max_steps=50, maxls=1, throw=False)
    x0 = 5 * jnp.ones(N)
    stop = Broyden(root_fun, stop_if_linesearch_fails=True, **kw).run(x0, A, B)
    assert stop.result == RESULTS.max_steps_reached
    assert bool(stop.state.failed_linesearch) and int(stop.num_steps) == 1
    go_on = Broyden(root_fun, **kw).run(x0, A, B)
    assert int(go_on.num_steps) > 1


def test_relative_ridge_keeps_the_acceleration_on_a_slow_contraction():
    # symmetric M with eigenvalues spread over [0, 0.99]: plain iteration is slow, and
    # jaxopt's absolute ridge (1e-5) turns Anderson into an average once ‖r‖² < 1e-5
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    Ms = jnp.asarray((q * np.linspace(0.0, 0.99, 30)) @ q.T)
    b = jnp.asarray(rng.normal(size=30))
    x_star = np.linalg.solve(np.eye(30) - np.asarray(Ms), np.asarray(b))
    x0 = jnp.zeros(30)
    plain = FixedPointIteration(affine, tol=1e-8, max_steps=5000).run(x0, Ms, b)
    rel = AndersonAcceleration(affine, tol=1e-8, max_steps=5000, ridge=1e-10,
                               relative_ridge=True).run(x0, Ms, b)  # fmt: skip
    np.testing.assert_allclose(rel.value, x_star, atol=1e-6)
    assert 5 * int(rel.num_steps) < int(plain.num_steps)
