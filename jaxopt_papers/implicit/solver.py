"""Solver base: ``init``/``step``/``run``, result codes, stats, ``throw``, implicit gradients.

Every iterative solver of the library is an ``equinox.Module`` (a pytree: numeric settings are
leaves, structure is static) that subclasses :class:`IterativeSolver` and implements

- ``init(init_params, *args, **kwargs) -> state`` (a pytree with ``num_steps`` and ``error``),
- ``step(params, state, *args, **kwargs) -> (params, state)``,
- ``optimality_fn(params, *args, **kwargs)``, zero exactly at a solution.

``run(init_params, *args, **kwargs)`` iterates ``step`` in a compiled ``lax.while_loop`` until
``state.error <= tol`` or ``max_steps``, and returns the library's one
:class:`~jaxopt_papers.Solution` with ``value`` (alias ``params``), ``result`` (a
:class:`~jaxopt_papers.RESULTS` code), ``stats`` (``num_steps``, ``error``) and ``state``, built by
:func:`~jaxopt_papers._solution.finish`, which applies ``throw`` with the solver's own
``messages``.

Differentiation (``implicit_diff=True``, the default) is by the implicit function theorem on
``optimality_fn`` through :func:`~jaxopt_papers.implicit.custom_root`: gradients with respect to
every floating-point array in ``args``/``kwargs`` (and the solver's own array fields), in forward
and reverse mode, at the cost of one linear solve. ``implicit_diff=False`` runs ``max_steps``
iterations of a ``lax.scan`` (iterates frozen once converged) and differentiates through them:
the unrolled mode used to check implicit gradients, and a fixed-iteration mode for ``vmap``.

``throw=True`` (default) turns a failure into a runtime error whose message says what to
change; ``throw=False`` returns the code in ``Solution.result`` (use it under ``vmap``).

This layout follows optimistix/lineax (Modules, ``RESULTS`` enumeration, ``Solution``) and
jaxopt (``init``/``update``/``run``, ``optimality_fun``).

Differences from the reference code (jaxopt 0.8.5 ``base.IterativeSolver``): solvers are
pytrees (``equinox.Module``) rather than dataclasses holding callables, so they pass through
``jit`` and two equal configurations share a compilation; ``run`` returns ``Solution`` with a
result code and honours ``throw`` instead of returning ``OptStep`` silently; the names are
``init``/``step``/``max_steps``/``num_steps`` (jaxopt: ``init_state``/``update``/``maxiter``/
``iter_num``); the unrolled mode is a ``lax.scan`` of ``max_steps`` steps (jaxopt: an unrolled
Python or ``fori`` loop), and there is no ``jit=``/``unroll=`` flag (jaxopt #242).

jaxopt's spellings are accepted so that migrating code runs unchanged: every solver's
constructor takes ``maxiter=`` for ``max_steps=`` and ``implicit_diff_solve=`` for
``linear_solve=`` (the metaclass renames them before equinox's generated ``__init__`` runs, so a
subclass needs no code for it), and ``params, state = solver.run(...)`` unpacks a
:class:`~jaxopt_papers.Solution`.
"""

import abc
import contextlib
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from equinox import AbstractVar

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, Solution, finish
from jaxopt_papers.implicit.implicit_diff import custom_root
from jaxopt_papers.implicit.linear_solve import LinearSolve, as_linear_solve

__all__ = ["RESULTS", "IterativeSolver", "Solution"]


def _solver_optimality(params: Any, solver: "IterativeSolver", *args: Any, **kwargs: Any) -> Any:
    return solver.optimality_fn(params, *args, **kwargs)


def _solver_loop(init_params: Any, solver: "IterativeSolver", *args: Any, **kwargs: Any) -> Any:
    with solver._loop_context():
        return solver._while_loop(init_params, *args, **kwargs)


def _box_float(x: Any) -> Any:
    return jnp.asarray(x) if isinstance(x, (float, complex)) else x


@eqx.filter_jit
def _compiled_run(solver: "IterativeSolver", init_params: Any, args: tuple, kwargs: dict) -> Any:
    return solver._run(init_params, *args, **kwargs)


#: jaxopt's constructor keywords accepted by every solver, and the field each one sets.
JAXOPT_ALIASES: dict[str, str] = {"maxiter": "max_steps", "implicit_diff_solve": "linear_solve"}


class _JaxoptAliases(type(eqx.Module)):
    """Metaclass of :class:`IterativeSolver`: maps jaxopt's keywords onto the library's fields.

    ``Solver(..., maxiter=100)`` is ``Solver(..., max_steps=100)`` and
    ``implicit_diff_solve=s`` is ``linear_solve=s``, for every subclass, with nothing to write
    in the subclass (equinox generates ``__init__``; the renaming happens before it is called).
    Giving both names of one setting raises ``TypeError``.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        fields = getattr(cls, "__dataclass_fields__", {})
        for alias, name in JAXOPT_ALIASES.items():
            if alias in kwargs and alias not in fields and name in fields:
                if name in kwargs:
                    raise TypeError(
                        f"{cls.__name__}: got both `{alias}` (jaxopt's name) and `{name}`; "
                        f"pass only `{name}`."
                    )
                kwargs[name] = kwargs.pop(alias)
        return super().__call__(*args, **kwargs)


class IterativeSolver(eqx.Module, metaclass=_JaxoptAliases):
    """Base of the library's iterative solvers: ``init``/``step``/``run`` and implicit gradients.

    A subclass is an ``equinox.Module`` with the five fields below (its constructor's
    arguments) and three methods:
    ``init`` (the first state, a pytree with ``num_steps`` and ``error``), ``step`` (one
    iteration) and ``optimality_fn`` (``F``, zero exactly at a solution). ``run`` then iterates
    ``step`` in a compiled ``lax.while_loop`` until ``error <= tol`` or ``max_steps``, returns a
    :class:`~jaxopt_papers.Solution`, and is differentiated by the implicit function theorem
    on ``optimality_fn`` (one linear solve, :func:`custom_root`) instead of through the loop.
    jaxopt's ``maxiter=`` and ``implicit_diff_solve=`` keywords are accepted by every
    subclass's constructor.

    Attributes:
      tol: stop when ``state.error <= tol``.
      max_steps: iteration cap (static); not reaching ``tol`` gives ``max_steps_reached``.
      implicit_diff: differentiate by the implicit function theorem (``True``) or through a
        ``lax.scan`` of ``max_steps`` steps (``False``: the unrolled check, and a
        fixed-iteration mode for ``vmap``).
      linear_solve: the backward solve: ``None`` (a :class:`LinearSolve` with this solver's
        ``throw``), a :class:`LinearSolve`, a lineax solver, a name or a callable.
      throw: raise a runtime error on failure (``True``) or return the code in
        ``Solution.result`` (``False``, needed under ``vmap``).

    Example:
      >>> from typing import Any, NamedTuple
      >>> import equinox as eqx, jax, jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> from jaxopt_papers.implicit import IterativeSolver
      >>> class State(NamedTuple):
      ...     num_steps: jax.Array
      ...     error: jax.Array
      >>> class RidgeGD(IterativeSolver):  # gradient descent on ½‖x − 1‖² + ½ lam ‖x‖²
      ...     tol: float = 1e-10
      ...     max_steps: int = eqx.field(static=True, default=100)
      ...     implicit_diff: bool = eqx.field(static=True, default=True)
      ...     linear_solve: Any = None
      ...     throw: bool = eqx.field(static=True, default=True)
      ...     def optimality_fn(self, x, lam):
      ...         return (x - 1.0) + lam * x
      ...     def init(self, x, lam):
      ...         return State(jnp.asarray(0), jnp.linalg.norm(self.optimality_fn(x, lam)))
      ...     def step(self, x, state, lam):
      ...         x = x - 0.4 * self.optimality_fn(x, lam)
      ...         return x, State(state.num_steps + 1, jnp.linalg.norm(self.optimality_fn(x, lam)))
      >>> sol = RidgeGD().run(jnp.zeros(2), 1.0)   # the minimiser is 1 / (1 + lam)
      >>> [round(float(v), 6) for v in sol.value], bool(sol.result == jop.RESULTS.successful)
      ([0.5, 0.5], True)
      >>> # implicit gradient: d/dlam of 2 / (1 + lam) = -2 / (1 + lam)² at lam = 1
      >>> round(float(jax.grad(lambda lam: RidgeGD().run(jnp.zeros(2), lam).value.sum())(1.0)), 6)
      -0.5
    """

    tol: AbstractVar[float]
    max_steps: AbstractVar[int]
    implicit_diff: AbstractVar[bool]
    linear_solve: AbstractVar[Any]
    throw: AbstractVar[bool]

    #: ``∂F/∂x`` of ``optimality_fn`` is symmetric positive definite at a solution.
    symmetric_optimality: ClassVar[bool] = False

    #: The solver's own failure messages (naming its arguments), keyed by ``RESULTS`` name.
    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "The solver did not reach `tol` within `max_steps` iterations. Increase "
            "`max_steps`, loosen `tol`, or improve the conditioning of the problem. Pass "
            "`throw=False` to get the last iterate with this result code instead."
        ),
    }

    @abc.abstractmethod
    def init(self, init_params: Any, *args: Any, **kwargs: Any) -> Any:
        """The initial state: a pytree with at least ``num_steps`` and ``error``.

        Args:
          init_params: the starting point.
          *args: the problem's data, as passed to ``run``.
          **kwargs: the problem's keyword data, as passed to ``run``.

        Returns:
          The solver's state (``num_steps`` 0; ``error`` the stopping quantity at the start).
        """

    @abc.abstractmethod
    def step(self, params: Any, state: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """One iteration: ``(params, state) -> (params, state)``.

        Args:
          params: the current iterate.
          state: the current state (from ``init`` or the previous ``step``).
          *args: the problem's data, as passed to ``run``.
          **kwargs: the problem's keyword data, as passed to ``run``.

        Returns:
          ``(params, state)`` after one iteration; ``state.error`` is the stopping quantity.
        """

    @abc.abstractmethod
    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``F(params, *args, **kwargs)``, zero exactly at a solution, shaped like ``params``."""

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        """Trace-time checks of ``run``'s arguments (raise ``TypeError``/``ValueError``)."""

    def _inputs_valid(self, init_params: Any, *args: Any, **kwargs: Any) -> jax.Array:
        """Whether the (possibly traced) inputs are valid; ``False`` gives ``invalid_input``."""
        return jnp.asarray(True)

    def _state_valid(self, state: Any) -> jax.Array:
        """Whether the final state shows valid inputs; ``False`` gives ``invalid_input``."""
        return jnp.asarray(True)

    def _loop_context(self) -> contextlib.AbstractContextManager:
        """A context entered while the solver's loop is traced."""
        return contextlib.nullcontext()

    def _continue(self, state: Any) -> jax.Array:
        return (state.num_steps < self.max_steps) & (state.error > self.tol)

    def _while_loop(self, init_params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        state = self.init(init_params, *args, **kwargs)
        return jax.lax.while_loop(
            lambda c: self._continue(c[1]),
            lambda c: self.step(*c, *args, **kwargs),
            (init_params, state),
        )

    def _scan_loop(self, init_params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        state = self.init(init_params, *args, **kwargs)

        def body(carry: Any, _: None) -> tuple[Any, None]:
            new = self.step(*carry, *args, **kwargs)
            go = self._continue(carry[1])
            return jax.tree.map(lambda n, o: jnp.where(go, n, o), new, carry), None

        carry, _ = jax.lax.scan(body, (init_params, state), None, length=self.max_steps)
        return carry

    def _backward_solve(self) -> LinearSolve:
        if self.linear_solve is None:
            return LinearSolve(throw=self.throw)
        return as_linear_solve(self.linear_solve, owner=type(self).__name__)

    def run(self, init_params: Any, *args: Any, **kwargs: Any) -> Solution:
        """Solve from ``init_params``; differentiable in ``args``/``kwargs``.

        Compiled with ``equinox.filter_jit``: arrays are traced, Python floats are boxed into
        arrays (so a new regularisation value does not recompile), anything else is static.
        Gradients flow to every floating-point array in ``args``/``kwargs`` and in the solver's
        own fields (implicit differentiation by default), none to ``init_params``.

        Args:
          init_params: the starting point (a warm start).
          *args: the problem's data, passed to ``init``, ``step`` and ``optimality_fn``.
          **kwargs: the problem's keyword data, passed likewise.

        Returns:
          The :class:`~jaxopt_papers.Solution`: ``value`` (alias ``params``), ``result``,
          ``stats`` (``num_steps``, ``error``) and the final ``state``; ``params, state =``
          unpacks it as jaxopt's ``OptStep``.
        """
        init_params, args, kwargs = jax.tree.map(_box_float, (init_params, args, kwargs))
        return _compiled_run(self, init_params, args, kwargs)

    def _run(self, init_params: Any, *args: Any, **kwargs: Any) -> Solution:
        self._check_call(init_params, *args, **kwargs)
        valid = self._inputs_valid(init_params, *args, **kwargs)
        if self.implicit_diff:
            params, state = self._implicit_loop(init_params, *args, **kwargs)
        else:
            with self._loop_context():
                params, state = self._scan_loop(init_params, *args, **kwargs)
        result = self._result(params, state)
        valid = valid & self._state_valid(state)
        result = RESULTS.where(valid, result, RESULTS.invalid_input)
        return finish(
            params, result, self._stats(state), state=state, aux=self._aux(state),
            throw=self.throw, messages=self.messages,
        )  # fmt: skip

    def _implicit_loop(self, init_params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """The loop of ``implicit_diff=True``: differentiated by :func:`custom_root`."""
        solve = custom_root(
            _solver_optimality,
            solve=self._backward_solve(),
            has_aux=True,
            symmetric=self.symmetric_optimality,
        )(_solver_loop)
        return solve(init_params, self, *args, **kwargs)

    def _result(self, params: Any, state: Any) -> RESULTS:
        """The result code of a run that ended at ``(params, state)`` (valid inputs)."""
        finite = jnp.isfinite(state.error) & V.all_finite(params)
        result = RESULTS.where(
            state.error <= self.tol, RESULTS.successful, RESULTS.max_steps_reached
        )
        return RESULTS.where(finite, result, RESULTS.nonfinite)

    def _stats(self, state: Any) -> dict[str, Any]:
        """``Solution.stats`` from the final state (``num_steps`` and ``error`` at least)."""
        return {"num_steps": state.num_steps, "error": state.error}

    def _aux(self, state: Any) -> Any:
        """``Solution.aux`` from the final state (none by default)."""
        return None
