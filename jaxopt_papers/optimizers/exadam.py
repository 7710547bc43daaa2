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
``np.sqrt`` without importing numpy (its constructor raises ``NameError``); the paper's dynamic
step size, removed from the code in commit 6e3a170, is the ``dynamic_lr=True`` option (weight
decay then still uses the base ``lr``, as in that commit).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["EXAdamState", "exadam", "scale_by_exadam"]


class EXAdamState(NamedTuple):
    """State of :func:`scale_by_exadam`."""

    count: jax.Array  # int32 step count t
    mu: optax.Updates  # m
    nu: optax.Updates  # v


def scale_by_exadam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, dynamic_lr: bool = False
) -> optax.GradientTransformationExtraArgs:
    """EXAdam direction ``(α_t/lr)(m̃ + g̃)/(sqrt(ṽ) + eps)``, before lr and weight decay."""
    owner = "exadam"
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_eps(owner, "eps", eps)

    def init_fn(params):
        return EXAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=optax.tree.zeros_like(params),
            nu=optax.tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = optax.safe_increment(state.count)
        b1_t = b1**count
        b2_t = b2**count
        if dynamic_lr:
            step_scale = jnp.log(jnp.sqrt(count + 1.0) * math.sqrt(2.0))
        else:
            step_scale = 1.0

        def leaf(g, m, v):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            d1 = 1 + v / (v + eps) * b2_t
            d2 = 1 + m * m / (m * m + eps) * b1_t
            m_tilde = m / (1 - b1_t) * d1
            v_tilde = v / (1 - b2_t) * d2
            g_tilde = g / (1 - b1_t) * d1
            u = step_scale * (m_tilde + g_tilde) / (jnp.sqrt(v_tilde) + eps)
            return u.astype(g.dtype), m.astype(g.dtype), v.astype(g.dtype)

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
    dynamic_lr: bool = False,
    mask=None,
) -> optax.GradientTransformationExtraArgs:
    """EXAdam with decoupled weight decay ``x <- x(1 - lr λ) - α_t(...)``; see the module."""
    V.check_learning_rate("exadam", learning_rate)
    V.check_weight_decay("exadam", weight_decay)
    return optax.chain(
        scale_by_exadam(b1, b2, eps, dynamic_lr),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )
