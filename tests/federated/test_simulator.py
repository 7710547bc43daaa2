"""The federated simulator: splits, one round against a NumPy closed form, run_rounds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import federated as fed

K, D = 5, 3


def problem(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), 12)
    x = rng.normal(size=(36, D))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=36)
    idx, mask = fed.dirichlet_split(labels, K, alpha=0.5, seed=seed)
    return x, y, labels, idx, mask


def loss(p, xb, yb):
    return 0.5 * (xb @ p - yb) ** 2


def test_dirichlet_split_partitions_the_samples():
    _, _, labels, idx, mask = problem()
    assert idx.shape[0] == K and idx.shape == mask.shape
    assert sorted(idx[mask].tolist()) == list(range(len(labels)))
    sizes = mask.sum(axis=1)
    assert sizes.max() > sizes.min()  # label skew gives unequal clients
    again = fed.dirichlet_split(labels, K, alpha=0.5, seed=0)
    np.testing.assert_array_equal(again[0], idx)
    # the padding is at the end of each row
    assert all(np.all(np.diff(row.astype(int)) <= 0) for row in mask)


def replay_round(theta, x, y, idx, mask, lr, epochs, weighting):
    """Full-batch local gradient descent on each client's mean loss, then the average."""
    models, sizes = [], []
    for i in range(K):
        xi, yi = x[idx[i][mask[i]]], y[idx[i][mask[i]]]
        p = theta.copy()
        if len(yi):
            for _ in range(epochs):
                p = p - lr * xi.T @ (xi @ p - yi) / len(yi)
        models.append(p)
        sizes.append(len(yi))
    w = np.full(K, 1.0 / K) if weighting == "uniform" else np.array(sizes) / sum(sizes)
    return w @ np.array(models)


@pytest.mark.parametrize("weighting", ["uniform", "samples"])
def test_round_matches_closed_form(weighting):
    x, y, _, idx, mask = problem()
    data = fed.client_data(x, y, idx, mask)
    setup = fed.FederatedSetup(
        loss,
        fed.fedavg(),
        clients_per_round=K,
        local_epochs=2,
        batch_size=64,
        local_lr=0.3,
        local_optimizer=optax.sgd,
        weighting=weighting,
    )
    theta0 = np.array([0.2, 0.1, -0.3])
    state = fed.init_federated(jnp.asarray(theta0), setup.server_tx)
    rnd = jax.jit(fed.federated_round, static_argnames="setup")
    new, info = rnd(state, data, jax.random.key(1), setup)
    want = replay_round(theta0, x, y, idx, mask, 0.3, 2, weighting)
    np.testing.assert_allclose(np.asarray(new.params), want, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(new.prev_update), want - theta0, rtol=1e-12)
    assert sorted(np.asarray(info["clients"]).tolist()) == list(range(K))


def test_minibatches_visit_each_sample_once_per_epoch():
    """With a loss linear in the params, one epoch of SGD moves by -lr Σ_batches mean-grad; with
    batches of equal size b this is -lr/b Σ_samples x_j, whatever the shuffle."""
    x, y, _, idx, mask = problem()
    keep = mask.sum(1) >= 4
    idx4 = np.where(np.arange(idx.shape[1]) < 4, idx, 0)[:, :4]
    mask4 = np.ones((K, 4), bool) & keep[:, None]
    data = fed.client_data(x, y, idx4, mask4)
    lin = lambda p, xb, yb: xb @ p
    setup = fed.FederatedSetup(
        lin, clients_per_round=K, batch_size=2, local_lr=0.1, local_optimizer=optax.sgd
    )
    state = fed.init_federated(jnp.zeros(D), setup.server_tx)
    new, _ = fed.federated_round(state, data, jax.random.key(0), setup)
    want = np.mean([-0.1 / 2 * x[idx4[i]].sum(0) if keep[i] else np.zeros(D) for i in range(K)], 0)
    np.testing.assert_allclose(np.asarray(new.params), want, rtol=1e-12)


def test_sl_sets_the_next_rounds_local_lr_and_run_rounds_equals_rounds():
    x, y, _, idx, mask = problem(1)
    data = fed.client_data(x, y, idx, mask)
    setup = fed.FederatedSetup(loss, fed.fedhyper_sl(0.05), clients_per_round=2, batch_size=8)
    state0 = fed.init_federated(jnp.zeros(D), setup.server_tx)
    rnd = jax.jit(fed.federated_round, static_argnames="setup")
    keys = jax.random.split(jax.random.key(2), 3)
    s, deltas, lrs = state0, [], []
    for k in keys:
        s, info = rnd(s, data, k, setup)
        deltas.append(np.asarray(s.prev_update))
        lrs.append(float(info["local_lr"]))
    agg = deltas[0] @ deltas[1]
    assert lrs[:2] == [0.05, 0.05]
    np.testing.assert_allclose(lrs[2], np.clip(0.05 * (1 + agg), 0.001, 0.1), rtol=1e-12)
    final, hist = fed.run_rounds(state0, data, jax.random.key(2), setup, 3, lambda p: p)
    np.testing.assert_allclose(np.asarray(final.params), np.asarray(s.params), rtol=1e-12)
    assert hist.shape == (3, D)


def test_bad_setup_is_named():
    with pytest.raises(ValueError, match="clients_per_round"):
        fed.FederatedSetup(loss, clients_per_round=0)
    with pytest.raises(ValueError, match="weighting"):
        fed.FederatedSetup(loss, weighting="size")
    with pytest.raises(ValueError, match="alpha"):
        fed.dirichlet_split(np.zeros(4, int), 2, alpha=0.0)
    x, y, _, idx, mask = problem()
    data = fed.client_data(x, y, idx, mask)
    setup = fed.FederatedSetup(loss, clients_per_round=K + 1)
    with pytest.raises(ValueError, match="clients_per_round"):
        fed.federated_round(
            fed.init_federated(jnp.zeros(D), setup.server_tx), data, jax.random.key(0), setup
        )
