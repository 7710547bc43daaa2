"""SPAM and Stable-SPAM against independent anchors (closed forms, optax.adam, hand-computed steps).

The trajectory tests against the reference codes live in ``test_golden.py``; here each branch
is checked on its own: the warm-up scale (closed form and values printed by torch's
``CosineAnnealingLR``), the equivalence with Adam when the SPAM machinery is off, the spike
clipping and the momentum reset on hand-computed steps, the weight-decay form, the Stable-SPAM
cosine factors and AdaGN, and the argument checks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_papers as jop
from jaxopt_papers.optimizers.spam import SPAMState, warmup_scale
from jaxopt_papers.optimizers.stable_spam import StableSPAMState, cosine_factor


def _grads(steps, shape=(5,), seed=0):
    return np.random.default_rng(seed).normal(size=(steps, *shape))


def _run(tx, grads, p0=None):
    """Per-step updates and states of ``tx`` on the given gradient sequence (float64)."""
    p = jnp.zeros(grads.shape[1:]) if p0 is None else jnp.asarray(p0)
    state = tx.init(p)
    update = jax.jit(tx.update)
    us, states = [], []
    for g in grads:
        u, state = update(jnp.asarray(g), state, p)
        p = p + u
        us.append(np.asarray(u))
        states.append(state)
    return np.stack(us), states


# ------------------------------------------------------------------------------------- SPAM


def test_warmup_scale_closed_form_and_torch_values():
    n = 5
    c = jnp.arange(9)
    want = [1 - 0.99 * (1 + math.cos(math.pi * k / (n + 1))) / 2 if k < n else 1 for k in range(9)]
    np.testing.assert_allclose(warmup_scale(c, n), want, rtol=1e-14)
    # 1 - death_rate printed by the official CosineDecay(0.99, 5) (torch CosineAnnealingLR)
    torch_death = [0.99, 0.9236825748732972, 0.7424999999999999, 0.495, 0.2475000000000001, 0.0]
    np.testing.assert_allclose(warmup_scale(c[:6], n), 1 - np.array(torch_death), rtol=1e-14)


def test_warmup_follows_resets():
    """Updates with warm-up / updates without = the cosine scale of the expected counter."""
    n, dt, steps = 6, 10, 30
    grads = _grads(steps)
    kw = dict(threshold=0.0, reset_interval=dt, grad_accu_steps=3)
    with_w, _ = _run(jop.scale_by_spam(warmup_steps=n, **kw), grads)
    without, _ = _run(jop.scale_by_spam(warmup_steps=0, **kw), grads)
    for k in range(1, steps + 1):
        c = n + k if k < dt else k % dt  # counter starts at N + 1, is 0 on reset steps
        scale = 1 - 0.99 * (1 + math.cos(math.pi * c / (n + 1))) / 2 if c < n else 1.0
        np.testing.assert_allclose(with_w[k - 1], scale * without[k - 1], rtol=1e-13)
    np.testing.assert_allclose(with_w[dt - 1], 0.01 * without[dt - 1], rtol=1e-13)


@pytest.mark.parametrize("reset_interval", [100, 0])
def test_equals_adam_with_step_dependent_eps(reset_interval):
    """SPAM = Adam with eps_t = eps / sqrt(1 - b2^t) when clipping, resets and warm-up are off.

    sqrt(bc2)/bc1 · m/(sqrt(v) + eps) = m̂ / (sqrt(v̂) + eps/sqrt(bc2)), with m̂ = m/bc1 and
    v̂ = v/bc2: the reference code adds eps before the second-moment bias correction.
    """
    lr, b1, b2, eps, steps = 0.05, 0.8, 0.95, 1e-2, 25
    grads = _grads(steps, (3, 4))
    tx = jop.spam(lr, b1, b2, eps, threshold=0.0, reset_interval=reset_interval, warmup_steps=10)
    ours, _ = _run(tx, grads)
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2, eps=eps)
    p, state = jnp.zeros((3, 4)), adam.init(jnp.zeros((3, 4)))
    for t, g in enumerate(grads, start=1):
        hp = dict(state.hyperparams, eps=jnp.asarray(eps / math.sqrt(1 - b2**t)))
        u, state = adam.update(jnp.asarray(g), state._replace(hyperparams=hp), p)
        p = p + u
        np.testing.assert_allclose(ours[t - 1], u, rtol=1e-12, atol=1e-15)


def test_spike_clipped_to_sqrt_threshold_times_v():
    b1, b2, theta, k_spike = 0.9, 0.9, 50.0, 6
    g0 = np.array([1.0, -2.0, 0.5, 3.0])
    grads = np.tile(g0, (k_spike, 1))
    grads[-1] = g0 * np.array([100.0, -100.0, 1.0, 2.0])  # two spikes, sign flip on one
    tx = jop.scale_by_spam(
        b1, b2, 1e-8, warmup_steps=0, threshold=theta, reset_interval=100, grad_accu_steps=2
    )
    _, states = _run(tx, grads)
    k = k_spike - 1  # constant gradient before the spike: closed-form moments
    v_prev = (1 - b2**k) * g0**2
    m_prev = (1 - b1**k) * g0
    g = grads[-1]
    clipped = np.where(g**2 > theta * v_prev, np.sign(g) * np.sqrt(theta * v_prev), g)
    assert np.sum(clipped != g) == 2  # the two spikes, not the mild entry (factor 2)
    np.testing.assert_allclose(states[-1].mu, b1 * m_prev + (1 - b1) * clipped, rtol=1e-13)
    np.testing.assert_allclose(states[-1].nu, b2 * v_prev + (1 - b2) * clipped**2, rtol=1e-13)
    # without clipping (threshold 0, or the spike inside the first grad_accu_steps): raw gradient
    for kw in (dict(threshold=0.0, grad_accu_steps=2), dict(threshold=theta, grad_accu_steps=7)):
        tx = jop.scale_by_spam(b1, b2, 1e-8, warmup_steps=0, reset_interval=100, **kw)
        _, states = _run(tx, grads)
        np.testing.assert_allclose(states[-1].mu, b1 * m_prev + (1 - b1) * g, rtol=1e-13)


def test_momentum_reset_keeps_bias_counter_and_pauses_clipping():
    b1, b2, eps, dt = 0.9, 0.99, 1e-8, 8
    grads = _grads(2 * dt + 3, (6,), seed=3)
    grads[dt + 1] *= 1e3  # spike two steps after the reset: inside the no-clipping window
    tx = jop.scale_by_spam(
        b1, b2, eps, warmup_steps=4, threshold=10.0, reset_interval=dt, grad_accu_steps=3
    )
    us, states = _run(tx, grads)
    g = grads[dt - 1]
    st = states[dt - 1]
    assert isinstance(st, SPAMState) and int(st.count) == dt and int(st.warmup_count) == 1
    np.testing.assert_allclose(st.mu, (1 - b1) * g, rtol=1e-14)
    np.testing.assert_allclose(st.nu, (1 - b2) * g**2, rtol=1e-14)
    # bias correction uses t = K = dt (not 1) and the warm-up scale is 0.01
    m, v = (1 - b1) * g, (1 - b2) * g**2
    want = 0.01 * math.sqrt(1 - b2**dt) / (1 - b1**dt) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(us[dt - 1], want, rtol=1e-12)
    # the spike at K = dt + 2 (K mod dt = 2 < grad_accu_steps) is not clipped
    m2 = b1 * (b1 * m + (1 - b1) * grads[dt]) + (1 - b1) * grads[dt + 1]
    np.testing.assert_allclose(states[dt + 1].mu, m2, rtol=1e-13)


def test_weight_decay_after_step():
    lr, wd = 0.1, 0.3
    grads = _grads(4, (3,))
    p0 = np.array([1.0, -2.0, 0.5])
    direction, _ = _run(jop.scale_by_spam(reset_interval=2, warmup_steps=3), grads)
    ours, _ = _run(jop.spam(lr, weight_decay=wd, reset_interval=2, warmup_steps=3), grads, p0)
    p = p0.copy()
    for d, u in zip(direction, ours, strict=True):
        new = (p - lr * d) * (1 - lr * wd)  # official: step, then p <- p - lr*wd*p
        np.testing.assert_allclose(p + u, new, rtol=1e-14)
        p = new
    # mask=False for every leaf: no decay at all
    masked, _ = _run(
        jop.spam(
            lr,
            weight_decay=wd,
            reset_interval=2,
            warmup_steps=3,
            mask=lambda p: jax.tree.map(lambda _: False, p),
        ),
        grads,
        p0,
    )
    np.testing.assert_allclose(masked, -lr * direction, rtol=1e-14)


def test_spam_dtypes_init_extra_args_and_inject():
    params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.zeros((2,), jnp.float32)}
    tx = jop.spam(1e-2, weight_decay=0.1, reset_interval=3, grad_accu_steps=2, warmup_steps=2)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    state = tx.init(abstract)
    g = jax.tree.map(lambda x: jnp.full(x.shape, 0.5, x.dtype), params)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, value=1.0, unknown=3))
    for _ in range(5):
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
    assert u["w"].dtype == jnp.bfloat16 and u["b"].dtype == jnp.float32
    assert state[0].mu["w"].dtype == jnp.bfloat16 and state[0].count.dtype == jnp.int32
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(params))
    # inject_hyperparams gives the same updates as the plain alias
    kw = dict(reset_interval=4, grad_accu_steps=2, warmup_steps=2)
    grads = _grads(9, (4,))
    plain, _ = _run(jop.spam(0.1, threshold=20.0, weight_decay=0.2, **kw), grads)
    inj = optax.inject_hyperparams(jop.spam, static_args=tuple(kw))(
        learning_rate=0.1, threshold=20.0, weight_decay=0.2, **kw
    )
    injected, _ = _run(inj, grads)
    np.testing.assert_allclose(injected, plain, rtol=1e-13)


# ------------------------------------------------------------------------------- Stable-SPAM


def test_cosine_factors_match_torch_values():
    t = jnp.arange(1, 10)
    # printed by pytorch_optimizer's CosineDecay(1.0, 6, eta_min=0.5).get_death_rate(T)
    pyopt = [
        0.9270164097032627,
        0.8215520660538953,
        0.7044954757469483,
        0.5990311320975809,
        0.5260475418008436,
        0.5,
        0.5,
        0.5,
        0.5,
    ]
    # printed by the official CosineDecay(1.0, 6, eta_min=0.5).get_dr(T)
    official = [
        0.9752422169756048,
        0.9058724504646833,
        0.8056302334890786,
        0.6943697665109214,
        0.5941275495353167,
        0.5247577830243952,
        0.5,
        0.5247577830243952,
        0.5941275495353165,
    ]
    np.testing.assert_allclose(cosine_factor(t, 6, 0.5, "pytorch_optimizer"), pyopt, rtol=1e-14)
    np.testing.assert_allclose(cosine_factor(t, 6, 0.5, "official"), official, rtol=1e-14)
    np.testing.assert_array_equal(cosine_factor(t, None, 0.5, "official"), np.ones(9))


@pytest.mark.parametrize("variant", ["pytorch_optimizer", "official"])
def test_stable_spam_is_adam_for_constant_norm_gradients(variant):
    """theta = 0 never clips (M̂ = max|g|); with a constant gradient norm n AdaGN divides every
    gradient by n + eps, so the step is Adam's with eps (n + eps) in place of eps."""
    steps, b1, b2, n, eps = 20, 0.85, 0.97, 2.5, 1e-3
    grads = _grads(steps, (4, 3), seed=5)
    grads *= n / np.linalg.norm(grads.reshape(steps, -1), axis=1)[:, None, None]
    tx = jop.stable_spam(0.03, b1, b2, gamma1=0.6, gamma2=0.8, theta=0.0, eps=eps, variant=variant)
    ours, _ = _run(tx, grads)
    adam, _ = _run(optax.adam(0.03, b1, b2, eps=eps * (n + eps)), grads)
    np.testing.assert_allclose(ours, adam, rtol=1e-12)
    # and not Adam's with the plain eps (the comparison above can tell the two apart)
    plain, _ = _run(optax.adam(0.03, b1, b2, eps=eps), grads)
    assert np.abs(ours - plain).max() > 1e-6


def test_stable_spam_spike_clipping_and_adagn():
    theta, gamma1, gamma2, eps = 0.9, 0.7, 0.9, 1e-8
    g0 = np.array([1.0, -2.0, 0.5])
    grads = np.stack([g0, g0, g0 * np.array([1.0, 30.0, 1.0])])
    tx = jop.scale_by_stable_spam(gamma1=gamma1, gamma2=gamma2, theta=theta, eps=eps)
    _, states = _run(tx, grads)
    st = states[-1]
    assert isinstance(st, StableSPAMState)
    g = grads[-1]
    big_m = (1 - theta) * (theta**2 * 2.0 + theta * 2.0 + 60.0)
    np.testing.assert_allclose(st.max_abs, big_m, rtol=1e-14)
    m_hat = big_m / (1 - theta**3)
    clipped = np.where(np.abs(g) > m_hat, g / 60.0 * m_hat, g)
    assert np.sum(clipped != g) == 1
    norms = [np.linalg.norm(g0), np.linalg.norm(g0), np.linalg.norm(clipped)]
    mn = sum((1 - gamma1) * gamma1 ** (2 - i) * n for i, n in enumerate(norms))
    vn = sum((1 - gamma2) * gamma2 ** (2 - i) * n**2 for i, n in enumerate(norms))
    np.testing.assert_allclose(st.norm_mu, mn, rtol=1e-14)
    np.testing.assert_allclose(st.norm_nu, vn, rtol=1e-14)


def test_stable_spam_reset_and_zero_gradient_per_variant():
    gap, b1, b2 = 4, 0.9, 0.999
    grads = _grads(6, (3,), seed=7)
    grads[2] = 0.0  # an all-zero gradient at T = 3
    us, st = {}, {}
    for variant in ("pytorch_optimizer", "official"):
        tx = jop.scale_by_stable_spam(b1=b1, b2=b2, update_proj_gap=gap, variant=variant)
        us[variant], st[variant] = _run(tx, grads)
    # zero gradient: pytorch_optimizer skips the tensor, the official code decays the moments
    pyopt, off = st["pytorch_optimizer"], st["official"]
    np.testing.assert_array_equal(pyopt[2].mu, pyopt[1].mu)
    np.testing.assert_array_equal(pyopt[2].norm_mu, pyopt[1].norm_mu)
    np.testing.assert_array_equal(us["pytorch_optimizer"][2], 0.0)
    np.testing.assert_allclose(off[2].mu, b1 * off[1].mu, rtol=1e-14)
    np.testing.assert_allclose(off[2].nu, b2 * off[1].nu, rtol=1e-14)
    np.testing.assert_allclose(off[2].norm_mu, 0.7 * off[1].norm_mu, rtol=1e-14)
    assert np.all(us["official"][2] != 0.0)
    # reset at T = gap: pytorch_optimizer zeroes the moments before the step uses them ...
    pre = pyopt[gap - 1]
    assert int(pre.bias_count) == 1 and int(pre.count) == gap
    np.testing.assert_allclose(pre.nu, (1 - b2) * (pre.mu / (1 - b1)) ** 2, rtol=1e-12)
    # ... the official code after it (the stored moments restart from zero)
    assert not np.any(off[gap - 1].mu) and not np.any(off[gap - 1].nu)
    assert int(off[gap - 1].bias_count) == 1


def test_stable_spam_dtypes_and_init():
    params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.ones((2,), jnp.float32)}
    tx = jop.stable_spam(1e-2, t_max=5, update_proj_gap=3, weight_decay=0.1)
    state = tx.init(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params))
    g = jax.tree.map(lambda x: jnp.full(x.shape, 0.5, x.dtype), params)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, value=1.0))
    for _ in range(5):
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
    assert u["w"].dtype == jnp.bfloat16 and u["b"].dtype == jnp.float32
    assert state[0].mu["w"].dtype == jnp.bfloat16 and state[0].max_abs["w"].dtype == jnp.float32
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(params))


# ---------------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(b1=1.0), "b1"),
        (dict(b2=-0.1), "b2"),
        (dict(eps=-1e-8), "eps"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(threshold=-1.0), "threshold"),
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(reset_interval=-5), "reset_interval"),
        (dict(grad_accu_steps=-1), "grad_accu_steps"),
    ],
)
def test_spam_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        jop.spam(**kwargs)


def test_spam_structural_ints_must_be_ints():
    with pytest.raises(TypeError, match="`warmup_steps`"):
        jop.spam(warmup_steps=1.5)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(b1=1.5), "b1"),
        (dict(gamma1=1.0), "gamma1"),
        (dict(gamma2=-0.5), "gamma2"),
        (dict(theta=1.0), "theta"),
        (dict(eta_min=1.5), "eta_min"),
        (dict(t_max=0), "t_max"),
        (dict(update_proj_gap=-1), "update_proj_gap"),
        (dict(eps=-1.0), "eps"),
        (dict(learning_rate=-1e-3), "learning_rate"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(variant="torch"), "variant"),
    ],
)
def test_stable_spam_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        jop.stable_spam(**kwargs)


def test_stable_spam_gamma1_minus_one_means_b1():
    grads = _grads(6, (3,))
    a, _ = _run(jop.stable_spam(0.1, b1=0.8, gamma1=-1.0), grads)
    b, _ = _run(jop.stable_spam(0.1, b1=0.8, gamma1=0.8), grads)
    np.testing.assert_allclose(a, b, rtol=1e-14)
