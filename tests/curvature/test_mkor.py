"""MKOR against the official code (golden trajectories), exact-SM against a dense inverse,
the reset rule against a NumPy replay, and MKOR-H's switch."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import curvature
from tests.curvature._golden import load, relative_errors

CASES = ["mkor_sgd_warmup_resets", "mkor_adam_nobias"]


def _flax_params(z, bias1):
    """Torch-layout arrays ``l<i>_w`` (out, in), ``l<i>_b`` -> flax dicts (kernel (in, out))."""
    p = {f"l{i}": {"kernel": z[f"l{i}_w"].T} for i in range(2)}
    p["l0"]["bias"] = z["l0_b"]
    if bias1:
        p["l1"]["bias"] = z["l1_b"]
    return p


def _flax_traj(z, bias1):
    """The same for stacked (T, ...) arrays."""
    p = {f"l{i}": {"kernel": np.swapaxes(z[f"l{i}_w"], 1, 2)} for i in range(2)}
    p["l0"]["bias"] = z["l0_b"]
    if bias1:
        p["l1"]["bias"] = z["l1_b"]
    return p


def _tx(meta):
    kw, inner = meta["official_kwargs"], meta["inner_kwargs"]
    extra = {"momentum": inner["momentum"]} if "momentum" in inner else {}
    return curvature.mkor(
        inner["lr"],
        inner=kw["optimizer"],
        inv_freq=kw["inv_freq"],
        warmup_steps=kw.get("warmup_steps", 0),
        **extra,
    )


@pytest.mark.parametrize("name", CASES)
def test_trajectory_matches_official_code(name):
    meta, z = load(name)
    bias1 = meta["bias1"]
    steps = len(z["grads"]["l0_w"])
    inject = np.zeros((steps, 2, 2), bool)  # (t, layer, a/g)
    for t, pairs in meta["resets"].items():
        for layer, which in pairs:
            inject[int(t), layer, 0 if which == "a" else 1] = True
    tx = _tx(meta)
    p0 = jax.tree.map(jnp.asarray, _flax_params(z["p0"], bias1))
    grads = _flax_traj(z["grads"], bias1)
    stats = {
        f"l{i}": curvature.KroneckerStats(a=z["stats_a"][f"l{i}"], g=z["stats_g"][f"l{i}"])
        for i in range(2)
    }

    def body(carry, inputs):
        params, state = carry
        g, s, inj = inputs
        mk = state[0]
        factors = {
            key: f._replace(reset_a=f.reset_a | inj[i, 0], reset_g=f.reset_g | inj[i, 1])
            for i, (key, f) in enumerate(sorted(mk.factors.items()))
        }
        state = (mk._replace(factors=factors), *state[1:])
        updates, state = tx.update(g, state, params, layer_stats=s)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    run = jax.jit(lambda p, xs: jax.lax.scan(body, (p, tx.init(p)), xs))
    (_, state), traj = run(p0, (grads, stats, inject))
    errs = relative_errors(traj, _flax_traj(z["params"], bias1))
    # the reference runs in float32: agreement to float32 rounding over 20 steps
    assert errs.max() <= 1e-5, errs
    if meta["resets"]:
        # the injected reset made the factors differ from a run without it
        (_, quiet), _ = run(p0, (grads, stats, np.zeros_like(inject)))
        assert not np.allclose(state[0].factors["l1"].a_inv, quiet[0].factors["l1"].a_inv)


def test_capture_matches_official_hooks():
    """Our statistics on an equinox MLP equal what the official hooks recorded."""
    _, z = load("mkor_sgd_warmup_resets")

    class MLP(eqx.Module):
        l0: eqx.nn.Linear
        l1: eqx.nn.Linear

        def __call__(self, x):
            return self.l1(jnp.tanh(self.l0(x)))

    k = jax.random.split(jax.random.key(0))
    model = MLP(eqx.nn.Linear(5, 8, key=k[0]), eqx.nn.Linear(8, 3, key=k[1]))

    def loss(m, x, y):
        return 0.5 * jnp.mean(jnp.sum((jax.vmap(m)(x) - y) ** 2, axis=1))

    capture = jax.jit(lambda m, x, y: curvature.value_grad_and_stats(loss, m, x, y))
    before = {k: np.concatenate([z["p0"][k][None], v[:-1]]) for k, v in z["params"].items()}
    for t in (0, 1, 9):  # collection steps (warm-up, inv_freq) before and after a reset
        m = eqx.tree_at(
            lambda m: (m.l0.weight, m.l0.bias, m.l1.weight, m.l1.bias),
            model,
            tuple(jnp.asarray(before[k][t]) for k in ("l0_w", "l0_b", "l1_w", "l1_b")),
        )
        _, grads, stats = capture(m, z["batch"]["x"][t], z["batch"]["y"][t])
        for i in range(2):
            s = stats[f"l{i}"]
            np.testing.assert_allclose(s.a, z["stats_a"][f"l{i}"][t], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(s.g, z["stats_g"][f"l{i}"][t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grads.l0.weight, z["grads"]["l0_w"][t], rtol=1e-5, atol=1e-6)


def test_code_variant_reset_rule_numpy():
    """A factor with an entry above 2 after the update sets both flags: next time, identity."""
    gamma = 0.95
    params = {"kernel": jnp.zeros((2, 2))}
    tx = curvature.scale_by_mkor(inv_freq=1, gamma=gamma)
    state = tx.init(params)
    big = np.array([[3.0, 0.5], [0.5, 1.0]])
    f = state.factors[""]._replace(
        a_inv=jnp.asarray(big, jnp.float32), reset_a=jnp.asarray(False), reset_g=jnp.asarray(False)
    )
    state = state._replace(factors={"": f})
    a, g = np.array([0.3, -0.2]), np.array([0.1, 0.4])
    stats = curvature.KroneckerStats(a=jnp.asarray(a), g=jnp.asarray(g))
    grads = {"kernel": jnp.array([[1.0, 2.0], [3.0, 4.0]])}
    u, state = tx.update(grads, state, params, layer_stats=stats)
    b = gamma * big + (1 - gamma) * np.eye(2)
    want_a = b - np.outer(b @ a, a @ b) / (1 + a @ b @ a)
    f = state.factors[""]
    np.testing.assert_allclose(f.a_inv, want_a, rtol=1e-6)
    assert np.abs(want_a).max() > 2 and bool(f.reset_a)
    # A's check also set G's flag, and the G phase (after all A factors) used it at once: G was
    # reset to the identity in the same step and its flag cleared, as in the reference code
    np.testing.assert_array_equal(f.g_inv, np.eye(2))
    assert not bool(f.reset_g)
    v = want_a @ np.asarray(grads["kernel"])
    want_u = v * np.linalg.norm(grads["kernel"]) / np.linalg.norm(v)
    np.testing.assert_allclose(u["kernel"], want_u, rtol=1e-6)
    _, state = tx.update(grads, state, params, layer_stats=stats)
    f = state.factors[""]
    np.testing.assert_array_equal(f.a_inv, np.eye(2))  # reset at this collection
    assert not bool(f.reset_a)
    want_g = 0.95 * np.eye(2) + 0.05 * np.eye(2)  # G: the normal update from the identity
    want_g = want_g - np.outer(want_g @ g, g @ want_g) / (1 + g @ want_g @ g)
    np.testing.assert_allclose(f.g_inv, want_g, rtol=1e-6)


def test_exact_sm_is_the_inverse_of_the_blended_factor_float64():
    gamma, zeta, thr = 0.6, 0.1, 2.0
    tx = curvature.scale_by_mkor(
        inv_freq=1, gamma=gamma, variant="exact_sm", factor_dtype=jnp.float64
    )
    params = {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}
    state = tx.init(params)
    step = jax.jit(lambda s, st: tx.update(params, s, params, layer_stats=st))
    rng = np.random.default_rng(0)
    l_inv, fired = np.eye(4), 0
    for _ in range(8):
        a = np.append(0.3 * rng.normal(size=3), 1.0)
        _, state = step(state, curvature.KroneckerStats(a=a, g=rng.normal(size=2)))
        if np.abs(l_inv).max() > thr:
            l_inv, fired = (1 - zeta) * l_inv + zeta * np.eye(4), fired + 1
        l_new = gamma * np.linalg.inv(l_inv) + (1 - gamma) * np.outer(a, a)
        l_inv = np.linalg.inv(l_new)
        got = np.asarray(state.factors[""].a_inv)
        assert np.abs(got - l_inv).max() <= 1e-10 * np.abs(l_inv).max()
    assert fired >= 2  # the stabiliser was exercised


def test_layers_without_stats_fall_through_and_rescale_keeps_norm():
    params = {"a": {"kernel": jnp.ones((3, 2))}, "b": {"kernel": jnp.ones((2, 2))}}
    tx = curvature.mkor(0.5, inv_freq=1)
    state = tx.init(params)
    grads = jax.tree.map(lambda p: jnp.arange(p.size, dtype=p.dtype).reshape(p.shape), params)
    stats = {"a": curvature.KroneckerStats(a=jnp.array([1.0, 0.0, 1.0]), g=jnp.ones(2))}
    for _ in range(2):  # first step resets to I; the second preconditions layer "a"
        u, state = tx.update(grads, state, params, layer_stats=stats)
    np.testing.assert_allclose(u["b"]["kernel"], -0.5 * grads["b"]["kernel"])
    assert not np.allclose(u["a"]["kernel"], -0.5 * grads["a"]["kernel"])
    np.testing.assert_allclose(
        np.linalg.norm(u["a"]["kernel"]), 0.5 * np.linalg.norm(grads["a"]["kernel"]), rtol=1e-6
    )


def test_mkor_h_switches_when_the_rule_says():
    decay, thr, min_steps = 0.5, 0.05, 3
    losses = [1.0, 0.5, 0.3, 0.25, 0.24, 0.239, 0.2385, 0.2384]
    # NumPy replay of the documented rule
    ema, want = 0.0, None
    for t in range(1, len(losses)):
        ema = decay * ema + (1 - decay) * (losses[t - 1] - losses[t]) / abs(losses[t - 1])
        if t >= min_steps and ema / (1 - decay**t) < thr and want is None:
            want = t
    assert want is not None and want > min_steps
    params = {"kernel": jnp.ones((2, 2))}
    tx = curvature.mkor_h(
        0.1, inv_freq=1, switch_threshold=thr, switch_decay=decay, switch_min_steps=min_steps
    )
    state = tx.init(params)
    stats = curvature.KroneckerStats(a=jnp.array([1.0, -1.0]), g=jnp.array([0.5, 1.0]))
    grads = {"kernel": jnp.array([[1.0, 2.0], [0.0, 1.0]])}
    step = jax.jit(lambda s, v: tx.update(grads, s, params, layer_stats=stats, value=v))
    for t, value in enumerate(losses):
        u, state = step(state, value)
        assert bool(state[0].second_order) == (t < want)
        if t >= want:  # plain SGD on the raw gradient
            np.testing.assert_allclose(u["kernel"], -0.1 * grads["kernel"], rtol=1e-6)
        elif t >= 1:
            assert not np.allclose(u["kernel"], -0.1 * grads["kernel"])


def test_bad_input():
    params = {"kernel": jnp.zeros((3, 2))}
    with pytest.raises(ValueError, match="variant"):
        curvature.mkor(variant="paper")
    with pytest.raises(ValueError, match="gamma"):
        curvature.mkor(gamma=1.0)
    with pytest.raises(ValueError, match="inner"):
        curvature.mkor(inner="adamw")
    with pytest.raises(ValueError, match="learning_rate=None"):
        curvature.mkor(1e-3, inner=optax.adam(1e-3))
    tx = curvature.mkor(learning_rate=None, inner=optax.adam(1e-3))
    state = tx.init(params)
    bad = curvature.KroneckerStats(a=jnp.ones(4), g=jnp.ones(2))
    with pytest.raises(ValueError, match="layer_stats"):
        tx.update(params, state, params, layer_stats=bad)
    with pytest.raises(ValueError, match="not a layer"):
        tx.update(params, state, params, layer_stats={"other": bad})
    with pytest.raises(TypeError, match="value=loss"):
        h = curvature.mkor_h()
        h.update(params, h.init(params), params)
