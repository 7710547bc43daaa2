r"""AdamP and SGDP: momentum optimizers that do not inflate the norm of scale-invariant weights.

Paper: Byeongho Heo, Sanghyuk Chun, Seong Joon Oh, Dongyoon Han, Sangdoo Yun, Gyuwan Kim,
Youngjung Uh, Jung-Woo Ha, "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights", ICLR 2021, arXiv:2006.08217. Reference code: clovaai/AdamP
(``adamp/adamp.py``, ``adamp/sgdp.py``, commit 7f6f038).

A weight ``w`` is *scale invariant* when the loss does not change under ``w -> c w`` (e.g. a
kernel followed by batch or layer normalisation). Its gradient is then orthogonal to ``w`` and
momentum only makes ``‖w‖`` grow, which shrinks the effective step size. AdamP/SGDP detect such
weights by a small cosine between gradient and weight and remove the radial component of the
update.

**Projection** (leaves with ``ndim > 1`` only; 1-D and 0-D leaves are never projected). With
``p`` the pre-step parameters, ``g`` the gradient, ``u`` the update, two *views* are tried in
order:

* channel view: one row per output channel (the axis ``channel_axis``), row length
  ``n = p.size / C``;
* layer view: the whole tensor as one row, ``n = p.size``.

For a view, ``cos_i = |<g_i, p_i>| / (max(‖g_i‖, eps) max(‖p_i‖, eps))`` per row (torch's
``cosine_similarity``). The first view with ``max_i cos_i < delta / sqrt(n)`` *fires*::

    p̂_i = p_i / (‖p_i‖ + eps)
    u_i <- u_i - p̂_i <p̂_i, u_i>                 (per row of the firing view)
    r    = wd_ratio                               (r = 1 if no view fires)

**AdamP** (``t`` = step, ``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t``)::

    m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g²
    u  = m / (sqrt(v)/sqrt(bc2) + eps)            (nesterov: (b1 m + (1 - b1) g) / (...))
    u, r = project(p, g, u)
    p <- p (1 - lr wd r) - (lr / bc1) u  =  p - lr (u / bc1 + wd r p)

:func:`scale_by_adamp` returns the learning-rate-free direction ``u / bc1 + wd r p`` (the
weight-decay factor depends on the projection outcome ``r``, so decay lives inside the
transform) and :func:`adamp` chains it with ``optax.scale_by_learning_rate``.

**SGDP**::

    buf <- momentum buf + (1 - dampening) g       (buf starts at 0)
    u    = g + momentum buf                       (nesterov)   or   u = buf
    u, r = project(p, g, u)
    p <- p (1 - lr wd r / (1 - momentum)) - lr u  =  p - lr (u + wd r p / (1 - momentum))

With ``nesterov=False`` the reference code projects ``buf`` *in place*, so the stored momentum
buffer becomes the projected ``u``; we do the same (it changes the trajectory whenever the
projection fires).

Defaults are the reference code's: AdamP ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
``eps=1e-8``, ``weight_decay=0``, ``delta=0.1``, ``wd_ratio=0.1``, ``nesterov=False``; SGDP
``learning_rate`` required, ``momentum=0``, ``dampening=0``, ``eps=1e-8``, ``weight_decay=0``,
``delta=0.1``, ``wd_ratio=0.1``, ``nesterov=False`` (the README trains with ``lr=0.1``,
``momentum=0.9``, ``nesterov=True``, ``weight_decay=1e-5``).

``mask`` (aliases only) works as in ``optax.adamw``: a pytree of bools with the params'
structure, or a callable returning one, saying which leaves get **weight decay** (``True``:
decayed). Leaves where it is ``False`` still get the AdamP/SGDP update and projection, but no
decay; this is the reference code's parameter groups with ``weight_decay=0`` for biases and
norms. To leave some leaves out of the optimizer entirely, use ``optax.masked`` or
``optax.partition``.

Differences from the reference code:

* ``channel_axis`` (default ``-1``) names the output-channel axis of the channel view. The
  reference code uses axis 0 (torch layout ``(out, in, kh, kw)``); flax Dense kernels are
  ``(in, out)`` and Conv kernels ``(kh, kw, in, out)``, so the JAX default is the last axis.
  ``channel_axis=0`` reproduces the reference code on torch-layout tensors. It is structural:
  under ``optax.inject_hyperparams`` pass ``static_args=("channel_axis",)``.
* Half-precision (float16, bfloat16) leaves are updated with float32 arithmetic (in float16,
  ``eps = 1e-8`` underflows to 0 and a zero gradient entry would give ``0/0``); the first
  moment is stored in the param dtype (or ``mu_dtype``), the second one in float32 for float16
  params (squared gradients underflow in float16), and the updates are returned in the param
  dtype. ``eps`` must be positive.
* The update is branch-free: both views are evaluated and the outcome selected with
  ``jnp.where`` (same result as the reference code's early return). The layer-view norms and dot
  products are sums of the per-row ones instead of fresh full reductions, and the projection is
  applied as ``u - p <p, u> / (‖p‖ + eps)²``; both differ from the reference code only by
  floating-point rounding.
* Weight decay is written additively on the pre-step parameters (``p - lr (u/bc1 + wd r p)``
  instead of multiply-then-add); equal up to rounding.
* The reference code's decay ``if weight_decay > 0`` is implicit here (``wd = 0`` adds zero).
  ``weight_decay`` may also be a schedule of the step count.
* ``torch_optimizer.AdamP/SGDP`` (our golden-trajectory oracle) computes the cosine with
  ``‖x‖ + eps`` instead of ``max(‖x‖, eps)``; this can only change which view fires when a
  cosine is within ~eps of the threshold. We follow the official code (``max``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.optimizers._weight_decay import scheduled_value

__all__ = ["AdamPState", "SGDPState", "adamp", "scale_by_adamp", "scale_by_sgdp", "sgdp"]


class AdamPState(NamedTuple):
    """State of :func:`scale_by_adamp` (and of the first link of :func:`adamp`).

    Attributes:
      count: the number of steps taken (int32).
      mu: the first moment ``m`` (param dtype, or ``mu_dtype``).
      nu: the second moment ``v`` (param dtype; float32 for float16 params).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> state = jop.scale_by_adamp().init({"w": jnp.ones((3, 2))})
      >>> int(state.count), state.mu["w"].shape
      (0, (3, 2))
    """

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


class SGDPState(NamedTuple):
    """State of :func:`scale_by_sgdp` (and of the first link of :func:`sgdp`).

    Attributes:
      count: the number of steps taken (int32).
      momentum: the momentum buffer (param dtype, or ``mu_dtype``).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> state = jop.scale_by_sgdp(momentum=0.9).init({"w": jnp.ones((3, 2))})
      >>> int(state.count), state.momentum["w"].shape
      (0, (3, 2))
    """

    count: jax.Array
    momentum: optax.Updates


# --------------------------------------------------------------------------------------------
# the projected core shared by AdamP and SGDP


def _decay_mask(owner: str, mask: Any, params: Any) -> list[bool]:
    """Per-leaf (in ``jax.tree.leaves(params)`` order) booleans: does the leaf get decay?"""
    n = len(jax.tree.leaves(params))
    if mask is None:
        return [True] * n
    tree = mask(params) if callable(mask) else mask
    try:
        full = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), tree, params)
    except ValueError as err:
        raise ValueError(
            f"{owner}: `mask` must have the structure of the params (or a prefix of it); {err}"
        ) from None
    flags = jax.tree.leaves(full)
    if len(flags) != n:
        raise ValueError(f"{owner}: `mask` must have the structure of the params.")
    return [bool(f) for f in flags]


def _row_view(x, axis: int):
    """``x`` as ``(A, C, B)`` with the channel axis in the middle (a free reshape, no transpose),
    size-1 outer dims dropped; returns the view and the axes to reduce over."""
    a = int(np.prod(x.shape[:axis]))
    c = x.shape[axis]
    b = int(np.prod(x.shape[axis + 1 :]))
    if b == 1:
        return x.reshape(a, c), (0,)
    if a == 1:
        return x.reshape(c, b), (1,)
    return x.reshape(a, c, b), (0, 2)


def _projection(p, g, u_fn, eps, delta, axis: int):
    """Per-channel radial coefficient ``coef`` and whether a view fired.

    Returns ``(coef, fired)`` with ``coef`` broadcastable to ``p`` (size C along ``axis``) such
    that the projected update is ``u - coef * p``, where ``u = u_fn()``. Each per-row reduction
    is computed once; the layer view reuses their sums.

    Memory traffic (XLA on CPU, donated params and state): the statistics that decide whether a
    view fires read only ``p`` and ``g``. ``<p, u>`` is needed only when a view fires, so it is
    computed under ``lax.cond``; ``u_fn`` must build ``u`` from ``g`` and the *new* state
    buffers (never the old, donated ones, which are overwritten in place and would otherwise be
    copied first). When nothing fires the step is the base optimizer's plus one reduction pass
    over ``p`` and ``g``, and ``u`` is never materialised. (An old buffer may be read only if
    everything that overwrites it depends on ``coef``.)
    """
    ndim = p.ndim
    axis = axis % ndim
    acc = jnp.promote_types(p.dtype, jnp.float32)  # accumulate low-precision sums in f32
    # The barrier on (p, g) keeps XLA from sharing g*g with the second moment's g² (CSE), which
    # would materialise g² instead of fusing it into the reduction.
    p_, g_ = jax.lax.optimization_barrier((p, g))
    (pv, red), (gv, _) = (_row_view(x.astype(acc), axis) for x in (p_, g_))

    def row_sum(x):
        return jnp.sum(x, axis=red)

    # The barriers keep XLA from rewriting the layer sums below, sum(sum(x, rows)), into second
    # full-size reductions (twice the memory traffic).
    pp, gg, gp = jax.lax.optimization_barrier(
        (row_sum(pv * pv), row_sum(gv * gv), row_sum(gv * pv))
    )
    eps = jnp.asarray(eps, acc)
    delta = jnp.asarray(delta, acc)
    row_len = p.size // p.shape[axis]

    # channel view
    norm_p = jnp.sqrt(pp)
    norm_g = jnp.sqrt(gg)
    cos = jnp.abs(gp) / (jnp.maximum(norm_g, eps) * jnp.maximum(norm_p, eps))
    chan_fire = jnp.max(cos) < delta / np.sqrt(row_len)

    # layer view (sums of the per-row statistics)
    lnorm_p = jnp.sqrt(jnp.sum(pp))
    lnorm_g = jnp.sqrt(jnp.sum(gg))
    lcos = jnp.abs(jnp.sum(gp)) / (jnp.maximum(lnorm_g, eps) * jnp.maximum(lnorm_p, eps))
    layer_fire = lcos < delta / np.sqrt(p.size)
    fired = jnp.logical_or(chan_fire, layer_fire)

    def fired_coef():
        uv, _ = _row_view(u_fn().astype(acc), axis)
        pu = jax.lax.optimization_barrier(row_sum(pv * uv))
        chan_coef = pu / jnp.square(norm_p + eps)
        layer_coef = jnp.sum(pu) / jnp.square(lnorm_p + eps)
        return jnp.where(chan_fire, chan_coef, layer_coef)

    coef = jax.lax.cond(fired, fired_coef, lambda: jnp.zeros(pp.shape, acc))
    coef = coef.reshape([p.shape[axis] if i == axis else 1 for i in range(ndim)])
    return coef, fired


class _LeafStep(NamedTuple):
    """One leaf's step as the projected core sees it.

    ``direction()`` builds the unprojected update ``u`` from the gradient and the *new* state
    buffers (see :func:`_projection`). ``finish(coef, r)`` returns the leaf's output direction
    and its new state buffers once the radial component ``coef * p`` is removed from ``u`` and
    the weight decay is scaled by ``r`` (``coef = 0`` and ``r = 1`` when nothing is projected).
    """

    direction: Callable[[], jax.Array]
    finish: Callable[[jax.Array, Any], tuple[jax.Array, tuple]]


def _projected_update(
    owner, updates, params, buffers, leaf_step, *, mask, eps, delta, wd_ratio, channel_axis
):
    """Apply ``leaf_step`` to every leaf and the projection to every leaf with ``ndim > 1``.

    ``buffers`` is a tuple of state trees laid out like ``params``;
    ``leaf_step(p, g, old_buffers, decay)`` returns a :class:`_LeafStep`. Leaves whose gradient
    is None pass through with their buffers unchanged. Returns the tree of directions and the
    tuple of new buffer trees.
    """
    if params is None:
        raise ValueError(
            f"{owner}: the projection and weight decay need `params`; pass them to `update`."
        )
    treedef = jax.tree.structure(params)
    leaves_p = treedef.flatten_up_to(params)
    leaves_g = treedef.flatten_up_to(updates)
    leaves_b = [treedef.flatten_up_to(b) for b in buffers]
    decays = _decay_mask(owner, mask, params)

    out, new = [], [[] for _ in buffers]
    for i, (p, g, decay) in enumerate(zip(leaves_p, leaves_g, decays, strict=True)):
        old = tuple(b[i] for b in leaves_b)
        if g is None:
            d, bufs = None, old
        else:
            step = leaf_step(p, g, old, decay)
            if p.ndim > 1 and p.size > 0:
                if not -p.ndim <= channel_axis < p.ndim:
                    raise ValueError(
                        f"{owner}: `channel_axis` must be an axis of every parameter with more "
                        f"than one dimension, got {channel_axis} for a parameter of shape "
                        f"{p.shape}."
                    )
                coef, fired = _projection(p, g, step.direction, eps, delta, channel_axis)
                d, bufs = step.finish(coef, jnp.where(fired, wd_ratio, 1.0))
            else:
                d, bufs = step.finish(jnp.zeros((), V.compute_dtype(p.dtype)), 1.0)
        out.append(d)
        for acc, b in zip(new, bufs, strict=True):
            acc.append(b)
    return treedef.unflatten(out), tuple(treedef.unflatten(b) for b in new)


def _check_projection_args(owner, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis):
    V.check_eps(owner, "eps", eps, positive=True)
    V.check_weight_decay(owner, weight_decay)
    V.check_real(owner, "delta", delta, low=0.0)
    V.check_real(owner, "wd_ratio", wd_ratio, low=0.0)
    nesterov = V.check_flag(owner, "nesterov", nesterov)
    channel_axis = V.check_static_int(owner, "channel_axis", channel_axis, low=None)
    return nesterov, channel_axis


# --------------------------------------------------------------------------------------------
# AdamP


def _adamp_transform(
    owner, b1, b2, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis, mu_dtype, mask
) -> optax.GradientTransformationExtraArgs:
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    nesterov, channel_axis = _check_projection_args(
        owner, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis
    )
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)
    V.check_mask(owner, mask)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        return AdamPState(
            count=jnp.zeros([], jnp.int32),
            mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=V.second_moment_zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.nu)
        count = optax.safe_increment(state.count)
        wd = scheduled_value(weight_decay, state.count)
        bc1 = 1 - jnp.asarray(b1) ** count
        sqrt_bc2 = jnp.sqrt(1 - jnp.asarray(b2) ** count)

        def leaf_step(p, g, old, decay):
            m, v = old
            cd = V.compute_dtype(p.dtype, g.dtype, m.dtype, v.dtype)
            g_c = g.astype(cd)
            m_new = b1 * m.astype(cd) + (1 - b1) * g_c
            v_new = b2 * v.astype(cd) + (1 - b2) * jnp.square(g_c)
            wd_leaf = wd if decay else 0.0
            inv_bc1 = (1 / bc1).astype(cd)

            def direction():  # from the new moments (see _projection)
                denom = jnp.sqrt(v_new) / sqrt_bc2.astype(cd) + eps
                num = b1 * m_new + (1 - b1) * g_c if nesterov else m_new
                return num / denom

            def finish(coef, r):
                scale = wd_leaf * r - coef * inv_bc1
                d = direction() * inv_bc1 + scale * p
                return d.astype(p.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

            return _LeafStep(direction, finish)

        out, (mu, nu) = _projected_update(
            owner,
            updates,
            params,
            (state.mu, state.nu),
            leaf_step,
            mask=mask,
            eps=eps,
            delta=delta,
            wd_ratio=wd_ratio,
            channel_axis=channel_axis,
        )
        return out, AdamPState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_adamp(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    *,
    nesterov: bool = False,
    channel_axis: int = -1,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """AdamP's direction ``u / bc1 + weight_decay * r * p``, before the learning rate.

    The projected Adam step plus the decay; chain it with ``optax.scale_by_learning_rate`` to
    get the reference code's step (that is :func:`adamp`). ``update`` needs ``params``. With
    ``t`` the step, ``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t``, ``p`` the pre-step parameters::

        m <- b1 m + (1 - b1) g ;   v <- b2 v + (1 - b2) g²
        u  = m / (sqrt(v) / sqrt(bc2) + eps)      (nesterov: b1 m + (1 - b1) g on top)
        u, r = project(p, g, u)                   (r = wd_ratio if a view fires, else 1)
        direction = u / bc1 + weight_decay r p

    ``project`` (leaves with ``ndim > 1`` only) tries a view with one row per output channel,
    then the whole tensor as one row; the first view whose largest cosine
    ``|<g_i, p_i>| / (‖g_i‖ ‖p_i‖)`` (norms floored at ``eps``) is below
    ``delta / sqrt(row length)`` fires, and the radial part ``p̂_i <p̂_i, u_i>``
    (``p̂_i = p_i / (‖p_i‖ + eps)``) is removed from each row.

    Defaults are the reference code's (clovaai/AdamP ``adamp.py``): ``b1=0.9``, ``b2=0.999``,
    ``eps=1e-8``, ``weight_decay=0``, ``delta=0.1``, ``wd_ratio=0.1``, ``nesterov=False``.
    The channel axis is the last one (JAX layout) where the reference code, on torch tensors,
    uses axis 0: pass ``channel_axis=0`` for torch-layout weights.

    Args:
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: the ``eps`` of the Adam denominator, of the cosine and of the projection; > 0.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule of the step count),
        scaled by ``wd_ratio`` on the steps where a leaf is projected.
      delta: the cosine threshold: a view fires when ``max cos < delta / sqrt(row length)``.
      wd_ratio: the factor of the weight decay on projected steps.
      nesterov: use the Nesterov form of the update (keyword-only).
      channel_axis: the output-channel axis of the channel view (keyword-only, structural).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`AdamPState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> tx = optax.chain(jop.scale_by_adamp(), optax.scale_by_learning_rate(1e-3))
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.full((3, 2), 0.5), "b": jnp.ones(2)}
      >>> updates, state = tx.update(grads, state, params)
      >>> updates["w"].shape
      (3, 2)
    """
    return _adamp_transform(
        "scale_by_adamp",
        b1,
        b2,
        eps,
        weight_decay,
        delta,
        wd_ratio,
        nesterov,
        channel_axis,
        mu_dtype,
        None,
    )


def adamp(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    *,
    nesterov: bool = False,
    channel_axis: int = -1,
    mu_dtype: Any = None,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdamP (Heo et al., ICLR 2021), as the official code.

    Paper: "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant
    Weights", arXiv:2006.08217; reference code clovaai/AdamP. Adam whose update loses its
    radial component on scale-invariant weights (a kernel followed by a normalisation layer:
    its gradient is orthogonal to it, and momentum would only grow its norm). With ``t`` the
    step, ``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t`` and ``p`` the pre-step parameters::

        m <- b1 m + (1 - b1) g ;   v <- b2 v + (1 - b2) g²
        u  = m / (sqrt(v) / sqrt(bc2) + eps)      (nesterov: b1 m + (1 - b1) g on top)
        u, r = project(p, g, u)                   (r = wd_ratio if a view fires, else 1)
        p <- p - lr (u / bc1 + weight_decay r p)

    ``project`` (leaves with ``ndim > 1`` only) tries a view with one row per output channel,
    then the whole tensor as one row; the first view whose largest cosine
    ``|<g_i, p_i>| / (‖g_i‖ ‖p_i‖)`` (norms floored at ``eps``) is below
    ``delta / sqrt(row length)`` fires, and the radial part ``p̂_i <p̂_i, u_i>``
    (``p̂_i = p_i / (‖p_i‖ + eps)``) is removed from each row.

    Defaults are the reference code's: ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
    ``eps=1e-8``, ``weight_decay=0``, ``delta=0.1``, ``wd_ratio=0.1``, ``nesterov=False``.
    Difference: the channel axis is the last one (JAX layout: a flax Dense kernel is
    ``(in, out)``) where the reference code, on torch tensors, uses axis 0; pass
    ``channel_axis=0`` for torch-layout weights.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: the ``eps`` of the Adam denominator, of the cosine and of the projection; > 0.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule of the step count),
        scaled by ``wd_ratio`` on the steps where a leaf is projected.
      delta: the cosine threshold: a view fires when ``max cos < delta / sqrt(row length)``.
      wd_ratio: the factor of the weight decay on projected steps.
      nesterov: use the Nesterov form of the update (keyword-only).
      channel_axis: the output-channel axis of the channel view (keyword-only, structural).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with an
      :class:`AdamPState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> tx = jop.adamp(1e-3, weight_decay=1e-2)
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.full((3, 2), 0.5), "b": jnp.ones(2)}
      >>> updates, state = tx.update(grads, state, params)
      >>> params = optax.apply_updates(params, updates)
      >>> # g parallel to w: no projection; first step 1 - lr (1 + wd) = 0.99899
      >>> print(round(float(params["w"][0, 0]), 5))
      0.99899
    """
    V.check_learning_rate("adamp", learning_rate)
    return optax.chain(
        _adamp_transform(
            "adamp",
            b1,
            b2,
            eps,
            weight_decay,
            delta,
            wd_ratio,
            nesterov,
            channel_axis,
            mu_dtype,
            mask,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )


# --------------------------------------------------------------------------------------------
# SGDP


def _sgdp_transform(
    owner,
    momentum,
    dampening,
    eps,
    weight_decay,
    delta,
    wd_ratio,
    nesterov,
    channel_axis,
    mu_dtype,
    mask,
) -> optax.GradientTransformationExtraArgs:
    V.check_beta(owner, "momentum", momentum)
    V.check_real(owner, "dampening", dampening, low=0.0, high=1.0)
    nesterov, channel_axis = _check_projection_args(
        owner, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis
    )
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)
    V.check_mask(owner, mask)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        return SGDPState(
            count=jnp.zeros([], jnp.int32),
            momentum=optax.tree.zeros_like(params, dtype=mu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.momentum)
        wd = scheduled_value(weight_decay, state.count)
        wd_scale = wd / (1 - momentum)

        def leaf_step(p, g, old, decay):
            (buf,) = old
            cd = V.compute_dtype(p.dtype, g.dtype, buf.dtype)
            g_c = g.astype(cd)
            new_buf = momentum * buf.astype(cd) + (1 - dampening) * g_c
            s = wd_scale if decay else 0.0

            def direction():  # see _projection
                if nesterov:  # from the new buffer
                    return g_c + momentum * new_buf
                # From the old buffer: the projected buffer below, the only writer of the old
                # buffer's memory, waits for the coefficient, and recomputing the new buffer
                # here keeps XLA from materialising it in a full-size temporary.
                return momentum * buf.astype(cd) + (1 - dampening) * g_c

            def finish(coef, r):
                if nesterov:
                    d = direction() + (s * r - coef) * p
                    return d.astype(p.dtype), (new_buf.astype(buf.dtype),)
                # reference quirk: without nesterov the buffer is projected in place. The step
                # is then read from the projected buffer (equal to u - coef p up to rounding),
                # so the unprojected buffer is never needed in memory.
                b = new_buf - coef * p
                return (b + s * r * p).astype(p.dtype), (b.astype(buf.dtype),)

            return _LeafStep(direction, finish)

        out, (buf,) = _projected_update(
            owner,
            updates,
            params,
            (state.momentum,),
            leaf_step,
            mask=mask,
            eps=eps,
            delta=delta,
            wd_ratio=wd_ratio,
            channel_axis=channel_axis,
        )
        return out, SGDPState(count=optax.safe_increment(state.count), momentum=buf)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_sgdp(
    momentum: float = 0.0,
    dampening: float = 0.0,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    *,
    nesterov: bool = False,
    channel_axis: int = -1,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """SGDP's direction ``u + weight_decay * r / (1 - momentum) * p``, before the learning rate.

    The projected momentum step plus the decay; chain it with ``optax.scale_by_learning_rate``
    to get the reference code's step (that is :func:`sgdp`). ``update`` needs ``params``::

        buf <- momentum buf + (1 - dampening) g        (buf starts at 0)
        u    = g + momentum buf  (nesterov)   or   u = buf
        u, r = project(p, g, u)                        (r = wd_ratio if a view fires, else 1)
        direction = u + weight_decay r p / (1 - momentum)

    ``project`` is AdamP's (see :func:`scale_by_adamp`). Without ``nesterov`` the stored
    buffer becomes the projected ``u``, as in the reference code's in-place projection.
    Defaults are the reference code's (clovaai/AdamP ``sgdp.py``): ``momentum=0``,
    ``dampening=0``, ``eps=1e-8``, ``weight_decay=0``, ``delta=0.1``, ``wd_ratio=0.1``,
    ``nesterov=False``; ``channel_axis=-1`` (JAX layout; the reference code uses axis 0).

    Args:
      momentum: the momentum, in ``[0, 1)``.
      dampening: the dampening of the gradient in the buffer, in ``[0, 1]``.
      eps: the ``eps`` of the cosine and of the projection; > 0.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule of the step count),
        scaled by ``wd_ratio`` on the steps where a leaf is projected.
      delta: the cosine threshold: a view fires when ``max cos < delta / sqrt(row length)``.
      wd_ratio: the factor of the weight decay on projected steps.
      nesterov: use the Nesterov form of the update (keyword-only).
      channel_axis: the output-channel axis of the channel view (keyword-only, structural).
      mu_dtype: dtype of the momentum buffer; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`SGDPState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2))}
      >>> tx = optax.chain(jop.scale_by_sgdp(0.9), optax.scale_by_learning_rate(0.1))
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, tx.init(params), params)
      >>> updates["w"].shape
      (3, 2)
    """
    return _sgdp_transform(
        "scale_by_sgdp",
        momentum,
        dampening,
        eps,
        weight_decay,
        delta,
        wd_ratio,
        nesterov,
        channel_axis,
        mu_dtype,
        None,
    )


def sgdp(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float = 0.0,
    dampening: float = 0.0,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    *,
    nesterov: bool = False,
    channel_axis: int = -1,
    mu_dtype: Any = None,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """SGDP (Heo et al., ICLR 2021), as the official code.

    Paper: "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant
    Weights", arXiv:2006.08217; reference code clovaai/AdamP ``sgdp.py``. SGD with momentum
    whose update loses its radial component on scale-invariant weights::

        buf <- momentum buf + (1 - dampening) g        (buf starts at 0)
        u    = g + momentum buf  (nesterov)   or   u = buf
        u, r = project(p, g, u)                        (r = wd_ratio if a view fires, else 1)
        p   <- p - lr (u + weight_decay r p / (1 - momentum))

    ``project`` is AdamP's (see :func:`adamp`). Defaults are the reference code's:
    ``learning_rate`` required, ``momentum=0``, ``dampening=0``, ``eps=1e-8``,
    ``weight_decay=0``, ``delta=0.1``, ``wd_ratio=0.1``, ``nesterov=False``; its README trains
    with ``lr=0.1``, ``momentum=0.9``, ``nesterov=True``, ``weight_decay=1e-5``. Difference:
    ``channel_axis=-1`` (JAX layout) where the reference code uses axis 0.

    Args:
      learning_rate: a number or a schedule of the step count (required, as in the reference).
      momentum: the momentum, in ``[0, 1)``.
      dampening: the dampening of the gradient in the buffer, in ``[0, 1]``.
      eps: the ``eps`` of the cosine and of the projection; > 0.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule of the step count),
        scaled by ``wd_ratio`` on the steps where a leaf is projected.
      delta: the cosine threshold: a view fires when ``max cos < delta / sqrt(row length)``.
      wd_ratio: the factor of the weight decay on projected steps.
      nesterov: use the Nesterov form of the update (keyword-only).
      channel_axis: the output-channel axis of the channel view (keyword-only, structural).
      mu_dtype: dtype of the momentum buffer; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with an
      :class:`SGDPState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> tx = jop.sgdp(0.1, momentum=0.9, nesterov=True, weight_decay=1e-5)
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.full((3, 2), 0.5), "b": jnp.ones(2)}
      >>> updates, state = tx.update(grads, state, params)
      >>> params = optax.apply_updates(params, updates)
      >>> # u = 0.5 + 0.9 * 0.5; w = 1 - 0.1 (0.95 + 1e-5 / 0.1)
      >>> print(round(float(params["w"][0, 0]), 5))
      0.90499
    """
    V.check_learning_rate("sgdp", learning_rate)
    return optax.chain(
        _sgdp_transform(
            "sgdp",
            momentum,
            dampening,
            eps,
            weight_decay,
            delta,
            wd_ratio,
            nesterov,
            channel_axis,
            mu_dtype,
            mask,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
