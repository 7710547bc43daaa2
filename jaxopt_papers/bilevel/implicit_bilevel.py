"""The implicit-differentiation baseline (AID) and its unrolled counterpart (ITD).

Each outer iteration solves the lower level from the previous solution (warm start), takes the
hypergradient and lets an optax transformation update ``x``:

1. ``y ← inner(y, x)`` ≈ ``argmin_y lower_fn(x, y)``;
2. ``mode="implicit"``: ``g = ∇ₓf(x, y) − ∇²ₓᵧg(x, y) [∇²ᵧᵧg(x, y)]⁻¹ ∇ᵧf(x, y)``
   (:func:`~jaxopt_papers.bilevel.hypergradient`: one linear solve with Hessian–vector
   products; the KKT system for a constrained lower level); ``mode="unrolled"``: ``g`` is the
   gradient of ``upper_fn(x, y_T(x))`` through the ``inner_steps`` iterations of the inner
   solver (iterative differentiation);
3. ``x ← x + outer.update(g)``.

``inner`` is the library's L-BFGS by default, or any optax transformation (run for
``inner_steps`` steps), an optimistix minimiser, or a callable ``inner(y0, x, lower_data) -> y``.
The backward solve is pluggable (``backward``): dense LU, CG, GMRES, or a
:class:`~jaxopt_papers.linear.RecyclingSolve`, whose Krylov subspace is carried from one outer
step to the next in the state.

References: Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016;
Franceschi, Donini, Frasconi, Pontil, "Forward and Reverse Gradient-Based Hyperparameter
Optimization", ICML 2017 (ITD); Blondel et al., "Efficient and Modular Implicit
Differentiation", NeurIPS 2022 (jaxopt).

Differences from the reference code: jaxopt has no bilevel loop; its users write one around
``custom_root`` (as ``benchmarks/bilevel.py`` does for the anchor). Here the loop is a solver
with the library's contract, the lower-level residual of every outer step is checked
(``stats["lower_residual"]``, ``RESULTS.inaccurate`` beyond ``lower_tol``), and the backward
solve defaults to dense LU for small ``y`` (jaxopt: normal-equation CG at ``tol=1e-5``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from jaxopt_papers._solution import RESULTS
from jaxopt_papers.bilevel._base import BilevelSolver, BilevelState, check_stepsize, tree_norm
from jaxopt_papers.bilevel.hypergradient import hypergradient
from jaxopt_papers.bilevel.problem import BilevelParams, MultiBlockProblem
from jaxopt_papers.linear.krylov import RecycleState
from jaxopt_papers.linear.recycling_solve import RecyclingSolve

__all__ = ["ImplicitBilevel", "ImplicitBilevelState"]

MODES = ("implicit", "unrolled")


class _Lower(eqx.Module):
    """``lower_fn`` with ``y`` first, as the library's smooth solvers expect."""

    fn: Any = eqx.field(static=True)

    def __call__(self, y: Any, x: Any, data: Any) -> jax.Array:
        return self.fn(x, y, data)


class ImplicitBilevelState(BilevelState):
    """State of :class:`ImplicitBilevel` (beyond :class:`~jaxopt_papers.bilevel.BilevelState`).

    Attributes:
      num_steps: outer iterations done.
      error: the norm of the last hypergradient.
      upper_values: ``upper_fn`` after each outer step.
      num_grads: gradient evaluations (inner solver's and the hypergradient's).
      num_hvps: Hessian- and Jacobian-vector products of the backward solves.
      key: unused (deterministic solver).
      outer_state: the optax state of ``outer``.
      lower_residual: the largest relative lower-level residual met at an outer step.
      recycle: the recycle state of a :class:`~jaxopt_papers.linear.RecyclingSolve` backward
        solve (``None`` otherwise).
    """

    outer_state: Any
    lower_residual: jax.Array
    recycle: Any


class ImplicitBilevel(BilevelSolver):
    """Bilevel optimisation by implicit differentiation (AID) or unrolling (ITD).

    Args:
      problem: a :class:`~jaxopt_papers.bilevel.BilevelProblem` (a constrained lower level
        needs a callable ``inner`` that returns feasible points, and ``mode="implicit"``) or a
        :class:`~jaxopt_papers.bilevel.MultiBlockProblem` (the blocks are solved together).
      outer: the optax transformation that updates ``x`` from the hypergradient (``None``:
        ``optax.sgd(outer_lr)``).
      outer_lr: the learning rate of the default ``outer`` (ignored when ``outer`` is given).
      inner: the lower-level solver: ``None`` (the library's
        :class:`~jaxopt_papers.smooth.LBFGS` to ``inner_tol``), an optax transformation (run
        for ``inner_steps`` steps), an ``optimistix`` minimiser, or a callable
        ``inner(y0, x, lower_data) -> y``.
      inner_steps: the inner solver's iteration cap (L-BFGS, optimistix) or count (optax).
      inner_tol: the default L-BFGS's gradient-norm tolerance.
      mode: ``"implicit"`` (AID, the default) or ``"unrolled"`` (ITD: differentiate through
        the inner iterations; the warm start is not differentiated).
      backward: the backward linear solve of ``mode="implicit"``: ``"auto"`` (dense LU up
        to 256 unknowns, then CG), a name, a :class:`~jaxopt_papers.implicit.LinearSolve`, a
        lineax solver or a :class:`~jaxopt_papers.linear.RecyclingSolve` (its subspace is
        recycled across outer steps).
      lower_tol: the largest accepted relative lower-level residual at an outer step
        (``None``: 1e-4 in float64, 1e-2 otherwise); beyond it a ``mode="implicit"`` run
        reports ``RESULTS.inaccurate`` (the unrolled gradient is exact for the iterations
        taken, so ``mode="unrolled"`` only records the residual in ``stats``).
      tol: stop when the hypergradient's norm is at most ``tol`` (``None``: run
        ``max_steps`` outer steps).
      max_steps: outer iterations.
      record_upper: record ``upper_fn`` after each outer step in ``stats["upper_values"]``.
      implicit_diff: differentiate the solution with respect to the data by the implicit
        function theorem (``False``: through the iterations).
      linear_solve: the linear solve of that differentiation (``None``: the default).
      throw: raise a runtime error on failure (``False``: report it in ``result``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> from jaxopt_papers import bilevel
      >>> rp = bilevel.problems.quadratic(dim_x=3, dim_y=4)
      >>> solver = bilevel.ImplicitBilevel(rp.problem, outer_lr=0.5, tol=1e-4, max_steps=500)
      >>> sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
      >>> error = float(jnp.abs(sol.x - rp.solution.x).max())
      >>> error < 1e-3, bool(sol.result == jop.RESULTS.successful)
      (True, True)
    """

    problem: Any
    outer: Any = eqx.field(static=True, default=None)
    outer_lr: float = 0.1
    inner: Any = eqx.field(static=True, default=None)
    inner_steps: int = eqx.field(static=True, default=100)
    inner_tol: float = 1e-8
    mode: str = eqx.field(static=True, default="implicit")
    backward: Any = "auto"
    lower_tol: float | None = None
    tol: float | None = None
    max_steps: int = eqx.field(static=True, default=100)
    record_upper: bool = eqx.field(static=True, default=True)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        **BilevelSolver.messages,
        "nonfinite": (
            "ImplicitBilevel: the iterates became non-finite (NaN or inf): lower `outer_lr` (or "
            "the learning rate of `outer`), check the data for NaN/inf, or, if the backward "
            "linear solve failed (an ill-conditioned lower level), use `backward='lu'` or a "
            "`LinearSolve` with a larger `max_steps`."
        ),
        "inaccurate": (
            "ImplicitBilevel: at some outer step the inner solver did not solve the lower level "
            "to `lower_tol` (see `stats['lower_residual']`), so the hypergradients were not "
            "trustworthy. Increase `inner_steps`, tighten `inner_tol`, or loosen `lower_tol`."
        ),
        "max_steps_reached": (
            "ImplicitBilevel: the hypergradient's norm did not reach `tol` within `max_steps` "
            "outer steps. Increase `max_steps` or `outer_lr`, or pass `tol=None` to run a "
            "fixed budget."
        ),
    }

    def __check_init__(self) -> None:
        from jaxopt_papers import _validation as V

        V.check_choice("ImplicitBilevel", "mode", self.mode, MODES)
        check_stepsize("ImplicitBilevel", "outer_lr", self.outer_lr)
        check_stepsize("ImplicitBilevel", "inner_tol", self.inner_tol, positive=False)
        V.check_int("ImplicitBilevel", "inner_steps", self.inner_steps, low=1)
        V.check_int("ImplicitBilevel", "max_steps", self.max_steps, low=1)
        if self.lower_tol is not None:
            check_stepsize("ImplicitBilevel", "lower_tol", self.lower_tol)
        if self.tol is not None:
            check_stepsize("ImplicitBilevel", "tol", self.tol, positive=False)
        if self.outer is not None and not isinstance(self.outer, optax.GradientTransformation):
            raise TypeError(
                "ImplicitBilevel: `outer` must be an optax GradientTransformation or None, got "
                f"{type(self.outer).__name__}."
            )
        if self.problem.constraint_fn is not None:
            if not self._inner_is_callable():
                raise ValueError(
                    "ImplicitBilevel: the problem has a `constraint_fn`, so `inner` must be a "
                    "callable inner(y0, x, lower_data) -> y returning feasible points (e.g. a "
                    "projected-gradient or QP solve); the default L-BFGS ignores constraints."
                )
            if self.mode != "implicit":
                raise ValueError(
                    "ImplicitBilevel: `mode='unrolled'` needs an unconstrained lower level."
                )

    # -- the inner solver ----------------------------------------------------------------------

    def _inner_is_callable(self) -> bool:
        return (
            callable(self.inner)
            and not isinstance(self.inner, optax.GradientTransformation)
            and not _is_optimistix(self.inner)
        )

    def _outer(self) -> optax.GradientTransformation:
        return optax.sgd(self.outer_lr) if self.outer is None else self.outer

    def _solve_inner(self, x: Any, y: Any, lower_data: Any, unrolled: bool) -> tuple[Any, Any]:
        """``(y, number of gradient evaluations)`` after the inner solve from ``y``."""
        if isinstance(self.problem, MultiBlockProblem):
            solve_one = lambda yi, li: self._solve_one(x, yi, li, unrolled)
            ys, counts = jax.vmap(solve_one)(y, lower_data)
            return ys, jnp.sum(counts)
        return self._solve_one(x, y, lower_data, unrolled)

    def _solve_one(self, x: Any, y: Any, lower_data: Any, unrolled: bool) -> tuple[Any, Any]:
        lower = self.problem.lower_fn
        if self.inner is None:
            from jaxopt_papers.smooth import LBFGS

            solver = LBFGS(
                fun=_Lower(lower), tol=self.inner_tol, max_steps=self.inner_steps,
                implicit_diff=not unrolled, throw=False,
            )  # fmt: skip
            sol = solver.run(y, x, lower_data)
            return sol.value, sol.stats["num_fun_evals"]
        if isinstance(self.inner, optax.GradientTransformation):
            tx = self.inner
            grad = jax.grad(lower, argnums=1)

            def body(_: Any, carry: tuple[Any, Any]) -> tuple[Any, Any]:
                yk, sk = carry
                updates, sk = tx.update(grad(x, yk, lower_data), sk, yk)
                return optax.apply_updates(yk, updates), sk

            y, _ = jax.lax.fori_loop(0, self.inner_steps, body, (y, tx.init(y)))
            return y, jnp.asarray(self.inner_steps)
        if _is_optimistix(self.inner):
            import optimistix as optx

            sol = optx.minimise(
                lambda yy, args: lower(args[0], yy, args[1]), self.inner, y,
                args=(x, lower_data), max_steps=self.inner_steps, throw=False,
            )  # fmt: skip
            return sol.value, sol.stats["num_steps"]
        return self.inner(y, x, lower_data), jnp.asarray(0)

    # -- init / step ----------------------------------------------------------------------------

    def _backward(self, recycle: Any) -> Any:
        if isinstance(self.backward, RecyclingSolve):
            return self.backward.with_state(recycle)
        return self.backward

    def init(
        self, params: BilevelParams, upper_data: Any, lower_data: Any, key: Any = None
    ) -> ImplicitBilevelState:
        """The state before the first outer step.

        Args:
          params: the starting :class:`~jaxopt_papers.bilevel.BilevelParams` ``(x0, y0)``.
          upper_data: the upper level's data.
          lower_data: the lower level's data.
          key: unused (the solver is deterministic).

        Returns:
          The :class:`ImplicitBilevelState`.
        """
        recycle = None
        if isinstance(self.backward, RecyclingSolve):
            recycle = self.backward.state
            if recycle is None:
                size = sum(v.size for v in jax.tree.leaves(params.y))
                dtype = jnp.result_type(*jax.tree.leaves(params.y))
                recycle = RecycleState.empty(size, self.backward.recycle, dtype)
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return ImplicitBilevelState(
            **self._bookkeeping(params, key),
            outer_state=self._outer().init(params.x),
            lower_residual=jnp.zeros((), dtype),
            recycle=recycle,
        )

    def step(
        self, params: BilevelParams, state: ImplicitBilevelState, upper_data: Any,
        lower_data: Any, key: Any = None,
    ) -> tuple[BilevelParams, ImplicitBilevelState]:  # fmt: skip
        """One outer step: inner solve, hypergradient, ``outer`` update.

        Args:
          params: the current ``(x, y)``.
          state: the current state.
          upper_data: the upper level's data.
          lower_data: the lower level's data.
          key: unused.

        Returns:
          ``(params, state)`` after the step; ``y`` is the lower-level solution at the
          previous ``x`` (the next step's warm start).
        """
        x, y = params
        if self.mode == "implicit":
            y, inner_grads = self._solve_inner(x, y, lower_data, unrolled=False)
            hs = hypergradient(
                self.problem, x, y, upper_data, lower_data, solve=self._backward(state.recycle),
                lower_tol=jnp.inf, full_output=True, throw=False,
            )  # fmt: skip
            g = hs.value
            residual = hs.stats["lower_residual"]
            # A dense solve (num_steps −1) materialises the Hessian: one product per unknown.
            size = sum(v.size for v in jax.tree.leaves(y))
            steps = hs.stats["num_steps"]
            products = hs.stats.get("num_matvecs", jnp.where(steps < 0, size, steps))
            grads, hvps = inner_grads + 2, products + 2
            recycle = hs.state if state.recycle is not None else None
        else:
            y0 = jax.lax.stop_gradient(y)

            def through(xx: Any) -> tuple[jax.Array, tuple[Any, Any]]:
                yy, count = self._solve_inner(xx, y0, lower_data, unrolled=True)
                return self._upper_value(BilevelParams(xx, yy), upper_data), (yy, count)

            g, (y, inner_grads) = jax.grad(through, has_aux=True)(x)
            y = jax.lax.stop_gradient(y)
            from jaxopt_papers.bilevel.hypergradient import lower_residual

            residual = lower_residual(self.problem, x, y, lower_data)
            grads, hvps, recycle = 2 * inner_grads + 1, 0, state.recycle
        updates, outer_state = self._outer().update(g, state.outer_state, x)
        x = optax.apply_updates(x, updates)
        new = BilevelParams(x, y)
        return new, self._advance(
            state, new, upper_data, error=tree_norm(g), grads=grads, hvps=hvps,
            outer_state=outer_state, recycle=recycle,
            lower_residual=jnp.maximum(state.lower_residual, residual.astype(state.error.dtype)),
        )  # fmt: skip

    # -- results ----------------------------------------------------------------------------

    def _lower_tol(self, dtype: Any) -> float:
        if self.lower_tol is not None:
            return self.lower_tol
        return 1e-4 if jnp.finfo(dtype).bits >= 64 else 1e-2

    def _result(self, params: Any, state: Any) -> RESULTS:
        result = super()._result(params, state)
        if self.mode == "unrolled":  # the gradient of the unrolled map needs no solved level
            return result
        solved = state.lower_residual <= self._lower_tol(state.error.dtype)
        return RESULTS.where(solved | (result != RESULTS.successful), result, RESULTS.inaccurate)

    def _stats(self, state: Any) -> dict[str, Any]:
        return {**super()._stats(state), "lower_residual": state.lower_residual}


def _is_optimistix(obj: Any) -> bool:
    try:
        import optimistix as optx
    except ImportError:  # pragma: no cover - optimistix is optional
        return False
    return isinstance(obj, optx.AbstractMinimiser)
