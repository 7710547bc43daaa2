"""Bad input to the optimal-transport solvers (Sinkhorn and Sinkhorn–Newton–Sparse)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from jaxopt_papers import ot
from tests.reliability._cases import Case, Code, Raises, params, run_case, runtime

_x = jnp.linspace(0.0, 1.0, 4)
COST = (_x[:, None] - _x[None, :3]) ** 2  # (4, 3)
A = jnp.full(4, 0.25)
B = jnp.full(3, 1.0 / 3.0)
EPS = 0.1

SOLVERS = {
    "sinkhorn": lambda *a, **k: ot.sinkhorn(*a, **{"max_steps": 2000, **k}),
    "sns": lambda *a, **k: ot.sinkhorn_newton_sparse(
        *a, **{"max_newton_steps": 20, "sinkhorn_steps": 5, **k}
    ),
}
STEP_NAMES = {"sinkhorn": "max_steps", "sns": "max_newton_steps"}


def _runner(name, throw, **kw):
    solve = SOLVERS[name]
    if throw:
        return lambda cost, a, b, eps: solve(cost, a, b, eps, **kw).plan
    return lambda cost, a, b, eps: solve(cost, a, b, eps, throw=False, **kw)


# One function per configuration, shared by the cases: under `jit` they share a compilation.
RUN = {(n, t): _runner(n, t) for n in SOLVERS for t in (False, True)}
SHORT = {(n, t): _runner(n, t, **{STEP_NAMES[n]: 1}) for n in SOLVERS for t in (False, True)}


def problem(cost=COST, a=A, b=B, eps=EPS):
    return (cost, a, b, eps)


def cases_for(name):
    n = name
    run, run_throw = RUN[n, False], RUN[n, True]
    return [
        # values: static when concrete, a result code when traced
        Case(
            f"{n}_nan_cost",
            run,
            problem(cost=COST.at[1, 2].set(jnp.nan)),
            Raises(ValueError, r"`cost` has non-finite entries"),
            Code("nonfinite_input"),
        ),
        Case(
            f"{n}_inf_cost",
            run,
            problem(cost=COST.at[0, 0].set(jnp.inf)),
            Raises(ValueError, r"`cost` has non-finite entries"),
            Code("nonfinite_input"),
        ),
        Case(
            f"{n}_nan_cost_throw",
            run_throw,
            problem(cost=COST.at[1, 2].set(jnp.nan)),
            Raises(ValueError, r"`cost` has non-finite entries"),
            runtime(r"`cost`, `a`, `b` or `epsilon` has NaN or inf"),
        ),
        Case(
            f"{n}_nan_weight",
            run,
            problem(a=A.at[0].set(jnp.nan)),
            Raises(ValueError, r"`a` must be finite and positive"),
            Code("nonfinite_input"),
        ),
        Case(
            f"{n}_negative_weight",
            run,
            problem(a=A.at[1].set(-0.25)),
            Raises(ValueError, r"`a` must be finite and positive"),
            Code("invalid_input"),
        ),
        Case(
            f"{n}_zero_weight",
            run,
            problem(b=B.at[2].set(0.0)),
            Raises(ValueError, r"`b` must be finite and positive"),
            Code("invalid_input"),
        ),
        Case(
            f"{n}_mass_mismatch",
            run,
            problem(b=2.0 * B),
            Raises(ValueError, r"`a` and `b` must have the same total mass"),
            Code("invalid_input"),
        ),
        Case(
            f"{n}_mass_mismatch_throw",
            run_throw,
            problem(b=2.0 * B),
            Raises(ValueError, r"same total mass"),
            runtime(r"same total mass"),
        ),
        Case(
            f"{n}_epsilon_zero",
            run,
            problem(eps=0.0),
            Raises(ValueError, r"`epsilon` must be a positive finite scalar"),
            Code("invalid_input"),
        ),
        Case(
            f"{n}_epsilon_negative",
            run,
            problem(eps=-0.1),
            Raises(ValueError, r"`epsilon` must be a positive finite scalar"),
            Code("invalid_input"),
        ),
        Case(
            f"{n}_epsilon_nan",
            run,
            problem(eps=float("nan")),
            Raises(ValueError, r"`epsilon` must be a positive finite scalar"),
            Code("nonfinite_input"),
        ),
        Case(
            f"{n}_epsilon_negative_throw",
            run_throw,
            problem(eps=-0.1),
            Raises(ValueError, r"`epsilon`"),
            runtime(r"`epsilon` must be > 0"),
        ),
        # static problems
        Case(
            f"{n}_cost_vector",
            run,
            problem(cost=jnp.ones(4)),
            Raises(ValueError, r"`cost` must be a matrix"),
        ),
        Case(
            f"{n}_weights_shape",
            run,
            problem(a=jnp.full(3, 1.0 / 3.0)),
            Raises(ValueError, r"`a` and `b` must have shapes \(4,\) and \(3,\)"),
        ),
        Case(
            f"{n}_int_cost",
            run,
            problem(cost=jnp.ones((4, 3), jnp.int32)),
            Raises((TypeError, ValueError), r"`cost` must be floating point"),
        ),
        Case(
            f"{n}_epsilon_vector",
            run,
            problem(eps=jnp.full(2, 0.1)),
            Raises(ValueError, r"`epsilon` must be a (positive finite )?scalar"),
        ),
        # failures of the run
        Case(f"{n}_too_few_steps", SHORT[n, False], problem(eps=0.01), Code("max_steps_reached")),
        Case(
            f"{n}_too_few_steps_throw",
            SHORT[n, True],
            problem(eps=0.01),
            runtime(f"Increase `{STEP_NAMES[n]}`"),
        ),
    ]


#: Classes already covered by Sinkhorn whose Sinkhorn–Newton–Sparse variant would only add a
#: compilation (several seconds each).
SNS_SKIP = {"sns_nan_cost_throw", "sns_too_few_steps"}
CASES = (
    cases_for("sinkhorn")
    + [c for c in cases_for("sns") if c.id not in SNS_SKIP]
    + [
        Case(
            "sinkhorn_max_steps_zero",
            lambda e: ot.sinkhorn(COST, A, B, e, max_steps=0),
            (EPS,),
            Raises(ValueError, r"`max_steps`"),
        ),
        Case(
            "sinkhorn_tol_negative",
            lambda e: ot.sinkhorn(COST, A, B, e, tol=-1.0),
            (EPS,),
            Raises(ValueError, r"`tol`"),
        ),
        Case(
            "sns_density_above_one",
            lambda e: ot.sinkhorn_newton_sparse(COST, A, B, e, density=2.0),
            (EPS,),
            Raises(ValueError, r"`density`"),
        ),
        Case(
            "sns_unknown_schedule",
            lambda e: ot.sinkhorn_newton_sparse(COST, A, B, e, schedule="fast"),
            (EPS,),
            Raises(ValueError, r"`schedule`"),
        ),
        Case(
            "problem_not_a_problem",
            lambda c: ot.Sinkhorn().run(c),
            (COST,),
            Raises(TypeError, r"OTProblem"),
        ),
    ]
)


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_case(case, mode):
    run_case(case, mode)
