"""custom_root / custom_fixed_point / root_vjp / root_jvp against closed forms and autodiff.

Oracles: ridge regression's closed form x*(λ) = (XᵀX + λI)⁻¹Xᵀy and dx*/dλ = −(XᵀX + λI)⁻¹x*;
autodiff through the closed-form solve; a dense implicit-function-theorem Jacobian by
``jnp.linalg.solve``; central finite differences in float64 (``check_grads``); jaxopt 0.8.5's
``root_vjp``/``root_jvp``.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jaxopt
import lineax as lx
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxopt_papers import RESULTS
from jaxopt_papers.implicit import (
    LinearSolve,
    custom_fixed_point,
    custom_root,
    gradient_optimality,
    root_jvp,
    root_vjp,
)

RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)
RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(30, 6)))
Y = jnp.asarray(RNG.normal(size=30))
W0 = jnp.zeros(6)
LAM = 1.7


def ridge_closed(lam, X, y):
    return jnp.linalg.solve(X.T @ X + lam * jnp.eye(X.shape[1]), X.T @ y)


def ridge_dlam(lam, X, y):
    return -jnp.linalg.solve(X.T @ X + lam * jnp.eye(X.shape[1]), ridge_closed(lam, X, y))


def ridge_grad(w, lam, X, y):
    """Optimality of ½‖Xw − y‖² + (λ/2)‖w‖²."""
    return X.T @ (X @ w - y) + lam * w


def make_ridge_solver(solve=None, **kw):
    @custom_root(ridge_grad, solve=solve, **kw)
    def solver(init, lam, X, y):
        del init
        return ridge_closed(lam, X, y)

    return solver


SOLVES = {
    "default": None,
    "lu": "lu",
    "cg": "cg",
    "gmres": "gmres",
    "bicgstab": "bicgstab",
    "normal_cg": "normal_cg",
    "svd": "svd",
    "lineax-instance": lx.CG(rtol=1e-12, atol=1e-14),
    "jaxopt-callable": functools.partial(jaxopt.linear_solve.solve_cg, tol=1e-12),
    "iterative-auto": LinearSolve(dense_max_size=0),
}


@pytest.mark.parametrize("name", list(SOLVES))
def test_ridge_jacobian_matches_closed_form_for_every_backward_solver(name):
    solver = make_ridge_solver(SOLVES[name], symmetric=True)
    expected = ridge_dlam(LAM, X, Y)
    for jac in (jax.jacrev, jax.jacfwd):
        got = jac(lambda lam: solver(W0, lam, X, Y))(LAM)
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_gradients_wrt_matrix_and_vector_args_match_autodiff_of_closed_form():
    solver = make_ridge_solver()
    loss = lambda s: lambda X, y: jnp.sum(jnp.sin(s(X, y)))
    ours = jax.grad(loss(lambda X, y: solver(W0, LAM, X, y)), argnums=(0, 1))(X, Y)
    ref = jax.grad(loss(lambda X, y: ridge_closed(LAM, X, y)), argnums=(0, 1))(X, Y)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_check_grads_forward_and_reverse_and_second_order():
    solver = make_ridge_solver()
    f = lambda lam, y: solver(W0, lam, X, y)
    check_grads(f, (LAM, Y), order=1, modes=("fwd", "rev"), eps=1e-6)
    # Second order: the derivative rule is itself differentiable.
    h = jax.hessian(lambda lam: jnp.sum(solver(W0, lam, X, Y) ** 2))(LAM)
    h_ref = jax.hessian(lambda lam: jnp.sum(ridge_closed(lam, X, Y) ** 2))(LAM)
    np.testing.assert_allclose(h, h_ref, rtol=1e-8)


def test_user_solver_under_jit_vmap_jacfwd_jacrev():
    solver = make_ridge_solver()
    lams = jnp.array([0.1, 1.0, 10.0])
    expected = jax.vmap(ridge_dlam, in_axes=(0, None, None))(lams, X, Y)
    for jac in (jax.jacfwd, jax.jacrev):
        f = jax.jit(jax.vmap(jac(lambda lam: solver(W0, lam, X, Y))))
        np.testing.assert_allclose(f(lams), expected, rtol=1e-8, atol=1e-12)
    # jacobian w.r.t. a whole batch of vectors y, vmapped.
    ys = jnp.asarray(RNG.normal(size=(4, 30)))
    jy = jax.jit(jax.vmap(jax.jacrev(lambda y: solver(W0, LAM, X, y))))(ys)
    ref = jnp.linalg.solve(X.T @ X + LAM * jnp.eye(6), X.T)
    np.testing.assert_allclose(jy, jnp.broadcast_to(ref, (4, 6, 30)), rtol=1e-9, atol=1e-12)


def test_pytree_args_kwargs_and_solution():
    """args as a dict, keyword arguments, and a (w, b) tuple solution with an intercept."""

    def F(params, hp, *, X):
        w, b = params
        r = X @ w + b - hp["y"]
        return X.T @ r + hp["lam"] * w, jnp.sum(r)[None]

    @custom_root(F)
    def solver(init, hp, *, X):
        Xa = jnp.concatenate([X, jnp.ones((X.shape[0], 1))], axis=1)
        reg = jnp.diag(jnp.append(jnp.full(X.shape[1], hp["lam"]), 0.0))
        z = jnp.linalg.solve(Xa.T @ Xa + reg, Xa.T @ hp["y"])
        return z[:-1], z[-1:]

    def ref(hp):
        Xa = jnp.concatenate([X, jnp.ones((X.shape[0], 1))], axis=1)
        reg = jnp.diag(jnp.append(jnp.full(X.shape[1], hp["lam"]), 0.0))
        z = jnp.linalg.solve(Xa.T @ Xa + reg, Xa.T @ hp["y"])
        return z[:-1], z[-1:]

    hp = {"lam": jnp.asarray(LAM), "y": Y}
    loss = lambda s: lambda hp: jnp.sum(s(hp)[0] ** 2) + 3.0 * s(hp)[1][0]
    g = jax.grad(loss(lambda hp: solver((W0, jnp.zeros(1)), hp, X=X)))(hp)
    g_ref = jax.grad(loss(ref))(hp)
    np.testing.assert_allclose(g["lam"], g_ref["lam"], rtol=1e-9)
    np.testing.assert_allclose(g["y"], g_ref["y"], rtol=1e-9, atol=1e-12)


def test_closed_over_tracers_are_differentiated():
    """jaxopt #31/#111-style closures: F and the solver capture λ instead of taking it."""

    def f(lam):
        @custom_root(lambda w, X, y: ridge_grad(w, lam, X, y))
        def solver(init, X, y):
            return ridge_closed(lam, X, y)

        return jnp.sum(solver(W0, X, Y))

    np.testing.assert_allclose(jax.grad(f)(LAM), jnp.sum(ridge_dlam(LAM, X, Y)), rtol=1e-9)
    np.testing.assert_allclose(
        jax.jvp(f, (LAM,), (1.0,))[1], jnp.sum(ridge_dlam(LAM, X, Y)), rtol=1e-9
    )


def test_init_and_aux_get_no_gradient_and_non_array_args_pass_through():
    @custom_root(lambda w, lam, X, y, mode, n: ridge_grad(w, lam, X, y), has_aux=True)
    def solver(init, lam, X, y, mode, n):
        assert mode == "closed"  # a string passes through untouched
        w = ridge_closed(lam, X, y) + 0.0 * jnp.sum(init)
        return w, {"n": n, "norm": jnp.linalg.norm(w)}

    n = jnp.asarray(7, jnp.int32)
    g_init = jax.grad(lambda i: jnp.sum(solver(i, LAM, X, Y, "closed", n)[0]))(W0)
    np.testing.assert_array_equal(g_init, jnp.zeros(6))
    _, aux = solver(W0, LAM, X, Y, "closed", n)
    assert int(aux["n"]) == 7
    np.testing.assert_allclose(aux["norm"], jnp.linalg.norm(ridge_closed(LAM, X, Y)))
    # aux is a constant for differentiation: only w carries the gradient.
    g = jax.grad(lambda lam: jnp.sum(solver(W0, lam, X, Y, "closed", n)[0]))(LAM)
    np.testing.assert_allclose(g, jnp.sum(ridge_dlam(LAM, X, Y)), rtol=1e-9)
    g_aux = jax.grad(lambda lam: solver(W0, lam, X, Y, "closed", n)[1]["norm"])(LAM)
    assert g_aux == 0.0


def test_gradient_optimality_catalogue_entry_is_symmetric_and_exact():
    def objective(w, lam, X, y):
        return 0.5 * jnp.sum((X @ w - y) ** 2) + 0.5 * lam * jnp.sum(w**2)

    F = gradient_optimality(objective)
    assert F.symmetric
    solver = custom_root(F, solve=LinearSolve(dense_max_size=0))(
        lambda init, lam, X, y: ridge_closed(lam, X, y)
    )
    got = jax.jacrev(lambda lam: solver(W0, lam, X, Y))(LAM)
    np.testing.assert_allclose(got, ridge_dlam(LAM, X, Y), rtol=1e-8)


def test_custom_fixed_point_equilibrium_matches_dense_ift():
    """x = tanh(Wx + b) with ‖W‖ < 1: ∂x/∂b = (I − D W)⁻¹ D with D = diag(1 − x²)."""
    W = jnp.asarray(RNG.normal(size=(5, 5))) * 0.15
    b = jnp.asarray(RNG.normal(size=5))
    T = lambda x, W, b: jnp.tanh(W @ x + b)

    @custom_fixed_point(T)
    def equilibrium(init, W, b):
        return jax.lax.fori_loop(0, 300, lambda _, x: T(x, W, b), init)

    x = equilibrium(jnp.zeros(5), W, b)
    np.testing.assert_allclose(x, T(x, W, b), atol=1e-14)
    D = jnp.diag(1 - x**2)
    dense = jnp.linalg.solve(jnp.eye(5) - D @ W, D)
    for jac in (jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(
            jac(lambda b: equilibrium(jnp.zeros(5), W, b))(b), dense, rtol=1e-10, atol=1e-13
        )
    check_grads(lambda W, b: equilibrium(jnp.zeros(5), W, b), (W, b), order=1, eps=1e-6)


def test_root_vjp_and_root_jvp_match_jaxopt_and_closed_form():
    sol = ridge_closed(LAM, X, Y)
    args = (jnp.asarray(LAM), X, Y)
    v = jnp.asarray(RNG.normal(size=6))
    ours, stats = root_vjp(ridge_grad, sol, args, v, return_stats=True)
    theirs = jaxopt.implicit_diff.root_vjp(
        ridge_grad, sol, args, v, solve=functools.partial(jaxopt.linear_solve.solve_cg, tol=1e-13)
    )
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours[0], v @ ridge_dlam(LAM, X, Y), rtol=1e-10)
    assert bool(stats["success"]) and float(stats["residual"]) < 1e-12
    tangents = (jnp.asarray(1.0), jnp.zeros_like(X), jnp.zeros_like(Y))
    np.testing.assert_allclose(
        root_jvp(ridge_grad, sol, args, tangents), ridge_dlam(LAM, X, Y), rtol=1e-10
    )
    with pytest.raises(ValueError, match="`tangents` must have one entry per element"):
        root_jvp(ridge_grad, sol, args, tangents[:2])


# ------------------------------------------------------------------------------ misuse


def test_signature_mismatch_is_a_clear_type_error():
    @custom_root(lambda w, lam: w * lam)  # forgets X and y
    def solver(init, lam, X, y):
        return ridge_closed(lam, X, y)

    with pytest.raises(TypeError, match=r"`optimality_fn` is called as optimality_fn\(x, <arg 0>"):
        solver(W0, LAM, X, Y)


def test_optimality_output_must_match_solution():
    @custom_root(lambda w, lam, X, y: jnp.sum(w))
    def solver(init, lam, X, y):
        return ridge_closed(lam, X, y)

    with pytest.raises(TypeError, match="must return a pytree with the structure and shapes"):
        solver(W0, LAM, X, Y)


def test_bad_decorator_arguments():
    with pytest.raises(TypeError, match="`optimality_fn` must be callable"):
        custom_root(3.0)
    with pytest.raises(TypeError, match="`solve` must be None, a LinearSolve"):
        custom_root(ridge_grad, solve=42)
    with pytest.raises(TypeError, match="`solver` must be callable"):
        custom_root(ridge_grad)("not a function")


def _ridge_by_gradient_steps(num_steps):
    """Ridge regression solved by a fixed number of gradient steps: unconverged when few."""
    X = jnp.asarray(RNG.normal(size=(30, 5)))
    y = jnp.asarray(RNG.normal(size=30))
    F = lambda w, lam: X.T @ (X @ w - y) / 30 + lam * w
    step = 1.0 / float(jnp.linalg.eigvalsh(X.T @ X / 30)[-1] + 1.0)

    def solver(init, lam):
        return jax.lax.fori_loop(0, num_steps, lambda _, w: w - step * F(w, lam), init)

    exact = lambda lam: jnp.linalg.solve(X.T @ X / 30 + lam * jnp.eye(5), X.T @ y / 30)
    return F, solver, exact


def test_unconverged_forward_solve_gives_an_error_not_a_wrong_derivative():
    F, solver, exact = _ridge_by_gradient_steps(2)
    loss = lambda s: lambda lam: jnp.sum(custom_root(F, solve=s)(solver)(jnp.zeros(5), lam))
    true = jax.grad(lambda lam: jnp.sum(exact(lam)))(0.5)
    # The derivative rule at an unconverged point differs from the true derivative ...
    loose = jax.grad(loss(None))  # default: raises
    with pytest.raises(RUNTIME_ERRORS, match="not a root of the optimality condition"):
        jax.block_until_ready(loose(0.5))
    with pytest.raises(RUNTIME_ERRORS, match="not a root of the optimality condition"):
        jax.block_until_ready(jax.jit(loose)(0.5))
    # ... with throw=False the derivative is NaN, never a silently wrong number.
    quiet = jax.grad(loss(LinearSolve(throw=False)))(0.5)
    assert bool(jnp.isnan(quiet)) and bool(jnp.isfinite(true))
    # Converged, the same rule gives the exact derivative.
    F, solver, exact = _ridge_by_gradient_steps(2000)
    g = jax.grad(lambda lam: jnp.sum(custom_root(F)(solver)(jnp.zeros(5), lam)))(0.5)
    np.testing.assert_allclose(g, jax.grad(lambda lam: jnp.sum(exact(lam)))(0.5), rtol=1e-8)


def test_root_tol_is_checked_and_loosens_the_check():
    F, solver, _ = _ridge_by_gradient_steps(60)
    with pytest.raises(ValueError, match="`root_tol` must be a finite number"):
        custom_root(F, root_tol=-1.0)
    g = jax.grad(lambda lam: jnp.sum(custom_root(F, root_tol=1.0)(solver)(jnp.zeros(5), lam)))
    assert bool(jnp.isfinite(g(0.5)))


def test_linear_solve_reports_lineax_codes():
    singular = jnp.asarray([[1.0, 2.0], [2.0, 4.0]])
    _, stats = LinearSolve("lu", throw=False)(lambda u: singular @ u, jnp.asarray([1.0, 0.0]))
    assert stats["result"] != RESULTS.successful and not bool(stats["success"])
    _, stats = LinearSolve("lu", throw=False)(lambda u: 2.0 * u, jnp.asarray([1.0, 0.0]))
    assert stats["result"] == RESULTS.successful and bool(stats["success"])
    wrong = lambda matvec, b: (b, {"result": RESULTS.max_steps_reached})
    _, stats = LinearSolve(wrong, throw=False)(lambda u: 2.0 * u, jnp.asarray([1.0, 0.0]))
    assert stats["result"] == RESULTS.max_steps_reached
