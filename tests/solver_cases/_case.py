"""The ``Case`` of the shared solver invariant suite."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from jaxopt_papers import RESULTS


def _value(sol: Any) -> Any:
    return sol.value


def _identity(x: Any) -> Any:
    return x


def _short(solver: Any) -> Any:
    return dataclasses.replace(solver, max_steps=2)


def _unrolled(solver: Any) -> Any:
    return dataclasses.replace(solver, implicit_diff=False)


def _to_float32(tree: Any) -> Any:
    return jax.tree.map(lambda a: a.astype("float32") if hasattr(a, "astype") else a, tree)


@dataclasses.dataclass
class Case:
    """One registered solver configuration.

    Attributes:
      name: test id.
      solver: the solver module (with ``throw``; ``max_steps``/``implicit_diff`` unless
        ``short``/``unrolled`` say otherwise).
      run: ``(solver, value) -> Solution``: a problem depending smoothly on the scalar ``value``.
      values: three values of the scalar (three distinct problems).
      output: the array of the solution that the tests compare and differentiate.
      run32: as ``run`` with float32 inputs (``None``: not applicable).
      solver32: the solver for float32 (e.g. a looser ``tol``).
      vmap_solver: the solver used under ``vmap`` (e.g. ``throw=False``).
      manual: ``(solver, value) -> (value, num_steps)`` by ``init``/``step`` (``None``: not
        applicable).
      output_of_value: maps ``manual``'s value to ``output``'s array.
      short: a solver that cannot converge, reporting ``short_code``.
      unrolled: the solver in its unrolled mode (``None``: it has none).
    """

    name: str
    solver: Any
    run: Callable[[Any, Any], Any]
    values: tuple[float, float, float]
    output: Callable[[Any], Any] = _value
    run32: Callable[[Any, Any], Any] | None = None
    solver32: Callable[[Any], Any] = _identity
    vmap_solver: Callable[[Any], Any] = _identity
    manual: Callable[[Any, Any], tuple[Any, Any]] | None = None
    output_of_value: Callable[[Any], Any] = _identity
    short: Callable[[Any], Any] = _short
    short_code: Any = dataclasses.field(default_factory=lambda: RESULTS.max_steps_reached)
    unrolled: Callable[[Any], Any] | None = _unrolled
    fd_step: float = 1e-3
    rtol_fd: float = 1e-6
    rtol_unrolled: float = 1e-5
    rtol_jit: float = 1e-12
    atol_jit: float = 1e-14
    rtol_vmap: float = 1e-10


__all__ = ["Case", "_to_float32"]
