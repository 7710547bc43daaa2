r"""Keep any optax transformation's moments in 8 bits: :func:`quantize_state`.

Paper: Tim Dettmers, Mike Lewis, Sam Shleifer, Luke Zettlemoyer, "8-bit Optimizers via
Block-wise Quantization", ICLR 2022, arXiv:2110.02861 (the block-wise dynamic quantisation of
optimizer state, here applied to any transformation's state).

Every state leaf of ``inner`` that mirrors a parameter (same shape; found with
``optax.tree.map_params``), is floating point and has at least ``min_8bit_size`` entries is
stored between steps as uint8 codes plus one maximum per block (:mod:`.blockwise`). A step
dequantises, runs ``inner.update`` on the dequantised state (so the update uses the fresh,
unrounded moments, as bitsandbytes' kernels do) and requantises the new state. Leaves whose
path contains a name from ``second_moments`` (optax's ``nu``) use the unsigned code, all others
the signed code with the sign guard of bitsandbytes' kernels.

Differences from the reference code: bitsandbytes quantises only the states of its own
optimizers, inside fused kernels; this wrapper works on any transformation at the cost of
materialising its float state during the step. Block maxima are stored in the moment's own
dtype (float32 for float32 moments), which also records the dtype to dequantise to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.quantized import _moments as Q
from jaxopt_papers.quantized import blockwise as B

__all__ = ["QuantizedState", "quantize_state"]


class QuantizedState(NamedTuple):
    """State of :func:`quantize_state`.

    Attributes:
      inner: the wrapped transformation's state, with 8-bit leaves replaced by uint8 codes.
      absmax: a tree like ``inner``: block maxima of the 8-bit leaves, empty ``(0,)`` arrays
        for the others.
    """

    inner: Any
    absmax: Any


def _names(path) -> set:
    out = set()
    for k in path:
        for attr in ("name", "key"):
            v = getattr(k, attr, None)
            if isinstance(v, str):
                out.add(v)
    return out


def quantize_state(
    inner: optax.GradientTransformation,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    second_moments: Sequence[str] = ("nu",),
    keep_32bit: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Store the parameter-shaped moments of ``inner`` as 8-bit block-wise codes.

    Args:
      inner: any optax transformation (e.g. ``optax.scale_by_adam()``, ``jop.scale_by_adan()``).
      block_size: entries per quantisation block (structural).
      min_8bit_size: leaves with fewer entries stay in their own dtype (structural).
      second_moments: state field (or dict key) names whose leaves are non-negative and use the
        unsigned code (optax's ``nu``); every other quantised leaf uses the signed code.
      keep_32bit: parameters whose moments stay unquantised: a pytree of bools with the
        params' structure (or a prefix), or a callable of the params returning one.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`QuantizedState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> tx = jop.quantize_state(optax.scale_by_adam(), min_8bit_size=0)
      >>> state = tx.init({"w": jnp.zeros(1000)})
      >>> state.inner.mu["w"].dtype, state.absmax.nu["w"].shape
      (dtype('uint8'), (4,))
      >>> u, state = tx.update({"w": jnp.ones(1000)}, state)
      >>> round(float(u["w"][0]), 4)
      1.0
    """
    owner = "quantize_state"
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(f"{owner}: `inner` must be an optax.GradientTransformation, got {inner!r}.")
    block_size, min_8bit_size = Q.check_layout(owner, block_size, min_8bit_size)
    if isinstance(second_moments, str) or not all(isinstance(s, str) for s in second_moments):
        raise TypeError(
            f"{owner}: `second_moments` must be a sequence of field names, got {second_moments!r}."
        )
    unsigned_names = frozenset(second_moments)
    V.check_mask(owner, keep_32bit)
    signed, unsigned = Q.signed_code(), Q.unsigned_code()

    def eligible_tree(state, params):
        keep = Q.resolve_mask(owner, "keep_32bit", keep_32bit, params, False)

        def eligible(leaf, p, k):
            return (
                hasattr(leaf, "dtype")
                and jnp.issubdtype(leaf.dtype, jnp.floating)
                and tuple(leaf.shape) == tuple(np.shape(p))
                and int(np.prod(np.shape(p))) >= max(min_8bit_size, 1)
                and not k
            )

        return optax.tree.map_params(
            inner, eligible, state, params, keep, transform_non_params=lambda _: False
        )

    def quantize(path, leaf, absmax_like):
        code = unsigned if _names(path) & unsigned_names else signed
        blocks = B.to_blocks(leaf, block_size)
        like = jnp.zeros(leaf.shape, jnp.uint8)
        codes, absmax = Q.store(blocks, like, code, signed=code is signed)
        return codes, absmax.astype(absmax_like)

    def init_fn(params):
        state = inner.init(params)
        flags = eligible_tree(state, params)

        def one(path, leaf, flag):
            if flag:
                return quantize(path, leaf, leaf.dtype)
            return leaf, jnp.zeros((0,), jnp.float32)

        pairs = jax.tree_util.tree_map_with_path(one, state, flags)
        return QuantizedState(
            jax.tree.map(lambda _, pr: pr[0], state, pairs),
            jax.tree.map(lambda _, pr: pr[1], state, pairs),
        )

    def update_fn(updates, state, params=None, **extra):
        def deq(path, leaf, absmax):
            if absmax.shape[0] == 0:
                return leaf
            code = unsigned if _names(path) & unsigned_names else signed
            values = Q.load(leaf, absmax.astype(jnp.float32), code, absmax.dtype, block_size)
            return B.from_blocks(values, leaf.shape)

        dense = jax.tree_util.tree_map_with_path(deq, state.inner, state.absmax)
        if isinstance(inner, optax.GradientTransformationExtraArgs):
            updates, new = inner.update(updates, dense, params, **extra)
        else:
            updates, new = inner.update(updates, dense, params)

        def req(path, leaf, absmax):
            if absmax.shape[0] == 0:
                return leaf, absmax
            return quantize(path, leaf.astype(absmax.dtype), absmax.dtype)

        pairs = jax.tree_util.tree_map_with_path(req, new, state.absmax)
        return updates, QuantizedState(
            jax.tree.map(lambda _, pr: pr[0], new, pairs),
            jax.tree.map(lambda _, pr: pr[1], new, pairs),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
