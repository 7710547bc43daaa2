"""DeepZero: CGE against forward differences, the random sparse masks, ZO-GraSP against a NumPy
replay of the reference's arithmetic, and the alias against torch's SGD arithmetic."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import zeroth_order as zo

rng = np.random.default_rng(0)
PARAMS = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
C = rng.normal(size=4)


def loss(p):
    h = jnp.tanh(jnp.asarray(C[:3]) @ p["w"] + p["b"])
    return jnp.sum(h**2) + 0.1 * jnp.sum(p["w"] ** 2)


def forward_differences(f, params, mu):
    """Independent: one unbatched evaluation per coordinate, NumPy arithmetic."""
    f = jax.jit(f)
    base = float(f(params))
    out = {}
    for k, x in params.items():
        g = np.zeros(x.size)
        for i in range(x.size):
            bumped = np.array(x, dtype=np.float64).ravel()
            bumped[i] += mu
            g[i] = (float(f({**params, k: jnp.asarray(bumped.reshape(x.shape))})) - base) / mu
        out[k] = g.reshape(x.shape)
    return out


@pytest.mark.parametrize("chunk_size", [1, 5, 64])
def test_cge_equals_forward_differences(chunk_size):
    p = jax.tree.map(jnp.asarray, PARAMS)
    got = jax.jit(lambda p: zo.coordinate_gradient(loss, p, 5e-3, chunk_size=chunk_size))(p)
    want = forward_differences(loss, p, 5e-3)
    for k in p:  # the same evaluations, the same arithmetic: equal to the last bit
        np.testing.assert_array_equal(np.asarray(got[k]), want[k])


def test_cge_mask_skips_coordinates():
    p = jax.tree.map(jnp.asarray, PARAMS)
    mask = {"w": rng.random((3, 4)) < 0.5, "b": None}
    got = zo.coordinate_gradient(loss, p, 1e-3, mask=mask)
    want = forward_differences(loss, p, 1e-3)
    np.testing.assert_allclose(np.asarray(got["w"])[mask["w"]], want["w"][mask["w"]], atol=1e-12)
    assert np.all(np.asarray(got["w"])[~mask["w"]] == 0)
    np.testing.assert_allclose(np.asarray(got["b"]), want["b"], atol=1e-12)


def test_sparse_estimate_random_masks_and_refresh():
    # ratio r keeps n - round(r n) coordinates per leaf, a fresh random subset every
    # mask_refresh_interval steps, and the kept values are forward differences
    p = jax.tree.map(jnp.asarray, PARAMS)
    ratios = {"w": 0.4, "b": None}
    tx = zo.scale_by_coordinate_estimate(mu=1e-3, sparsity=ratios, mask_refresh_interval=2)

    def step(s, _):
        g, s = tx.update(None, s, p, value_fn=loss)
        return s, g

    _, gs = jax.jit(lambda s: jax.lax.scan(step, s, length=6))(tx.init(p))
    want = forward_differences(loss, p, 1e-3)
    kept = [np.asarray(gs["w"][t]) != 0 for t in range(6)]
    for t in range(6):
        assert kept[t].sum() == 12 - round(0.4 * 12)
        np.testing.assert_allclose(np.asarray(gs["w"][t])[kept[t]], want["w"][kept[t]], atol=1e-12)
        np.testing.assert_allclose(np.asarray(gs["b"][t]), want["b"], atol=1e-12)
    assert all(np.array_equal(kept[2 * i], kept[2 * i + 1]) for i in range(3))
    assert not all(np.array_equal(kept[0], kept[t]) for t in (2, 4))


def replay_zo_grasp(f, params, key, sparsity, q, mu):
    """The reference's ZO-GraSP arithmetic in NumPy, given the documented direction scheme."""
    names = sorted(params)  # jax.tree.leaves order of a dict
    prunable = [k for k in names if np.ndim(params[k]) >= 2]

    def rge(theta, phase_key):
        base = float(f(theta))
        g = {k: np.zeros(np.shape(theta[k])) for k in prunable}
        for j in range(q):
            kj = jax.random.fold_in(phase_key, j)
            perturbed, us = dict(theta), {}
            for i, k in enumerate(names):
                if k not in prunable:
                    continue
                v = np.asarray(jax.random.normal(jax.random.fold_in(kj, i), np.shape(theta[k])))
                u = v / (np.linalg.norm(v) + 1e-8) * mu
                us[k], perturbed[k] = u, np.asarray(theta[k]) + u
            dd = (float(f(jax.tree.map(jnp.asarray, perturbed))) - base) / mu
            for k in prunable:
                g[k] += us[k] * dd / q
        return g

    theta = {k: np.asarray(v) for k, v in params.items()}
    g0 = rge(theta, jax.random.fold_in(key, 0))
    moved = {k: theta[k] + g0[k] * mu if k in prunable else theta[k] for k in names}
    g1 = rge(moved, jax.random.fold_in(key, 1))
    scores = {k: -theta[k] * (g1[k] - g0[k]) / mu for k in prunable}
    flat = np.concatenate([np.abs(scores[k]).ravel() for k in prunable])
    pruned = np.zeros(flat.size, bool)
    pruned[np.argsort(flat, kind="stable")[: round(sparsity * flat.size)]] = True
    out, start = {}, 0
    for k in prunable:
        n = scores[k].size
        out[k] = pruned[start : start + n].sum() / n
        start += n
    return out


def test_zo_grasp_ratios_replay_the_reference_arithmetic():
    params = {"w1": rng.normal(size=(4, 6)), "w2": rng.normal(size=(6, 3)), "b": rng.normal(size=3)}
    x = rng.normal(size=(5, 4))

    def f(p):
        return jnp.mean(jnp.tanh(jnp.tanh(jnp.asarray(x) @ p["w1"]) @ p["w2"] + p["b"]) ** 2)

    p = jax.tree.map(jnp.asarray, params)
    key = jax.random.PRNGKey(3)
    got = zo.zo_grasp_ratios(f, p, key, 0.7, num_directions=6, mu=5e-3)
    want = replay_zo_grasp(f, p, key, 0.7, 6, 5e-3)
    assert got["b"] is None
    assert got["w1"] == want["w1"] and got["w2"] == want["w2"]
    assert round(24 * got["w1"] + 18 * got["w2"]) == round(0.7 * 42)
    assert 0 < got["w1"] < 1 and got["w1"] != got["w2"]


def test_deepzero_follows_torch_sgd_arithmetic():
    # dense CGE then torch.optim.SGD(lr, momentum, weight_decay) in NumPy:
    # d = g + wd p; buf = momentum buf + d (buf = d at the first step); p -= lr buf
    lr, mom, wd, mu = 0.05, 0.9, 5e-4, 5e-3
    tx = zo.deepzero(lr, mu=mu, momentum=mom, weight_decay=wd)

    def step(carry, _):
        p, s = carry
        u, s = tx.update(None, s, p, value_fn=loss)
        p = optax.apply_updates(p, u)
        return (p, s), p

    p0 = jax.tree.map(jnp.asarray, PARAMS)
    _, traj = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=4))(p0)
    p = {k: np.asarray(v) for k, v in PARAMS.items()}
    buf = None
    for t in range(4):
        g = forward_differences(loss, jax.tree.map(jnp.asarray, p), mu)
        d = {k: g[k] + wd * p[k] for k in p}
        buf = d if buf is None else {k: mom * buf[k] + d[k] for k in p}
        p = {k: p[k] - lr * buf[k] for k in p}
        for k in p:
            np.testing.assert_allclose(np.asarray(traj[k][t]), p[k], rtol=1e-10, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r"`mu` must be a finite number in \(0\.0, inf\]"):
        zo.scale_by_coordinate_estimate(mu=0.0)
    with pytest.raises(ValueError, match=r"`sparsity` must be a finite number in \[0\.0, 1\.0\)"):
        zo.deepzero(sparsity=1.0)
    with pytest.raises(ValueError, match=r"`sparsity` must be a finite number in \[0\.0, 1\.0\)"):
        zo.scale_by_coordinate_estimate(sparsity={"w": -0.5, "b": None})
    with pytest.raises(ValueError, match=r"`sparsity` must be a finite number"):
        zo.zo_grasp_ratios(loss, PARAMS, jax.random.PRNGKey(0), 1.5)
    tx = zo.scale_by_coordinate_estimate(sparsity={"w": 0.5})
    with pytest.raises(ValueError, match=r"`sparsity` must be a number or a pytree"):
        tx.init(jax.tree.map(jnp.asarray, PARAMS))
    tx = zo.deepzero()
    with pytest.raises(ValueError, match="`value_fn` is missing"):
        tx.update(None, tx.init(jnp.zeros(2)), jnp.zeros(2))
    injected = optax.inject_hyperparams(
        zo.scale_by_coordinate_estimate, static_args=("chunk_size", "seed")
    )(sparsity=0.5)
    p = jnp.zeros(4)
    with pytest.raises(TypeError, match=r'static_args=\("sparsity",\)'):
        jax.jit(lambda s: injected.update(None, s, p, value_fn=jnp.sum))(injected.init(p))
