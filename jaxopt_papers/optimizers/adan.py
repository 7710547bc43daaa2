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

Differences from the reference code: the official ``restart_opt()`` (zeroing the moments on a user
trigger) is not offered: re-``init`` the state instead. ``eps`` is outside the square root, as in
the code (the paper puts it inside), and must be positive. Half-precision (float16, bfloat16) leaves
are updated with float32 arithmetic (in float16 ``eps = 1e-8`` underflows to 0); the first moment is
stored in the param dtype (or ``mu_dtype``), the second one in float32 for float16 params (squared
gradients underflow in float16), and the updates are returned in the gradient dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.optimizers._weight_decay import proximal_weight_decay

__all__ = ["AdanState", "adan", "scale_by_adan"]


class AdanState(NamedTuple):
    """State of :func:`scale_by_adan` (and of the first link of :func:`adan`).

    Attributes:
      count: the step count ``t`` (int32).
      mu: ``m``, the EMA of the gradients (param dtype, or ``mu_dtype``).
      delta: ``d``, the EMA of the gradient differences (param dtype).
      nu: ``n``, the EMA of the squared Nesterov-corrected gradients (param dtype; float32
        for float16 params).
      prev_grad: the previous (clipped) gradient (param dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> state = jop.scale_by_adan().init(jnp.zeros(3))
      >>> int(state.count), state.prev_grad.shape
      (0, (3,))
    """

    count: jax.Array
    mu: optax.Updates
    delta: optax.Updates
    nu: optax.Updates
    prev_grad: optax.Updates


def scale_by_adan(
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    max_grad_norm: float = 0.0,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Adan's direction ``u`` (before the learning rate and weight decay), official conventions.

    Paper: Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep
    Models", arXiv:2208.06677; reference code sail-sg/Adan ``adan.py``.

    Betas follow the reference code's convention (the paper's ``β`` are the code's ``1 - β``:
    code ``(0.98, 0.92, 0.99)`` = paper ``(0.02, 0.08, 0.01)``). With ``g`` the gradient
    (clipped to the global norm ``max_grad_norm`` when it is > 0) and ``Δ = g - g_prev``
    (``Δ = 0`` at the first step)::

        m <- b1 m + (1 - b1) g
        d <- b2 d + (1 - b2) Δ
        n <- b3 n + (1 - b3) (g + b2 Δ)²
        u  = (m / (1 - b1^t) + b2 d / (1 - b2^t)) / (sqrt(n / (1 - b3^t)) + eps)

    :func:`adan` adds the learning rate and the weight decay. Defaults are the reference
    code's: ``b1=0.98``, ``b2=0.92``, ``b3=0.99``, ``eps=1e-8`` (outside the square root, as in
    the code; the paper puts it inside), ``max_grad_norm=0`` (off). ``optax.scale_by_adan``
    differs: it weighs ``Δ`` by ``1 - b2`` where the reference code uses ``b2``.

    Args:
      b1: decay rate of ``m`` (code convention: the paper's ``1 - β1``), in ``[0, 1)``.
      b2: decay rate of ``d`` and weight of the gradient difference, in ``[0, 1)``.
      b3: decay rate of ``n``, in ``[0, 1)``.
      eps: added to ``sqrt(n / (1 - b3^t))``; > 0.
      max_grad_norm: clip the gradient to this global norm first; 0 turns clipping off.
      mu_dtype: dtype of ``m``; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`AdanState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_adan()
      >>> u, state = tx.update(jnp.ones(3), tx.init(jnp.zeros(3)))
      >>> u.shape
      (3,)
    """
    owner = "adan"
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_beta(owner, "b3", b3)
    V.check_eps(owner, "eps", eps, positive=True)
    V.check_real(owner, "max_grad_norm", max_grad_norm, low=0.0)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        zeros = optax.tree.zeros_like
        return AdanState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros(params, dtype=mu_dtype),
            delta=zeros(params),
            nu=V.second_moment_zeros(params),
            prev_grad=zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.nu)
        norm = optax.tree.norm(jax.tree.map(lambda g: g.astype(V.compute_dtype(g.dtype)), updates))
        clip = jnp.where(max_grad_norm > 0, jnp.minimum(max_grad_norm / (norm + eps), 1.0), 1.0)
        count = optax.safe_increment(state.count)
        first = count == 1
        bc1 = 1 - b1**count
        bc2 = 1 - b2**count
        bc3_sqrt = jnp.sqrt(1 - b3**count)

        def leaf(g, m, d, n, gp):
            cd = V.compute_dtype(g.dtype, m.dtype, n.dtype)
            g_stored = (g * clip).astype(gp.dtype)
            g_c = g_stored.astype(cd)
            diff = jnp.where(first, jnp.zeros_like(g_c), g_c - gp.astype(cd))
            m_c = b1 * m.astype(cd) + (1 - b1) * g_c
            d_c = b2 * d.astype(cd) + (1 - b2) * diff
            nest = g_c + b2 * diff
            n_c = b3 * n.astype(cd) + (1 - b3) * nest * nest
            denom = jnp.sqrt(n_c) / bc3_sqrt + eps
            u = (m_c / bc1 + b2 * d_c / bc2) / denom
            return (
                u.astype(g.dtype),
                m_c.astype(m.dtype),
                d_c.astype(d.dtype),
                n_c.astype(n.dtype),
                g_stored,
            )

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
    *,
    no_prox: bool = False,
    max_grad_norm: float = 0.0,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Adan as the reference code: proximal weight decay unless ``no_prox=True``.

    Paper: Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep
    Models", arXiv:2208.06677 (Algorithm 1); reference code sail-sg/Adan ``adan.py``.

    Betas follow the reference code's convention (the paper's ``β`` are the code's ``1 - β``:
    code ``(0.98, 0.92, 0.99)`` = paper ``(0.02, 0.08, 0.01)``). With ``g`` the gradient
    (clipped to the global norm ``max_grad_norm`` when it is > 0) and ``Δ = g - g_prev``
    (``Δ = 0`` at the first step)::

        m <- b1 m + (1 - b1) g
        d <- b2 d + (1 - b2) Δ
        n <- b3 n + (1 - b3) (g + b2 Δ)²
        u  = (m / (1 - b1^t) + b2 d / (1 - b2^t)) / (sqrt(n / (1 - b3^t)) + eps)
        x <- (x - lr u) / (1 + lr λ)          (proximal weight decay, the default)
        x <- x (1 - lr λ) - lr u              (no_prox=True, AdamW-style)

    Defaults are the reference code's: ``learning_rate=1e-3``, ``b1=0.98``, ``b2=0.92``,
    ``b3=0.99``, ``eps=1e-8``, ``weight_decay=0`` (its README trains with 0.02),
    ``no_prox=False``, ``max_grad_norm=0`` (off). Unlike ``optax.adan`` (which weighs ``Δ`` by
    ``1 - b2`` and decays AdamW-style), this follows the reference code's trajectory.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: decay rate of ``m`` (code convention: the paper's ``1 - β1``), in ``[0, 1)``.
      b2: decay rate of ``d`` and weight of the gradient difference, in ``[0, 1)``.
      b3: decay rate of ``n``, in ``[0, 1)``.
      eps: added to ``sqrt(n / (1 - b3^t))``; > 0.
      weight_decay: ``λ`` (a number or a schedule of the step count).
      no_prox: decay AdamW-style ``x (1 - lr λ) - lr u`` instead of the proximal
        ``(x - lr u) / (1 + lr λ)`` (keyword-only).
      max_grad_norm: clip the gradient to this global norm first; 0 turns clipping off
        (keyword-only).
      mu_dtype: dtype of ``m``; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with an
      :class:`AdanState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2))}
      >>> tx = jop.adan(1e-3, weight_decay=0.02)
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, tx.init(params), params)
      >>> params = optax.apply_updates(params, updates)
      >>> # first step: u = 1, then the proximal decay (1 - 1e-3) / (1 + 1e-3 * 0.02)
      >>> print(round(float(params["w"][0, 0]), 5))
      0.99898
    """
    V.check_learning_rate("adan", learning_rate)
    V.check_weight_decay("adan", weight_decay)
    no_prox = V.check_flag("adan", "no_prox", no_prox)
    V.check_mask("adan", mask)
    direction = scale_by_adan(b1, b2, b3, eps, max_grad_norm, mu_dtype=mu_dtype)
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
