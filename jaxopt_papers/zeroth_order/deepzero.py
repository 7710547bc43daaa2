r"""DeepZero: coordinate-wise gradient estimates on a sparse set of coordinates.

Paper: Aochuan Chen, Yimeng Zhang, Jinghan Jia, James Diffenderfer, Jiancheng Liu, Konstantinos
Parasyris, Yihua Zhang, Zheng Zhang, Bhavya Kailkhura, Sijia Liu, "DeepZero: Scaling up
Zeroth-Order Optimization for Deep Model Training", ICLR 2024, arXiv:2310.02025. Reference
code: OPTML-Group/DeepZero (commit 5cf30b1): ``algorithm/zoo/gradient_estimate.py`` (``cge``,
``rge``), ``algorithm/prune/importance_scores.py`` (``zoo_grasp_importance_score``),
``algorithm/prune/main.py`` (``global_prune``), ``experiments/sparse_gradient_training.py`` and
``tools/misc.py`` (the training loop and its defaults).

**CGE** (coordinate-wise gradient estimate, forward differences) over the coordinates ``S`` that
the sparsity mask keeps, with ``μ`` = ``mu``::

    ĝ_i = (f(θ + μ e_i) - f(θ)) / μ     for i in S,     ĝ_i = 0 otherwise

It costs ``1 + |S|`` evaluations of ``f``; they are batched with ``jax.vmap`` in chunks of
``chunk_size`` coordinates (``jax.lax.map``). During training a fresh **random** mask with given
per-layer sparsity ratios is drawn every ``mask_refresh_interval`` steps (the weights are never
zeroed: only the estimate is sparse); the ratios come from **ZO-GraSP** pruning at
initialisation (:func:`zo_grasp_ratios`)::

    RGE(θ) = (1/q) Σ_j u_j (f(θ + u_j) - f(θ)) / μ,  u_j = μ v_j / (‖v_j‖ + 1e-8) per leaf,
                                                      v_j ~ N(0, I)
    g0 = RGE(θ);   Hg = (RGE(θ + μ g0) - g0) / μ;    score = -θ ⊙ Hg
    prune the round(s N) entries of smallest |score| over all prunable leaves (global);
    ratio_l = the pruned fraction of leaf l

(the reference's RGE has no dimension factor, so its scale differs from the textbook RGE).
:func:`deepzero` follows the estimate with the reference's SGD (momentum, coupled weight decay).

Defaults are the reference code's: ``mu=5e-3`` (``--zoo-step-size``), ``sparsity=0``
(``--sparsity``; its examples use 0.9), ZO-GraSP with ``q=192`` directions and ``μ=5e-3``
(``generate_layer_ratio.py``), SGD ``learning_rate=0.1``, ``momentum=0.9``, no Nesterov,
``weight_decay=5e-4`` (``tools/misc.py``; the reference also warms up for 3 epochs and decays
by a cosine: pass an optax schedule). The mask is redrawn every 5 epochs in the reference
(``--mask-shuffle-interval``); the transformation counts steps, and
``mask_refresh_interval=980`` is 5 epochs of CIFAR-10 at the reference's batch size 256 (196
steps per epoch).

Differences from the reference code: the mask is drawn from JAX's PRNG (a uniformly random
subset of ``n - round(r n)`` coordinates per leaf, as ``torch.nn.utils.prune.random_unstructured``
keeps), so not the same subset as torch's. ``--zoo-step-size -1`` (``μ`` = the current learning
rate) is not offered: pass ``mu`` explicitly. The reference evaluates the coordinates one by one
(spread over processes, with "feature reuse" that recomputes only the layers after the perturbed
one); here they are batched with ``vmap``, which changes the cost, not the values. In the
reference, a leaf without a sparsity ratio (biases, normalisation layers) gets a dense CGE; here
the same holds for a ``None`` ratio, and a single float ratio applies to every leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.zeroth_order.spsa import _check_params, _check_value_fn

__all__ = [
    "CoordinateEstimateState",
    "coordinate_gradient",
    "deepzero",
    "scale_by_coordinate_estimate",
    "zo_grasp_ratios",
]


class CoordinateEstimateState(NamedTuple):
    """State of :func:`scale_by_coordinate_estimate`.

    Attributes:
      count: the number of steps taken (int32). The random mask in use at step ``t`` is drawn
        from ``fold_in(key, t // mask_refresh_interval)``.
      key: the base PRNG key (raw ``uint32`` key data); it never changes.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import scale_by_coordinate_estimate
      >>> int(scale_by_coordinate_estimate().init(jnp.zeros(3)).count)
      0
    """

    count: jax.Array
    key: jax.Array


def _check_chunk(owner: str, chunk_size: Any) -> int:
    return V.check_static_int(owner, "chunk_size", chunk_size, low=1)


def _ratio(owner: str, r: Any, where: str = "") -> float | None:
    if r is None:
        return None
    if isinstance(r, jax.core.Tracer):
        raise TypeError(
            f"{owner}: `sparsity` fixes how many coordinates are estimated, so it must be "
            f"concrete, got a traced value{where}; under `optax.inject_hyperparams` pass "
            f'`static_args=("sparsity",)`.'
        )
    V.check_real(owner, "sparsity", r, low=0.0, high=1.0, high_open=True)
    return float(r)


def _is_number(x: Any) -> bool:
    return x is not None and not isinstance(x, (dict, list, tuple)) and np.ndim(x) == 0


def _check_sparsity_values(owner: str, sparsity: Any) -> None:
    """Trace-time checks of a number or a pytree of numbers (None leaves allowed)."""
    if _is_number(sparsity):
        _ratio(owner, sparsity)
        return
    for r in jax.tree.leaves(sparsity, is_leaf=lambda x: x is None):
        _ratio(owner, r)


def _leaf_ratios(owner: str, sparsity: Any, params: Any) -> list[float | None]:
    """The per-leaf sparsity ratios as Python floats (None: dense)."""
    leaves = jax.tree.leaves(params)
    if sparsity is None or _is_number(sparsity):
        return [_ratio(owner, sparsity)] * len(leaves)
    is_none = lambda x: x is None
    if jax.tree.structure(sparsity, is_leaf=is_none) != jax.tree.structure(params):
        raise ValueError(
            f"{owner}: `sparsity` must be a number or a pytree of numbers (None for a dense "
            f"leaf) with the params' structure, got {jax.tree.structure(sparsity, is_leaf=is_none)}"
            f" for params {jax.tree.structure(params)}."
        )
    flat = jax.tree.leaves(sparsity, is_leaf=is_none)
    return [_ratio(owner, r, f" at leaf {i}") for i, r in enumerate(flat)]


def _num_kept(n: int, ratio: float | None) -> int:
    """Coordinates estimated in a leaf of ``n`` entries: ``n - round(ratio n)`` (torch's rule)."""
    return n if ratio is None else n - round(ratio * n)


def _cge_leaves(
    value_fn: Callable,
    params: Any,
    indices: list[jax.Array | None],
    mu: Any,
    chunk_size: int,
) -> Any:
    """Forward differences at the given flat indices of each leaf (None: every coordinate)."""
    leaves, treedef = jax.tree.flatten(params)
    base = value_fn(params)
    out = []
    for i, (leaf, idx) in enumerate(zip(leaves, indices, strict=True)):
        n = leaf.size
        cd = V.compute_dtype(leaf.dtype)
        if idx is None:
            idx = jnp.arange(n, dtype=jnp.int32)
        if idx.shape[0] == 0:
            out.append(jnp.zeros_like(leaf))
            continue
        flat = leaf.ravel()

        def at(j, i=i, flat=flat, leaf=leaf):
            bumped = flat.at[j].add(jnp.asarray(mu).astype(flat.dtype)).reshape(leaf.shape)
            return value_fn(jax.tree.unflatten(treedef, [*leaves[:i], bumped, *leaves[i + 1 :]]))

        values = jax.lax.map(at, idx, batch_size=min(chunk_size, idx.shape[0]))
        diff = ((values - base) / mu).astype(cd)
        g = jnp.zeros((n,), cd).at[idx].set(diff)
        out.append(g.reshape(leaf.shape).astype(leaf.dtype))
    return jax.tree.unflatten(treedef, out)


def coordinate_gradient(
    value_fn: Callable[[Any], jax.Array],
    params: Any,
    mu: float = 5e-3,
    *,
    mask: Any = None,
    chunk_size: int = 64,
) -> Any:
    """DeepZero's CGE: forward differences ``(f(θ + μ e_i) - f(θ)) / μ``, coordinate by coordinate.

    Costs one evaluation of ``value_fn`` plus one per estimated coordinate, batched with
    ``jax.vmap`` in chunks of ``chunk_size`` coordinates (each batch holds ``chunk_size``
    perturbed copies of the leaf being estimated).

    Args:
      value_fn: the loss, a function of the params returning a scalar.
      params: the point (a pytree of floating-point arrays).
      mu: the step ``μ``; > 0. Default 5e-3 (the reference ``--zoo-step-size``).
      mask: None (every coordinate) or a pytree of boolean arrays like ``params`` (None leaves:
        every coordinate of that leaf); coordinates where it is False get 0 and cost nothing. It
        must be concrete (NumPy or a non-traced JAX array): it fixes the number of evaluations
        (keyword-only).
      chunk_size: coordinates evaluated together (a ``vmap`` batch); a Python int >= 1
        (keyword-only).

    Returns:
      The estimate, a pytree like ``params`` in the params' dtypes.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import coordinate_gradient
      >>> f = lambda p: jnp.sum(p ** 2)
      >>> g = coordinate_gradient(f, jnp.array([1.0, -2.0, 0.5]), mu=1e-3,
      ...                         mask=jnp.array([True, True, False]))
      >>> [round(v, 3) for v in g.tolist()]  # 2 θ + μ on the estimated coordinates
      [2.001, -3.999, 0.0]
    """
    owner = "coordinate_gradient"
    _check_value_fn(owner, value_fn)
    _check_params(owner, params)
    V.check_real(owner, "mu", mu, low=0.0, low_open=True)
    chunk_size = _check_chunk(owner, chunk_size)
    leaves = jax.tree.leaves(params)
    if mask is None:
        indices = [None] * len(leaves)
    else:
        masks = jax.tree.leaves(mask, is_leaf=lambda x: x is None)
        if len(masks) != len(leaves):
            raise ValueError(
                f"{owner}: `mask` must have the params' structure, got {len(masks)} leaves for "
                f"{len(leaves)} params."
            )
        indices = []
        for m, p in zip(masks, leaves, strict=True):
            if m is None:
                indices.append(None)
                continue
            if isinstance(m, jax.core.Tracer):
                raise TypeError(
                    f"{owner}: `mask` must be concrete (it fixes the number of evaluations), "
                    f"got a traced array; use `scale_by_coordinate_estimate` for random masks."
                )
            m = np.broadcast_to(np.asarray(m, bool), np.shape(p))
            indices.append(jnp.asarray(np.flatnonzero(m), jnp.int32))
    return _cge_leaves(value_fn, params, indices, mu, chunk_size)


def scale_by_coordinate_estimate(
    mu: float = 5e-3,
    sparsity: Any = 0.0,
    mask_refresh_interval: int = 980,
    chunk_size: int = 64,
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
    """DeepZero's sparse CGE as an optax transformation (needs ``value_fn``).

    ``update(updates, state, params, value_fn=f)`` ignores ``updates`` and returns
    ``ĝ_i = (f(θ + μ e_i) - f(θ)) / μ`` on a random subset of each leaf's coordinates (0
    elsewhere): a leaf of ``n`` entries with ratio ``r`` keeps ``n - round(r n)`` coordinates,
    drawn afresh every ``mask_refresh_interval`` steps. Follow it with an optimizer
    (:func:`deepzero` uses the reference's SGD with momentum).

    Args:
      mu: the step ``μ``; > 0 (reference default 5e-3).
      sparsity: the fraction of coordinates left out: a number in ``[0, 1)`` for every leaf
        (None: 0), or a pytree like the params of numbers (or None for a dense leaf), e.g. from
        :func:`zo_grasp_ratios`. Structural (it fixes the number of evaluations): pass it in
        ``static_args`` under ``optax.inject_hyperparams``. Default 0 (dense, as the reference).
      mask_refresh_interval: steps between two random masks; an int >= 1 (default 980: the
        reference's 5 epochs of CIFAR-10 at batch size 256).
      chunk_size: coordinates evaluated together (a ``vmap`` batch); a Python int >= 1.
      seed: the seed of the state's PRNG key; a Python int.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`CoordinateEstimateState`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers.zeroth_order import scale_by_coordinate_estimate
      >>> f = lambda p: jnp.sum(p ** 2)
      >>> tx = scale_by_coordinate_estimate(mu=1e-3, sparsity=0.5)
      >>> params = jnp.arange(1.0, 5.0)
      >>> g, state = jax.jit(lambda s: tx.update(None, s, params, value_fn=f))(tx.init(params))
      >>> int(jnp.sum(g != 0))  # 2 of the 4 coordinates estimated this time
      2
    """
    owner = "scale_by_coordinate_estimate"
    V.check_real(owner, "mu", mu, low=0.0, low_open=True)
    if not isinstance(mask_refresh_interval, (jax.core.Tracer, jax.Array, np.ndarray)):
        V.check_int(owner, "mask_refresh_interval", mask_refresh_interval, low=1)
    chunk_size = _check_chunk(owner, chunk_size)
    seed = V.check_static_int(owner, "seed", seed, low=None)
    _check_sparsity_values(owner, sparsity)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        _leaf_ratios(owner, sparsity, params)
        return CoordinateEstimateState(count=jnp.zeros([], jnp.int32), key=jax.random.PRNGKey(seed))

    def update_fn(updates, state, params=None, *, value_fn=None, **extra_args):
        del updates, extra_args
        _check_value_fn(owner, value_fn)
        _check_params(owner, params)
        ratios = _leaf_ratios(owner, sparsity, params)
        interval = jnp.asarray(mask_refresh_interval, jnp.int32)
        mask_key = jax.random.fold_in(state.key, state.count // interval)
        indices = []
        for i, (p, r) in enumerate(zip(jax.tree.leaves(params), ratios, strict=True)):
            kept = _num_kept(p.size, r)
            if kept == p.size:
                indices.append(None)
            else:
                perm = jax.random.permutation(jax.random.fold_in(mask_key, i), p.size)
                indices.append(perm[:kept].astype(jnp.int32))
        est = _cge_leaves(value_fn, params, indices, mu, chunk_size)
        return est, CoordinateEstimateState(count=optax.safe_increment(state.count), key=state.key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _default_prunable(params: Any) -> Any:
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def _rge(value_fn, params, prunable, key, num_directions, mu):
    """The reference's RGE on the prunable leaves (unit-norm directions per leaf, times μ)."""
    leaves, treedef = jax.tree.flatten(params)
    base = value_fn(params)

    def body(j, acc):
        kj = jax.random.fold_in(key, j)
        us, perturbed = [], []
        for i, (p, pr) in enumerate(zip(leaves, prunable, strict=True)):
            if not pr:
                us.append(None)
                perturbed.append(p)
                continue
            v = jax.random.normal(jax.random.fold_in(kj, i), p.shape, p.dtype)
            u = v / (jnp.linalg.norm(v) + 1e-8) * mu
            us.append(u)
            perturbed.append(p + u)
        dd = (value_fn(jax.tree.unflatten(treedef, perturbed)) - base) / mu
        return [
            a if u is None else a + u * dd / num_directions for a, u in zip(acc, us, strict=True)
        ]

    zeros = [jnp.zeros_like(p) for p in leaves]
    return jax.lax.fori_loop(0, num_directions, body, zeros)


def zo_grasp_ratios(
    value_fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    sparsity: float = 0.9,
    *,
    num_directions: int = 192,
    mu: float = 5e-3,
    prunable: Any = None,
) -> Any:
    """DeepZero's layer-wise sparsity ratios from ZO-GraSP pruning at initialisation.

    Estimates the Hessian-gradient product with the reference's RGE (``q`` =
    ``num_directions`` directions, unit norm per leaf, times ``μ``), scores each prunable entry
    by ``-θ ⊙ Hg``, prunes the ``round(s N)`` entries of smallest ``|score|`` over all prunable
    leaves together (``N`` entries), and returns the pruned fraction of each leaf. Direction
    ``j`` of leaf ``i`` is ``normal(fold_in(fold_in(fold_in(key, phase), j), i))`` with phase 0
    for ``g0`` and 1 for the RGE at ``θ + μ g0``. Call it once, before training, outside
    ``jit`` (its result is structural).

    Args:
      value_fn: the loss on a fixed batch (the reference uses 25 samples per class).
      params: the initial params.
      key: a PRNG key.
      sparsity: ``s``, the global fraction of prunable entries to prune, in ``[0, 1)``
        (default 0.9, the reference's examples).
      num_directions: ``q``, RGE directions; a Python int >= 1 (keyword-only; default 192).
      mu: the RGE smoothing ``μ``; > 0 (keyword-only; default 5e-3).
      prunable: which leaves are pruned: a pytree of bools like ``params`` or a callable of the
        params returning one; None: the leaves with at least 2 dimensions (dense and conv
        kernels, as the reference prunes ``Linear`` and ``Conv2d`` weights) (keyword-only).

    Returns:
      A pytree like ``params`` of Python floats (the pruned fraction of each prunable leaf)
      and None for the other leaves: pass it as ``sparsity`` to
      :func:`scale_by_coordinate_estimate` or :func:`deepzero`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import zo_grasp_ratios
      >>> params = {"w1": jnp.ones((4, 4)), "w2": jnp.ones((4, 2)), "b": jnp.zeros(2)}
      >>> f = lambda p: jnp.sum(jnp.tanh(jnp.ones(4) @ p["w1"] @ p["w2"] + p["b"]) ** 2)
      >>> r = zo_grasp_ratios(f, params, jax.random.PRNGKey(0), 0.5, num_directions=8)
      >>> r["b"], round(16 * r["w1"] + 8 * r["w2"])  # 12 of the 24 weights pruned
      (None, 12)
    """
    owner = "zo_grasp_ratios"
    _check_value_fn(owner, value_fn)
    _check_params(owner, params)
    V.check_real(owner, "sparsity", sparsity, low=0.0, high=1.0, high_open=True)
    num_directions = V.check_static_int(owner, "num_directions", num_directions, low=1)
    V.check_real(owner, "mu", mu, low=0.0, low_open=True)
    if prunable is None:
        prunable = _default_prunable(params)
    elif callable(prunable):
        prunable = prunable(params)
    flags = [bool(x) for x in jax.tree.leaves(prunable)]
    leaves, treedef = jax.tree.flatten(params)
    if len(flags) != len(leaves):
        raise ValueError(
            f"{owner}: `prunable` must have one bool per params leaf, got {len(flags)} for "
            f"{len(leaves)} leaves."
        )
    if not any(flags):
        raise ValueError(
            f"{owner}: no leaf is prunable (`prunable` is False everywhere; by default only "
            f"leaves with at least 2 dimensions are), so there is nothing to rank."
        )
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)

    @jax.jit
    def scores(params, key):
        theta = jax.tree.leaves(params)
        g0 = _rge(value_fn, params, flags, jax.random.fold_in(key, 0), num_directions, mu)
        moved = [p + g * mu if f else p for p, g, f in zip(theta, g0, flags, strict=True)]
        g1 = _rge(
            value_fn,
            jax.tree.unflatten(treedef, moved),
            flags,
            jax.random.fold_in(key, 1),
            num_directions,
            mu,
        )
        return [
            -p * (b - a) / mu if f else None
            for p, a, b, f in zip(theta, g0, g1, flags, strict=True)
        ]

    s = scores(params, key)
    sizes = [leaf.size for leaf, f in zip(leaves, flags, strict=True) if f]
    flat = np.concatenate([np.abs(np.asarray(x, np.float64)).ravel() for x in s if x is not None])
    pruned = np.zeros(flat.size, bool)
    pruned[np.argsort(flat, kind="stable")[: round(sparsity * flat.size)]] = True
    ratios, start, it = [], 0, iter(sizes)
    for f in flags:
        if not f:
            ratios.append(None)
            continue
        n = next(it)
        ratios.append(float(pruned[start : start + n].sum()) / n)
        start += n
    return jax.tree.unflatten(treedef, ratios)


def deepzero(
    learning_rate: optax.ScalarOrSchedule = 0.1,
    mu: float = 5e-3,
    sparsity: Any = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: optax.ScalarOrSchedule = 5e-4,
    *,
    mask_refresh_interval: int = 980,
    chunk_size: int = 64,
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
    """DeepZero training: sparse CGE followed by the reference's SGD.

    ``ĝ`` from :func:`scale_by_coordinate_estimate`, then torch's SGD with coupled weight decay
    on every leaf::

        d = ĝ + λ θ;   b <- β b + d (b = d at the first step);   θ <- θ - η b
        (nesterov: θ <- θ - η (d + β b))

    Defaults are the reference's (``tools/misc.py``): ``learning_rate=0.1``, ``momentum=0.9``,
    ``nesterov=False``, ``weight_decay=5e-4``, ``mu=5e-3``, ``sparsity=0``; it warms up
    linearly for 3 epochs and then decays by a cosine: pass such a schedule as
    ``learning_rate``.

    Args:
      learning_rate: ``η``, a number or a schedule of the step count.
      mu: the CGE step ``μ``; > 0.
      sparsity: a ratio in ``[0, 1)`` for every leaf or a pytree of ratios (None: dense), e.g.
        from :func:`zo_grasp_ratios`; structural.
      momentum: ``β``, in ``[0, 1)``.
      nesterov: Nesterov momentum; a bool.
      weight_decay: ``λ``, coupled (added to the estimate), on every leaf as in the reference.
      mask_refresh_interval: steps between random masks (keyword-only).
      chunk_size: coordinates per ``vmap`` batch (keyword-only).
      seed: the seed of the state's PRNG key (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (a chain whose first state is a
      :class:`CoordinateEstimateState`).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers.zeroth_order import deepzero
      >>> f = lambda p: jnp.sum((p - 1.0) ** 2)
      >>> tx = deepzero(weight_decay=0.0)
      >>> params = jnp.zeros(3)
      >>> state = tx.init(params)
      >>> step = jax.jit(lambda p, s: tx.update(None, s, p, value_fn=f))
      >>> for _ in range(300):
      ...     u, state = step(params, state)
      ...     params = optax.apply_updates(params, u)
      >>> # forward differences: 2 (θ - 1) + μ vanishes at θ = 1 - μ/2
      >>> [round(v, 4) for v in params.tolist()]
      [0.9975, 0.9975, 0.9975]
    """
    owner = "deepzero"
    V.check_learning_rate(owner, learning_rate)
    V.check_weight_decay(owner, weight_decay)
    V.check_beta(owner, "momentum", momentum)
    nesterov = V.check_flag(owner, "nesterov", nesterov)
    return optax.chain(
        scale_by_coordinate_estimate(mu, sparsity, mask_refresh_interval, chunk_size, seed),
        optax.add_decayed_weights(weight_decay),
        optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov),
    )
