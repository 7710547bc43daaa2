"""BoxOSQP against independent oracles: an exact active-set enumeration (NumPy), scipy's HiGHS
(``linprog``) on an LP, jaxopt 0.8.5's BoxOSQP (its iterates, replayed step by step); implicit
gradients against float64 central finite differences of the exact enumeration; infeasibility
codes; ``vmap`` over the constraint matrix; matrix-free pytree problems; warm starts. (Forward
mode, jit, float32 and the unrolled mode are checked by the shared solver invariant suite.)"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest
import scipy.optimize

from jaxopt_papers import RESULTS
from jaxopt_papers.qp import BoxOSQP, KKTSolution
from tests.qp._problems import box_qp, enumerate_kkt, solve_active_set

SOLVER = BoxOSQP(tol=1e-11, max_steps=3000)


def _args(Q, c, A, lower, upper):
    Q, c, A, lower, upper = (jnp.asarray(v) for v in (Q, c, A, lower, upper))
    return (Q, c), A, (lower, upper)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solution_matches_active_set_enumeration(seed):
    problem = box_qp(seed)
    x_ref, y_ref, _ = enumerate_kkt(*problem)
    sol = SOLVER.run(None, *_args(*problem))
    assert sol.result == RESULTS.successful
    (x, z), y = sol.params.primal, sol.params.dual_eq
    mu, phi = sol.params.dual_ineq
    np.testing.assert_allclose(x, x_ref, atol=1e-9)
    np.testing.assert_allclose(y, y_ref, atol=1e-9)
    np.testing.assert_allclose(z, problem[2] @ x_ref, atol=1e-9)
    np.testing.assert_allclose(mu, np.maximum(y_ref, 0), atol=1e-9)
    np.testing.assert_allclose(phi, np.maximum(-y_ref, 0), atol=1e-9)
    assert float(sol.stats["primal_residual"]) <= 1e-11
    assert float(sol.stats["dual_residual"]) <= 1e-11


def _pytree_matvecs():
    # x = {"a": (2,), "b": (3,)}; Q and A act on the concatenation.
    def flat(x):
        return jnp.concatenate([x["a"], x["b"]])

    def matvec_Q(Q, x):
        v = Q @ flat(x)
        return {"a": v[:2], "b": v[2:]}

    def matvec_A(A, x):
        return A @ flat(x)

    return matvec_Q, matvec_A


@pytest.mark.parametrize("mode", ["lu", "cg+jacobi", "matvec-pytree-cg"])
def test_every_linear_system_solver_reaches_the_same_solution(mode):
    Q, c, A, lower, upper = box_qp(0)
    x_ref, y_ref, _ = enumerate_kkt(Q, c, A, lower, upper)
    if mode == "matvec-pytree-cg":
        matvec_Q, matvec_A = _pytree_matvecs()
        solver = BoxOSQP(matvec_Q=matvec_Q, matvec_A=matvec_A, tol=1e-11, max_steps=3000)
        c_tree = {"a": jnp.asarray(c[:2]), "b": jnp.asarray(c[2:])}
        sol = solver.run(None, (jnp.asarray(Q), c_tree), jnp.asarray(A),
                         (jnp.asarray(lower), jnp.asarray(upper)))  # fmt: skip
        x = jnp.concatenate([sol.params.primal[0]["a"], sol.params.primal[0]["b"]])
    else:
        solver = BoxOSQP(eq_qp_solve=mode, tol=1e-11, max_steps=3000)
        sol = solver.run(None, *_args(Q, c, A, lower, upper))
        x = sol.params.primal[0]
    assert sol.result == RESULTS.successful
    np.testing.assert_allclose(x, x_ref, atol=1e-9)
    np.testing.assert_allclose(sol.params.dual_eq, y_ref, atol=1e-9)


def test_lp_matches_scipy_highs():
    # max-return portfolio-like LP with the shapes of box_qp: 0 ≤ x ≤ 1, Σx ≤ 2.5.
    rng = np.random.default_rng(3)
    c = rng.normal(size=5)
    A = np.concatenate([np.eye(5), np.ones((1, 5))])
    lower = np.concatenate([np.zeros(5), [-np.inf]])
    upper = np.concatenate([np.ones(5), [2.5]])
    ref = scipy.optimize.linprog(c, A_ub=np.ones((1, 5)), b_ub=[2.5], bounds=[(0, 1)] * 5,
                                 method="highs")  # fmt: skip
    assert ref.status == 0
    sol = SOLVER.run(None, *_args(np.zeros((5, 5)), c, A, lower, upper))
    assert sol.result == RESULTS.successful
    np.testing.assert_allclose(sol.params.primal[0], ref.x, atol=1e-8)
    np.testing.assert_allclose(c @ np.asarray(sol.params.primal[0]), ref.fun, atol=1e-8)
    # HiGHS' multiplier of the budget row (≤ 0 in its sign convention) is −y.
    np.testing.assert_allclose(sol.params.dual_eq[5], -ref.ineqlin.marginals[0], atol=1e-8)


def test_iterates_replay_jaxopt_boxosqp_step_by_step():
    # jaxopt's BoxOSQP with its LU solver performs the same ADMM steps (x̄ system, relaxation,
    # projection, ρ updates every 10 steps): after each of 40 steps the iterates agree.
    args = _args(*box_qp(1))
    ours = BoxOSQP(eq_qp_solve="lu", tol=0.0, check_primal_dual_infeasability=False)
    theirs = jaxopt.BoxOSQP(eq_qp_solve="lu", tol=0.0, jit=True)
    p_ours = ours.init_params(None, *args)
    s_ours = ours.init(p_ours, *args)
    p_theirs = theirs.init_params(None, *args)
    s_theirs = theirs.init_state(p_theirs, *args)
    step_ours = jax.jit(lambda p, s: ours.step(p, s, *args))
    step_theirs = jax.jit(lambda p, s: theirs.update(p, s, *args))
    for _ in range(40):
        p_ours, s_ours = step_ours(p_ours, s_ours)
        p_theirs, s_theirs = step_theirs(p_theirs, s_theirs)
        for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_theirs), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(s_ours.rho, s_theirs.rho_bar, rtol=1e-9)


def _loss_weights(seed=7):
    rng = np.random.default_rng(seed)
    return rng.normal(size=5), rng.normal(size=6), rng.normal(size=6)


def test_gradients_match_finite_differences_of_the_exact_solution():
    # Strict complementarity at this problem: every active row has |y| > 1e-2, every inactive
    # row a slack > 1e-2, so the active set is constant over the finite-difference steps.
    problem = [np.asarray(v, np.float64) for v in box_qp(0)]
    x_ref, y_ref, states = enumerate_kkt(*problem)
    slack = np.minimum(problem[2] @ x_ref - problem[3], problem[4] - problem[2] @ x_ref)
    active = np.asarray(states) > 0
    assert np.all(np.abs(y_ref[active]) > 1e-2) and np.all(slack[~active] > 1e-2)
    w, v, t = _loss_weights()

    def loss(Q, c, A, lower, upper):
        sol = SOLVER.run(None, (Q, c), A, (lower, upper))
        return w @ sol.params.primal[0] + v @ sol.params.dual_eq + t @ sol.params.dual_ineq[0]

    def loss_ref(*p):
        x, y = solve_active_set(*p, states)
        return w @ x + v @ y + t @ np.maximum(y, 0)

    grads = jax.grad(loss, argnums=(0, 1, 2, 3, 4))(*(jnp.asarray(p) for p in problem))
    h = 1e-6
    for k, name in enumerate(["Q", "c", "A", "l", "u"]):
        fd = np.zeros_like(problem[k])
        for idx in np.ndindex(fd.shape):
            if not np.isfinite(problem[k][idx]):
                continue  # an infinite bound: no derivative
            plus = [p.copy() for p in problem]
            minus = [p.copy() for p in problem]
            plus[k][idx] += h
            minus[k][idx] -= h
            if k >= 3 and problem[3][idx] == problem[4][idx]:  # an equality row: move l and u
                plus[7 - k][idx] += h
                minus[7 - k][idx] -= h
            fd[idx] = (loss_ref(*plus) - loss_ref(*minus)) / (2 * h)
        g = np.asarray(grads[k])
        if k >= 3:  # the derivative along l = u moving together is the sum of both parts
            eq = problem[3] == problem[4]
            g = np.where(eq, np.asarray(grads[3]) + np.asarray(grads[4]), g)
        scale = np.max(np.abs(fd))
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


# Two 2-variable problems with three rows: one primal infeasible (x₀ ≥ 1 and x₀ ≤ −1), one dual
# infeasible (an LP with c₀ < 0 and x₀ unconstrained: unbounded along +x₀).
INF = np.inf
PRIMAL_INFEASIBLE = (np.eye(2), np.ones(2), np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
                     np.array([1.0, -INF, -1.0]), np.array([INF, -1.0, 1.0]))  # fmt: skip
DUAL_INFEASIBLE = (np.zeros((2, 2)), np.array([-1.0, 0.0]), np.array([[0.0, 1.0]] * 3),
                   np.array([0.0, -INF, -INF]), np.array([1.0, INF, INF]))  # fmt: skip
QUIET = BoxOSQP(throw=False)


@pytest.mark.parametrize(
    ("problem", "code", "message"),
    [(PRIMAL_INFEASIBLE, "primal_infeasible", "primal infeasible: no x satisfies"),
     (DUAL_INFEASIBLE, "dual_infeasible", "unbounded below")],
    ids=["primal", "dual"],
)  # fmt: skip
def test_infeasible_problems_report_their_code_and_raise_with_throw(problem, code, message):
    sol = QUIET.run(None, *_args(*problem))
    assert sol.result == getattr(RESULTS, code)
    assert int(sol.stats["num_steps"]) < QUIET.max_steps  # detected, not run to the cap
    with pytest.raises(eqx.EquinoxRuntimeError, match=message):
        BoxOSQP().run(None, *_args(*problem))


def test_vmap_over_constraint_matrices_equals_a_loop():
    problems = [box_qp(s) for s in range(3)]
    Q, c, _, lower, upper = (jnp.asarray(v) for v in problems[0])
    As = jnp.stack([jnp.asarray(p[2]) for p in problems])
    quiet = BoxOSQP(tol=1e-11, max_steps=3000, throw=False)
    batched = jax.vmap(lambda A: quiet.run(None, (Q, c), A, (lower, upper)))(As)
    assert bool(jnp.all(batched.result == RESULTS.successful))
    for i in range(3):
        x_ref, _, _ = enumerate_kkt(Q, c, As[i], lower, upper)
        np.testing.assert_allclose(batched.params.primal[0][i], x_ref, atol=1e-9)


def test_warm_start_from_a_solution_stops_at_the_first_check():
    args = _args(*box_qp(0))
    sol = SOLVER.run(None, *args)
    again = SOLVER.run(sol.params, *args)
    assert int(again.stats["num_steps"]) == 1
    assert isinstance(again.params, KKTSolution)
    np.testing.assert_allclose(again.params.primal[0], sol.params.primal[0], atol=1e-11)
