"""A federated round with the clients axis sharded over 8 simulated devices (run by
tests/test_multidevice.py): it equals the single-device round, for FedAvg and for FedHyper-GM
with the FedHyper-CL client rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers import federated as fed

K = 16


def loss(p, xb, yb):
    logits = jnp.tanh(xb @ p["w1"]) @ p["w2"]
    return -jax.nn.log_softmax(logits)[jnp.arange(yb.shape[0]), yb]


@pytest.mark.parametrize("rule", ["fedavg", "fedhyper"])
def test_sharded_round_equals_unsharded(rule):
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 320)
    x = rng.normal(size=(320, 6)) + labels[:, None]
    data = fed.client_data(x, labels, *fed.dirichlet_split(labels, K, alpha=0.5))
    if rule == "fedavg":
        server, client = fed.fedavg(), None
    else:
        server, client = fed.fedhyper_gm(), fed.fedhyper_cl()
    setup = fed.FederatedSetup(
        loss, server, clients_per_round=8, batch_size=8, local_lr=0.05, client_rule=client
    )
    params = {"w1": 0.3 * jnp.asarray(rng.normal(size=(6, 8))), "w2": jnp.zeros((8, 4))}
    state = fed.init_federated(params, setup.server_tx)
    rnd = jax.jit(fed.federated_round, static_argnames="setup")

    mesh = jax.make_mesh((8,), ("clients",), axis_types=(AxisType.Auto,))
    sharded = jax.tree.map(lambda a: jax.device_put(a, NamedSharding(mesh, P("clients"))), data)
    assert len(sharded.x.sharding.device_set) == 8
    s1, s2 = state, state
    for k in jax.random.split(jax.random.key(0), 3):
        s1, _ = rnd(s1, data, k, setup)
        s2, _ = rnd(s2, sharded, k, setup)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), s1, s2)
    assert float(jnp.abs(s1.params["w2"]).sum()) > 0
