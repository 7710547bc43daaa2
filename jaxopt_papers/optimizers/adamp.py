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
  ``channel_axis=0`` reproduces the reference code on torch-layout tensors.
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

import functools
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
    """State of :func:`scale_by_adamp`: step count and the two Adam moments."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


class SGDPState(NamedTuple):
    """State of :func:`scale_by_sgdp`: step count and the momentum buffer."""

    count: jax.Array
    momentum: optax.Updates


# --------------------------------------------------------------------------------------------
# shared helpers


def _check_channel_axis(owner: str, channel_axis: Any) -> None:
    """``channel_axis`` is an int (a Python int, or an integer scalar under inject_hyperparams)."""
    if isinstance(channel_axis, bool):
        raise TypeError(f"{owner}: `channel_axis` must be an int, got {channel_axis!r}.")
    if isinstance(channel_axis, (int, np.integer)):
        return
    if isinstance(channel_axis, (jax.Array, np.ndarray)) and (
        np.ndim(channel_axis) == 0 and jnp.issubdtype(channel_axis.dtype, jnp.integer)
    ):
        return
    raise TypeError(f"{owner}: `channel_axis` must be an int, got {channel_axis!r}.")


def _static_axis(channel_axis: Any) -> int | None:
    """The axis as a Python int, or None if it is only known at run time (a tracer)."""
    if isinstance(channel_axis, jax.core.Tracer):
        return None
    return int(channel_axis)


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


def _project_leaf(owner, p, g, u_fn, eps, delta, channel_axis, finish):
    """``finish(coef, fired)`` after the projection of a leaf with ``ndim > 1``.

    ``channel_axis`` is static in normal use; if it is traced (``optax.inject_hyperparams``
    without ``static_args="channel_axis"``) we dispatch with ``lax.switch`` over the axes.
    """
    axis = _static_axis(channel_axis)
    if axis is not None:
        if not -p.ndim <= axis < p.ndim:
            raise ValueError(
                f"{owner}: `channel_axis`={axis} is out of range for a parameter of shape "
                f"{p.shape}."
            )
        return finish(*_projection(p, g, u_fn, eps, delta, axis))
    branches = [
        functools.partial(lambda k: finish(*_projection(p, g, u_fn, eps, delta, k)), k)
        for k in range(p.ndim)
    ]
    index = jnp.mod(jnp.asarray(channel_axis, jnp.int32), p.ndim)
    return jax.lax.switch(index, branches)


def _needs_params(owner: str, params: Any) -> None:
    if params is None:
        raise ValueError(
            f"{owner}: the projection and weight decay need `params`; pass them to `update`."
        )


# --------------------------------------------------------------------------------------------
# AdamP


def _adamp_transform(
    b1, b2, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis, mask, owner
) -> optax.GradientTransformationExtraArgs:
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_eps(owner, "eps", eps)
    V.check_weight_decay(owner, weight_decay)
    V.check_real(owner, "delta", delta, low=0.0)
    V.check_real(owner, "wd_ratio", wd_ratio, low=0.0)
    _check_channel_axis(owner, channel_axis)
    nesterov = bool(nesterov)

    def init_fn(params):
        return AdamPState(
            count=jnp.zeros([], jnp.int32),
            mu=optax.tree.zeros_like(params),
            nu=optax.tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _needs_params(owner, params)
        count = optax.safe_increment(state.count)
        wd = scheduled_value(weight_decay, state.count)
        bc1 = 1 - jnp.asarray(b1) ** count
        sqrt_bc2 = jnp.sqrt(1 - jnp.asarray(b2) ** count)

        treedef = jax.tree.structure(params)
        leaves_p = treedef.flatten_up_to(params)
        leaves_g = treedef.flatten_up_to(updates)
        leaves_m = treedef.flatten_up_to(state.mu)
        leaves_v = treedef.flatten_up_to(state.nu)
        decays = _decay_mask(owner, mask, params)

        out, new_m, new_v = [], [], []
        for p, g, m, v, decay in zip(leaves_p, leaves_g, leaves_m, leaves_v, decays, strict=True):
            if g is None:
                out.append(None)
                new_m.append(m)
                new_v.append(v)
                continue
            dtype = p.dtype
            m = (b1 * m + (1 - b1) * g).astype(m.dtype)
            v = (b2 * v + (1 - b2) * jnp.square(g)).astype(v.dtype)
            wd_leaf = wd if decay else 0.0
            inv_bc1 = (1 / bc1).astype(dtype)

            def direction(g=g, m=m, v=v, dtype=dtype):  # from the new moments (see _projection)
                denom = jnp.sqrt(v) / sqrt_bc2.astype(dtype) + eps
                num = b1 * m + (1 - b1) * g if nesterov else m
                return num / denom

            if p.ndim > 1 and p.size > 0:

                def finish(coef, fired, u_fn=direction, p=p, wd_leaf=wd_leaf, inv_bc1=inv_bc1):
                    r = jnp.where(fired, wd_ratio, 1.0)
                    scale = wd_leaf * r - coef * inv_bc1
                    return (u_fn() * inv_bc1 + scale * p).astype(p.dtype)

                d = _project_leaf(owner, p, g, direction, eps, delta, channel_axis, finish)
            else:
                d = (direction() * inv_bc1 + wd_leaf * p).astype(dtype)
            out.append(d)
            new_m.append(m)
            new_v.append(v)

        new_state = AdamPState(
            count=count,
            mu=treedef.unflatten(new_m),
            nu=treedef.unflatten(new_v),
        )
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_adamp(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    nesterov: bool = False,
    channel_axis: int = -1,
) -> optax.GradientTransformationExtraArgs:
    """AdamP direction ``u/bc1 + weight_decay * r * p`` (projected Adam step plus decay).

    Multiply by ``-learning_rate`` (``optax.scale_by_learning_rate``) to get the reference
    code's step. Needs ``params`` in ``update``. See the module docstring.
    """
    return _adamp_transform(
        b1, b2, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis, None, "scale_by_adamp"
    )


def adamp(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    nesterov: bool = False,
    channel_axis: int = -1,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdamP (Heo et al., ICLR 2021), as the official code; ``mask`` selects decayed leaves."""
    V.check_learning_rate("adamp", learning_rate)
    return optax.chain(
        _adamp_transform(
            b1, b2, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis, mask, "adamp"
        ),
        optax.scale_by_learning_rate(learning_rate),
    )


# --------------------------------------------------------------------------------------------
# SGDP


def _sgdp_transform(
    momentum, dampening, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis, mask, owner
) -> optax.GradientTransformationExtraArgs:
    V.check_beta(owner, "momentum", momentum)
    V.check_real(owner, "dampening", dampening, low=0.0, high=1.0)
    V.check_eps(owner, "eps", eps)
    V.check_weight_decay(owner, weight_decay)
    V.check_real(owner, "delta", delta, low=0.0)
    V.check_real(owner, "wd_ratio", wd_ratio, low=0.0)
    _check_channel_axis(owner, channel_axis)
    nesterov = bool(nesterov)

    def init_fn(params):
        return SGDPState(count=jnp.zeros([], jnp.int32), momentum=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _needs_params(owner, params)
        wd = scheduled_value(weight_decay, state.count)
        wd_scale = wd / (1 - momentum)

        treedef = jax.tree.structure(params)
        leaves_p = treedef.flatten_up_to(params)
        leaves_g = treedef.flatten_up_to(updates)
        leaves_b = treedef.flatten_up_to(state.momentum)
        decays = _decay_mask(owner, mask, params)

        out, new_b = [], []
        for p, g, buf, decay in zip(leaves_p, leaves_g, leaves_b, decays, strict=True):
            if g is None:
                out.append(None)
                new_b.append(buf)
                continue
            old_buf = buf
            buf = (momentum * buf + (1 - dampening) * g).astype(buf.dtype)
            s = wd_scale if decay else 0.0

            def direction(g=g, buf=buf, old_buf=old_buf):  # see _projection
                if nesterov:  # from the new buffer
                    return g + momentum * buf
                # From the old buffer: the projected buffer below, the only writer of the old
                # buffer's memory, waits for the coefficient, and recomputing the new buffer
                # here keeps XLA from materialising it in a full-size temporary.
                return (momentum * old_buf + (1 - dampening) * g).astype(buf.dtype)

            if p.ndim > 1 and p.size > 0:

                def finish(coef, fired, u_fn=direction, p=p, s=s, buf=buf):
                    r = jnp.where(fired, wd_ratio, 1.0)
                    if nesterov:
                        d = (u_fn() + (s * r - coef) * p).astype(p.dtype)
                        return d, buf
                    # reference quirk: without nesterov the buffer is projected in place. The
                    # step is then read from the projected buffer (equal to u - coef p up to
                    # rounding), so the unprojected buffer is never needed in memory.
                    b = (buf - coef * p).astype(buf.dtype)
                    return (b + s * r * p).astype(p.dtype), b

                d, buf = _project_leaf(owner, p, g, direction, eps, delta, channel_axis, finish)
            else:
                u = g + momentum * buf if nesterov else buf
                d = (u + s * p).astype(p.dtype)
            out.append(d)
            new_b.append(buf)

        new_state = SGDPState(
            count=optax.safe_increment(state.count), momentum=treedef.unflatten(new_b)
        )
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_sgdp(
    momentum: float = 0.0,
    dampening: float = 0.0,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    nesterov: bool = False,
    channel_axis: int = -1,
) -> optax.GradientTransformationExtraArgs:
    """SGDP direction ``u + weight_decay * r / (1 - momentum) * p`` (projected momentum + decay).

    Multiply by ``-learning_rate`` (``optax.scale_by_learning_rate``) to get the reference
    code's step. Needs ``params`` in ``update``. See the module docstring.
    """
    return _sgdp_transform(
        momentum,
        dampening,
        eps,
        weight_decay,
        delta,
        wd_ratio,
        nesterov,
        channel_axis,
        None,
        "scale_by_sgdp",
    )


def sgdp(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float = 0.0,
    dampening: float = 0.0,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    nesterov: bool = False,
    channel_axis: int = -1,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """SGDP (Heo et al., ICLR 2021), as the official code; ``mask`` selects decayed leaves."""
    V.check_learning_rate("sgdp", learning_rate)
    return optax.chain(
        _sgdp_transform(
            momentum,
            dampening,
            eps,
            weight_decay,
            delta,
            wd_ratio,
            nesterov,
            channel_axis,
            mask,
            "sgdp",
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
