"""FedHyper's rules against float64 NumPy replays of the official code (ATP-1010/FedHyper @
d6a57c5), written from reading ``src/federated_main.py`` and ``src/update.py``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import federated as fed

ROUNDS = 8


def _deltas(seed=0, n=5, scale=1.0):
    rng = np.random.default_rng(seed)
    base = 0.6 + 0.2 * rng.normal(size=n)
    # correlated rounds (agg grows and hits the upper clip), then sign flips (lower clip)
    out = [scale * (base + 0.1 * rng.normal(size=n)) for _ in range(ROUNDS // 2)]
    out += [scale * (-1) ** k * (base + 0.1 * rng.normal(size=n)) for k in range(ROUNDS // 2)]
    return out


def replay_server(function, deltas, lr=0.01):
    """federated_main.py lines 93, 134-185: the model is the average plus the FedHyper term.

    ``gradient_vector`` (the raw global update Δ_t) is the input; returns the per-round global
    model increments, agg values and local learning rates."""
    agg = 0.0
    last_vector = None
    incs, aggs, local_lrs = [], [], []
    for epoch, gradient_vector in enumerate(deltas):
        inc = gradient_vector.copy()  # global_model = average_weights(...)  (line 131-132)
        local_lr = lr
        if function == "FedHyper-G":  # lines 138-153
            if epoch > 0:
                agg += (last_vector * gradient_vector).sum()
                if agg < -0.8:
                    agg = -0.8
                elif agg > 4:
                    agg = 4
                inc = agg * gradient_vector + inc
            last_vector = gradient_vector
        if function == "FedHyper-GM":  # lines 155-172
            if epoch == 0:
                last_vector = gradient_vector
            if epoch > 0:
                agg += (last_vector * gradient_vector).sum()
                if agg < -0.2:
                    agg = -0.2
                elif agg > 4:
                    agg = 4
                inc = agg * gradient_vector + 0.9 * agg * last_vector + inc
                last_vector = gradient_vector + 0.9 * last_vector
        if function == "FedHyper-SL":  # lines 174-185
            if epoch > 0:
                agg += (last_vector * gradient_vector).sum()
                local_lr = min(0.1, max(0.001, lr * (agg + 1)))
            last_vector = gradient_vector
        incs.append(inc)
        aggs.append(agg)
        local_lrs.append(local_lr)
    return np.array(incs), np.array(aggs), np.array(local_lrs)


def run_rule(tx, deltas):
    params = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
    state = tx.init(params)
    step = jax.jit(tx.update)
    incs, aggs, lrs = [], [], []
    for d in deltas:
        g = {"a": -jnp.asarray(d[:2]), "b": -jnp.asarray(d[2:])}
        u, state = step(g, state, params)
        incs.append(np.concatenate([np.asarray(u["a"]), np.asarray(u["b"])]))
        aggs.append(float(state.agg))
        lrs.append(float(getattr(state, "local_lr", 0.01)))
    return np.array(incs), np.array(aggs), np.array(lrs), state


@pytest.mark.parametrize(
    "function, make",
    [
        ("FedHyper-G", fed.fedhyper_g),
        ("FedHyper-GM", fed.fedhyper_gm),
        ("FedHyper-SL", fed.fedhyper_sl),
    ],
)
def test_server_rules_match_official_replay(function, make):
    deltas = _deltas()
    want_inc, want_agg, want_lr = replay_server(function, deltas)
    inc, agg, lr, state = run_rule(make(), deltas)
    np.testing.assert_allclose(inc, want_inc, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(agg, want_agg, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lr, want_lr, rtol=1e-12)
    assert int(state.count) == ROUNDS and state.agg.dtype == jnp.float64
    if function != "FedHyper-SL":  # the replay exercises both clip bounds
        assert want_agg.max() == 4 and want_agg.min() in (-0.8, -0.2)


def test_paper_bounds_and_server_lr_scale_the_update():
    deltas = _deltas(seed=1)
    inc, agg, _, _ = run_rule(fed.fedhyper_g(0.5, upper=2.0), deltas)
    assert agg.max() == 2.0
    # closed form of G with the clip [-0.8, 2] and η = 0.5
    a, last, want = 0.0, np.zeros(5), []
    for d in deltas:
        a = float(np.clip(a + last @ d, -0.8, 2.0))
        want.append(0.5 * (1 + a) * d)
        last = d
    np.testing.assert_allclose(inc, np.array(want), rtol=1e-12)


def replay_client(p0, batches, gtl, lr0=0.05, local_ep=2, num_users=100, frac=0.1):
    """update.py lines 77-139: SGD(momentum=0.5) with LambdaLR(lambda i: beita) and FedHyper-CL,
    on the quadratic loss 0.5 |A p - b|² of each batch."""
    p = p0.copy()
    buf = None
    lr = lr0 * 1  # LambdaLR at construction: base_lr * lambda(0), beita = 1
    last_beita, last_gradient, beita = 1, gtl, 1
    traj, scales = [], []
    for _ in range(local_ep):
        xxx = 0
        for a_mat, b_vec in batches:
            last_para = p.copy()
            g = a_mat.T @ (a_mat @ p - b_vec)
            buf = g.copy() if buf is None else 0.5 * buf + g  # torch SGD, dampening 0
            p = p - lr * buf
            if xxx == 0:
                xxx = 1
            elif xxx == 1:
                new_gradient = p - last_para
                x = 0.1 * (new_gradient * gtl).sum() / (num_users * frac)
                y = (new_gradient * last_gradient).sum()
                gamma = min(1.1, 1 + x + y)
                beita = gamma * last_beita
                beita = min(max(beita, 0.1), 10)
                last_beita = beita
                lr = lr0 * beita  # scheduler.step(): base_lr * lambda(...)
                last_gradient = new_gradient
            traj.append(p.copy())
            scales.append(beita)
    return np.array(traj), np.array(scales)


@pytest.mark.parametrize("lr0", [0.05, 0.4])
def test_client_rule_matches_official_replay(lr0):
    rng = np.random.default_rng(3)
    n = 4
    batches = [(rng.normal(size=(6, n)), rng.normal(size=6)) for _ in range(3)]
    gtl = 0.3 * rng.normal(size=n)
    p0 = rng.normal(size=n)
    want, want_scale = replay_client(p0, batches, gtl, lr0=lr0)
    tx = optax.chain(optax.sgd(lr0, momentum=0.5), fed.fedhyper_cl())

    def local(p0):
        def step(carry, inp):
            p, s = carry
            k, a_mat, b_vec = inp
            g = jax.grad(lambda q: 0.5 * jnp.sum((a_mat @ q - b_vec) ** 2))(p)
            u, s = tx.update(g, s, p, global_update=jnp.asarray(gtl), epoch_start=k == 0)
            p = p + u
            return (p, s), (p, s[1].scale)

        a_all = jnp.asarray(np.stack([a for a, _ in batches] * 2))
        b_all = jnp.asarray(np.stack([b for _, b in batches] * 2))
        ks = jnp.asarray([0, 1, 2] * 2)
        return jax.lax.scan(step, (p0, tx.init(p0)), (ks, a_all, b_all))[1]

    traj, scale = jax.jit(local)(jnp.asarray(p0))
    np.testing.assert_allclose(np.asarray(traj), want, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(scale), want_scale, rtol=1e-12)
    assert not np.allclose(want_scale, 1.0)  # the multiplier moved


@pytest.mark.parametrize("make", [fed.fedhyper_g, fed.fedhyper_gm])
def test_server_rule_transformation_invariants(make):
    """jit = eager, inject_hyperparams gives the same updates, abstract init, extra args ignored
    (compared with the same rule run eagerly)."""
    params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    gs = [jax.tree.map(lambda x, k=k: jnp.sin(x + k), params) for k in range(3)]
    tx = make()
    inj = optax.inject_hyperparams(make)(learning_rate=1.0)

    def trajectory(t, update):
        s, out = t.init(params), []
        for g in gs:
            u, s = update(g, s, params)
            out.append(u)
        return out, s

    eager, s_eager = trajectory(tx, tx.update)
    jitted, _ = trajectory(tx, jax.jit(tx.update))
    injected, s_inj = trajectory(inj, inj.update)
    for a, b, c in zip(eager, jitted, injected, strict=True):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-12), a, b)
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-12), a, c)
    assert float(s_inj.inner_state.agg) == float(s_eager.agg) != 0.0
    abstract = jax.eval_shape(tx.init, params)
    assert abstract.last["w"].shape == (2, 2)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"fedhyper_g.*upper"):
        fed.fedhyper_g(upper=-1.0)
    with pytest.raises(ValueError, match=r"fedhyper_gm.*momentum"):
        fed.fedhyper_gm(momentum=1.5)
    with pytest.raises(ValueError, match=r"fedhyper_cl.*max_scale"):
        fed.fedhyper_cl(max_scale=0.0)
    tx = fed.fedhyper_cl()
    with pytest.raises(TypeError, match="global_update"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
