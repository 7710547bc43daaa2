"""Iterates of the fixed-point solvers against jaxopt 0.8.5's on the same problems.

Both solvers are stepped by hand (``init``/``step`` here, ``init_state``/``update`` there, each
compiled once) and compared at every step; one ``run`` per solver checks that ``run`` follows
the same trajectory (``max_steps`` iterations with ``tol=0``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest

from jaxopt_papers.fixed_point import (
    AndersonAcceleration,
    AndersonWrapper,
    Broyden,
    FixedPointIteration,
)
from jaxopt_papers.proximal import ProximalGradient, prox_lasso
from tests.fixed_point._problems import A, B, M, N, affine, nonlinear, root_fun

X0 = jnp.zeros(N)


def _trajectories(ours, ref, x0, args, steps):
    """Step both solvers ``steps`` times; yield ``(ours (params, state), ref (params, state))``."""
    p, s = x0, ours.init(x0, *args)
    q, r = x0, ref.init_state(x0, *args)
    step = jax.jit(lambda p, s: ours.step(p, s, *args))
    update = jax.jit(lambda q, r: tuple(ref.update(q, r, *args)))
    for _ in range(steps):
        p, s = step(p, s)
        q, r = update(q, r)
        yield (p, s), (q, r)


def _compare(ours, ref, x0, args, steps, rtol, extra=None, check_run=True):
    for i, ((p, s), (q, r)) in enumerate(_trajectories(ours, ref, x0, args, steps)):
        np.testing.assert_allclose(p, q, rtol=rtol, atol=1e-12, err_msg=f"step {i + 1}")
        np.testing.assert_allclose(s.error, r.error, rtol=100 * rtol, atol=1e-12)
        if extra is not None:
            extra(s, r)
    if not check_run:
        return
    run = ours.run(x0, *args)  # tol=0: `max_steps` iterations, the same trajectory
    np.testing.assert_allclose(run.value, p, rtol=rtol, atol=1e-12)
    assert int(run.num_steps) == steps


def test_fixed_point_iteration_iterates():
    ours = FixedPointIteration(nonlinear, max_steps=25, tol=0.0, throw=False)
    ref = jaxopt.FixedPointIteration(nonlinear, tol=0.0)
    _compare(ours, ref, X0, (M, B), 25, 1e-13)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"history_size": 3, "mixing_frequency": 2, "beta": 0.7, "ridge": 1e-8},
        {"history_size": 7, "beta": 1.3, "ridge": 1e-3},
    ],
    ids=["defaults", "m3-freq2-beta0.7", "m7-beta1.3"],
)
def test_anderson_iterates(kw):
    ours = AndersonAcceleration(nonlinear, max_steps=25, tol=0.0, throw=False, **kw)
    ref = jaxopt.AndersonAcceleration(nonlinear, tol=0.0, **kw)

    def gram(s, r):
        np.testing.assert_allclose(s.residual_gram, r.residual_gram, rtol=1e-8, atol=1e-14)

    _compare(ours, ref, X0, (M, B), 25, 1e-9, gram, check_run=not kw)


def test_anderson_run_to_tol_matches_jaxopt_step_count():
    ours = AndersonAcceleration(affine, tol=1e-8, ridge=1e-12).run(X0, M, B)
    ref = jaxopt.AndersonAcceleration(affine, tol=1e-8, ridge=1e-12).run(X0, M, B)
    assert int(ours.num_steps) == int(ref.state.iter_num)
    np.testing.assert_allclose(ours.value, ref.params, rtol=1e-10)


def _lasso(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


@pytest.mark.parametrize("acceleration", [False, True], ids=["ista", "fista"])
def test_anderson_wrapper_iterates_on_proximal_gradient(acceleration):
    rng = np.random.default_rng(3)
    X = jnp.asarray(rng.normal(size=(30, 6)))
    y = jnp.asarray(rng.normal(size=30))
    inner = ProximalGradient(_lasso, prox_lasso, stepsize=0.3, tol=0.0, max_steps=30,
                             acceleration=acceleration)  # fmt: skip
    ours = AndersonWrapper(inner, throw=False)
    ref_inner = jaxopt.ProximalGradient(_lasso, jaxopt.prox.prox_lasso, stepsize=0.3, tol=0.0,
                                        acceleration=acceleration)  # fmt: skip
    ref = jaxopt.AndersonWrapper(ref_inner)
    _compare(ours, ref, jnp.zeros(6), (0.05, X, y), 30, 1e-9, check_run=not acceleration)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stepsize": 0.6, "history_size": 3},
        {"gamma": 0.5, "max_stepsize": 0.8, "history_size": 3},
    ],
    ids=["linesearch", "fixed-step-memory3", "gamma-maxstep-memory3"],
)
def test_broyden_iterates(kw):
    ours = Broyden(root_fun, max_steps=15, tol=0.0, throw=False, **kw)
    ref = jaxopt.Broyden(root_fun, maxiter=15, tol=0.0, **kw)

    def more(s, r):
        np.testing.assert_allclose(s.stepsize, r.stepsize, rtol=1e-12)
        assert int(s.num_fun_evals) == int(r.num_fun_eval)
        assert bool(s.failed_linesearch) == bool(r.failed_linesearch)

    _compare(ours, ref, X0, (A, B), 15, 1e-9, more, check_run=not kw)


def test_broyden_schedule_matches_jaxopt():
    sched = lambda i: 0.5 + 0.5 * (i > 2)
    ours = Broyden(root_fun, max_steps=6, tol=0.0, throw=False, stepsize=sched)
    ref = jaxopt.Broyden(root_fun, maxiter=6, tol=0.0, stepsize=sched)
    _compare(ours, ref, X0, (A, B), 6, 1e-9, check_run=False)
