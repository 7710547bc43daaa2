"""OSQP (``Ax = b``, ``Gx ≤ h``) against the exact active-set enumeration, a dense KKT solve,
jaxopt 0.8.5's OSQP, float64 finite differences, and its own dense form (matrix-free blocks)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest

from jaxopt_papers import RESULTS
from jaxopt_papers.qp import OSQP, KKTSolution
from tests.qp._problems import enumerate_kkt, osqp_to_box, solve_active_set

SOLVER = OSQP(tol=1e-11, max_steps=3000)


def problem(seed=0, n=5, p=2, q=4):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    Q = M @ M.T + 0.5 * np.eye(n)
    c = 2.0 * rng.normal(size=n)
    A, b = rng.normal(size=(p, n)), rng.normal(size=p)
    G, h = rng.normal(size=(q, n)), rng.uniform(0.1, 0.5, size=q)
    return Q, c, A, b, G, h


def _jnp(*arrays):
    return tuple(jnp.asarray(a) for a in arrays)


def test_solution_and_multipliers_match_enumeration_and_jaxopt():
    Q, c, A, b, G, h = problem(0)
    x_ref, y_ref, _ = enumerate_kkt(Q, c, *osqp_to_box(A, b, G, h))
    Qj, cj, Aj, bj, Gj, hj = _jnp(Q, c, A, b, G, h)
    sol = SOLVER.run(None, (Qj, cj), (Aj, bj), (Gj, hj))
    assert sol.result == RESULTS.successful
    x, nu, lam = sol.params
    np.testing.assert_allclose(x, x_ref, atol=1e-9)
    np.testing.assert_allclose(nu, y_ref[:2], atol=1e-9)
    np.testing.assert_allclose(lam, y_ref[2:], atol=1e-9)
    theirs = jaxopt.OSQP(tol=1e-11, maxiter=3000).run(None, (Qj, cj), (Aj, bj), (Gj, hj)).params
    for a, t in zip(sol.params, theirs, strict=True):
        np.testing.assert_allclose(a, t, atol=1e-9)


def test_equality_only_matches_a_dense_kkt_solve():
    Q, c, A, b, _, _ = problem(2)
    K = np.block([[Q, A.T], [A, np.zeros((2, 2))]])
    ref = np.linalg.solve(K, np.concatenate([-c, b]))
    sol = SOLVER.run(None, (jnp.asarray(Q), jnp.asarray(c)), (jnp.asarray(A), jnp.asarray(b)))
    assert sol.params.dual_ineq is None
    np.testing.assert_allclose(sol.params.primal, ref[:5], atol=1e-9)
    np.testing.assert_allclose(sol.params.dual_eq, ref[5:], atol=1e-9)


def test_gradients_match_finite_differences_of_the_exact_solution():
    Q, c, A, b, G, h = problem(0)
    _, y_ref, states = enumerate_kkt(Q, c, *osqp_to_box(A, b, G, h))
    active = np.asarray(states) > 0
    assert np.all(np.abs(y_ref[active][2:]) > 1e-2)  # strict complementarity (inequalities)
    rng = np.random.default_rng(4)
    w, v, t = rng.normal(size=5), rng.normal(size=2), rng.normal(size=4)

    def loss(*args):
        Q, c, A, b, G, h = args
        x, nu, lam = SOLVER.run(None, (Q, c), (A, b), (G, h)).params
        return w @ x + v @ nu + t @ lam

    def loss_ref(*args):
        Q, c, A, b, G, h = args
        x, y = solve_active_set(Q, c, *osqp_to_box(A, b, G, h), states)
        return w @ x + v @ y[:2] + t @ y[2:]

    params = [np.asarray(p, np.float64) for p in (Q, c, A, b, G, h)]
    grads = jax.grad(loss, argnums=tuple(range(6)))(*_jnp(*params))
    step = 1e-6
    for k, name in enumerate(["Q", "c", "A", "b", "G", "h"]):
        fd = np.zeros_like(params[k])
        for idx in np.ndindex(fd.shape):
            plus = [p.copy() for p in params]
            minus = [p.copy() for p in params]
            plus[k][idx] += step
            minus[k][idx] -= step
            fd[idx] = (loss_ref(*plus) - loss_ref(*minus)) / (2 * step)
        scale = np.max(np.abs(fd))
        np.testing.assert_allclose(grads[k], fd, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


def test_matrix_free_blocks_equal_the_dense_form_and_warm_start():
    Q, c, A, b, G, h = _jnp(*problem(1))

    def mv(M, x):
        return M @ x

    solver = OSQP(matvec_Q=mv, matvec_A=mv, matvec_G=mv, tol=1e-11, max_steps=3000)
    sol = solver.run(None, (Q, c), (A, b), (G, h))
    dense = SOLVER.run(None, (Q, c), (A, b), (G, h))
    assert sol.result == RESULTS.successful
    for a, d in zip(sol.params, dense.params, strict=True):
        np.testing.assert_allclose(a, d, atol=1e-9)
    again = SOLVER.run(dense.params, (Q, c), (A, b), (G, h))
    assert isinstance(again.params, KKTSolution)
    assert int(again.stats["num_steps"]) <= int(dense.stats["num_steps"]) // 5
    np.testing.assert_allclose(again.params.primal, dense.params.primal, atol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({}, ValueError, r"at least one of `params_eq = \(A, b\)` and `params_ineq"),
        ({"params_eq": (np.ones((2, 4)), np.ones(2))}, ValueError,
         r"matrix of `params_eq` must have shape \(2, 5\).*got \(2, 4\)"),
        ({"params_ineq": (np.ones((3, 5)), np.ones((3, 1)))}, ValueError,
         r"right-hand side of `params_ineq` must be a 1-D array"),
        ({"params_eq": np.ones((2, 5))}, TypeError, r"`params_eq` must be None or a pair \(A, b\)"),
        ({"params_eq": (np.ones((2, 5)), np.ones(2)), "init_params": (1, 2)}, TypeError,
         r"`init_params` must be None or a KKTSolution"),
    ],
    ids=["no-constraints", "A-columns", "h-2d", "eq-not-a-pair", "init-not-kkt"],
)  # fmt: skip
def test_bad_input_names_the_argument(kwargs, exc, match):
    Q, c = jnp.eye(5), jnp.ones(5)
    kwargs = {k: jax.tree.map(jnp.asarray, v) for k, v in kwargs.items()}
    with pytest.raises(exc, match=match):
        SOLVER.run(params_obj=(Q, c), **kwargs)
