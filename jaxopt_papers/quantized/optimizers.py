r"""8-bit Adam, AdamW, Lion and SGD with momentum: bitsandbytes' block-wise 8-bit optimizers.

Paper: Tim Dettmers, Mike Lewis, Sam Shleifer, Luke Zettlemoyer, "8-bit Optimizers via
Block-wise Quantization", ICLR 2022, arXiv:2110.02861. Reference code: bitsandbytes
``optim.Adam8bit``, ``AdamW8bit``, ``Lion8bit``, ``SGD8bit`` and the CUDA kernels
``kOptimizerStatic8bit2StateBlockwise`` / ``kOptimizerStatic8bit1StateBlockwise``
(commit 95f9af30, release 0.50.2).

Every parameter tensor with at least ``min_8bit_size`` (4096) entries keeps its moments as uint8
codes (the parameter's shape) plus one float32 maximum per block of ``block_size`` (256)
consecutive entries of the row-major flattened tensor (:mod:`.blockwise`): about 2 bytes per
parameter for Adam instead of 8. Smaller tensors, leaves masked by ``keep_32bit`` and
:class:`~jaxopt_papers.quantized.StableEmbedding` tables keep 32-bit moments. One step, per
block, in float32 (Adam shown)::

    m, v  = code1[q1] * absmax1[b],  code2[q2] * absmax2[b]          (dequantise)
    v     = b2 v + ((1 - b2) g) g;    m = b1 m + (1 - b1) g
    p    <- p + (-lr sqrt(1 - b2^t) / (1 - b1^t)) * m / (sqrt(v) + sqrt(1 - b2^t) eps)
    p    <- p (1 - lr wd)                                             (weight decay after)
    q1, absmax1 = nearest(code1, m / max|m|), max|m|                 (requantise, fresh m, v)

``m`` uses the signed :func:`~jaxopt_papers.quantized.dynamic_map`, ``v`` the unsigned one.
A gradient entry that is not finite sets its ``m``, ``v`` to 0 and leaves its parameter
unchanged (2-state kernel). Lion: ``p <- p (1 - lr wd) - lr sign(b1 m + (1 - b1) g)``,
``m = b2 m + (1 - b2) g``. SGD: ``g += wd p``; ``m = g`` at the first step, then
``m = b1 m + g``; ``p <- p - lr m``.

Per leaf, the step is one elementwise pass (dequantise, update the moments, the step), which
XLA fuses with the caller's ``apply_updates``. The new codes are computed again from the stored
ones: on a single-device CPU backend, for the Adam family's float32 leaves, by a compiled kernel
(an XLA FFI custom call built on first use with the system C++ compiler, see
:func:`~jaxopt_papers.quantized.native_status`) in one pass per block with the same float32
operations in the same order, correctly rounded, over XLA's intra-op threads; elsewhere (GPU,
TPU, several devices, other dtypes, Lion and SGD, no compiler, ``JAXOPT_PAPERS_NATIVE=0``) in
XLA, in runs of 1024 blocks, a loop over the tensor. No float32 moment of a whole tensor is ever
written to memory. Quantising is one lookup in a table keyed by the float32 bit pattern
(:mod:`.blockwise`); XLA:CPU's vectorised division may differ from the correctly rounded result
in the last bit, so that a code can differ by one at a midpoint between the two paths.

Sharding: the codes have the parameter's shape and follow its sharding; the block maxima are
small and replicated; blocks run along the row-major flattened tensor, so a block crosses a
shard boundary unless the shard holds whole rows of a multiple of ``block_size`` entries
(results do not depend on the sharding; pass the state's shardings as ``out_shardings`` to keep
them).

Defaults are bitsandbytes': Adam8bit ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, wd=0``;
AdamW8bit the same with ``wd=1e-2``; Lion8bit ``lr=1e-4, betas=(0.9, 0.99), wd=0``; SGD8bit
coupled weight decay 0; ``block_size=256``, ``min_8bit_size=4096``.

Differences from the reference code:

* Rounding is the CUDA kernel's exact nearest code (ties to the even index) with its sign
  guard; bitsandbytes' CPU backend instead uses a 65,536-bin lookup table, decays the weights
  before the step and has no sign guard, so its CPU trajectories differ slightly.
* The CUDA kernel normalises with ``__fdividef`` (a product with an approximate reciprocal,
  about 2 ulp); we multiply by the correctly rounded reciprocal of the block maximum. An all-zero
  block stores the code of 0.
* 32-bit (small) tensors use the same arithmetic as the 8-bit ones (bitsandbytes' 32-bit
  kernel groups ``(1 - b2) (g g)`` and lets a non-finite gradient through).
* Weight decay is returned as part of the update, ``Δ = u - lr wd (p + u)`` (Adam) or
  ``Δ = -lr wd p - u`` (Lion), so ``p + Δ`` equals the kernel's result up to rounding.
* ``sgd8bit`` defaults to ``momentum=0.9``: bitsandbytes' 8-bit SGD rejects its own default
  ``momentum=0``; Nesterov momentum and percentile clipping (removed in 0.50) are not offered.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.quantized import _moments as Q
from jaxopt_papers.quantized import _native
from jaxopt_papers.quantized import blockwise as B

__all__ = [
    "Adam8bitState",
    "Lion8bitState",
    "SGD8bitState",
    "adam8bit",
    "adamw8bit",
    "lion8bit",
    "scale_by_adam8bit",
    "scale_by_lion8bit",
    "sgd8bit",
]


class Adam8bitState(NamedTuple):
    """State of the 8-bit Adam family.

    Attributes:
      count: int32 number of steps taken.
      mu: per parameter, uint8 codes of the first moment (signed code), or the 32-bit moment.
      mu_absmax: per parameter, float32 block maxima of ``mu`` (shape ``(0,)`` when 32-bit).
      nu: per parameter, uint8 codes of the second moment (unsigned code), or the 32-bit one.
      nu_absmax: per parameter, float32 block maxima of ``nu``.
    """

    count: jax.Array
    mu: Any
    mu_absmax: Any
    nu: Any
    nu_absmax: Any


class Lion8bitState(NamedTuple):
    """State of :func:`lion8bit`.

    Attributes:
      count: the number of updates so far.
      mu: the momentum, per tensor ``uint8`` codes (or float32 for tensors kept in 32 bits).
      mu_absmax: the per-block float32 scales of ``mu``'s codes.
    """

    count: jax.Array
    mu: Any
    mu_absmax: Any


class SGD8bitState(NamedTuple):
    """State of :func:`sgd8bit`.

    Attributes:
      count: the number of updates so far.
      mu: the momentum, per tensor ``uint8`` codes (or float32 for tensors kept in 32 bits).
      mu_absmax: the per-block float32 scales of ``mu``'s codes.
    """

    count: jax.Array
    mu: Any
    mu_absmax: Any


def _value(x: optax.ScalarOrSchedule, count: jax.Array):
    return x(count) if callable(x) else x


def _leafwise(fn, *trees):
    """``jax.tree.map`` over params-like trees; leaves of the first one lead."""
    return jax.tree.map(fn, *trees)


def _init_moments(owner, params, keep_32bit, block_size, min_8bit_size, count_states):
    V.check_optimizer_init(owner, params)
    flags = Q.eight_bit_leaves(params, keep_32bit, min_8bit_size, owner)
    out = []
    for _ in range(count_states):
        pairs = jax.tree.map(lambda p, f: Q.zeros(p, f, block_size), params, flags)
        out.append(jax.tree.map(lambda _, pr: pr[0], params, pairs))
        out.append(jax.tree.map(lambda _, pr: pr[1], params, pairs))
    return out


def _split(tree_of_tuples, like, n):
    return [jax.tree.map(lambda _, t, i=i: t[i], like, tree_of_tuples) for i in range(n)]


def _check_hparams(owner, learning_rate, b1, b2, eps, weight_decay, mask, keep_32bit):
    if learning_rate is not None:
        V.check_learning_rate(owner, learning_rate)
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    if eps is not None:
        V.check_eps(owner, "eps", eps, positive=True)
    if weight_decay is not None:
        V.check_weight_decay(owner, weight_decay)
    V.check_mask(owner, mask)
    V.check_mask(owner, keep_32bit)


def _decay_tree(owner, mask, params, updates):
    if params is None:
        return None
    return Q.resolve_mask(owner, "mask", mask, params, True)


# ------------------------------------------------------------------------------------ Adam


def _adam_moments(gb, m, v, beta1, beta2):
    """The new ``(m, v)`` and the finite mask from the gradient and the loaded moments."""
    finite = jnp.isfinite(gb)
    g0 = jnp.where(finite, gb, 0)
    v = jnp.where(finite, v * beta2 + ((1 - beta2) * g0) * g0, 0)
    m = jnp.where(finite, m * beta1 + (1 - beta1) * g0, 0)
    return m, v, finite


def _adam_leaf(g, p, mq, ma, nq, na, count, hp, *, has_lr, use_decay, block_size, chunk,
               native=False):  # fmt: skip
    """One leaf of the 8-bit Adam step (the kernel of the module docstring).

    The update is one elementwise pass over the tensor, which XLA fuses with the caller's
    ``p + u``. The requantised state is computed again from the stored codes: with ``native``
    by the compiled CPU kernel in one pass, else in XLA in runs of blocks
    (``Q.update_in_chunks``). Either way no float32 moment of the whole tensor is written to
    memory.
    """
    lr, wd = hp[3], hp[4]
    code1, code2 = Q.signed_code(), Q.unsigned_code()
    dtype = V.compute_dtype(g.dtype, p.dtype)
    beta1, beta2, c2eps, coef = _adam_scalars(count, hp, has_lr, dtype)
    if native:
        # the kernel passes the old codes on, so that XLA reads them after it without a copy
        scalars = jnp.stack([beta1, beta2, 1 - beta1, 1 - beta2]).astype(jnp.float32)
        *new_state, mq, nq = _native.adam8bit_state(
            g, mq, ma, nq, na, code1, code2, scalars, block_size
        )
    gb = Q.as_blocks(g, mq, block_size).astype(dtype)
    m = Q.load(mq, ma, code1, dtype, block_size)
    v = Q.load(nq, na, code2, dtype, block_size)
    m, v, finite = _adam_moments(gb, m, v, beta1, beta2)
    u = Q.from_layout(coef * (m / (jnp.sqrt(v) + c2eps)), mq)
    if has_lr and use_decay:  # in the parameter's layout, so that XLA updates it in place
        u = u - (lr * wd) * (p.astype(dtype) + u)
    u = jnp.where(Q.from_layout(finite, mq), u, 0).astype(g.dtype)
    if not Q.is_8bit(mq):
        return u, m.astype(mq.dtype), ma, v.astype(nq.dtype), na
    if native:
        return (u, *new_state)

    def requantise(reads, state):
        (g_part,) = reads
        mq_part, ma_part, nq_part, na_part = state
        m_part = Q.dequantize_blocks(mq_part, ma_part, code1, dtype)
        v_part = Q.dequantize_blocks(nq_part, na_part, code2, dtype)
        m_part, v_part, _ = _adam_moments(g_part, m_part, v_part, beta1, beta2)
        return (*Q.quantize_blocks(m_part, code1, True), *Q.quantize_blocks(v_part, code2, False))

    state = (Q.code_blocks(mq, code1, block_size), ma, Q.code_blocks(nq, code2, block_size), na)
    new_mq, new_ma, new_nq, new_na = Q.update_in_chunks(requantise, (gb,), state, chunk)
    return u, B.from_blocks(new_mq, mq.shape), new_ma, B.from_blocks(new_nq, nq.shape), new_na


def _adam_scalars(count, hp, has_lr, dtype):
    """``b1``, ``b2``, ``sqrt(1 - b2^t) eps`` and the step's factor ``coef``, with
    ``u = coef m / (sqrt(v) + sqrt(1 - b2^t) eps)``: ``sqrt(1 - b2^t) / (1 - b1^t)``, times
    ``-lr`` with a learning rate."""
    b1, b2, eps, lr, _ = hp
    beta1, beta2 = jnp.asarray(b1, dtype), jnp.asarray(b2, dtype)
    t = count.astype(dtype)
    c1 = 1 - beta1**t
    c2 = jnp.sqrt(1 - beta2**t)
    coef = (c2 / c1) if not has_lr else ((-lr * c2) / c1)
    return beta1, beta2, c2 * jnp.asarray(eps, dtype), coef


# one compiled program per leaf shape when called eagerly (inlined under an outer jit)
_adam_leaf_jit = jax.jit(
    _adam_leaf, static_argnames=("has_lr", "use_decay", "block_size", "chunk", "native")
)


def _one_state_moment(kind, gb, pb, m, count, beta1, beta2, wd):
    """Lion's direction (None for momentum), the new momentum and the (decayed) gradient."""
    if kind == "lion":
        return jnp.sign(m * beta1 + (1 - beta1) * gb), m * beta2 + (1 - beta2) * gb, gb
    if pb is not None:
        gb = gb + pb * wd
    return None, jnp.where(count == 0, gb, m * beta1 + gb), gb


def _one_state_leaf(g, p, mq, ma, count, hp, *, kind, has_lr, use_decay, block_size, chunk):
    """One leaf of the 8-bit Lion or momentum step (requantised in runs of blocks)."""
    b1, b2, lr, wd = hp
    code1 = Q.signed_code()
    dtype = V.compute_dtype(g.dtype, p.dtype)
    gb = Q.as_blocks(g, mq, block_size).astype(dtype)
    m = Q.load(mq, ma, code1, dtype, block_size)
    coupled = kind == "momentum" and use_decay and has_lr  # SGD's decay enters the momentum
    pb = Q.as_blocks(p, mq, block_size).astype(dtype) if coupled else None
    beta1, beta2 = jnp.asarray(b1, dtype), jnp.asarray(b2, dtype)
    direction, m, _ = _one_state_moment(kind, gb, pb, m, count, beta1, beta2, wd)
    if kind == "lion":
        u = Q.from_layout(direction if not has_lr else -(lr * direction), mq)
        if has_lr and use_decay:  # in the parameter's layout, so that XLA updates it in place
            u = u - (lr * wd) * p.astype(dtype)
    else:  # momentum
        u = Q.from_layout(m if not has_lr else -(lr * m), mq)
    u = u.astype(g.dtype)
    if not Q.is_8bit(mq):
        return u, m.astype(mq.dtype), ma

    def requantise(reads, state):
        g_part, p_part = reads
        mq_part, ma_part = state
        m_part = Q.dequantize_blocks(mq_part, ma_part, code1, dtype)
        _, m_part, _ = _one_state_moment(kind, g_part, p_part, m_part, count, beta1, beta2, wd)
        return Q.quantize_blocks(m_part, code1, True)

    reads = (gb, pb) if coupled else (gb,)
    kernel = requantise if coupled else (lambda r, s: requantise((r[0], None), s))
    state = (Q.code_blocks(mq, code1, block_size), ma)
    new_mq, new_ma = Q.update_in_chunks(kernel, reads, state, chunk)
    return u, B.from_blocks(new_mq, mq.shape), new_ma


_one_state_leaf_jit = jax.jit(
    _one_state_leaf, static_argnames=("kind", "has_lr", "use_decay", "block_size", "chunk")
)


def _adam_transform(owner, learning_rate, b1, b2, eps, weight_decay, block_size, min_8bit_size,
                    keep_32bit, mask):  # fmt: skip
    """Adam with 8-bit moments; ``learning_rate=None``: the direction only (scale_by)."""
    _check_hparams(owner, learning_rate, b1, b2, eps, weight_decay, mask, keep_32bit)
    block_size, min_8bit_size = Q.check_layout(owner, block_size, min_8bit_size)

    def init_fn(params):
        mu, mu_a, nu, nu_a = _init_moments(owner, params, keep_32bit, block_size, min_8bit_size, 2)
        return Adam8bitState(jnp.zeros([], jnp.int32), mu, mu_a, nu, nu_a)

    def update_fn(updates, state, params=None, **extra):
        del extra
        V.check_optimizer_update(owner, updates, params, state.mu)
        if learning_rate is not None and params is None:
            raise ValueError(f"{owner}: the update needs `params`; pass them to `update`.")
        count = optax.safe_increment(state.count)
        if learning_rate is not None:
            lr = _value(learning_rate, state.count)
            wd = _value(weight_decay, state.count)
            decay = _decay_tree(owner, mask, params, updates)
        else:
            lr = wd = decay = None
        p_tree = updates if params is None else params
        d_tree = jax.tree.map(lambda _: True, p_tree) if decay is None else decay

        hp = (b1, b2, eps, 0.0 if lr is None else lr, 0.0 if wd is None else wd)

        def leaf(g, p, mq, ma, nq, na, use_decay):
            kernel = _adam_leaf_jit if Q.is_8bit(mq) else _adam_leaf
            return kernel(
                g, p, mq, ma, nq, na, count, hp,
                has_lr=lr is not None, use_decay=bool(use_decay), block_size=block_size,
                chunk=Q.CHUNK_BLOCKS, native=Q.is_8bit(mq) and _native.applies(g, p),
            )  # fmt: skip

        out = jax.tree.map(
            leaf, updates, p_tree, state.mu, state.mu_absmax, state.nu, state.nu_absmax, d_tree
        )
        u, mu, mu_a, nu, nu_a = _split(out, updates, 5)
        return u, Adam8bitState(count, mu, mu_a, nu, nu_a)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_adam8bit(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    keep_32bit: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Adam's direction with 8-bit block-wise moments (the rescaling of :func:`adam8bit`).

    Returns ``sqrt(1 - b2^t)/(1 - b1^t) · m / (sqrt(v) + sqrt(1 - b2^t) eps)``, i.e.
    ``optax.scale_by_adam``'s ``m̂ / (sqrt(v̂) + eps)``, with the moments stored in 8 bits
    (see the module docstring).

    Args:
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: positive term added to ``sqrt(v̂)``.
      block_size: entries per quantisation block (keyword-only, structural).
      min_8bit_size: tensors with fewer entries keep 32-bit moments (keyword-only, structural).
      keep_32bit: leaves that keep 32-bit moments (e.g. embeddings): a pytree of bools with the
        params' structure (or a prefix), or a callable of the params returning one; None: only
        the size rule and :class:`StableEmbedding` tables (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`Adam8bitState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_adam8bit(min_8bit_size=0)
      >>> state = tx.init(jnp.zeros(300))
      >>> state.mu.dtype, state.mu_absmax.shape
      (dtype('uint8'), (2,))
      >>> u, state = tx.update(jnp.full(300, 0.5), state)
      >>> round(float(u[0]), 4)
      1.0
    """
    return _adam_transform(
        "scale_by_adam8bit", None, b1, b2, eps, None, block_size, min_8bit_size, keep_32bit, None
    )


def adam8bit(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    keep_32bit: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam with 8-bit block-wise moments, as bitsandbytes' ``Adam8bit`` (CUDA kernel).

    A quarter of ``optax.adam``'s state memory for large tensors (2 bytes and 8/``block_size``
    bytes per parameter instead of 8). Weight decay is decoupled and applied after the step,
    ``p <- (p + u)(1 - lr wd)``, as bitsandbytes' kernel does.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: positive term added to ``sqrt(v̂)``.
      weight_decay: decoupled weight decay (a number or a schedule); 0 by default.
      block_size: entries per quantisation block (keyword-only, structural).
      min_8bit_size: tensors with fewer entries keep 32-bit moments (keyword-only, structural).
      keep_32bit: leaves that keep 32-bit moments (a pytree of bools, a prefix, or a callable
        of the params); :class:`StableEmbedding` tables always do (keyword-only).
      mask: which leaves get weight decay (a pytree of bools or a callable); None: all
        (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`Adam8bitState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((64, 128), "float32"), "b": jnp.zeros(128, "float32")}
      >>> tx = jop.adam8bit(1e-3)
      >>> state = tx.init(params)
      >>> state.mu["w"].dtype, state.mu["b"].dtype  # b is small: 32-bit state
      (dtype('uint8'), dtype('float32'))
      >>> updates, state = tx.update({"w": params["w"], "b": params["b"]}, state, params)
      >>> round(float(updates["w"][0, 0]), 6)
      -0.001
    """
    return _adam_transform(
        "adam8bit", learning_rate, b1, b2, eps, weight_decay, block_size, min_8bit_size,
        keep_32bit, mask,
    )  # fmt: skip


def adamw8bit(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 1e-2,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    keep_32bit: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """:func:`adam8bit` with bitsandbytes' ``AdamW8bit`` default ``weight_decay=1e-2``.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: positive term added to ``sqrt(v̂)``.
      weight_decay: decoupled weight decay applied after the step (a number or a schedule).
      block_size: entries per quantisation block (keyword-only, structural).
      min_8bit_size: tensors with fewer entries keep 32-bit moments (keyword-only, structural).
      keep_32bit: leaves that keep 32-bit moments (keyword-only; see :func:`adam8bit`).
      mask: which leaves get weight decay; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`Adam8bitState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> params = jnp.ones(8)
      >>> tx = jop.adamw8bit(0.1, weight_decay=0.5)
      >>> u, _ = tx.update(jnp.zeros(8), tx.init(params), params)
      >>> round(float(u[0]), 4)  # no gradient: only the decay, -lr wd p
      -0.05
    """
    return _adam_transform(
        "adamw8bit", learning_rate, b1, b2, eps, weight_decay, block_size, min_8bit_size,
        keep_32bit, mask,
    )  # fmt: skip


# ------------------------------------------------------------------------------ 1-state


def _one_state(owner, kind, learning_rate, b1, b2, weight_decay, block_size, min_8bit_size,
               keep_32bit, mask, state_cls):  # fmt: skip
    _check_hparams(owner, learning_rate, b1, b2, None, weight_decay, mask, keep_32bit)
    block_size, min_8bit_size = Q.check_layout(owner, block_size, min_8bit_size)

    def init_fn(params):
        mu, mu_a = _init_moments(owner, params, keep_32bit, block_size, min_8bit_size, 1)
        return state_cls(jnp.zeros([], jnp.int32), mu, mu_a)

    def update_fn(updates, state, params=None, **extra):
        del extra
        V.check_optimizer_update(owner, updates, params, state.mu)
        if learning_rate is not None and params is None:
            raise ValueError(f"{owner}: the update needs `params`; pass them to `update`.")
        if learning_rate is not None:
            lr = _value(learning_rate, state.count)
            wd = _value(weight_decay, state.count)
            decay = _decay_tree(owner, mask, params, updates)
        else:
            lr = wd = None
            decay = None
        p_tree = updates if params is None else params
        d_tree = jax.tree.map(lambda _: True, p_tree) if decay is None else decay
        hp = (b1, b2, 0.0 if lr is None else lr, 0.0 if wd is None else wd)

        def leaf(g, p, mq, ma, use_decay):
            kernel = _one_state_leaf_jit if Q.is_8bit(mq) else _one_state_leaf
            return kernel(
                g, p, mq, ma, state.count, hp, kind=kind, has_lr=lr is not None,
                use_decay=bool(use_decay), block_size=block_size, chunk=Q.CHUNK_BLOCKS,
            )  # fmt: skip

        out = jax.tree.map(leaf, updates, p_tree, state.mu, state.mu_absmax, d_tree)
        u, mu, mu_a = _split(out, updates, 3)
        return u, state_cls(optax.safe_increment(state.count), mu, mu_a)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_lion8bit(
    b1: float = 0.9,
    b2: float = 0.99,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    keep_32bit: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Lion's direction ``sign(b1 m + (1 - b1) g)`` with an 8-bit block-wise momentum.

    Args:
      b1: interpolation factor of the update direction, in ``[0, 1)``.
      b2: decay rate of the momentum, in ``[0, 1)``.
      block_size: entries per quantisation block (keyword-only, structural).
      min_8bit_size: tensors with fewer entries keep a 32-bit momentum (keyword-only).
      keep_32bit: leaves that keep a 32-bit momentum (keyword-only; see :func:`adam8bit`).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`Lion8bitState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_lion8bit()
      >>> u, _ = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
      >>> u.tolist()
      [1.0, -1.0]
    """
    return _one_state(
        "scale_by_lion8bit", "lion", None, b1, b2, None, block_size, min_8bit_size, keep_32bit,
        None, Lion8bitState,
    )  # fmt: skip


def lion8bit(
    learning_rate: optax.ScalarOrSchedule = 1e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    keep_32bit: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Lion with an 8-bit block-wise momentum, as bitsandbytes' ``Lion8bit``.

    ``p <- p (1 - lr wd) - lr sign(b1 m + (1 - b1) g)``, ``m <- b2 m + (1 - b2) g``
    (decoupled decay of the pre-step parameters, as bitsandbytes 0.50).

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: interpolation factor of the update direction, in ``[0, 1)``.
      b2: decay rate of the momentum, in ``[0, 1)``.
      weight_decay: decoupled weight decay (a number or a schedule); 0 by default.
      block_size: entries per quantisation block (keyword-only, structural).
      min_8bit_size: tensors with fewer entries keep a 32-bit momentum (keyword-only).
      keep_32bit: leaves that keep a 32-bit momentum (keyword-only; see :func:`adam8bit`).
      mask: which leaves get weight decay; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`Lion8bitState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> params = jnp.ones(5000)
      >>> tx = jop.lion8bit(1e-4)
      >>> u, state = tx.update(jnp.ones(5000), tx.init(params), params)
      >>> round(float(u[0]), 6), state.mu.dtype
      (-0.0001, dtype('uint8'))
    """
    return _one_state(
        "lion8bit", "lion", learning_rate, b1, b2, weight_decay, block_size, min_8bit_size,
        keep_32bit, mask, Lion8bitState,
    )  # fmt: skip


def sgd8bit(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float = 0.9,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    keep_32bit: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """SGD with an 8-bit block-wise momentum, as bitsandbytes' ``SGD8bit``.

    ``g <- g + wd p`` (coupled decay); ``m = g`` at the first step, then ``m = momentum m + g``
    (no dampening); ``p <- p - lr m``.

    Args:
      learning_rate: a number or a schedule of the step count.
      momentum: momentum factor, in ``[0, 1)`` (bitsandbytes' 8-bit SGD needs one).
      weight_decay: coupled (L2) weight decay (a number or a schedule); 0 by default.
      block_size: entries per quantisation block (keyword-only, structural).
      min_8bit_size: tensors with fewer entries keep a 32-bit momentum (keyword-only).
      keep_32bit: leaves that keep a 32-bit momentum (keyword-only; see :func:`adam8bit`).
      mask: which leaves get weight decay; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`SGD8bitState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> params = jnp.zeros(3)
      >>> tx = jop.sgd8bit(0.1)
      >>> state = tx.init(params)
      >>> u, state = tx.update(jnp.ones(3), state, params)
      >>> u, state = tx.update(jnp.ones(3), state, params)
      >>> round(float(u[0]), 4)  # m = 0.9 * 1 + 1
      -0.19
    """
    return _one_state(
        "sgd8bit", "momentum", learning_rate, momentum, 0.0, weight_decay, block_size,
        min_8bit_size, keep_32bit, mask, SGD8bitState,
    )  # fmt: skip
