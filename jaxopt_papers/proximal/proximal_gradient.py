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
  ``verbose`` is not offered. jaxopt's ``value_and_grad=``/``has_aux=`` (``fun`` returns
  ``(value, grad)``, ``(value, aux)`` or ``((value, aux), grad)``; ``aux`` at the last gradient
  point is ``state.aux``), ``maxiter=``, ``implicit_diff_solve=`` and ``run(...,
  hyperparams_proj=...)`` are accepted as in jaxopt.
- Bad input is reported, never iterated on silently. Static problems raise at trace time,
  naming the argument: integer or empty ``init_params`` (``TypeError``/``ValueError``), a
  ``prox`` that does not take ``(x, hyperparams, scaling)`` or returns another structure or
  shape than ``init_params``, a ``fun`` that cannot be evaluated at ``init_params`` (e.g. a wrong
  shape) or does not return a scalar, and concrete hyperparameters out of range (a negative
  ``l1reg``, lower > upper ...: the library's proxes and projections check their own). Values
  known only when the computation runs (traced ``hyperparams_prox``, a traced ``stepsize``, a
  ``stepsize`` schedule returning a value ``<= 0``) give ``RESULTS.invalid_input`` (with
  ``throw=True`` a runtime error naming the argument); jaxopt reports such runs as converged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import Solution
from jaxopt_papers.implicit.optimality import prox_gradient_optimality
from jaxopt_papers.implicit.solver import IterativeSolver
from jaxopt_papers.proximal import _checks as C
from jaxopt_papers.proximal.prox import make_prox_from_projection, prox_none

__all__ = ["ProjectedGradient", "ProxGradState", "ProximalGradient"]


class ProxGradState(eqx.Module):
    """State of :class:`ProximalGradient`: step counter, next trial step, error, FISTA (y, t).

    Attributes:
      num_steps: iterations taken (int32).
      stepsize: the step the next iteration tries first (backtracking) or uses (fixed).
      error: ``‖x_{k+1} − x_k‖ / s_{k+1}``, the stopping quantity (``inf`` at the start).
      y: FISTA's extrapolated point (the iterate itself for ISTA).
      t: FISTA's momentum scalar ``t_k`` (1 at the start).
      aux: with ``has_aux=True``, the ``aux`` returned by ``fun`` at the last gradient point;
        else ``None``.
    """

    num_steps: jax.Array
    stepsize: jax.Array
    error: jax.Array
    y: Any
    t: jax.Array
    aux: Any = None


def _axpy(alpha: Any, x: Any, y: Any) -> Any:
    return jax.tree.map(lambda u, v: alpha * u + v, x, y)


def _dtype(params: Any) -> np.dtype:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("ProximalGradient: `init_params` must contain at least one array.")
    V.check_float_leaves("ProximalGradient", "init_params", params)
    return jnp.result_type(*leaves)


def _shapes(tree: Any) -> str:
    return str(jax.tree.map(lambda v: tuple(jnp.shape(v)), tree))


def _accepts(fn: Callable, *args: Any, **kwargs: Any) -> str | None:
    """None if ``fn`` can be called with these arguments, else its signature (as text)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to inspect (a builtin ...): assume it does
        return None
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        return str(sig)
    return None


class ProximalGradient(IterativeSolver):
    """Proximal gradient / FISTA: ``min_x fun(x, *args) + g(x, hyperparams_prox)``.

    Beck & Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse
    Problems", 2009; jaxopt 0.8.5's ``ProximalGradient`` is the reference code. With
    ``prox = prox_g`` and ``s_k`` the step::

        x_{k+1} = prox(y_k − s_k ∇fun(y_k), hyperparams_prox, s_k)
        t_{k+1} = (1 + sqrt(1 + 4 t_k²)) / 2                      (FISTA; ISTA: y_k = x_k)
        y_{k+1} = x_{k+1} + (t_k − 1) / t_{k+1} · (x_{k+1} − x_k)

    until ``‖x_{k+1} − x_k‖ / s_{k+1} ≤ tol``. ``run`` is differentiable with respect to
    ``hyperparams_prox``, ``args`` and ``kwargs`` by implicit differentiation of the fixed point
    ``prox(x − ∇fun(x), hyperparams_prox, 1) = x``. Defaults are jaxopt's (``max_steps=500``,
    ``maxls=15``, ``decrease_factor=0.5``, FISTA) except ``tol=1e-6`` (jaxopt: 1e-3, too loose
    for accurate implicit gradients).

    Args:
      fun: smooth objective ``fun(x, *args, **kwargs) -> scalar``.
      prox: ``prox(x, hyperparams_prox, scaling)`` of the non-smooth term (default: none).
      stepsize: a positive number, a callable ``num_steps -> stepsize``, or ``None`` for
        backtracking.
      acceleration: FISTA (``True``) or ISTA.
      tol: stop when ``‖x_{k+1} − x_k‖ / s_{k+1} ≤ tol``.
      max_steps: iteration cap (jaxopt's ``maxiter``, also accepted).
      maxls: most backtracking halvings per iteration.
      decrease_factor: the step's shrink factor in backtracking, in ``(0, 1)``.
      stable_linesearch: when the sufficient-decrease test is below round-off, test the curvature
        with one extra gradient instead (``False``: jaxopt's test only, which stalls near
        ``tol ≈ 1e-9`` in float64).
      implicit_diff: implicit differentiation (``True``) or unrolled ``lax.scan`` (``False``).
      linear_solve: backward solve (``None``: ``LinearSolve(throw=throw)``).
      throw: raise on failure, or return the result code.
      value_and_grad: ``fun`` returns ``(value, grad)`` itself (jaxopt's option; the gradient
        must be differentiable for implicit differentiation).
      has_aux: ``fun`` returns ``(value, aux)`` (with ``value_and_grad``: ``((value, aux),
        grad)``); ``aux`` at the point of the last gradient is ``state.aux``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.proximal import ProximalGradient, prox_lasso
      >>> X = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
      >>> y = jnp.array([1.0, 2.0, 0.0])
      >>> fun = lambda w, X, y: 0.5 * jnp.sum((X @ w - y) ** 2)
      >>> solver = ProximalGradient(fun, prox=prox_lasso, tol=1e-10)
      >>> sol = solver.run(jnp.zeros(2), 0.1, X, y)  # lasso with l1reg = 0.1
      >>> # both coefficients active: w = (XᵀX)⁻¹(Xᵀy − 0.1) = (0.6, 6.9) / 9
      >>> [round(float(v), 4) for v in sol.params]
      [0.0667, 0.7667]
      >>> # implicit gradient of Σw in l1reg: −Σ (XᵀX)⁻¹ 1 = −5/9
      >>> total = lambda lam: solver.run(jnp.zeros(2), lam, X, y).params.sum()
      >>> round(float(jax.grad(total)(0.1)), 4)
      -0.5556
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
    value_and_grad: bool = eqx.field(static=True, default=False)
    has_aux: bool = eqx.field(static=True, default=False)

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
        "invalid_input": (
            "Proximal gradient: an argument failed a check on its value. `hyperparams_prox` "
            "must be in the range that `prox` accepts (e.g. `l1reg`/`l2reg` >= 0 and not NaN, "
            "`lower <= upper`, a radius >= 0), a `stepsize` (a number, or every value of a "
            "schedule) must be > 0, `decrease_factor` in (0, 1) and `tol` >= 0."
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
        sig = _accepts(self.prox, 0.0, None, 1.0)
        if sig is not None:
            raise TypeError(
                f"{owner}: `prox` must accept `(x, hyperparams, scaling)` (three positional "
                f"arguments, as the library's prox_* functions; wrap a projection with "
                f"`make_prox_from_projection`), got a callable with signature {sig}."
            )

    def _check_call(self, init_params: Any, hp: Any, *args: Any, **kwargs: Any) -> None:
        """Trace-time checks of ``run``'s arguments against ``fun`` and ``prox``."""
        owner = type(self).__name__
        _dtype(init_params)
        sig = _accepts(self.fun, init_params, *args, **kwargs)
        if sig is not None:
            raise TypeError(
                f"{owner}: `fun` must accept `(init_params, *args, **kwargs)` as given to `run` "
                f"({len(args)} extra positional and {sorted(kwargs)} keyword arguments), got a "
                f"callable with signature {sig}."
            )
        try:
            value = eqx.filter_eval_shape(self._value, init_params, *args, **kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{owner}: `fun` could not be evaluated at `init_params` of shapes "
                f"{_shapes(init_params)}: check that `init_params` has the structure and shapes "
                f"that `fun` expects. The error was: {err}"
            ) from err
        if not (hasattr(value, "shape") and value.shape == ()):
            raise ValueError(
                f"{owner}: `fun` must return a scalar, got "
                f"{getattr(value, 'shape', type(value).__name__)} at `init_params`."
            )
        with C.traced_checks("skip"):
            out = eqx.filter_eval_shape(self.prox, init_params, hp, jnp.ones((), value.dtype))
        want = jax.tree.map(lambda v: tuple(jnp.shape(v)), init_params)
        got = jax.tree.map(lambda v: tuple(jnp.shape(v)), out)
        if jax.tree.structure(out) != jax.tree.structure(init_params) or got != want:
            raise ValueError(
                f"{owner}: `prox(x, hyperparams_prox, scaling)` must return the structure and "
                f"shapes of `x` (`init_params`: {want}), got {got}."
            )

    def _inputs_valid(self, init_params: Any, hp: Any, *args: Any, **kwargs: Any) -> jax.Array:
        """Traced checks of values: the prox's own (on ``hp``), ``stepsize``, ``tol``."""
        # The prox at 0 (finite whatever `init_params` holds: NaN there is left to the
        # `nonfinite` code) is NaN where one of its checks of `hp` failed, or where `hp` is NaN.
        zeros = jax.tree.map(jnp.zeros_like, init_params)
        with C.traced_checks("poison"):
            checked = self.prox(zeros, hp, jnp.ones((), _dtype(init_params)))
        preds = [V.all_finite(checked)]
        if self.stepsize is not None and not callable(self.stepsize):
            preds.append(jnp.asarray(self.stepsize) > 0)
        preds.append(jnp.asarray(self.tol) >= 0)
        df = jnp.asarray(self.decrease_factor)
        preds.append((df > 0) & (df < 1))
        return jnp.all(jnp.stack([jnp.all(p) for p in preds]))

    def run(
        self, init_params: Any, hyperparams_prox: Any = None, *args: Any, **kwargs: Any
    ) -> Solution:
        """Solve from ``init_params``; differentiable in ``hyperparams_prox``, ``args``, ``kwargs``.

        Concrete hyperparameters out of range raise ``ValueError`` here (the library's proxes
        and projections check their own); traced ones give ``RESULTS.invalid_input``.

        Args:
          init_params: the starting point (any pytree of float arrays).
          hyperparams_prox: the hyperparameters of ``prox`` (e.g. ``l1reg``); ``hyperparams_proj=``
            (jaxopt's :class:`ProjectedGradient` keyword) is accepted as an alias.
          *args: the data passed to ``fun``.
          **kwargs: the keyword data passed to ``fun``.

        Returns:
          The :class:`~jaxopt_papers.Solution` (``params``, ``result``, ``stats`` with
          ``num_steps`` and ``error``, ``state`` a :class:`ProxGradState`).
        """
        if "hyperparams_proj" in kwargs:
            if hyperparams_prox is not None:
                raise TypeError(
                    f"{type(self).__name__}.run: got both `hyperparams_prox` and its jaxopt "
                    "alias `hyperparams_proj`; pass only one."
                )
            hyperparams_prox = kwargs.pop("hyperparams_proj")
        if any(not isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(hyperparams_prox)):
            leaves = jax.tree.leaves(init_params)
            if leaves and all(hasattr(v, "shape") for v in leaves):
                with C.traced_checks("skip"):
                    jax.eval_shape(lambda x: self.prox(x, hyperparams_prox, 1.0), init_params)
        return super().run(init_params, hyperparams_prox, *args, **kwargs)

    def _state_valid(self, state: Any) -> jax.Array:
        return state.stepsize > 0  # a schedule may produce a non-positive step

    def _loop_context(self) -> Any:
        return C.traced_checks("skip")  # the inputs are checked once, before the loop

    def _prox_grad(self, y: Any, grad: Any, stepsize: Any, hyperparams_prox: Any) -> Any:
        return self.prox(_axpy(-stepsize, grad, y), hyperparams_prox, stepsize)

    def init(self, init_params: Any, hyperparams_prox: Any, *args: Any, **kwargs: Any) -> Any:
        del hyperparams_prox
        dtype = _dtype(init_params)
        aux = self._value_grad_aux(init_params, *args, **kwargs)[2] if self.has_aux else None
        return ProxGradState(
            num_steps=jnp.asarray(0, jnp.int32),
            stepsize=jnp.asarray(1.0, dtype),
            error=jnp.asarray(jnp.inf, dtype),
            y=init_params,
            t=jnp.asarray(1.0, dtype),
            aux=aux,
        )

    def _value(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """The objective's value at ``x`` (whatever ``value_and_grad``/``has_aux`` say)."""
        out = self.fun(x, *args, **kwargs)
        if self.value_and_grad:
            out = out[0]
        return out[0] if self.has_aux else out

    def _value_grad_aux(self, x: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
        """``(value, gradient, aux)`` at ``x`` (``aux`` is ``None`` unless ``has_aux``)."""
        if self.value_and_grad:  # fun returns (value, grad) or ((value, aux), grad)
            value, grad = self.fun(x, *args, **kwargs)
        else:
            value, grad = jax.value_and_grad(self.fun, has_aux=self.has_aux)(x, *args, **kwargs)
        value, aux = value if self.has_aux else (value, None)
        return value, grad, aux

    def _line_search(
        self, y: Any, value: Any, grad: Any, stepsize: Any, hp: Any, args: tuple, kwargs: dict
    ) -> tuple[Any, jax.Array]:
        eps = jnp.finfo(jnp.result_type(value)).eps

        def reject(carry: tuple) -> jax.Array:
            x, s, i = carry
            diff = jax.tree.map(jnp.subtract, x, y)
            sq = optax.tree.norm(diff, squared=True)
            fx = self._value(x, *args, **kwargs)
            decrease = s * (fx - value)
            bound = s * optax.tree.vdot(diff, grad) + 0.5 * sq
            if not self.stable_linesearch:
                return (i < self.maxls) & (decrease > bound + eps)

            def curvature_too_high(_: None) -> jax.Array:
                grad_x = self._value_grad_aux(x, *args, **kwargs)[1]
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
        value, grad, aux = self._value_grad_aux(y, *args, **kwargs)
        if self.stepsize is None:
            x, s = self._line_search(y, value, grad, state.stepsize, hyperparams_prox, args, kwargs)
            next_stepsize = jnp.where(s <= 1e-6, 1.0, s / self.decrease_factor)
        else:
            s = self.stepsize(state.num_steps) if callable(self.stepsize) else self.stepsize
            if callable(self.stepsize) and not isinstance(s, jax.core.Tracer):
                if not np.all(np.asarray(s) > 0):
                    raise ValueError(
                        f"{type(self).__name__}: the `stepsize` schedule must return values > 0, "
                        f"got {s!r}."
                    )
            x = self._prox_grad(y, grad, s, hyperparams_prox)
            next_stepsize = s
        next_stepsize = jnp.asarray(next_stepsize, dtype)
        diff = jax.tree.map(jnp.subtract, x, params)
        # A step size <= 0 (from a schedule, or traced) ends the loop with error NaN; `run`
        # reports it as RESULTS.invalid_input.
        error = jnp.where(next_stepsize > 0, optax.tree.norm(diff) / next_stepsize, jnp.nan)
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
            aux=aux,
        )
        return x, new_state

    def optimality_fn(self, params: Any, hyperparams_prox: Any, *args: Any, **kwargs: Any) -> Any:
        """``prox(x − ∇fun(x), hyperparams_prox, 1) − x`` (jaxopt's ``optimality_fun``)."""
        if self.value_and_grad:  # the gradient is the user's: no `jax.grad` of `fun`
            grad = self._value_grad_aux(params, *args, **kwargs)[1]
            with C.traced_checks("skip"):
                moved = self.prox(_axpy(-1.0, grad, params), hyperparams_prox, 1.0)
            return jax.tree.map(jnp.subtract, moved, params)
        F = prox_gradient_optimality(self._value, self.prox, 1.0)
        with C.traced_checks("skip"):  # the values were checked by `run`
            return F(params, hyperparams_prox, *args, **kwargs)


def ProjectedGradient(fun: Callable, projection: Callable, **kwargs: Any) -> ProximalGradient:
    """Projected gradient: :class:`ProximalGradient` with ``prox = projection`` (any step).

    ``run(init_params, hyperparams_projection, *args, **kwargs)`` minimises ``fun`` over the set
    onto which ``projection(x, hyperparams_projection)`` projects, e.g.
    ``ProjectedGradient(fun, projection_simplex).run(x0, 1.0, X, y)``; the iteration is
    ``x_{k+1} = projection(y_k − s_k ∇fun(y_k), hp)`` (accelerated by default), as jaxopt's
    ``ProjectedGradient``.

    Args:
      fun: smooth objective ``fun(x, *args, **kwargs) -> scalar``.
      projection: ``projection(x, hyperparams)``, e.g. one of this package's ``projection_*``.
      **kwargs: the other settings of :class:`ProximalGradient` (``tol``, ``stepsize`` ...).

    Returns:
      A :class:`ProximalGradient` whose ``prox`` is the projection.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import ProjectedGradient, projection_simplex
      >>> fun = lambda w, c: 0.5 * jnp.sum((w - c) ** 2)  # the nearest point of the simplex
      >>> sol = ProjectedGradient(fun, projection_simplex, tol=1e-10).run(
      ...     jnp.ones(3) / 3, 1.0, jnp.array([0.5, 1.5, -1.0]))
      >>> [round(float(v), 6) for v in sol.params]
      [0.0, 1.0, 0.0]
    """
    if not callable(projection):
        raise TypeError(
            f"ProjectedGradient: `projection` must be callable, got {type(projection).__name__}."
        )
    return ProximalGradient(fun, prox=make_prox_from_projection(projection), **kwargs)
