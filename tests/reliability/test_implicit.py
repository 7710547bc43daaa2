"""Bad input to implicit differentiation: custom_root and friends, root_vjp/jvp, LinearSolve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxopt_papers import implicit as I
from tests.reliability._cases import Case, Code, Raises, params, run_case, runtime

S = jnp.array([[1.0, 1.0], [1.0, 1.0]])  # singular
THETA = jnp.array([1.0, 2.0])
X0 = jnp.zeros(2)
BACKWARD = r"The linear solve of implicit differentiation.*singular"


def F(x, theta):
    return x - theta  # the root is x = theta


def exact(init, theta):
    return theta


def off_by_one(init, theta):
    return theta + 1.0  # not a root of F


def singular_F(x, theta):
    return S @ x - S @ theta  # every x with x0 + x1 = θ0 + θ1 is a root


def jac_of(solver):
    return lambda theta: jax.jacobian(lambda t: solver(X0, t))(theta)


def linsolve_result(b, **kw):
    return I.LinearSolve(**{"throw": False, **kw})(lambda u: u, b)[1]["result"]


CASES = [
    # LinearSolve: settings and failed solves
    Case(
        "linsolve_unknown_solver",
        lambda b: I.LinearSolve(solver="nope")(lambda u: u, b),
        (THETA,),
        Raises(ValueError, r"LinearSolve: `solver` must be one of"),
    ),
    Case(
        "linsolve_solver_type",
        lambda b: I.LinearSolve(solver=3)(lambda u: u, b),
        (THETA,),
        Raises(TypeError, r"LinearSolve: `solver` must be a name"),
    ),
    Case(
        "linsolve_negative_rtol",
        lambda b: I.LinearSolve(rtol=-1.0)(lambda u: u, b),
        (THETA,),
        Raises(ValueError, r"LinearSolve: `rtol` must be a finite number"),
    ),
    Case(
        "linsolve_negative_ridge",
        lambda b: I.LinearSolve(ridge=-1.0)(lambda u: u, b),
        (THETA,),
        Raises(ValueError, r"LinearSolve: `ridge`"),
    ),
    Case(
        "linsolve_max_steps_zero",
        lambda b: I.LinearSolve(max_steps=0)(lambda u: u, b),
        (THETA,),
        Raises(ValueError, r"LinearSolve: `max_steps` must be an int >= 1"),
    ),
    Case("linsolve_nan_rhs", linsolve_result, (THETA.at[0].set(jnp.nan),), Code("nonfinite")),
    Case(
        "linsolve_singular_throw",
        lambda b: I.LinearSolve()(lambda u: S @ u, b)[0],
        (THETA,),
        runtime(BACKWARD),
    ),
    Case(
        "linsolve_singular_cg_throw",
        lambda b: I.LinearSolve(solver="cg")(lambda u: S @ u, b, symmetric=True)[0],
        (THETA,),
        runtime(BACKWARD),
    ),
    # custom_root / custom_fixed_point: arguments
    Case(
        "custom_root_not_callable",
        lambda t: I.custom_root(3)(exact)(X0, t),
        (THETA,),
        Raises(TypeError, r"custom_root: `optimality_fn` must be callable"),
    ),
    Case(
        "custom_root_bad_solve",
        lambda t: I.custom_root(F, solve=3)(exact)(X0, t),
        (THETA,),
        Raises(TypeError, r"custom_root: `solve` must be None, a LinearSolve"),
    ),
    Case(
        "custom_root_output_shape",
        lambda t: I.custom_root(lambda x, th: jnp.sum(x - th))(exact)(X0, t),
        (THETA,),
        Raises(TypeError, r"`optimality_fn` must return a pytree with the structure and shapes"),
    ),
    Case(
        "custom_root_solver_signature",
        lambda t: I.custom_root(F)(lambda init: init)(X0, t),
        (THETA,),
        Raises(TypeError, r"custom_root: `solver`"),
    ),
    Case(
        "custom_fixed_point_not_callable",
        lambda t: I.custom_fixed_point(None)(exact)(X0, t),
        (THETA,),
        Raises(TypeError, r"custom_fixed_point: `fixed_point_fn` must be callable"),
    ),
    Case(
        "custom_fixed_point_output_shape",
        lambda t: I.custom_fixed_point(lambda x, th: x[:1])(exact)(X0, t),
        (THETA,),
        Raises(TypeError, r"`fixed_point_fn` must return a pytree with the structure"),
    ),
    # custom_root: derivatives at a point that is not a root, or with a singular Jacobian
    Case(
        "custom_root_not_a_root",
        jac_of(I.custom_root(F)(off_by_one)),
        (THETA,),
        runtime(r"custom_root: the solver.s answer is not a root.*`root_tol`"),
    ),
    Case(
        "custom_fixed_point_not_a_fixed_point",
        jac_of(I.custom_fixed_point(lambda x, th: th)(off_by_one)),
        (THETA,),
        runtime(r"custom_fixed_point: the solver.s answer is not a root"),
    ),
    Case(
        "custom_root_singular_jacobian",
        jac_of(I.custom_root(singular_F)(exact)),
        (THETA,),
        runtime(BACKWARD),
    ),
    # root_vjp / root_jvp
    Case(
        "root_jvp_tangent_count",
        lambda t: I.root_jvp(F, t, (t,), (t, t)),
        (THETA,),
        Raises(ValueError, r"root_jvp: `tangents` must have one entry per element of `args`"),
    ),
    Case(
        "root_vjp_cotangent_shape",
        lambda t: I.root_vjp(F, t, (t,), jnp.ones(3)),
        (THETA,),
        Raises(ValueError, r"root_vjp: `cotangent`"),
    ),
    Case(
        "root_vjp_not_callable",
        lambda t: I.root_vjp(3, t, (t,), t),
        (THETA,),
        Raises(TypeError, r"root_vjp: `optimality_fn` must be callable"),
    ),
    Case(
        "root_vjp_singular_stats",
        lambda t: I.root_vjp(
            singular_F, t, (t,), t, solve=I.LinearSolve(throw=False), return_stats=True
        )[1]["result"],
        (THETA,),
        Code("nonfinite"),
    ),
    Case(
        "root_jvp_singular_throw",
        lambda t: I.root_jvp(singular_F, t, (t,), (t,)),
        (THETA,),
        runtime(BACKWARD),
    ),
    Case(
        "root_jvp_bad_solve",
        lambda t: I.root_jvp(F, t, (t,), (t,), solve="nope"),
        (THETA,),
        Raises(ValueError, r"`solver` must be one of"),
    ),
]


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_case(case, mode):
    run_case(case, mode)
