"""Bad input to the smooth solvers (L-BFGS, BFGS, L-BFGS-B, gradient descent)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.smooth import BFGS, LBFGS, LBFGSB, GradientDescent
from tests.reliability._cases import Case, Code, Raises, params, run_case, runtime

A = jnp.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0], [1.0, 1.0, 1.0]])
B = jnp.array([1.0, -1.0, 0.5, 0.3])
X0 = jnp.zeros(3)


def lsq(x, A, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2)


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def vector_valued(x, A, b):
    return A @ x - b


def one_argument(x):
    return jnp.sum(x**2)


def uphill(x):  # value and a gradient pointing the wrong way: every line search fails
    return jnp.sum(x**2), -2.0 * x


def run_lbfgs(x0, A=A, b=B, **kw):
    return LBFGS(lsq, **{"throw": False, **kw}).run(x0, A, b)


def run_int(_):
    return run_lbfgs(jnp.zeros(3, jnp.int32))


def run_empty(_):
    return LBFGS(one_argument, throw=False).run({})


def run_vector(x0):
    return LBFGS(vector_valued, throw=False).run(x0, A, B)


def run_wrong_shape(x0):
    return run_lbfgs(jnp.zeros(5) + x0[0])


def run_signature(x0):
    return LBFGS(one_argument, throw=False).run(x0, A, B)


def run_tol(tol):
    return run_lbfgs(X0, tol=tol)


def make(cls, **kw):
    def fn(_):
        return cls(lsq, **kw).run(X0, A, B)

    return fn


def run_complex_bfgs(_):
    return BFGS(one_argument, throw=False).run(jnp.zeros(3, jnp.complex128))


def run_nan_init(x0):
    return run_lbfgs(x0)


def run_nan_data(b):
    return run_lbfgs(X0, b=b)


def run_bfgs_nan(x0):
    return BFGS(lsq, throw=False).run(x0, A, B)


def run_short(x0):
    return LBFGS(rosenbrock, max_steps=2, throw=False).run(x0)


def run_short_throw(x0):
    return LBFGS(rosenbrock, max_steps=2).run(x0).params


def run_stalled(x0):
    return LBFGS(uphill, value_and_grad=True, maxls=4, stop_if_linesearch_fails=True,
                 throw=False).run(x0)  # fmt: skip


def run_stalled_throw(x0):
    return LBFGS(uphill, value_and_grad=True, maxls=4, stop_if_linesearch_fails=True).run(x0)


def run_box(lower, upper):
    return LBFGSB(lsq, throw=False).run(X0, (lower, upper), A, B)


def run_box_throw(lower, upper):
    return LBFGSB(lsq).run(X0, (lower, upper), A, B).params


def run_box_not_pair(_):
    return LBFGSB(lsq, throw=False).run(X0, jnp.ones(3), A, B)


def run_box_shape(_):
    return LBFGSB(lsq, throw=False).run(X0, (jnp.zeros(2), 1.0), A, B)


def run_box_tree(_):
    return LBFGSB(lsq, throw=False).run(X0, ({"a": 0.0}, 1.0), A, B)


def run_gd_int(_):
    return GradientDescent(lsq, throw=False).run(jnp.zeros(3, jnp.int32), A, B)


def run_gd_nan(x0):
    return GradientDescent(lsq, throw=False).run(x0, A, B)


NAN3 = jnp.array([np.nan, 0.0, 0.0])
ONE = jnp.ones(1)

CASES = [
    # static problems: the same error eagerly and under jit (raised while tracing)
    Case("lbfgs_int_params", run_int, (ONE,), Raises(TypeError, r"`init_params` must have")),
    Case("lbfgs_empty_params", run_empty, (ONE,),
         Raises(ValueError, r"`init_params` must contain at least one array")),
    Case("lbfgs_fun_not_scalar", run_vector, (X0,), Raises(ValueError, r"real scalar")),
    Case("lbfgs_fun_wrong_shape", run_wrong_shape, (X0,),
         Raises(ValueError, r"`fun` could not be evaluated")),
    Case("lbfgs_fun_signature", run_signature, (X0,), Raises(TypeError, r"`fun` must accept")),
    Case("lbfgs_history_zero", make(LBFGS, history_size=0), (ONE,),
         Raises(ValueError, r"`history_size`")),
    Case("lbfgs_unknown_linesearch", make(LBFGS, linesearch="armijo"), (ONE,),
         Raises(ValueError, r"`linesearch` must be one of")),
    Case("lbfgs_unknown_linesearch_init", make(LBFGS, linesearch_init="big"), (ONE,),
         Raises(ValueError, r"`linesearch_init` must be one of")),
    Case("lbfgs_maxls_zero", make(LBFGS, maxls=0), (ONE,), Raises(ValueError, r"`maxls`")),
    Case("lbfgs_negative_stepsize", make(LBFGS, stepsize=-1.0), (ONE,),
         Raises(ValueError, r"`stepsize` must be")),
    Case("lbfgs_max_steps_zero", make(LBFGS, max_steps=0), (ONE,),
         Raises(ValueError, r"`max_steps`")),
    Case("bfgs_complex_params", run_complex_bfgs, (ONE,),
         Raises(TypeError, r"floating-point leaves")),
    Case("bfgs_negative_max_stepsize", make(BFGS, max_stepsize=-1.0), (ONE,),
         Raises(ValueError, r"`max_stepsize`")),
    Case("lbfgsb_bounds_not_pair", run_box_not_pair, (ONE,),
         Raises(TypeError, r"`bounds` must be None or a pair")),
    Case("lbfgsb_bounds_shape", run_box_shape, (ONE,), Raises(ValueError, r"`lower` must")),
    Case("lbfgsb_bounds_structure", run_box_tree, (ONE,),
         Raises(ValueError, r"`lower` must be a scalar or a pytree")),
    Case("gd_int_params", run_gd_int, (ONE,), Raises(TypeError, r"`init_params`")),
    Case("gd_negative_stepsize", make(GradientDescent, stepsize=-0.1), (ONE,),
         Raises(ValueError, r"`stepsize` must be > 0")),
    # values: an error when concrete, RESULTS.invalid_input when traced
    Case("lbfgs_negative_tol", run_tol, (-1.0,), Raises(ValueError, r"`tol` must be"),
         Code("invalid_input")),
    Case("lbfgsb_lower_above_upper", run_box, (1.0, -1.0),
         Raises(ValueError, r"lower <= upper"), Code("invalid_input")),
    Case("lbfgsb_nan_bound", run_box, (np.nan, 1.0), Raises(ValueError, r"lower <= upper"),
         Code("invalid_input")),
    Case("lbfgsb_lower_above_upper_throw", run_box_throw, (1.0, -1.0),
         Raises(ValueError, r"lower <= upper"), runtime(r"`lower <= upper`")),
    # value problems: a result code, or with throw=True a runtime error saying what to change
    Case("lbfgs_nan_init", run_nan_init, (NAN3,), Code("nonfinite")),
    Case("lbfgs_nan_data", run_nan_data, (B.at[0].set(np.nan),), Code("nonfinite")),
    Case("bfgs_nan_init", run_bfgs_nan, (NAN3,), Code("nonfinite")),
    Case("gd_nan_init", run_gd_nan, (NAN3,), Code("nonfinite")),
    Case("lbfgs_max_steps", run_short, (jnp.zeros(4),), Code("max_steps_reached")),
    Case("lbfgs_max_steps_throw", run_short_throw, (jnp.zeros(4),),
         runtime(r"L-BFGS did not reach `tol`.*Increase `max_steps`")),
    Case("lbfgs_linesearch_fails", run_stalled, (jnp.ones(3),), Code("stagnation")),
    Case("lbfgs_linesearch_fails_throw", run_stalled_throw, (jnp.ones(3),),
         runtime(r"stop_if_linesearch_fails")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_case(case, mode):
    run_case(case, mode)
