"""What the bilevel solvers share: the state's bookkeeping, ``run``, results, checks, batches.

A bilevel solver is an :class:`~jaxopt_papers.implicit.IterativeSolver` whose iterate is a
:class:`~jaxopt_papers.bilevel.BilevelParams` ``(x, y)`` and whose problem's data are
``(upper_data, lower_data)``; ``run(x0, y0, upper_data, lower_data, key=None)`` returns the one
:class:`~jaxopt_papers.Solution` (``sol.x``, ``sol.y``, ``sol.result``, ``sol.stats``).

The papers' algorithms run for a budget of iterations: with ``tol=None`` (their default) a run
performs ``max_steps`` steps and succeeds unless the iterates become non-finite; with a ``tol``
it stops once the solver's ``error`` (the norm of its own hypergradient estimate, a stationarity
measure) is at most ``tol``, and reports ``max_steps_reached`` otherwise. A run whose iterates
become non-finite stops at once with ``RESULTS.nonfinite`` (never NaN silently).

``stats``: ``num_steps``, ``error``, ``upper_values`` (``upper_fn`` after each step, NaN past
the last step; empty with ``record_upper=False``), ``num_grads`` (gradients of ``upper_fn`` or
``lower_fn``, full or mini-batch, each call counted once) and ``num_hvps`` (Hessian- or
Jacobian-vector products of ``lower_fn``).

Gradients of the solution with respect to the data (``implicit_diff=True``) come from the
implicit function theorem on the joint condition ``(∇F(x), ∇ᵧ lower_fn(x, y)) = 0``, whose
Jacobian involves third derivatives of the objectives (affordable on small problems); this
needs an unconstrained lower level. ``implicit_diff=False`` differentiates through the
iterations instead (any problem).

Differences from the reference code: the papers' codes are scripts with fixed problems; this
base gives every algorithm the library's one solver contract.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, Solution
from jaxopt_papers.bilevel.hypergradient import hypergradient
from jaxopt_papers.bilevel.problem import BilevelParams, MultiBlockProblem
from jaxopt_papers.implicit.linear_solve import LinearSolve
from jaxopt_papers.implicit.solver import IterativeSolver

__all__ = ["BilevelSolver", "BilevelState", "minibatch", "tree_norm"]


def tree_norm(tree: Any) -> jax.Array:
    """Euclidean norm over all leaves of a pytree."""
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.abs(v) ** 2) for v in leaves))


def minibatch(key: jax.Array, data: Any, batch_size: int | None) -> Any:
    """Rows ``idx`` (drawn without replacement) of every leaf of ``data`` with a leading axis.

    ``batch_size=None`` returns ``data`` unchanged (the full batch). Every leaf with at least
    one axis must have the same leading size ``n`` (the samples); scalars are kept as they are.

    Args:
      key: a PRNG key.
      data: a pytree of arrays whose leading axis indexes samples.
      batch_size: the number of rows drawn, or ``None``.

    Returns:
      ``data`` restricted to ``batch_size`` random rows.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.bilevel import minibatch
      >>> X, t = jnp.arange(10.0).reshape(5, 2), jnp.arange(5.0)
      >>> Xb, tb = minibatch(jax.random.key(0), (X, t), 2)
      >>> Xb.shape, bool(jnp.all(Xb[:, 0] == 2 * tb))
      ((2, 2), True)
    """
    if batch_size is None:
        return data
    sizes = {np.shape(v)[0] for v in jax.tree.leaves(data) if np.ndim(v) >= 1}
    if len(sizes) != 1:
        raise ValueError(
            f"minibatch: every array of the data must have the same number of rows (samples) "
            f"on its leading axis to draw a batch of {batch_size}, got leading sizes "
            f"{sorted(sizes)}."
        )
    (n,) = sizes
    if batch_size > n:
        raise ValueError(f"minibatch: `batch_size` ({batch_size}) exceeds the {n} samples.")
    idx = jax.random.choice(key, n, (batch_size,), replace=False)
    return jax.tree.map(lambda v: v[idx] if np.ndim(v) >= 1 else v, data)


class BilevelState(eqx.Module):
    """The bookkeeping every bilevel solver's state holds (solvers subclass it).

    Attributes:
      num_steps: iterations done.
      error: the solver's stationarity measure after the last step.
      upper_values: ``upper_fn`` after each step (NaN past ``num_steps``).
      num_grads: gradient evaluations so far.
      num_hvps: Hessian- or Jacobian-vector products so far.
      key: the PRNG key of stochastic solvers (a fixed key for deterministic ones).
    """

    num_steps: jax.Array
    error: jax.Array
    upper_values: jax.Array
    num_grads: jax.Array
    num_hvps: jax.Array
    key: jax.Array


class BilevelSolver(IterativeSolver):
    """Base of the bilevel solvers: ``run(x0, y0, upper_data, lower_data, key=None)``.

    Subclasses declare the fields ``problem``, ``tol`` (``None``: run the budget),
    ``max_steps``, ``record_upper``, ``implicit_diff``, ``linear_solve``, ``throw``, and
    implement ``init(params, upper_data, lower_data, key=None)`` (calling :meth:`_bookkeeping`)
    and ``step(params, state, upper_data, lower_data, key=None)`` (calling :meth:`_advance`).

    Example:
      >>> from typing import Any
      >>> import equinox as eqx, jax, jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> class Alternating(bilevel.BilevelSolver):  # 20 lower GD steps, one exact hypergradient
      ...     problem: Any
      ...     lr: float = 0.15
      ...     tol: float | None = None
      ...     max_steps: int = eqx.field(static=True, default=300)
      ...     record_upper: bool = eqx.field(static=True, default=True)
      ...     implicit_diff: bool = eqx.field(static=True, default=True)
      ...     linear_solve: Any = None
      ...     throw: bool = eqx.field(static=True, default=True)
      ...     def init(self, params, upper_data, lower_data, key=None):
      ...         return bilevel.BilevelState(**self._bookkeeping(params, key))
      ...     def step(self, params, state, upper_data, lower_data, key=None):
      ...         x, y = params
      ...         grad = jax.grad(self.problem.lower_fn, argnums=1)
      ...         y = jax.lax.fori_loop(0, 20, lambda _, v: v - self.lr * grad(x, v, lower_data), y)
      ...         g = bilevel.hypergradient(self.problem, x, y, upper_data, lower_data, throw=False)
      ...         new = bilevel.BilevelParams(x - self.lr * g, y)
      ...         return new, self._advance(state, new, upper_data, error=jnp.linalg.norm(g),
      ...                                   grads=22, hvps=3)
      >>> rp = bilevel.problems.quadratic(dim_x=2, dim_y=3)
      >>> sol = Alternating(rp.problem).run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
      >>> float(jnp.abs(sol.x - rp.solution.x).max()) < 1e-3, int(sol.stats["num_grads"])
      (True, 6600)
    """

    #: Whether the solver draws random samples (``run`` then needs a ``key``).
    stochastic: ClassVar[bool] = False

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "The bilevel solver did not reach `tol` within `max_steps` iterations. Increase "
            "`max_steps`, loosen `tol` (or pass `tol=None` to run a fixed budget), or tune the "
            "step sizes. Pass `throw=False` to get the last iterate with this result code."
        ),
        "nonfinite": (
            "The bilevel iterates became non-finite (NaN or inf): the step sizes are too large "
            "for this problem, or the data contain NaN/inf. Reduce the step sizes."
        ),
        "invalid_input": (
            "The bilevel solver's inputs contain NaN or inf: check `x0`, `y0`, `upper_data` and "
            "`lower_data`."
        ),
    }

    @property
    def _owner(self) -> str:
        return type(self).__name__

    def run(  # type: ignore[override]
        self, x0: Any, y0: Any, upper_data: Any = None, lower_data: Any = None, key: Any = None
    ) -> Solution:
        """Solve the bilevel problem from ``(x0, y0)``.

        Args:
          x0: the initial upper-level variable (any pytree of floating-point arrays).
          y0: the initial lower-level variable (for a :class:`MultiBlockProblem`, the block
            axis first).
          upper_data: the upper level's data, passed to ``upper_fn``.
          lower_data: the lower level's data, passed to ``lower_fn`` (and ``constraint_fn``).
          key: a PRNG key (``jax.random.key``); needed by stochastic solvers, ignored by
            deterministic ones. The same key gives the same run.

        Returns:
          The :class:`~jaxopt_papers.Solution`: ``sol.x``, ``sol.y`` (``sol.value`` is the
          :class:`BilevelParams`), ``sol.result``, ``sol.stats`` (``num_steps``, ``error``,
          ``upper_values``, ``num_grads``, ``num_hvps``) and the final ``sol.state``.
        """
        if key is None:
            if self._needs_key():
                raise ValueError(
                    f"{self._owner}.run: this configuration samples at random; pass "
                    f"`key=jax.random.key(seed)` (the same key reproduces the run)."
                )
            key = jax.random.key(0)
        return super().run(BilevelParams(x0, y0), upper_data, lower_data, key=key)

    def _needs_key(self) -> bool:
        return self.stochastic

    # -- shared pieces of init/step ------------------------------------------------------------

    def _upper_value(self, params: BilevelParams, upper_data: Any) -> jax.Array:
        if isinstance(self.problem, MultiBlockProblem):
            return jnp.mean(self.problem.block_upper(params.x, params.y, upper_data))
        return self.problem.upper_fn(params.x, params.y, upper_data)

    def _bookkeeping(self, params: BilevelParams, key: Any) -> dict[str, Any]:
        """The :class:`BilevelState` fields of a fresh state (``**`` them into the state)."""
        dtype = jnp.result_type(*jax.tree.leaves(params))
        length = self.max_steps if self.record_upper else 0
        return dict(
            num_steps=jnp.asarray(0),
            error=jnp.asarray(jnp.inf, dtype),
            upper_values=jnp.full((length,), jnp.nan, dtype),
            num_grads=jnp.asarray(0),
            num_hvps=jnp.asarray(0),
            key=key,
        )

    def _advance(
        self, state: BilevelState, params: BilevelParams, upper_data: Any, *,
        error: Any, grads: int | jax.Array, hvps: int | jax.Array = 0, **fields: Any,
    ) -> BilevelState:  # fmt: skip
        """The state after a step that produced ``params``: count, record, replace ``fields``."""
        k = state.num_steps
        values = state.upper_values
        if self.record_upper:
            value = self._upper_value(params, upper_data).astype(values.dtype)
            values = values.at[jnp.minimum(k, values.shape[0] - 1)].set(value)
        error = jnp.asarray(error, state.error.dtype)
        finite = jnp.isfinite(error) & V.all_finite(params)
        return dataclasses.replace(
            state, num_steps=k + 1, error=jnp.where(finite, error, jnp.nan),
            upper_values=values, num_grads=state.num_grads + grads,
            num_hvps=state.num_hvps + hvps, **fields,
        )  # fmt: skip

    # -- the IterativeSolver hooks -------------------------------------------------------------

    def _continue(self, state: Any) -> jax.Array:
        go = (state.num_steps < self.max_steps) & ~jnp.isnan(state.error)
        if self.tol is not None:
            go = go & (state.error > self.tol)
        return go

    def _result(self, params: Any, state: Any) -> RESULTS:
        finite = ~jnp.isnan(state.error) & V.all_finite(params)
        if self.tol is None:
            result = RESULTS.successful
        else:
            result = RESULTS.where(
                state.error <= self.tol, RESULTS.successful, RESULTS.max_steps_reached
            )
        return RESULTS.where(finite, result, RESULTS.nonfinite)

    def _stats(self, state: Any) -> dict[str, Any]:
        return {
            "num_steps": state.num_steps,
            "error": state.error,
            "upper_values": state.upper_values,
            "num_grads": state.num_grads,
            "num_hvps": state.num_hvps,
        }

    def _check_call(self, params: Any, upper_data: Any, lower_data: Any, key: Any = None) -> None:
        if not isinstance(params, BilevelParams):
            raise TypeError(
                f"{self._owner}: call run(x0, y0, upper_data, lower_data, key=None), or pass a "
                f"BilevelParams(x, y) to init/step; got {type(params).__name__}."
            )
        self.problem.check(self._owner, params.x, params.y, upper_data, lower_data)

    def _inputs_valid(
        self, params: Any, upper_data: Any, lower_data: Any, key: Any = None
    ) -> jax.Array:
        floats = [v for v in jax.tree.leaves((params, upper_data, lower_data))
                  if eqx.is_inexact_array(v)]  # fmt: skip
        return V.all_finite(floats)

    def _implicit_loop(self, params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if self.problem.constraint_fn is None:
            return super()._implicit_loop(params, *args, **kwargs)
        return _not_differentiable((self, params, args, kwargs))

    def optimality_fn(
        self, params: BilevelParams, upper_data: Any, lower_data: Any, key: Any = None
    ) -> BilevelParams:
        """``(∇F(x), ∇ᵧ lower_fn(x, y))``: zero at a solution of an unconstrained problem."""
        x, y = params
        gx = hypergradient(
            self.problem, x, y, upper_data, lower_data,
            solve=LinearSolve(throw=False), lower_tol=np.inf, throw=False,
        )  # fmt: skip
        if isinstance(self.problem, MultiBlockProblem):
            gy = jax.vmap(jax.grad(self.problem.lower_fn, argnums=1), in_axes=(None, 0, 0))(
                x, y, lower_data
            )
        else:
            gy = jax.grad(self.problem.lower_fn, argnums=1)(x, y, lower_data)
        return BilevelParams(gx, gy)


@eqx.filter_custom_jvp
def _not_differentiable(inputs: tuple) -> tuple[Any, Any]:
    solver, params, args, kwargs = inputs
    return solver._while_loop(params, *args, **kwargs)


@_not_differentiable.def_jvp
def _not_differentiable_jvp(primals: tuple, tangents: tuple) -> Any:
    solver = primals[0][0]
    raise ValueError(
        f"{type(solver).__name__}: the derivative of a bilevel solution with respect to the data "
        f"is defined here only for an unconstrained lower level (`constraint_fn=None`); pass "
        f"`implicit_diff=False` to differentiate through the iterations."
    )


def check_stepsize(owner: str, name: str, value: Any, *, positive: bool = True) -> None:
    """A step size (or other rate) is a finite number ``> 0`` (``>= 0`` without ``positive``)."""
    V.check_real(owner, name, value, low=0.0, low_open=positive)
