"""The optimality catalogue: each F vanishes at an independently computed solution, and
custom_root with it reproduces closed-form Jacobians.

Oracles: scipy.optimize.nnls (non-negative least squares), the KKT linear system solved densely,
softmax (entropic mirror descent on the simplex), the lasso support formula, finite differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads
from scipy.optimize import nnls

from jaxopt_papers.implicit import (
    custom_root,
    equality_qp_kkt,
    fixed_point_optimality,
    kkt_optimality,
    kl_simplex_step,
    mirror_descent_optimality,
    projected_gradient_optimality,
    prox_gradient_optimality,
)

RNG = np.random.default_rng(2)


def soft_threshold(x, lam, scaling=1.0):
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - lam * scaling, 0.0)


def test_prox_gradient_optimality_and_lasso_support_formula():
    X = jnp.asarray(RNG.normal(size=(50, 8)))
    y = X @ jnp.asarray([2.0, -1.5, 0, 0, 1.0, 0, 0, 0.5]) + 0.1 * jnp.asarray(RNG.normal(size=50))
    fun = lambda w, X, y: 0.5 * jnp.mean((X @ w - y) ** 2)
    lam = 0.1

    def ista(init, lam, X, y):  # a user-written solver: plain ISTA, many iterations
        L = jnp.linalg.eigvalsh(X.T @ X / X.shape[0])[-1]
        step = lambda _, w: soft_threshold(w - jax.grad(fun)(w, X, y) / L, lam, 1 / L)
        return jax.lax.fori_loop(0, 3000, step, init)

    for eta in (1.0, 0.3):  # any step gives the same root
        F = prox_gradient_optimality(fun, soft_threshold, stepsize=eta)
        solver = custom_root(F)(ista)
        w = solver(jnp.zeros(8), lam, X, y)
        np.testing.assert_allclose(F(w, lam, X, y), 0.0, atol=1e-12)
        S = np.flatnonzero(np.abs(np.asarray(w)) > 0)
        XS = X[:, S]
        expected = np.zeros(8)
        expected[S] = -np.linalg.solve(XS.T @ XS / 50, np.sign(w[S]))
        got = jax.jacrev(lambda lam: solver(jnp.zeros(8), lam, X, y))(lam)
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_projected_gradient_optimality_non_negative_least_squares():
    A = jnp.asarray(RNG.normal(size=(20, 6)))
    b = jnp.asarray(RNG.normal(size=20))
    fun = lambda x, A, b: 0.5 * jnp.sum((A @ x - b) ** 2)
    proj = lambda x, hp: jnp.maximum(x, 0.0)
    F = projected_gradient_optimality(fun, proj, stepsize=0.05)

    @custom_root(F)
    def solver(init, hp, A, b):
        x, _ = jax.pure_callback(
            lambda A, b: nnls(np.asarray(A), np.asarray(b)),
            (jax.ShapeDtypeStruct((6,), A.dtype), jax.ShapeDtypeStruct((), A.dtype)),
            A,
            b,
        )
        return x

    x = solver(jnp.zeros(6), None, A, b)
    np.testing.assert_allclose(F(x, None, A, b), 0.0, atol=1e-12)
    # On the active set, x_S = (A_Sᵀ A_S)⁻¹ A_Sᵀ b: its Jacobian in b is the pseudo-inverse.
    S = np.flatnonzero(np.asarray(x) > 0)
    expected = np.zeros((6, 20))
    expected[S] = np.linalg.pinv(np.asarray(A)[:, S])
    np.testing.assert_allclose(
        jax.jacrev(lambda b: solver(None, None, A, b))(b), expected, atol=1e-10
    )


def test_equality_qp_kkt_matches_dense_kkt_system():
    n, m = 5, 2
    M = RNG.normal(size=(n, n))
    Q, c = jnp.asarray(M @ M.T + np.eye(n)), jnp.asarray(RNG.normal(size=n))
    A, b = jnp.asarray(RNG.normal(size=(m, n))), jnp.asarray(RNG.normal(size=m))

    def kkt_matrix(Q, A):  # ∇ of ½xᵀQx is ½(Q + Qᵀ)x, also for the unsymmetric Q of check_grads
        return jnp.block([[(Q + Q.T) / 2, A.T], [A, jnp.zeros((m, m))]])

    @custom_root(equality_qp_kkt)
    def qp(init, params_obj, params_eq):
        (Q, c), (A, b) = params_obj, params_eq
        z = jnp.linalg.solve(kkt_matrix(Q, A), jnp.concatenate([-c, b]))
        return z[:n], z[n:]

    x, nu = qp(None, (Q, c), (A, b))
    for r in equality_qp_kkt((x, nu), (Q, c), (A, b)):
        np.testing.assert_allclose(r, 0.0, atol=1e-12)
    # The generic kkt_optimality gives the same residual.
    generic = kkt_optimality(
        lambda x, p: 0.5 * x @ p[0] @ x + p[1] @ x, lambda x, p: p[0] @ x - p[1]
    )
    for r1, r2 in zip(generic((x, nu), (Q, c), (A, b)), equality_qp_kkt((x, nu), (Q, c), (A, b)),
                      strict=True):  # fmt: skip
        np.testing.assert_allclose(r1, r2, atol=1e-14)
    # d(x, ν)/d(c, b) is the inverse KKT matrix applied to (−I, I).
    K_inv = np.linalg.inv(np.asarray(kkt_matrix(Q, A)))
    jc = jax.jacrev(lambda c: jnp.concatenate(qp(None, (Q, c), (A, b))))(c)
    jb = jax.jacfwd(lambda b: jnp.concatenate(qp(None, (Q, c), (A, b))))(b)
    np.testing.assert_allclose(jc, -K_inv[:, :n], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(jb, K_inv[:, n:], rtol=1e-9, atol=1e-12)
    check_grads(lambda Q, A: jnp.concatenate(qp(None, (Q, c), (A, b))), (Q, A), order=1, eps=1e-6)


def test_mirror_descent_optimality_entropic_simplex():
    """min ⟨c, x⟩ + τ Σ x log x on the simplex: x* = softmax(−c/τ)."""
    tau = 0.7
    fun = lambda x, c: c @ x + tau * jnp.sum(x * jnp.log(x))
    F = mirror_descent_optimality(fun, kl_simplex_step)

    @custom_root(F)
    def solver(init, hp, c):
        step = lambda _, x: kl_simplex_step(x, jax.grad(fun)(x, c), 0.5)
        return jax.lax.fori_loop(0, 500, step, init)

    c = jnp.asarray(RNG.normal(size=6))
    x = solver(jnp.full(6, 1 / 6), None, c)
    p = jax.nn.softmax(-c / tau)
    np.testing.assert_allclose(x, p, rtol=1e-12)
    expected = -(jnp.diag(p) - jnp.outer(p, p)) / tau
    got = jax.jacrev(lambda c: solver(jnp.full(6, 1 / 6), None, c))(c)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_fixed_point_optimality_is_zero_at_fixed_points():
    T = lambda x, a: 0.5 * jnp.cos(x) + a
    F = fixed_point_optimality(T)
    a = jnp.asarray([0.1, -0.4])
    x = jax.lax.fori_loop(0, 200, lambda _, x: T(x, a), jnp.zeros(2))
    np.testing.assert_allclose(F(x, a), 0.0, atol=1e-15)
    dx = jax.jacrev(lambda a: custom_root(F)(lambda i, a: jax.lax.fori_loop(
        0, 200, lambda _, x: T(x, a), i))(jnp.zeros(2), a))(a)  # fmt: skip
    np.testing.assert_allclose(dx, jnp.diag(1 / (1 + 0.5 * jnp.sin(x))), rtol=1e-12)
