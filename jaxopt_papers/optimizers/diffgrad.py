r"""diffGrad: Adam with a friction coefficient from the change of the gradient.

Paper: Shiv Ram Dubey, Soumendu Chakraborty, Swalpa Kumar Roy, Snehasis Mukherjee, Satish Kumar
Singh, Bidyut Baran Chaudhuri, "diffGrad: An Optimization Method for Convolutional Neural
Networks", IEEE TNNLS 2020, arXiv:1909.11015. Reference code: shivram1987/diffGrad
``diffGrad_v2.py`` (commit 73233ba; v1 has the aliasing bug documented by the authors).

Per step, with coupled L2 weight decay ``λ`` (added to the gradient)::

    g  <- g + λ x
    m  <- b1 m + (1 - b1) g ;   v <- b2 v + (1 - b2) g²
    ξ   = sigmoid(|g_prev - g|)          (g_prev = 0 at the first step; ξ ∈ [0.5, 1))
    x  <- x - lr sqrt(1 - b2^t) / (1 - b1^t) · ξ m / (sqrt(v) + eps)
    g_prev <- g                           (including the L2 term)

Defaults are the reference code's: ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
``eps=1e-8``, ``weight_decay=0``.

Differences from the reference code: none (v2 semantics).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["DiffGradState", "diffgrad", "scale_by_diffgrad"]


class DiffGradState(NamedTuple):
    """State of :func:`scale_by_diffgrad`."""

    count: jax.Array  # int32 step count t
    mu: optax.Updates  # m
    nu: optax.Updates  # v
    prev_grad: optax.Updates  # g_prev


def scale_by_diffgrad(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformationExtraArgs:
    """diffGrad direction ``sqrt(bc2)/bc1 · ξ m / (sqrt(v) + eps)``, before the learning rate."""
    owner = "diffgrad"
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_eps(owner, "eps", eps)

    def init_fn(params):
        zeros = optax.tree.zeros_like
        return DiffGradState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros(params),
            nu=zeros(params),
            prev_grad=zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = optax.safe_increment(state.count)
        step_size = jnp.sqrt(1 - b2**count) / (1 - b1**count)

        def leaf(g, m, v, gp):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            friction = jax.nn.sigmoid(jnp.abs(gp - g))
            u = step_size * (m * friction) / (jnp.sqrt(v) + eps)
            return u.astype(g.dtype), m.astype(g.dtype), v.astype(g.dtype), g

        out = jax.tree.map(leaf, updates, state.mu, state.nu, state.prev_grad)
        u, m, v, g = jax.tree.transpose(
            jax.tree.structure(updates), jax.tree.structure((0,) * 4), out
        )
        return u, DiffGradState(count=count, mu=m, nu=v, prev_grad=g)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def diffgrad(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask=None,
) -> optax.GradientTransformationExtraArgs:
    """diffGrad with coupled L2 weight decay (``g <- g + λ x``), as the fixed v2 reference."""
    V.check_learning_rate("diffgrad", learning_rate)
    V.check_weight_decay("diffgrad", weight_decay)
    return optax.chain(
        optax.add_decayed_weights(weight_decay, mask),
        scale_by_diffgrad(b1, b2, eps),
        optax.scale_by_learning_rate(learning_rate),
    )
