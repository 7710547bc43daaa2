"""Limited-memory Broyden root finding ``F(x, θ) = 0``, implicitly differentiable.

Broyden, "A Class of Methods for Solving Nonlinear Simultaneous Equations", Math. Comp. 1965
("good" Broyden update of the inverse Jacobian, eq. 4.5). Reference code: jaxopt 0.8.5's
``Broyden``.

The inverse Jacobian is approximated by ``B = γI + Σ_j c_j d_jᵀ`` (at most ``history_size``
rank-one terms; the oldest is dropped when the memory is full). One step:

- direction ``p = −B F(x_k)``;
- step size ``s``: fixed (``stepsize``), or (``stepsize=None``) a backtracking line search on
  ``φ(x) = ‖F(x)‖²`` from ``s₀ = max_stepsize`` if the previous step was ``≤ min_stepsize``,
  else ``increase_factor ×`` the previous step, capped at ``max_stepsize`` and multiplied by
  ``decrease_factor`` until the Wolfe conditions
  ``φ(x + sp) ≤ φ(x) + c₁ s ⟨∇φ(x), p⟩`` and ``⟨∇φ(x + sp), p⟩ ≥ c₂⟨∇φ(x), p⟩``
  (``c₁ = 1e-4``, ``c₂ = 0.9``) hold up to ``linesearch_tol``, at most ``maxls`` trials;
- ``x_{k+1} = x_k + s p``; with ``Δx = x_{k+1} − x_k``, ``Δf = F(x_{k+1}) − F(x_k)``:
  ``d = Bᵀ Δx / ⟨Bᵀ Δx, Δf⟩`` and ``c = Δx − B Δf`` (so that ``B_new Δf = Δx``);
- ``error = ‖F(x_{k+1})‖₂``; stop when ``error ≤ tol`` or after ``max_steps`` steps.

Gradients: ``∂x* = −(∂ₓF)⁻¹ ∂_θF`` at the root (implicit function theorem), with respect to
every floating-point array in ``args``/``kwargs``.

Differences from jaxopt:

- Defaults are jaxopt's (``max_steps=500``, ``history_size=None`` meaning ``max_steps``,
  ``gamma=1``, ``maxls=15``, ``decrease_factor=0.8``, ``increase_factor=1.5``,
  ``max_stepsize=1``, ``min_stepsize=1e-6``, Wolfe conditions accepted up to ``1e-2``,
  ``stop_if_linesearch_fails=False``), except ``tol=1e-6`` (jaxopt: ``1e-3``: an implicit
  gradient is only as accurate as the root, and the library's checked derivative refuses a point
  whose relative residual is above ``1e-4``). ``stepsize=None`` selects the line search (jaxopt:
  ``stepsize <= 0``, an error here). ``maxiter`` is called ``max_steps``.
- For pytrees with several leaves the rank-one terms use inner products over **all** leaves (the
  Broyden method on the flattened vector); jaxopt takes them leaf by leaf, which is a different
  (block-diagonal) method. For a single array the iterates are jaxopt's.
- ``run`` returns :class:`~jaxopt_papers.Solution` with a result code and honours ``throw``;
  a line search that ends without meeting the conditions is recorded in
  ``state.failed_linesearch``. The backward solve is checked
  (:class:`~jaxopt_papers.implicit.LinearSolve`). Complex unknowns are not supported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.fixed_point import _common as C
from jaxopt_papers.implicit.solver import IterativeSolver

__all__ = ["Broyden", "BroydenState"]

_C1, _C2 = 1e-4, 0.9


class BroydenState(eqx.Module):
    """State of :class:`Broyden`.

    Attributes:
      num_steps: iterations done.
      error: ``‖F(x_k)‖₂`` (``inf`` before the first step).
      value: ``F(x_k)``.
      stepsize: the last step size.
      d_history, c_history: the rank-one terms of the inverse Jacobian, each leaf stacked on a
        leading axis of size ``history_size``.
      gamma: scale of the initial inverse Jacobian ``γI``.
      aux: ``fun``'s aux at ``x_k`` (``has_aux=True``), else ``None``.
      failed_linesearch: the last line search ended without meeting its conditions.
      num_fun_evals: evaluations of ``fun``; num_linesearch_steps: line-search trials.
    """

    num_steps: jax.Array
    error: jax.Array
    value: Any
    stepsize: jax.Array
    d_history: Any
    c_history: Any
    gamma: jax.Array
    aux: Any
    failed_linesearch: jax.Array
    num_fun_evals: jax.Array
    num_linesearch_steps: jax.Array


def _dots(hist: Any, v: Any) -> jax.Array:
    """``[⟨h_j, v⟩]_j`` over all leaves."""
    pairs = zip(jax.tree.leaves(hist), jax.tree.leaves(v), strict=True)
    parts = [jnp.tensordot(h, x, axes=x.ndim) for h, x in pairs]
    return sum(parts[1:], parts[0])


def _combine(hist: Any, coef: jax.Array) -> Any:
    """``Σ_j coef_j h_j``."""
    return jax.tree.map(lambda h: jnp.tensordot(coef.astype(h.dtype), h, axes=1), hist)


def _inv_jac(v: Any, ds: Any, cs: Any, gamma: jax.Array) -> Any:
    """``B v = γ v + Σ_j c_j ⟨d_j, v⟩``."""
    return jax.tree.map(lambda a, b: gamma * a + b, v, _combine(cs, _dots(ds, v)))


def _inv_jac_t(v: Any, ds: Any, cs: Any, gamma: jax.Array) -> Any:
    """``Bᵀ v = γ v + Σ_j d_j ⟨c_j, v⟩``."""
    return _inv_jac(v, cs, ds, gamma)


def _axpy(a: Any, x: Any, y: Any) -> Any:
    return jax.tree.map(lambda u, v: a * u + v, x, y)


class Broyden(IterativeSolver):
    """Limited-memory Broyden method for ``fun(x, *args, **kwargs) = 0`` (module docstring).

    Args:
      fun: ``F(x, *args, **kwargs)`` returning a pytree like ``x`` (or ``(value, aux)`` with
        ``has_aux=True``).
      max_steps, tol: stop when ``‖F(x)‖₂ ≤ tol`` or after ``max_steps`` steps.
      stepsize: ``None`` for the line search, a positive number, or a schedule
        ``num_steps -> stepsize``.
      stop_if_linesearch_fails: stop the iterations when a line search fails.
      maxls, decrease_factor, increase_factor, max_stepsize, min_stepsize, linesearch_tol: the
        line search (module docstring).
      history_size: number of rank-one terms kept (``None``: ``max_steps``).
      gamma: the initial inverse Jacobian is ``gamma · I``.
      has_aux, implicit_diff, linear_solve, throw: as in the other solvers.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.fixed_point import Broyden
      >>> F = lambda x, a: jnp.array([x[0] ** 3 + x[1] - a, x[1] - x[0]])  # root x0 = x1
      >>> sol = Broyden(F, tol=1e-10).run(jnp.array([0.5, 0.5]), 2.0)
      >>> [round(float(v), 6) for v in sol.value]
      [1.0, 1.0]
      >>> float(jnp.round(jax.grad(lambda a: Broyden(F, tol=1e-10).run(
      ...     jnp.array([0.5, 0.5]), a).value[0])(2.0), 6))       # 1 / (3x² + 1)
      0.25
    """

    fun: Callable = eqx.field(static=True)
    max_steps: int = eqx.field(static=True, default=500)
    tol: float = 1e-6
    stepsize: Any = None
    stop_if_linesearch_fails: bool = eqx.field(static=True, default=False)
    maxls: int = eqx.field(static=True, default=15)
    decrease_factor: float = 0.8
    increase_factor: float = 1.5
    max_stepsize: float = 1.0
    min_stepsize: float = 1e-6
    linesearch_tol: float = 1e-2
    history_size: int | None = eqx.field(static=True, default=None)
    gamma: float = 1.0
    has_aux: bool = eqx.field(static=True, default=False)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "Broyden did not reach `tol` (on ‖fun(x)‖) within `max_steps` iterations"
            " (or it stopped on a failed line search with `stop_if_linesearch_fails=True`; "
            "see `state.failed_linesearch`). Increase `max_steps` or `maxls`, loosen `tol`, "
            "start closer to a root, or keep more memory (`history_size`). Pass `throw=False` "
            "to get the last iterate with this result code instead."
        ),
        "nonfinite": (
            "Broyden produced non-finite values (NaN or inf). Check `init_params` and the "
            "arguments for NaN/inf; with a fixed `stepsize` the iterates may diverge: use "
            "`stepsize=None` (line search) or a smaller `max_stepsize`."
        ),
        "invalid_input": (
            "Broyden: an argument failed a check on its value: `stepsize` (or every value of "
            "its schedule) must be > 0, `decrease_factor` in (0, 1), `increase_factor` >= 1, "
            "`max_stepsize` > 0, `min_stepsize` >= 0, `tol` >= 0 and `gamma` nonzero."
        ),
    }

    def __post_init__(self) -> None:
        if self.history_size is None and isinstance(self.max_steps, (int, np.integer)):
            self.history_size = int(self.max_steps)

    def __check_init__(self) -> None:
        owner = type(self).__name__
        C.check_callable(owner, "fun", self.fun)
        V.check_int(owner, "max_steps", self.max_steps, low=1)
        V.check_int(owner, "history_size", self.history_size, low=1)
        V.check_int(owner, "maxls", self.maxls, low=1)
        V.check_real(owner, "tol", self.tol, low=0.0)
        if self.stepsize is not None and not callable(self.stepsize):
            V.check_real(owner, "stepsize", self.stepsize, low=0.0, low_open=True)
        V.check_real(owner, "decrease_factor", self.decrease_factor, low=0.0, high=1.0,
                     low_open=True, high_open=True)  # fmt: skip
        V.check_real(owner, "increase_factor", self.increase_factor, low=1.0)
        V.check_real(owner, "max_stepsize", self.max_stepsize, low=0.0, low_open=True)
        V.check_real(owner, "min_stepsize", self.min_stepsize, low=0.0)
        V.check_real(owner, "linesearch_tol", self.linesearch_tol, low=0.0)
        V.check_real(owner, "gamma", self.gamma)
        if V._concrete_float(self.gamma) == 0.0:
            raise ValueError(f"{owner}: `gamma` must be nonzero (B₀ = γI), got {self.gamma!r}.")
        V.check_flag(owner, "stop_if_linesearch_fails", self.stop_if_linesearch_fails)
        V.check_flag(owner, "has_aux", self.has_aux)

    def _fun(self, x: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return C.split_aux(self.fun, self.has_aux)(x, *args, **kwargs)

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        C.check_map(type(self).__name__, "fun", self.fun, self.has_aux, init_params, args, kwargs)

    def _inputs_valid(self, init_params: Any, *args: Any, **kwargs: Any) -> jax.Array:
        a = jnp.asarray
        preds = [
            a(self.tol) >= 0,
            (a(self.decrease_factor) > 0) & (a(self.decrease_factor) < 1),
            a(self.increase_factor) >= 1,
            a(self.max_stepsize) > 0,
            a(self.min_stepsize) >= 0,
            a(self.gamma) != 0,
        ]
        if self.stepsize is not None and not callable(self.stepsize):
            preds.append(a(self.stepsize) > 0)
        return jnp.all(jnp.stack(preds))

    def _state_valid(self, state: BroydenState) -> jax.Array:
        return state.stepsize > 0  # a schedule may produce a non-positive step

    def _continue(self, state: BroydenState) -> jax.Array:
        go = super()._continue(state)
        if self.stop_if_linesearch_fails:
            go = go & ~state.failed_linesearch
        return go

    def init(self, init_params: Any, *args: Any, **kwargs: Any) -> BroydenState:
        """Evaluates ``fun`` once at ``init_params``; empty memory.

        Args:
          init_params: the starting point (a pytree of floating-point arrays).
          *args, **kwargs: the arguments given to `run` after `init_params`.

        Returns:
          The state :class:`BroydenState` before the first step.
        """
        dtype = C.params_dtype(type(self).__name__, init_params)
        value, aux = self._fun(init_params, *args, **kwargs)
        hist = jax.tree.map(
            lambda v: jnp.zeros((self.history_size, *jnp.shape(v)), v.dtype), init_params
        )
        return BroydenState(
            num_steps=jnp.asarray(0, jnp.int32),
            error=jnp.asarray(jnp.inf, dtype),
            value=value,
            stepsize=jnp.asarray(self.max_stepsize, dtype),
            d_history=hist,
            c_history=hist,
            gamma=jnp.asarray(self.gamma, dtype),
            aux=aux,
            failed_linesearch=jnp.asarray(False),
            num_fun_evals=jnp.asarray(1, jnp.int32),
            num_linesearch_steps=jnp.asarray(0, jnp.int32),
        )

    def _line_search(
        self, x: Any, p: Any, s0: jax.Array, args: tuple, kwargs: dict
    ) -> tuple[jax.Array, Any, Any, Any, jax.Array, jax.Array]:
        """Backtracking on ``‖F‖²`` (Wolfe conditions up to ``linesearch_tol``)."""

        def phi(z: Any) -> tuple[jax.Array, tuple[Any, Any]]:
            f, aux = self._fun(z, *args, **kwargs)
            return optax.tree.norm(f, squared=True), (f, aux)

        vg = jax.value_and_grad(phi, has_aux=True)
        (phi0, _), g0 = vg(x)
        slope = optax.tree.vdot(g0, p)
        dtype = s0.dtype

        def trial(s: jax.Array) -> tuple:
            s = jnp.minimum(self.max_stepsize, s).astype(dtype)
            z = _axpy(s, p, x)
            (phi_z, (f, aux)), g = vg(z)
            e1 = phi_z - (phi0 + _C1 * s * slope)
            e2 = _C2 * slope - optax.tree.vdot(g, p)
            e1 = jnp.maximum(jnp.where(jnp.isnan(e1), jnp.inf, e1), 0)
            e2 = jnp.maximum(jnp.where(jnp.isnan(e2), jnp.inf, e2), 0)
            return s, z, f, aux, jnp.maximum(e1, e2)

        def body(carry: tuple) -> tuple:
            s_next, _, _, _, _, i = carry
            s, z, f, aux, err = trial(s_next)
            ok = err <= self.linesearch_tol
            failed = (i + 1 == self.maxls) & ~ok
            s_next = jnp.where(ok | failed, s, s * self.decrease_factor).astype(dtype)
            return s_next, z, f, aux, err, i + 1

        def go(carry: tuple) -> jax.Array:
            return (carry[5] < self.maxls) & (carry[4] > self.linesearch_tol)

        first = body((s0, x, None, None, None, jnp.asarray(0, jnp.int32)))
        if self.implicit_diff:
            carry = jax.lax.while_loop(go, body, first)
        else:  # unrolled mode: fixed length (reverse-differentiable), frozen once accepted

            def fixed(_: int, c: tuple) -> tuple:
                return jax.tree.map(lambda n, o: jnp.where(go(c), n, o), body(c), c)

            carry = jax.lax.fori_loop(1, self.maxls, fixed, first)
        s, z, f, aux, err, n = carry
        return s, z, f, aux, err > self.linesearch_tol, n

    def step(
        self, params: Any, state: BroydenState, *args: Any, **kwargs: Any
    ) -> tuple[Any, BroydenState]:
        """One Broyden step: direction ``−B F(x)``, step size, rank-one update of ``B``.

        Args:
          params: the current iterate.
          state: the current :class:`BroydenState`.
          *args, **kwargs: the arguments given to `run` after `init_params`.

        Returns:
          ``(next_params, next_state)``.
        """
        dtype = state.stepsize.dtype
        ds, cs, gamma = state.d_history, state.c_history, state.gamma
        p = jax.tree.map(jnp.negative, _inv_jac(state.value, ds, cs, gamma))
        if self.stepsize is None:
            s0 = jnp.where(
                state.stepsize <= self.min_stepsize,
                jnp.asarray(self.max_stepsize, dtype),
                state.stepsize * self.increase_factor,
            )
            s, new_params, value, aux, failed, n_ls = self._line_search(params, p, s0, args, kwargs)
            n_evals = n_ls + 1
        else:
            if callable(self.stepsize):
                s = self.stepsize(state.num_steps)
                if not isinstance(s, jax.core.Tracer) and not np.all(np.asarray(s) > 0):
                    raise ValueError(
                        f"Broyden: the `stepsize` schedule must return values > 0, got {s!r}."
                    )
            else:
                s = self.stepsize
            s = jnp.asarray(s, dtype)
            new_params = _axpy(s, p, params)
            value, aux = self._fun(new_params, *args, **kwargs)
            failed, n_ls, n_evals = jnp.asarray(False), jnp.asarray(0, jnp.int32), 1
        dx = jax.tree.map(jnp.subtract, new_params, params)
        df = jax.tree.map(jnp.subtract, value, state.value)
        v = _inv_jac_t(dx, ds, cs, gamma)
        d = jax.tree.map(lambda a: a / optax.tree.vdot(v, df), v)
        c = jax.tree.map(jnp.subtract, dx, _inv_jac(df, ds, cs, gamma))
        pos = state.num_steps % self.history_size
        put = lambda h, u: h.at[pos].set(u)
        error = optax.tree.norm(value)
        return new_params, BroydenState(
            num_steps=state.num_steps + 1,
            error=jnp.asarray(error, state.error.dtype),
            value=value,
            stepsize=s,
            d_history=jax.tree.map(put, ds, d),
            c_history=jax.tree.map(put, cs, c),
            gamma=gamma,
            aux=aux,
            failed_linesearch=jnp.asarray(failed),
            num_fun_evals=state.num_fun_evals + n_evals,
            num_linesearch_steps=state.num_linesearch_steps + n_ls,
        )

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``fun(x, *args, **kwargs)`` (its first output with ``has_aux=True``)."""
        return self._fun(params, *args, **kwargs)[0]
