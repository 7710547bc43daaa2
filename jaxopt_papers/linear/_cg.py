"""The library's one conjugate-gradient kernel (used by :func:`~jaxopt_papers.linear.cg` and by
Sinkhorn–Newton–Sparse's Newton systems)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _identity(r: jax.Array) -> jax.Array:
    return r


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

    Returns ``(x, r, num_matvecs, indefinite)``; ``r`` is the recursively updated residual.
    """
    x = jnp.zeros_like(b) if x0 is None else x0
    r = b if x0 is None else b - matvec(x0)
    used = jnp.zeros((), jnp.int32) if x0 is None else jnp.ones((), jnp.int32)
    z = precond(r)
    init = (x, r, z, r @ z, used, jnp.asarray(False))

    def cond(c):
        _, r, _, _, k, bad = c
        rnorm = jnp.linalg.norm(r)
        return (rnorm > target) & (k < max_steps) & jnp.isfinite(rnorm) & ~bad

    def body(c):
        x, r, p, rz, k, _ = c
        q = matvec(p)
        pq = p @ q
        bad = ~(pq > 0)
        alpha = jnp.where(bad, 0.0, rz / jnp.where(bad, 1.0, pq))
        x, r = x + alpha * p, r - alpha * q
        z = precond(r)
        rz_new = r @ z
        beta = jnp.where(bad, 0.0, rz_new / jnp.where(rz == 0, 1.0, rz))
        return x, r, z + beta * p, rz_new, k + 1, bad

    x, r, _, _, k, bad = jax.lax.while_loop(cond, body, init)
    return x, r, k, bad
