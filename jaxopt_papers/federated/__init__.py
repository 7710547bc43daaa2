"""Federated learning: a jitted simulator, FedAvg and FedHyper's learning-rate rules.

One module per paper:

* :mod:`~jaxopt_papers.federated.simulator` — **FedAvg** (McMahan et al., AISTATS 2017) and a
  simulator with the clients on a vmapped axis: :func:`dirichlet_split` (non-IID label skew),
  :func:`client_data`, :class:`FederatedSetup`, :func:`init_federated`,
  :func:`federated_round`, :func:`run_rounds`, :func:`fedavg`.
* :mod:`~jaxopt_papers.federated.fedhyper` — **FedHyper** (Wang, Wang, Li, ICLR 2024): server
  rules learning the global learning rate (:func:`fedhyper_g`, :func:`fedhyper_gm`) or the
  clients' one (:func:`fedhyper_sl`) as optax transformations of the pseudo-gradient ``-Δ``,
  and the client rule :func:`fedhyper_cl`.

Example:
  >>> import jax, jax.numpy as jnp, numpy as np
  >>> from jaxopt_papers import federated as fed
  >>> x = np.linspace(-1, 1, 60)[:, None]; y = 2.0 * x[:, 0]
  >>> data = fed.client_data(x, y, *fed.dirichlet_split(np.zeros(60, int), 6, seed=1))
  >>> setup = fed.FederatedSetup(lambda p, xb, yb: (xb @ p - yb) ** 2, fed.fedhyper_gm(),
  ...                            clients_per_round=3, local_lr=0.1, batch_size=8)
  >>> state = fed.init_federated(jnp.zeros(1), setup.server_tx)
  >>> state, _ = fed.run_rounds(state, data, jax.random.key(0), setup, 40)
  >>> print(jnp.round(state.params, 1))
  [2.]
"""

from jaxopt_papers.federated.fedhyper import (
    FedHyperCLState,
    FedHyperSLState,
    FedHyperState,
    fedhyper_cl,
    fedhyper_g,
    fedhyper_gm,
    fedhyper_sl,
)
from jaxopt_papers.federated.simulator import (
    ClientData,
    FederatedSetup,
    FederatedState,
    client_data,
    dirichlet_split,
    fedavg,
    federated_round,
    init_federated,
    run_rounds,
)

__all__ = [
    "ClientData",
    "FedHyperCLState",
    "FedHyperSLState",
    "FedHyperState",
    "FederatedSetup",
    "FederatedState",
    "client_data",
    "dirichlet_split",
    "fedavg",
    "federated_round",
    "fedhyper_cl",
    "fedhyper_g",
    "fedhyper_gm",
    "fedhyper_sl",
    "init_federated",
    "run_rounds",
]
