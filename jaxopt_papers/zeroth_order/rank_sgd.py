r"""ZO-RankSGD: descent from a ranking oracle (which of m perturbed points are best).

Paper: Zhiwei Tang, Dmitry Rybin, Tsung-Hui Chang, "Zeroth-Order Optimization Meets Human
Feedback: Provable Learning via Ranking Oracles", ICLR 2024, arXiv:2303.03751. Reference code:
TZW1998/Taming-Stable-Diffusion-with-Human-Ranking-Feedback ``optimizer.py`` (commit 13d5a26),
class ``RankSGD`` (method ``rank_feedback``).

With ``m`` = ``num_queries`` Gaussian directions ``ξ_1..ξ_m`` and a ranking oracle that returns
the ``k`` best of the points ``x + μ ξ_i`` in order (best first), the comparisons it implies form
a DAG ``E``: every ordered pair among the ``k`` ranked points, and each ranked point above each
of the ``m - k`` others::

    |E| = k (k - 1) / 2 + k (m - k)
    ĝ = (1/|E|) Σ_{(i worse than j) ∈ E} (ξ_i - ξ_j)
      = -(1/|E|) Σ_i c_i ξ_i,   c_i = m - 1 - 2 r   (ranked at position r = 0, 1, ...)
                                c_i = -k            (not ranked)
    x <- x - η ĝ

``ĝ`` points along the gradient on average (``E[ĝ] ∝ ∇f`` as ``μ → 0``), so ``-ĝ`` is a descent
direction. :func:`rank_sgd_direction` computes ``ĝ`` from given ``ξ`` and ranking;
:func:`scale_by_rank_sgd` draws the directions and queries the oracle (``ranking_fn``, or the
ranking of the losses by ``value_fn``), :func:`zo_rank_sgd` adds the step size.

Defaults: full ranking (``top_k=None``: ``k = m``), the paper's DAG weights. The reference code
is an interactive (human-in-the-loop) notebook that supplies ``num_queries``, ``μ`` and ``η``
itself; ``num_queries=10`` and ``mu=0.01`` are **our** defaults.

Differences from the reference code: the reference weighs ranked point ``r`` by ``m - 2 r`` (one
more than the DAG count ``m - 1 - 2 r``; the extra term has mean zero but adds variance) and
multiplies by the offsets ``μ ξ_i`` rather than ``ξ_i``: ``coefficients="official"`` uses its
weights (the ``μ`` factor can go into the learning rate). The reference also averages
directions over rounds and takes the step by an interactive line search (step sizes
``η 0.5^j``, the user picks the best image), which is not a reusable update rule: here each
step is ``x <- x - η ĝ`` as in the paper's Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.zeroth_order.spsa import _check_params

__all__ = ["RankSGDState", "rank_sgd_direction", "scale_by_rank_sgd", "zo_rank_sgd"]

_COEFFICIENTS = ("paper", "official")


class RankSGDState(NamedTuple):
    """State of :func:`scale_by_rank_sgd`.

    Attributes:
      count: the number of steps taken (int32); step ``t`` draws its directions from
        ``fold_in(key, t)``.
      key: the base PRNG key (raw ``uint32`` key data); it never changes.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import scale_by_rank_sgd
      >>> int(scale_by_rank_sgd().init(jnp.zeros(2)).count)
      0
    """

    count: jax.Array
    key: jax.Array


def _coefficients(ranking: jax.Array, m: int, k: int, kind: str) -> jax.Array:
    """Weights ``c_i`` of the "better" directions (see the module docstring)."""
    r = jnp.arange(k)
    top = (m - 1 - 2 * r) if kind == "paper" else (m - 2 * r)
    c = jnp.full((m,), -k, jnp.int32)
    return c.at[ranking[:k]].set(top.astype(jnp.int32))


def rank_sgd_direction(
    xi: Any,
    ranking: jax.Array,
    k: int | None = None,
    *,
    coefficients: str = "paper",
) -> Any:
    """The ZO-RankSGD estimate ``ĝ`` from the directions and the oracle's ranking.

    ``ĝ = (1/|E|) Σ_{(i worse than j) ∈ E} (ξ_i - ξ_j)`` over the comparisons ``E`` implied by a
    top-``k`` ranking of ``m`` points (every pair among the ranked ones, and each ranked one
    above each unranked one; ``|E| = k(k-1)/2 + k(m-k)``). It estimates the gradient's direction:
    step with ``x - η ĝ``.

    Args:
      xi: the directions ``ξ``: an array (or a pytree of arrays) with a leading axis of size
        ``m`` (one row per queried point ``x + μ ξ_i``).
      ranking: integer array of query indices, best (lowest loss) first; its first ``k``
        entries are used.
      k: how many points the oracle ranked; a Python int in ``[1, m]``; None: ``len(ranking)``
        (a full ranking when that is ``m``).
      coefficients: ``"paper"`` (the DAG count, default) or ``"official"`` (the reference code's
        ``m - 2 r`` weights for ranked points) (keyword-only).

    Returns:
      ``ĝ``, shaped like one row of ``xi`` (a pytree like ``xi`` without the leading axis).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import rank_sgd_direction
      >>> xi = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
      >>> # point 2 best, then 0, then 1: edges (0 worse than 2), (1, 2), (1, 0); |E| = 3
      >>> # ĝ = ((ξ0 - ξ2) + (ξ1 - ξ2) + (ξ1 - ξ0)) / 3
      >>> [round(v, 3) for v in rank_sgd_direction(xi, jnp.array([2, 0, 1])).tolist()]
      [0.667, 0.667]
    """
    owner = "rank_sgd_direction"
    coefficients = V.check_static_choice(owner, "coefficients", coefficients, _COEFFICIENTS)
    leaves = jax.tree.leaves(xi)
    if not leaves:
        raise ValueError(f"{owner}: `xi` must hold at least one array, got {xi!r}.")
    shapes = {jnp.shape(x)[:1] for x in leaves}
    if len(shapes) != 1 or () in shapes:
        raise ValueError(
            f"{owner}: every leaf of `xi` must have the same leading axis m (one row per query), "
            f"got shapes {[jnp.shape(x) for x in leaves]}."
        )
    m = int(jnp.shape(leaves[0])[0])
    ranking = jnp.asarray(ranking)
    if ranking.ndim != 1 or not jnp.issubdtype(ranking.dtype, jnp.integer):
        raise TypeError(
            f"{owner}: `ranking` must be a 1-D integer array of query indices, got dtype "
            f"{ranking.dtype} and shape {ranking.shape}."
        )
    k = ranking.shape[0] if k is None else k
    k = V.check_static_int(owner, "k", k, low=1)
    if k > m or k > ranking.shape[0]:
        raise ValueError(
            f"{owner}: `k` must be at most the number of queries m = {m} and the length of "
            f"`ranking` ({ranking.shape[0]}), got {k}."
        )
    c = _coefficients(ranking, m, k, coefficients)
    edges = k * (k - 1) // 2 + k * (m - k)

    def leaf(x):
        cd = V.compute_dtype(x.dtype)
        g = -jnp.tensordot(c.astype(cd), x.astype(cd), axes=1) / edges
        return g.astype(x.dtype)

    return jax.tree.map(leaf, xi)


def scale_by_rank_sgd(
    num_queries: int = 10,
    top_k: int | None = None,
    mu: float = 0.01,
    ranking_fn: Callable[[Any], jax.Array] | None = None,
    seed: int = 0,
    *,
    coefficients: str = "paper",
) -> optax.GradientTransformationExtraArgs:
    """ZO-RankSGD's estimate ``ĝ`` from a ranking oracle, as an optax transformation.

    Each ``update`` ignores the incoming updates, draws ``m`` = ``num_queries`` standard normal
    directions ``ξ_i`` (from ``fold_in(key, count)``), asks the oracle to rank the points
    ``x + μ ξ_i`` and returns :func:`rank_sgd_direction` of them. The oracle is
    ``ranking_fn(queries)`` (``queries``: the params pytree with a leading axis of size ``m``;
    it returns the indices of the best ``top_k`` points, best first; for an oracle outside JAX,
    wrap it in ``jax.pure_callback``), or, when ``ranking_fn`` is None, the ascending order of
    ``value_fn`` (an extra argument) on the queries: a full ranking by loss.

    Args:
      num_queries: ``m``, points queried per step; a Python int >= 2 (structural).
      top_k: ``k``, how many points the oracle ranks; a Python int in ``[1, m]``; None: ``m``
        (full ranking).
      mu: the smoothing radius ``μ`` of the queries; > 0.
      ranking_fn: the ranking oracle, or None to rank by ``value_fn``.
      seed: the seed of the state's PRNG key; a Python int.
      coefficients: ``"paper"`` (DAG count, default) or ``"official"`` (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`RankSGDState`; its
      ``update`` needs ``params`` (and ``value_fn`` when ``ranking_fn`` is None).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import scale_by_rank_sgd
      >>> tx = scale_by_rank_sgd(num_queries=6, top_k=2)
      >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> g, state = jax.jit(lambda x, s: tx.update(None, s, x, value_fn=f))(
      ...     jnp.zeros(3), tx.init(jnp.zeros(3)))
      >>> g.shape, int(state.count)
      ((3,), 1)
    """
    owner = "scale_by_rank_sgd"
    m = V.check_static_int(owner, "num_queries", num_queries, low=2)
    k = m if top_k is None else V.check_static_int(owner, "top_k", top_k, low=1)
    if k > m:
        raise ValueError(f"{owner}: `top_k` must be at most `num_queries` = {m}, got {k}.")
    V.check_real(owner, "mu", mu, low=0.0, low_open=True)
    if ranking_fn is not None and not callable(ranking_fn):
        raise TypeError(
            f"{owner}: `ranking_fn` must be None or a callable queries -> ranking, got "
            f"{ranking_fn!r}."
        )
    seed = V.check_static_int(owner, "seed", seed, low=None)
    coefficients = V.check_static_choice(owner, "coefficients", coefficients, _COEFFICIENTS)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        return RankSGDState(count=jnp.zeros([], jnp.int32), key=jax.random.PRNGKey(seed))

    def update_fn(updates, state, params=None, *, value_fn=None, **extra_args):
        del updates, extra_args
        _check_params(owner, params)
        if ranking_fn is None:
            if value_fn is None:
                raise ValueError(
                    f"{owner}: `value_fn` is missing: without a `ranking_fn` the queries are "
                    f"ranked by their loss, so call `update(updates, state, params, "
                    f"value_fn=loss_fn)` (or give a `ranking_fn`)."
                )
            if not callable(value_fn):
                raise TypeError(f"{owner}: `value_fn` must be a callable, got {value_fn!r}.")
        step_key = jax.random.fold_in(state.key, state.count)
        leaves, treedef = jax.tree.flatten(params)
        xi = jax.tree.unflatten(
            treedef,
            [
                jax.random.normal(
                    jax.random.fold_in(step_key, i), (m, *jnp.shape(p)), V.compute_dtype(p.dtype)
                )
                for i, p in enumerate(leaves)
            ],
        )
        queries = jax.tree.map(lambda p, x: (p + mu * x).astype(p.dtype), params, xi)
        if ranking_fn is None:
            ranking = jnp.argsort(jax.vmap(value_fn)(queries))[:k]
        else:
            ranking = jnp.asarray(ranking_fn(queries))
        g = rank_sgd_direction(xi, ranking.astype(jnp.int32), k, coefficients=coefficients)
        g = jax.tree.map(lambda a, p: a.astype(p.dtype), g, params)
        return g, RankSGDState(count=optax.safe_increment(state.count), key=state.key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def zo_rank_sgd(
    learning_rate: optax.ScalarOrSchedule,
    num_queries: int = 10,
    top_k: int | None = None,
    mu: float = 0.01,
    ranking_fn: Callable[[Any], jax.Array] | None = None,
    *,
    seed: int = 0,
    coefficients: str = "paper",
) -> optax.GradientTransformationExtraArgs:
    """ZO-RankSGD (Tang, Rybin, Chang, ICLR 2024): ``x <- x - η ĝ`` from a ranking oracle.

    ``ĝ`` is :func:`scale_by_rank_sgd`'s estimate from ``num_queries`` points ``x + μ ξ_i``
    ranked by ``ranking_fn`` (or by ``value_fn``, a full ranking, when ``ranking_fn`` is None).

    Args:
      learning_rate: ``η``, a number or a schedule of the step count.
      num_queries: ``m``, points queried per step; a Python int >= 2 (our default 10).
      top_k: ``k``, points the oracle ranks; None: all ``m`` (full ranking).
      mu: the smoothing radius ``μ``; > 0 (our default 0.01).
      ranking_fn: ``ranking_fn(queries) -> indices of the best top_k, best first``; None: rank
        by ``value_fn``.
      seed: the seed of the state's PRNG key; a Python int (keyword-only).
      coefficients: ``"paper"`` (default) or ``"official"`` DAG weights (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (a chain whose first state is a
      :class:`RankSGDState`).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers.zeroth_order import zo_rank_sgd
      >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> # the oracle only says which points are best (here: by f, but it never gives values)
      >>> oracle = lambda queries: jnp.argsort(jax.vmap(f)(queries))
      >>> lr = optax.cosine_decay_schedule(0.1, 300)
      >>> tx = zo_rank_sgd(lr, num_queries=8, mu=0.01, ranking_fn=oracle)
      >>> x, state = jnp.zeros(2), tx.init(jnp.zeros(2))
      >>> step = jax.jit(lambda x, s: tx.update(None, s, x))
      >>> for _ in range(300):
      ...     u, state = step(x, state)
      ...     x = optax.apply_updates(x, u)
      >>> print(jnp.round(x, 1))
      [1. 1.]
    """
    V.check_learning_rate("zo_rank_sgd", learning_rate)
    return optax.chain(
        scale_by_rank_sgd(num_queries, top_k, mu, ranking_fn, seed, coefficients=coefficients),
        optax.scale_by_learning_rate(learning_rate),
    )
