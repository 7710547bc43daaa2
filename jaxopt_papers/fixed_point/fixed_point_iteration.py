"""Fixed-point iteration ``x_{k+1} = T(x_k, θ)``, implicitly differentiable.

The Banach–Picard iteration. For a contraction ``T`` (``‖T(x) − T(y)‖ ≤ ρ‖x − y‖``, ``ρ < 1``)
the iterates converge linearly, with rate ``ρ``, to the unique fixed point ``x* = T(x*, θ)``.

- ``x_{k+1} = T(x_k, *args, **kwargs)``;
- ``error_{k+1} = ‖T(x_k) − x_k‖₂`` (over all leaves of the pytree); stop when
  ``error ≤ tol`` or after ``max_steps`` steps. The returned ``value`` is ``T(x_k)``, one
  application of ``T`` past the point whose residual met ``tol``.

Gradients (Blondel et al., "Efficient and Modular Implicit Differentiation", NeurIPS 2022,
arXiv 2105.15183): ``x*(θ)`` is a root of ``F(x, θ) = T(x, θ) − x``, so
``∂x* = (I − ∂ₓT)⁻¹ ∂_θT``, one linear solve (``linear_solve``) per derivative, with respect to
every floating-point array in ``args``/``kwargs``. Reference code: jaxopt 0.8.5's
``FixedPointIteration``.

Differences from jaxopt:

- Defaults are jaxopt's (``max_steps=100``, ``tol=1e-5``); ``maxiter`` is called
  ``max_steps``, ``iter_num`` ``num_steps``; ``verbose``/``jit``/``unroll`` are not offered.
- ``run`` returns :class:`~jaxopt_papers.Solution` with a result code (``max_steps_reached`` when
  ``tol`` is not met, ``nonfinite`` when the iterates blow up) and honours ``throw``; jaxopt
  returns the last iterate silently. ``state.num_fun_evals`` counts applications of ``T``.
- With ``has_aux=True`` the state's ``aux`` has the structure of ``T``'s aux from the start
  (zeros before the first step; jaxopt starts from ``None``).
- The backward solve is :class:`~jaxopt_papers.implicit.LinearSolve` (dense LU on small problems,
  GMRES otherwise) and is checked; jaxopt uses normal-equation CG at ``tol=1e-5``.
- Bad input raises at trace time naming the argument: a ``fixed_point_fun`` that cannot take
  ``(init_params, *args, **kwargs)`` or returns another structure or shape, integer or empty
  ``init_params``, a negative ``tol``, ``max_steps < 1``.
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

__all__ = ["FixedPointIteration", "FixedPointState"]


class FixedPointState(eqx.Module):
    """State of :class:`FixedPointIteration`.

    Attributes:
      num_steps: iterations done.
      error: ``‖T(x_k) − x_k‖₂`` of the last step (``inf`` before the first).
      aux: the aux output of ``fixed_point_fun`` at the last iterate (``has_aux=True``), else
        ``None``.
      num_fun_evals: applications of ``fixed_point_fun``.
    """

    num_steps: jax.Array
    error: jax.Array
    aux: Any
    num_fun_evals: jax.Array


class FixedPointIteration(IterativeSolver):
    """Plain fixed-point iteration ``x ← T(x, *args, **kwargs)`` (see the module docstring).

    Args:
      fixed_point_fun: ``T(x, *args, **kwargs)`` returning a pytree like ``x`` (or
        ``(value, aux)`` with ``has_aux=True``); it should be a contraction.
      max_steps: largest number of iterations.
      tol: stop when ``‖T(x) − x‖₂ ≤ tol``.
      has_aux: ``fixed_point_fun`` returns ``(value, aux)``; ``aux`` is carried in the state.
      implicit_diff: implicit differentiation (``True``) or differentiation through a
        ``lax.scan`` of ``max_steps`` iterations (``False``).
      linear_solve: backward solve (``None``: ``LinearSolve(throw=throw)``).
      throw: raise on failure, or return the result code in ``Solution.result``.

    ``run(init_params, *args, **kwargs)`` returns a :class:`~jaxopt_papers.Solution`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.fixed_point import FixedPointIteration
      >>> T = lambda x, theta: 0.5 * jnp.cos(x) + theta      # a contraction
      >>> solver = FixedPointIteration(T, tol=1e-10)
      >>> sol = solver.run(jnp.zeros(()), 0.3)
      >>> round(float(sol.value - T(sol.value, 0.3)), 8), int(sol.num_steps) < 100
      (0.0, True)
      >>> # dx*/dθ = 1 / (1 + 0.5 sin x*)
      >>> g = jax.grad(lambda t: solver.run(jnp.zeros(()), t).value)(0.3)
      >>> round(float(g), 6) == round(float(1 / (1 + 0.5 * jnp.sin(sol.value))), 6)
      True
    """

    fixed_point_fun: Callable = eqx.field(static=True)
    max_steps: int = eqx.field(static=True, default=100)
    tol: float = 1e-5
    has_aux: bool = eqx.field(static=True, default=False)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "FixedPointIteration did not reach `tol` within `max_steps` iterations. Increase "
            "`max_steps` or loosen `tol`; if `fixed_point_fun` contracts slowly (or not at all) "
            "use AndersonAcceleration. Pass `throw=False` to get the last iterate with this "
            "result code instead."
        ),
        "nonfinite": (
            "FixedPointIteration produced non-finite values (NaN or inf). Check `init_params` "
            "and the arguments for NaN/inf; if the iterates diverged, `fixed_point_fun` is not "
            "a contraction from this starting point (damp it: x ↦ (1 − a)x + aT(x))."
        ),
    }

    def __check_init__(self) -> None:
        owner = type(self).__name__
        C.check_callable(owner, "fixed_point_fun", self.fixed_point_fun)
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
        return jnp.asarray(self.tol) >= 0

    def init(self, init_params: Any, *args: Any, **kwargs: Any) -> FixedPointState:
        """The state before the first step (no evaluation of ``fixed_point_fun``).

        Args:
          init_params: the starting point (a pytree of floating-point arrays).
          *args, **kwargs: the arguments given to `run` after `init_params`.

        Returns:
          The state :class:`FixedPointState` before the first step.
        """
        dtype = C.params_dtype(type(self).__name__, init_params)
        aux_shape = jax.eval_shape(self._fun, init_params, *args, **kwargs)[1]
        return FixedPointState(
            num_steps=jnp.asarray(0, jnp.int32),
            error=jnp.asarray(jnp.inf, dtype),
            aux=C.zeros_like_shape(aux_shape),
            num_fun_evals=jnp.asarray(0, jnp.int32),
        )

    def step(
        self, params: Any, state: FixedPointState, *args: Any, **kwargs: Any
    ) -> tuple[Any, FixedPointState]:
        """One application of ``fixed_point_fun``: ``T(params)``.

        Args:
          params: the current iterate.
          state: the current :class:`FixedPointState`.
          *args, **kwargs: the arguments given to `run` after `init_params`.

        Returns:
          ``(next_params, next_state)``.
        """
        next_params, aux = self._fun(params, *args, **kwargs)
        error = optax.tree.norm(jax.tree.map(jnp.subtract, next_params, params))
        return next_params, FixedPointState(
            num_steps=state.num_steps + 1,
            error=jnp.asarray(error, state.error.dtype),
            aux=aux,
            num_fun_evals=state.num_fun_evals + 1,
        )

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``T(x, *args, **kwargs) − x`` (jaxopt's ``optimality_fun``)."""
        value, _ = self._fun(params, *args, **kwargs)
        return jax.tree.map(jnp.subtract, value, params)
