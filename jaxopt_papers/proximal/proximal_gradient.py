"""Proximal gradient (ISTA/FISTA, backtracking) and projected gradient, implicitly differentiable.

Beck & Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse
Problems", SIAM J. Imaging Sciences 2009; differentiated as in Blondel et al., "Efficient and
Modular Implicit Differentiation", NeurIPS 2022, arXiv 2105.15183. Reference code: jaxopt
0.8.5's ``ProximalGradient`` / ``ProjectedGradient``.

Minimises ``fun(x, *args, **kwargs) + g(x, hyperparams_prox)`` given ``prox = prox_g``:

- ``x_{k+1} = prox(y_k − s_k ∇fun(y_k), hyperparams_prox, s_k)``;
- FISTA (``acceleration=True``): ``t_{k+1} = (1 + √(1 + 4t_k²))/2``,
  ``y_{k+1} = x_{k+1} + (t_k − 1)/t_{k+1} · (x_{k+1} − x_k)``; ISTA: ``y_k = x_k``;
- ``stepsize=None``: backtracking from the previous step, at most ``maxls`` times ×
  ``decrease_factor`` until ``s(f(x⁺) − f(y)) ≤ s⟨∇f(y), x⁺ − y⟩ + ½‖x⁺ − y‖² + eps``; the next
  trial step is ``s / decrease_factor`` (reset to 1 if ``s ≤ 1e-6``); the first is 1;
- stop when ``error = ‖x_{k+1} − x_k‖ / s_{k+1} ≤ tol`` or after ``max_steps`` steps.

``run(init_params, hyperparams_prox, *args, **kwargs)`` returns a
:class:`~jaxopt_papers.implicit.Solution` (``params``, ``result``, ``stats``), differentiable
with respect to ``hyperparams_prox``, ``args`` and ``kwargs`` by implicit differentiation of the
fixed point ``prox(x − ∇fun(x), hyperparams_prox, 1) − x = 0``.

Differences from the reference code:

- ``tol=1e-6`` by default (jaxopt: ``1e-3``, too loose for gradients: an implicit gradient is only
  as accurate as the solution); ``stepsize=None`` means backtracking (jaxopt: ``stepsize <= 0``,
  which is an error here); ``maxiter`` is called ``max_steps``.
- The backward solve is :class:`~jaxopt_papers.implicit.LinearSolve` (dense LU on small
  problems, GMRES otherwise; jaxopt: normal-equation CG at ``tol=1e-5``) and is checked.
- Result codes, ``throw`` and ``Solution`` instead of jaxopt's ``OptStep``; the solver is an
  ``equinox.Module`` (a pytree, so it can be passed through ``jit``).
- ``stable_linesearch=True``: once the curvature term ``½‖x⁺ − y‖²`` falls below the round-off
  of ``s·(f(x⁺) − f(y))`` (``≤ 100·eps·s·|f|``), jaxopt's sufficient-decrease test is decided by
  round-off, and its iterates stall around ``1e-9`` in float64 (lasso on diabetes never
  reaches ``tol=1e-10``). There the step is instead accepted when
  ``s·⟨∇f(x⁺) − ∇f(y), x⁺ − y⟩ ≤ ‖x⁺ − y‖²`` (the same test for quadratics; TFOCS's remedy).
  ``stable_linesearch=False`` is jaxopt's line search exactly.
- Otherwise the iterates, step sizes and stopping rule are jaxopt's (a test replays them).
  ``value_and_grad``/``has_aux``/``verbose`` are not offered.
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
from jaxopt_papers.implicit.optimality import prox_gradient_optimality
from jaxopt_papers.implicit.solver import IterativeSolver
from jaxopt_papers.proximal.prox import make_prox_from_projection, prox_none

__all__ = ["ProjectedGradient", "ProxGradState", "ProximalGradient"]


class ProxGradState(eqx.Module):
    """State of :class:`ProximalGradient`: step counter, next trial step, error, FISTA (y, t)."""

    num_steps: jax.Array
    stepsize: jax.Array
    error: jax.Array
    y: Any
    t: jax.Array


def _axpy(alpha: Any, x: Any, y: Any) -> Any:
    return jax.tree.map(lambda u, v: alpha * u + v, x, y)


def _dtype(params: Any) -> np.dtype:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("ProximalGradient: `init_params` must contain at least one array.")
    return jnp.result_type(*leaves)


class ProximalGradient(IterativeSolver):
    """Proximal gradient / FISTA (see the module docstring).

    Args:
      fun: smooth objective ``fun(x, *args, **kwargs) -> scalar``.
      prox: ``prox(x, hyperparams_prox, scaling)`` of the non-smooth term (default: none).
      stepsize: a positive number, a callable ``num_steps -> stepsize``, or ``None`` for
        backtracking.
      acceleration: FISTA (``True``) or ISTA.
      tol, max_steps: stopping rule.
      maxls, decrease_factor: backtracking.
      stable_linesearch: when the sufficient-decrease test is below round-off, test the curvature
        with one extra gradient instead (``False``: jaxopt's test only, which stalls near
        ``tol ≈ 1e-9`` in float64).
      implicit_diff: implicit differentiation (``True``) or unrolled ``lax.scan`` (``False``).
      linear_solve: backward solve (``None``: ``LinearSolve(throw=throw)``).
      throw: raise on failure, or return the result code.
    """

    fun: Callable = eqx.field(static=True)
    prox: Callable = eqx.field(static=True, default=prox_none)
    stepsize: Any = None
    acceleration: bool = eqx.field(static=True, default=True)
    tol: float = 1e-6
    max_steps: int = eqx.field(static=True, default=500)
    maxls: int = eqx.field(static=True, default=15)
    decrease_factor: float = 0.5
    stable_linesearch: bool = eqx.field(static=True, default=True)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "Proximal gradient did not reach `tol` within `max_steps` iterations. Increase "
            "`max_steps`, loosen `tol`, leave `stepsize=None` for backtracking, or improve the "
            "conditioning (rescale the features or the objective). Pass `throw=False` to get the "
            "last iterate with this result code instead."
        ),
        "nonfinite": (
            "Proximal gradient produced non-finite values (NaN or inf). Check `init_params` and "
            "the objective for NaN/inf at the initial point; if the iterates diverged use a "
            "smaller `stepsize`, or `stepsize=None` for backtracking."
        ),
    }

    def __check_init__(self) -> None:
        owner = type(self).__name__
        if not callable(self.fun):
            raise TypeError(f"{owner}: `fun` must be callable, got {type(self.fun).__name__}.")
        if not callable(self.prox):
            raise TypeError(f"{owner}: `prox` must be callable, got {type(self.prox).__name__}.")
        if self.stepsize is not None and not callable(self.stepsize):
            if V._concrete_float(self.stepsize) is not None and not self.stepsize > 0:
                raise ValueError(
                    f"{owner}: `stepsize` must be > 0, a callable, or None for backtracking "
                    f"(jaxopt's `stepsize <= 0`); got {self.stepsize!r}."
                )
            V.check_real(owner, "stepsize", self.stepsize, low=0.0, low_open=True)
        V.check_real(owner, "tol", self.tol, low=0.0)
        V.check_real(
            owner, "decrease_factor", self.decrease_factor, low=0.0, high=1.0, low_open=True,
            high_open=True,
        )  # fmt: skip
        V.check_int(owner, "max_steps", self.max_steps, low=1)
        V.check_int(owner, "maxls", self.maxls, low=1)

    def _prox_grad(self, y: Any, grad: Any, stepsize: Any, hyperparams_prox: Any) -> Any:
        return self.prox(_axpy(-stepsize, grad, y), hyperparams_prox, stepsize)

    def init(self, init_params: Any, hyperparams_prox: Any, *args: Any, **kwargs: Any) -> Any:
        del hyperparams_prox, args, kwargs
        dtype = _dtype(init_params)
        return ProxGradState(
            num_steps=jnp.asarray(0, jnp.int32),
            stepsize=jnp.asarray(1.0, dtype),
            error=jnp.asarray(jnp.inf, dtype),
            y=init_params,
            t=jnp.asarray(1.0, dtype),
        )

    def _line_search(
        self, y: Any, value: Any, grad: Any, stepsize: Any, hp: Any, args: tuple, kwargs: dict
    ) -> tuple[Any, jax.Array]:
        eps = jnp.finfo(jnp.result_type(value)).eps

        def reject(carry: tuple) -> jax.Array:
            x, s, i = carry
            diff = jax.tree.map(jnp.subtract, x, y)
            sq = optax.tree.norm(diff, squared=True)
            fx = self.fun(x, *args, **kwargs)
            decrease = s * (fx - value)
            bound = s * optax.tree.vdot(diff, grad) + 0.5 * sq
            if not self.stable_linesearch:
                return (i < self.maxls) & (decrease > bound + eps)

            def curvature_too_high(_: None) -> jax.Array:
                grad_x = jax.grad(self.fun)(x, *args, **kwargs)
                dg = jax.tree.map(jnp.subtract, grad_x, grad)
                return s * optax.tree.vdot(dg, diff) > sq

            # The curvature term ½‖Δ‖² is below the round-off of s·(f(x⁺) − f(y)): test the local
            # curvature ⟨∇f(x⁺) − ∇f(y), Δ⟩ ≤ ‖Δ‖²/s instead (the same for quadratics; TFOCS).
            noisy = 0.5 * sq <= 100 * eps * s * jnp.maximum(jnp.abs(fx), jnp.abs(value))
            too_long = jax.lax.cond(
                noisy, curvature_too_high, lambda _: decrease > bound + eps, None
            )
            return (i < self.maxls) & too_long

        def shrink(carry: tuple) -> tuple:
            _, s, i = carry
            s = s * self.decrease_factor
            return self._prox_grad(y, grad, s, hp), s, i + 1

        init = (self._prox_grad(y, grad, stepsize, hp), stepsize, jnp.asarray(0, jnp.int32))
        if self.implicit_diff:
            x, s, _ = jax.lax.while_loop(reject, shrink, init)
        else:  # unrolled mode: a fixed-length loop (reverse-differentiable), frozen once accepted

            def body(_: int, carry: tuple) -> tuple:
                go = reject(carry)
                return jax.tree.map(lambda n, o: jnp.where(go, n, o), shrink(carry), carry)

            x, s, _ = jax.lax.fori_loop(0, self.maxls, body, init)
        return x, s

    def step(
        self, params: Any, state: ProxGradState, hyperparams_prox: Any, *args: Any, **kwargs: Any
    ) -> tuple[Any, ProxGradState]:
        dtype = state.stepsize.dtype
        y = state.y if self.acceleration else params
        value, grad = jax.value_and_grad(self.fun)(y, *args, **kwargs)
        if self.stepsize is None:
            x, s = self._line_search(y, value, grad, state.stepsize, hyperparams_prox, args, kwargs)
            next_stepsize = jnp.where(s <= 1e-6, 1.0, s / self.decrease_factor)
        else:
            s = self.stepsize(state.num_steps) if callable(self.stepsize) else self.stepsize
            x = self._prox_grad(y, grad, s, hyperparams_prox)
            next_stepsize = s
        next_stepsize = jnp.asarray(next_stepsize, dtype)
        diff = jax.tree.map(jnp.subtract, x, params)
        error = optax.tree.norm(diff) / next_stepsize
        t = state.t
        if self.acceleration:
            next_t = 0.5 * (1 + jnp.sqrt(1 + 4 * t**2))
            next_y = _axpy((t - 1) / next_t, diff, x)
        else:
            next_t, next_y = t, x
        new_state = ProxGradState(
            num_steps=state.num_steps + 1,
            stepsize=next_stepsize,
            error=jnp.asarray(error, dtype),
            y=next_y,
            t=next_t,
        )
        return x, new_state

    def optimality_fn(self, params: Any, hyperparams_prox: Any, *args: Any, **kwargs: Any) -> Any:
        """``prox(x − ∇fun(x), hyperparams_prox, 1) − x`` (jaxopt's ``optimality_fun``)."""
        F = prox_gradient_optimality(self.fun, self.prox, 1.0)
        return F(params, hyperparams_prox, *args, **kwargs)


def ProjectedGradient(fun: Callable, projection: Callable, **kwargs: Any) -> ProximalGradient:
    """Projected gradient: :class:`ProximalGradient` with ``prox = projection`` (any step).

    ``run(init_params, hyperparams_projection, *args, **kwargs)`` minimises ``fun`` over the set
    onto which ``projection(x, hyperparams_projection)`` projects, e.g.
    ``ProjectedGradient(fun, projection_simplex).run(x0, 1.0, X, y)``. Keyword arguments are
    those of :class:`ProximalGradient`.
    """
    if not callable(projection):
        raise TypeError(
            f"ProjectedGradient: `projection` must be callable, got {type(projection).__name__}."
        )
    return ProximalGradient(fun, prox=make_prox_from_projection(projection), **kwargs)
