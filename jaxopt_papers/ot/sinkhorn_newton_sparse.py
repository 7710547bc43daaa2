"""Sinkhorn–Newton–Sparse (SNS): Sinkhorn warm start, then Newton with a sparsified Hessian.

Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao, Ying, "Accelerating Sinkhorn
Algorithm with Sparse Newton Iterations", ICLR 2024, arXiv 2401.12253. No official code was
found; this follows the paper's Algorithm 1 (as relayed in ``../shared/specs/solvers.md`` §2).

Stage 1: ``sinkhorn_steps`` log-domain Sinkhorn sweeps. Stage 2, Newton ascent on the concave
dual ``D(f, g)`` (:mod:`jaxopt_papers.ot.dual`), until the L1 marginal error is ``≤ tol``:

1. ``P = exp((f ⊕ g − C)/ε)``, ``∇D = (a − P1, b − Pᵀ1)``;
2. ``M̃ = [[diag(P1), P̃], [P̃ᵀ, diag(Pᵀ1)]]`` where ``P̃`` keeps the ``k`` largest entries of each
   row of ``P`` (fixed shapes: a ``top_k``, gathers and a scatter-add), the diagonal the full sums;
3. solve ``M̃ Δ = ε∇D`` through the Schur complement of the ``g`` block,
   ``(diag(P1) − P̃ diag(1/Pᵀ1) P̃ᵀ) Δf = ε(∇_f D − P̃ (∇_g D / Pᵀ1))``, by Jacobi-preconditioned
   CG to the relative tolerance ``clip(max(e, 0.1·tol/e), cg_rtol, 0.1)`` where ``e`` is the
   current error (inexact Newton with Eisenstat–Walker forcing ``~e``, never tighter than this
   step needs to reach ``tol``); then ``Δg = (ε∇_g D − P̃ᵀΔf) / Pᵀ1``;
4. Armijo backtracking from ``α = 1``: ``D(z + αΔ) ≥ D(z) + 10⁻⁴ α ⟨∇D, Δ⟩``, accepting ``α = 1``
   when the change of ``D`` is below round-off. If 30 halvings find no ascent, the step is a
   Sinkhorn sweep instead (always an ascent step), so no non-finite iterate can be produced.

A Newton step costs one pass over ``P`` per line-search trial (the accepted trial's plan is the
next step's), a ``top_k``, and ``O((n + m)k)`` per CG iteration (``O(nm)`` dense).

Differences from the reference (the paper):

* the sparsity is a fixed number ``k`` of entries per row (default 16, i.e. ``density=16/m``);
  the paper thresholds the whole matrix to a density ``λ = 2/n`` of the 2n×2n Hessian. On the
  paper's random assignment problem (n = 500, η = 1200), 4 entries per row stall near 2e-6 and
  16 converge in 8 Newton steps like dense Newton;
* when the plan is not nearly sparse the sparsified Newton only converges linearly (Gaussian
  clouds at ε = 1e-2·mean C: the top 16 of 1000 entries hold 62% of the mass, and 200 steps
  reach 1e-7), so after the warm start the kept fraction of the mass is measured and, if it is
  below ``min_kept_mass`` (default 0.99), the Newton stage uses the full Hessian (dense
  products, ~14 steps there). ``min_kept_mass=0`` always sparsifies, as the paper does;
* the gauge (the null vector ``(1, −1)``) is eliminated with the Schur complement, which is
  positive semi-definite with the gauge as its null space (consistent right-hand side); the
  paper does not say how it handles it. CG is Jacobi-preconditioned;
* the inexact-Newton forcing term and the Sinkhorn fallback of the line search are ours;
* the result is implicitly differentiable like :func:`~jaxopt_papers.ot.sinkhorn` (the sparsity
  pattern is not differentiated).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxopt_papers import _validation as V
from jaxopt_papers.implicit import LinearSolve, custom_root
from jaxopt_papers.ot import dual
from jaxopt_papers.ot.sinkhorn import sweep

__all__ = ["sinkhorn_newton_sparse"]


def _pcg(matvec, rhs, precond, rtol, max_steps):
    """Preconditioned CG from 0 until ``‖r‖₂ ≤ rtol‖rhs‖₂``; returns ``(x, steps)``.

    Hand-written rather than :class:`lineax.CG` because the Schur complement is only positive
    *semi*-definite (its null space is the gauge) and lineax's stopping test stalls on it."""
    target = rtol * jnp.linalg.norm(rhs)
    z = precond(rhs)
    init = (jnp.zeros_like(rhs), rhs, z, rhs @ z, jnp.zeros((), jnp.int32))

    def cond(c):
        _, r, _, _, i = c
        return (jnp.linalg.norm(r) > target) & (i < max_steps)

    def body(c):
        x, r, p, rz, i = c
        q = matvec(p)
        alpha = rz / (p @ q)
        x, r = x + alpha * p, r - alpha * q
        z = precond(r)
        rz_new = r @ z
        return x, r, z + (rz_new / rz) * p, rz_new, i + 1

    x, _, _, _, steps = jax.lax.while_loop(cond, body, init)
    return x, steps


class _Point(eqx.Module):
    """An iterate with what the next Newton step needs: the plan, its marginals and error."""

    f: jax.Array
    g: jax.Array
    plan: jax.Array
    rows: jax.Array
    cols: jax.Array
    error: jax.Array


def _point(f, g, cost, a, b, epsilon, plan=None) -> _Point:
    plan = jnp.exp(dual.log_plan(f, g, cost, epsilon)) if plan is None else plan
    rows, cols = plan.sum(1), plan.sum(0)
    error = jnp.sum(jnp.abs(a - rows)) + jnp.sum(jnp.abs(b - cols))
    return _Point(f, g, plan, rows, cols, error)


def _top_k(plan: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` largest entries of each row and their columns (``top_k`` on a float32 copy:
    XLA:CPU's float64 ``top_k`` is ~30x slower; the values are gathered in full precision)."""
    _, idx = jax.lax.top_k(plan.astype(jnp.float32), k)
    return jnp.take_along_axis(plan, idx, axis=1), idx


def _warm_start(cost, a, b, epsilon, num_sweeps: int) -> tuple[jax.Array, jax.Array]:
    """``num_sweeps`` Sinkhorn sweeps from 0: the first in the log domain, the rest incremental.

    After a log-domain sweep every entry of the plan is ``≤ 1`` (a column sums to ``b_j``), and
    each later half-sweep keeps it so, while a column sum stays ``≥ b_j·min(a)/Σb`` (a row sum
    is at most ``Σb``): ``g += ε(log b − log Pᵀ1)`` can neither overflow nor take the log of 0
    for positive weights. Same iterates as :func:`~jaxopt_papers.ot.sinkhorn`'s sweeps, with two
    passes over the plan per sweep instead of four (max and sum of each ``logsumexp``)."""
    f, g = jnp.zeros_like(a), jnp.zeros_like(b)
    if num_sweeps == 0:
        return f, g
    f, g, _ = sweep(f, g, cost, a, b, epsilon)
    log_a, log_b = jnp.log(a), jnp.log(b)

    def body(fg, _):
        f, g = fg
        log_plan = dual.log_plan(f, g, cost, epsilon)
        dg = log_b - jnp.log(jnp.sum(jnp.exp(log_plan), axis=0))
        df = log_a - jnp.log(jnp.sum(jnp.exp(log_plan + dg[None, :]), axis=1))
        return (f + epsilon * df, g + epsilon * dg), None

    (f, g), _ = jax.lax.scan(body, (f, g), None, length=num_sweeps - 1)
    return f, g


def newton_step(z: _Point, cost, a, b, epsilon, tol, k: int, cg_max_steps: int, cg_rtol: float):
    """One (sparse if ``k < m``) Newton ascent step with Armijo backtracking.

    Returns the new point and the number of CG steps."""
    m = cost.shape[1]
    plan, rows, cols = z.plan, z.rows, z.cols
    grad_f, grad_g = a - rows, b - cols
    if k >= m:  # dense Newton: plain matrix products

        def p_mv(v):
            return plan @ v

        def pt_mv(u):
            return u @ plan  # XLA:CPU: `plan.T @ u` is ~8x slower

    else:
        vals, idx = _top_k(plan, k)

        def p_mv(v):
            return jnp.sum(vals * v[idx], axis=1)

        def pt_mv(u):
            return jnp.zeros(m, plan.dtype).at[idx].add(vals * u[:, None])

    # M̃ [Δf; Δg] = ε∇D, M̃ = [[diag(rows), P̃], [P̃ᵀ, diag(cols)]]: eliminate Δg and solve the
    # Schur complement S Δf = ε(∇_f D − P̃ (∇_g D / cols)), S = diag(rows) − P̃ diag(1/cols) P̃ᵀ.
    rhs = epsilon * (grad_f - p_mv(grad_g / cols))

    def schur(u):
        return rows * u - p_mv(pt_mv(u) / cols)

    # Inexact Newton (Eisenstat–Walker forcing ~ error), but never more accurate than needed for
    # this step to reach tol: the last step would otherwise cost more CG steps than all others.
    rtol = jnp.clip(jnp.maximum(z.error, 0.1 * tol / z.error), cg_rtol, 0.1)
    df, cg_steps = _pcg(schur, rhs, lambda r: r / rows, rtol, cg_max_steps)
    dg = (epsilon * grad_g - pt_mv(df)) / cols

    d0 = a @ z.f + b @ z.g - epsilon * jnp.sum(rows)
    slope = grad_f @ df + grad_g @ dg
    roundoff = 1e-13 * jnp.abs(d0)

    def accepted(alpha, plan=None):
        f, g = z.f + alpha * df, z.g + alpha * dg
        plan = jnp.exp(dual.log_plan(f, g, cost, epsilon)) if plan is None else plan
        d = a @ f + b @ g - epsilon * jnp.sum(plan)
        return (d >= d0 + 1e-4 * alpha * slope) | ((alpha == 1.0) & (jnp.abs(d - d0) <= roundoff))

    # The full step's plan is kept (it is the next point's when accepted, the common case); the
    # halvings carry only scalars: a loop carrying the plan costs XLA:CPU a copy of it.
    full_plan = jnp.exp(dual.log_plan(z.f + df, z.g + dg, cost, epsilon))
    full_ok = accepted(jnp.ones((), cost.dtype), full_plan) & jnp.isfinite(slope)

    def damped(_):
        alpha, ok, _ = jax.lax.while_loop(
            lambda c: ~c[1] & (c[2] < _MAX_HALVINGS),
            lambda c: (0.5 * c[0], accepted(0.5 * c[0]), c[2] + 1),
            (jnp.ones((), cost.dtype), jnp.asarray(False), jnp.zeros((), jnp.int32)),
        )

        def fallback(_):  # no ascent along Δ (round-off or a bad direction): a Sinkhorn sweep
            f, g, _ = sweep(z.f, z.g, cost, a, b, epsilon)
            return f, g

        ok = ok & jnp.isfinite(slope)
        f, g = jax.lax.cond(ok, lambda _: (z.f + alpha * df, z.g + alpha * dg), fallback, None)
        return _point(f, g, cost, a, b, epsilon)

    def full(_):
        return _point(z.f + df, z.g + dg, cost, a, b, epsilon, full_plan)

    return jax.lax.cond(full_ok, full, damped, None), cg_steps


_MAX_HALVINGS = 30


@eqx.filter_jit
def _sns(cost, a, b, epsilon, tol, sinkhorn_steps, max_newton_steps, k, min_kept_mass,
         cg_max_steps, cg_rtol, stages, decay, throw, implicit_diff, solve):  # fmt: skip
    m = cost.shape[1]

    def newton_stage(z0, cost, a, b, eps, stage_tol, steps0, cg0):
        """Newton steps at ``eps`` from ``z0`` until the error is ``≤ stage_tol``."""

        def newton(k_used):
            def body(c):
                z, i, cg = c
                z, cg_steps = newton_step(z, cost, a, b, eps, stage_tol, k_used, cg_max_steps,
                                          cg_rtol)  # fmt: skip
                return z, i + 1, cg + cg_steps

            def cond(c):
                z, i, _ = c
                return (z.error > stage_tol) & (i < max_newton_steps)

            return lambda _: jax.lax.while_loop(cond, body, (z0, steps0, cg0))

        if k >= m:
            return newton(m)(None)
        # Sparse when the top-k entries hold most of the mass, else the full Hessian; measured on
        # at most 128 evenly spaced rows (a top_k of the whole plan costs several Newton steps'
        # worth of CG iterations at n = 2000).
        rows = jnp.arange(0, z0.plan.shape[0], max(1, z0.plan.shape[0] // 128))
        kept = jnp.sum(_top_k(z0.plan[rows], k)[0]) / jnp.sum(z0.rows[rows])
        return jax.lax.cond(kept >= min_kept_mass, newton(k), newton(m), None)

    def solver(init, cost, a, b, epsilon):
        # ε-scaling: stages at ε·decay^(stages−1), …, ε; the coarser ones to a loose 1e-2·Σa.
        eps0 = epsilon * decay ** (stages - 1)
        f, g = _warm_start(cost, a, b, eps0, sinkhorn_steps)
        steps, cg = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)
        for stage in range(stages):
            eps = epsilon * decay ** (stages - 1 - stage)
            if stage:  # one log-domain sweep at the new ε: the plan cannot overflow
                f, g, _ = sweep(f, g, cost, a, b, eps)
            last = stage == stages - 1
            stage_tol = tol if last else jnp.maximum(tol, 1e-2 * jnp.sum(a))
            z = _point(f, g, cost, a, b, eps)
            z, steps, cg = newton_stage(z, cost, a, b, eps, stage_tol, steps, cg)
            f, g = z.f, z.g
        stats = {
            "num_sinkhorn_steps": jnp.asarray(sinkhorn_steps + stages - 1, jnp.int32),
            "num_newton_steps": steps,
            "num_cg_steps": cg,
            "converged": z.error <= tol,
        }
        return dual.normalise_gauge(f, g), stats

    if implicit_diff:
        solver = custom_root(dual.optimality, solve=solve, has_aux=True)(solver)
    (f, g), stats = solver((jnp.zeros_like(a), jnp.zeros_like(b)), cost, a, b, epsilon)
    return dual.finish(f, g, cost, a, b, epsilon, tol, stats, throw)


def sinkhorn_newton_sparse(
    cost: jax.Array,
    a: jax.Array,
    b: jax.Array,
    epsilon: Any,
    *,
    tol: Any = 1e-6,
    sinkhorn_steps: int = 20,
    max_newton_steps: int = 200,
    density: float | None = None,
    min_kept_mass: float = 0.99,
    epsilon_stages: int = 1,
    epsilon_decay: float = 10.0,
    cg_max_steps: int | None = None,
    cg_rtol: float = 1e-10,
    throw: bool = True,
    implicit_diff: bool = True,
    linear_solve: Any = None,
) -> dual.OTResult:
    """Entropic OT by Sinkhorn–Newton–Sparse (see the module docstring).

    Args:
      cost, a, b, epsilon, tol, throw, implicit_diff, linear_solve: as for
        :func:`~jaxopt_papers.ot.sinkhorn`.
      sinkhorn_steps: stage-1 Sinkhorn sweeps (the paper: 20).
      max_newton_steps: stage-2 cap.
      density: fraction of each row of the plan kept in the Hessian (default ``16/m``: 16
        entries; ``1.0`` is dense Newton).
      min_kept_mass: use the sparsified Hessian only if its entries hold at least this fraction
        of the plan's mass after the warm start, else the full Hessian (``0``: always sparse).
      epsilon_stages, epsilon_decay: ε-scaling (not in the paper; ``1``, the default, is off).
        The warm start and a first Newton stage run at ``ε·decay^(stages−1)``, each later stage at
        ``ε`` ten (``decay``) times smaller, from the previous potentials after one Sinkhorn
        sweep; intermediate stages stop at an L1 error of ``1e-2·Σa``. At small ε Newton from a
        20-sweep warm start spends most of its steps damped: Gaussian clouds, n = 1000,
        ε = 1e-3·mean C: 94 Newton steps with one stage, 23 with two. ``num_steps`` counts the
        extra sweeps and all Newton steps.
      cg_max_steps, cg_rtol: the inner CG (default cap ``10(n + m)``: at small ε the Hessian is
        ill-conditioned and an inexact Newton direction stalls the outer iteration).
    """
    owner = "sinkhorn_newton_sparse"
    cost, a, b = dual.check_problem(owner, cost, a, b, epsilon, tol)
    n, m = cost.shape
    V.check_int(owner, "sinkhorn_steps", sinkhorn_steps, low=0)
    V.check_int(owner, "max_newton_steps", max_newton_steps, low=1)
    V.check_real(owner, "min_kept_mass", min_kept_mass, low=0.0, high=1.0)
    V.check_int(owner, "epsilon_stages", epsilon_stages, low=1)
    V.check_real(owner, "epsilon_decay", epsilon_decay, low=1.0, low_open=True)
    if density is None:
        k = min(16, m)
    else:
        V.check_real(owner, "density", density, low=0.0, high=1.0, low_open=True)
        k = max(1, min(m, math.ceil(density * m)))
    cg_max = 10 * (n + m) if cg_max_steps is None else cg_max_steps
    V.check_int(owner, "cg_max_steps", cg_max, low=1)
    solve = LinearSolve(throw=throw) if linear_solve is None else linear_solve
    eps, tol = jnp.asarray(epsilon, cost.dtype), jnp.asarray(tol, cost.dtype)
    return _sns(cost, a, b, eps, tol, sinkhorn_steps, max_newton_steps, k, min_kept_mass, cg_max,
                cg_rtol, epsilon_stages, float(epsilon_decay), bool(throw), bool(implicit_diff),
                solve)  # fmt: skip
