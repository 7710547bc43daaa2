"""The one solver contract: ``RESULTS``, ``Solution`` and ``finish()``.

Every solver of the library (proximal, optimal transport, Krylov, SOR, sequences of systems, and
each family added later) reports through these three names, so a user who knows one solver knows
all of them:

- :class:`RESULTS` extends :class:`lineax.RESULTS` (optimistix's pattern): a failed linear solve
  keeps lineax's own code and message (``RESULTS.promote(lx_result)``), and the library adds its
  codes (``nonfinite``, ``breakdown`` of CG on an indefinite matrix, ...).
- :class:`Solution` is what every ``run`` (and every convenience function) returns: the answer
  (``value``), the ``result`` code, ``stats`` with shared key names (``num_steps``, ``error``, plus
  family-specific ones such as ``num_matvecs``), the solver ``state`` and solver-specific ``aux``
  outputs.
- :func:`finish` builds the :class:`Solution` and applies ``throw``: with ``throw=True`` a failure
  raises a runtime error whose message names the arguments of *that* solver (``messages=``), and
  the check is tied to **every** array of the solution, so using only one output (a cost, a
  gradient) still raises.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxopt_papers import RESULTS
  >>> from jaxopt_papers._solution import finish
  >>> sol = finish(jnp.ones(3), RESULTS.successful, {"num_steps": 4, "error": 0.0}, throw=True)
  >>> bool(sol.result == RESULTS.successful), int(sol.stats["num_steps"])
  (True, 4)

Differences from the reference code: this is the library's own contract. It follows
optimistix's ``Solution``/``RESULTS`` (``RESULTS`` extends ``lineax.RESULTS``), and also
unpacks as jaxopt's ``(params, state)`` pair.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

__all__ = ["RESULTS", "Solution", "as_results", "finish", "raise_if_failed", "result_where"]


class RESULTS(lx.RESULTS):  # type: ignore[misc]
    """Result codes of every solver: lineax's codes plus the library's own.

    lineax's codes (``successful``, ``max_steps_reached``, ``singular``, ``breakdown``,
    ``stagnation``, ``conlim``, ``nonfinite_input``) keep their meaning; each solver replaces
    the generic message with one naming its own arguments when it raises. The library adds
    ``nonfinite`` (NaN or inf iterates), ``invalid_input`` (a traced input out of its range),
    ``indefinite`` (CG met non-positive curvature), ``primal_infeasible`` / ``dual_infeasible``
    (a QP with contradictory constraints / an unbounded objective) and ``inaccurate`` (stopped,
    but the optimality condition is not met to ``tol``).

    A code is compared with ``==`` (an array of bools under ``vmap``); ``RESULTS[code]`` is its
    message and ``RESULTS.promote(lineax_code)`` converts a lineax code. With ``throw=True``
    (every solver's default) a failure raises a runtime error; ``throw=False`` returns the code
    in ``Solution.result`` instead (needed under ``vmap``).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> from jaxopt_papers import RESULTS
      >>> A, b = jnp.array([[4.0, 1.0], [1.0, 3.0]]), jnp.array([1.0, 2.0])
      >>> sol = jop.linear.cg(A, b, max_steps=1, throw=False)
      >>> bool(sol.result == RESULTS.max_steps_reached)
      True
      >>> RESULTS[sol.result][:44]
      'The maximum number of solver steps was reach'
      >>> bool(jop.linear.cg(A, b).result == RESULTS.successful)
      True
    """

    nonfinite = (
        "The solver produced non-finite values (NaN or inf). Check the inputs for NaN/inf, and "
        "if the iterates diverged use a smaller step size."
    )
    invalid_input = (
        "An input failed a check that could only be made on its value (it was traced under "
        "`jit`): see the solver's documentation for the valid range of each argument."
    )
    indefinite = (
        "Conjugate gradients met a direction of non-positive curvature (pᵀAp ≤ 0): `A` is not "
        "symmetric positive definite. Use `gmres` or `gcrodr` for indefinite or non-symmetric "
        "systems."
    )
    primal_infeasible = (
        "The problem is primal infeasible: no point satisfies the constraints. Check the "
        "constraints (bounds, right-hand sides) for contradictions."
    )
    dual_infeasible = (
        "The problem is dual infeasible: the objective is unbounded below on the feasible set. "
        "Bound the variables or make the objective strictly convex."
    )
    inaccurate = (
        "The solver stopped on its own test, but the answer does not satisfy the optimality "
        "condition to the requested accuracy."
    )


def as_results(result: Any) -> RESULTS:
    """A :class:`RESULTS` item from a :class:`RESULTS` or a lineax result (promoted)."""
    if result._enumeration is RESULTS:
        return result
    return RESULTS.promote(result)


def result_where(pred: Any, true: Any, false: Any) -> RESULTS:
    """``RESULTS.where`` that also accepts lineax's results (promoted to :class:`RESULTS`)."""
    return RESULTS.where(pred, as_results(true), as_results(false))


class Solution(eqx.Module):
    """What every solver of the library returns.

    Solvers build it (users read it); each argument is the attribute of the same name.

    Args:
      value: the answer (the solution ``x``, the parameters, the OT potentials ...).
      result: a :class:`RESULTS` code; ``RESULTS.successful`` when the answer meets ``tol``.
      stats: a dict; every solver has ``num_steps`` and ``error`` (its stopping quantity),
        families add their own (``num_matvecs`` for Krylov solvers, ``num_newton_steps`` ...).
      state: the solver's final state (for warm starts: a recycle space, the last iterate's
        state ...), or ``None``.
      aux: solver-specific outputs computed from the answer (an OT plan and costs ...), or
        ``None``.

    Attributes of ``aux`` and of ``value`` (when it is a structure), and keys of ``stats``, can
    also be read directly: ``sol.plan`` is ``sol.aux.plan``, ``sol.num_matvecs`` is
    ``sol.stats["num_matvecs"]``. ``params`` and ``x`` are aliases of ``value`` and ``residual`` of
    ``stats["error"]``. ``params, state = solver.run(...)`` unpacks as in jaxopt.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> sol = jop.linear.cg(jnp.array([[4.0, 1.0], [1.0, 3.0]]), jnp.array([1.0, 2.0]))
      >>> [round(float(v), 4) for v in sol.value], bool(sol.result == jop.RESULTS.successful)
      ([0.0909, 0.6364], True)
      >>> sorted(sol.stats), int(sol.num_steps)
      (['error', 'num_matvecs', 'num_steps'], 2)
      >>> x, state = sol  # jaxopt's (params, state) unpacking
      >>> bool((x == sol.x).all())
      True
    """

    value: Any
    result: RESULTS
    stats: dict[str, Any]
    state: Any = None
    aux: Any = None

    @property
    def params(self) -> Any:
        """Alias of ``value`` (jaxopt's name)."""
        return self.value

    @property
    def x(self) -> Any:
        """Alias of ``value`` (the name of a linear system's unknown).

        When ``value`` has a field ``x`` (a bilevel solver's ``BilevelParams(x, y)``), that
        field: the upper-level variable.
        """
        value = self.value
        if "x" in getattr(value, "_fields", ()):
            return value.x
        return value

    @property
    def residual(self) -> Any:
        """Alias of ``stats["error"]`` (the Krylov solvers' relative residual)."""
        return self.stats["error"]

    def __iter__(self) -> Iterator[Any]:
        """``params, state = sol`` as jaxopt's ``OptStep``."""
        return iter((self.value, self.state))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("value", "result", "stats", "state", "aux"):
            raise AttributeError(name)
        d = self.__dict__
        for holder in (d.get("aux"), d.get("value")):
            if holder is not None and not isinstance(holder, (jax.Array, np.ndarray)):
                if name in getattr(holder, "_fields", ()) or name in getattr(
                    type(holder), "__dataclass_fields__", {}
                ):
                    return getattr(holder, name)
        stats = d.get("stats")
        if isinstance(stats, dict) and name in stats:
            return stats[name]
        raise AttributeError(
            f"Solution has no attribute {name!r}; it has value, result, stats "
            f"{sorted(stats) if isinstance(stats, dict) else []}, state and aux."
        )


def _is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def any_traced(tree: Any) -> bool:
    """Whether any leaf of ``tree`` is traced (under ``jit``, ``grad``, ``vmap`` ...)."""
    return any(_is_traced(v) for v in jax.tree.leaves(tree))


def _message_table(messages: Mapping[Any, str] | None) -> tuple[str, ...]:
    """One message per RESULTS index, the solver's own where given."""
    table = list(RESULTS._index_to_message)
    for name, msg in (messages or {}).items():
        if name not in RESULTS._name_to_item:
            raise ValueError(f"finish: `messages` keys must be RESULTS names, got {name!r}.")
        table[int(RESULTS._name_to_item[name]._value)] = msg
    return tuple(table)


def _tie(tree: Any, token: jax.Array) -> Any:
    """Make every array of ``tree`` depend on the (zero) ``token`` without moving its data.

    Arrays are multiplied by ``1 + token`` (exactly 1): unlike an added zero, a factor survives
    in the transpose of a linear map, so a check tied to a tangent is still run by reverse-mode
    differentiation, and values (NaN, inf, −0.0) are unchanged."""

    def tie(v: Any) -> Any:
        if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key):
            return v  # a PRNG key cannot carry the factor; the other arrays do
        if v.dtype == jnp.bool_:
            return v | (token != 0)
        return v * (1 + token).astype(v.dtype)

    return jax.tree.map(tie, tree)


def raise_if_failed(tree: Any, result: RESULTS, messages: Mapping[Any, str] | None = None) -> Any:
    """Return ``tree`` tied to a check that raises when ``result`` is not successful.

    Concrete (eager) results raise at once in Python (:class:`equinox.EquinoxRuntimeError`).
    Traced results raise when the compiled computation runs; the check is tied to every array
    of ``tree`` by a factor that is exactly one, so any output that is used (also through a
    derivative) carries it and arrays keep their sharding (``equinox.error_if`` on a large
    array would gather it onto one device).
    ``messages`` maps code names (``"max_steps_reached"``) to the solver's own message.
    """
    result = as_results(result)
    table = _message_table(messages)
    index = result._value
    if not _is_traced(index) and not any(_is_traced(v) for v in jax.tree.leaves(tree)):
        idx = np.asarray(index)
        if idx.ndim == 0 and int(idx) != 0:
            raise eqx.EquinoxRuntimeError(table[int(idx)])
        if idx.ndim and np.any(idx != 0):
            raise eqx.EquinoxRuntimeError(table[int(idx[idx != 0].flat[0])])
        return tree
    leaves, treedef = jax.tree.flatten(tree)
    arrays = [i for i, v in enumerate(leaves) if isinstance(v, (jax.Array, np.ndarray))]
    tied = _check_and_tie([leaves[i] for i in arrays], index, table)
    for i, v in zip(arrays, tied, strict=True):
        leaves[i] = v
    return jax.tree.unflatten(treedef, leaves)


@functools.partial(jax.jit, static_argnames=("table",))
def _check_and_tie(arrays: list, index: jax.Array, table: tuple[str, ...]) -> list:
    # One compiled computation: evaluated op by op (e.g. inside `lax.custom_linear_solve`'s
    # eager implementation) the check and the arrays that carry it are a single dispatch, so a
    # failed check surfaces as the runtime error itself and not as a poisoned input of a later
    # operation. Inside an outer `jit` this is inlined.
    zero = jnp.zeros((), jnp.int32)
    pred = index != 0
    if jnp.ndim(index):  # batched codes (a sequence of systems): report the first failure
        first = jnp.argmax(pred.reshape(-1))
        index, pred = index.reshape(-1)[first], jnp.any(pred)
    token = eqx.branched_error_if(zero, pred, index, table)
    return _tie(arrays, token)


def finish(
    value: Any,
    result: Any,
    stats: Mapping[str, Any],
    *,
    state: Any = None,
    aux: Any = None,
    throw: bool = True,
    messages: Mapping[Any, str] | None = None,
) -> Solution:
    """Build the :class:`Solution` and apply ``throw``.

    Args:
      value: the answer.
      result: a :class:`RESULTS` (or lineax) code, possibly batched.
      stats: must contain ``num_steps`` and ``error``.
      state: the solver's final state.
      aux: the solver's extra outputs.
      throw: raise a runtime error on failure (the message from ``messages`` or the code's own);
        ``False`` returns the code (needed under ``vmap``).
      messages: the solver's own message for some codes, naming its arguments (e.g.
        ``{"max_steps_reached": "... increase `max_newton_steps` ..."}``, keyed by code name).

    Returns:
      The :class:`Solution`; with ``throw=True`` every array in it carries the check.
    """
    missing = {"num_steps", "error"} - set(stats)
    if missing:
        raise ValueError(f"finish: `stats` must contain {sorted(missing)}.")
    stats = {k: jnp.asarray(v) for k, v in stats.items()}
    sol = Solution(value, as_results(result), stats, state, aux)
    if throw:
        sol = raise_if_failed(sol, sol.result, messages)
    return sol
