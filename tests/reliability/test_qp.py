"""Bad input to BoxOSQP, in the format of the reliability suite (tests/reliability/_cases.py):
each case is run eagerly and under ``jax.jit`` and must raise an error naming the argument, or
return the exact result code."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.qp import BoxOSQP, KKTSolution
from tests.reliability._cases import Case, Code, Raises, params, run_case, runtime

INF = jnp.inf
Q, C = jnp.eye(2), jnp.array([1.0, -1.0])
A = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
L, U = jnp.array([-1.0, -1.0, -INF]), jnp.array([1.0, 1.0, 1.5])


def run(solver=None, Q=Q, c=C, A=A, lower=L, upper=U, init=None):
    solver = BoxOSQP(throw=False) if solver is None else solver
    return solver.run(init, (Q, c), A, (lower, upper))


# The value cases share two functions (quiet and loud), so that they compile once each: the
# tolerance is an argument (a traced leaf of the solver), and `max_steps` is small enough that
# `tol=1e-14` cannot be met but `tol=1e-3` is.
MAX_STEPS = 60
TIGHT, LOOSE = jnp.asarray(1e-14), jnp.asarray(1e-3)


def solve(c, lower, upper, tol):
    return run(BoxOSQP(max_steps=MAX_STEPS, tol=tol, throw=False), c=c, lower=lower, upper=upper)


def solve_loud(c, lower, upper, tol):
    return run(BoxOSQP(max_steps=MAX_STEPS, tol=tol), c=c, lower=lower, upper=upper).params


INFEASIBLE_L, INFEASIBLE_U = jnp.array([1.0, -1.0, -INF]), jnp.array([2.0, 1.0, -0.5])


def settings(**kw):
    return lambda c: run(BoxOSQP(**kw), c=c)


BAD_SHAPE = [
    Case("Q_shape", lambda Q: run(Q=Q), (jnp.eye(3),),
         Raises(ValueError, r"`params_obj\[0\]` \(Q\) must have shape \(n, n\) = \(2, 2\)")),
    Case("c_2d", lambda c: run(c=c), (jnp.ones((2, 1)),),
         Raises(ValueError, r"`c` must be a 1-D array \(n,\), got shape \(2, 1\)")),
    Case("A_columns", lambda A: run(A=A), (jnp.ones((3, 4)),),
         Raises(ValueError, r"`params_eq` \(A\) must be a matrix of shape \(m, n\) with n = 2")),
    Case("A_1d", lambda A: run(A=A), (jnp.ones(2),),
         Raises(ValueError, r"`params_eq` \(A\) must be a matrix")),
    Case("l_shape", lambda lo: run(lower=lo), (jnp.zeros(2),),
         Raises(ValueError, r"bound `l` must have the structure and shapes of Ax \(\(3,\)\)")),
    Case("u_shape", lambda hi: run(upper=hi), (jnp.zeros((3, 1)),),
         Raises(ValueError, r"bound `u` must have the structure and shapes of Ax")),
    Case("c_integer", lambda c: run(c=c), (jnp.array([1, 2]),),
         Raises(TypeError, r"`params_obj\[1\] \(c\)` must have floating-point leaves")),
    Case("ineq_not_pair", lambda lo: BoxOSQP().run(None, (Q, C), A, lo), (L,),
         Raises(TypeError, r"`params_ineq` must be a pair \(l, u\)")),
    Case("obj_not_pair", lambda c: BoxOSQP().run(None, c, A, (L, U)), (C,),
         Raises(TypeError, r"`params_obj` must be a pair \(Q, c\)")),
    Case("eq_missing", lambda c: BoxOSQP().run(None, (Q, c), None, (L, U)), (C,),
         Raises(TypeError, r"`params_eq` is required")),
    Case("init_shape", lambda x: run(init=KKTSolution((x, U), U, (U, U))), (jnp.zeros(3),),
         Raises(ValueError, r"`init_params` must have x of shapes \(2,\)")),
    Case("init_type", lambda x: run(init=(x, U)), (jnp.zeros(2),),
         Raises(TypeError, r"`init_params` must be None or a KKTSolution")),
]  # fmt: skip

BAD_SETTING = [
    Case("momentum_2", settings(momentum=2.0), (C,), Raises(ValueError, r"`momentum`")),
    Case("sigma_0", settings(sigma=0.0), (C,), Raises(ValueError, r"`sigma`")),
    Case("rho_start_negative", settings(rho_start=-1.0), (C,), Raises(ValueError, r"`rho_start`")),
    Case("tol_negative", settings(tol=-1.0), (C,), Raises(ValueError, r"`tol`")),
    Case("max_steps_0", settings(max_steps=0), (C,), Raises(ValueError, r"`max_steps`")),
    Case("eq_qp_solve_unknown", settings(eq_qp_solve="qr"), (C,),
         Raises(ValueError, r"`eq_qp_solve` must be one of")),
    Case("cholesky_with_matvec", settings(eq_qp_solve="cholesky", matvec_Q=lambda P, x: P @ x),
         (C,), Raises(ValueError, r"`eq_qp_solve='cholesky'` needs dense matrices")),
    Case("matvec_not_callable", settings(matvec_A="A"), (C,),
         Raises(TypeError, r"`matvec_A` must be None or a callable")),
    Case("infeasibility_auto", settings(check_primal_dual_infeasability="auto"), (C,),
         Raises(TypeError, r"`check_primal_dual_infeasability` must be a bool")),
]  # fmt: skip

BAD_VALUE = [
    Case("l_above_u", solve, (C, L.at[0].set(2.0), U, LOOSE), Code("invalid_input")),
    Case("nan_bound", solve, (C, L, U.at[1].set(jnp.nan), LOOSE), Code("invalid_input")),
    Case("nan_c", solve, (C.at[0].set(jnp.nan), L, U, LOOSE), Code("nonfinite")),
    Case("inf_c", solve, (C.at[1].set(INF), L, U, LOOSE), Code("nonfinite")),
    Case("primal_infeasible", solve, (C, INFEASIBLE_L, INFEASIBLE_U, LOOSE),
         Code("primal_infeasible")),
    Case("max_steps", solve, (C, L, U, TIGHT), Code("max_steps_reached")),
    Case("max_steps_throw", solve_loud, (C, L, U, TIGHT),
         runtime(r"did not reach `tol` within `max_steps` ADMM iterations")),
    Case("l_above_u_throw", solve_loud, (C, L.at[0].set(2.0), U, LOOSE),
         runtime(r"`params_ineq = \(l, u\)` must satisfy `l <= u`")),
    Case("primal_infeasible_throw", solve_loud, (C, INFEASIBLE_L, INFEASIBLE_U, LOOSE),
         runtime(r"primal infeasible: no x satisfies the constraints")),
    Case("nan_c_throw", solve_loud, (C.at[0].set(jnp.nan), L, U, LOOSE),
         runtime(r"non-finite values.*positive semidefinite")),
]  # fmt: skip

CASES = BAD_SHAPE + BAD_SETTING + BAD_VALUE


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_case(case, mode):
    run_case(case, mode)


def test_a_feasible_problem_from_the_same_functions_succeeds():
    # The value cases above share `solve` with this well-posed problem: the codes come from
    # the bad values, not from the set-up.
    sol = solve(C, L, U, LOOSE)
    assert int(sol.result._value) == 0
    np.testing.assert_allclose(sol.params.primal[0], [-1.0, 1.0], atol=1e-2)
