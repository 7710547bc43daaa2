"""GradientDescent is jaxopt 0.8.5's GradientDescent bit for bit (with
``stable_linesearch=False``), and its implicit gradient matches central finite differences."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.smooth import GradientDescent
from tests.smooth._problems import X_CANCER, Y_CANCER, logreg

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import jaxopt

X, Y = X_CANCER[:, :10], Y_CANCER


@pytest.mark.parametrize(
    "options",
    [{}, {"acceleration": False}, {"stepsize": 0.5}],
    ids=["fista-backtracking", "backtracking", "fixed-step"],
)
def test_iterates_equal_jaxopt_bit_for_bit(options):
    w0 = jnp.zeros(10)
    ours = GradientDescent(logreg, tol=1e-3, stable_linesearch=False, **options)
    theirs = jaxopt.GradientDescent(logreg, tol=1e-3, **options)
    w, state = w0, ours.init(w0, 0.01, X, Y)
    step = jax.jit(ours.step)
    jw, jstate = w0, theirs.init_state(w0, 0.01, X, Y)
    for _ in range(25):
        w, state = step(w, state, 0.01, X, Y)
        jw, jstate = theirs.update(jw, jstate, 0.01, X, Y)
        np.testing.assert_array_equal(w, jw)
        np.testing.assert_array_equal(state.stepsize, jstate.stepsize)
    sol = ours.run(w0, 0.01, X, Y)
    params, jstate = theirs.run(w0, 0.01, X, Y)
    assert int(sol.num_steps) == int(jstate.iter_num)
    np.testing.assert_array_equal(sol.params, params)


def test_implicit_gradient_equals_finite_differences():
    solver = GradientDescent(logreg, tol=1e-10, max_steps=5000)
    w0 = jnp.zeros(10)

    def val(lam):
        w = solver.run(w0, lam, X[:400], Y[:400]).params
        return jnp.mean(jnp.logaddexp(0.0, -Y[400:] * (X[400:] @ w)))

    h = 1e-4
    fd = (val(0.05 + h) - val(0.05 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(val)(0.05), fd, rtol=1e-5)
