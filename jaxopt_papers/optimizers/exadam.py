r"""EXAdam: Adam with cross-moment debiasing and a gradient acceleration term.

Paper: Ahmed M. Adly, "EXAdam: The Power of Adaptive Cross-Moments", 2024, arXiv:2412.20302.
Reference code: AhmedMostafa16/EXAdam ``exadam.py`` (HEAD 989d7b6; first release 9ff8463).

Per step (``t`` from 1, ``λ`` decoupled weight decay on the pre-step parameters)::

    m  <- b1 m + (1 - b1) g ;   v <- b2 v + (1 - b2) g²
    d1  = 1 + b2^t v / (v + eps) ;   d2 = 1 + b1^t m² / (m² + eps)
    m̃   = m d1 / (1 - b1^t) ;   ṽ = v d2 / (1 - b2^t) ;   g̃ = g d1 / (1 - b1^t)
    x  <- x (1 - lr λ) - α_t (m̃ + g̃) / (sqrt(ṽ) + eps)

with ``α_t = lr`` (reference code, default) or the paper's dynamic step size
``α_t = lr ln(sqrt(2) sqrt(t + 1))`` (``dynamic_lr=True``; the reference code's first release).

Defaults are the reference code's: ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
``eps=1e-8``, ``weight_decay=0``. **Warning**: the first steps are much larger than Adam's
(≈16·lr·sign(g) at t = 1, decaying to ≈2× Adam's once ``b1^t`` is small): consider a warm-up.

Differences from the reference code: none in the maths. The reference code's HEAD evaluates
``np.sqrt`` without importing numpy (its constructor raises ``NameError``); the paper's dynamic step
size, removed from the code in commit 6e3a170, is the ``dynamic_lr=True`` option (weight decay then
still uses the base ``lr``, as in that commit). ``eps`` must be positive. Half-precision (float16,
bfloat16) leaves are updated with float32 arithmetic (in float16 ``eps = 1e-8`` underflows to 0 and
``v / (v + eps)`` would be ``0/0``); the first moment is stored in the param dtype (or
``mu_dtype``), the second one in float32 for float16 params (squared gradients underflow in
float16), and the updates are returned in the gradient dtype.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["EXAdamState", "exadam", "scale_by_exadam"]


class EXAdamState(NamedTuple):
    """State of :func:`scale_by_exadam` (and of the first link of :func:`exadam`).

    Attributes:
      count: the step count ``t`` (int32).
      mu: the first moment ``m`` (param dtype, or ``mu_dtype``).
      nu: the second moment ``v`` (param dtype; float32 for float16 params).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> state = jop.scale_by_exadam().init(jnp.zeros(3))
      >>> int(state.count), state.nu.shape
      (0, (3,))
    """

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_exadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    dynamic_lr: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """EXAdam's direction ``(α_t/lr)(m̃ + g̃)/(sqrt(ṽ) + eps)``, before lr and weight decay.

    Paper: Adly, "EXAdam: The Power of Adaptive Cross-Moments", arXiv:2412.20302; reference
    code AhmedMostafa16/EXAdam ``exadam.py``. With ``t`` the step (from 1)::

        m  <- b1 m + (1 - b1) g ;   v <- b2 v + (1 - b2) g²
        d1  = 1 + b2^t v / (v + eps) ;   d2 = 1 + b1^t m² / (m² + eps)
        m̃   = m d1 / (1 - b1^t) ;   ṽ = v d2 / (1 - b2^t) ;   g̃ = g d1 / (1 - b1^t)
        direction = (α_t / lr) (m̃ + g̃) / (sqrt(ṽ) + eps)

    with ``α_t = lr`` (reference code, the default) or the paper's ``α_t = lr ln(sqrt(2(t + 1)))``
    (``dynamic_lr=True``). The first steps are much larger than Adam's (about ``16 lr`` at
    ``t = 1``, about twice Adam's once ``b1^t`` is small): consider a warm-up.
    Defaults are the reference code's: ``b1=0.9``, ``b2=0.999``, ``eps=1e-8``.

    Args:
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: in the debiasing factors and added to ``sqrt(ṽ)``; > 0.
      dynamic_lr: the paper's step size ``α_t = lr ln(sqrt(2) sqrt(t + 1))`` instead of the
        reference code's ``α_t = lr`` (keyword-only).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`EXAdamState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_exadam()
      >>> u, state = tx.update(jnp.ones(3), tx.init(jnp.zeros(3)))
      >>> u.shape
      (3,)
    """
    owner = "exadam"
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_eps(owner, "eps", eps, positive=True)
    dynamic_lr = V.check_flag(owner, "dynamic_lr", dynamic_lr)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        return EXAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=V.second_moment_zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.nu)
        count = optax.safe_increment(state.count)
        b1_t = b1**count
        b2_t = b2**count
        if dynamic_lr:
            step_scale = jnp.log(jnp.sqrt(count + 1.0) * math.sqrt(2.0))
        else:
            step_scale = 1.0

        def leaf(g, m, v):
            cd = V.compute_dtype(g.dtype, m.dtype, v.dtype)
            g_c = g.astype(cd)
            m_c = b1 * m.astype(cd) + (1 - b1) * g_c
            v_c = b2 * v.astype(cd) + (1 - b2) * g_c * g_c
            d1 = 1 + v_c / (v_c + eps) * b2_t
            d2 = 1 + m_c * m_c / (m_c * m_c + eps) * b1_t
            m_tilde = m_c / (1 - b1_t) * d1
            v_tilde = v_c / (1 - b2_t) * d2
            g_tilde = g_c / (1 - b1_t) * d1
            u = step_scale * (m_tilde + g_tilde) / (jnp.sqrt(v_tilde) + eps)
            return u.astype(g.dtype), m_c.astype(m.dtype), v_c.astype(v.dtype)

        out = jax.tree.map(leaf, updates, state.mu, state.nu)
        u, m, v = jax.tree.transpose(jax.tree.structure(updates), jax.tree.structure((0,) * 3), out)
        return u, EXAdamState(count=count, mu=m, nu=v)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def exadam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    dynamic_lr: bool = False,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """EXAdam with decoupled weight decay ``x <- x(1 - lr λ) - α_t(...)``.

    Paper: Adly, "EXAdam: The Power of Adaptive Cross-Moments", arXiv:2412.20302; reference
    code AhmedMostafa16/EXAdam ``exadam.py``. Adam with cross-moment debiasing and a gradient
    acceleration term ``g̃``. With ``t`` the step (from 1) and ``λ`` the weight decay::

        m  <- b1 m + (1 - b1) g ;   v <- b2 v + (1 - b2) g²
        d1  = 1 + b2^t v / (v + eps) ;   d2 = 1 + b1^t m² / (m² + eps)
        m̃   = m d1 / (1 - b1^t) ;   ṽ = v d2 / (1 - b2^t) ;   g̃ = g d1 / (1 - b1^t)
        x  <- x (1 - lr λ) - α_t (m̃ + g̃) / (sqrt(ṽ) + eps)

    with ``α_t = lr`` (reference code, the default) or the paper's ``α_t = lr ln(sqrt(2(t + 1)))``
    (``dynamic_lr=True``). The first steps are much larger than Adam's (about ``16 lr`` at
    ``t = 1``, about twice Adam's once ``b1^t`` is small): consider a warm-up.
    Defaults are the reference code's: ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
    ``eps=1e-8``, ``weight_decay=0``. Differences from the reference code: none in the maths.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: in the debiasing factors and added to ``sqrt(ṽ)``; > 0.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule of the step count).
      dynamic_lr: the paper's step size ``α_t = lr ln(sqrt(2) sqrt(t + 1))`` instead of the
        reference code's ``α_t = lr`` (keyword-only).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with an
      :class:`EXAdamState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2))}
      >>> tx = jop.exadam(1e-3, weight_decay=1e-2)
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, tx.init(params), params)
      >>> params = optax.apply_updates(params, updates)
      >>> # the first step is about 16 lr (see above)
      >>> print(round(float(params["w"][0, 0]), 5))
      0.98404
    """
    V.check_learning_rate("exadam", learning_rate)
    V.check_weight_decay("exadam", weight_decay)
    V.check_mask("exadam", mask)
    return optax.chain(
        scale_by_exadam(b1, b2, eps, dynamic_lr=dynamic_lr, mu_dtype=mu_dtype),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )
