"""Gradient descent: jaxopt's ``GradientDescent``, i.e. proximal gradient with no prox.

jaxopt 0.8.5's ``GradientDescent(fun)`` is ``ProximalGradient(fun, prox=prox_none)``: FISTA
(Nesterov) acceleration and the backtracking line search by default. Here it is a thin solver
over :class:`~jaxopt_papers.proximal.ProximalGradient` with ``prox_none``; ``run(init_params,
*args, **kwargs)`` (no ``hyperparams_prox``):

- ``x_{k+1} = y_k − s_k ∇f(y_k)``, ``t_{k+1} = (1 + √(1 + 4t_k²))/2``,
  ``y_{k+1} = x_{k+1} + (t_k − 1)/t_{k+1} (x_{k+1} − x_k)`` (``acceleration=False``:
  ``y_k = x_k``);
- ``stepsize=None``: backtracking ``s ← s·decrease_factor`` (at most ``maxls`` times) until
  ``f(x⁺) ≤ f(y) + ⟨∇f(y), x⁺ − y⟩ + ‖x⁺ − y‖²/(2s)``; the next trial is ``s/decrease_factor``;
- stop when ``‖x_{k+1} − x_k‖/s ≤ tol``; implicit differentiation of ``∇f(x) = 0`` (written
  as the fixed point ``x − ∇f(x) − x``).

Differences from jaxopt: with ``stable_linesearch=False`` the iterates are jaxopt's bit for bit
(a test compares them exactly); the default ``stable_linesearch=True`` changes the line search
only once its test is decided by round-off (see
:mod:`jaxopt_papers.proximal.proximal_gradient`), where jaxopt's stalls. ``tol=1e-6`` by default
(jaxopt: ``1e-3``), for accurate implicit gradients; ``maxiter`` is ``max_steps``; ``stepsize=None``
(not ``<= 0``) means backtracking. Result codes, ``throw`` and ``Solution`` as for every solver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx

from jaxopt_papers.implicit.solver import IterativeSolver
from jaxopt_papers.proximal import ProximalGradient, prox_none

__all__ = ["GradientDescent"]


class GradientDescent(IterativeSolver):
    """Gradient descent with Nesterov acceleration and backtracking (jaxopt's defaults).

    Args:
      fun: objective ``fun(x, *args, **kwargs) -> scalar``.
      stepsize: a positive number, a callable ``num_steps -> stepsize``, or ``None`` for
        backtracking.
      acceleration: Nesterov/FISTA momentum (``True``) or plain gradient steps.
      tol, max_steps: stop when ``‖x_{k+1} − x_k‖/stepsize ≤ tol`` or after ``max_steps``.
      maxls, decrease_factor: backtracking.
      stable_linesearch: see the module docstring (``False``: jaxopt's iterates exactly).
      implicit_diff, linear_solve, throw: as for every solver.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.smooth import GradientDescent
      >>> fun = lambda w, lam: jnp.sum((w - 3.0) ** 2) + lam * jnp.sum(w**2)
      >>> sol = GradientDescent(fun, tol=1e-9).run(jnp.zeros(2), 1.0)
      >>> [round(float(v), 6) for v in sol.params]  # 3 / (1 + λ)
      [1.5, 1.5]
    """

    fun: Callable = eqx.field(static=True)
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

    symmetric_optimality: ClassVar[bool] = True
    messages: ClassVar[dict[str, str]] = {
        key: msg.replace("Proximal gradient", "Gradient descent")
        for key, msg in ProximalGradient.messages.items()
    }
    messages["invalid_input"] = (
        "Gradient descent: an argument failed a check on its value: a `stepsize` (a number, "
        "or every value of a schedule) must be > 0, `decrease_factor` in (0, 1) and `tol` >= 0."
    )

    @property
    def _pg(self) -> ProximalGradient:
        return ProximalGradient(
            self.fun, prox_none, stepsize=self.stepsize, acceleration=self.acceleration,
            tol=self.tol, max_steps=self.max_steps, maxls=self.maxls,
            decrease_factor=self.decrease_factor, stable_linesearch=self.stable_linesearch,
            implicit_diff=self.implicit_diff, linear_solve=self.linear_solve, throw=self.throw,
        )  # fmt: skip

    def __check_init__(self) -> None:
        self._pg  # noqa: B018  (ProximalGradient checks the options)

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        self._pg._check_call(init_params, None, *args, **kwargs)

    def _inputs_valid(self, init_params: Any, *args: Any, **kwargs: Any) -> Any:
        return self._pg._inputs_valid(init_params, None, *args, **kwargs)

    def _state_valid(self, state: Any) -> Any:
        return self._pg._state_valid(state)

    def run(self, init_params: Any, *args: Any, **kwargs: Any) -> Any:
        """Minimise ``fun`` from ``init_params``; differentiable in ``args`` and ``kwargs``.

        Args:
          init_params: the starting point (a pytree of floating-point arrays).
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`~jaxopt_papers.Solution` (``stats``: ``num_steps``, ``error``).
        """
        return super().run(init_params, *args, **kwargs)

    def init(self, init_params: Any, *args: Any, **kwargs: Any) -> Any:
        """The initial state.

        Args:
          init_params: the starting point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`~jaxopt_papers.proximal.ProxGradState`.
        """
        return self._pg.init(init_params, None, *args, **kwargs)

    def step(self, params: Any, state: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """One (accelerated) gradient step.

        Args:
          params: the current iterate.
          state: the current state.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``(params, state)`` after the step.
        """
        return self._pg.step(params, state, None, *args, **kwargs)

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``−∇f(params)`` (the fixed-point residual ``(x − ∇f(x)) − x``)."""
        return self._pg.optimality_fn(params, None, *args, **kwargs)
