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
``jaxopt_papers.optimizers.lion``). ``"l2"`` uses ``∇K(0) = 0``. A callable kernel must
return an array of the shape of its input (it is applied to each leaf). Half-precision (float16,
bfloat16) leaves are updated with float32 arithmetic; the momentum is stored in the param dtype
(or ``mu_dtype``) and the updates are returned in the gradient dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["LionKState", "lion_k", "scale_by_lion_k"]

KERNELS = ("sign", "l2", "tanh", "huber", "relativistic")


class LionKState(NamedTuple):
    """State of :func:`scale_by_lion_k` (and of the first link of :func:`lion_k`).

    Attributes:
      count: the number of steps taken (int32).
      mu: the momentum ``m`` (param dtype, or ``mu_dtype``).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> state = jop.scale_by_lion_k(kernel="tanh").init(jnp.zeros(3))
      >>> int(state.count), state.mu.shape
      (0, (3,))
    """

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


def kernel_gradient(
    kernel: str | Callable[[jax.Array], jax.Array], kernel_scale: float = 1.0
) -> Callable[[jax.Array], jax.Array]:
    """The map ``c -> ∇K(c)`` for a kernel name or a user callable.

    Args:
      kernel: one of ``"sign"``, ``"l2"``, ``"tanh"``, ``"huber"``, ``"relativistic"``, or a
        callable ``c -> ∇K(c)`` returning an array of the shape of ``c``.
      kernel_scale: the scale ``a`` of the ``"tanh"``, ``"huber"`` and ``"relativistic"``
        kernels (ignored by the others).

    Returns:
      The function ``c -> ∇K(c)``; for a callable ``kernel``, a wrapper that raises a
      ``ValueError`` if the kernel's output does not have the shape of its input.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.optimizers.lion_k import kernel_gradient
      >>> kernel_gradient("huber", 0.5)(jnp.array([-2.0, 0.25, 3.0])).tolist()
      [-1.0, 0.5, 1.0]
    """
    V.check_static_choice("lion_k", "kernel", kernel, KERNELS, callable_ok=True)
    if callable(kernel):

        def checked(c):
            out = kernel(c)
            shape = getattr(out, "shape", None)
            if shape is None or tuple(shape) != tuple(c.shape):
                got = "no array" if shape is None else f"shape {tuple(shape)}"
                raise ValueError(
                    f"lion_k: a callable `kernel` must return an array of the shape of its input "
                    f"(it is applied elementwise or per tensor, as ∇K), got {got} for an input "
                    f"of shape {tuple(c.shape)}."
                )
            return out

        return checked
    fn = _GRAD_K[kernel]
    return lambda c: fn(c, kernel_scale)


def scale_by_lion_k(
    b1: float = 0.9,
    b2: float = 0.99,
    *,
    kernel: str | Callable[[jax.Array], jax.Array] = "sign",
    kernel_scale: float = 1.0,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Lion-K's direction ``∇K(b1 m + (1-b1) g)``, before the learning rate and weight decay.

    Paper: Chen, Liu, Liang, Liu, "Lion Secretly Solves Constrained Optimization: As Lyapunov
    Predicts", ICLR 2024, arXiv:2310.05898::

        direction = ∇K(b1 m + (1 - b1) g)
        m <- b2 m + (1 - b2) g

    Kernels (``a = kernel_scale``), applied per tensor: ``"sign"``: ``sign(c)`` (Lion; solves
    ``min f(x)`` s.t. ``‖x‖∞ ≤ 1/λ``); ``"l2"``: ``c / ‖c‖₂`` (s.t. ``‖x‖₂ ≤ 1/λ`` per tensor);
    ``"tanh"``: ``tanh(a c)``; ``"huber"``: ``clip(c, -a, a) / a``; ``"relativistic"``:
    ``c / sqrt(c² + a²)``; a callable: ``kernel(c)``. Lion-K minimises
    ``f(x) + (1/λ) K*(λ x)`` (``K*`` the convex conjugate of ``K``): for the bounded kernels
    the weight decay acts as the radius of a constraint, not as a penalty.

    Defaults follow Lion's official code (``b1=0.9``, ``b2=0.99``); there is no official
    Lion-K code, the kernels are derived from the paper's table.

    Args:
      b1: interpolation factor of the update direction, in ``[0, 1)``.
      b2: decay rate of the momentum, in ``[0, 1)``.
      kernel: the kernel: one of ``"sign"`` (Lion), ``"l2"``, ``"tanh"``, ``"huber"``,
        ``"relativistic"``, or a callable ``c -> ∇K(c)`` returning an array of the shape of
        ``c`` (keyword-only; structural: under ``optax.inject_hyperparams`` pass
        ``static_args=("kernel",)`` for a callable).
      kernel_scale: the scale ``a`` of the ``"tanh"``, ``"huber"`` and ``"relativistic"``
        kernels, > 0 (keyword-only).
      mu_dtype: dtype of the momentum; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`LionKState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_lion_k(kernel="sign")
      >>> u, state = tx.update(jnp.array([2.0, -3.0, 0.0]), tx.init(jnp.zeros(3)))
      >>> u.tolist()
      [1.0, -1.0, 0.0]
    """
    owner = "lion_k"
    V.check_static_choice(owner, "kernel", kernel, KERNELS, callable_ok=True)
    if not callable(kernel) and kernel in ("tanh", "huber", "relativistic"):
        V.check_real(owner, "kernel_scale", kernel_scale, low=0.0, low_open=True)
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)
    grad_k = kernel_gradient(kernel, kernel_scale)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        if callable(kernel):  # check the kernel's output shape now rather than at the first step
            for leaf in jax.tree.leaves(params):
                jax.eval_shape(grad_k, jax.ShapeDtypeStruct(leaf.shape, leaf.dtype))
        return LionKState(
            count=jnp.zeros([], jnp.int32), mu=optax.tree.zeros_like(params, dtype=mu_dtype)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.mu)

        def leaf(g, m):
            if g is None:
                return None, m
            cd = V.compute_dtype(g.dtype, m.dtype)
            g_c, m_c = g.astype(cd), m.astype(cd)
            direction = grad_k(b1 * m_c + (1 - b1) * g_c).astype(g.dtype)
            return direction, ((1 - b2) * g_c + b2 * m_c).astype(m.dtype)

        is_none = lambda x: x is None
        out = jax.tree.map(leaf, updates, state.mu, is_leaf=is_none)
        new_updates = jax.tree.map(lambda g, o: o[0], updates, out, is_leaf=is_none)
        mu = jax.tree.map(lambda g, o: o[1], updates, out, is_leaf=is_none)
        return new_updates, LionKState(count=optax.safe_increment(state.count), mu=mu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lion_k(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    kernel: str | Callable[[jax.Array], jax.Array] = "sign",
    kernel_scale: float = 1.0,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Lion-K: ``x <- x - lr (∇K(b1 m + (1-b1) g) + λ x)``, Lion with a general convex kernel.

    Paper: Chen, Liu, Liang, Liu, "Lion Secretly Solves Constrained Optimization: As Lyapunov
    Predicts", ICLR 2024, arXiv:2310.05898. With ``λ`` the decoupled weight decay::

        c  = b1 m + (1 - b1) g
        x <- x - lr (∇K(c) + λ x)
        m <- b2 m + (1 - b2) g

    Kernels (``a = kernel_scale``), applied per tensor: ``"sign"``: ``sign(c)`` (Lion; solves
    ``min f(x)`` s.t. ``‖x‖∞ ≤ 1/λ``); ``"l2"``: ``c / ‖c‖₂`` (s.t. ``‖x‖₂ ≤ 1/λ`` per tensor);
    ``"tanh"``: ``tanh(a c)``; ``"huber"``: ``clip(c, -a, a) / a``; ``"relativistic"``:
    ``c / sqrt(c² + a²)``; a callable: ``kernel(c)``. Lion-K minimises
    ``f(x) + (1/λ) K*(λ x)`` (``K*`` the convex conjugate of ``K``): for the bounded kernels
    the weight decay acts as the radius of a constraint, not as a penalty.
    With a constant gradient ``g`` the iterates converge to ``x* = -∇K(g) / λ``.

    Defaults follow Lion's official code (``b1=0.9``, ``b2=0.99``, ``weight_decay=0``); there
    is no official Lion-K code, the kernels are derived from the paper's table.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: interpolation factor of the update direction, in ``[0, 1)``.
      b2: decay rate of the momentum, in ``[0, 1)``.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule of the step count).
      kernel: the kernel: one of ``"sign"`` (Lion), ``"l2"``, ``"tanh"``, ``"huber"``,
        ``"relativistic"``, or a callable ``c -> ∇K(c)`` returning an array of the shape of
        ``c`` (keyword-only; structural: under ``optax.inject_hyperparams`` pass
        ``static_args=("kernel",)`` for a callable).
      kernel_scale: the scale ``a`` of the ``"tanh"``, ``"huber"`` and ``"relativistic"``
        kernels, > 0 (keyword-only).
      mu_dtype: dtype of the momentum; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with a
      :class:`LionKState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2))}
      >>> tx = jop.lion_k(1e-3, kernel="l2", weight_decay=0.1)
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, tx.init(params), params)
      >>> params = optax.apply_updates(params, updates)
      >>> print(round(float(params["w"][0, 0]), 5))  # 1 - 1e-3 (1 / sqrt(6) + 0.1)
      0.99949
    """
    V.check_learning_rate("lion_k", learning_rate)
    V.check_weight_decay("lion_k", weight_decay)
    V.check_mask("lion_k", mask)
    return optax.chain(
        scale_by_lion_k(b1, b2, kernel=kernel, kernel_scale=kernel_scale, mu_dtype=mu_dtype),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )
