"""Bad input to the proximal operators, projections and proximal-gradient solvers."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import proximal as P
from tests.reliability._cases import Case, Code, Finite, Raises, params, run_case, runtime

NEG = r"must be >= 0"
X = jnp.array([1.5, -0.5, 0.2])
A = jnp.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0], [1.0, 1.0, 1.0]])
B = jnp.array([1.0, -1.0, 0.5, 0.3])
X0 = jnp.zeros(3)


def fun(x, A, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2)


def pg(prox=P.prox_lasso, **kw):
    return P.ProximalGradient(fun, prox, **{"throw": False, **kw})


def run(solver, hp, x0=X0, A=A, b=B):
    return solver.run(x0, hp, A, b)


def _np(x):
    return np.asarray(x, dtype=np.float64)


def run_lasso(lam):
    return run(pg(), lam)


def run_stepsize(s):
    return run(pg(stepsize=s), 0.1)


RANK_DEFICIENT = jnp.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])


def _nearest_on_plane(x, a, b):
    x, a = _np(x), _np(a)
    return x - (a @ x - b) / (a @ a) * a


PROX_CASES = [
    # negative or NaN regularisation: static when concrete, a runtime error when traced
    Case(
        "lasso_negative",
        P.prox_lasso,
        (X, -1.0),
        Raises(ValueError, r"`l1reg` " + NEG),
        runtime(r"prox_lasso: `l1reg` " + NEG),
    ),
    Case(
        "lasso_nan",
        P.prox_lasso,
        (X, jnp.nan),
        Raises(ValueError, r"`l1reg` " + NEG),
        runtime(r"`l1reg` " + NEG),
    ),
    Case(
        "lasso_coordinatewise_negative",
        P.prox_lasso,
        (X, jnp.array([1.0, -0.1, 1.0])),
        Raises(ValueError, r"`l1reg` " + NEG + r".*-0\.1"),
        runtime(r"`l1reg` " + NEG),
    ),
    Case(
        "lasso_pytree_negative",
        P.prox_lasso,
        ({"w": X}, {"w": -1.0}),
        Raises(ValueError, r"`l1reg` " + NEG),
        runtime(r"`l1reg` " + NEG),
    ),
    Case(
        "non_negative_lasso_negative",
        P.prox_non_negative_lasso,
        (X, -0.5),
        Raises(ValueError, r"prox_non_negative_lasso: `l1reg` " + NEG),
        runtime(r"`l1reg`"),
    ),
    Case(
        "elastic_net_negative_l1",
        P.prox_elastic_net,
        (X, (-1.0, 1.0)),
        Raises(ValueError, r"`hyperparams\[0\]` " + NEG),
        runtime(r"`hyperparams\[0\]`"),
    ),
    Case(
        "elastic_net_negative_l2",
        P.prox_elastic_net,
        (X, (1.0, -1.0)),
        Raises(ValueError, r"`hyperparams\[1\]` " + NEG),
        runtime(r"`hyperparams\[1\]`"),
    ),
    Case(
        "group_lasso_negative",
        P.prox_group_lasso,
        (X, -1.0),
        Raises(ValueError, r"prox_group_lasso: `l2reg` " + NEG),
        runtime(r"`l2reg` " + NEG),
    ),
    Case(
        "ridge_negative",
        P.prox_ridge,
        (X, -1.0),
        Raises(ValueError, r"prox_ridge: `l2reg`"),
        runtime(r"prox_ridge: `l2reg` " + NEG),
    ),
    Case(
        "non_negative_ridge_negative",
        P.prox_non_negative_ridge,
        (X, -2.0),
        Raises(ValueError, r"`l2reg` " + NEG),
        runtime(r"`l2reg` " + NEG),
    ),
    Case(
        "lasso_negative_scaling",
        lambda x: P.prox_lasso(x, 1.0, -0.5),
        (X,),
        Raises(ValueError, r"`scaling` " + NEG),
    ),
    # static problems
    Case(
        "lasso_structure_mismatch",
        P.prox_lasso,
        ({"w": X}, {"v": 1.0}),
        Raises(ValueError, r"`l1reg` must be a scalar or a pytree with the structure of `x`"),
    ),
    Case(
        "lasso_shape_mismatch",
        P.prox_lasso,
        (X, jnp.ones(2)),
        Raises(ValueError, r"`l1reg`.*broadcastable to \(3,\)"),
    ),
    Case(
        "elastic_net_not_a_pair",
        lambda x: P.prox_elastic_net(x, 1.0),
        (X,),
        Raises(ValueError, r"`hyperparams` must be a pair"),
    ),
    Case(
        "group_lasso_vector_l2reg",
        P.prox_group_lasso,
        (X, jnp.ones(3)),
        Raises(ValueError, r"`l2reg` must be a scalar"),
    ),
    Case(
        "prox_from_non_callable",
        lambda x: P.make_prox_from_projection(3)(x),
        (X,),
        Raises(TypeError, r"`projection` must be callable"),
    ),
]

BOX_X = jnp.array([-2.0, 0.5, 3.0])
PROJECTION_CASES = [
    # empty sets: static when concrete; traced, the documented NaN-free value
    Case(
        "box_lower_above_upper",
        P.projection_box,
        (BOX_X, (jnp.array([0.0, 2.0, 0.0]), 1.0)),
        Raises(ValueError, r"projection_box: `upper` must be >= `lower`.*lower 2\.0 > upper 1"),
        Finite(lambda: np.minimum(np.maximum(_np(BOX_X), [0.0, 2.0, 0.0]), 1.0)),
    ),
    Case(
        "hypercube_negative",
        P.projection_hypercube,
        (BOX_X, -1.0),
        Raises(ValueError, r"projection_hypercube: `hyperparams` must be >= 0"),
        Finite(lambda: np.full(3, -1.0)),
    ),
    Case(
        "linf_ball_negative",
        P.projection_linf_ball,
        (BOX_X, -1.0),
        Raises(ValueError, r"projection_linf_ball: `max_value` must be >= 0"),
        Finite(lambda: np.full(3, -1.0)),
    ),
    Case(
        "l2_ball_negative",
        P.projection_l2_ball,
        (BOX_X, -1.0),
        Raises(ValueError, r"projection_l2_ball: `max_value` must be >= 0"),
        Finite(lambda: np.zeros(3)),
    ),
    Case(
        "l1_ball_negative",
        P.projection_l1_ball,
        (BOX_X, -1.0),
        Raises(ValueError, r"projection_l1_ball: `max_value` must be >= 0"),
        Finite(lambda: np.zeros(3)),
    ),
    Case(
        "hyperplane_zero_normal",
        P.projection_hyperplane,
        (BOX_X, (jnp.zeros(3), 1.0)),
        Raises(ValueError, r"projection_hyperplane: `a` must be non-zero"),
        Finite(lambda: _np(BOX_X)),
    ),
    Case(
        "halfspace_zero_normal",
        P.projection_halfspace,
        (BOX_X, (jnp.zeros(3), -1.0)),
        Raises(ValueError, r"projection_halfspace: `a` must be non-zero"),
        Finite(lambda: _np(BOX_X)),
    ),
    Case(
        "affine_rank_deficient_empty",
        P.projection_affine_set,
        (BOX_X, (RANK_DEFICIENT, jnp.array([1.0, 3.0]))),
        Raises(ValueError, r"projection_affine_set: `b` must lie in the range of `A`"),
        # the nearest point to x among the least-squares solutions: aᵀp = 7/5
        Finite(lambda: _nearest_on_plane(BOX_X, [1.0, 2.0, 3.0], 7.0 / 5.0)),
    ),
    Case(
        "affine_rank_deficient_consistent",
        P.projection_affine_set,
        (BOX_X, (RANK_DEFICIENT, jnp.array([1.0, 2.0]))),
        Finite(lambda: _nearest_on_plane(BOX_X, [1.0, 2.0, 3.0], 1.0)),
    ),
    # static problems
    Case(
        "box_not_a_pair",
        lambda x: P.projection_box(x, 1.0),
        (BOX_X,),
        Raises(ValueError, r"`hyperparams` must be a pair \(lower, upper\)"),
    ),
    Case(
        "simplex_matrix",
        P.projection_simplex,
        (jnp.ones((2, 3)),),
        Raises(ValueError, r"projection_simplex: `x` must be a 1-D array"),
    ),
    Case(
        "simplex_vector_value",
        P.projection_simplex,
        (BOX_X, jnp.ones(3)),
        Raises(ValueError, r"`value` must be a scalar"),
    ),
    Case(
        "affine_wrong_columns",
        P.projection_affine_set,
        (BOX_X, (jnp.ones((2, 4)), jnp.ones(2))),
        Raises(ValueError, r"`A` must have shape \(m, 3\)"),
    ),
    Case(
        "affine_more_rows",
        P.projection_affine_set,
        (BOX_X, (jnp.ones((4, 3)), jnp.ones(4))),
        Raises(ValueError, r"`A` must have at most as many rows as columns"),
    ),
    Case(
        "affine_wrong_b",
        P.projection_affine_set,
        (BOX_X, (jnp.eye(3)[:2], jnp.ones(3))),
        Raises(ValueError, r"`b` must have shape \(2,\)"),
    ),
    Case(
        "hyperplane_structure",
        P.projection_hyperplane,
        ({"w": BOX_X}, ({"v": BOX_X}, 1.0)),
        Raises(ValueError, r"`a` must be a pytree with the structure of `x`"),
    ),
]

INVALID = r"`hyperparams_prox` must be in the range"
SOLVER_CASES = [
    # out-of-range values: static when concrete, RESULTS.invalid_input when traced
    Case(
        "pg_lasso_negative",
        run_lasso,
        (-0.1,),
        Raises(ValueError, r"`l1reg` " + NEG),
        Code("invalid_input"),
    ),
    Case(
        "pg_lasso_negative_throw",
        lambda lam: run(pg(throw=True), lam).value,
        (-0.1,),
        Raises(ValueError, r"`l1reg` " + NEG),
        runtime(INVALID),
    ),
    Case(
        "pg_lasso_nan",
        run_lasso,
        (jnp.nan,),
        Raises(ValueError, r"`l1reg` " + NEG),
        Code("invalid_input"),
    ),
    Case(
        "pg_elastic_net_negative",
        lambda lam: run(pg(P.prox_elastic_net), (0.1, lam)),
        (-1.0,),
        Raises(ValueError, r"`hyperparams\[1\]` " + NEG),
        Code("invalid_input"),
    ),
    Case(
        "pg_ridge_negative",
        lambda lam: run(pg(P.prox_ridge), lam),
        (-1.0,),
        Raises(ValueError, r"`l2reg` " + NEG),
        Code("invalid_input"),
    ),
    Case(
        "projected_box_empty",
        lambda lo: run(P.ProjectedGradient(fun, P.projection_box, throw=False), (lo, 0.0)),
        (1.0,),
        Raises(ValueError, r"`upper` must be >= `lower`"),
        Code("invalid_input"),
    ),
    Case(
        "projected_l2_ball_negative",
        lambda r: run(P.ProjectedGradient(fun, P.projection_l2_ball, throw=False), r),
        (-1.0,),
        Raises(ValueError, r"`max_value` must be >= 0"),
        Code("invalid_input"),
    ),
    Case(
        "pg_stepsize_negative",
        run_stepsize,
        (-0.1,),
        Raises(ValueError, r"`stepsize` must be > 0"),
        Code("invalid_input"),
    ),
    Case(
        "pg_stepsize_zero",
        run_stepsize,
        (0.0,),
        Raises(ValueError, r"`stepsize` must be > 0"),
        Code("invalid_input"),
    ),
    Case(
        "pg_stepsize_nan",
        run_stepsize,
        (jnp.nan,),
        Raises(ValueError, r"`stepsize`"),
        Code("invalid_input"),
    ),
    Case(
        "pg_stepsize_negative_throw",
        lambda s: run(pg(stepsize=s, throw=True), 0.1).value,
        (-0.1,),
        Raises(ValueError, r"`stepsize` must be > 0"),
        runtime(r"`stepsize`.*> 0"),
    ),
    Case(
        "pg_schedule_turns_negative",
        lambda lam: run(pg(stepsize=lambda k: 0.1 - 0.2 * k), lam),
        (0.1,),
        Code("invalid_input"),
    ),
    Case(
        "pg_schedule_turns_negative_throw",
        lambda lam: run(pg(stepsize=lambda k: 0.1 - 0.2 * k, throw=True), lam).value,
        (0.1,),
        runtime(r"a `stepsize` \(a number, or every value of a schedule\) must be > 0"),
    ),
    Case(
        "pg_schedule_constant_negative",
        lambda lam: run(pg(stepsize=lambda k: -0.1), lam),
        (0.1,),
        Raises(ValueError, r"the `stepsize` schedule must return values > 0, got -0\.1"),
    ),
    Case(
        "pg_decrease_factor",
        lambda d: run(pg(decrease_factor=d), 0.1),
        (1.5,),
        Raises(ValueError, r"`decrease_factor`"),
        Code("invalid_input"),
    ),
    Case(
        "pg_tol_negative",
        lambda t: run(pg(tol=t), 0.1),
        (-1.0,),
        Raises(ValueError, r"`tol`"),
        Code("invalid_input"),
    ),
    # static problems
    Case(
        "pg_init_params_shape",
        lambda x0: run(pg(), 0.1, x0),
        (jnp.zeros(4),),
        Raises(ValueError, r"`fun` could not be evaluated at `init_params` of shapes \(4,\)"),
    ),
    Case(
        "pg_init_params_int",
        lambda x0: run(pg(), 0.1, x0),
        (jnp.zeros(3, jnp.int32),),
        Raises(TypeError, r"`init_params` must have floating-point leaves.*int32"),
    ),
    Case(
        "pg_init_params_empty",
        lambda lam: run(pg(), lam, {}),
        (0.1,),
        Raises(ValueError, r"`init_params` must contain at least one array"),
    ),
    Case(
        "pg_prox_signature",
        lambda lam: run(pg(prox=lambda x: x), lam),
        (0.1,),
        Raises(TypeError, r"`prox` must accept `\(x, hyperparams, scaling\)`.*\(x\)"),
    ),
    Case(
        "pg_prox_wrong_shape",
        lambda lam: run(pg(prox=lambda x, h, s: x[:2]), lam),
        (0.1,),
        Raises(ValueError, r"`prox\(x, hyperparams_prox, scaling\)` must return the structure"),
    ),
    Case(
        "pg_fun_vector",
        lambda lam: P.ProximalGradient(lambda x, A, b: A @ x - b, P.prox_lasso).run(X0, lam, A, B),
        (0.1,),
        Raises(ValueError, r"`fun` must return a scalar, got \(4,\)"),
    ),
    Case(
        "pg_fun_signature",
        lambda lam: P.ProximalGradient(lambda x: jnp.sum(x**2), P.prox_lasso).run(X0, lam, A, B),
        (0.1,),
        Raises(TypeError, r"`fun` must accept `\(init_params, \*args, \*\*kwargs\)`"),
    ),
    Case(
        "pg_fun_not_callable",
        lambda lam: P.ProximalGradient(3.0, P.prox_lasso).run(X0, lam),
        (0.1,),
        Raises(TypeError, r"`fun` must be callable"),
    ),
    Case(
        "pg_maxls_zero", lambda lam: run(pg(maxls=0), lam), (0.1,), Raises(ValueError, r"`maxls`")
    ),
    Case(
        "pg_stepsize_string",
        lambda lam: run(pg(stepsize="0.1"), lam),
        (0.1,),
        Raises(TypeError, r"`stepsize`"),
    ),
    Case(
        "projected_not_callable",
        lambda lam: P.ProjectedGradient(fun, None),
        (0.1,),
        Raises(TypeError, r"`projection` must be callable"),
    ),
    # failures of the run
    Case("pg_max_steps", lambda lam: run(pg(max_steps=2), lam), (0.1,), Code("max_steps_reached")),
    Case(
        "pg_max_steps_throw",
        lambda lam: run(pg(max_steps=2, throw=True), lam).value,
        (0.1,),
        runtime(r"Increase `max_steps`"),
    ),
    Case("pg_nan_data", lambda b: run(pg(), 0.1, b=b), (B.at[0].set(jnp.nan),), Code("nonfinite")),
    Case("pg_nan_init", lambda x0: run(pg(), 0.1, x0), (X0.at[1].set(jnp.nan),), Code("nonfinite")),
    Case(
        "pg_diverges",
        lambda s: run(pg(stepsize=s, acceleration=False), 0.0, A=100.0 * A),
        (1.0,),
        Code("nonfinite"),
    ),
    Case(
        "pg_diverges_throw",
        lambda s: run(pg(stepsize=s, acceleration=False, throw=True), 0.0, A=100.0 * A).value,
        (1.0,),
        runtime(r"smaller `stepsize`"),
    ),
]

CASES = PROX_CASES + PROJECTION_CASES + SOLVER_CASES


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_case(case, mode):
    run_case(case, mode)
