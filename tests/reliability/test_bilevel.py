"""Bad input to the bilevel problems, the hypergradient and the bilevel solvers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import bilevel
from jaxopt_papers.bilevel import (
    BOREP,
    BSVRB,
    LVHBA,
    BilevelProblem,
    ImplicitBilevel,
    PenaltyBilevel,
    hypergradient,
)
from tests.reliability._cases import Case, Code, Raises, params, run_case, runtime

jax.config.update("jax_enable_x64", True)

RP = bilevel.problems.quadratic(dim_x=2, dim_y=3)
P, X0, Y0, UD, LD = RP.problem, RP.x0, RP.y0, RP.upper_data, RP.lower_data
XS, YS = RP.solution.x, RP.solution.y
MB = bilevel.problems.multi_block_quadratic(num_blocks=3, dim_x=2, dim_y=3)
ONE = jnp.ones(1)


def run(solver, x0=X0, y0=Y0, upper=UD, lower=LD, key=None):
    return solver.run(x0, y0, upper, lower, key=key)


def run_mb(solver, key=None):
    return solver.run(MB.x0, MB.y0, MB.upper_data, MB.lower_data, key=key)


def make(cls, **kw):
    def fn(_):
        return run(cls(P, **{"throw": False, **kw}))

    return fn


def hg_not_problem(_):
    return hypergradient(lambda x, y, d: 0.0, XS, YS, UD, LD)


def problem_not_callable(_):
    return BilevelProblem(1.0, P.lower_fn)


def hg_wrong_x_shape(_):
    return hypergradient(P, jnp.zeros(5), YS, UD, LD)


def hg_wrong_y_structure(_):
    return hypergradient(P, XS, {"a": YS}, UD, LD)


def hg_unsolved(shift):
    return hypergradient(P, XS, YS + shift, UD, LD, throw=False, full_output=True)


def hg_unsolved_throw(shift):
    return hypergradient(P, XS, YS + shift, UD, LD)


def upper_not_scalar(_):
    problem = BilevelProblem(lambda x, y, d: y, P.lower_fn)
    return run(ImplicitBilevel(problem, throw=False))


def borep_multi_block(_):
    return run_mb(BOREP(MB.problem))


def borep_constrained(_):
    problem = BilevelProblem(P.upper_fn, P.lower_fn, lambda x, y, d: y - 1.0)
    return run(BOREP(problem))


def borep_no_key(_):
    return run(BOREP(P, batch_size=2, max_steps=5))


def bsvrb_single_problem(_):
    return run(BSVRB(P))


def bsvrb_no_key(_):
    return run_mb(BSVRB(MB.problem, num_sampled_blocks=2))


def aid_nan_data(t):
    return run(ImplicitBilevel(P, outer_lr=0.5, max_steps=5, throw=False), upper=(t, UD[1]))


def borep_nan_x0(x0):
    return run(BOREP(P, max_steps=5, throw=False), x0=x0)


def lvhba_nan_y0(y0):
    return run(LVHBA(P, max_steps=5, throw=False), y0=y0)


def aid_diverges(lr):
    return run(ImplicitBilevel(P, outer_lr=lr, max_steps=50, throw=False))


def penalty_diverges(alpha):
    return run(PenaltyBilevel(P, alpha=alpha, max_steps=50, throw=False))


def lvhba_diverges(alpha):
    return run(LVHBA(P, alpha=alpha, eta=alpha, max_steps=200, throw=False))


def lvhba_diverges_throw(alpha):
    return run(LVHBA(P, alpha=alpha, eta=alpha, max_steps=200)).x


def bsvrb_diverges(lr):
    return run_mb(BSVRB(MB.problem, lr=lr, max_steps=300, throw=False))


def aid_short(_):
    return run(ImplicitBilevel(P, outer_lr=0.5, tol=1e-9, max_steps=2, throw=False))


def aid_short_throw(_):
    return run(ImplicitBilevel(P, outer_lr=0.5, tol=1e-9, max_steps=2)).x


def borep_short(_):
    return run(BOREP(P, tol=1e-12, max_steps=3, throw=False))


NAN_T = UD[0].at[0].set(np.nan)

CASES = [
    # problems and arguments: the same error eagerly and under jit (raised while tracing)
    Case("hypergradient_not_a_problem", hg_not_problem, (ONE,),
         Raises(TypeError, r"`problem` must be a BilevelProblem or a MultiBlockProblem")),
    Case("problem_upper_not_callable", problem_not_callable, (ONE,),
         Raises(TypeError, r"`upper_fn` must be callable")),
    Case("hypergradient_x_wrong_shape", hg_wrong_x_shape, (ONE,),
         Raises(ValueError, r"`lower_fn` could not be evaluated.*x = float64\[5\]")),
    Case("hypergradient_y_wrong_structure", hg_wrong_y_structure, (ONE,),
         Raises(ValueError, r"`upper_fn` could not be evaluated")),
    Case("implicit_upper_not_scalar", upper_not_scalar, (ONE,),
         Raises(ValueError, r"`upper_fn` must return a scalar")),
    Case("implicit_negative_outer_lr", make(ImplicitBilevel, outer_lr=-1.0), (ONE,),
         Raises(ValueError, r"`outer_lr` must be")),
    Case("implicit_negative_tol", make(ImplicitBilevel, tol=-1.0), (ONE,),
         Raises(ValueError, r"`tol` must be")),
    Case("penalty_negative_alpha", make(PenaltyBilevel, alpha=-1.0), (ONE,),
         Raises(ValueError, r"`alpha` must be")),
    Case("borep_negative_outer_lr", make(BOREP, outer_lr=-0.1), (ONE,),
         Raises(ValueError, r"`outer_lr` must be")),
    Case("borep_zero_inner_lr", make(BOREP, inner_lr=0.0), (ONE,),
         Raises(ValueError, r"`inner_lr` must be")),
    Case("borep_multi_block_problem", borep_multi_block, (ONE,),
         Raises(TypeError, r"`problem` must be a BilevelProblem")),
    Case("borep_constrained_lower_level", borep_constrained, (ONE,),
         Raises(ValueError, r"must be unconstrained")),
    Case("borep_sampling_without_key", borep_no_key, (ONE,), Raises(ValueError, r"pass `key=")),
    Case("lvhba_negative_alpha", make(LVHBA, alpha=-0.1), (ONE,),
         Raises(ValueError, r"`alpha` must be")),
    Case("bsvrb_single_block_problem", bsvrb_single_problem, (ONE,),
         Raises(TypeError, r"needs a MultiBlockProblem")),
    Case("bsvrb_sampling_without_key", bsvrb_no_key, (ONE,), Raises(ValueError, r"pass `key=")),
    # values: a result code, or with throw=True a runtime error saying what to change
    Case("hypergradient_lower_not_solved", hg_unsolved, (5.0,), Code("inaccurate")),
    Case("hypergradient_lower_not_solved_throw", hg_unsolved_throw, (5.0,),
         runtime(r"`y` does not solve the lower-level problem.*`lower_tol`")),
    Case("implicit_nan_data", aid_nan_data, (NAN_T,), Code("invalid_input")),
    Case("borep_nan_x0", borep_nan_x0, (X0.at[0].set(np.nan),), Code("invalid_input")),
    Case("lvhba_nan_y0", lvhba_nan_y0, (Y0.at[1].set(np.inf),), Code("invalid_input")),
    Case("implicit_diverges", aid_diverges, (1e6,), Code("nonfinite")),
    Case("penalty_diverges", penalty_diverges, (1e6,), Code("nonfinite")),
    Case("lvhba_diverges", lvhba_diverges, (10.0,), Code("nonfinite")),
    Case("lvhba_diverges_throw", lvhba_diverges_throw, (10.0,),
         runtime(r"non-finite.*`alpha`")),
    Case("bsvrb_diverges", bsvrb_diverges, (1e8,), Code("nonfinite")),
    Case("implicit_max_steps", aid_short, (ONE,), Code("max_steps_reached")),
    Case("implicit_max_steps_throw", aid_short_throw, (ONE,),
         runtime(r"did not reach `tol` within `max_steps`.*Increase `max_steps`")),
    Case("borep_max_steps", borep_short, (ONE,), Code("max_steps_reached")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_case(case, mode):
    run_case(case, mode)
