"""LinearSolve against numpy.linalg.solve, and its failure reporting (forward and in gradients)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.implicit import LinearSolve, custom_root

RNG = np.random.default_rng(1)
N = 12
M = RNG.normal(size=(N, N))
SPD = jnp.asarray(M @ M.T + N * np.eye(N))
NONSYM = jnp.asarray(M + N * np.eye(N))
B = jnp.asarray(RNG.normal(size=N))
# eqx.error_if raises EquinoxRuntimeError, or JaxRuntimeError carrying the same message when it
# fires inside a compiled transformation (here: the transposed linear solve of a gradient).
RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


@pytest.mark.parametrize("solver", ["auto", "lu", "qr", "svd", "gmres", "bicgstab", "normal_cg"])
def test_named_solvers_match_numpy_on_a_nonsymmetric_system(solver):
    x, stats = LinearSolve(solver)(lambda u: NONSYM @ u, B)
    np.testing.assert_allclose(x, np.linalg.solve(NONSYM, B), rtol=1e-8, atol=1e-10)
    assert bool(stats["success"]) and float(stats["residual"]) < 1e-8


@pytest.mark.parametrize("solver", ["auto", "cg"])
def test_cg_on_symmetric_positive_definite(solver):
    x, stats = LinearSolve(solver, dense_max_size=0)(lambda u: SPD @ u, B, symmetric=True)
    np.testing.assert_allclose(x, np.linalg.solve(SPD, B), rtol=1e-8)
    assert int(stats["num_steps"]) > 0  # an iterative solve, not LU


def test_ridge_and_pytree_vectors():
    b = {"a": B[:5], "b": B[5:]}

    def mv(u):
        v = SPD @ jnp.concatenate([u["a"], u["b"]])
        return {"a": v[:5], "b": v[5:]}

    for solver in ("lu", "cg", "gmres"):
        x, _ = LinearSolve(solver, ridge=0.5)(mv, b, symmetric=solver == "cg")
        ref = np.linalg.solve(SPD + 0.5 * np.eye(N), B)
        np.testing.assert_allclose(jnp.concatenate([x["a"], x["b"]]), ref, rtol=1e-8)


def test_singular_system_raises_or_returns_nan():
    S = NONSYM.at[:, 0].set(0.0)
    with pytest.raises(RUNTIME_ERRORS, match=r"pass `LinearSolve\(ridge=\.\.\.\)`"):
        jax.block_until_ready(LinearSolve("lu")(lambda u: S @ u, B)[0])
    x, stats = LinearSolve("lu", throw=False)(lambda u: S @ u, B)
    assert not bool(stats["success"]) and bool(jnp.all(jnp.isnan(x)))


def test_iteration_cap_is_a_failure():
    ill = jnp.diag(jnp.logspace(0, 8, N))
    x, stats = LinearSolve("cg", max_steps=3, throw=False)(lambda u: ill @ u, B, symmetric=True)
    assert not bool(stats["success"]) and bool(jnp.all(jnp.isnan(x)))


def test_jaxopt_style_callable_is_checked_too():
    wrong = lambda matvec, b: b  # pretends A = I
    _, stats = LinearSolve(wrong, throw=False)(lambda u: NONSYM @ u, B)
    assert not bool(stats["success"]) and float(stats["residual"]) > 0.1


def test_failed_backward_solve_is_an_error_not_a_wrong_gradient():
    """Least squares with a duplicated feature: ∂F/∂w = XᵀX is singular at the solution."""
    X = jnp.asarray(RNG.normal(size=(20, 3)))
    X = jnp.concatenate([X, X[:, :1]], axis=1)
    y = jnp.asarray(RNG.normal(size=20))
    F = lambda w, y: X.T @ (X @ w - y)
    solver = lambda init, y: jnp.linalg.pinv(X) @ y

    with pytest.raises(RUNTIME_ERRORS, match="implicit differentiation"):
        jax.block_until_ready(jax.grad(lambda y: jnp.sum(custom_root(F)(solver)(None, y)))(y))
    g = jax.grad(lambda y: jnp.sum(custom_root(F, solve=LinearSolve(throw=False))(solver)(None, y)))
    assert bool(jnp.all(jnp.isnan(g(y))))
    # The minimum-norm solve gives the gradient of the minimum-norm solution (pinv).
    g_svd = jax.grad(lambda y: jnp.sum(custom_root(F, solve="svd")(solver)(None, y)))(y)
    np.testing.assert_allclose(g_svd, jnp.sum(jnp.linalg.pinv(X), axis=0), rtol=1e-8)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="`solver` must be one of"):
        LinearSolve("conjugate")
    with pytest.raises(TypeError, match="`solver` must be a name"):
        LinearSolve(3)
    with pytest.raises(ValueError, match=r"`rtol` must be a finite number in \[0.0, inf\]"):
        LinearSolve(rtol=-1.0)
    with pytest.raises(ValueError, match="`max_steps` must be an int >= 1"):
        LinearSolve(max_steps=0)
