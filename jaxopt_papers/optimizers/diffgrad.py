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

Differences from the reference code: none in the maths (v2 semantics). ``eps`` must be
positive. Half-precision (float16, bfloat16) leaves are updated with float32 arithmetic (in
float16, ``eps = 1e-8`` underflows to 0); the first moment is stored in the param dtype (or
``mu_dtype``), the second one in float32 for float16 params (squared gradients underflow in
float16), and the updates are returned in the gradient dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["DiffGradState", "diffgrad", "scale_by_diffgrad"]


class DiffGradState(NamedTuple):
    """State of :func:`scale_by_diffgrad` (the second link of :func:`diffgrad`).

    Attributes:
      count: the step count ``t`` (int32).
      mu: the first moment ``m`` (param dtype, or ``mu_dtype``).
      nu: the second moment ``v`` (param dtype; float32 for float16 params).
      prev_grad: the previous gradient ``g_prev`` (param dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> state = jop.scale_by_diffgrad().init(jnp.zeros(3))
      >>> int(state.count), state.mu.shape
      (0, (3,))
    """

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    prev_grad: optax.Updates


def scale_by_diffgrad(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, mu_dtype: Any = None
) -> optax.GradientTransformationExtraArgs:
    """diffGrad's direction ``sqrt(bc2)/bc1 · ξ m / (sqrt(v) + eps)``, before the learning rate.

    Paper: Dubey et al., "diffGrad: An Optimization Method for Convolutional Neural Networks",
    arXiv:1909.11015; reference code shivram1987/diffGrad ``diffGrad_v2.py``. Adam whose step
    is damped by a friction coefficient ``ξ`` that is small where the gradient barely
    changes (``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t``)::

        m  <- b1 m + (1 - b1) g ;   v <- b2 v + (1 - b2) g²
        ξ   = sigmoid(|g_prev - g|)          (g_prev = 0 at the first step; ξ in [0.5, 1))
        direction = sqrt(bc2) / bc1 · ξ m / (sqrt(v) + eps) ;   g_prev <- g

    Defaults are the reference code's: ``b1=0.9``, ``b2=0.999``, ``eps=1e-8``.

    Args:
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: added to ``sqrt(v)``; > 0.
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`DiffGradState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_diffgrad()
      >>> u, state = tx.update(jnp.ones(3), tx.init(jnp.zeros(3)))
      >>> u.shape
      (3,)
    """
    owner = "diffgrad"
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_eps(owner, "eps", eps, positive=True)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        zeros = optax.tree.zeros_like
        return DiffGradState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros(params, dtype=mu_dtype),
            nu=V.second_moment_zeros(params),
            prev_grad=zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.nu)
        count = optax.safe_increment(state.count)
        step_size = jnp.sqrt(1 - b2**count) / (1 - b1**count)

        def leaf(g, m, v, gp):
            cd = V.compute_dtype(g.dtype, m.dtype, v.dtype)
            g_c = g.astype(cd)
            m_c = b1 * m.astype(cd) + (1 - b1) * g_c
            v_c = b2 * v.astype(cd) + (1 - b2) * g_c * g_c
            friction = jax.nn.sigmoid(jnp.abs(gp.astype(cd) - g_c))
            u = step_size * (m_c * friction) / (jnp.sqrt(v_c) + eps)
            return u.astype(g.dtype), m_c.astype(m.dtype), v_c.astype(v.dtype), g.astype(gp.dtype)

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
    *,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """diffGrad with coupled L2 weight decay (``g <- g + λ x``), as the fixed v2 reference.

    Paper: Dubey et al., "diffGrad: An Optimization Method for Convolutional Neural Networks",
    arXiv:1909.11015; reference code shivram1987/diffGrad ``diffGrad_v2.py`` (v1 has an
    aliasing bug). Adam whose step is damped by a friction coefficient ``ξ`` that is small
    where the gradient barely changes (``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t``)::

        g  <- g + λ x                         (coupled L2 weight decay)
        m  <- b1 m + (1 - b1) g ;   v <- b2 v + (1 - b2) g²
        ξ   = sigmoid(|g_prev - g|)          (g_prev = 0 at the first step; ξ in [0.5, 1))
        x  <- x - lr sqrt(bc2) / bc1 · ξ m / (sqrt(v) + eps) ;   g_prev <- g

    Defaults are the reference code's: ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
    ``eps=1e-8``, ``weight_decay=0``. Differences from the reference code: none in the maths.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: added to ``sqrt(v)``; > 0.
      weight_decay: the L2 coefficient ``λ`` added to the gradient (a number or a schedule).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is
      ``(add_decayed_weights state, DiffGradState, scale_by_learning_rate state)``.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2))}
      >>> tx = jop.diffgrad(1e-3, weight_decay=1e-4)
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, tx.init(params), params)
      >>> params = optax.apply_updates(params, updates)
      >>> # first step: ξ = sigmoid(1), so x = 1 - 1e-3 · sigmoid(1) (up to eps)
      >>> print(round(float(params["w"][0, 0]), 5))
      0.99927
    """
    V.check_learning_rate("diffgrad", learning_rate)
    V.check_weight_decay("diffgrad", weight_decay)
    V.check_mask("diffgrad", mask)
    inner = optax.chain(
        optax.add_decayed_weights(weight_decay, mask),
        scale_by_diffgrad(b1, b2, eps, mu_dtype=mu_dtype),
        optax.scale_by_learning_rate(learning_rate),
    )

    def init_fn(params):
        V.check_optimizer_init("diffgrad", params)
        return inner.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        # the L2 term comes first in the chain: check the inputs before it combines them
        V.check_optimizer_update("diffgrad", updates, params, state[1].nu)
        return inner.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
