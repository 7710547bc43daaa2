"""Log-domain Sinkhorn, implicitly differentiable.

Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013; the
log-domain (stabilised) form of Schmitzer 2019 / Peyré & Cuturi, "Computational Optimal
Transport" §4.4. Reference code for the conventions: ott-jax 0.6.0 ``Sinkhorn`` (``lse_mode``).

One sweep (ott's order, g first):

    g_j ← ε log b_j − ε LSE_i((f_i − C_ij)/ε),    f_i ← ε log a_i − ε LSE_j((g_j − C_ij)/ε).

After a sweep the row marginal is exact, so the L1 marginal error ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁`` is
the column error, which the next sweep's log-sum-exp gives for free: it is checked every sweep.
Stops when it is ``≤ tol`` or after ``max_steps`` sweeps; ``fixed_steps=True`` runs exactly
``max_steps`` sweeps (a ``lax.scan``: the mode for ``vmap`` and for unrolled differentiation).

Differences from the reference code: the error is both marginals in L1 and is checked every sweep
(ott: one marginal, every ``inner_iterations=10``; its default threshold ``1e-3`` is loose —
spec §2.7); ``epsilon`` is absolute (ott's default is ``0.05·std(C)``); potentials are returned
with ``Σf = Σg`` (the gauge of :mod:`jaxopt_papers.ot.dual`); implicit differentiation solves
the symmetric gauge-fixed system with CG / dense LU (ott: Schur complement + normal CG); no
momentum or Anderson acceleration.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxopt_papers import _validation as V
from jaxopt_papers.implicit import LinearSolve, custom_root
from jaxopt_papers.ot import dual

__all__ = ["sinkhorn"]


def sweep(
    f: jax.Array, g: jax.Array, cost: jax.Array, a: jax.Array, b: jax.Array, epsilon: Any
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One (g, f) sweep; also returns the L1 marginal error of the incoming (f, g)."""
    lse_g = jax.nn.logsumexp((f[:, None] - cost) / epsilon, axis=0)
    error = jnp.sum(jnp.abs(jnp.exp(g / epsilon + lse_g) - b))
    g = epsilon * (jnp.log(b) - lse_g)
    f = epsilon * (jnp.log(a) - jax.nn.logsumexp((g[None, :] - cost) / epsilon, axis=1))
    return f, g, error


def run_sinkhorn(
    f: jax.Array,
    g: jax.Array,
    cost: jax.Array,
    a: jax.Array,
    b: jax.Array,
    epsilon: Any,
    tol: Any,
    max_steps: int,
    fixed_steps: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Sweeps from ``(f, g)`` until the error is ``≤ tol`` (or exactly ``max_steps``).

    Returns ``(f, g, sweeps, converged)``."""
    if fixed_steps:

        def body(carry: tuple, _: None) -> tuple[tuple, None]:
            f, g = carry
            f, g, _ = sweep(f, g, cost, a, b, epsilon)
            return (f, g), None

        (f, g), _ = jax.lax.scan(body, (f, g), None, length=max_steps)
        return f, g, jnp.asarray(max_steps, jnp.int32), jnp.asarray(False)

    def cond(c: tuple) -> jax.Array:
        _, _, err, k = c
        return (err > tol) & (k < max_steps)

    def step(c: tuple) -> tuple:
        f, g, _, k = c
        f, g, err = sweep(f, g, cost, a, b, epsilon)
        return f, g, err, k + 1

    init = (f, g, jnp.asarray(jnp.inf, cost.dtype), jnp.asarray(0, jnp.int32))
    f, g, err, k = jax.lax.while_loop(cond, step, init)
    return f, g, k, err <= tol


@eqx.filter_jit
def _sinkhorn(cost, a, b, epsilon, tol, max_steps, fixed_steps, throw, implicit_diff, solve):
    def solver(init, cost, a, b, epsilon):
        f, g, k, ok = run_sinkhorn(*init, cost, a, b, epsilon, tol, max_steps, fixed_steps)
        stats = {
            "num_sinkhorn_steps": k,
            "num_newton_steps": jnp.zeros((), jnp.int32),
            "converged": ok,
        }
        return dual.normalise_gauge(f, g), stats

    if implicit_diff:
        solver = custom_root(dual.optimality, solve=solve, has_aux=True)(solver)
    zeros = (jnp.zeros_like(a), jnp.zeros_like(b))
    (f, g), stats = solver(zeros, cost, a, b, epsilon)
    return dual.finish(f, g, cost, a, b, epsilon, tol, stats, throw)


def sinkhorn(
    cost: jax.Array,
    a: jax.Array,
    b: jax.Array,
    epsilon: Any,
    *,
    tol: Any = 1e-6,
    max_steps: int = 10_000,
    fixed_steps: bool = False,
    throw: bool = True,
    implicit_diff: bool = True,
    linear_solve: Any = None,
) -> dual.OTResult:
    """Entropic OT by log-domain Sinkhorn (see the module docstring).

    Args:
      cost: ``(n, m)`` cost matrix; a, b: positive weights of equal total mass.
      epsilon: the (absolute) entropic regularisation ε.
      tol: target L1 marginal error; max_steps: sweep cap.
      fixed_steps: run exactly ``max_steps`` sweeps (``vmap``; unrolled differentiation).
      throw: raise on non-convergence / non-finite values, or report ``result``.
      implicit_diff: differentiate by the implicit function theorem (default) or through the
        iterations (use with ``fixed_steps=True``).
      linear_solve: backward solve (default :class:`~jaxopt_papers.implicit.LinearSolve`).
    Returns:
      :class:`~jaxopt_papers.ot.OTResult`.
    """
    cost, a, b = dual.check_problem("sinkhorn", cost, a, b, epsilon, tol)
    V.check_int("sinkhorn", "max_steps", max_steps, low=1)
    solve = LinearSolve(throw=throw) if linear_solve is None else linear_solve
    eps, tol = jnp.asarray(epsilon, cost.dtype), jnp.asarray(tol, cost.dtype)
    return _sinkhorn(
        cost, a, b, eps, tol, max_steps, bool(fixed_steps), bool(throw), bool(implicit_diff), solve
    )
