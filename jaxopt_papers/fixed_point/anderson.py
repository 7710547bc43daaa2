"""Anderson acceleration of fixed-point iterations, and of any solver's ``step``.

Anderson (1965), "Iterative procedures for nonlinear integral equations"; the variant of
Walker & Ni (2011) and Pollock & Rebholz (2019, arXiv 1909.04638), as in jaxopt 0.8.5's
``AndersonAcceleration`` and ``AndersonWrapper``.

The solver keeps the last ``m = history_size`` points ``x_i`` at which the map was applied and
their residuals ``r_i = T(x_i) − x_i``, with the Gram matrix ``G = [⟨r_i, r_j⟩]``. Every
``mixing_frequency`` steps, once the history is full, it extrapolates

- ``α = argmin ‖Σ α_i r_i‖²`` s.t. ``Σ α_i = 1``, regularised: ``α = w / Σw`` with
  ``(G + ridge·I) w = 1``;
- ``x̄ = Σ α_i x_i + β Σ α_i r_i`` (``beta`` is the mixing parameter; ``β = 1`` is undamped);

and otherwise takes ``x̄ = x_k``. Then ``x_{k+1} = T(x̄)``, the pair ``(x̄, T(x̄) − x̄)``
replaces the oldest entry of the history, and ``error_{k+1} = ‖T(x̄) − x̄‖₂``. Stop when
``error ≤ tol`` or after ``max_steps`` steps.

:class:`AndersonWrapper` applies the same extrapolation to any library solver's ``step``
(``T`` = one step of the wrapped solver, e.g. proximal gradient); after an extrapolation the
wrapped solver is restarted (``solver.init``) at ``x̄``, and the stopping quantity is the wrapped
solver's own ``error``.

Gradients: implicit, through the fixed point ``T(x, θ) − x = 0`` (:class:`AndersonAcceleration`)
or the wrapped solver's own optimality condition (:class:`AndersonWrapper`), with respect to
every floating-point array in ``args``/``kwargs``.

Differences from jaxopt:

- Defaults are jaxopt's: ``history_size=5``, ``mixing_frequency=1`` (wrapper:
  ``history_size``), ``beta=1``, ``ridge=1e-5``, ``max_steps=100``, ``tol=1e-5`` (the wrapper
  takes ``tol``/``max_steps`` from the wrapped solver unless given); ``maxiter`` is called
  ``max_steps``.
- The constrained least-squares problem is solved as ``(G + ridge I) w = 1``, ``α = w/Σw``,
  which is jaxopt's bordered system eliminated by hand; the iterates agree to rounding.
- ``ridge`` is absolute, as in jaxopt, and jaxopt's default ``1e-5`` dominates ``G`` once
  ``‖r‖² ≲ 1e-5``: the weights then tend to a plain average of the history, and on slowly
  contracting problems Anderson needs *more* steps than plain iteration (see
  ``benchmarks/fixed_point.py``). ``relative_ridge=True`` (not in jaxopt) scales ``ridge`` by
  the mean squared residual ``tr(G)/m`` and keeps the acceleration down to small residuals.
- Inner products of pytrees run over all leaves at once (as in jaxopt).
- ``run`` returns :class:`~jaxopt_papers.Solution` with a result code and honours ``throw``;
  the backward solve is :class:`~jaxopt_papers.implicit.LinearSolve` and is checked.
- Bad input raises at trace time naming the argument (``history_size < 2``,
  ``mixing_frequency < 1``, negative ``ridge``, a ``fixed_point_fun`` returning another
  structure or shape, ...); the wrapper's ``solver`` must be one of the library's
  :class:`~jaxopt_papers.implicit.IterativeSolver`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.fixed_point import _common as C
from jaxopt_papers.implicit.solver import IterativeSolver

__all__ = ["AndersonAcceleration", "AndersonState", "AndersonWrapper", "AndersonWrapperState"]


# ---------------------------------------------------------------------------- the mixing step


def _history(params: Any, m: int) -> Any:
    return jax.tree.map(lambda v: jnp.broadcast_to(v, (m, *jnp.shape(v))), params)


def _extrapolate(
    xs: Any, rs: Any, gram: jax.Array, ridge: Any, beta: Any, relative: bool = False
) -> Any:
    """``Σα_i x_i + β Σα_i r_i`` with ``α ∝ (G + ridge I)⁻¹ 1`` summing to one.

    ``relative``: the ridge is scaled by the mean squared residual ``tr(G)/m``."""
    m = gram.shape[0]
    reg = ridge * jnp.trace(gram) / m if relative else ridge
    w = jnp.linalg.solve(gram + reg * jnp.eye(m, dtype=gram.dtype), jnp.ones(m, gram.dtype))
    alpha = w / jnp.sum(w)
    mix = lambda h: jnp.tensordot(alpha.astype(h.dtype), h, axes=1)
    return jax.tree.map(lambda x, r: mix(x) + beta * mix(r), xs, rs)


def _record(xs: Any, rs: Any, gram: jax.Array, pos: jax.Array, x: Any, r: Any) -> tuple:
    """Put ``(x, r)`` at slot ``pos`` of the history and update the Gram matrix there."""
    xs = jax.tree.map(lambda h, v: h.at[pos].set(v), xs, x)
    rs = jax.tree.map(lambda h, v: h.at[pos].set(v), rs, r)
    row = jax.vmap(lambda h: optax.tree.vdot(h, r))(rs).astype(gram.dtype)
    gram = gram.at[pos, :].set(row).at[:, pos].set(row)
    return xs, rs, gram, jnp.sqrt(jnp.maximum(gram[pos, pos], 0))


def _use_mixing(num_steps: jax.Array, mixing_frequency: int, history_size: int) -> jax.Array:
    return (num_steps % mixing_frequency == 0) & (num_steps >= history_size)


def _check_mixing(owner: str, history_size: Any, mixing_frequency: Any, beta: Any, ridge: Any):
    V.check_int(owner, "history_size", history_size, low=2)
    if mixing_frequency is not None:
        V.check_int(owner, "mixing_frequency", mixing_frequency, low=1)
    V.check_real(owner, "beta", beta)
    V.check_real(owner, "ridge", ridge, low=0.0)


# ---------------------------------------------------------------------- AndersonAcceleration


class AndersonState(eqx.Module):
    """State of :class:`AndersonAcceleration`.

    Attributes:
      num_steps: iterations done.
      error: ``‖T(x̄) − x̄‖₂`` of the last step (``inf`` before the first).
      params_history, residuals_history: the last ``history_size`` points ``x̄_i`` and their
        residuals, each leaf stacked on a leading axis (a ring buffer).
      residual_gram: ``[⟨r_i, r_j⟩]``, shape ``(history_size, history_size)``.
      aux: ``fixed_point_fun``'s aux at the last point (``has_aux=True``), else ``None``.
      num_fun_evals: applications of ``fixed_point_fun``.
    """

    num_steps: jax.Array
    error: jax.Array
    params_history: Any
    residuals_history: Any
    residual_gram: jax.Array
    aux: Any
    num_fun_evals: jax.Array


class AndersonAcceleration(IterativeSolver):
    """Anderson-accelerated fixed-point iteration (see the module docstring).

    Args:
      fixed_point_fun: ``T(x, *args, **kwargs)`` returning a pytree like ``x`` (or
        ``(value, aux)`` with ``has_aux=True``).
      history_size: number of past points mixed (``m >= 2``).
      mixing_frequency: extrapolate every this many steps (plain steps in between).
      beta: mixing parameter (``1``: undamped; ``< 1`` damps).
      max_steps, tol: stop when ``‖T(x̄) − x̄‖₂ ≤ tol`` or after ``max_steps`` steps.
      ridge: regularisation of the Gram matrix (increase it if the solver returns NaN). It
        is absolute, as in jaxopt: once ``‖r‖²`` falls well below ``ridge`` the weights tend to
        a plain average of the history and the acceleration is lost, so scale it with the
        squared residuals of the problem (e.g. ``1e-12`` for residuals of order ``1e-4``), or
        use ``relative_ridge``.
      relative_ridge: scale ``ridge`` by the mean squared residual of the history
        (``tr(G)/m``), which keeps the regularisation in proportion as the residuals shrink
        (not in jaxopt; e.g. ``ridge=1e-10, relative_ridge=True``).
      has_aux: ``fixed_point_fun`` returns ``(value, aux)``.
      implicit_diff: implicit differentiation (``True``) or through the unrolled iterations.
      linear_solve: backward solve (``None``: ``LinearSolve(throw=throw)``).
      throw: raise on failure, or return the result code.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.fixed_point import AndersonAcceleration
      >>> M = jnp.array([[0.5, 0.2], [0.1, 0.6]]); b = jnp.array([1.0, 2.0])
      >>> T = lambda x, b: M @ x + b                      # x* = (I − M)⁻¹ b
      >>> solver = AndersonAcceleration(T, tol=1e-6)
      >>> sol = solver.run(jnp.zeros(2), b)
      >>> bool(jnp.allclose(sol.value, jnp.linalg.solve(jnp.eye(2) - M, b), rtol=1e-5))
      True
      >>> g = jax.grad(lambda b: solver.run(jnp.zeros(2), b).value.sum())(b)  # (I − M)⁻ᵀ 1
      >>> bool(jnp.allclose(g, jnp.linalg.solve((jnp.eye(2) - M).T, jnp.ones(2)), rtol=1e-5))
      True
    """

    fixed_point_fun: Callable = eqx.field(static=True)
    history_size: int = eqx.field(static=True, default=5)
    mixing_frequency: int = eqx.field(static=True, default=1)
    beta: float = 1.0
    max_steps: int = eqx.field(static=True, default=100)
    tol: float = 1e-5
    ridge: float = 1e-5
    relative_ridge: bool = eqx.field(static=True, default=False)
    has_aux: bool = eqx.field(static=True, default=False)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "AndersonAcceleration did not reach `tol` within `max_steps` iterations. Increase "
            "`max_steps` or loosen `tol`; if the residuals stall, damp the mixing (`beta` < 1) "
            "or mix less often (`mixing_frequency` > 1). Pass `throw=False` to get the last "
            "iterate with this result code instead."
        ),
        "nonfinite": (
            "AndersonAcceleration produced non-finite values (NaN or inf). Check `init_params` "
            "and the arguments for NaN/inf; if the extrapolation is unstable increase `ridge` "
            "(the Gram matrix of the residuals is near singular) or lower `beta`."
        ),
        "invalid_input": (
            "AndersonAcceleration: an argument failed a check on its value: `tol` and `ridge` "
            "must be >= 0 and `beta` finite."
        ),
    }

    def __check_init__(self) -> None:
        owner = type(self).__name__
        C.check_callable(owner, "fixed_point_fun", self.fixed_point_fun)
        _check_mixing(owner, self.history_size, self.mixing_frequency, self.beta, self.ridge)
        V.check_real(owner, "tol", self.tol, low=0.0)
        V.check_int(owner, "max_steps", self.max_steps, low=1)
        V.check_flag(owner, "has_aux", self.has_aux)

    def _fun(self, x: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return C.split_aux(self.fixed_point_fun, self.has_aux)(x, *args, **kwargs)

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        C.check_map(
            type(self).__name__, "fixed_point_fun", self.fixed_point_fun, self.has_aux,
            init_params, args, kwargs,
        )  # fmt: skip

    def _inputs_valid(self, init_params: Any, *args: Any, **kwargs: Any) -> jax.Array:
        ok = (jnp.asarray(self.tol) >= 0) & (jnp.asarray(self.ridge) >= 0)
        return ok & jnp.isfinite(jnp.asarray(self.beta))

    def init(self, init_params: Any, *args: Any, **kwargs: Any) -> AndersonState:
        """Empty history; no evaluation of ``fixed_point_fun``.

        Args:
          init_params: the starting point (a pytree of floating-point arrays).
          *args, **kwargs: the arguments given to `run` after `init_params`.

        Returns:
          The state :class:`AndersonState` before the first step.
        """
        dtype = C.params_dtype(type(self).__name__, init_params)
        m = self.history_size
        xs = _history(init_params, m)
        aux_shape = jax.eval_shape(self._fun, init_params, *args, **kwargs)[1]
        return AndersonState(
            num_steps=jnp.asarray(0, jnp.int32),
            error=jnp.asarray(jnp.inf, dtype),
            params_history=xs,
            residuals_history=jax.tree.map(jnp.zeros_like, xs),
            residual_gram=jnp.zeros((m, m), dtype),
            aux=C.zeros_like_shape(aux_shape),
            num_fun_evals=jnp.asarray(0, jnp.int32),
        )

    def step(
        self, params: Any, state: AndersonState, *args: Any, **kwargs: Any
    ) -> tuple[Any, AndersonState]:
        """Extrapolate (every ``mixing_frequency`` steps once the history is full), apply ``T``.

        Args:
          params: the current iterate.
          state: the current :class:`AndersonState`.
          *args, **kwargs: the arguments given to `run` after `init_params`.

        Returns:
          ``(next_params, next_state)``.
        """
        mixing = _use_mixing(state.num_steps, self.mixing_frequency, self.history_size)
        x = jax.lax.cond(
            mixing,
            lambda: _extrapolate(
                state.params_history,
                state.residuals_history,
                state.residual_gram,
                self.ridge,
                self.beta,
                self.relative_ridge,
            ),
            lambda: params,
        )
        fx, aux = self._fun(x, *args, **kwargs)
        r = jax.tree.map(jnp.subtract, fx, x)
        pos = state.num_steps % self.history_size
        xs, rs, gram, error = _record(
            state.params_history, state.residuals_history, state.residual_gram, pos, x, r
        )
        return fx, AndersonState(
            num_steps=state.num_steps + 1,
            error=error.astype(state.error.dtype),
            params_history=xs,
            residuals_history=rs,
            residual_gram=gram,
            aux=aux,
            num_fun_evals=state.num_fun_evals + 1,
        )

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``T(x, *args, **kwargs) − x``."""
        value, _ = self._fun(params, *args, **kwargs)
        return jax.tree.map(jnp.subtract, value, params)


# --------------------------------------------------------------------------- AndersonWrapper


class AndersonWrapperState(eqx.Module):
    """State of :class:`AndersonWrapper`.

    Attributes:
      num_steps: iterations done.
      error: the wrapped solver's ``error`` after the last step.
      solver_state: the wrapped solver's state.
      params_history, residuals_history, residual_gram: as in :class:`AndersonState`, with
        ``r_i = step(x̄_i) − x̄_i``.
    """

    num_steps: jax.Array
    error: jax.Array
    solver_state: Any
    params_history: Any
    residuals_history: Any
    residual_gram: jax.Array


class AndersonWrapper(IterativeSolver):
    """Anderson acceleration of another solver's ``step`` (see the module docstring).

    Args:
      solver: one of the library's iterative solvers (e.g. ``ProximalGradient``); its ``step``
        is the map that is accelerated and its ``optimality_fn`` defines the gradients.
      history_size, beta, ridge, relative_ridge: as in :class:`AndersonAcceleration`.
      mixing_frequency: extrapolate every this many steps (``None``: ``history_size``).
      tol, max_steps: stopping rule on the wrapped solver's ``error`` (``None``: the wrapped
        solver's values).
      implicit_diff, linear_solve, throw: as in :class:`AndersonAcceleration`.

    ``run(init_params, *args, **kwargs)`` takes the wrapped solver's arguments.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.fixed_point import AndersonWrapper
      >>> from jaxopt_papers.proximal import ProximalGradient, prox_lasso
      >>> A = jnp.array([[3.0, 1.0], [1.0, 2.0], [0.0, 1.0]]); y = jnp.array([1.0, 2.0, 0.5])
      >>> fun = lambda w, A, y: 0.5 * jnp.sum((A @ w - y) ** 2)
      >>> pg = ProximalGradient(fun, prox_lasso, stepsize=0.05, acceleration=False, tol=1e-6,
      ...                       max_steps=2000)
      >>> plain = pg.run(jnp.zeros(2), 0.1, A, y)
      >>> fast = AndersonWrapper(pg, mixing_frequency=1, ridge=1e-12).run(jnp.zeros(2), 0.1, A, y)
      >>> bool(jnp.allclose(fast.value, plain.value, atol=1e-5))
      True
      >>> int(fast.num_steps) < int(plain.num_steps)
      True
    """

    solver: IterativeSolver
    history_size: int = eqx.field(static=True, default=5)
    mixing_frequency: int | None = eqx.field(static=True, default=None)
    beta: float = 1.0
    ridge: float = 1e-5
    relative_ridge: bool = eqx.field(static=True, default=False)
    tol: Any = None
    max_steps: int | None = eqx.field(static=True, default=None)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "AndersonWrapper did not reach `tol` (the wrapped solver's error) within "
            "`max_steps` iterations (both default to the wrapped `solver`'s). Increase "
            "`max_steps`, loosen `tol`, damp the mixing (`beta` < 1) or mix less often "
            "(a larger `mixing_frequency`). Pass `throw=False` to get the last iterate with "
            "this result code instead."
        ),
        "nonfinite": (
            "AndersonWrapper produced non-finite values (NaN or inf). Check `init_params` and "
            "the arguments for NaN/inf; if the extrapolation is unstable increase `ridge` or "
            "lower `beta`."
        ),
        "invalid_input": (
            "AndersonWrapper: an argument failed a check on its value: the wrapped `solver`'s "
            "own checks (see its documentation), or `tol`/`ridge` < 0 or a non-finite `beta`."
        ),
    }

    def __post_init__(self) -> None:
        if not isinstance(self.solver, IterativeSolver):
            raise TypeError(
                "AndersonWrapper: `solver` must be one of the library's iterative solvers (an "
                f"IterativeSolver with init/step), got {type(self.solver).__name__}."
            )
        if self.mixing_frequency is None:
            self.mixing_frequency = self.history_size
        if self.tol is None:
            self.tol = self.solver.tol
        if self.max_steps is None:
            self.max_steps = self.solver.max_steps

    def __check_init__(self) -> None:
        owner = type(self).__name__
        _check_mixing(owner, self.history_size, self.mixing_frequency, self.beta, self.ridge)
        V.check_real(owner, "tol", self.tol, low=0.0)
        V.check_int(owner, "max_steps", self.max_steps, low=1)

    @property
    def symmetric_optimality(self) -> bool:  # type: ignore[override]
        return self.solver.symmetric_optimality

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        self.solver._check_call(init_params, *args, **kwargs)

    def _inputs_valid(self, init_params: Any, *args: Any, **kwargs: Any) -> jax.Array:
        ok = self.solver._inputs_valid(init_params, *args, **kwargs)
        ok = ok & (jnp.asarray(self.tol) >= 0) & (jnp.asarray(self.ridge) >= 0)
        return ok & jnp.isfinite(jnp.asarray(self.beta))

    def _state_valid(self, state: Any) -> jax.Array:
        return self.solver._state_valid(state.solver_state)

    def _loop_context(self) -> Any:
        return self.solver._loop_context()

    def init(self, init_params: Any, *args: Any, **kwargs: Any) -> AndersonWrapperState:
        """The wrapped solver's ``init`` and an empty history.

        Args:
          init_params: the starting point (a pytree of floating-point arrays).
          *args, **kwargs: the arguments given to `run` after `init_params`.

        Returns:
          The state :class:`AndersonWrapperState` before the first step.
        """
        solver_state = self.solver.init(init_params, *args, **kwargs)
        m = self.history_size
        xs = _history(init_params, m)
        dtype = jnp.result_type(solver_state.error)
        return AndersonWrapperState(
            num_steps=jnp.asarray(0, jnp.int32),
            error=solver_state.error,
            solver_state=solver_state,
            params_history=xs,
            residuals_history=jax.tree.map(jnp.zeros_like, xs),
            residual_gram=jnp.zeros((m, m), dtype),
        )

    def step(
        self, params: Any, state: AndersonWrapperState, *args: Any, **kwargs: Any
    ) -> tuple[Any, AndersonWrapperState]:
        """Extrapolate and restart the wrapped solver there, or keep going; one wrapped step.

        Args:
          params: the current iterate.
          state: the current :class:`AndersonWrapperState`.
          *args, **kwargs: the arguments given to `run` after `init_params`.

        Returns:
          ``(next_params, next_state)``.
        """
        mixing = _use_mixing(state.num_steps, self.mixing_frequency, self.history_size)

        def mixed() -> tuple[Any, Any]:
            x = _extrapolate(
                state.params_history, state.residuals_history, state.residual_gram,
                self.ridge, self.beta, self.relative_ridge,
            )  # fmt: skip
            return x, self.solver.init(x, *args, **kwargs)

        x, solver_state = jax.lax.cond(mixing, mixed, lambda: (params, state.solver_state))
        fx, solver_state = self.solver.step(x, solver_state, *args, **kwargs)
        r = jax.tree.map(jnp.subtract, fx, x)
        pos = state.num_steps % self.history_size
        xs, rs, gram, _ = _record(
            state.params_history, state.residuals_history, state.residual_gram, pos, x, r
        )
        return fx, AndersonWrapperState(
            num_steps=state.num_steps + 1,
            error=jnp.asarray(solver_state.error, state.error.dtype),
            solver_state=solver_state,
            params_history=xs,
            residuals_history=rs,
            residual_gram=gram,
        )

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """The wrapped solver's ``optimality_fn``."""
        return self.solver.optimality_fn(params, *args, **kwargs)
