r"""Block-wise dynamic quantisation: the 8-bit code of bitsandbytes and its exact rounding.

Paper: Tim Dettmers, Mike Lewis, Sam Shleifer, Luke Zettlemoyer, "8-bit Optimizers via
Block-wise Quantization", ICLR 2022, arXiv:2110.02861. Reference code: bitsandbytes
(``functional.create_dynamic_map``, CUDA kernels ``kQuantizeBlockwise`` and
``kDequantizeBlockwise``; commit 95f9af30, release 0.50.2).

A tensor is flattened in row-major order and cut into blocks of ``block_size`` consecutive
entries (the last block padded with zeros). Each block ``b`` stores its absolute maximum
``absmax[b]`` in float32 and every entry as the uint8 index of the nearest entry of a 256-value
*code* (a sorted table in ``[-1, 1]``) to the normalised value ``x / absmax[b]``::

    q_i = argmin_k |code[k] - x_i / absmax[b]|          (quantise)
    x_i ≈ code[q_i] * absmax[b]                          (dequantise)

The *dynamic* code (:func:`dynamic_map`) spends its values like a float format: for decimal
exponents ``10^-6 … 10^0`` it holds ``2^i`` (signed) or ``2^(i+1)`` (unsigned) evenly spaced
fractions in ``[0.1, 1]``, so small values keep a relative precision that a linear int8 code
would lose. Block-wise scaling confines an outlier's effect to its own block.

Rounding is the CUDA kernel's binary search: the nearest code value, and a value exactly halfway
between two neighbours goes to the one with the **even index** (the search always ends on an
even index and compares ``x`` with the midpoint ``(code[k] + code[k+1]) * 0.5`` in float32).

Differences from the reference code:

* bitsandbytes' CPU backend quantises through a 65,536-bin uniform lookup table of the
  normalised value (resolution ``2 / 65536`` of the block maximum), so values below about
  ``3e-5 · absmax`` and values near a midpoint can get a different code than the exact nearest
  code that its CUDA kernel and this module give. Our table is keyed by the top bits of the
  float32 bit pattern; each entry holds a code and where in the bin the one midpoint it may
  contain lies, so one lookup and one comparison give the exact nearest code (the table is
  checked against a search at every bin edge and midpoint when it is built).
* Quantisation multiplies by the float32 reciprocal of the block maximum, as the CUDA kernel
  does; inputs of any floating dtype are rounded to float32 first.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["dequantize_blockwise", "dynamic_map", "quantize_blockwise"]


def _linspace_f32(start: float, stop: float, num: int) -> np.ndarray:
    """float32 ``linspace`` as torch computes it on CPU.

    Entries in the first half are ``start + step * i`` and the others ``stop - step * (num - 1 -
    i)``, each a fused multiply-add (one rounding; emulated here in float64, where the product
    of two float32 numbers is exact).
    """
    start32, stop32 = np.float32(start), np.float32(stop)
    step = np.float64(np.float32((stop32 - start32) / np.float32(num - 1)))
    idx = np.arange(num, dtype=np.float64)
    low = np.float64(start32) + step * idx
    high = np.float64(stop32) - step * (num - 1 - idx)
    return np.where(idx < num // 2, low, high).astype(np.float32)


def dynamic_map(signed: bool = True, max_exponent_bits: int = 7, total_bits: int = 8) -> jax.Array:
    """The 256-entry dynamic (tree) quantisation code of bitsandbytes, sorted ascending.

    For ``i = 0 … max_exponent_bits - 1`` the code holds the midpoints of ``n_i + 1`` evenly
    spaced points of ``[0.1, 1]`` scaled by ``10^(i - max_exponent_bits + 1)``, with
    ``n_i = 2^(i + total_bits - 1 - max_exponent_bits)`` (signed: also their negatives) or
    twice as many (unsigned), plus ``0`` and ``1``; zeros pad it to 256 entries.

    With the defaults the signed code has 127 negative values (the smallest is ``-0.99297``:
    ``-1`` is not representable), one zero and 128 positive values up to ``1``; the unsigned
    code has one zero and 255 positive values from ``3.25e-7`` to ``1``.

    Args:
      signed: whether the code covers ``[-1, 1]`` (first moments) or ``[0, 1]`` (second moments).
      max_exponent_bits: number of decimal exponents (the dynamic range is
        ``10^-(max_exponent_bits - 1)``).
      total_bits: bits per code (at most 8).

    Returns:
      A float32 array of shape ``(256,)``, value for value bitsandbytes'
      ``functional.create_dynamic_map(signed, max_exponent_bits, total_bits)``.

    Raises:
      ValueError: if the arguments do not describe a code of at most 256 values.

    Example:
      >>> import jaxopt_papers as jop
      >>> code = jop.dynamic_map(signed=True)
      >>> code.shape, float(code.max()), round(float(code.min()), 6)
      ((256,), 1.0, -0.992969)
    """
    return jnp.asarray(_dynamic_map_np(bool(signed), int(max_exponent_bits), int(total_bits)))


@functools.lru_cache(maxsize=16)
def _dynamic_map_np(signed: bool, max_exponent_bits: int, total_bits: int) -> np.ndarray:
    if not 1 <= total_bits <= 8:
        raise ValueError(f"dynamic_map: `total_bits` must be in [1, 8], got {total_bits}.")
    if not 1 <= max_exponent_bits <= total_bits - 1:
        raise ValueError(
            "dynamic_map: `max_exponent_bits` must be in [1, total_bits - 1] = "
            f"[1, {total_bits - 1}], got {max_exponent_bits}."
        )
    non_sign_bits = total_bits - 1
    extra = 2 ** (non_sign_bits - max_exponent_bits) - 1
    values: list[float] = []

    def add(items: int, exponent: int) -> None:
        bounds = _linspace_f32(0.1, 1.0, items)
        means = ((bounds[:-1] + bounds[1:]) / np.float32(2.0)).astype(np.float32)
        scale = np.float32(10.0**exponent)
        values.extend((scale * means).astype(np.float32).tolist())
        if signed:
            values.extend((-scale * means).astype(np.float32).tolist())

    i = 0
    for i in range(max_exponent_bits):
        shift = i + non_sign_bits - max_exponent_bits + (0 if signed else 1)
        add(2**shift + 1, i - (max_exponent_bits - 1))
    if extra > 0:
        add(extra + 1, i - (max_exponent_bits - 1))
    values += [0.0, 1.0]
    if len(values) != 2**total_bits:
        raise ValueError(
            f"dynamic_map: signed={signed}, max_exponent_bits={max_exponent_bits}, "
            f"total_bits={total_bits} give {len(values)} values, not 2**total_bits."
        )
    values += [0.0] * (256 - len(values))
    return np.sort(np.asarray(values, np.float32))


# ------------------------------------------------------------------------- exact rounding


class Codebook:
    """A concrete sorted code with a table for exact nearest-code rounding by one lookup.

    A float32 ``x`` is split into its top ``9 + bits`` bits (sign, exponent and leading
    mantissa bits: the *bin* ``key``) and the remaining ``shift = 23 - bits`` low bits. ``bits``
    is the smallest number for which every bin holds at most one midpoint between neighbouring
    code values, so the nearest code in a bin is ``k0`` or ``k0 + 1``, and which of the two
    depends only on whether the low bits reach a per-bin threshold ``t`` (ties at a midpoint
    resolved to the even index, the threshold read in the sign's direction). ``table[key]``
    packs ``k0 << (shift + 1) | t``; one integer gather, a mask and a comparison round ``x``.
    ``guarded`` is the same table with bitsandbytes' sign guard for signed codes folded in.
    Both tables are checked against a NumPy search at every bin edge and midpoint when built;
    a code that fails (or has near-equal neighbours) falls back to a search.
    """

    def __init__(self, code: np.ndarray):
        code = np.asarray(code, np.float32)
        if code.shape != (256,) or not np.all(np.isfinite(code)):
            raise ValueError(f"`code` must be 256 finite values, got shape {code.shape}.")
        if np.any(np.diff(code) < 0) or code.min() < -1 or code.max() > 1:
            raise ValueError("`code` must be sorted ascending with values in [-1, 1].")
        self.code = code
        self.mids = np.append((code[1:] + code[:-1]) * np.float32(0.5), np.float32(np.inf))
        self.mids = self.mids.astype(np.float32)
        self.num_negative = int(np.sum(np.signbit(code)))
        self.zero_index = int(nearest_code_np(code, np.zeros(1, np.float32))[0])
        self.table = self.guarded = None
        self.shift = 0
        for bits in range(6, 16):
            lut = self._lut(bits)
            if lut is not None:
                self.shift = 23 - bits
                self.table = self._pack(lut, guard=False)
                self.guarded = self._pack(lut, guard=True)
                break

    def _lut(self, bits: int) -> np.ndarray | None:
        """Nearest code at each bin's lower value end, or None if a bin holds two midpoints."""
        shift = 23 - bits
        keys = np.arange(2 ** (9 + bits), dtype=np.uint64).astype(np.uint32)
        ends = []
        for fill in (0, (1 << shift) - 1):
            vals = ((keys << np.uint32(shift)) | np.uint32(fill)).view(np.float32)
            vals = np.where(np.isfinite(vals), np.clip(vals, -1, 1), 0).astype(np.float32)
            ends.append(nearest_code_np(self.code, vals))
        lo, hi = np.minimum(*ends), np.maximum(*ends)
        return lo.astype(np.int64) if np.all(hi - lo <= 1) else None

    def _guard_np(self, k: np.ndarray, negative: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """The sign guard: a code on the wrong side of zero moves one step towards its sign."""
        wrong = (k < self.num_negative) != negative
        return np.where(wrong, (k + np.where(positive, 1, -1)) % 256, k)

    def _pack(self, k0: np.ndarray, guard: bool) -> np.ndarray | None:
        shift = self.shift
        keys = np.arange(k0.size, dtype=np.uint64).astype(np.uint32)
        mid = np.where(k0 < 255, self.mids[np.minimum(k0, 254)], np.float32(np.inf))
        mid_bits = mid.astype(np.float32).view(np.uint32)
        inside = (mid_bits >> np.uint32(shift)) == keys
        low = (mid_bits & np.uint32((1 << shift) - 1)).astype(np.int64)
        odd = k0 % 2
        negative = (keys >> np.uint32(31 - shift)) == 1
        # low bits (flipped for negative values, whose magnitude grows with them) >= threshold
        thresh = np.where(negative, (1 << shift) - (low + odd), low + 1 - odd)
        thresh = np.where(inside, thresh, 1 << shift)
        if guard:
            r0 = self._guard_np(k0, negative, ~negative)
            r1 = self._guard_np(k0 + 1, negative, ~negative)
            thresh = np.where(r1 == r0, 1 << shift, thresh)
            if np.any((r1 != r0) & (r1 != r0 + 1) & inside):
                return None
            k0 = r0
        table = ((k0 << (shift + 1)) | thresh).astype(np.uint32)
        return table if self._check(table, guard) else None

    def _probes(self) -> np.ndarray:
        shift = self.shift
        keys = np.arange(2 ** (32 - shift), dtype=np.uint64).astype(np.uint32)
        mids = self.mids[:-1]
        parts = [mids, np.nextafter(mids, np.float32(2)), np.nextafter(mids, np.float32(-2))]
        for fill in (0, (1 << shift) - 1):
            parts.append(((keys << np.uint32(shift)) | np.uint32(fill)).view(np.float32))
        x = np.concatenate([*parts, self.code, np.float32([0.0, -0.0, 1.0, -1.0])])
        x = x[np.isfinite(x) & (np.abs(x) <= 1)].astype(np.float32)
        # a product with the reciprocal of the block maximum can exceed 1 by an ulp or two
        beyond = np.float32([1.0000001, 1.0000002, -1.0000001, -1.0000002])
        return np.concatenate([x, beyond]).astype(np.float32)

    def _check(self, table: np.ndarray, guard: bool) -> bool:
        x = self._probes()
        want = nearest_code_np(self.code, x)
        if guard:
            want = self._guard_np(want, np.signbit(x), x > 0)
        return bool(np.array_equal(self._lookup_np(table, x), want))

    def _lookup_np(self, table: np.ndarray, x: np.ndarray) -> np.ndarray:
        bits = x.view(np.uint32)
        e = table[bits >> np.uint32(self.shift)].astype(np.int64)
        mask = (1 << self.shift) - 1
        low = (bits & np.uint32(mask)).astype(np.int64)
        low = np.where(bits >> np.uint32(31) == 1, low ^ mask, low)
        return (e >> (self.shift + 1)) + (low >= (e & ((1 << (self.shift + 1)) - 1)))

    def nearest(self, x: jax.Array, sign_guard: bool = False) -> jax.Array:
        """Index (int32) of the nearest code value to float32 ``x`` (ties: even index).

        With ``sign_guard``, a result whose code value has the other sign than ``x`` moves one
        index towards ``x``'s sign (bitsandbytes' guard for signed states).
        """
        table = self.guarded if sign_guard else self.table
        if table is None:
            idx = _nearest_search(x, jnp.asarray(self.code))
            if sign_guard:
                wrong = (idx < self.num_negative) != jnp.signbit(x)
                idx = (idx + jnp.where(wrong, jnp.where(x > 0, 1, -1), 0)) % 256
            return idx
        shift = self.shift
        bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
        key = (bits >> shift).astype(jnp.int32)
        # gather as uint32 then convert: the gather keeps one user and fuses into its consumer
        e = jnp.take(jnp.asarray(table), key, mode="clip").astype(jnp.int32)
        mask = jnp.uint32((1 << shift) - 1)
        low = jnp.where(bits >> 31 == 1, bits ^ mask, bits) & mask
        above = low.astype(jnp.int32) >= (e & ((1 << (shift + 1)) - 1))
        return (e >> (shift + 1)) + above.astype(jnp.int32)


@functools.lru_cache(maxsize=16)
def _codebook_cached(raw: bytes) -> Codebook:
    return Codebook(np.frombuffer(raw, np.float32))


def codebook(code) -> Codebook | None:
    """The :class:`Codebook` of a concrete code, or None for a traced one."""
    if isinstance(code, jax.core.Tracer):
        return None
    return _codebook_cached(np.asarray(code, np.float32).tobytes())


def nearest_code_np(code: np.ndarray, x: np.ndarray) -> np.ndarray:
    """NumPy exact nearest-code rounding of float32 ``x`` (ties to the even index)."""
    code = np.asarray(code, np.float32)
    mids = ((code[1:] + code[:-1]) * np.float32(0.5)).astype(np.float32)
    idx = np.searchsorted(mids, x, side="left")
    tie = (idx < mids.size) & (x == mids[np.minimum(idx, mids.size - 1)]) & (idx % 2 == 1)
    return np.where(tie, idx + 1, idx)


def _nearest_search(x: jax.Array, code: jax.Array) -> jax.Array:
    mids = (code[1:] + code[:-1]) * jnp.float32(0.5)
    idx = jnp.searchsorted(mids, x, side="left", method="scan_unrolled").astype(jnp.int32)
    at = jnp.take(mids, jnp.minimum(idx, mids.size - 1))
    tie = (idx < mids.size) & (x == at) & (idx % 2 == 1)
    return idx + tie.astype(jnp.int32)


def nearest_code(x: jax.Array, code) -> jax.Array:
    """Exact nearest-code index (int32) of float32 ``x`` for a concrete or traced ``code``."""
    book = codebook(code)
    if book is None:
        return _nearest_search(x, jnp.asarray(code, jnp.float32))
    return book.nearest(x)


# ------------------------------------------------------------------------------- blocks


def num_blocks(size: int, block_size: int) -> int:
    """Number of blocks of ``block_size`` covering ``size`` entries."""
    return max(1, math.ceil(size / block_size))


def to_blocks(x: jax.Array, block_size: int, fill=0) -> jax.Array:
    """Flatten (row-major), pad with ``fill`` to whole blocks, reshape to ``(blocks, size)``."""
    flat = x.reshape(-1)
    nb = num_blocks(flat.size, block_size)
    pad = nb * block_size - flat.size
    if pad:
        flat = jnp.pad(flat, (0, pad), constant_values=fill)
    return flat.reshape(nb, block_size)


def from_blocks(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Inverse of :func:`to_blocks`: drop the padding and restore ``shape``."""
    size = math.prod(shape)
    flat = x.reshape(-1)
    return (flat[:size] if flat.size != size else flat).reshape(shape)


def _check_block_size(owner: str, block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"{owner}: `block_size` must be a Python int, got {block_size!r}.")
    if block_size < 1:
        raise ValueError(f"{owner}: `block_size` must be a positive int, got {block_size}.")
    return int(block_size)


def _check_code(owner: str, code) -> jax.Array:
    code = jnp.asarray(code)
    if code.shape != (256,):
        raise ValueError(f"{owner}: `code` must have shape (256,), got {code.shape}.")
    return code.astype(jnp.float32)


def quantize_blockwise(
    x: jax.Array, code: jax.Array, block_size: int = 256
) -> tuple[jax.Array, jax.Array]:
    r"""Quantise ``x`` block-wise to 8-bit indices into ``code``.

    ``x`` is flattened row-major and cut into blocks of ``block_size`` entries (the last one
    padded with zeros); for block ``b``::

        absmax[b] = max_i |x_i|,    q_i = nearest(code, x_i * (1 / absmax[b]))

    with the nearest code value and ties (a value exactly halfway between two code values) going
    to the even index, as bitsandbytes' CUDA kernel rounds. An all-zero block has
    ``absmax = 0`` and the codes of 0.

    Args:
      x: a floating-point array (computed in float32).
      code: the sorted ``(256,)`` code, e.g. :func:`dynamic_map`.
      block_size: entries per block (bitsandbytes' optimizers use 256, its generic
        ``quantize_blockwise`` 4096).

    Returns:
      ``(codes, absmax)``: uint8 codes of ``x``'s shape and the float32 block maxima of shape
      ``(ceil(x.size / block_size),)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> code = jop.dynamic_map()
      >>> x = jnp.linspace(-1.0, 2.0, 600)
      >>> q, absmax = jop.quantize_blockwise(x, code)
      >>> q.dtype, absmax.shape
      (dtype('uint8'), (3,))
      >>> y = jop.dequantize_blockwise(q, absmax, code, x.shape)
      >>> bool(jnp.max(jnp.abs(y - x)) < 0.02)
      True
    """
    owner = "quantize_blockwise"
    block_size = _check_block_size(owner, block_size)
    code = _check_code(owner, code)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{owner}: `x` must be a floating-point array, got dtype {x.dtype}.")
    blocks = to_blocks(x.astype(jnp.float32), block_size)
    absmax = jnp.max(jnp.abs(blocks), axis=1)
    inv = jnp.where(absmax > 0, 1.0 / jnp.where(absmax > 0, absmax, 1.0), 0.0)
    q = nearest_code(blocks * inv[:, None], code).astype(jnp.uint8)
    return from_blocks(q, x.shape), absmax


def dequantize_blockwise(
    codes: jax.Array,
    absmax: jax.Array,
    code: jax.Array,
    shape: tuple[int, ...] | None = None,
    block_size: int = 256,
) -> jax.Array:
    """Inverse of :func:`quantize_blockwise`: ``code[codes] * absmax[block]`` in float32.

    Args:
      codes: uint8 codes (any shape; read flat in row-major order).
      absmax: float32 block maxima, ``(ceil(codes.size / block_size),)``.
      code: the ``(256,)`` code the values were quantised with.
      shape: shape of the result; None: ``codes.shape``.
      block_size: entries per block, as given to :func:`quantize_blockwise`.

    Returns:
      A float32 array of shape ``shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> code = jop.dynamic_map()
      >>> q = jnp.array([255, 127, 0], jnp.uint8)
      >>> [round(v, 4) for v in jop.dequantize_blockwise(q, jnp.array([2.0]), code).tolist()]
      [2.0, 0.0, -1.9859]
    """
    owner = "dequantize_blockwise"
    block_size = _check_block_size(owner, block_size)
    code = _check_code(owner, code)
    codes = jnp.asarray(codes)
    if codes.dtype != jnp.uint8:
        raise TypeError(f"{owner}: `codes` must be a uint8 array, got dtype {codes.dtype}.")
    shape = tuple(codes.shape) if shape is None else tuple(int(s) for s in shape)
    if math.prod(shape) != codes.size:
        raise ValueError(f"{owner}: `shape` {shape} must have codes.size = {codes.size} entries.")
    nb = num_blocks(codes.size, block_size)
    absmax = jnp.asarray(absmax, jnp.float32)
    if absmax.shape != (nb,):
        raise ValueError(
            f"{owner}: `absmax` must have shape ({nb},) for {codes.size} codes in blocks of "
            f"{block_size}, got {absmax.shape}."
        )
    blocks = to_blocks(codes, block_size)
    values = jnp.take(code, blocks.astype(jnp.int32), mode="clip") * absmax[:, None]
    return from_blocks(values, shape)
