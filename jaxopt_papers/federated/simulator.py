r"""A jitted federated-learning simulator and FedAvg.

Paper (FedAvg): H. Brendan McMahan, Eider Moore, Daniel Ramage, Seth Hampson, Blaise Agüera y
Arcas, "Communication-Efficient Learning of Deep Networks from Decentralized Data", AISTATS 2017,
arXiv:1602.05629. The simulator follows the federated loop of the FedHyper reference code
ATP-1010/FedHyper (commit d6a57c5): ``src/federated_main.py`` lines 95-135, ``src/update.py``
lines 69-152, ``src/sampling.py`` ``cifar_dis`` (lines 190-217), ``src/utils.py``
``average_weights`` (lines 78-87).

One round ``t`` with global model ``θ_t`` (all clients on one vmapped axis)::

    S_t      = clients_per_round clients drawn without replacement
    θ_t^i    = local_epochs epochs of minibatch steps of local_optimizer(local_lr) from θ_t
               on client i's data (reshuffled every epoch; batch size batch_size)
    Δ_t      = mean_i θ_t^i - θ_t              (unweighted mean, as ``average_weights``)
    u, s     = server_tx.update(-Δ_t, s)       (the pseudo-gradient -Δ_t)
    θ_{t+1}  = θ_t + u

:func:`fedavg` is ``θ_{t+1} = θ_t + η Δ_t`` (``optax.sgd(η)`` on ``-Δ_t``; ``η = 1`` is
FedAvg). The local learning rate is ``setup.local_lr``, or the server state's ``local_lr``
field where it has one (:func:`~jaxopt_papers.federated.fedhyper_sl`). A client rule
(:func:`~jaxopt_papers.federated.fedhyper_cl`) is chained after the local optimizer and receives
the previous round's global update ``Δ_{t-1}`` as the extra argument ``global_update``.

:func:`dirichlet_split` is the official non-IID split: for each class a Dirichlet(α, ..., α)
draw over the clients gives the fractions of that class's samples each client receives
(official α = 0.5, ``utils.py`` lines 43 and 73). Clients have unequal sizes; they are padded to
the largest with a mask. A client takes ``ceil(n_i / batch_size)`` steps per epoch; the padded
clients' extra steps are skipped (the parameters and optimizer state are left unchanged).

Defaults: ``local_optimizer = optax.sgd(lr, momentum=0.5)`` (``update.py`` line 77-78, the
``sgd`` option), ``local_lr = 0.01``, ``batch_size = 64``, ``clients_per_round = 10`` (100 users
with ``frac = 0.1``) (``options.py`` lines 14-22); ``local_epochs = 1`` (official 10, smaller
here to keep simulations cheap).

Differences from the reference code: each client trains on all its samples (the official
``LocalUpdate`` keeps the first 80% for training and splits off 10% validation and 10% test);
``weighting="samples"`` (a sample-weighted mean, FedAvg's paper) is offered as an option; the
server step is any optax transformation of ``-Δ_t``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import _validation as V

__all__ = [
    "ClientData",
    "FederatedSetup",
    "FederatedState",
    "client_data",
    "dirichlet_split",
    "fedavg",
    "federated_round",
    "init_federated",
    "run_rounds",
]


def dirichlet_split(
    labels: Any, num_clients: int, alpha: float = 0.5, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices over clients with Dirichlet label skew (the official ``cifar_dis``).

    Args:
      labels: integer class labels, shape ``(n,)``.
      num_clients: number of clients ``K``.
      alpha: Dirichlet concentration (official 0.5; small = more skewed).
      seed: seed of the NumPy generator.

    Returns:
      ``(indices, mask)``: int32 ``(K, n_max)`` sample indices padded with 0 and the boolean
      ``(K, n_max)`` mask of the real entries. Every sample belongs to exactly one client.

    Example:
      >>> import numpy as np
      >>> from jaxopt_papers import federated as fed
      >>> idx, mask = fed.dirichlet_split(np.repeat(np.arange(3), 20), 4, alpha=0.5)
      >>> idx.shape[0], int(mask.sum()), sorted(idx[mask].tolist()) == list(range(60))
      (4, 60, True)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"dirichlet_split: `labels` must be a 1-D integer array, got dtype {labels.dtype} "
            f"and shape {labels.shape}."
        )
    V.check_static_int("dirichlet_split", "num_clients", num_clients, low=1)
    V.check_real("dirichlet_split", "alpha", alpha, low=0.0, low_open=True)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    fractions = rng.dirichlet([alpha] * num_clients, len(classes))
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c, frac in zip(classes, fractions, strict=True):
        idc = np.flatnonzero(labels == c)
        cuts = (np.cumsum(frac)[:-1] * len(idc)).astype(int)
        for i, chunk in enumerate(np.split(idc, cuts)):
            parts[i].append(chunk)
    per_client = [np.concatenate(p) for p in parts]
    n_max = max(1, max(len(p) for p in per_client))
    indices = np.zeros((num_clients, n_max), np.int32)
    mask = np.zeros((num_clients, n_max), bool)
    for i, p in enumerate(per_client):
        indices[i, : len(p)] = p
        mask[i, : len(p)] = True
    return indices, mask


class ClientData(NamedTuple):
    """The clients' data stacked on a leading clients axis.

    Args:
      x: inputs, ``(K, n_max, ...)``.
      y: targets, ``(K, n_max, ...)``.
      mask: boolean ``(K, n_max)``, True for real samples.

    Example:
      >>> import numpy as np
      >>> from jaxopt_papers import federated as fed
      >>> d = fed.ClientData(np.zeros((2, 3, 4)), np.zeros((2, 3)), np.ones((2, 3), bool))
      >>> d.x.shape
      (2, 3, 4)
    """

    x: Any
    y: Any
    mask: Any


def client_data(x: Any, y: Any, indices: Any, mask: Any) -> ClientData:
    """Gather each client's samples from ``(x, y)`` with the output of :func:`dirichlet_split`.

    Args:
      x: inputs ``(n, ...)``.
      y: targets ``(n, ...)``.
      indices: int ``(K, n_max)`` sample indices.
      mask: boolean ``(K, n_max)``.

    Returns:
      A :class:`ClientData` of JAX arrays.

    Example:
      >>> import numpy as np
      >>> from jaxopt_papers import federated as fed
      >>> y = np.repeat(np.arange(2), 5)
      >>> d = fed.client_data(np.eye(10), y, *fed.dirichlet_split(y, 3))
      >>> d.x.shape[0], int(d.mask.sum())
      (3, 10)
    """
    idx = jnp.asarray(indices)
    return ClientData(jnp.asarray(x)[idx], jnp.asarray(y)[idx], jnp.asarray(mask, bool))


def fedavg(server_lr: float = 1.0) -> optax.GradientTransformation:
    """FedAvg's server step: ``θ <- θ + η Δ`` (``optax.sgd(η)`` on the pseudo-gradient ``-Δ``).

    Args:
      server_lr: the server learning rate ``η`` (1 = FedAvg, the new model is the average).

    Returns:
      ``optax.sgd(server_lr)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> tx = fed.fedavg()
      >>> u, _ = tx.update(-jnp.array([0.5, 1.0]), tx.init(jnp.zeros(2)))
      >>> print(u)
      [0.5 1. ]
    """
    V.check_real("fedavg", "server_lr", server_lr, low=0.0)
    return optax.sgd(server_lr)


def _default_local_optimizer(lr):
    return optax.sgd(lr, momentum=0.5)


@dataclasses.dataclass(frozen=True, eq=False)
class FederatedSetup:
    """The fixed ingredients of a federated simulation (static under ``jit``).

    Args:
      loss_fn: per-example loss ``loss_fn(params, x, y) -> (B,)`` on a batch.
      server_tx: the server rule, an optax transformation of ``-Δ_t`` (default FedAvg).
      clients_per_round: clients sampled per round, without replacement (official 10).
      local_epochs: local epochs per round (official 10; default 1).
      batch_size: local minibatch size (official 64).
      local_lr: the clients' learning rate (official 0.01) unless the server state has a
        ``local_lr`` field.
      local_optimizer: ``lr -> optax transformation`` for local steps (default
        ``optax.sgd(lr, momentum=0.5)``, the official ``sgd`` option).
      client_rule: optional transformation chained after the local optimizer that receives
        ``global_update`` and ``epoch_start`` extra arguments (e.g. ``fedhyper_cl()``).
      weighting: ``"uniform"`` (official mean of client models) or ``"samples"``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> setup = fed.FederatedSetup(lambda p, x, y: (x @ p - y) ** 2, clients_per_round=2)
      >>> setup.batch_size
      64
    """

    loss_fn: Callable[..., jax.Array]
    server_tx: optax.GradientTransformation = dataclasses.field(default_factory=fedavg)
    clients_per_round: int = 10
    local_epochs: int = 1
    batch_size: int = 64
    local_lr: float = 0.01
    local_optimizer: Callable[[Any], optax.GradientTransformation] = _default_local_optimizer
    client_rule: optax.GradientTransformation | None = None
    weighting: str = "uniform"

    def __post_init__(self):
        owner = "FederatedSetup"
        if not callable(self.loss_fn):
            raise TypeError(f"{owner}: `loss_fn` must be callable, got {self.loss_fn!r}.")
        V.check_static_int(owner, "clients_per_round", self.clients_per_round, low=1)
        V.check_static_int(owner, "local_epochs", self.local_epochs, low=1)
        V.check_static_int(owner, "batch_size", self.batch_size, low=1)
        V.check_real(owner, "local_lr", self.local_lr, low=0.0)
        V.check_static_choice(owner, "weighting", self.weighting, ("uniform", "samples"))


class FederatedState(NamedTuple):
    """State of a simulation.

    Attributes:
      params: the global model ``θ_t``.
      server_state: the server rule's state.
      prev_update: the previous round's global update ``Δ_{t-1}`` (0 before round 0).
      round: rounds done (int32).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> s = fed.init_federated(jnp.zeros(2), fed.fedavg())
      >>> int(s.round)
      0
    """

    params: Any
    server_state: Any
    prev_update: Any
    round: jax.Array


def init_federated(params: Any, server_tx: optax.GradientTransformation) -> FederatedState:
    """The initial :class:`FederatedState` for ``params`` and the server rule.

    Args:
      params: the initial global model.
      server_tx: the server rule (the same object as ``FederatedSetup.server_tx``).

    Returns:
      A :class:`FederatedState` at round 0.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> s = fed.init_federated({"w": jnp.ones(2)}, fed.fedhyper_gm())
      >>> float(s.server_state.agg)
      0.0
    """
    return FederatedState(
        params=params,
        server_state=server_tx.init(params),
        prev_update=jax.tree.map(jnp.zeros_like, params),
        round=jnp.zeros((), jnp.int32),
    )


def _bcast(w: jax.Array, loc: jax.Array) -> jax.Array:
    return w.reshape(w.shape + (1,) * (loc.ndim - 1))


def _local_lr(setup: FederatedSetup, server_state: Any) -> Any:
    found = optax.tree_utils.tree_get(server_state, "local_lr", None)
    return setup.local_lr if found is None else found


def _local_train(setup, params, prev_update, lr, x, y, mask, key):
    n_max = mask.shape[0]
    bs = min(setup.batch_size, n_max)
    steps = math.ceil(n_max / bs)
    pad = steps * bs - n_max
    tx = setup.local_optimizer(lr)
    if setup.client_rule is not None:
        tx = optax.chain(tx, setup.client_rule)
    opt_state = tx.init(params)

    def masked_loss(p, xb, yb, mb):
        per = setup.loss_fn(p, xb, yb)
        return jnp.sum(jnp.where(mb, per, 0.0)) / jnp.maximum(jnp.sum(mb), 1)

    grad_fn = jax.grad(masked_loss)

    def epoch(carry, ekey):
        # valid samples first, shuffled; padding last
        r = jnp.where(mask, jax.random.uniform(ekey, (n_max,)), 2.0)
        order = jnp.concatenate([jnp.argsort(r), jnp.full((pad,), 0, jnp.int32)])
        valid = jnp.concatenate([mask[jnp.argsort(r)], jnp.zeros((pad,), bool)])
        order = order.reshape(steps, bs)
        valid = valid.reshape(steps, bs)

        def step(c, inp):
            p, s = c
            k, idx, vb = inp
            g = grad_fn(p, x[idx], y[idx], vb)
            extra = {}
            if setup.client_rule is not None:
                extra = dict(global_update=prev_update, epoch_start=k == 0)
            u, s2 = tx.update(g, s, p, **extra)
            p2 = optax.apply_updates(p, u)
            real = jnp.any(vb)
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(real, a, b), new, old)
            return (keep(p2, p), keep(s2, s)), None

        carry, _ = jax.lax.scan(step, carry, (jnp.arange(steps), order, valid))
        return carry, None

    keys = jax.random.split(key, setup.local_epochs)
    (params, _), _ = jax.lax.scan(epoch, (params, opt_state), keys)
    return params


def federated_round(
    state: FederatedState, data: ClientData, key: jax.Array, setup: FederatedSetup
) -> tuple[FederatedState, dict[str, jax.Array]]:
    """One round: sample clients, train them locally (vmapped), average, apply the server rule.

    Jit it with ``setup`` static: ``jax.jit(federated_round, static_argnames="setup")``.

    Args:
      state: the current :class:`FederatedState`.
      data: the clients' :class:`ClientData` (may be sharded along the clients axis over a
        mesh with ``AxisType.Auto`` axes; explicit sharding is not supported).
      key: PRNG key of the round (client sampling and local shuffling).
      setup: the :class:`FederatedSetup`.

    Returns:
      ``(new_state, info)`` with ``info = {"clients": sampled client ids, "local_lr": ...}``.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxopt_papers import federated as fed
      >>> x = np.linspace(-1, 1, 40)[:, None]; y = 3.0 * x[:, 0]
      >>> data = fed.client_data(x, y, *fed.dirichlet_split(np.zeros(40, int), 4))
      >>> loss = lambda p, xb, yb: (xb @ p - yb) ** 2
      >>> setup = fed.FederatedSetup(loss, clients_per_round=2, local_lr=0.5, batch_size=4)
      >>> state = fed.init_federated(jnp.zeros(1), setup.server_tx)
      >>> rnd = jax.jit(fed.federated_round, static_argnames="setup")
      >>> for k in jax.random.split(jax.random.key(0), 20):
      ...     state, _ = rnd(state, data, k, setup)
      >>> print(jnp.round(state.params, 2))
      [3.]
    """
    if not isinstance(setup, FederatedSetup):
        raise TypeError(f"federated_round: `setup` must be a FederatedSetup, got {setup!r}.")
    num_clients = data.mask.shape[0]
    m = setup.clients_per_round
    if m > num_clients:
        raise ValueError(
            f"federated_round: `setup.clients_per_round` must be at most the number of clients "
            f"({num_clients}), got {m}."
        )
    k_sample, k_local = jax.random.split(key)
    chosen = jax.random.choice(k_sample, num_clients, (m,), replace=False)
    cx, cy, cmask = data.x[chosen], data.y[chosen], data.mask[chosen]
    lr = _local_lr(setup, state.server_state)
    train = lambda x, y, mk, k: _local_train(
        setup, state.params, state.prev_update, lr, x, y, mk, k
    )
    local = jax.vmap(train)(cx, cy, cmask, jax.random.split(k_local, m))
    if setup.weighting == "uniform":
        w = jnp.full((m,), 1.0 / m)
    else:
        n = jnp.sum(cmask, axis=1).astype(jnp.result_type(float))
        w = n / jnp.maximum(jnp.sum(n), 1.0)
    avg = jax.tree.map(
        lambda loc, p: jnp.sum(_bcast(w.astype(loc.dtype), loc) * loc, axis=0).astype(p.dtype),
        local,
        state.params,
    )
    delta = jax.tree.map(lambda a, p: a - p, avg, state.params)
    pseudo = jax.tree.map(jnp.negative, delta)
    updates, server_state = setup.server_tx.update(pseudo, state.server_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = FederatedState(params, server_state, delta, state.round + 1)
    return new, {"clients": chosen, "local_lr": jnp.asarray(lr)}


def run_rounds(
    state: FederatedState,
    data: ClientData,
    key: jax.Array,
    setup: FederatedSetup,
    num_rounds: int,
    eval_fn: Callable[[Any], Any] | None = None,
) -> tuple[FederatedState, Any]:
    """``num_rounds`` rounds of :func:`federated_round` in one ``lax.scan``.

    Jit it with ``setup``, ``num_rounds`` and ``eval_fn`` static.

    Args:
      state: the initial :class:`FederatedState`.
      data: the clients' :class:`ClientData`.
      key: PRNG key (split into one key per round).
      setup: the :class:`FederatedSetup`.
      num_rounds: number of rounds.
      eval_fn: optional ``params -> pytree`` evaluated after every round.

    Returns:
      ``(final_state, history)``; ``history`` stacks ``eval_fn`` outputs over rounds (None
      without ``eval_fn``).

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxopt_papers import federated as fed
      >>> x = np.linspace(-1, 1, 40)[:, None]; y = 3.0 * x[:, 0]
      >>> data = fed.client_data(x, y, *fed.dirichlet_split(np.zeros(40, int), 4))
      >>> loss = lambda p, xb, yb: (xb @ p - yb) ** 2
      >>> setup = fed.FederatedSetup(
      ...     loss, fed.fedhyper_g(), clients_per_round=2, local_lr=0.5, batch_size=4)
      >>> state = fed.init_federated(jnp.zeros(1), setup.server_tx)
      >>> state, hist = fed.run_rounds(state, data, jax.random.key(0), setup, 10,
      ...                              lambda p: p[0])
      >>> print(round(float(hist[-1]), 2), hist.shape)
      3.0 (10,)
    """
    V.check_static_int("run_rounds", "num_rounds", num_rounds, low=1)

    def body(s, k):
        s, _ = federated_round(s, data, k, setup)
        return s, (None if eval_fn is None else eval_fn(s.params))

    return jax.lax.scan(body, state, jax.random.split(key, num_rounds))
