"""The library's one conjugate-gradient kernel (used by :class:`~jaxopt_papers.linear.CG` and by
Sinkhorn–Newton–Sparse's Newton systems)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _identity(r: jax.Array) -> jax.Array:
    return r


def pcg_init(
    matvec: Callable[[jax.Array], jax.Array],
    b: jax.Array,
    x0: jax.Array | None = None,
    precond: Callable[[jax.Array], jax.Array] = _identity,
) -> tuple:
    """The carry ``(x, r, p, rᵀz, num_matvecs, indefinite)`` of :func:`pcg` before its first step.

    Args:
      matvec: ``x ↦ Ax``.
      b: the right-hand side.
      x0: the initial guess (``None``: zero, which costs no product).
      precond: ``r ↦ M⁻¹r``.

    Returns:
      The carry that :func:`pcg_step` advances.

    Example:
      >>> import jax.numpy as jnp
      >>> carry = pcg_init(lambda v: 2.0 * v, jnp.ones(3))
      >>> int(carry[4])
      0
    """
    x = jnp.zeros_like(b) if x0 is None else x0
    r = b if x0 is None else b - matvec(x0)
    used = jnp.zeros((), jnp.int32) if x0 is None else jnp.ones((), jnp.int32)
    z = precond(r)
    return x, r, z, r @ z, used, jnp.asarray(False)


def pcg_step(
    matvec: Callable[[jax.Array], jax.Array],
    carry: tuple,
    precond: Callable[[jax.Array], jax.Array] = _identity,
) -> tuple:
    """One CG iteration on the carry of :func:`pcg_init`; a direction of non-positive curvature
    (``pᵀAp ≤ 0``) leaves ``x`` unchanged and sets the ``indefinite`` flag.

    Args:
      matvec: ``x ↦ Ax``.
      carry: ``(x, r, p, rᵀz, num_matvecs, indefinite)``.
      precond: ``r ↦ M⁻¹r``.

    Returns:
      The next carry.

    Example:
      >>> import jax.numpy as jnp
      >>> carry = pcg_step(lambda v: 2.0 * v, pcg_init(lambda v: 2.0 * v, jnp.ones(3)))
      >>> carry[0].tolist()
      [0.5, 0.5, 0.5]
    """
    x, r, p, rz, k, _ = carry
    q = matvec(p)
    pq = p @ q
    bad = ~(pq > 0)
    alpha = jnp.where(bad, 0.0, rz / jnp.where(bad, 1.0, pq))
    x, r = x + alpha * p, r - alpha * q
    z = precond(r)
    rz_new = r @ z
    beta = jnp.where(bad, 0.0, rz_new / jnp.where(rz == 0, 1.0, rz))
    return x, r, z + beta * p, rz_new, k + 1, bad


def pcg(
    matvec: Callable[[jax.Array], jax.Array],
    b: jax.Array,
    target: jax.Array,
    max_steps: jax.Array | int,
    *,
    x0: jax.Array | None = None,
    precond: Callable[[jax.Array], jax.Array] = _identity,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Preconditioned CG from ``x0`` (default 0) until ``‖b − Ax‖₂ ≤ target`` or ``max_steps``
    products with ``A``.

    Works on symmetric positive *semi*-definite systems with a consistent right-hand side (the
    iterates stay in the range). Stops at the first direction of non-positive curvature
    (``pᵀAp ≤ 0`` while the residual is above ``target``): ``A`` is then not positive definite.

    Args:
      matvec: ``x ↦ Ax``.
      b: the right-hand side.
      target: absolute tolerance on the recursively updated residual norm.
      max_steps: cap on products with ``A`` (the one for ``x0`` included).
      x0: the initial guess (``None``: zero).
      precond: ``r ↦ M⁻¹r`` (symmetric positive definite).

    Returns:
      ``(x, r, num_matvecs, indefinite)``; ``r`` is the recursively updated residual.

    Example:
      >>> import jax.numpy as jnp
      >>> x, r, k, bad = pcg(lambda v: jnp.array([2.0, 4.0]) * v, jnp.ones(2), 1e-6, 10)
      >>> x.round(4).tolist(), int(k), bool(bad)
      ([0.5, 0.25], 2, False)
    """

    def cond(c):
        _, r, _, _, k, bad = c
        rnorm = jnp.linalg.norm(r)
        return (rnorm > target) & (k < max_steps) & jnp.isfinite(rnorm) & ~bad

    carry = pcg_init(matvec, b, x0, precond)
    x, r, _, _, k, bad = jax.lax.while_loop(cond, lambda c: pcg_step(matvec, c, precond), carry)
    return x, r, k, bad
