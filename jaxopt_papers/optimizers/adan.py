r"""Adan: Adaptive Nesterov Momentum.

Paper: Xingyu Xie, Pan Zhou, Huan Li, Zhouchen Lin, Shuicheng Yan, "Adan: Adaptive Nesterov
Momentum Algorithm for Faster Optimizing Deep Models", TPAMI 2024, arXiv:2208.06677.
Reference code: sail-sg/Adan ``adan.py`` (commit 2c65bea).

Betas follow the **reference code's convention** (the paper's ``β`` are the code's ``1 - β``:
code ``(0.98, 0.92, 0.99)`` = paper ``(0.02, 0.08, 0.01)``). With ``g`` the gradient (optionally
clipped to global norm ``max_grad_norm``), ``Δ = g - g_prev`` (``Δ = 0`` at the first step)::

    m <- b1 m + (1 - b1) g
    d <- b2 d + (1 - b2) Δ
    n <- b3 n + (1 - b3) (g + b2 Δ)²
    u  = (m / (1 - b1^t) + b2 d / (1 - b2^t)) / (sqrt(n / (1 - b3^t)) + eps)
    x <- (x - lr u) / (1 + lr λ)           # proximal weight decay (default, paper Alg. 1)
    x <- x (1 - lr λ) - lr u               # no_prox=True (AdamW-style)

Gradient clipping (``max_grad_norm > 0``): ``g <- g min(1, max_grad_norm / (‖g‖ + eps))`` with
``‖g‖`` the norm over the whole pytree; the clipped gradient is the one stored as ``g_prev``.

Defaults are the reference code's: ``learning_rate=1e-3``, ``b1=0.98``, ``b2=0.92``,
``b3=0.99``, ``eps=1e-8``, ``weight_decay=0`` (its README trains with 0.02),
``no_prox=False``, ``max_grad_norm=0`` (off).

**Why not ``optax.adan``.** optax 0.2.8's ``scale_by_adan`` weighs the gradient difference with
``1 - b2`` (0.08) where the reference code (and the paper, in its own convention) uses ``b2``
(0.92), in both ``n`` and ``u``; it also adds ``eps_root=1e-8`` inside the square root and
decays weights AdamW-style. Its trajectories differ from the official code's after the first
step (``tests/optimizers/test_adan.py`` shows the closed-form difference).

Differences from the reference code: the official ``restart_opt()`` (zeroing the moments on a
user trigger) is not offered: re-``init`` the state instead. ``eps`` is outside the square root,
as in the code (the paper puts it inside).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.optimizers._weight_decay import proximal_weight_decay

__all__ = ["AdanState", "adan", "scale_by_adan"]


class AdanState(NamedTuple):
    """State of :func:`scale_by_adan`."""

    count: jax.Array  # int32 step count t
    mu: optax.Updates  # m: EMA of gradients
    delta: optax.Updates  # d: EMA of gradient differences
    nu: optax.Updates  # n: EMA of squared Nesterov-corrected gradients
    prev_grad: optax.Updates  # the previous (clipped) gradient


def scale_by_adan(
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    max_grad_norm: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """Adan direction ``u`` (before learning rate and weight decay), official conventions."""
    owner = "adan"
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_beta(owner, "b3", b3)
    V.check_eps(owner, "eps", eps)
    V.check_real(owner, "max_grad_norm", max_grad_norm, low=0.0)

    def init_fn(params):
        zeros = optax.tree.zeros_like
        return AdanState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros(params),
            delta=zeros(params),
            nu=zeros(params),
            prev_grad=zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        norm = optax.tree.norm(updates)
        clip = jnp.where(max_grad_norm > 0, jnp.minimum(max_grad_norm / (norm + eps), 1.0), 1.0)
        count = optax.safe_increment(state.count)
        first = count == 1
        bc1 = 1 - b1**count
        bc2 = 1 - b2**count
        bc3_sqrt = jnp.sqrt(1 - b3**count)

        def leaf(g, m, d, n, gp):
            g = (g * clip).astype(g.dtype)
            diff = jnp.where(first, jnp.zeros_like(g), g - gp)
            m = b1 * m + (1 - b1) * g
            d = b2 * d + (1 - b2) * diff
            nest = g + b2 * diff
            n = b3 * n + (1 - b3) * nest * nest
            denom = jnp.sqrt(n) / bc3_sqrt + eps
            u = (m / bc1 + b2 * d / bc2) / denom
            return u.astype(g.dtype), m.astype(g.dtype), d.astype(g.dtype), n.astype(g.dtype), g

        out = jax.tree.map(leaf, updates, state.mu, state.delta, state.nu, state.prev_grad)
        u, m, d, n, g = jax.tree.transpose(
            jax.tree.structure(updates), jax.tree.structure((0,) * 5), out
        )
        return u, AdanState(count=count, mu=m, delta=d, nu=n, prev_grad=g)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adan(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    no_prox: bool = False,
    max_grad_norm: float = 0.0,
    mask=None,
) -> optax.GradientTransformationExtraArgs:
    """Adan as the reference code: proximal weight decay unless ``no_prox=True``.

    ``mask`` (a pytree of bools or a callable) limits weight decay to some leaves.
    """
    V.check_learning_rate("adan", learning_rate)
    V.check_weight_decay("adan", weight_decay)
    direction = scale_by_adan(b1, b2, b3, eps, max_grad_norm)
    if no_prox:
        return optax.chain(
            direction,
            optax.add_decayed_weights(weight_decay, mask),
            optax.scale_by_learning_rate(learning_rate),
        )
    decay = proximal_weight_decay(learning_rate, weight_decay)
    if mask is not None:
        decay = optax.masked(decay, mask)
    return optax.chain(direction, optax.scale_by_learning_rate(learning_rate), decay)
