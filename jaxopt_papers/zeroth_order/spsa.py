r"""MeZO: SPSA gradient estimates from two function values, in place of a gradient.

Paper: Sadhika Malladi, Tianyu Gao, Eshaan Nichani, Alex Damian, Jason D. Lee, Danqi Chen,
Sanjeev Arora, "Fine-Tuning Language Models with Just Forward Passes", NeurIPS 2023,
arXiv:2305.17333. Reference code: princeton-nlp/MeZO ``large_models/trainer.py`` (commit
552cb1b), methods ``zo_perturb_parameters``, ``zo_step`` and ``zo_update`` (lines 699-807).

One step of MeZO-SGD with ``f`` the loss on the current batch, ``ε`` = ``eps``, ``η`` the
learning rate and ``λ`` the weight decay::

    z ~ N(0, I)                                   # same shapes as θ, drawn from a per-step key
    proj = (f(θ + ε z) - f(θ - ε z)) / (2 ε)       # a scalar: the projected gradient
    ĝ = proj · z                                  # n-SPSA: the mean over n directions
    θ <- θ - η (ĝ + λ θ)     for every leaf except biases and LayerNorm parameters
    θ <- θ - η ĝ             for biases and LayerNorm parameters

:func:`scale_by_spsa` produces ``ĝ`` (the incoming updates are ignored: the loss comes through
optax's ``value_fn`` extra argument), so any optax optimizer can follow it
(``optax.chain(scale_by_spsa(), optax.adam(1e-4))`` is "MeZO-Adam"); :func:`mezo` is MeZO-SGD
with the reference trainer's weight-decay rule. :func:`spsa_gradient` is the estimate as a plain
function.

The directions are never stored: the state holds one PRNG key, the step's key is
``fold_in(key, count)``, direction ``k`` uses ``fold_in(step_key, k)`` and its leaf ``i`` (in
``jax.tree.leaves`` order) ``fold_in(·, i)``. Each leaf's noise is drawn with the leaf's own
shape, so under ``jit`` with sharded params XLA generates it shard by shard (JAX's partitionable
threefry), without gathering the params.

Defaults are the reference code's: ``eps=1e-3`` (``zo_eps`` in ``large_models/run.py``),
``num_directions=1`` (the trainer implements n = 1 only), ``weight_decay=0`` (the Hugging Face
``TrainingArguments`` default). The README's learning rates are 1e-6 / 1e-7 for full-parameter
fine-tuning (``eps=1e-3``), 1e-2 / 1e-3 for prefix tuning (``eps=1e-1``) and 1e-4 / 5e-5 for LoRA
(``eps=1e-2``), with a constant schedule.

Differences from the reference code: the reference perturbs the weights in place (``+εz``,
then ``-2εz`` for the second loss, then ``+εz`` to restore) and applies the update to the
restored weights; here both losses are evaluated on temporaries ``θ ± εz`` and the update is
computed from ``θ`` itself, which agrees to rounding in float64 and avoids the reference's drift
of the weights by rounding in float16/bfloat16. The reference draws ``z`` with torch's generator
from a NumPy-drawn seed; here ``z`` comes from JAX's PRNG, so the two draw different directions
from the same seed (``sampler`` accepts any direction generator, e.g. stored directions). The
reference matches the names ``"bias"``, ``"layer_norm"`` and ``"layernorm"`` case-sensitively in
torch parameter names; :func:`mezo` matches them case-insensitively in the pytree path (so that
flax's ``LayerNorm_0`` is recognised). ``num_directions > 1`` (n-SPSA, Algorithm 2 of the paper)
is not in the reference trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = [
    "SPSAState",
    "mezo",
    "mezo_decay_mask",
    "mezo_step",
    "scale_by_spsa",
    "spsa_gradient",
]

Sampler = Callable[[jax.Array, Any], Any]

_DECAY_EXCLUDED = ("bias", "layer_norm", "layernorm")


class SPSAState(NamedTuple):
    """State of :func:`scale_by_spsa` and :func:`~jaxopt_papers.zeroth_order.scale_by_sparse_spsa`.

    Attributes:
      count: the number of steps taken (int32); step ``t`` draws its directions from
        ``fold_in(key, t)``.
      key: the base PRNG key (raw ``uint32`` key data, as ``jax.random.PRNGKey`` makes); it
        never changes, so the directions are never stored.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import scale_by_spsa
      >>> state = scale_by_spsa(seed=3).init({"w": jnp.zeros(2)})
      >>> int(state.count), state.key.dtype
      (0, dtype('uint32'))
    """

    count: jax.Array
    key: jax.Array


def _check_value_fn(owner: str, value_fn: Any) -> None:
    if value_fn is None:
        raise ValueError(
            f"{owner}: `value_fn` is missing. Zeroth-order estimators need the loss as a "
            f"function of the params: call `update(updates, state, params, value_fn=loss_fn)` "
            f"(optax's extra-argument convention; close over the batch)."
        )
    if not callable(value_fn):
        raise TypeError(
            f"{owner}: `value_fn` must be a callable params -> scalar, got {value_fn!r}."
        )


def _check_params(owner: str, params: Any) -> None:
    if params is None:
        raise ValueError(
            f"{owner}: `params` is missing: the estimate perturbs the current params, so call "
            f"`update(updates, state, params, value_fn=...)`."
        )
    V.check_float_leaves(owner, "params", params)


def _check_sampler(owner: str, sampler: Any) -> None:
    if sampler is not None and not callable(sampler):
        raise TypeError(
            f"{owner}: `sampler` must be None or a callable (key, params) -> directions, got "
            f"{sampler!r}."
        )


def _check_mask_fn(owner: str, mask_fn: Any) -> None:
    if mask_fn is not None and not callable(mask_fn):
        raise TypeError(
            f"{owner}: `mask_fn` must be None or a callable params -> pytree of bools, got "
            f"{mask_fn!r}."
        )


def gaussian_directions(key: jax.Array, params: Any) -> Any:
    """Standard normal noise shaped like ``params``: leaf ``i`` from ``fold_in(key, i)``.

    Half-precision leaves get float32 noise (the perturbation is computed in float32 and
    rounded once).
    """
    leaves, treedef = jax.tree.flatten(params)
    out = [
        jax.random.normal(jax.random.fold_in(key, i), jnp.shape(p), V.compute_dtype(p.dtype))
        for i, p in enumerate(leaves)
    ]
    return jax.tree.unflatten(treedef, out)


def _perturb(params: Any, z: Any, scale: Any) -> Any:
    return jax.tree.map(
        lambda p, d: (p.astype(V.compute_dtype(p.dtype, d.dtype)) + scale * d).astype(p.dtype),
        params,
        z,
    )


def _spsa(
    value_fn: Callable,
    params: Any,
    key: jax.Array,
    eps: Any,
    num_directions: int,
    sampler: Sampler | None,
    mask_fn: Callable | None,
) -> Any:
    """The n-SPSA estimate (in each leaf's compute dtype)."""
    sampler = gaussian_directions if sampler is None else sampler
    mask = None if mask_fn is None else mask_fn(params)

    def direction(k):
        z = sampler(jax.random.fold_in(key, k), params)
        if mask is not None:
            z = jax.tree.map(lambda d, m: jnp.where(m, d, jnp.zeros_like(d)), z, mask)
        return z

    def body(k, acc):
        z = direction(k)
        plus = value_fn(_perturb(params, z, eps))
        minus = value_fn(_perturb(params, z, -eps))
        proj = (plus - minus) / (2 * eps)
        return jax.tree.map(lambda a, d: a + (proj * d).astype(a.dtype), acc, z)

    zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), V.compute_dtype(p.dtype)), params)
    total = jax.lax.fori_loop(0, num_directions, body, zeros)
    return jax.tree.map(lambda a: a / num_directions, total)


def spsa_gradient(
    value_fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    eps: float = 1e-3,
    num_directions: int = 1,
    *,
    sampler: Sampler | None = None,
    mask_fn: Callable[[Any], Any] | None = None,
) -> Any:
    """The (n-)SPSA gradient estimate of MeZO, as a plain function.

    With ``z_k`` the ``k``-th direction (standard normal by default, drawn from
    ``fold_in(key, k)``)::

        proj_k = (f(θ + ε z_k) - f(θ - ε z_k)) / (2 ε)
        ĝ = (1/n) Σ_k proj_k z_k

    ``E[ĝ] = ∇f(θ) + O(ε²)`` for Gaussian directions. Costs ``2 n`` evaluations of ``value_fn``
    and no gradient.

    Args:
      value_fn: the loss, a function of the params returning a scalar (close over the batch).
      params: the point (a pytree of floating-point arrays).
      key: a PRNG key (``jax.random.PRNGKey`` or ``jax.random.key``).
      eps: the perturbation size ``ε``; > 0. Default 1e-3 (the reference ``zo_eps``).
      num_directions: ``n``, the number of directions averaged; a Python int >= 1.
      sampler: ``sampler(key, params) -> directions`` (a pytree like ``params``) draws one
        direction; None: standard normal per leaf (keyword-only).
      mask_fn: ``mask_fn(params) -> pytree of bools`` (like ``params``, or broadcastable per
        leaf); directions are zero where it is False, so those coordinates are neither perturbed
        nor updated (keyword-only).

    Returns:
      The estimate, a pytree like ``params`` in the params' dtypes.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import spsa_gradient
      >>> f = lambda p: jnp.sum(p["w"] ** 2)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> g = spsa_gradient(f, params, jax.random.PRNGKey(0), num_directions=20000)
      >>> [round(v, 1) for v in g["w"].tolist()]  # ∇f = 2 w, up to Monte Carlo error
      [2.0, -4.0]
    """
    owner = "spsa_gradient"
    _check_value_fn(owner, value_fn)
    _check_params(owner, params)
    V.check_real(owner, "eps", eps, low=0.0, low_open=True)
    num_directions = V.check_static_int(owner, "num_directions", num_directions, low=1)
    _check_sampler(owner, sampler)
    _check_mask_fn(owner, mask_fn)
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    est = _spsa(value_fn, params, key, eps, num_directions, sampler, mask_fn)
    return jax.tree.map(lambda g, p: g.astype(p.dtype), est, params)


def _spsa_transform(
    owner: str,
    eps: Any,
    num_directions: int,
    seed: int,
    mask_fn: Callable | None,
    sampler: Sampler | None,
) -> optax.GradientTransformationExtraArgs:
    V.check_real(owner, "eps", eps, low=0.0, low_open=True)
    num_directions = V.check_static_int(owner, "num_directions", num_directions, low=1)
    seed = V.check_static_int(owner, "seed", seed, low=None)
    _check_sampler(owner, sampler)
    _check_mask_fn(owner, mask_fn)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        return SPSAState(count=jnp.zeros([], jnp.int32), key=jax.random.PRNGKey(seed))

    def update_fn(updates, state, params=None, *, value_fn=None, **extra_args):
        del updates, extra_args  # the estimate replaces whatever came in
        _check_value_fn(owner, value_fn)
        _check_params(owner, params)
        step_key = jax.random.fold_in(state.key, state.count)
        est = _spsa(value_fn, params, step_key, eps, num_directions, sampler, mask_fn)
        est = jax.tree.map(lambda g, p: g.astype(p.dtype), est, params)
        return est, SPSAState(count=optax.safe_increment(state.count), key=state.key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_spsa(
    eps: float = 1e-3,
    num_directions: int = 1,
    seed: int = 0,
    mask_fn: Callable[[Any], Any] | None = None,
    *,
    sampler: Sampler | None = None,
) -> optax.GradientTransformationExtraArgs:
    """MeZO's SPSA gradient estimate as an optax transformation (needs ``value_fn``).

    ``update(updates, state, params, value_fn=f)`` ignores ``updates`` and returns::

        ĝ = (1/n) Σ_k proj_k z_k,    proj_k = (f(θ + ε z_k) - f(θ - ε z_k)) / (2 ε)

    with ``z_k`` standard normal directions drawn from the step's key ``fold_in(key, count)``
    (never stored: the state is a key and a count). Chain any optax optimizer after it:
    ``optax.chain(scale_by_spsa(), optax.sgd(1e-6))`` is MeZO-SGD without weight decay
    (:func:`mezo` adds it), ``optax.chain(scale_by_spsa(), optax.adam(1e-4))`` is MeZO-Adam.
    Defaults are the reference code's (``zo_eps = 1e-3``, one direction).

    Args:
      eps: the perturbation size ``ε``; > 0.
      num_directions: ``n``, the number of directions averaged per step (n-SPSA); a Python
        int >= 1 (structural: pass it in ``static_args`` under ``optax.inject_hyperparams``).
      seed: the seed of the state's PRNG key; a Python int (structural).
      mask_fn: ``mask_fn(params) -> pytree of bools`` (like ``params``, or broadcastable per
        leaf); directions are zero where it is False, so those coordinates get a zero estimate.
        None: every coordinate.
      sampler: ``sampler(key, params) -> directions`` draws one direction pytree; None:
        standard normal per leaf, leaf ``i`` from ``fold_in(key, i)``. Use it for other
        distributions or to replay given directions (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`SPSAState`; its
      ``update`` needs ``params`` and the ``value_fn`` extra argument.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers.zeroth_order import scale_by_spsa
      >>> f = lambda p: jnp.sum((p - 3.0) ** 2)
      >>> tx = optax.chain(scale_by_spsa(eps=1e-3, num_directions=4), optax.sgd(0.05))
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> @jax.jit
      ... def step(params, state):
      ...     updates, state = tx.update(None, state, params, value_fn=f)
      ...     return optax.apply_updates(params, updates), state
      >>> for _ in range(300):
      ...     params, state = step(params, state)
      >>> print(jnp.round(params, 2))
      [3. 3.]
    """
    return _spsa_transform("scale_by_spsa", eps, num_directions, seed, mask_fn, sampler)


def _name_has(path, words) -> bool:
    name = jax.tree_util.keystr(path).lower()
    return any(w in name for w in words)


def mezo_decay_mask(params: Any) -> Any:
    """MeZO's weight-decay rule: True for every leaf whose path names no bias or LayerNorm.

    The reference trainer skips weight decay for parameters whose name contains ``"bias"``,
    ``"layer_norm"`` or ``"layernorm"``; here the leaf's pytree path
    (``jax.tree_util.keystr``) is matched, case-insensitively.

    Args:
      params: the params pytree.

    Returns:
      A pytree of Python bools like ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import mezo_decay_mask
      >>> params = {"Dense_0": {"kernel": jnp.ones(2), "bias": jnp.ones(2)},
      ...           "LayerNorm_0": {"scale": jnp.ones(2)}}
      >>> mezo_decay_mask(params)
      {'Dense_0': {'bias': False, 'kernel': True}, 'LayerNorm_0': {'scale': False}}
    """
    return jax.tree_util.tree_map_with_path(
        lambda path, _: not _name_has(path, _DECAY_EXCLUDED), params
    )


def mezo(
    learning_rate: optax.ScalarOrSchedule,
    eps: float = 1e-3,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    num_directions: int = 1,
    seed: int = 0,
    mask: Any = None,
    mask_fn: Callable[[Any], Any] | None = None,
    sampler: Sampler | None = None,
) -> optax.GradientTransformationExtraArgs:
    """MeZO-SGD (Malladi et al., NeurIPS 2023) as the reference trainer runs it.

    Each step estimates the gradient from two losses (:func:`scale_by_spsa`) and updates::

        θ <- θ - η (proj · z + λ θ)    (leaves whose path names no bias / LayerNorm)
        θ <- θ - η proj · z            (biases and LayerNorm parameters)

    Defaults are the reference code's: ``eps=1e-3``, ``weight_decay=0``, one direction; its
    README fine-tunes all parameters with ``learning_rate`` 1e-6 or 1e-7 (constant).

    Args:
      learning_rate: ``η``, a number or a schedule of the step count.
      eps: the perturbation size ``ε``; > 0.
      weight_decay: ``λ``, added to the estimate as ``λ θ`` (a number or a schedule).
      num_directions: directions averaged per step (n-SPSA); a Python int >= 1 (keyword-only).
      seed: the seed of the state's PRNG key; a Python int (keyword-only).
      mask: which leaves get weight decay: a pytree of bools like the params (or a prefix), or
        a callable of the params returning one; None: the reference rule,
        :func:`mezo_decay_mask` (keyword-only).
      mask_fn: coordinates to perturb and update, see :func:`scale_by_spsa` (keyword-only).
      sampler: direction generator, see :func:`scale_by_spsa` (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (a chain whose first state is an
      :class:`SPSAState`); its ``update`` needs ``params`` and ``value_fn``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers.zeroth_order import mezo
      >>> params = {"w": jnp.array([1.0, 2.0]), "bias": jnp.array([1.0])}
      >>> f = lambda p: 0.0 * jnp.sum(p["w"])  # a flat loss: only the weight decay acts
      >>> tx = mezo(learning_rate=0.1, weight_decay=0.5)
      >>> updates, _ = tx.update(None, tx.init(params), params, value_fn=f)
      >>> # -η λ θ on the weights, nothing on the bias
      >>> [round(v, 6) for v in updates["w"].tolist()], abs(float(updates["bias"][0]))
      ([-0.05, -0.1], 0.0)
    """
    owner = "mezo"
    V.check_learning_rate(owner, learning_rate)
    V.check_weight_decay(owner, weight_decay)
    V.check_mask(owner, mask)
    return optax.chain(
        _spsa_transform(owner, eps, num_directions, seed, mask_fn, sampler),
        optax.add_decayed_weights(weight_decay, mezo_decay_mask if mask is None else mask),
        optax.scale_by_learning_rate(learning_rate),
    )


def _rbg_leaf_noise(key: jax.Array, i: int, p: jax.Array) -> jax.Array:
    """The direction of :func:`mezo_step` for leaf ``i``: standard normal noise drawn by XLA's
    ``RngBitGenerator`` (JAX's ``"rbg"`` implementation), keyed by four words of
    ``jax.random.bits(fold_in(key, i), (4,), uint32)``; generated in place, with no buffers of
    random bits beside the leaf."""
    words = jax.random.bits(jax.random.fold_in(key, i), (4,), jnp.uint32)
    rbg = jax.random.wrap_key_data(words, impl="rbg")
    return jax.random.normal(rbg, jnp.shape(p), V.compute_dtype(p.dtype))


def _mezo_pass(leaves, decay, key, i, eps, proj, lr, wd) -> list:
    """Pass ``i`` of a MeZO step on the leaves: ``+εz`` (0), ``-2εz`` (1), or the restore
    ``+εz`` followed by ``θ <- θ - η (proj z + λ θ)`` (2), leaf after leaf."""
    out, k = [], key
    for j, (p, d) in enumerate(zip(leaves, decay, strict=True)):
        c = V.compute_dtype(p.dtype)
        shrink = (1 - lr * wd).astype(c) if d else jnp.ones((), c)
        # pass 2: θ - η (proj z + λ θ) with θ = p + εz the restored weights
        a = jnp.where(i == 0, eps, jnp.where(i == 1, -2 * eps, shrink * eps - lr * proj))
        b = jnp.where(i == 2, shrink, 1)
        q = (b.astype(c) * p.astype(c) + a.astype(c) * _rbg_leaf_noise(k, j, p)).astype(p.dtype)
        # The next leaf's key depends on this leaf's result (by an exact zero): XLA then
        # generates the noise one leaf after another, so that the random bits of one leaf only
        # are ever in memory (independent leaves would be generated concurrently).
        zero = jnp.nan_to_num(q.reshape(-1)[0].astype(jnp.float32)) * 0
        k = k + zero.astype(k.dtype)
        out.append(q)
    return out


def _decay_leaves(owner: str, params: Any, mask: Any) -> list[bool]:
    V.check_mask(owner, mask)
    tree = mezo_decay_mask(params) if mask is None else (mask(params) if callable(mask) else mask)
    return jax.tree.leaves(
        jax.tree.map(lambda m, p: jax.tree.map(lambda _: bool(m), p), tree, params)
    )


def mezo_step(
    value_fn: Callable[[Any], jax.Array],
    params: Any,
    state: SPSAState,
    learning_rate: Any,
    eps: float = 1e-3,
    weight_decay: Any = 0.0,
    *,
    mask: Any = None,
) -> tuple[Any, SPSAState, jax.Array]:
    """One MeZO-SGD step with the reference trainer's in-place arithmetic, at inference memory.

    The transformations (:func:`mezo`, :func:`scale_by_spsa`) return an update the size of the
    params and evaluate the losses at temporaries ``θ ± εz`` beside ``θ``, and JAX's default
    generator keeps four buffers of random bits per leaf: a jitted step holds several copies of
    the params. This function runs the reference ``zo_step``/``zo_update`` arithmetic instead:
    the params are shifted in place, ``θ + εz`` (first loss), ``- 2εz`` (second loss), then
    restored and updated, ``θ <- (θ + εz) - η (proj · z + λ (θ + εz))`` (no decay on biases and
    LayerNorm parameters, as :func:`mezo`), in a loop over the three passes whose carry XLA
    updates in place. ``z`` is regenerated in each pass, leaf after leaf, by XLA's
    ``RngBitGenerator`` (a JAX ``"rbg"`` key per leaf ``i``, made of four words drawn from
    ``fold_in(fold_in(fold_in(key, count), 0), i)``), which needs no buffers beside its output.
    Each leaf's noise depends on the previous leaf's result, so the random bits of one leaf
    only are in memory at a time. Jitted with the params donated (``donate_argnums``), the
    step's compiled peak memory is the forward pass's plus about two leaves: 1.02x to 1.04x
    the forward pass for 0.4M to 43M parameters in ``benchmarks/zeroth_order.py``'s
    transformer.

    Its directions are not :func:`mezo`'s (which uses JAX's default threefry generator); the
    arithmetic is the reference's, so the weights drift by the rounding of the in-place
    restore as the reference's do. RBG streams are not guaranteed to be identical under
    different shardings of the params.

    Args:
      value_fn: the loss on the current batch, a function of the params returning a scalar.
      params: the parameters (a pytree of floating-point arrays); donate them under ``jit``.
      state: an :class:`SPSAState`, e.g. ``scale_by_spsa(seed=s).init(params)``.
      learning_rate: ``η`` (a number or a scalar array; a schedule: evaluate it at
        ``state.count``).
      eps: the perturbation size ``ε``; > 0 (reference 1e-3).
      weight_decay: ``λ`` (reference 0).
      mask: which leaves get weight decay (a pytree of bools like the params, or a callable of
        them); None: :func:`mezo_decay_mask` (keyword-only).

    Returns:
      ``(new_params, new_state, loss)`` with ``loss = f(θ + εz)``, the loss the reference
      trainer reports.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.zeroth_order import mezo_step, scale_by_spsa
      >>> f = lambda p: jnp.sum((p["w"] - 1.0) ** 2)
      >>> params = {"w": jnp.zeros(4)}
      >>> state = scale_by_spsa().init(params)
      >>> step = jax.jit(lambda p, s: mezo_step(f, p, s, 0.05), donate_argnums=0)
      >>> for _ in range(500):
      ...     params, state, loss = step(params, state)
      >>> print(jnp.round(params["w"], 1))
      [1. 1. 1. 1.]
    """
    owner = "mezo_step"
    _check_value_fn(owner, value_fn)
    _check_params(owner, params)
    if not isinstance(state, SPSAState):
        raise TypeError(f"{owner}: `state` must be an SPSAState, got {type(state).__name__}.")
    V.check_real(owner, "eps", eps, low=0.0, low_open=True)
    decay = _decay_leaves(owner, params, mask)
    leaves, treedef = jax.tree.flatten(params)
    key = jax.random.fold_in(jax.random.fold_in(state.key, state.count), 0)

    lr = jnp.asarray(learning_rate)
    wd = jnp.asarray(weight_decay)

    def phase(i, carry):
        """Phase 0: θ + εz, then f₊; phase 1: - 2εz, then f₋; phase 2: restore and update."""
        ps, loss_plus, loss_minus = carry
        proj = (loss_plus - loss_minus) / (2 * eps)
        out = _mezo_pass(ps, decay, key, i, eps, proj, lr, wd)
        value = jax.lax.cond(
            i < 2,
            lambda qs: jnp.asarray(value_fn(jax.tree.unflatten(treedef, qs)), loss_plus.dtype),
            lambda qs: jnp.zeros((), loss_plus.dtype),
            out,
        )
        loss_plus = jnp.where(i == 0, value, loss_plus)
        loss_minus = jnp.where(i == 1, value, loss_minus)
        return out, loss_plus, loss_minus

    # A loop over the three passes: the loop carry is updated in place, and the noise is
    # regenerated from the key in each pass instead of being kept.
    dtype = jnp.result_type(*[V.compute_dtype(p.dtype) for p in leaves])
    zero = jnp.zeros((), dtype)
    new, loss_plus, _ = jax.lax.fori_loop(0, 3, phase, (leaves, zero, zero))
    new_state = SPSAState(count=optax.safe_increment(state.count), key=state.key)
    return jax.tree.unflatten(treedef, new), new_state, loss_plus
