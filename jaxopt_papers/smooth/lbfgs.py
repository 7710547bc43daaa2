"""L-BFGS and BFGS with a zoom (strong Wolfe) or Hager–Zhang line search, implicitly
differentiable.

Nocedal & Wright, *Numerical Optimization*, 2nd ed. (2006): BFGS §6.1, L-BFGS §7.2 (Algorithms
7.4–7.5); Liu & Nocedal, "On the limited memory BFGS method for large scale optimization",
Math. Programming 1989. Reference code: jaxopt 0.8.5's ``LBFGS`` and ``BFGS``.

Minimises ``fun(x, *args, **kwargs)`` over ``x`` (a pytree of arrays; L-BFGS also takes complex
arrays, minimising a real function of them). From ``x_k`` with gradient ``g_k``:

- direction ``d_k = −H_k ḡ_k``, where ``ḡ`` is the complex conjugate (the gradient itself for
  real parameters) and ``H_k`` approximates the inverse Hessian:

  * L-BFGS: ``H_k`` is applied by the two-loop recursion over the last ``history_size`` pairs
    ``s_i = x_{i+1} − x_i``, ``y_i = conj(g_{i+1} − g_i)``, ``ρ_i = 1/Re⟨s_i, y_i⟩``, from
    ``H⁰ = γ_k I`` with ``γ_k = Re⟨s, y⟩/‖y‖²`` of the newest pair (``use_gamma=True``) or 1;
  * BFGS: ``H_{k+1} = (I − ρ s yᵀ) H_k (I − ρ y sᵀ) + ρ s sᵀ`` (a dense matrix over the
    flattened parameters) from ``H_0 = I``;

- ``x_{k+1} = x_k + t_k d_k`` with ``t_k`` from the line search (``linesearch="zoom"``: strong
  Wolfe, ``c₁ = 1e-4``, ``c₂ = 0.9``; ``"hager-zhang"``: approximate Wolfe; see
  :mod:`jaxopt_papers.smooth._linesearch`), whose first trial is ``min(1.5·t_{k−1}, 1)``
  (``linesearch_init="increase"``; restarted at ``max_stepsize = 1`` when ``t_{k−1} ≤ 1e-6``),
  or the fixed ``stepsize``;
- stop when ``error = ‖∇f(x_{k+1})‖₂ ≤ tol`` or after ``max_steps`` steps.

``run(init_params, *args, **kwargs)`` returns a :class:`~jaxopt_papers.Solution`, differentiable
with respect to ``args`` and ``kwargs`` by implicit differentiation of ``∇ₓ fun(x, *args,
**kwargs) = 0`` (its Jacobian, the Hessian, is symmetric: the backward solve may use CG). Stats:
``num_steps``, ``error``, ``objective`` (the final ``f``), ``num_fun_evals`` (=
``num_grad_evals``: each evaluation computes both), ``num_linesearch_steps``.

Differences from jaxopt:

- ``tol=1e-6`` by default (jaxopt: ``1e-3``): an implicit gradient is only as accurate as the
  solution, and the library's implicit differentiation refuses answers whose optimality residual
  is far from zero. ``maxiter`` is called ``max_steps``; ``stepsize=None`` (not ``<= 0``) means
  a line search.
- The zoom line search evaluates ``f`` once per trial and keeps its fallback point (jaxopt
  evaluates it again); the Hager–Zhang option makes one secant step per evaluation (jaxopt:
  "secant²"), so its trial steps differ from jaxopt's.
- With the zoom search on real parameters the iterates and iteration counts are jaxopt's (a
  test compares them). On complex parameters jaxopt's first line search ends at another step
  than its own ``ZoomLineSearch`` run on the same direction, which this one reproduces; the
  solutions agree, the iteration counts differ.
- BFGS skips the update when ``Re⟨s, y⟩ ≤ 0`` (jaxopt only when ``1/⟨s, y⟩`` is not finite),
  keeping ``H`` positive definite; BFGS takes real parameters only (as jaxopt's).
- ``history_size`` must be ``>= 1`` (jaxopt's ``0`` is gradient descent with a line search:
  use :class:`~jaxopt_papers.smooth.GradientDescent` or ``history_size=1``).
- Result codes, ``throw`` and ``Solution``; a failed line search with
  ``stop_if_linesearch_fails=True`` is ``RESULTS.stagnation`` (jaxopt stops silently).
  ``verbose``, ``jit``, ``unroll`` and warm starts from an ``OptStep`` are not offered; the
  unrolled mode is ``implicit_diff=False``.
- Bad input raises at trace time naming the argument: integer or empty ``init_params``, a
  ``fun`` that cannot be called with ``run``'s arguments or does not return a real scalar, and
  options out of range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_papers import _validation as V
from jaxopt_papers.smooth._base import (
    SmoothSolver,
    axpy,
    check_params,
    messages,
    real_dtype,
    tree_norm,
)
from jaxopt_papers.smooth._linesearch import rdot

__all__ = ["BFGS", "LBFGS", "BFGSState", "LBFGSState"]


class LBFGSState(eqx.Module):
    """State of :class:`LBFGS`.

    Attributes:
      num_steps, error: iteration count and ``‖∇f‖₂``.
      value, grad, aux: ``f``, ``∇f`` (and ``fun``'s aux with ``has_aux``) at the iterate.
      stepsize: the last step size.
      s_history, y_history: pytrees with a leading ``history_size`` axis (a circular buffer).
      rho_history: ``1/Re⟨s_i, y_i⟩`` (0 for empty slots).
      gamma: scale of the initial inverse Hessian.
      failed_linesearch: whether the last line search failed.
      num_fun_evals, num_linesearch_steps: counters.
    """

    num_steps: jax.Array
    error: jax.Array
    value: jax.Array
    grad: Any
    stepsize: jax.Array
    s_history: Any
    y_history: Any
    rho_history: jax.Array
    gamma: jax.Array
    failed_linesearch: jax.Array
    num_fun_evals: jax.Array
    num_linesearch_steps: jax.Array
    aux: Any = None


class BFGSState(eqx.Module):
    """State of :class:`BFGS`.

    Attributes:
      num_steps: the iteration count.
      error: ``‖∇f‖₂`` at the iterate.
      value: ``f`` at the iterate.
      grad: ``∇f`` at the iterate.
      stepsize: the last step size.
      H: the dense inverse-Hessian approximation over the flattened parameters.
      failed_linesearch: whether the last line search failed.
      num_fun_evals: objective evaluations so far.
      num_linesearch_steps: line-search trials so far.
      aux: ``fun``'s auxiliary output with ``has_aux`` (else ``None``).
    """

    num_steps: jax.Array
    error: jax.Array
    value: jax.Array
    grad: Any
    stepsize: jax.Array
    H: jax.Array
    failed_linesearch: jax.Array
    num_fun_evals: jax.Array
    num_linesearch_steps: jax.Array
    aux: Any = None


def _two_loop(
    q: Any, s_hist: Any, y_hist: Any, rho: jax.Array, gamma: jax.Array, start: jax.Array
) -> Any:
    """``H q`` by the two-loop recursion; ``start`` is the slot of the oldest pair."""
    m = rho.shape[0]
    order = (start + jnp.arange(m)) % m  # oldest to newest

    def pick(tree: Any, i: jax.Array) -> Any:
        return jax.tree.map(lambda h: h[i], tree)

    def newest_first(r: Any, i: jax.Array) -> tuple[Any, jax.Array]:
        a = rho[i] * rdot(pick(s_hist, i), r)
        return axpy(-a, pick(y_hist, i), r), a

    r, alphas = jax.lax.scan(newest_first, q, order, reverse=True)
    r = jax.tree.map(lambda v: (gamma * v).astype(v.dtype), r)

    def oldest_first(r: Any, ia: tuple) -> tuple[Any, None]:
        i, a = ia
        b = rho[i] * rdot(pick(y_hist, i), r)
        return axpy(a - b, pick(s_hist, i), r), None

    r, _ = jax.lax.scan(oldest_first, r, (order, alphas))
    return r


class _QuasiNewton(SmoothSolver):
    fun: Callable = eqx.field(static=True)
    value_and_grad: bool = eqx.field(static=True, default=False)
    has_aux: bool = eqx.field(static=True, default=False)
    tol: float = 1e-6
    max_steps: int = eqx.field(static=True, default=500)
    stepsize: Any = None
    linesearch: str = eqx.field(static=True, default="zoom")
    linesearch_init: str = eqx.field(static=True, default="increase")
    stop_if_linesearch_fails: bool = eqx.field(static=True, default=False)
    maxls: int = eqx.field(static=True, default=30)
    increase_factor: float = 1.5
    max_stepsize: float = 1.0
    min_stepsize: float = 1e-6
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``∇ₓ fun(params, *args, **kwargs)`` (jaxopt's ``optimality_fun``)."""
        return self.gradient(params, *args, **kwargs)

    def run(self, init_params: Any, *args: Any, **kwargs: Any) -> Any:
        """Minimise ``fun`` from ``init_params``; differentiable in ``args`` and ``kwargs``.

        Args:
          init_params: the starting point (a pytree of arrays).
          *args, **kwargs: passed to ``fun`` (every array among them can be differentiated).

        Returns:
          A :class:`~jaxopt_papers.Solution`: ``params``, ``result``, ``stats`` (``num_steps``,
          ``error``, ``objective``, ``num_fun_evals``, ``num_grad_evals``,
          ``num_linesearch_steps``), the final ``state`` and ``fun``'s ``aux``
          (``has_aux=True``).
        """
        return super().run(init_params, *args, **kwargs)


class LBFGS(_QuasiNewton):
    """Limited-memory BFGS (see the module docstring for the equations and defaults).

    Args:
      fun: objective ``fun(x, *args, **kwargs) -> scalar`` (``(value, grad)`` with
        ``value_and_grad=True``; ``(value, aux)`` with ``has_aux=True``, the final aux being
        ``Solution.aux``).
      value_and_grad, has_aux: the form of ``fun``'s output.
      tol, max_steps: stop when ``‖∇f‖₂ ≤ tol`` or after ``max_steps`` iterations.
      stepsize: ``None`` for a line search, else a fixed step ``> 0`` or a schedule
        ``num_steps -> step``.
      linesearch: ``"zoom"`` (strong Wolfe) or ``"hager-zhang"``.
      linesearch_init: first trial step: ``"increase"`` (``increase_factor`` × the last step,
        capped at ``max_stepsize``; ``max_stepsize`` again once it fell below
        ``min_stepsize``), ``"max"`` or ``"current"``.
      stop_if_linesearch_fails: stop (``RESULTS.stagnation``) when a line search fails.
      maxls: most evaluations per line search.
      increase_factor, max_stepsize, min_stepsize: see ``linesearch_init``.
      history_size: number of ``(s, y)`` pairs kept (``>= 1``).
      use_gamma: scale the initial inverse Hessian by ``Re⟨s, y⟩/‖y‖²``.
      implicit_diff: implicit differentiation (``True``) or the unrolled ``lax.scan``.
      linear_solve: backward solve (``None``: ``LinearSolve(throw=throw)``).
      throw: raise on failure, or return the result code.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.smooth import LBFGS
      >>> def rosenbrock(x):
      ...     return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
      >>> sol = LBFGS(rosenbrock, tol=1e-8).run(jnp.zeros(5))
      >>> [round(float(v), 4) for v in sol.params]
      [1.0, 1.0, 1.0, 1.0, 1.0]
    """

    history_size: int = eqx.field(static=True, default=10)
    use_gamma: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = messages("L-BFGS", "the gradient norm")

    def __check_init__(self) -> None:
        V.check_int("LBFGS", "history_size", self.history_size, low=1)

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        check_params("LBFGS", init_params, allow_complex=True)
        self._check_fun(init_params, *args, **kwargs)

    def init(self, init_params: Any, *args: Any, **kwargs: Any) -> LBFGSState:
        """The state at ``init_params`` (one evaluation of ``fun``).

        Args:
          init_params: the starting point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          The solver's state.
        """
        dtype = real_dtype(check_params("LBFGS", init_params, allow_complex=True))
        value, grad, aux = self.value_grad_aux(init_params, *args, **kwargs)
        m = self.history_size
        hist = jax.tree.map(
            lambda v: jnp.zeros((m, *jnp.shape(v)), jnp.result_type(v)), init_params
        )
        return LBFGSState(
            num_steps=jnp.asarray(0, jnp.int32),
            error=jnp.asarray(jnp.inf, dtype),
            value=jnp.asarray(value, dtype),
            grad=grad,
            stepsize=jnp.asarray(self.max_stepsize, dtype),
            s_history=hist,
            y_history=hist,
            rho_history=jnp.zeros(m, dtype),
            gamma=jnp.asarray(1.0, dtype),
            failed_linesearch=jnp.asarray(False),
            num_fun_evals=jnp.asarray(1, jnp.int32),
            num_linesearch_steps=jnp.asarray(0, jnp.int32),
            aux=aux,
        )

    def step(
        self, params: Any, state: LBFGSState, *args: Any, **kwargs: Any
    ) -> tuple[Any, LBFGSState]:
        """One L-BFGS iteration.

        Args:
          params: the current iterate.
          state: the current state.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``(params, state)`` after the step.
        """
        dtype = state.rho_history.dtype
        slot = state.num_steps % self.history_size  # the oldest pair, overwritten below
        q = jax.tree.map(lambda g: -jnp.conj(g), state.grad)
        direction = _two_loop(
            q, state.s_history, state.y_history, state.rho_history, state.gamma, slot
        )
        ls, aux = self._search(
            params, state.value, state.grad, direction, state.stepsize, state.num_steps, args,
            kwargs,
        )  # fmt: skip
        s = jax.tree.map(jnp.subtract, ls.params, params)
        y = jax.tree.map(lambda a, b: jnp.conj(a - b), ls.grad, state.grad)
        sy = rdot(s, y)
        rho = jnp.where(sy == 0, 0.0, 1.0 / sy).astype(dtype)

        def put(h: Any, v: Any) -> Any:
            return jax.tree.map(lambda a, b: a.at[slot].set(b), h, v)

        s_hist, y_hist = put(state.s_history, s), put(state.y_history, y)
        if self.use_gamma:
            yy = rdot(y, y)
            gamma = jnp.where(yy > 0, sy / yy, 1.0).astype(dtype)
        else:
            gamma = state.gamma
        new = LBFGSState(
            num_steps=state.num_steps + 1,
            error=tree_norm(ls.grad).astype(dtype),
            value=jnp.asarray(ls.value, dtype),
            grad=ls.grad,
            stepsize=jnp.asarray(ls.stepsize, dtype),
            s_history=s_hist,
            y_history=y_hist,
            rho_history=state.rho_history.at[slot].set(rho),
            gamma=gamma,
            failed_linesearch=ls.failed,
            num_fun_evals=state.num_fun_evals + ls.num_steps + self.has_aux,
            num_linesearch_steps=state.num_linesearch_steps + ls.num_steps,
            aux=aux if self.has_aux else state.aux,
        )
        return ls.params, new


class BFGS(_QuasiNewton):
    """BFGS with a dense inverse Hessian (see the module docstring for equations and defaults).

    Args:
      fun, value_and_grad, has_aux, tol, max_steps, stepsize, linesearch, linesearch_init,
        stop_if_linesearch_fails, maxls, increase_factor, max_stepsize, min_stepsize,
        implicit_diff, linear_solve, throw: as for :class:`LBFGS`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.smooth import BFGS
      >>> A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
      >>> fun = lambda x, b: 0.5 * x @ A @ x - b @ x
      >>> sol = BFGS(fun, tol=1e-10).run(jnp.zeros(2), jnp.array([1.0, 1.0]))
      >>> [round(float(v), 6) for v in sol.params]  # A⁻¹ b
      [0.2, 0.4]
    """

    messages: ClassVar[dict[str, str]] = messages("BFGS", "the gradient norm")

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        check_params("BFGS", init_params, allow_complex=False)
        self._check_fun(init_params, *args, **kwargs)

    def init(self, init_params: Any, *args: Any, **kwargs: Any) -> BFGSState:
        """The state at ``init_params`` (one evaluation of ``fun``).

        Args:
          init_params: the starting point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          The solver's state.
        """
        dtype = check_params("BFGS", init_params, allow_complex=False)
        value, grad, aux = self.value_grad_aux(init_params, *args, **kwargs)
        n = ravel_pytree(init_params)[0].size
        return BFGSState(
            num_steps=jnp.asarray(0, jnp.int32),
            error=jnp.asarray(jnp.inf, dtype),
            value=jnp.asarray(value, dtype),
            grad=grad,
            stepsize=jnp.asarray(self.max_stepsize, dtype),
            H=jnp.eye(n, dtype=dtype),
            failed_linesearch=jnp.asarray(False),
            num_fun_evals=jnp.asarray(1, jnp.int32),
            num_linesearch_steps=jnp.asarray(0, jnp.int32),
            aux=aux,
        )

    def step(
        self, params: Any, state: BFGSState, *args: Any, **kwargs: Any
    ) -> tuple[Any, BFGSState]:
        """One BFGS iteration.

        Args:
          params: the current iterate.
          state: the current state.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``(params, state)`` after the step.
        """
        dtype = state.H.dtype
        g, unravel = ravel_pytree(state.grad)
        direction = unravel(-(state.H @ g))
        ls, aux = self._search(
            params, state.value, state.grad, direction, state.stepsize, state.num_steps, args,
            kwargs,
        )  # fmt: skip
        s = ravel_pytree(ls.params)[0] - ravel_pytree(params)[0]
        y = ravel_pytree(ls.grad)[0] - g
        sy = s @ y
        rho = 1.0 / sy
        Hy = state.H @ y
        H = (
            state.H
            - rho * (jnp.outer(s, Hy) + jnp.outer(Hy, s))
            + (rho * rho * (y @ Hy) + rho) * jnp.outer(s, s)
        )
        H = jnp.where((sy > 0) & jnp.isfinite(rho), H, state.H)
        new = BFGSState(
            num_steps=state.num_steps + 1,
            error=jnp.linalg.norm(ravel_pytree(ls.grad)[0]).astype(dtype),
            value=jnp.asarray(ls.value, dtype),
            grad=ls.grad,
            stepsize=jnp.asarray(ls.stepsize, dtype),
            H=H,
            failed_linesearch=ls.failed,
            num_fun_evals=state.num_fun_evals + ls.num_steps + self.has_aux,
            num_linesearch_steps=state.num_linesearch_steps + ls.num_steps,
            aux=aux if self.has_aux else state.aux,
        )
        return ls.params, new
