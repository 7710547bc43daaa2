"""Sinkhorn–Newton–Sparse (SNS): Sinkhorn warm start, then Newton with a sparsified Hessian.

Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao, Ying, "Accelerating Sinkhorn
Algorithm with Sparse Newton Iterations", ICLR 2024, arXiv 2401.12253. No official code was
found; this follows the paper's Algorithm 1.

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

**Default schedule** (``schedule="auto"``). The answer (the plan) does not depend on the path,
so the default is the fastest path we measured to reach it: ε-scaling when ε is small against
the spread of the cost — ``S = 1 + ⌈log_decay(0.02·std(C)/ε)⌉`` stages (at most 4; one stage
when ``ε ≥ 0.02·std(C)``), the warm start and a first Newton stage at ``ε·decay^(S−1)``, each
later stage at ``ε`` ``decay`` (10) times smaller from the previous potentials after one
log-domain sweep, intermediate stages stopped at an L1 error of ``1e-2·Σa``. The rule uses
``std(C)`` (one pass over ``C``; unchanged by adding a constant to ``C``, unlike the mean).
Newton steps to an L1 error of 1e-9 with 1 / 2 / 3 stages (float64, n = 500; n = 1000 in
brackets):

- Gaussian clouds (the benchmark's), ε = 0.1·mean C (ε/std C = 0.11): 2 / 8 / 8;
- ε = 0.03·mean C (0.033): 5 / 8 / 10;
- ε = 0.01·mean C (0.011): 13 / 10 / 14 (14 / 8 / 13);
- ε = 3e-3·mean C (3.3e-3): 37 / 17 / 21;
- ε = 1e-3·mean C (1.1e-3): > 100 / 23 / 20 (95 / 52 / 50);
- the paper's random assignment, η = 1200 (2.9e-3): 8 / 11 / 14 (the only case measured where
  the rule costs steps);
- two digits images, L2 cost, η = 1200 (5.6e-3): 12 / 11 / 13.

``schedule="paper"`` runs the paper's Algorithm 1: one stage at ε and always the sparsified
Hessian.

Differences from the reference (the paper):

* the sparsity is a fixed number ``k`` of entries per row (default 16, i.e. ``density=16/m``);
  the paper thresholds the whole matrix to a density ``λ = 2/n`` of the 2n×2n Hessian. On the
  paper's random assignment problem (n = 500, η = 1200), 4 entries per row stall near 2e-6 and
  16 converge in 8 Newton steps like dense Newton;
* when the plan is not nearly sparse the sparsified Newton only converges linearly (Gaussian
  clouds at ε = 1e-2·mean C: the top 16 of 1000 entries hold 62% of the mass, and 200 steps
  reach 1e-7), so at the start of each stage the kept fraction of the mass is measured and, if
  it is below ``min_kept_mass`` (default 0.99), the stage and all later ones use the full
  Hessian (dense products, ~14 steps there; a plan measured sparse right after the sweep into a
  smaller ε can still need it: two digits images with an L1 cost, 700 warm-up sweeps, stall at
  1e-3 after 200 sparse Newton steps). ``min_kept_mass=0`` (or ``schedule="paper"``) always
  sparsifies, as the paper does;
* ε-scaling (the default schedule above) is not in the paper;
* the gauge (the null vector ``(1, −1)``) is eliminated with the Schur complement, which is
  positive semi-definite with the gauge as its null space (consistent right-hand side); the
  paper does not say how it handles it. CG is Jacobi-preconditioned;
* the inexact-Newton forcing term and the Sinkhorn fallback of the line search are ours; the
  CG is the library's kernel (:mod:`jaxopt_papers.linear`);
* the result is implicitly differentiable like :func:`~jaxopt_papers.ot.sinkhorn` (the sparsity
  pattern is not differentiated).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, Solution
from jaxopt_papers.implicit.linear_solve import LinearSolve, as_linear_solve
from jaxopt_papers.linear._cg import pcg
from jaxopt_papers.ot import dual
from jaxopt_papers.ot.dual import OTProblem, Potentials
from jaxopt_papers.ot.sinkhorn import sweep

__all__ = ["SNSState", "SinkhornNewtonSparse", "sinkhorn_newton_sparse"]

_OWNER = "SinkhornNewtonSparse"
_MAX_HALVINGS = 30
#: ε-scaling turns on when ε < AUTO_EPSILON · std(C): the first stage starts at or above it.
AUTO_EPSILON = 0.02
#: Intermediate ε stages stop at an L1 marginal error of ``STAGE_TOL·Σa``.
STAGE_TOL = 1e-2
#: At most this many ε stages with ``epsilon_stages=None``.
MAX_AUTO_STAGES = 4


class SNSState(eqx.Module):
    """The state of :class:`SinkhornNewtonSparse` at the current potentials.

    Attributes:
      plan, rows, cols: the plan at the current stage's ε and its row and column sums (zeros
        before the warm start, which computes them).
      error: the L1 marginal error ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁`` at the current stage's ε
        (``inf`` before the warm start).
      epsilon: the current stage's ε (the problem's ε in the last stage).
      stage, num_stages: the ε-scaling stage (from 0) and the number of stages.
      dense: this stage's Newton steps use the full Hessian (the sparsified one keeps too little
        of the plan's mass).
      num_steps, num_sinkhorn_steps, num_newton_steps, num_cg_steps: counters (``num_steps`` is
        sweeps plus Newton steps).
      input_ok: the problem passed its value checks (the loop does not run otherwise).
    """

    plan: jax.Array
    rows: jax.Array
    cols: jax.Array
    error: jax.Array
    epsilon: jax.Array
    stage: jax.Array
    num_stages: jax.Array
    dense: jax.Array
    num_steps: jax.Array
    num_sinkhorn_steps: jax.Array
    num_newton_steps: jax.Array
    num_cg_steps: jax.Array
    input_ok: jax.Array


def _checked_tol(tol: Any) -> Any:
    dual.check_positive(_OWNER, "tol", tol)  # before it becomes an array (a tracer under jit)
    return tol


def _point(f, g, cost, a, b, epsilon, plan=None):
    """The plan, its marginals and the L1 error at ``(f, g)``."""
    plan = jnp.exp(dual.log_plan(f, g, cost, epsilon)) if plan is None else plan
    rows, cols = plan.sum(1), plan.sum(0)
    error = jnp.sum(jnp.abs(a - rows)) + jnp.sum(jnp.abs(b - cols))
    return plan, rows, cols, error


def _top_k(plan: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` largest entries of each row and their columns (``top_k`` on a float32 copy:
    XLA:CPU's float64 ``top_k`` is ~30x slower; the values are gathered in full precision)."""
    _, idx = jax.lax.top_k(plan.astype(jnp.float32), k)
    return jnp.take_along_axis(plan, idx, axis=1), idx


def _warm_start(f, g, cost, a, b, epsilon, num_sweeps: int):
    """``num_sweeps`` Sinkhorn sweeps from ``(f, g)``: the first in the log domain, the rest
    incremental.

    After a log-domain sweep every entry of the plan is ``≤ 1`` (a column sums to ``b_j``), and
    each later half-sweep keeps it so, while a column sum stays ``≥ b_j·min(a)/Σb`` (a row sum
    is at most ``Σb``): ``g += ε(log b − log Pᵀ1)`` can neither overflow nor take the log of 0
    for positive weights. Same iterates as :class:`~jaxopt_papers.ot.Sinkhorn`'s sweeps, with
    two passes over the plan per sweep instead of four (max and sum of each ``logsumexp``)."""
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


def _direction(plan, rows, cols, grad_f, grad_g, error, epsilon, tol, k, cg_max, cg_rtol):
    """The (sparse if ``k < m``) Newton direction ``(Δf, Δg)`` and its CG step count."""
    m = plan.shape[1]
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
    # Schur complement S Δf = ε(∇_f D − P̃ (∇_g D / cols)), S = diag(rows) − P̃ diag(1/cols) P̃ᵀ
    # (positive semi-definite, the gauge its null space, the right-hand side consistent).
    rhs = epsilon * (grad_f - p_mv(grad_g / cols))

    def schur(u):
        return rows * u - p_mv(pt_mv(u) / cols)

    # Inexact Newton (Eisenstat–Walker forcing ~ error), but never more accurate than needed for
    # this step to reach tol: the last step would otherwise cost more CG steps than all others.
    rtol = jnp.clip(jnp.maximum(error, 0.1 * tol / error), cg_rtol, 0.1)
    target = rtol * jnp.linalg.norm(rhs)
    df, _, cg_steps, _ = pcg(schur, rhs, target, cg_max, precond=lambda r: r / rows)
    dg = (epsilon * grad_g - pt_mv(df)) / cols
    return df, dg, cg_steps


def _newton_step(f, g, plan, rows, cols, error, cost, a, b, epsilon, tol, k, dense, cg_max,
                 cg_rtol):  # fmt: skip
    """One Newton ascent step with Armijo backtracking: sparsified to ``k`` entries per row
    unless ``k ≥ m`` or ``dense`` (a traced bool: the choice is a conditional that only reads
    the plan, so XLA does not copy it).

    Returns ``(f, g, plan, rows, cols, error, cg_steps)`` at the new point."""
    m = cost.shape[1]
    grad_f, grad_g = a - rows, b - cols
    args = (plan, rows, cols, grad_f, grad_g, error, epsilon, tol)
    if k >= m:
        df, dg, cg_steps = _direction(*args, m, cg_max, cg_rtol)
    else:
        df, dg, cg_steps = jax.lax.cond(
            dense,
            lambda args: _direction(*args, m, cg_max, cg_rtol),
            lambda args: _direction(*args, k, cg_max, cg_rtol),
            args,
        )

    d0 = a @ f + b @ g - epsilon * jnp.sum(rows)
    slope = grad_f @ df + grad_g @ dg
    roundoff = 1e-13 * jnp.abs(d0)

    def accepted(alpha, trial_plan=None):
        ft, gt = f + alpha * df, g + alpha * dg
        if trial_plan is None:
            trial_plan = jnp.exp(dual.log_plan(ft, gt, cost, epsilon))
        d = a @ ft + b @ gt - epsilon * jnp.sum(trial_plan)
        return (d >= d0 + 1e-4 * alpha * slope) | ((alpha == 1.0) & (jnp.abs(d - d0) <= roundoff))

    # The full step's plan is kept (it is the next point's when accepted, the common case); the
    # halvings carry only scalars: a loop carrying the plan costs XLA:CPU a copy of it.
    full_plan = jnp.exp(dual.log_plan(f + df, g + dg, cost, epsilon))
    full_ok = accepted(jnp.ones((), cost.dtype), full_plan) & jnp.isfinite(slope)

    def damped(_):
        alpha, ok, _ = jax.lax.while_loop(
            lambda c: ~c[1] & (c[2] < _MAX_HALVINGS),
            lambda c: (0.5 * c[0], accepted(0.5 * c[0]), c[2] + 1),
            (jnp.ones((), cost.dtype), jnp.asarray(False), jnp.zeros((), jnp.int32)),
        )

        def fallback(_):  # no ascent along Δ (round-off or a bad direction): a Sinkhorn sweep
            fs, gs, _ = sweep(f, g, cost, a, b, epsilon)
            return fs, gs

        ok = ok & jnp.isfinite(slope)
        fn, gn = jax.lax.cond(ok, lambda _: (f + alpha * df, g + alpha * dg), fallback, None)
        return (fn, gn, *_point(fn, gn, cost, a, b, epsilon))

    def full(_):
        fn, gn = f + df, g + dg
        return (fn, gn, *_point(fn, gn, cost, a, b, epsilon, full_plan))

    return (*jax.lax.cond(full_ok, full, damped, None), cg_steps)


@eqx.filter_jit
def _compiled_run(
    solver: SinkhornNewtonSparse, init_params: Potentials | None, problem: OTProblem, throw: bool
):
    params, state = dual.solve_potentials(_solve, solver, init_params, problem)
    stats = {
        "num_steps": state.num_steps,
        "error": state.error,
        "num_sinkhorn_steps": state.num_sinkhorn_steps,
        "num_newton_steps": state.num_newton_steps,
        "num_cg_steps": state.num_cg_steps,
    }
    converged = (state.stage == state.num_stages - 1) & (state.error <= solver.tol)
    return dual.finish_ot(params, problem, converged, solver.tol, stats, state=state,
                          throw=throw, messages=solver.messages)  # fmt: skip


def _solve(init_params: Potentials, solver: SinkhornNewtonSparse, problem: OTProblem):
    carry = (init_params, solver.init(init_params, problem))
    if solver.fixed_steps:

        def body(c, _):
            new = solver.step(*c, problem)
            go = ~solver.done(c[1])
            return jax.tree.map(lambda n, o: jnp.where(go, n, o), new, c), None

        length = 1 + solver.max_newton_steps + solver._max_stages() - 1
        (params, state), _ = jax.lax.scan(body, carry, None, length=length)
    else:
        # The same steps as ``step``, with the warm start taken out of the loop: a loop body with
        # one branch less keeps XLA from copying the plan around a three-way switch.
        if solver.sinkhorn_steps:
            carry = jax.lax.cond(
                solver.done(carry[1]),
                lambda c: c,
                lambda c: solver._warm_step(*c, problem),
                carry,
            )
        params, state = jax.lax.while_loop(
            lambda c: ~solver.done(c[1]), lambda c: solver._stage(*c, problem), carry
        )
    return dual.normalise_gauge(params), state


class SinkhornNewtonSparse(eqx.Module):
    """Entropic OT by Sinkhorn–Newton–Sparse (Tang et al., ICLR 2024, arXiv 2401.12253).

    Stage 1 runs ``sinkhorn_steps`` Sinkhorn sweeps (the paper: 20). Stage 2 takes Newton steps
    on the concave dual ``D(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − ε Σ_ij exp((f_i + g_j − C_ij)/ε)``: the
    Hessian ``−(1/ε)[[diag(P1), P̃], [P̃ᵀ, diag(Pᵀ1)]]`` uses the plan ``P̃`` sparsified to its
    largest entries per row (16 by default, the paper's ``O(n)`` nonzeros), the direction
    ``Δ`` solves it by Jacobi-preconditioned CG on the Schur complement (the gauge removed),
    and a backtracking line search keeps ``D`` increasing (a Sinkhorn sweep when it cannot).
    By default the full Hessian replaces the sparsified one when the kept entries hold less
    than 99% of the plan's mass, and small ε is reached through ε-scaling stages; with
    ``schedule="paper"`` the solver is the paper's Algorithm 1. The module docstring
    (:mod:`jaxopt_papers.ot.sinkhorn_newton_sparse`) lists the differences from the paper.

    Args:
      tol: target L1 marginal error ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁``.
      sinkhorn_steps: warm-start Sinkhorn sweeps (the paper: 20).
      max_newton_steps: cap on the Newton steps (all stages together).
      density: fraction of each row of the plan kept in the Hessian (default ``16/m``: 16
        entries; ``1.0`` is dense Newton).
      min_kept_mass: a stage uses the sparsified Hessian only if its entries hold at least this
        fraction of the plan's mass at the stage's start, else the full Hessian, as do all later
        stages (``0``: always sparse, as the paper).
      schedule: ``"auto"`` (default): ε-scaling when the problem needs it (``epsilon_stages``)
        and the full Hessian when the sparsified one keeps too little mass; ``"paper"``: the
        paper's Algorithm 1 — one stage at ε and always the sparsified Hessian.
      epsilon_stages: number of ε stages; ``None`` (default) chooses it from
        ``ε / std(C)``: one stage when ``ε ≥ 0.02·std(C)``, else enough stages (at most 4) that
        the first, at ``ε·decay^(stages−1)``, is at or above ``0.02·std(C)`` (module docstring).
      epsilon_decay: ratio of consecutive stages' ε (default 10).
      cg_max_steps: cap on the inner CG's iterations (default ``10(n + m)``: at small ε the
        Hessian is ill-conditioned and an inexact Newton direction stalls the outer iteration).
      cg_rtol: the inner CG's floor on its relative tolerance (an inexact-Newton forcing term
        tightens it as the error falls).
      fixed_steps: run a ``lax.scan`` of ``1 + max_newton_steps + stages − 1`` steps (frozen once
        converged) instead of a ``while`` loop: the mode for ``vmap``.
      implicit_diff: differentiate by the implicit function theorem (default), or through the
        iterations (``False``: forward mode only, the inner loops are ``while`` loops).
      linear_solve: the backward solve (default :class:`~jaxopt_papers.implicit.LinearSolve`).
      throw: raise on failure (no convergence, invalid or non-finite input), or report it in
        ``Solution.result`` (``False``; needed under ``vmap``).

    ``run(problem, init_params=None)`` returns a :class:`~jaxopt_papers.Solution` as
    :class:`~jaxopt_papers.ot.Sinkhorn` does, with ``stats`` ``num_steps`` (sweeps plus Newton
    steps), ``error``, ``num_sinkhorn_steps``, ``num_newton_steps``, ``num_cg_steps``.
    ``init``/``step`` expose the iteration: the first step is the warm start, each later step one
    Newton step or, between ε stages, one Sinkhorn sweep.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import OTProblem, SinkhornNewtonSparse
      >>> x = jnp.linspace(0.0, 1.0, 6)
      >>> problem = OTProblem((x[:, None] - x[None]) ** 2, jnp.full(6, 1 / 6), jnp.full(6, 1 / 6),
      ...                     0.01)
      >>> solver = SinkhornNewtonSparse(tol=1e-9)
      >>> sol = solver.run(problem)
      >>> import equinox as eqx
      >>> step = eqx.filter_jit(solver.step)  # or step by step (jitted, or op by op)
      >>> params, state = None, solver.init(None, problem)
      >>> errors = []
      >>> while not solver.done(state):
      ...     params, state = step(params, state, problem)
      ...     errors.append(float(state.error))
      >>> int(state.num_steps) == int(sol.num_steps), errors[-1] <= 1e-9
      (True, True)
    """

    tol: Any = 1e-6
    sinkhorn_steps: int = eqx.field(static=True, default=20)
    max_newton_steps: int = eqx.field(static=True, default=200)
    density: float | None = eqx.field(static=True, default=None)
    min_kept_mass: Any = 0.99
    schedule: str = eqx.field(static=True, default="auto")
    epsilon_stages: int | None = eqx.field(static=True, default=None)
    epsilon_decay: Any = 10.0
    cg_max_steps: int | None = eqx.field(static=True, default=None)
    cg_rtol: Any = 1e-10
    fixed_steps: bool = eqx.field(static=True, default=False)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "SinkhornNewtonSparse: the L1 marginal error did not reach `tol` within "
            "`max_newton_steps` Newton steps (after `sinkhorn_steps` Sinkhorn sweeps). Increase "
            "`max_newton_steps`; at small `epsilon` start from a larger one (`epsilon_stages`, "
            '`epsilon_decay`; `schedule="paper"` has a single stage); a sparsified Hessian '
            "(`density`, `min_kept_mass=0`) can make convergence linear. Pass `throw=False` to "
            "get the last iterate with this result code instead."
        ),
        **dual.input_messages(_OWNER),
    }

    def __check_init__(self) -> None:
        o = _OWNER
        dual.check_positive(o, "tol", self.tol)
        V.check_int(o, "sinkhorn_steps", self.sinkhorn_steps, low=0)
        V.check_int(o, "max_newton_steps", self.max_newton_steps, low=1)
        V.check_real(o, "min_kept_mass", self.min_kept_mass, low=0.0, high=1.0)
        V.check_choice(o, "schedule", self.schedule, ("auto", "paper"))
        if self.epsilon_stages is not None:
            V.check_int(o, "epsilon_stages", self.epsilon_stages, low=1)
            if self.schedule == "paper" and self.epsilon_stages != 1:
                raise ValueError(
                    f'{o}: `schedule="paper"` has one ε stage, got '
                    f'`epsilon_stages={self.epsilon_stages}`; use `schedule="auto"`.'
                )
        V.check_real(o, "epsilon_decay", self.epsilon_decay, low=1.0, low_open=True)
        if self.density is not None:
            V.check_real(o, "density", self.density, low=0.0, high=1.0, low_open=True)
        if self.cg_max_steps is not None:
            V.check_int(o, "cg_max_steps", self.cg_max_steps, low=1)
        V.check_real(o, "cg_rtol", self.cg_rtol, low=0.0, high=1.0, low_open=True)

    # ------------------------------------------------------------------ static settings

    def _k(self, m: int) -> int:
        if self.density is None:
            return min(16, m)
        return max(1, min(m, math.ceil(self.density * m)))

    def _max_stages(self) -> int:
        if self.schedule == "paper":
            return 1
        return MAX_AUTO_STAGES if self.epsilon_stages is None else self.epsilon_stages

    def _num_stages(self, problem: OTProblem, cost_std: jax.Array) -> jax.Array:
        if self.schedule == "paper" or self.epsilon_stages is not None:
            return jnp.asarray(self._max_stages(), jnp.int32)
        # Stages so that the first ε, ε·decay^(stages−1), is at or above AUTO_EPSILON·std(C).
        ratio = AUTO_EPSILON * cost_std / problem.epsilon
        extra = jnp.ceil(jnp.log(jnp.maximum(ratio, 1.0)) / jnp.log(self.epsilon_decay) - 1e-9)
        stages = 1 + jnp.where(jnp.isfinite(extra), extra, 0.0)
        return jnp.clip(stages, 1, MAX_AUTO_STAGES).astype(jnp.int32)

    def _stage_epsilon(self, problem: OTProblem, stage: jax.Array, num_stages: jax.Array):
        power = (num_stages - 1 - stage).astype(problem.cost.dtype)
        return problem.epsilon * jnp.asarray(self.epsilon_decay, problem.cost.dtype) ** power

    def _dense(self, plan: jax.Array, rows: jax.Array) -> jax.Array:
        """Whether the top-k entries of a row hold too little mass: measured on at most 128
        evenly spaced rows (a top_k of the whole plan costs several Newton steps of CG)."""
        k = self._k(plan.shape[1])
        if k >= plan.shape[1]:
            return jnp.asarray(True)
        if self.schedule == "paper":
            return jnp.asarray(False)
        sample = jnp.arange(0, plan.shape[0], max(1, plan.shape[0] // 128))
        kept = jnp.sum(_top_k(plan[sample], k)[0]) / jnp.sum(rows[sample])
        return ~(kept >= self.min_kept_mass)

    def _stage_tol(self, state: SNSState, problem: OTProblem) -> jax.Array:
        last = state.stage == state.num_stages - 1
        return jnp.where(last, self.tol, jnp.maximum(self.tol, STAGE_TOL * jnp.sum(problem.a)))

    def _backward_solve(self) -> LinearSolve:
        if self.linear_solve is None:
            return LinearSolve(throw=self.throw)
        return as_linear_solve(self.linear_solve, owner=_OWNER)

    # ------------------------------------------------------------------ init / step / run

    def init(self, init_params: Potentials | None, problem: OTProblem) -> SNSState:
        """The state at ``init_params`` (``None``: zero potentials), before the warm start.

        Args:
          init_params: :class:`~jaxopt_papers.ot.Potentials` or ``None``.
          problem: the :class:`~jaxopt_papers.ot.OTProblem`.

        Returns:
          An :class:`SNSState` at the first stage's ε. With ``sinkhorn_steps > 0`` the plan is
          not computed here (the first ``step``, the warm start, does it): ``error`` is ``inf``.
        """
        p = dual.check_init(_OWNER, init_params, problem)
        cost, a, b = problem.cost, problem.a, problem.b
        cost_finite, cost_std = problem.cost_summary()
        num_stages = self._num_stages(problem, cost_std)
        zero = jnp.zeros((), jnp.int32)
        eps = self._stage_epsilon(problem, zero, num_stages)
        ok = problem.input_result(cost_finite) == RESULTS.successful
        if self.sinkhorn_steps:
            # The warm start (the first step) computes the plan: no pass over the cost here.
            plan = jnp.zeros_like(cost)
            rows, cols = jnp.zeros_like(a), jnp.zeros_like(b)
            error, dense = jnp.asarray(jnp.inf, cost.dtype), jnp.asarray(False)
        else:
            plan, rows, cols, error = _point(p.f, p.g, cost, a, b, eps)
            dense = self._dense(plan, rows)
        return SNSState(plan, rows, cols, error, eps, zero, num_stages, dense,
                        zero, zero, zero, zero, ok)  # fmt: skip

    def done(self, state: SNSState) -> jax.Array:
        """Whether ``run`` stops at ``state``: the last stage meets ``tol``, the Newton steps
        reached ``max_newton_steps``, the error is not finite, or the input is invalid.

        Args:
          state: an :class:`SNSState`.

        Returns:
          A boolean scalar array.
        """
        warmed = state.num_steps > 0 if self.sinkhorn_steps else jnp.asarray(True)
        last = state.stage == state.num_stages - 1
        converged = warmed & last & (state.error <= self.tol)
        broken = warmed & ~jnp.isfinite(state.error)
        capped = state.num_newton_steps >= self.max_newton_steps
        return ~state.input_ok | converged | broken | capped

    def step(
        self, params: Potentials | None, state: SNSState, problem: OTProblem
    ) -> tuple[Potentials, SNSState]:
        """One step: the warm start (first step), a Sinkhorn sweep into the next ε stage (when
        this stage meets its tolerance), or a Newton step.

        Args:
          params: the current potentials (``None`` before the first step means zeros).
          state: the current state.
          problem: the problem.

        Returns:
          ``(params, state)`` after the step.
        """
        p = dual.check_init(_OWNER, params, problem)
        index = jnp.where(self._advance(state, problem), 1, 2)
        if self.sinkhorn_steps:
            index = jnp.where(state.num_steps == 0, 0, index)
        branches = [
            lambda p, s: self._warm_step(p, s, problem),
            lambda p, s: self._next_stage(p, s, problem),
            lambda p, s: self._newton(p, s, problem),
        ]
        return jax.lax.switch(index, branches, p, state)

    def _advance(self, state: SNSState, problem: OTProblem) -> jax.Array:
        """Whether the next step moves to the next ε stage (this one met its tolerance)."""
        return (state.error <= self._stage_tol(state, problem)) & (
            state.stage < state.num_stages - 1
        )

    def _stage(self, p: Potentials, state: SNSState, problem: OTProblem):
        """After the warm start: the sweep into the next ε stage, or this stage's Newton steps
        until it meets its tolerance or ``done`` (the same iterates as repeated ``step``; no
        conditional around each Newton step, which would make XLA copy the plan)."""

        def newton_loop(c):
            return jax.lax.while_loop(
                lambda c: ~self.done(c[1]) & ~self._advance(c[1], problem),
                lambda c: self._newton(*c, problem),
                c,
            )

        if self._max_stages() == 1:
            return newton_loop((p, state))
        return jax.lax.cond(
            self._advance(state, problem),
            lambda c: self._next_stage(*c, problem),
            newton_loop,
            (p, state),
        )

    def _warm_step(self, p: Potentials, state: SNSState, problem: OTProblem):
        cost, a, b = problem.cost, problem.a, problem.b
        f, g = _warm_start(p.f, p.g, cost, a, b, state.epsilon, self.sinkhorn_steps)
        plan, rows, cols, error = _point(f, g, cost, a, b, state.epsilon)
        n = jnp.asarray(self.sinkhorn_steps, jnp.int32)
        state = eqx.tree_at(
            lambda s: (s.plan, s.rows, s.cols, s.error, s.dense, s.num_steps,
                       s.num_sinkhorn_steps),
            state, (plan, rows, cols, error, self._dense(plan, rows), state.num_steps + n,
                    state.num_sinkhorn_steps + n),
        )  # fmt: skip
        return Potentials(f, g), state

    def _next_stage(self, p: Potentials, state: SNSState, problem: OTProblem):
        cost, a, b = problem.cost, problem.a, problem.b
        stage = state.stage + 1
        eps = self._stage_epsilon(problem, stage, state.num_stages)
        f, g, _ = sweep(p.f, p.g, cost, a, b, eps)  # log domain: the plan cannot overflow
        plan, rows, cols, error = _point(f, g, cost, a, b, eps)
        state = eqx.tree_at(
            lambda s: (s.plan, s.rows, s.cols, s.error, s.epsilon, s.stage, s.dense,
                       s.num_steps, s.num_sinkhorn_steps),
            state, (plan, rows, cols, error, eps, stage, state.dense | self._dense(plan, rows),
                    state.num_steps + 1, state.num_sinkhorn_steps + 1),
        )  # fmt: skip
        return Potentials(f, g), state

    def _newton(self, p: Potentials, state: SNSState, problem: OTProblem):
        cost, a, b = problem.cost, problem.a, problem.b
        n, m = cost.shape
        cg_max = 10 * (n + m) if self.cg_max_steps is None else self.cg_max_steps
        out = _newton_step(p.f, p.g, state.plan, state.rows, state.cols, state.error, cost, a, b,
                           state.epsilon, self._stage_tol(state, problem), self._k(m),
                           state.dense, cg_max, self.cg_rtol)  # fmt: skip
        f, g, plan, rows, cols, error, cg = out
        state = eqx.tree_at(
            lambda s: (s.plan, s.rows, s.cols, s.error, s.num_steps, s.num_newton_steps,
                       s.num_cg_steps),
            state, (plan, rows, cols, error, state.num_steps + 1, state.num_newton_steps + 1,
                    state.num_cg_steps + cg),
        )  # fmt: skip
        return Potentials(f, g), state

    def optimality_fn(self, params: Potentials, problem: OTProblem) -> Potentials:
        """The gauge-fixed first-order conditions (zero at the normalised solution)."""
        return dual.optimality(params, self, problem)

    def run(self, problem: OTProblem, init_params: Potentials | None = None) -> Solution:
        """Solve ``problem`` from ``init_params`` (``None``: zero potentials).

        Args:
          problem: the :class:`~jaxopt_papers.ot.OTProblem`.
          init_params: potentials the warm start starts from, or ``None``.

        Returns:
          The :class:`~jaxopt_papers.Solution` (see the class docstring); differentiable with
          respect to the problem's arrays.
        """
        p = dual.check_init(_OWNER, init_params, problem, zeros_if_none=False)
        return dual.run_compiled(_compiled_run, self, p, problem)


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
    schedule: str = "auto",
    epsilon_stages: int | None = None,
    epsilon_decay: float = 10.0,
    cg_max_steps: int | None = None,
    cg_rtol: float = 1e-10,
    fixed_steps: bool = False,
    throw: bool = True,
    implicit_diff: bool = True,
    linear_solve: Any = None,
) -> Solution:
    """Entropic OT by Sinkhorn–Newton–Sparse: ``SinkhornNewtonSparse(...).run(OTProblem(...))``.

    Args:
      cost: ``(n, m)`` cost matrix; a, b: positive weights of equal total mass.
      epsilon: the (absolute) entropic regularisation ε.
      tol: target L1 marginal error (see :class:`SinkhornNewtonSparse` for this and the
        following arguments).
      sinkhorn_steps: warm-start Sinkhorn sweeps.
      max_newton_steps: cap on the Newton steps.
      density: fraction of each row kept in the sparsified Hessian.
      min_kept_mass: the sparsified Hessian's least share of the plan's mass.
      schedule: ``"auto"`` or ``"paper"``.
      epsilon_stages: number of ε stages (``None``: automatic).
      epsilon_decay: ratio of consecutive stages' ε.
      cg_max_steps: cap on the inner CG's iterations.
      cg_rtol: the inner CG's relative-tolerance floor.
      fixed_steps: a fixed number of steps (for ``vmap``).
      throw: raise on failure instead of returning the code.
      implicit_diff: implicit (default) or unrolled differentiation.
      linear_solve: the backward solve.

    Returns:
      The :class:`~jaxopt_papers.Solution`: ``sol.plan``, ``sol.f``, ``sol.g``,
      ``sol.transport_cost``, ``sol.reg_cost``, ``sol.error``, ``sol.num_newton_steps``,
      ``sol.result`` ...

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import sinkhorn_newton_sparse
      >>> x = jnp.linspace(0.0, 1.0, 6)
      >>> u = jnp.full(6, 1 / 6)
      >>> sol = sinkhorn_newton_sparse((x[:, None] - x[None]) ** 2, u, u, 1e-3, tol=1e-9)
      >>> bool(sol.error <= 1e-9), bool(abs(sol.plan.sum() - 1) < 1e-9)
      (True, True)
    """
    problem = OTProblem(cost, a, b, epsilon)
    dt = problem.cost.dtype
    solver = SinkhornNewtonSparse(
        tol=jnp.asarray(_checked_tol(tol), dt), sinkhorn_steps=sinkhorn_steps,
        max_newton_steps=max_newton_steps, density=density, min_kept_mass=min_kept_mass,
        schedule=schedule, epsilon_stages=epsilon_stages, epsilon_decay=epsilon_decay,
        cg_max_steps=cg_max_steps, cg_rtol=cg_rtol, fixed_steps=bool(fixed_steps),
        implicit_diff=bool(implicit_diff), linear_solve=linear_solve, throw=bool(throw),
    )  # fmt: skip
    return solver.run(problem)
