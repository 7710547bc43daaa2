"""MeZO's SPSA estimate: its law, its key scheme, and the official trainer's trajectory.

Every number is compared with something independent: the closed-form gradient of a quadratic
(a statistical test with a stated tolerance), the directions regenerated from the documented key
scheme, and a float64 replay of the official MeZO trainer (``tests/golden/data/zo/``, made by
``tests/golden/make_golden_zeroth_order.py``) fed the same directions.
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import zeroth_order as zo

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden" / "data" / "zo"
GOLDEN_FILES = sorted(GOLDEN.glob("mezo_*.npz"))

rng = np.random.default_rng(0)
M = rng.normal(size=(6, 6))
A = M @ M.T / 6 + np.eye(6)  # symmetric positive definite
b = rng.normal(size=6)
THETA = {"w": rng.normal(size=(2, 2)), "v": rng.normal(size=2)}


def flat(p):
    return jnp.concatenate([p["v"].ravel(), p["w"].ravel()])  # jax.tree.leaves order: v, w


def quadratic(p):
    x = flat(p)
    return 0.5 * x @ jnp.asarray(A) @ x + jnp.asarray(b) @ x


def true_grad():
    x = np.concatenate([THETA["v"].ravel(), THETA["w"].ravel()])
    return A @ x + b


def test_spsa_mean_tends_to_the_gradient():
    # For a quadratic the central difference is exact, so each direction gives z (z·g); its
    # coordinate i has mean g_i and variance |g|² + g_i². With n directions the mean's standard
    # error is sqrt((|g|² + g_i²)/n): every coordinate must lie within 5 standard errors.
    n = 40000
    theta = jax.tree.map(jnp.asarray, THETA)
    est = flat(zo.spsa_gradient(quadratic, theta, jax.random.PRNGKey(1), 1e-3, n))
    g = true_grad()
    se = np.sqrt((g @ g + g**2) / n)
    zscores = (np.asarray(est) - g) / se
    assert np.all(np.abs(zscores) < 5), zscores
    # and the test has power: a wrong scale (e.g. dividing by eps instead of 2 eps) is rejected
    assert np.max(np.abs((2 * np.asarray(est) - g) / se)) > 5


def test_estimate_follows_the_documented_key_scheme():
    # direction k, leaf i ~ normal(fold_in(fold_in(key, k), i)); each gives z (z·g) (exact for a
    # quadratic), and the estimate is their mean
    key = jax.random.PRNGKey(3)
    theta = jax.tree.map(jnp.asarray, THETA)
    est = zo.spsa_gradient(quadratic, theta, key, eps=1e-2, num_directions=3)
    g = true_grad()
    want = np.zeros(6)
    for k in range(3):
        kk = jax.random.fold_in(key, k)
        z = np.concatenate(
            [
                np.asarray(jax.random.normal(jax.random.fold_in(kk, 0), (2,))),
                np.asarray(jax.random.normal(jax.random.fold_in(kk, 1), (2, 2))).ravel(),
            ]
        )
        want += z * (z @ g) / 3
    np.testing.assert_allclose(np.asarray(flat(est)), want, rtol=1e-10, atol=1e-12)


def test_transformation_draws_step_keys_from_the_count():
    # scale_by_spsa's step t uses fold_in(PRNGKey(seed), t): equal to spsa_gradient there
    theta = jax.tree.map(jnp.asarray, THETA)
    tx = zo.scale_by_spsa(eps=1e-3, num_directions=2, seed=5)
    state = tx.init(theta)
    update = jax.jit(lambda s: tx.update(None, s, theta, value_fn=quadratic))
    reference = jax.jit(lambda key: zo.spsa_gradient(quadratic, theta, key, 1e-3, 2))
    for t in range(3):
        est, state = update(state)
        want = reference(jax.random.fold_in(jax.random.PRNGKey(5), t))
        np.testing.assert_allclose(np.asarray(flat(est)), np.asarray(flat(want)), rtol=1e-12)
    assert int(state.count) == 3


def run(tx, steps=5):
    def step(carry, _):
        params, state = carry
        updates, state = tx.update(None, state, params, value_fn=quadratic)
        params = optax.apply_updates(params, updates)
        return (params, state), flat(params)

    params = jax.tree.map(jnp.asarray, THETA)
    _, traj = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=steps))(params)
    return np.asarray(traj)


def test_same_seed_same_trajectory():
    a = run(zo.mezo(1e-2, seed=7))
    b = run(zo.mezo(1e-2, seed=7))
    c = run(zo.mezo(1e-2, seed=8))
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - c)) > 1e-3


def test_mask_fn_zeroes_the_masked_coordinates():
    theta = jax.tree.map(jnp.asarray, THETA)
    mask = {"v": jnp.array([True, False]), "w": jnp.array([[False, True], [True, True]])}
    est = zo.spsa_gradient(quadratic, theta, jax.random.PRNGKey(0), mask_fn=lambda p: mask)
    full = zo.spsa_gradient(quadratic, theta, jax.random.PRNGKey(0))
    for k in theta:
        m = np.asarray(mask[k])
        assert np.all(np.asarray(est[k])[~m] == 0)
        assert np.all(np.asarray(est[k])[m] != 0)
    # masked directions change the estimate on the kept coordinates too (z·g loses terms)
    assert not np.allclose(np.asarray(est["v"][0]), np.asarray(full["v"][0]))


def test_mezo_decay_rule_matches_the_reference_names():
    params = {
        "fc1": {"weight": 1.0, "bias": 1.0},
        "layer_norm": {"weight": 1.0, "bias": 1.0},
        "LayerNorm_0": {"scale": 1.0},
        "encoder": {"layernorm_embedding": {"weight": 1.0}},
        "lm_head": {"kernel": 1.0},
    }
    got = zo.mezo_decay_mask(params)
    assert got == {
        "fc1": {"weight": True, "bias": False},
        "layer_norm": {"weight": False, "bias": False},
        "LayerNorm_0": {"scale": False},
        "encoder": {"layernorm_embedding": {"weight": False}},
        "lm_head": {"kernel": True},
    }


# ------------------------------------------------------------------------------------------------
# golden trajectories: the official trainer's arithmetic, replayed in float64 with torch


def load_golden(path):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    groups = {}
    for key in [k for k in arrays if "/" in k]:
        group, name = key.split("/")
        module, leaf = name.split("__")
        groups.setdefault(group, {}).setdefault(module, {})[leaf] = arrays.pop(key)
    return meta, arrays, groups


def golden_loss(x, y):
    def loss(p):
        h = x @ p["fc1"]["weight"].T + p["fc1"]["bias"]
        mu = h.mean(-1, keepdims=True)
        var = ((h - mu) ** 2).mean(-1, keepdims=True)
        h = (h - mu) / jnp.sqrt(var + 1e-5) * p["layer_norm"]["weight"] + p["layer_norm"]["bias"]
        out = (jnp.tanh(h) @ p["fc2"]["weight"].T + p["fc2"]["bias"])[:, 0]
        return jnp.mean((out - y) ** 2)

    return loss


def test_golden_files_exist():
    assert len(GOLDEN_FILES) >= 2, f"run tests/golden/make_golden_zeroth_order.py ({GOLDEN})"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_mezo_replays_the_official_trainer(path):
    meta, arrays, groups = load_golden(path)
    x, y, batches = arrays["x"], arrays["y"], arrays["batches"]
    params = jax.tree.map(jnp.asarray, groups["p0"])
    zs, ref = groups["z"], groups["params"]
    steps = len(batches)
    kwargs = meta["kwargs"]

    @jax.jit
    def step(params, state, z_t, xb, yb):
        # the documented way to replay given directions: a sampler that returns them
        sampler = lambda key, p: z_t
        tx = zo.mezo(**kwargs, sampler=sampler)
        loss = golden_loss(xb, yb)
        est = zo.spsa_gradient(loss, params, jax.random.PRNGKey(0), kwargs["eps"], sampler=sampler)
        updates, state = tx.update(None, state, params, value_fn=loss)
        return optax.apply_updates(params, updates), state, est

    state = zo.mezo(**kwargs).init(params)
    worst = 0.0
    for t in range(steps):
        z_t = jax.tree.map(lambda a: jnp.asarray(a[t]), zs)
        params, state, est = step(params, state, z_t, x[batches[t]], y[batches[t]])
        # the projected gradient, (loss1 - loss2) / (2 eps), is the reference's
        for a, z in zip(jax.tree.leaves(est), jax.tree.leaves(z_t), strict=True):
            np.testing.assert_allclose(
                np.asarray(a), arrays["proj"][t] * np.asarray(z), rtol=1e-9, atol=1e-12
            )
        for a, w in zip(jax.tree.leaves(params), jax.tree.leaves(ref), strict=True):
            err = np.max(np.abs(np.asarray(a) - w[t])) / np.max(np.abs(w[t]))
            worst = max(worst, err)
    assert worst <= 1e-10, worst
    # the run moved the params and the weight-decay rule mattered where it was on
    p0, last = groups["p0"], jax.tree.map(lambda w: w[-1], ref)
    assert np.max(np.abs(last["fc1"]["weight"] - p0["fc1"]["weight"])) > 1e-3
    assert int(state[0].count) == steps
