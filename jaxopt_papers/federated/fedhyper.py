r"""FedHyper: learning rates of federated learning learned by hypergradient descent.

Paper: Ziyao Wang, Jianyu Wang, Ang Li, "FedHyper: A Universal and Robust Learning Rate Scheduler
for Federated Learning with Hypergradient Descent", ICLR 2024, arXiv:2310.03156.
Reference code: ATP-1010/FedHyper (commit d6a57c5), ``src/federated_main.py`` (server rules,
lines 137-185) and ``src/update.py`` (client rule, lines 94-139).

Let ``Δ_t`` be the global update of round ``t``: the average of the client models minus the
global model before the round. The server rules are optax transformations of the
*pseudo-gradient* ``-Δ_t`` (what :func:`jaxopt_papers.federated.federated_round` feeds them),
returning the update added to the global model ``θ_t``. ``agg`` starts at 0, ``last`` at 0.

**FedHyper-G** (:func:`fedhyper_g`; global learning rate ``α = 1 + agg``)::

    agg  <- clip(agg + β <last, Δ_t>, lower, upper)         (lower = -0.8, upper = 4)
    θ_{t+1} = θ_t + η (1 + agg) Δ_t ;   last <- Δ_t

**FedHyper-GM** (:func:`fedhyper_gm`; the official default, with server momentum ``μ = 0.9``)::

    agg  <- clip(agg + β <last, Δ_t>, lower, upper)         (lower = -0.2, upper = 4)
    θ_{t+1} = θ_t + η ((1 + agg) Δ_t + μ agg last) ;   last <- Δ_t + μ last

**FedHyper-SL** (:func:`fedhyper_sl`; the server sets the clients' learning rate)::

    agg  <- agg + β <last, Δ_t>                             (no clipping of agg)
    θ_{t+1} = θ_t + η Δ_t ;   last <- Δ_t
    local_lr = clip(lr0 (1 + agg), min_lr, max_lr)          (min_lr = 0.001, max_lr = 0.1)

With ``last = 0`` the first round is plain FedAvg (``α = 1``), as in the official round 0.

**FedHyper-CL** (:func:`fedhyper_cl`; client side, inside local training). The transformation
scales the local optimizer's step ``u_k`` by the learnt multiplier ``b`` (the official
``LambdaLR`` factor ``beita``) and, after every step that is not the first of a local epoch,
updates ``b`` from the step just taken ``d_k = b u_k``::

    x = w <d_k, Δ_{t-1}>            (w = 0.1 / (num_users · frac) = 0.01 officially)
    y = <d_k, d_prev>               (d_prev = Δ_{t-1} before the first update)
    b <- clip(min(max_growth, 1 + x + y) · b, min_scale, max_scale)   (1.1, 0.1, 10)
    d_prev <- d_k

``Δ_{t-1}`` (the previous round's raw global update) is passed as the extra argument
``global_update``; the multiplier restarts at 1 every round (re-``init`` the state).

Defaults are the official code's: hypergradient learning rate ``β = 1`` (``agg += (last *
gradient).sum()``, lines 144, 163, 179), clip bounds ``[-0.8, 4]`` (G, lines 146-149) and
``[-0.2, 4]`` (GM, lines 165-168), momentum 0.9 (line 171-172), SL's ``min(0.1, max(0.001,
lr (agg + 1)))`` (line 183) with ``lr = 0.01`` (``options.py`` line 22); CL's constants 0.1,
``num_users · frac = 100 · 0.1`` (``options.py`` lines 14-17), 1.1, 0.1 and 10 (``update.py``
lines 122-135). The paper quotes the bounds ``γ_α = 3`` (``upper = 2``, since ``α = 1 + agg``)
and ``γ_β = 10``; pass them as options. The server learning rate ``η`` (default 1) is not in the
official code.

Differences from the reference code: in the official ``federated_main.py`` the list of local
learning rates is refilled with ``args.lr`` at the start of every round (lines 97 and 105-106),
so the values FedHyper-SL writes at the end of a round (line 183) are never used; here
``state.local_lr`` is what the simulator gives the clients in the next round (the paper's
intent). The server learning rate ``η`` and the hypergradient learning rate ``β`` are options.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = [
    "FedHyperCLState",
    "FedHyperSLState",
    "FedHyperState",
    "fedhyper_cl",
    "fedhyper_g",
    "fedhyper_gm",
    "fedhyper_sl",
]


def _dtype(params: Any) -> jnp.dtype:
    leaves = jax.tree.leaves(params)
    return jnp.result_type(jnp.float32, *[x.dtype for x in leaves]) if leaves else jnp.float32


def _vdot(a: Any, b: Any, dtype: Any) -> jax.Array:
    parts = [jnp.vdot(x.astype(dtype), y.astype(dtype)) for x, y in zip(a, b, strict=True)]
    return sum(parts, jnp.zeros((), dtype))


def _leaves(tree: Any) -> list:
    return jax.tree.leaves(tree)


class FedHyperState(NamedTuple):
    """State of :func:`fedhyper_g` and :func:`fedhyper_gm`.

    Attributes:
      count: the number of rounds done (int32).
      agg: the learnt offset; the global learning rate is ``1 + agg``.
      last: the previous global update (G) or its momentum sum (GM).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> state = fed.fedhyper_g().init(jnp.zeros(2))
      >>> float(1 + state.agg), state.last.shape
      (1.0, (2,))
    """

    count: jax.Array
    agg: jax.Array
    last: optax.Updates


class FedHyperSLState(NamedTuple):
    """State of :func:`fedhyper_sl`.

    Attributes:
      count: the number of rounds done (int32).
      agg: the learnt offset (the local learning rate is ``clip(lr0 (1 + agg))``).
      last: the previous global update.
      local_lr: the clients' learning rate for the next round.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> state = fed.fedhyper_sl(0.05).init(jnp.zeros(2))
      >>> round(float(state.local_lr), 6)
      0.05
    """

    count: jax.Array
    agg: jax.Array
    last: optax.Updates
    local_lr: jax.Array


def _server_rule(
    owner, learning_rate, hypergrad_lr, lower, upper, momentum, lr0, min_lr, max_lr, kind
):
    V.check_real(owner, "learning_rate", learning_rate, low=0.0)
    V.check_real(owner, "hypergrad_lr", hypergrad_lr, low=0.0)
    if kind != "sl":
        V.check_real(owner, "lower", lower, high=0.0)
        V.check_real(owner, "upper", upper, low=0.0)
    if kind == "gm":
        V.check_real(owner, "momentum", momentum, low=0.0, high=1.0)
    if kind == "sl":
        V.check_real(owner, "local_learning_rate", lr0, low=0.0)
        V.check_real(owner, "min_lr", min_lr, low=0.0)
        V.check_real(owner, "max_lr", max_lr, low=0.0)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        dt = _dtype(params)
        common = dict(
            count=jnp.zeros((), jnp.int32),
            agg=jnp.zeros((), dt),
            last=jax.tree.map(jnp.zeros_like, params),
        )
        if kind == "sl":
            return FedHyperSLState(**common, local_lr=jnp.asarray(lr0, dt))
        return FedHyperState(**common)

    def update_fn(updates, state, params=None):
        del params
        dt = state.agg.dtype
        treedef = jax.tree.structure(updates)
        delta = [-u for u in _leaves(updates)]  # Δ_t
        last = _leaves(state.last)
        agg = state.agg + jnp.asarray(hypergrad_lr, dt) * _vdot(last, delta, dt)
        if kind != "sl":
            agg = jnp.clip(agg, jnp.asarray(lower, dt), jnp.asarray(upper, dt))
        eta = jnp.asarray(learning_rate, dt)
        if kind == "gm":
            mu = jnp.asarray(momentum, dt)
            out = [
                (eta * ((1 + agg) * d.astype(dt) + mu * agg * p.astype(dt))).astype(d.dtype)
                for d, p in zip(delta, last, strict=True)
            ]
            new_last = [(d + mu * p).astype(p.dtype) for d, p in zip(delta, last, strict=True)]
        elif kind == "g":
            out = [(eta * (1 + agg) * d.astype(dt)).astype(d.dtype) for d in delta]
            new_last = [d.astype(p.dtype) for d, p in zip(delta, last, strict=True)]
        else:
            out = [(eta * d.astype(dt)).astype(d.dtype) for d in delta]
            new_last = [d.astype(p.dtype) for d, p in zip(delta, last, strict=True)]
        common = dict(
            count=optax.safe_int32_increment(state.count),
            agg=agg,
            last=jax.tree.unflatten(jax.tree.structure(state.last), new_last),
        )
        if kind == "sl":
            local_lr = jnp.clip(
                jnp.asarray(lr0, dt) * (1 + agg), jnp.asarray(min_lr, dt), jnp.asarray(max_lr, dt)
            )
            new_state = FedHyperSLState(**common, local_lr=local_lr)
        else:
            new_state = FedHyperState(**common)
        return jax.tree.unflatten(treedef, out), new_state

    return optax.GradientTransformation(init_fn, update_fn)


def fedhyper_g(
    learning_rate: float = 1.0,
    *,
    hypergrad_lr: float = 1.0,
    lower: float = -0.8,
    upper: float = 4.0,
) -> optax.GradientTransformation:
    """FedHyper-G: the global learning rate ``1 + agg`` learnt from ``<Δ_{t-1}, Δ_t>``.

    Args:
      learning_rate: server learning rate ``η`` multiplying the update (1 = official).
      hypergrad_lr: ``β``, the step of ``agg`` along the hypergradient (official 1).
      lower: lower clip of ``agg`` (official -0.8: ``α >= 0.2``).
      upper: upper clip of ``agg`` (official 4: ``α <= 5``; the paper's ``γ_α = 3`` is
        ``upper=2``).

    Returns:
      An ``optax.GradientTransformation`` of the pseudo-gradient ``-Δ_t`` whose state is a
      :class:`FedHyperState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> tx = fed.fedhyper_g()
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(-jnp.array([1.0, 0.0]), state)  # round 0: plain FedAvg
      >>> u, state = tx.update(-jnp.array([0.5, 0.5]), state)  # agg = <Δ_0, Δ_1> = 0.5
      >>> print(u, float(state.agg))
      [0.75 0.75] 0.5
    """
    return _server_rule(
        "fedhyper_g",
        learning_rate,
        hypergrad_lr,
        lower,
        upper,
        0.0,
        None,
        None,
        None,
        "g",
    )


def fedhyper_gm(
    learning_rate: float = 1.0,
    *,
    momentum: float = 0.9,
    hypergrad_lr: float = 1.0,
    lower: float = -0.2,
    upper: float = 4.0,
) -> optax.GradientTransformation:
    """FedHyper-GM: FedHyper-G with server momentum (the official default rule).

    Args:
      learning_rate: server learning rate ``η`` multiplying the update (1 = official).
      momentum: server momentum ``μ`` (official 0.9).
      hypergrad_lr: ``β``, the step of ``agg`` along the hypergradient (official 1).
      lower: lower clip of ``agg`` (official -0.2).
      upper: upper clip of ``agg`` (official 4; the paper's ``γ_α = 3`` is ``upper=2``).

    Returns:
      An ``optax.GradientTransformation`` of the pseudo-gradient ``-Δ_t`` whose state is a
      :class:`FedHyperState` (``last`` holds the momentum sum).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> tx = fed.fedhyper_gm()
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(-jnp.array([1.0, 0.0]), state)
      >>> u, state = tx.update(-jnp.array([0.5, 0.5]), state)  # agg = 0.5
      >>> print(u, state.last)
      [1.2  0.75] [1.4 0.5]
    """
    return _server_rule(
        "fedhyper_gm",
        learning_rate,
        hypergrad_lr,
        lower,
        upper,
        momentum,
        None,
        None,
        None,
        "gm",
    )


def fedhyper_sl(
    local_learning_rate: float = 0.01,
    *,
    learning_rate: float = 1.0,
    hypergrad_lr: float = 1.0,
    min_lr: float = 0.001,
    max_lr: float = 0.1,
) -> optax.GradientTransformation:
    """FedHyper-SL: the server learns the clients' learning rate ``clip(lr0 (1 + agg))``.

    Args:
      local_learning_rate: ``lr0``, the clients' initial learning rate (official 0.01).
      learning_rate: server learning rate ``η`` multiplying the update (1 = official).
      hypergrad_lr: ``β``, the step of ``agg`` along the hypergradient (official 1).
      min_lr: lower clip of the local learning rate (official 0.001).
      max_lr: upper clip of the local learning rate (official 0.1).

    Returns:
      An ``optax.GradientTransformation`` of the pseudo-gradient ``-Δ_t`` whose state is a
      :class:`FedHyperSLState`; the clients' learning rate for the next round is
      ``state.local_lr``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> tx = fed.fedhyper_sl()
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(-jnp.array([1.0, 0.0]), state)
      >>> u, state = tx.update(-jnp.array([2.0, 0.0]), state)  # agg = 2
      >>> print(u, round(float(state.local_lr), 6))
      [2. 0.] 0.03
    """
    return _server_rule(
        "fedhyper_sl",
        learning_rate,
        hypergrad_lr,
        None,
        None,
        None,
        local_learning_rate,
        min_lr,
        max_lr,
        "sl",
    )


class FedHyperCLState(NamedTuple):
    """State of :func:`fedhyper_cl` (one client, one round).

    Attributes:
      count: the number of local steps taken (int32).
      scale: the multiplier ``b`` of the local learning rate.
      prev_step: the previous local step ``d_prev`` (used once ``started``).
      started: whether ``prev_step`` holds a local step (else ``Δ_{t-1}`` is used).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> float(fed.fedhyper_cl().init(jnp.zeros(3)).scale)
      1.0
    """

    count: jax.Array
    scale: jax.Array
    prev_step: optax.Updates
    started: jax.Array


def fedhyper_cl(
    global_weight: float = 0.01,
    *,
    max_growth: float = 1.1,
    min_scale: float = 0.1,
    max_scale: float = 10.0,
) -> optax.GradientTransformationExtraArgs:
    """FedHyper-CL: each client scales its learning rate by a hypergradient-learnt multiplier.

    Chain it after the local optimizer (``optax.chain(optax.sgd(lr, momentum=0.5),
    fedhyper_cl())``) and call ``update(u, state, params, global_update=Δ_prev,
    epoch_start=flag)``.

    Args:
      global_weight: ``w``, the weight of ``<d_k, Δ_{t-1}>`` (official ``0.1 / (num_users ·
        frac) = 0.01``).
      max_growth: the largest factor of one update of the multiplier (official 1.1).
      min_scale: lower clip of the multiplier (official 0.1; the paper's ``1/γ_β``).
      max_scale: upper clip of the multiplier (official 10; the paper's ``γ_β``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``. Extra arguments of ``update``:
      ``global_update`` (required; the previous round's global update, a pytree like the
      params) and ``epoch_start`` (optional boolean; the multiplier is not updated after the
      first step of a local epoch; default: only the first step).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import federated as fed
      >>> tx = fed.fedhyper_cl()
      >>> state = tx.init(jnp.zeros(2))
      >>> g = jnp.array([1.0, 1.0])
      >>> u, state = tx.update(-0.1 * g, state, global_update=g)  # first step: no update
      >>> u, state = tx.update(-0.1 * g, state, global_update=g)  # x + y = -0.002 - 0.2
      >>> print(u, round(float(state.scale), 6))
      [-0.1 -0.1] 0.798
    """
    owner = "fedhyper_cl"
    V.check_real(owner, "global_weight", global_weight)
    V.check_real(owner, "max_growth", max_growth, low=0.0)
    V.check_real(owner, "min_scale", min_scale, low=0.0, low_open=True)
    V.check_real(owner, "max_scale", max_scale, low=0.0, low_open=True)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        dt = _dtype(params)
        return FedHyperCLState(
            count=jnp.zeros((), jnp.int32),
            scale=jnp.ones((), dt),
            prev_step=jax.tree.map(jnp.zeros_like, params),
            started=jnp.zeros((), jnp.bool_),
        )

    def update_fn(
        updates, state, params=None, *, global_update=None, epoch_start=None, **extra_args
    ):
        del params, extra_args
        if global_update is None:
            raise TypeError(
                f"{owner}: the extra argument `global_update` is missing: call "
                "`update(updates, state, params, global_update=previous_global_update)`."
            )
        V.check_same_tree(owner, "global_update", global_update, updates, "updates")
        dt = state.scale.dtype
        if epoch_start is None:
            epoch_start = state.count == 0
        treedef = jax.tree.structure(updates)
        step = [(state.scale * u.astype(dt)) for u in _leaves(updates)]  # d_k
        gl = _leaves(global_update)
        prev = [
            jnp.where(state.started, p.astype(dt), g.astype(dt))
            for p, g in zip(_leaves(state.prev_step), gl, strict=True)
        ]
        x = jnp.asarray(global_weight, dt) * _vdot(step, gl, dt)
        y = _vdot(step, prev, dt)
        gamma = jnp.minimum(jnp.asarray(max_growth, dt), 1 + x + y)
        new_scale = jnp.clip(
            gamma * state.scale, jnp.asarray(min_scale, dt), jnp.asarray(max_scale, dt)
        )
        skip = jnp.asarray(epoch_start, jnp.bool_)
        scale = jnp.where(skip, state.scale, new_scale)
        new_prev = [
            jnp.where(skip, p, s.astype(p.dtype))
            for p, s in zip(_leaves(state.prev_step), step, strict=True)
        ]
        new_state = FedHyperCLState(
            count=optax.safe_int32_increment(state.count),
            scale=scale,
            prev_step=jax.tree.unflatten(jax.tree.structure(state.prev_step), new_prev),
            started=state.started | ~skip,
        )
        out = [s.astype(u.dtype) for s, u in zip(step, _leaves(updates), strict=True)]
        return jax.tree.unflatten(treedef, out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
