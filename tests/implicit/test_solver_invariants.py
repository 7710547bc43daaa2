"""The shared invariant suite of the library's solvers: every public solver is registered here.

For each case: ``run`` under ``jit`` equals eager and returns the library's one ``Solution`` with
``RESULTS`` codes; a new hyperparameter value does not compile again; ``vmap`` over the value
equals a loop; the implicit gradient equals central finite differences (and the unrolled one
where the solver has an unrolled mode) in reverse and forward mode; float32 inputs stay float32;
manual ``init``/``step`` reproduces ``run``; ``throw=False`` reports instead of raising, and
``throw=True`` raises even when only one output is used.

A family registers its solvers by adding ``Case`` objects to ``CASES`` (see
``tests/solver_cases/``): ``run(solver, value)`` solves a problem that depends smoothly on the
scalar ``value`` and returns the ``Solution``.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import RESULTS, Solution
from tests.solver_cases import CASES

IDS = [c.name for c in CASES]
RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)
COMPILES = {"count": 0}


def _on_event(name: str, *_: object, **__: object) -> None:
    if name == "/jax/core/compile/backend_compile_duration":
        COMPILES["count"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_equals_eager_and_no_recompile_for_new_values(case):
    eager = case.run(case.solver, case.values[0])
    assert isinstance(eager, Solution)
    assert eager.result == RESULTS.successful
    assert {"num_steps", "error"} <= set(eager.stats)
    assert int(eager.stats["num_steps"]) > 0
    jitted = jax.jit(lambda v: case.output(case.run(case.solver, v)))
    np.testing.assert_allclose(
        jitted(case.values[0]), case.output(eager), rtol=case.rtol_jit, atol=case.atol_jit
    )
    case.run(case.solver, case.values[1])  # warm the eager path for a second value
    jitted(case.values[1])
    before = COMPILES["count"]
    jax.block_until_ready(case.output(case.run(case.solver, case.values[2])))
    jax.block_until_ready(jitted(case.values[2]))
    assert COMPILES["count"] == before, "a new value compiled again"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_values_equals_loop(case):
    solver = case.vmap_solver(case.solver)
    values = jnp.asarray(case.values)
    batched = jax.jit(jax.vmap(lambda v: case.output(case.run(solver, v))))(values)
    for i, v in enumerate(case.values):
        np.testing.assert_allclose(
            batched[i], case.output(case.run(solver, v)), rtol=case.rtol_vmap, atol=1e-12
        )


def _loss(case, solver, target):
    return lambda v: jnp.sum((case.output(case.run(solver, v)) - target) ** 2)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_implicit_gradient_equals_finite_differences_and_unrolled(case):
    v = case.values[1]
    out = case.output(case.run(case.solver, v))
    target = jnp.asarray(np.random.default_rng(0).normal(size=np.shape(out)))
    f = _loss(case, case.solver, target)
    h = case.fd_step * abs(v)

    unrolled = None if case.unrolled is None else _loss(case, case.unrolled(case.solver), target)

    @jax.jit  # one compilation: reverse, forward, the two shifted solves and the unrolled one
    def derivatives(v):
        shifted = jnp.stack([f(v + h), f(v - h)])
        through = jnp.nan if unrolled is None else jax.grad(unrolled)(v)
        return jax.grad(f)(v), jax.jvp(f, (v,), (1.0,))[1], shifted, through

    g, tangent, (f_plus, f_minus), g_unrolled = derivatives(v)
    np.testing.assert_allclose(g, (f_plus - f_minus) / (2 * h), rtol=case.rtol_fd)
    np.testing.assert_allclose(tangent, g, rtol=1e-8)
    if unrolled is not None:
        np.testing.assert_allclose(g_unrolled, g, rtol=case.rtol_unrolled)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32(case):
    solver = case.solver32(case.solver)

    def total(v):  # the solution rides along as aux: one compilation for both
        sol = case.run32(solver, v)
        return jnp.sum(case.output(sol)), sol

    (_, sol), g = jax.jit(jax.value_and_grad(total, has_aux=True))(jnp.float32(case.values[1]))
    assert case.output(sol).dtype == jnp.float32
    for leaf in jax.tree.leaves(sol.value):
        assert leaf.dtype == jnp.float32, leaf.dtype
    assert g.dtype == jnp.float32 and bool(jnp.isfinite(g))


@pytest.mark.parametrize("case", [c for c in CASES if c.manual is not None],
                         ids=[c.name for c in CASES if c.manual is not None])  # fmt: skip
def test_manual_steps_reproduce_run(case):
    value, num_steps = case.manual(case.solver, case.values[0])
    sol = case.run(case.solver, case.values[0])
    assert int(num_steps) == int(sol.stats["num_steps"])
    np.testing.assert_allclose(
        case.output_of_value(value), case.output(sol), rtol=case.rtol_jit, atol=case.atol_jit
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_throw_false_reports_and_throw_true_raises_on_any_output(case):
    short = case.short(case.solver)
    quiet = dataclasses.replace(short, throw=False)
    codes = jax.jit(jax.vmap(lambda v: case.run(quiet, v).result == case.short_code))(
        jnp.asarray(case.values)
    )
    assert bool(jnp.all(codes))
    loud = dataclasses.replace(short, throw=True)
    # Only the step count, or only a gradient, is used: the check must still fire (it is tied
    # to every output, and survives transposition).
    with pytest.raises(RUNTIME_ERRORS):
        jax.block_until_ready(
            jax.jit(lambda v: case.run(loud, v).stats["num_steps"])(case.values[0])
        )
    with pytest.raises(RUNTIME_ERRORS):
        jax.block_until_ready(
            jax.jit(jax.grad(lambda v: jnp.sum(case.output(case.run(loud, v)))))(case.values[0])
        )
