"""ImplicitBilevel (AID and ITD) against closed forms, and on data hyper-cleaning."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest

from jaxopt_papers import RESULTS, bilevel
from jaxopt_papers.linear import RecyclingSolve
from jaxopt_papers.smooth import LBFGS

jax.config.update("jax_enable_x64", True)

RP = bilevel.problems.quadratic()  # dim_x = 5, dim_y = 10


def _rel(x, ref):
    return float(jnp.linalg.norm(x - ref) / jnp.linalg.norm(ref))


def _run(**options):
    solver = bilevel.ImplicitBilevel(RP.problem, **options)
    return solver.run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"backward": "cg"},
        {"backward": RecyclingSolve(restart=8, recycle=3)},
        {"outer": optax.adam(0.05), "max_steps": 1000},
        {"inner": optax.sgd(0.05), "inner_steps": 400},
        {"inner": optx.BFGS(rtol=1e-12, atol=1e-12)},
        {"mode": "unrolled", "inner": optax.sgd(0.05), "inner_steps": 400},
    ],
    ids=["lbfgs-lu", "cg", "recycling", "adam", "optax-inner", "optimistix-inner", "unrolled"],
)
def test_reaches_the_closed_form(options):
    options = {"outer_lr": 0.5, "tol": 1e-7, "max_steps": 600, **options}
    sol = _run(**options)
    assert sol.result == RESULTS.successful
    assert _rel(sol.x, RP.solution.x) < 1e-4
    assert int(sol.stats["num_grads"]) > 0
    assert np.all(np.diff(np.asarray(sol.stats["upper_values"][:20])) <= 1e-12)  # descent


def test_multi_block_quadratic():
    rp = bilevel.problems.multi_block_quadratic()
    sol = bilevel.ImplicitBilevel(rp.problem, outer_lr=0.5, tol=1e-8, max_steps=500).run(
        rp.x0, rp.y0, rp.upper_data, rp.lower_data
    )
    assert _rel(sol.x, rp.solution.x) < 1e-6
    np.testing.assert_allclose(sol.y, rp.solution.y, atol=1e-6)


def test_constrained_lower_level_with_a_callable_inner():
    # min_y ½‖y − x‖² s.t. Σy ≤ 0 (solved by projection), upper ½‖y − t‖² + ½‖x‖².
    t = jnp.array([2.0, 1.0, 0.5])
    problem = bilevel.BilevelProblem(
        lambda x, y, t: 0.5 * jnp.sum((y - t) ** 2) + 0.5 * jnp.sum(x**2),
        lambda x, y, d: 0.5 * jnp.sum((y - x) ** 2),
        lambda x, y, d: jnp.sum(y)[None],
    )
    project = lambda y0, x, d: x - jnp.maximum(jnp.sum(x), 0.0) / x.size
    solver = bilevel.ImplicitBilevel(problem, inner=project, outer_lr=0.5, tol=1e-10,
                                     max_steps=500)  # fmt: skip
    sol = solver.run(jnp.ones(3), jnp.zeros(3), t, None)
    # With the constraint active, y = Px (P the projector onto 1⊥): x* = (P + I)⁻¹ P t.
    P = np.eye(3) - 1.0 / 3
    np.testing.assert_allclose(sol.x, np.linalg.solve(P + np.eye(3), P @ np.asarray(t)),
                               rtol=1e-8)  # fmt: skip
    assert float(jnp.sum(sol.y)) <= 1e-12
    # The solution's derivative: through the iterations (implicit_diff=False) it is the closed
    # form's (P + I)⁻¹P; the implicit one is not defined for constrained lower levels.
    unrolled = bilevel.ImplicitBilevel(problem, inner=project, outer_lr=0.5, max_steps=200,
                                       implicit_diff=False)  # fmt: skip
    jac = jax.jacobian(lambda t: unrolled.run(jnp.ones(3), jnp.zeros(3), t, None).x)(t)
    np.testing.assert_allclose(jac, np.linalg.solve(P + np.eye(3), P), atol=1e-8)
    implicit = dataclasses.replace(unrolled, implicit_diff=True)
    with pytest.raises(ValueError, match="only for an unconstrained lower level"):
        jax.grad(lambda t: jnp.sum(implicit.run(jnp.ones(3), jnp.zeros(3), t, None).x))(t)


def test_unsolved_lower_level_is_reported():
    sol = _run(inner=optax.sgd(0.01), inner_steps=1, max_steps=5, throw=False)
    assert sol.result == RESULTS.inaccurate
    assert float(sol.stats["lower_residual"]) > 1e-4
    with pytest.raises(eqx.EquinoxRuntimeError, match="did not solve the lower level"):
        jax.block_until_ready(_run(inner=optax.sgd(0.01), inner_steps=1, max_steps=5).x)
    # unrolled: the gradient of the 1-step inner map is exact, the residual only recorded
    sol = _run(inner=optax.sgd(0.01), inner_steps=1, max_steps=5, mode="unrolled")
    assert sol.result == RESULTS.successful and float(sol.stats["lower_residual"]) > 1e-4


def test_divergence_stops_with_nonfinite():
    sol = _run(outer_lr=1e3, max_steps=200, throw=False)
    assert sol.result == RESULTS.nonfinite
    assert int(sol.num_steps) < 200


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`outer_lr`"):
        bilevel.ImplicitBilevel(RP.problem, outer_lr=-1.0)
    with pytest.raises(ValueError, match="`mode`"):
        bilevel.ImplicitBilevel(RP.problem, mode="forward")
    with pytest.raises(TypeError, match="`outer` must be an optax"):
        bilevel.ImplicitBilevel(RP.problem, outer=0.1)
    constrained = bilevel.BilevelProblem(RP.problem.upper_fn, RP.problem.lower_fn,
                                         lambda x, y, d: y[:1])  # fmt: skip
    with pytest.raises(ValueError, match="`inner` must be a callable"):
        bilevel.ImplicitBilevel(constrained)
    with pytest.raises(ValueError, match="`upper_fn` could not be evaluated"):
        bilevel.ImplicitBilevel(RP.problem).run(RP.x0, jnp.zeros(4), RP.upper_data, RP.lower_data)
    nan_data = (RP.upper_data[0].at[0].set(jnp.nan), RP.upper_data[1])
    sol = bilevel.ImplicitBilevel(RP.problem, max_steps=3, throw=False).run(
        RP.x0, RP.y0, nan_data, RP.lower_data
    )
    assert sol.result == RESULTS.invalid_input


def test_hyper_cleaning_beats_training_on_corrupted_labels():
    rp = bilevel.problems.hyper_cleaning(0.5)
    ex = rp.extras

    def accuracy(x):
        lower = lambda W, x, d: rp.problem.lower_fn(x, W, d)
        W = LBFGS(fun=lower, tol=1e-6, max_steps=500, throw=False).run(rp.y0, x, rp.lower_data)
        return float(bilevel.problems.accuracy(W.value, ex["X_test"], ex["labels_test"]))

    corrupted = accuracy(jnp.full_like(rp.x0, 30.0))  # every weight 1: plain training
    solver = bilevel.ImplicitBilevel(
        rp.problem, outer=optax.adam(0.1), inner_tol=1e-5, inner_steps=200, backward="cg",
        max_steps=100,
    )  # fmt: skip
    sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    assert accuracy(sol.x) >= corrupted + 0.05
    w = jax.nn.sigmoid(sol.x)
    # the corrupted samples are the down-weighted ones
    assert float(w[ex["corrupted"]].mean()) < 0.5 * float(w[~ex["corrupted"]].mean())
