"""Hypergradient descent: SGD-HD, Adam-HD and the learning rate in front of any direction.

The trajectories of ``sgd_hd`` and ``adam_hd`` (both variants) against the official optimizers
are in ``tests/golden`` (cases ``*hd*``, run by ``tests/optimizers/test_golden.py``). Here: a
NumPy replay of the paper's SGD-HD equations with the learned learning rate read from the state,
the wrapper against the two aliases, the two Adam-HD variants against each other, schedules,
and bad input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import schedules


def random_grads(steps, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(size=(steps, 3, 2)) + 0.5,
        "b": rng.normal(size=(steps, 4)) - 0.3,
    }


def params0():
    return {"a": jnp.full((3, 2), 0.5), "b": jnp.linspace(-1.0, 1.0, 4)}


def run(tx, grads, params=None):
    """Feed the gradients; return the updates and the states of every step."""
    params = params0() if params is None else params

    def step(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), (u, s)

    _, (updates, states) = jax.jit(lambda gs: jax.lax.scan(step, (params, tx.init(params)), gs))(
        grads
    )
    return updates, states


def assert_trees_close(a, b, rtol, atol=0.0):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_sgd_hd_matches_a_numpy_replay_of_the_paper():
    """The paper's SGD-HD: α_t = α_{t-1} + β g_t·g_{t-1}; θ_t = θ_{t-1} - α_t g_t.

    (``g`` includes the coupled weight decay, as in the reference code.)
    """
    steps, lr0, beta, wd = 12, 0.05, 0.02, 0.1
    grads = random_grads(steps)
    updates, states = run(schedules.sgd_hd(lr0, beta, weight_decay=wd), grads)
    p = {k: np.asarray(v) for k, v in params0().items()}
    alpha, prev = lr0, None
    for t in range(steps):
        g = np.concatenate([(grads[k][t] + wd * p[k]).ravel() for k in ("a", "b")])
        if prev is not None:
            alpha = alpha + beta * g @ prev
        prev = g
        np.testing.assert_allclose(float(states[1].learning_rate[t]), alpha, rtol=1e-13)
        step_a, step_b = -alpha * g[:6].reshape(3, 2), -alpha * g[6:]
        np.testing.assert_allclose(updates["a"][t], step_a, rtol=1e-12)
        np.testing.assert_allclose(updates["b"][t], step_b, rtol=1e-12)
        p = {"a": p["a"] + step_a, "b": p["b"] + step_b}
    assert abs(alpha - lr0) > 0.1 * lr0  # the learning rate did move


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.7, True)])
def test_wrapper_with_sgd_directions_is_sgd_hd(momentum, nesterov):
    grads = random_grads(10, seed=1)
    inner = optax.trace(momentum, nesterov=nesterov)
    ours = schedules.sgd_hd(0.03, 1e-2, momentum=momentum, nesterov=nesterov)
    wrapped = schedules.scale_by_hypergradient_lr(0.03, 1e-2, inner=inner)
    u_ours, s_ours = run(ours, grads)
    u_wrap, s_wrap = run(wrapped, grads)
    assert_trees_close(u_wrap, u_ours, rtol=1e-12)
    np.testing.assert_allclose(s_wrap.learning_rate, s_ours[1].learning_rate, rtol=1e-13)


def test_wrapper_without_inner_is_plain_sgd_hd():
    grads = random_grads(6, seed=2)
    u_wrap, _ = run(schedules.scale_by_hypergradient_lr(0.1, 1e-3), grads)
    u_ours, _ = run(schedules.scale_by_sgd_hd(0.1, 1e-3), grads)
    assert_trees_close(u_wrap, u_ours, rtol=1e-13)


def test_wrapper_with_an_adam_direction_is_the_paper_variant():
    """optax's Adam direction with eps = 0 is m/sqrt(v) · sqrt(bc2)/bc1, AdamHD's without eps."""
    grads = random_grads(10, seed=3)
    wrapped = schedules.scale_by_hypergradient_lr(0.01, 1e-3, inner=optax.scale_by_adam(eps=0.0))
    paper = schedules.adam_hd(0.01, 1e-3, eps=1e-30, variant="paper")
    u_wrap, s_wrap = run(wrapped, grads)
    u_paper, s_paper = run(paper, grads)
    assert_trees_close(u_wrap, u_paper, rtol=1e-10)
    np.testing.assert_allclose(s_wrap.learning_rate, s_paper[1].learning_rate, rtol=1e-12)


def test_adam_hd_variants_agree_on_one_leaf_and_differ_on_several():
    grads = random_grads(8, seed=4)
    one = {"a": jnp.ones(6)}
    g_one = {"a": grads["a"].reshape(8, 6)}
    kw = dict(learning_rate=0.01, hypergrad_lr=1e-3)
    u_code, s_code = run(schedules.adam_hd(**kw), g_one, one)
    u_paper, s_paper = run(schedules.adam_hd(**kw, variant="paper"), g_one, one)
    assert_trees_close(u_code, u_paper, rtol=1e-14)
    _, s_code = run(schedules.adam_hd(**kw), grads)
    _, s_paper = run(schedules.adam_hd(**kw, variant="paper"), grads)
    # after a step, both have added the same hypergradients to the learning rate ...
    np.testing.assert_allclose(s_code[1].learning_rate[1], s_paper[1].learning_rate[1], rtol=1e-13)
    # ... but the code variant's first leaf ("a") stepped before "b"'s contribution arrived
    u_code, _ = run(schedules.adam_hd(**kw), grads)
    u_paper, _ = run(schedules.adam_hd(**kw, variant="paper"), grads)
    assert not np.allclose(u_code["a"][1], u_paper["a"][1], rtol=1e-6)
    np.testing.assert_allclose(u_code["b"][1], u_paper["b"][1], rtol=1e-13)  # last leaf: same lr


def test_learning_rate_is_not_clipped():
    """Gradients that alternate in sign drive the learned learning rate below zero."""
    grads = {"a": np.array([(-1.0) ** t * np.ones(3) for t in range(6)])}
    _, states = run(schedules.sgd_hd(0.1, 0.05), grads, {"a": jnp.zeros(3)})
    lrs = np.asarray(states[1].learning_rate)
    np.testing.assert_allclose(lrs, 0.1 - 0.15 * np.arange(6), rtol=1e-13)
    assert lrs[-1] < 0


def test_schedule_plus_learned_offset():
    sched = optax.linear_schedule(0.1, 0.01, 10)
    grads = random_grads(10, seed=5)
    # without hypergradient steps: plain SGD with the schedule
    u_hd, _ = run(schedules.sgd_hd(sched, 0.0), grads)
    u_sgd, _ = run(optax.sgd(sched), grads)
    assert_trees_close(u_hd, u_sgd, rtol=1e-14)
    # with them: the learning rate is the schedule plus the learned offset
    _, states = run(schedules.sgd_hd(sched, 1e-3), grads)
    own = states[1]
    counts = jnp.arange(10, dtype=jnp.int32)  # what the state counts with
    expected = np.asarray(jax.vmap(sched)(counts), np.float64) + np.asarray(own.lr_offset)
    np.testing.assert_allclose(own.learning_rate, expected, rtol=1e-13)
    assert np.all(np.asarray(own.lr_offset)[1:] != 0)


def test_hypergrad_lr_can_be_injected():
    grads = random_grads(5, seed=6)
    plain, _ = run(schedules.adam_hd(0.01, 1e-3), grads)
    injected, states = run(optax.inject_hyperparams(schedules.adam_hd)(0.01, 1e-3), grads)
    assert_trees_close(injected, plain, rtol=1e-13)
    assert "hypergrad_lr" in states.hyperparams


# ------------------------------------------------------------------------------ bad input


def test_bad_input():
    with pytest.raises(ValueError, match=r"sgd_hd: `hypergrad_lr` must be .*got -1e-06"):
        schedules.sgd_hd(0.1, hypergrad_lr=-1e-6)
    with pytest.raises(ValueError, match=r"adam_hd: `hypergrad_lr` must be .*got -1"):
        schedules.adam_hd(hypergrad_lr=-1.0)
    with pytest.raises(ValueError, match=r"scale_by_hypergradient_lr: `hypergrad_lr`"):
        schedules.scale_by_hypergradient_lr(0.1, -0.5)
    with pytest.raises(ValueError, match=r"`variant` must be one of \('code', 'paper'\).*'adam'"):
        schedules.adam_hd(variant="adam")
    with pytest.raises(ValueError, match=r"`nesterov=True` needs `momentum` > 0"):
        schedules.sgd_hd(0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"`nesterov=True` needs .*dampening=0\.5"):
        schedules.sgd_hd(0.1, momentum=0.9, dampening=0.5, nesterov=True)
    with pytest.raises(ValueError, match=r"`momentum` must be a finite number in \[0\.0, 1\.0\)"):
        schedules.sgd_hd(0.1, momentum=1.0)
    with pytest.raises(TypeError, match=r"`inner` must be None or an optax"):
        schedules.scale_by_hypergradient_lr(0.1, 1e-3, inner=lambda g: g)
    with pytest.raises(TypeError, match=r"`nesterov` must be a bool"):
        schedules.sgd_hd(0.1, momentum=0.9, nesterov="yes")
