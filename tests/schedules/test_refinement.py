"""Refinement schedules, linear decay and the gradient-norm recorder.

The oracle for ``refined_schedule`` is a float64 NumPy/SciPy replay of the reference code
(facebookresearch/adaptive_scheduling @ 37a8a9b), written here from reading it: the filtering of
``visual.py`` (interpolate up to ``nvals`` points, ``filter_width = 2*(int(sigma2*nvals)//2) + 1``,
``np.pad(..., (0, 2*filter_width), mode='reflect')``, ``scipy.ndimage.median_filter(size=...,
mode='nearest')``, drop the padding, interpolate to ``nvals``), ``find_closed_form_schedule``
(``weights[t] * tail_sums[t+1] / tail_sums[-1]``, last entry 0) with ``weights = G**-2`` or
``G**-1``, and the normalisation ``sched / np.max(sched)``. The library uses its own median
filter and no SciPy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.ndimage import median_filter

from jaxopt_papers import schedules


def reference_schedule(gnorms, sigma2=0.1, nvals=None, l1=False):
    """The reference code's pipeline (visual.py lines 139-159 and 203-211, find_schedule.py)."""
    gnorms = np.asarray(gnorms, np.float64)
    nvals = len(gnorms) if nvals is None else nvals
    glen = len(gnorms)
    if glen < nvals:
        gnorms = np.interp(np.linspace(0, 1.0, nvals), np.linspace(0, 1.0, glen), gnorms)
        glen = len(gnorms)
    filter_width = 2 * (int(sigma2 * nvals) // 2) + 1
    pad = 2 * filter_width
    filtered = median_filter(
        np.pad(gnorms, (0, pad), mode="reflect"), size=filter_width, mode="nearest"
    )[:-pad]
    smoothed = np.interp(np.linspace(0, 1.0, nvals), np.linspace(0, 1.0, glen), filtered)
    weights = smoothed**-1 if l1 else smoothed**-2.0
    T = len(smoothed)
    sched = np.zeros(T)
    tail_sums = np.flip(np.cumsum(np.flip(weights)))
    for t in range(T):
        sched[t] = 0 if t == T - 1 else weights[t] * tail_sums[t + 1] / tail_sums[-1]
    return sched / np.max(sched)


def evaluate(sched, n):
    return np.asarray(jax.jit(jax.vmap(sched))(jnp.arange(n)))


def noisy_norms(n, seed):
    rng = np.random.default_rng(seed)
    trend = 1.0 + 4.0 * np.exp(-np.arange(n) / (0.1 * n)) + 0.5 * np.linspace(0, 1, n) ** 4
    return trend * np.exp(0.3 * rng.normal(size=n))


@pytest.mark.parametrize(
    "n, num_steps, tau, kind",
    [
        (200, None, 0.1, "sgd"),
        (200, None, 0.1, "adam"),
        (157, None, 0.05, "sgd"),
        (120, 300, 0.1, "sgd"),  # fewer recorded norms than steps: interpolate first
        (400, 150, 0.2, "adam"),  # more recorded norms than steps: filter, then interpolate
        (60, None, 0.0, "sgd"),  # width 1: no filtering
        (30, None, 1.0, "adam"),  # a window wider than the sequence
    ],
)
def test_matches_the_reference_pipeline(n, num_steps, tau, kind):
    g = noisy_norms(n, seed=n)
    peak = 0.3
    sched = schedules.refined_schedule(g, peak, tau=tau, kind=kind, num_steps=num_steps)
    T = n if num_steps is None else num_steps
    ref = peak * reference_schedule(g, sigma2=tau, nvals=T, l1=kind == "adam")
    ours = evaluate(sched, T + 3)
    np.testing.assert_allclose(ours[:T], ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(ours[T:], 0.0)  # after the run: zero


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_constant_norms_give_exact_linear_decay(kind):
    T = 50
    sched = schedules.refined_schedule(np.full(T, 2.5), 0.1, kind=kind)
    linear = schedules.linear_decay(0.1, T - 1)
    t = np.arange(T + 5)
    np.testing.assert_allclose(evaluate(sched, T + 5), evaluate(linear, T + 5), rtol=1e-13)
    np.testing.assert_allclose(evaluate(sched, T)[:T], 0.1 * (1 - t[:T] / (T - 1)), atol=1e-15)


def test_early_dropping_norms_give_a_warmup():
    g = np.r_[np.full(20, 10.0), np.ones(180)]
    values = evaluate(schedules.refined_schedule(g, 1.0), 200)
    assert values[:15].max() < 0.011  # starts near zero: weights 1/100 of the later ones
    peak = int(np.argmax(values))
    assert 15 <= peak <= 30, peak  # the warm-up ends about where the norms drop
    assert np.all(np.diff(values[peak + 1 :]) <= 0)  # then decaying
    assert values[peak] == pytest.approx(1.0, rel=1e-12)


def test_rising_final_norms_anneal_faster():
    T = 200
    rising = np.r_[np.ones(150), np.linspace(1.0, 4.0, 50)]
    values = evaluate(schedules.refined_schedule(rising, 1.0), T)
    linear = 1 - np.arange(T) / (T - 1)
    assert np.all(values[160:-1] < linear[160:-1])


def test_adam_kind_uses_inverse_norm_weights():
    # G = (1, 2, 4): sgd weights 1, 1/4, 1/16; adam weights 1, 1/2, 1/4 (no smoothing: tau=0)
    g = np.array([1.0, 2.0, 4.0])
    sgd = evaluate(schedules.refined_schedule(g, 1.0, tau=0.0, kind="sgd"), 3)
    adam = evaluate(schedules.refined_schedule(g, 1.0, tau=0.0, kind="adam"), 3)
    s_sgd = np.array([1 * (1 / 4 + 1 / 16), (1 / 4) * (1 / 16), 0.0])
    s_adam = np.array([1 * (1 / 2 + 1 / 4), (1 / 2) * (1 / 4), 0.0])
    np.testing.assert_allclose(sgd, s_sgd / s_sgd.max(), rtol=1e-14)
    np.testing.assert_allclose(adam, s_adam / s_adam.max(), rtol=1e-14)


def test_schedule_drives_an_optax_optimizer():
    g = noisy_norms(40, seed=1)
    sched = schedules.refined_schedule(g, 0.2)
    tx = optax.sgd(sched)
    params = jnp.ones(2)
    state = tx.init(params)
    lrs = []
    for _ in range(40):
        updates, state = jax.jit(tx.update)(jnp.ones(2), state, params)
        lrs.append(-float(updates[0]))
    np.testing.assert_allclose(lrs, 0.2 * reference_schedule(g), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------- linear decay


@pytest.mark.parametrize("warmup", [0, 1, 7])
def test_linear_decay_closed_form(warmup):
    T, peak = 30, 0.5
    t = np.arange(T + 4, dtype=np.float64)
    expected = np.where(
        t < warmup,
        peak * t / max(warmup, 1),
        peak * np.clip(1 - (t - warmup) / (T - warmup), 0, 1),
    )
    ours = evaluate(schedules.linear_decay(peak, T, warmup_steps=warmup), T + 4)
    np.testing.assert_allclose(ours, expected, rtol=1e-14, atol=1e-16)
    # optax's linear schedule is the same thing after the warm-up
    ref = optax.linear_schedule(peak, 0.0, T - warmup)
    np.testing.assert_allclose(ours[warmup:], evaluate(ref, T + 4 - warmup), rtol=1e-12)


def test_linear_decay_under_inject_hyperparams():
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=schedules.linear_decay(1.0, 4))
    params = jnp.zeros(1)
    state = tx.init(params)
    lrs = []
    for _ in range(5):
        updates, state = tx.update(jnp.ones(1), state, params)
        lrs.append(-float(updates[0]))
    assert lrs == [1.0, 0.75, 0.5, 0.25, 0.0]


# ---------------------------------------------------------------------------- the recorder


def test_record_grad_norms_matches_numpy():
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(7, 3, 2)), "b": rng.normal(size=(7, 5))}
    params = {"a": jnp.zeros((3, 2)), "b": jnp.zeros(5)}
    tx = optax.chain(schedules.record_grad_norms(num_steps=5), optax.sgd(0.1))

    def step(state, g):
        updates, state = tx.update(g, state, params)
        return state, updates

    state, updates = jax.jit(lambda s, gs: jax.lax.scan(step, s, gs))(tx.init(params), grads)
    flat = np.concatenate([grads["a"].reshape(7, -1), grads["b"]], axis=1)
    rec = state[0]
    np.testing.assert_allclose(rec.l2, np.linalg.norm(flat, axis=1)[:5], rtol=1e-13)
    np.testing.assert_allclose(rec.l1, np.abs(flat).sum(axis=1)[:5], rtol=1e-13)
    assert int(rec.count) == 7  # steps 6 and 7 were seen, not stored
    np.testing.assert_allclose(updates["b"], -0.1 * grads["b"], rtol=1e-15)  # passed through


def test_record_grad_norms_last_only():
    tx = schedules.record_grad_norms()
    params = jnp.zeros(3, jnp.float32)
    state = tx.init(params)
    g = jnp.array([1.0, -2.0, 2.0], jnp.float32)
    out, state = jax.jit(tx.update)(g, state)
    assert state.l2.shape == () and state.l2.dtype == jnp.float32
    assert (float(state.l2), float(state.l1)) == (3.0, 5.0)
    np.testing.assert_array_equal(out, g)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "norms, match",
    [
        (np.ones((4, 2)), r"`grad_norms` must be a 1-D array.*shape \(4, 2\)"),
        (np.ones(1), r"`grad_norms` must be a 1-D array of at least 2.*\(1,\)"),
        (np.array([1.0, np.nan, 2.0]), r"`grad_norms` must be finite and positive.*index 1"),
        (np.array([1.0, 2.0, np.inf]), r"`grad_norms` must be finite.*inf.*index 2"),
        (np.array([1.0, 0.0, 2.0]), r"`grad_norms` must be finite and positive.*index 1"),
    ],
)
def test_bad_grad_norms(norms, match):
    with pytest.raises(ValueError, match=match):
        schedules.refined_schedule(norms, 0.1)


def test_bad_arguments():
    g = np.ones(10)
    with pytest.raises(ValueError, match=r"`kind` must be one of \('sgd', 'adam'\).*'lamb'"):
        schedules.refined_schedule(g, 0.1, kind="lamb")
    with pytest.raises(ValueError, match=r"`tau` must be a finite number in \[0\.0, 1\.0\]"):
        schedules.refined_schedule(g, 0.1, tau=1.5)
    with pytest.raises(ValueError, match=r"`peak_value`.*got -1"):
        schedules.refined_schedule(g, -1.0)
    with pytest.raises(ValueError, match=r"`num_steps` must be an int >= 2, got 1"):
        schedules.refined_schedule(g, 0.1, num_steps=1)
    with pytest.raises(TypeError, match=r"`grad_norms`.*traced"):
        jax.jit(lambda x: schedules.refined_schedule(x, 0.1)(0))(jnp.ones(4))
    with pytest.raises(TypeError, match=r"`grad_norms` must be a 1-D array of numbers"):
        schedules.refined_schedule(["a", "b"], 0.1)
    with pytest.raises(ValueError, match=r"`warmup_steps` must be smaller than `num_steps`"):
        schedules.linear_decay(0.1, 10, warmup_steps=10)
    with pytest.raises(ValueError, match=r"`num_steps` must be an int >= 1, got 0"):
        schedules.linear_decay(0.1, 0)
    with pytest.raises(TypeError, match=r"`num_steps` must be a Python int, got 2\.5"):
        schedules.linear_decay(0.1, 2.5)
    with pytest.raises(ValueError, match=r"`num_steps` must be an int >= 1"):
        schedules.record_grad_norms(num_steps=0)
