"""Bad input to the proximal operators, projections and ProximalGradient: no silent answers.

The reliability suite (``tests/reliability/test_proximal.py``) checks each error and result
code eagerly and under ``jit``; these tests check what that table cannot: batched codes,
derivatives, and that the answers given for valid but degenerate input are the right ones.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import RESULTS
from jaxopt_papers import proximal as P

RNG = np.random.default_rng(0)
A = jnp.asarray(RNG.standard_normal((8, 4)))
B = jnp.asarray(RNG.standard_normal(8))


def fun(x, A, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2)


def test_negative_l1reg_gives_a_code_per_problem_under_vmap():
    solver = P.ProximalGradient(fun, P.prox_lasso, throw=False)
    lams = jnp.array([0.5, -0.5, jnp.nan, 0.0])
    sols = jax.vmap(lambda lam: solver.run(jnp.zeros(4), lam, A, B))(lams)
    want = [RESULTS.successful, RESULTS.invalid_input, RESULTS.invalid_input, RESULTS.successful]
    got = np.asarray(sols.result._value)
    np.testing.assert_array_equal(got, [int(np.asarray(c._value)) for c in want])
    # the valid problems are solved: the lasso optimality condition holds
    for i in (0, 3):
        x = np.asarray(sols.value[i])
        g = np.asarray(A.T @ (A @ x - B))
        lam = float(lams[i])
        on = np.abs(x) > 1e-8
        np.testing.assert_allclose(g[on], -lam * np.sign(x[on]), atol=1e-5)
        assert np.all(np.abs(g[~on]) <= lam + 1e-5)


def test_traced_negative_weight_in_a_bare_prox_raises_at_run_time():
    f = jax.jit(jax.vmap(P.prox_lasso, in_axes=(None, 0)))
    x = jnp.array([1.0, -2.0])
    np.testing.assert_allclose(f(x, jnp.array([0.5, 1.0])), [[0.5, -1.5], [0.0, -1.0]])
    errors = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError, ValueError)
    with pytest.raises(errors, match="prox_lasso: `l1reg` must be >= 0"):
        jax.block_until_ready(f(x, jnp.array([0.5, -1.0])))


def test_concrete_array_weight_in_run_is_rejected_before_compiling():
    solver = P.ProximalGradient(fun, P.prox_lasso)
    with pytest.raises(ValueError, match=r"`l1reg` must be >= 0.*-0\.25"):
        solver.run(jnp.zeros(4), np.array([0.1, -0.25, 0.1, 0.1]), A, B)


def test_schedule_turning_negative_stops_at_that_step():
    solver = P.ProximalGradient(fun, P.prox_lasso, stepsize=lambda k: 0.01 - 0.02 * k, throw=False)
    sol = solver.run(jnp.zeros(4), 0.1, A, B)
    assert sol.result == RESULTS.invalid_input
    assert int(sol.num_steps) == 2  # step 0 uses 0.01, step 1 would use -0.01
    assert float(sol.state.stepsize) == pytest.approx(-0.01)
    assert np.isnan(float(sol.error))


def test_gradients_wrt_the_weight_are_unchanged_by_the_checks():
    # d x*/d lam for a lasso whose support is known: x*_S = (A_Sᵀ A_S)⁻¹ (A_Sᵀ b − lam s_S)
    solver = P.ProximalGradient(fun, P.prox_lasso, tol=1e-10, max_steps=5000)
    lam = 0.3
    x = np.asarray(solver.run(jnp.zeros(4), lam, A, B).value)
    on = np.abs(x) > 1e-8
    As = np.asarray(A)[:, on]
    want = np.zeros(4)
    want[on] = -np.linalg.solve(As.T @ As, np.sign(x[on]))
    got = jax.jacobian(lambda t: solver.run(jnp.zeros(4), t, A, B).value)(lam)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_affine_set_with_rank_deficient_A_is_projected_exactly():
    # rows 2 and 3 repeat row 1 (scaled): the set {Ap = b} is the plane {a·p = 1}
    a = np.array([1.0, -2.0, 0.5, 3.0])
    A2 = jnp.asarray(np.stack([a, 2 * a, -a]))
    b2 = jnp.array([1.0, 2.0, -1.0])
    x = jnp.asarray(RNG.standard_normal(4))
    p = P.projection_affine_set(x, (A2, b2))
    want = np.asarray(x) - (a @ np.asarray(x) - 1.0) / (a @ a) * a
    np.testing.assert_allclose(p, want, rtol=1e-10)
    jac = jax.jacobian(lambda u: P.projection_affine_set(u, (A2, b2)))(x)
    np.testing.assert_allclose(jac, np.eye(4) - np.outer(a, a) / (a @ a), atol=1e-10)


def test_projected_gradient_on_a_rank_deficient_affine_set():
    a = np.array([1.0, 1.0, 0.0, 0.0])
    A2 = jnp.asarray(np.stack([a, 3 * a]))
    b2 = jnp.array([2.0, 6.0])
    solver = P.ProjectedGradient(fun, P.projection_affine_set, tol=1e-10, max_steps=5000)
    sol = solver.run(jnp.zeros(4), (A2, b2), A, B)
    assert sol.result == RESULTS.successful
    # oracle: KKT of min ½‖Ax − b‖² s.t. aᵀx = 2
    An, bn = np.asarray(A), np.asarray(B)
    kkt = np.block([[An.T @ An, a[:, None]], [a[None], np.zeros((1, 1))]])
    want = np.linalg.solve(kkt, np.concatenate([An.T @ bn, [2.0]]))[:4]
    np.testing.assert_allclose(sol.value, want, rtol=1e-7, atol=1e-9)


def test_traced_empty_sets_are_nan_free_and_flagged_inside_projected_gradient():
    x = jnp.array([3.0, -1.0])
    out = jax.jit(P.projection_hyperplane)(x, (jnp.zeros(2), 1.0))
    np.testing.assert_array_equal(out, x)
    grad = jax.grad(lambda a: jnp.sum(P.projection_halfspace(x, (a, 0.0))))(jnp.zeros(2))
    assert np.all(np.isfinite(grad))
    solver = P.ProjectedGradient(fun, P.projection_hyperplane, throw=False)
    run = jax.jit(lambda a: solver.run(jnp.zeros(4), (a, 1.0), A, B).result)
    assert run(jnp.zeros(4)) == RESULTS.invalid_input
    assert run(jnp.ones(4)) == RESULTS.successful


def test_per_group_weights_through_vmap_are_checked_by_the_solver():
    # a prox that vmaps the group lasso over the rows of x, one weight per group
    def prox(x, weights, scaling):
        return jax.vmap(P.prox_group_lasso, in_axes=(0, 0, None))(x, weights, scaling)

    A2 = jnp.asarray(RNG.standard_normal((8, 6)))

    def fun2(x, A, b):
        return 0.5 * jnp.sum((A @ x.reshape(-1) - b) ** 2)

    solver = P.ProximalGradient(fun2, prox, throw=False)
    x0 = jnp.zeros((3, 2))
    run = jax.jit(lambda w: solver.run(x0, w, A2, B))
    good = run(jnp.array([0.1, 0.2, 50.0]))
    assert good.result == RESULTS.successful
    np.testing.assert_array_equal(good.value[2], [0.0, 0.0])  # a large weight zeroes its group
    assert run(jnp.array([0.1, -0.2, 0.3])).result == RESULTS.invalid_input
