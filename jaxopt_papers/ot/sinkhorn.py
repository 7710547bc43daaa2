"""Log-domain Sinkhorn, implicitly differentiable.

Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013; the
log-domain (stabilised) form of Schmitzer 2019 / Peyré & Cuturi, "Computational Optimal
Transport" §4.4. Reference code for the conventions: ott-jax 0.6.0 ``Sinkhorn`` (``lse_mode``).

One sweep (ott's order, g first):

    g_j ← ε log b_j − ε LSE_i((f_i − C_ij)/ε),    f_i ← ε log a_i − ε LSE_j((g_j − C_ij)/ε).

After a sweep the row marginal is exact, so the L1 marginal error ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁`` is
the column error, given by the log-sum-exp that the next sweep needs (kept in the state): it is
checked every sweep at no extra cost. Stops when it is ``≤ tol`` or after ``max_steps`` sweeps;
``fixed_steps=True`` runs a ``lax.scan`` of ``max_steps`` sweeps, the iterate frozen once it
meets ``tol`` (the mode for ``vmap``; with ``implicit_diff=False`` gradients go through it).

:class:`Sinkhorn` is the solver (``init``/``step``/``run``, an
:class:`~jaxopt_papers.implicit.IterativeSolver`); :func:`sinkhorn` is a one-call wrapper.

Differences from the reference code: the error is both marginals in L1 and is checked every sweep
(ott: one marginal, every ``inner_iterations=10``; its default threshold ``1e-3`` is loose —
spec §2.7); ``epsilon`` is absolute (ott's default is ``0.05·std(C)``); potentials are returned
with ``Σf = Σg`` (the gauge of :mod:`jaxopt_papers.ot.dual`); implicit differentiation solves
the symmetric gauge-fixed system with CG / dense LU (ott: Schur complement + normal CG); no
momentum or Anderson acceleration.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import Solution
from jaxopt_papers.implicit.solver import IterativeSolver
from jaxopt_papers.ot import dual
from jaxopt_papers.ot.dual import OTProblem, Potentials

__all__ = ["Sinkhorn", "SinkhornState", "sinkhorn"]

_OWNER = "Sinkhorn"


def _checked_tol(tol: Any) -> Any:
    dual.check_positive(_OWNER, "tol", tol)  # before it becomes an array (a tracer under jit)
    return tol


def sweep(
    f: jax.Array, g: jax.Array, cost: jax.Array, a: jax.Array, b: jax.Array, epsilon: Any
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One (g, f) sweep; also returns the L1 marginal error of the incoming (f, g)."""
    lse_g = jax.nn.logsumexp((f[:, None] - cost) / epsilon, axis=0)
    error = jnp.sum(jnp.abs(jnp.exp(g / epsilon + lse_g) - b))
    g = epsilon * (jnp.log(b) - lse_g)
    f = epsilon * (jnp.log(a) - jax.nn.logsumexp((g[None, :] - cost) / epsilon, axis=1))
    return f, g, error


class SinkhornState(eqx.Module):
    """The state of :class:`Sinkhorn`.

    Attributes:
      num_steps: sweeps done.
      error: the L1 marginal error ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁`` of the current potentials.
      lse_g: ``LSE_i((f_i − C_ij)/ε)`` of the current ``f`` (the next sweep's first half).
      input_ok: the problem passed its value checks (the loop does not run otherwise).
    """

    num_steps: jax.Array
    error: jax.Array
    lse_g: jax.Array
    input_ok: jax.Array


def _solve(init_params: Potentials, solver: Sinkhorn, problem: OTProblem) -> tuple:
    if solver.fixed_steps or not solver.implicit_diff:
        params, state = solver._scan_loop(init_params, problem)
    else:
        params, state = solver._while_loop(init_params, problem)
    return dual.normalise_gauge(params), state


@eqx.filter_jit
def _compiled_run(
    solver: Sinkhorn, init_params: Potentials | None, problem: OTProblem, throw: bool
) -> Solution:
    params, state = dual.solve_potentials(_solve, solver, init_params, problem)
    stats = {
        "num_steps": state.num_steps,
        "error": state.error,
        "num_sinkhorn_steps": state.num_steps,
        "num_newton_steps": jnp.zeros((), jnp.int32),
    }
    return dual.finish_ot(params, problem, state.error <= solver.tol, solver.tol, stats,
                          state=state, throw=throw, messages=solver.messages)  # fmt: skip


class Sinkhorn(IterativeSolver):
    """Entropic OT by log-domain Sinkhorn.

    Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013, in
    the log domain (Peyré & Cuturi, "Computational Optimal Transport", §4.4); the conventions
    are ott-jax 0.6.0's ``Sinkhorn`` (``lse_mode``). One sweep (g first, as ott)::

        g_j ← ε log b_j − ε LSE_i((f_i − C_ij)/ε)
        f_i ← ε log a_i − ε LSE_j((g_j − C_ij)/ε)

    until the L1 marginal error ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁`` of the plan
    ``P_ij = exp((f_i + g_j − C_ij)/ε)`` is at most ``tol`` (checked every sweep at no extra
    cost). Gradients with respect to the cost, the weights and ε come from implicit
    differentiation of the first-order conditions. Differences from ott-jax: the error is both
    marginals and checked every sweep (ott: one marginal, every 10 sweeps, threshold 1e-3);
    ``epsilon`` is absolute (ott's default is ``0.05·std(C)``); the potentials are returned
    with ``Σf = Σg``.

    Args:
      tol: target L1 marginal error ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁``.
      max_steps: cap on the number of sweeps.
      fixed_steps: run a ``lax.scan`` of ``max_steps`` sweeps (frozen once ``tol`` is met)
        instead of a ``while`` loop: the mode for ``vmap``.
      implicit_diff: differentiate by the implicit function theorem (default), or through the
        sweeps (``False``: a ``lax.scan`` of ``max_steps`` sweeps).
      linear_solve: the backward solve (default :class:`~jaxopt_papers.implicit.LinearSolve`).
      throw: raise on failure (no convergence, invalid or non-finite input), or report it in
        ``Solution.result`` (``False``; needed under ``vmap``).

    ``run(problem, init_params=None)`` returns a :class:`~jaxopt_papers.Solution`: ``value``
    the potentials (``sol.f``, ``sol.g``), ``aux`` the plan and costs (``sol.plan``,
    ``sol.transport_cost``, ``sol.reg_cost``), ``stats`` ``num_steps``, ``error``,
    ``num_sinkhorn_steps``, ``num_newton_steps`` (0).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import OTProblem, Sinkhorn
      >>> x = jnp.linspace(0.0, 1.0, 4)
      >>> problem = OTProblem((x[:, None] - x[None]) ** 2, jnp.full(4, 0.25), jnp.full(4, 0.25),
      ...                     0.2)
      >>> solver = Sinkhorn(tol=1e-8)
      >>> sol = solver.run(problem)
      >>> params, state = None, solver.init(None, problem)  # or step by step:
      >>> while state.error > solver.tol:
      ...     params, state = solver.step(params, state, problem)
      >>> int(state.num_steps) == int(sol.num_steps), bool(sol.error <= 1e-8)
      (True, True)
    """

    tol: Any = 1e-6
    max_steps: int = eqx.field(static=True, default=10_000)
    fixed_steps: bool = eqx.field(static=True, default=False)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    symmetric_optimality: ClassVar[bool] = True
    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "Sinkhorn: the L1 marginal error did not reach `tol` within `max_steps` sweeps. "
            "Increase `max_steps` or loosen `tol`; Sinkhorn needs O(1/epsilon) sweeps, so at "
            "small `epsilon` use sinkhorn_newton_sparse (SinkhornNewtonSparse). Pass "
            "`throw=False` to get the last iterate with this result code instead."
        ),
        **dual.input_messages(_OWNER),
    }

    def __check_init__(self) -> None:
        dual.check_positive(_OWNER, "tol", self.tol)
        V.check_int(_OWNER, "max_steps", self.max_steps, low=1)

    def init(self, init_params: Potentials | None, problem: OTProblem) -> SinkhornState:
        """The state at ``init_params`` (``None``: zero potentials).

        Args:
          init_params: :class:`~jaxopt_papers.ot.Potentials` or ``None``.
          problem: the :class:`~jaxopt_papers.ot.OTProblem`.

        Returns:
          A :class:`SinkhornState` with the error of ``init_params``.
        """
        p = dual.check_init(_OWNER, init_params, problem)
        cost, a, b, eps = problem.cost, problem.a, problem.b, problem.epsilon
        lse_g = jax.nn.logsumexp((p.f[:, None] - cost) / eps, axis=0)
        lse_f = jax.nn.logsumexp((p.g[None, :] - cost) / eps, axis=1)
        error = jnp.sum(jnp.abs(jnp.exp(p.g / eps + lse_g) - b)) + jnp.sum(
            jnp.abs(jnp.exp(p.f / eps + lse_f) - a)
        )
        ok = problem.input_result() == dual.RESULTS.successful
        return SinkhornState(jnp.zeros((), jnp.int32), error, lse_g, ok)

    def step(
        self, params: Potentials, state: SinkhornState, problem: OTProblem
    ) -> tuple[Potentials, SinkhornState]:
        """One sweep (``g`` then ``f``) and the L1 marginal error of the new potentials.

        Args:
          params: the current potentials (``params.f`` must be the one ``state`` was made at).
          state: the current state.
          problem: the problem.

        Returns:
          ``(params, state)`` after the sweep.
        """
        del params  # the sweep only needs f, through state.lse_g
        cost, a, b, eps = problem.cost, problem.a, problem.b, problem.epsilon
        g = eps * (jnp.log(b) - state.lse_g)
        lse_f = jax.nn.logsumexp((g[None, :] - cost) / eps, axis=1)
        f = eps * (jnp.log(a) - lse_f)
        lse_g = jax.nn.logsumexp((f[:, None] - cost) / eps, axis=0)
        # The row marginal is exact after the f-update up to round-off (O(n) to include it).
        error = jnp.sum(jnp.abs(jnp.exp(g / eps + lse_g) - b)) + jnp.sum(
            jnp.abs(jnp.exp(f / eps + lse_f) - a)
        )
        return Potentials(f, g), SinkhornState(state.num_steps + 1, error, lse_g, state.input_ok)

    def optimality_fn(self, params: Potentials, problem: OTProblem) -> Potentials:
        """The gauge-fixed first-order conditions (zero at the normalised solution)."""
        return dual.optimality(params, self, problem)

    def _continue(self, state: SinkhornState) -> jax.Array:
        return state.input_ok & (state.num_steps < self.max_steps) & (state.error > self.tol)

    def run(self, problem: OTProblem, init_params: Potentials | None = None) -> Solution:
        """Solve ``problem`` from ``init_params`` (``None``: zero potentials).

        Args:
          problem: the :class:`~jaxopt_papers.ot.OTProblem`.
          init_params: warm-start potentials, or ``None``.

        Returns:
          The :class:`~jaxopt_papers.Solution` (see the class docstring); differentiable with
          respect to the problem's arrays.
        """
        p = dual.check_init(_OWNER, init_params, problem, zeros_if_none=False)
        return dual.run_compiled(_compiled_run, self, p, problem)


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
) -> Solution:
    """Entropic OT by log-domain Sinkhorn: ``Sinkhorn(...).run(OTProblem(cost, a, b, epsilon))``.

    Args:
      cost: the ``(n, m)`` cost matrix.
      a: the ``(n,)`` positive source weights.
      b: the ``(m,)`` positive target weights, of the same total mass as ``a``.
      epsilon: the (absolute) entropic regularisation ε.
      tol: target L1 marginal error (see :class:`Sinkhorn`).
      max_steps: cap on the number of sweeps.
      fixed_steps: a ``lax.scan`` of ``max_steps`` sweeps (the mode for ``vmap``).
      throw: raise on failure, or report it in ``Solution.result``.
      implicit_diff: implicit differentiation (default) or through the sweeps.
      linear_solve: the backward solve (default :class:`~jaxopt_papers.implicit.LinearSolve`).

    Returns:
      The :class:`~jaxopt_papers.Solution`: ``sol.plan``, ``sol.f``, ``sol.g``,
      ``sol.transport_cost``, ``sol.reg_cost``, ``sol.error``, ``sol.num_steps``,
      ``sol.result``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import sinkhorn
      >>> x = jnp.linspace(0.0, 1.0, 4)
      >>> sol = sinkhorn((x[:, None] - x[None]) ** 2, jnp.full(4, 0.25), jnp.full(4, 0.25), 0.05)
      >>> bool(sol.error <= 1e-6), sol.plan.shape
      (True, (4, 4))
      >>> [round(float(v), 4) for v in sol.plan.sum(axis=1)]  # the marginal a
      [0.25, 0.25, 0.25, 0.25]
    """
    problem = OTProblem(cost, a, b, epsilon)
    solver = Sinkhorn(
        tol=jnp.asarray(_checked_tol(tol), problem.cost.dtype), max_steps=max_steps,
        fixed_steps=bool(fixed_steps), implicit_diff=bool(implicit_diff),
        linear_solve=linear_solve, throw=bool(throw),
    )  # fmt: skip
    return solver.run(problem)
