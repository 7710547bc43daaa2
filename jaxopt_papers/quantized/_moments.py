"""Moments stored as 8-bit block-wise codes: the per-leaf load/store shared by the optimizers.

A moment leaf is either uint8 codes (the parameter's shape) with float32 block maxima
``(blocks,)``, or, for a tensor that keeps 32-bit state, the moment itself with an empty
``(0,)`` maxima array. Which one is decided once, in ``init``, from the parameter's size, its
path and the user's mask, and read back from the codes' dtype afterwards.

Differences from the reference code: an all-zero block stores the code of 0 (bitsandbytes'
kernel divides 0 by 0 there and stores another code; both dequantise to 0), and states are
normalised by a product with the correctly rounded reciprocal of the block maximum, where the
CUDA kernel's ``__fdividef`` multiplies by an approximate one.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers.quantized import blockwise as B

STABLE_EMBEDDING_PARAM = "stable_embedding"
"""Name of :class:`~jaxopt_papers.quantized.StableEmbedding`'s table: such leaves keep 32-bit
state in every 8-bit optimizer, as bitsandbytes registers its ``StableEmbedding`` weights."""


def signed_code() -> np.ndarray:
    return B._dynamic_map_np(True, 7, 8)


def unsigned_code() -> np.ndarray:
    return B._dynamic_map_np(False, 7, 8)


def check_layout(owner: str, block_size: Any, min_8bit_size: Any) -> tuple[int, int]:
    block_size = V.check_static_int(owner, "block_size", block_size, low=1)
    min_8bit_size = V.check_static_int(owner, "min_8bit_size", min_8bit_size, low=0)
    return block_size, min_8bit_size


def _last_key(path) -> Any:
    if not path:
        return None
    k = path[-1]
    return getattr(k, "key", getattr(k, "name", getattr(k, "idx", None)))


def resolve_mask(owner: str, name: str, mask: Any, params: Any, default: bool) -> Any:
    """A tree of Python bools like ``params`` from None, a (prefix) tree or a callable."""
    if mask is None:
        return jax.tree.map(lambda _: default, params)
    if isinstance(mask, (jax.core.Tracer, jax.Array, np.ndarray)):
        V.check_mask(owner, mask)
    tree = mask(params) if callable(mask) else mask
    try:
        return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: bool(m), sub), tree, params)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{owner}: `{name}` must be a pytree of bools with the params' structure (or a "
            f"prefix of it), or a callable returning one; got {tree!r} ({err})."
        ) from None


def eight_bit_leaves(params: Any, keep_32bit: Any, min_8bit_size: int, owner: str) -> Any:
    """Per parameter: True where the moments are stored in 8 bits."""
    keep = resolve_mask(owner, "keep_32bit", keep_32bit, params, False)

    def decide(path, p, k):
        big = int(np.prod(np.shape(p))) >= max(min_8bit_size, 1)
        return big and not k and _last_key(path) != STABLE_EMBEDDING_PARAM

    return jax.tree_util.tree_map_with_path(decide, params, keep)


def zeros(p: Any, eight_bit: bool, block_size: int) -> tuple[jax.Array, jax.Array]:
    """The initial (codes or moment, absmax) of one leaf: a zero moment."""
    shape = tuple(np.shape(p))
    if eight_bit:
        nb = B.num_blocks(int(np.prod(shape)), block_size)
        return jnp.zeros(shape, jnp.uint8), jnp.zeros((nb,), jnp.float32)
    dtype = V.compute_dtype(p.dtype)
    return jnp.zeros(shape, dtype), jnp.zeros((0,), jnp.float32)


def is_8bit(stored: jax.Array) -> bool:
    return stored.dtype == jnp.uint8


def load(stored: jax.Array, absmax: jax.Array, code: np.ndarray, dtype, block_size: int):
    """The moment in ``dtype``: blocks ``(blocks, block_size)`` for codes, else as stored."""
    if not is_8bit(stored):
        return stored.astype(dtype)
    return dequantize_blocks(code_blocks(stored, code, block_size), absmax, code, dtype)


def code_blocks(stored: jax.Array, code: np.ndarray, block_size: int) -> jax.Array:
    """uint8 codes as ``(blocks, block_size)``, the last block padded with the code of 0.

    The padding decodes to a zero moment, so it never enters a block maximum (bitsandbytes'
    kernel reduces over the valid entries only).
    """
    return B.to_blocks(stored, block_size, fill=B.codebook(code).zero_index)


def store(value: jax.Array, like: jax.Array, code: np.ndarray, signed: bool):
    """Requantise ``value`` (blocks, for an 8-bit ``like``) to ``(stored, absmax)``.

    Nearest code of ``value * (1 / absmax)`` (ties to the even index); for a signed code a value
    whose code has the other sign moves one code towards its own sign (the CUDA kernel's guard:
    a small negative moment never becomes zero).
    """
    if not is_8bit(like):
        return value.astype(like.dtype), jnp.zeros((0,), jnp.float32)
    codes, absmax = quantize_blocks(value, code, signed)
    return B.from_blocks(codes, like.shape), absmax


def quantize_blocks(value: jax.Array, code: np.ndarray, signed: bool):
    """``(codes, absmax)`` of ``value`` laid out as ``(..., block_size)`` blocks."""
    absmax = jnp.max(jnp.abs(value), axis=-1).astype(jnp.float32)
    inv = 1 / jnp.where(absmax > 0, absmax, 1.0).astype(value.dtype)
    x = (value * inv[..., None]).astype(jnp.float32)
    idx = B.codebook(code).nearest(x, sign_guard=signed)
    return idx.astype(jnp.uint8), absmax


def dequantize_blocks(codes: jax.Array, absmax: jax.Array, code: np.ndarray, dtype):
    """``code[codes] * absmax`` for ``(..., block_size)`` codes and ``(...)`` maxima."""
    values = jnp.asarray(code).at[codes.astype(jnp.int32)].get(mode="promise_in_bounds")
    return values.astype(dtype) * absmax.astype(dtype)[..., None]


CHUNK_BLOCKS = 1024
"""Blocks per step of :func:`update_in_chunks` used by the optimizers (256K entries for blocks
of 256), read when an update is traced."""


def update_in_chunks(kernel, reads: tuple, state: tuple, chunk: int) -> tuple:
    """``kernel(reads, state) -> new_state`` applied to consecutive runs of ``chunk`` blocks.

    Every array in ``reads`` and ``state`` has the blocks along its first axis. The state is
    updated in place, one run at a time, so the float32 moments of only ``chunk`` blocks are
    ever materialised: XLA:CPU fuses neither a reduction with its producer nor several
    outputs, and the moments of a whole large tensor would otherwise be written to memory and
    read back. The result does not depend on ``chunk``.
    """
    num = state[0].shape[0]
    if num <= chunk:
        return tuple(kernel(reads, state))

    def run(start, size, state):
        def part(a):
            return jax.lax.dynamic_slice_in_dim(a, start, size, 0)

        new = kernel(tuple(map(part, reads)), tuple(map(part, state)))
        pairs = zip(state, new, strict=True)
        return tuple(jax.lax.dynamic_update_slice_in_dim(a, n, start, 0) for a, n in pairs)

    steps, tail = divmod(num, chunk)
    state = jax.lax.fori_loop(0, steps, lambda i, s: run(i * chunk, chunk, s), tuple(state))
    if tail:
        state = run(steps * chunk, tail, state)
    return state


def as_blocks(x: jax.Array, like: jax.Array, block_size: int) -> jax.Array:
    """``x`` (a gradient or parameter) laid out like the loaded moment of ``like``."""
    return B.to_blocks(x, block_size) if is_8bit(like) else x


def from_layout(x: jax.Array, like: jax.Array) -> jax.Array:
    return B.from_blocks(x, like.shape) if is_8bit(like) else x
