r"""Lion-K: Lion with a general convex kernel ``K`` (the "Lion-K" family).

Paper: Lizhang Chen, Bo Liu, Kaizhao Liang, Qiang Liu, "Lion Secretly Solves Constrained
Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898.

Update, with ``g`` the gradient, ``x`` the parameters and ``λ`` the decoupled weight decay::

    c      = b1 * m + (1 - b1) * g
    x     <- x - lr * (∇K(c) + λ x)
    m     <- b2 * m + (1 - b2) * g

(the paper writes the momentum of the *negative* gradient; for an odd ``∇K`` the two forms are
the same). ``K = ||·||₁`` gives ``∇K = sign`` and the update is Lion.

Kernels (``kernel=``; ``a = kernel_scale``), applied per tensor:

=================  ==========================  ==================================================
name               ∇K(c)                       what Lion-K then solves, ``y = λ x``
=================  ==========================  ==================================================
``"sign"``         ``sign(c)``                 ``min f(x)`` s.t. ``‖x‖∞ ≤ 1/λ`` (Lion)
``"l2"``           ``c / ‖c‖₂`` (per tensor)   ``min f(x)`` s.t. ``‖x‖₂ ≤ 1/λ`` (per tensor)
``"tanh"``         ``tanh(a c)``               ``f(x) + (1/λ) Σ`` entropy barrier on ``[-1, 1]``
``"huber"``        ``clip(c, -a, a) / a``      ``f(x) + (a/2λ)‖y‖²`` + box ``‖x‖∞ ≤ 1/λ``
``"relativistic"`` ``c / sqrt(c² + a²)``       ``f(x) - (a/λ) Σ sqrt(1 - y²)`` on the box
callable           ``kernel(c)``               ``f(x) + (1/λ) K*(λ x)``
=================  ==========================  ==================================================

**The constrained view.** Lion-K minimises ``f(x) + (1/λ) K*(λ x)`` with ``K*`` the convex
conjugate of ``K``. For every bounded kernel above (``|∇K| ≤ 1``), a coordinate with
``|x_i| > 1/λ`` has ``λ|x_i| > |∇K_i|`` and shrinks, so weight decay acts as the radius of a
constraint, not as a penalty. With a constant gradient ``g`` the iterates converge to
``x* = -∇K(g) / λ`` (tested for every kernel).

Defaults follow Lion's official code (``b1=0.9``, ``b2=0.99``, no weight decay).

Differences from the reference code: there is no official Lion-K code; the kernels are derived
from the paper's table. For ``kernel="sign"`` the update is the official Lion code's (see
``jaxopt_papers.optimizers.lion``). ``"l2"`` uses ``∇K(0) = 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["LionKState", "lion_k", "scale_by_lion_k"]

KERNELS = ("sign", "l2", "tanh", "huber", "relativistic")


class LionKState(NamedTuple):
    """State of :func:`scale_by_lion_k`: step count and the momentum ``m``."""

    count: jax.Array
    mu: optax.Updates


def _l2(c, a):
    del a
    norm = jnp.sqrt(jnp.sum(jnp.square(c)))
    safe = jnp.where(norm > 0, norm, jnp.ones_like(norm))
    return jnp.where(norm > 0, c / safe, jnp.zeros_like(c))


_GRAD_K: dict[str, Callable] = {
    "sign": lambda c, a: jnp.sign(c),
    "l2": _l2,
    "tanh": lambda c, a: jnp.tanh(a * c),
    "huber": lambda c, a: jnp.clip(c, -a, a) / a,
    "relativistic": lambda c, a: c / jnp.sqrt(jnp.square(c) + jnp.square(a)),
}


def kernel_gradient(kernel: str | Callable[[jax.Array], jax.Array], kernel_scale=1.0):
    """The map ``c -> ∇K(c)`` for a kernel name or a user callable."""
    V.check_callable_or_choice("lion_k", "kernel", kernel, KERNELS)
    if callable(kernel):
        return kernel
    fn = _GRAD_K[kernel]
    return lambda c: fn(c, kernel_scale)


def scale_by_lion_k(
    kernel: str | Callable[[jax.Array], jax.Array] = "sign",
    kernel_scale: float = 1.0,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype=None,
) -> optax.GradientTransformationExtraArgs:
    """Lion-K direction ``∇K(b1 m + (1-b1) g)``, before learning rate and weight decay."""
    owner = "lion_k"
    V.check_callable_or_choice(owner, "kernel", kernel, KERNELS)
    if not callable(kernel) and kernel in ("tanh", "huber", "relativistic"):
        V.check_real(owner, "kernel_scale", kernel_scale, low=0.0, low_open=True)
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

    def init_fn(params):
        return LionKState(
            count=jnp.zeros([], jnp.int32), mu=optax.tree.zeros_like(params, dtype=mu_dtype)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        grad_k = kernel_gradient(kernel, kernel_scale)

        def direction(g, m):
            if g is None:
                return None
            c = b1 * m.astype(g.dtype) + (1 - b1) * g
            return grad_k(c).astype(g.dtype)

        new_updates = jax.tree.map(direction, updates, state.mu, is_leaf=lambda x: x is None)
        mu = optax.tree.update_moment(updates, state.mu, b2, 1)
        mu = optax.tree.cast(mu, mu_dtype) if mu_dtype is not None else mu
        return new_updates, LionKState(count=optax.safe_increment(state.count), mu=mu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lion_k(
    learning_rate: optax.ScalarOrSchedule,
    kernel: str | Callable[[jax.Array], jax.Array] = "sign",
    kernel_scale: float = 1.0,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mu_dtype=None,
    mask=None,
) -> optax.GradientTransformationExtraArgs:
    """Lion-K: ``x <- x - lr (∇K(b1 m + (1-b1) g) + λ x)``; see the module docstring."""
    V.check_learning_rate("lion_k", learning_rate)
    V.check_weight_decay("lion_k", weight_decay)
    return optax.chain(
        scale_by_lion_k(kernel, kernel_scale, b1, b2, mu_dtype),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )
