"""Implicit gradients around an optimistix solve with a non-gradient optimality condition."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx

from jaxopt_papers.implicit import LinearSolve, custom_root
from jaxopt_papers.proximal import prox_non_negative_lasso


def F(w, lam, X, y):
    """Natural residual of min ½‖Xw − y‖² + λ·sum(w), w ≥ 0 (not the gradient of anything)."""
    return prox_non_negative_lasso(w - X.T @ (X @ w - y), lam, 1.0) - w


def _solve(linear_solver):
    @custom_root(F, solve=LinearSolve(linear_solver))
    def solve(init, lam, X, y):
        sol = optx.root_find(
            lambda w, args: F(w, *args),
            optx.Newton(rtol=1e-12, atol=1e-12, linear_solver=linear_solver),
            init,
            args=(lam, X, y),
            throw=False,
        )
        return sol.value

    return solve


def test_recipe_matches_the_closed_form_and_finite_differences():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(8, 3)) + 0.5)
    y = jnp.asarray(rng.normal(size=8))
    lam = 0.3
    # one lineax solver configures both libraries
    solve = _solve(lx.LU())
    w = solve(jnp.zeros(3), lam, X, y)
    np.testing.assert_allclose(F(w, lam, X, y), 0.0, atol=1e-10)
    # closed form on the support S: w_S = (X_Sᵀ X_S)⁻¹ (X_Sᵀ y − λ 1), dw_S/dλ = −(X_SᵀX_S)⁻¹ 1
    # the support up to round-off (an inactive weight can come out as ±1e-32), with strict
    # complementarity off it, so that the closed form below is the derivative
    S = np.asarray(w) > 1e-12
    assert S.any()
    grad_off = np.asarray(X.T @ (X @ w - y) + lam)[~S]
    assert np.all(grad_off > 1e-6)
    XS = np.asarray(X)[:, S]
    dws = -np.linalg.solve(XS.T @ XS, np.ones(S.sum()))
    jac = jax.jacobian(lambda t: solve(jnp.zeros(3), t, X, y))(lam)
    np.testing.assert_allclose(jac[S], dws, rtol=1e-9)
    np.testing.assert_allclose(jac[~S], 0.0, atol=1e-12)
    # reverse mode in the data, against central differences
    g = jax.grad(lambda Z: jnp.sum(solve(jnp.zeros(3), lam, Z, y) ** 2))(X)
    E = jnp.zeros_like(X).at[2, 1].set(1e-6)
    f = lambda Z: jnp.sum(solve(jnp.zeros(3), lam, Z, y) ** 2)
    np.testing.assert_allclose(g[2, 1], (f(X + E) - f(X - E)) / 2e-6, rtol=1e-6)


def test_recipe_agrees_with_optimistix_own_adjoint_on_a_root_problem():
    # When F is the root condition optimistix itself differentiates, its ImplicitAdjoint and
    # custom_root must give the same Jacobian (the recipe matters when they differ).
    rng = np.random.default_rng(1)
    X = jnp.asarray(rng.normal(size=(6, 2)) + 1.0)
    y = jnp.asarray(rng.normal(size=6) + 2.0)

    def via_optx(lam):
        sol = optx.root_find(
            lambda w, args: F(w, *args),
            optx.Newton(rtol=1e-12, atol=1e-12),
            jnp.zeros(2),
            args=(lam, X, y),
            adjoint=optx.ImplicitAdjoint(linear_solver=lx.LU()),
        )
        return sol.value

    np.testing.assert_allclose(
        jax.jacobian(via_optx)(0.2),
        jax.jacobian(lambda t: _solve(lx.LU())(jnp.zeros(2), t, X, y))(0.2),
        rtol=1e-9,
    )
