"""The table of the reliability suite: one bad input, what a user must get, eagerly and jitted.

A :class:`Case` calls ``fn(*args)`` twice: eagerly, and as ``jax.jit(fn)(*args)`` (every array
in ``args`` is then traced, so value checks that were static become checks at run time). Each
call must give exactly what its expectation says:

- :class:`Raises`: an exception of the given type whose message matches a regular expression
  naming the argument or the problem;
- :class:`Code`: a ``Solution`` (or a ``RESULTS`` item) whose ``result`` is exactly that code;
- :class:`Finite`: a pytree of finite arrays that equals a reference computed independently
  (used for optimizer updates, which have no result code).

A case that is fine under ``jit`` with the same expectation as eagerly leaves ``jit`` unset; a
value check gives e.g. ``Raises(ValueError, ...)`` eagerly and ``Code("invalid_input")`` or
:data:`RUNTIME` errors under ``jit``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import numpy as np

from jaxopt_papers import RESULTS

#: The runtime errors of a failed check (equinox's, or JAX's carrying its message under jit).
RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError, ValueError)


@dataclasses.dataclass(frozen=True)
class Raises:
    """An exception of type ``exc`` whose message matches ``match`` (``re.search``)."""

    exc: type[BaseException] | tuple[type[BaseException], ...]
    match: str

    @property
    def kind(self) -> str:
        return "error"


@dataclasses.dataclass(frozen=True)
class Code:
    """The exact result code ``RESULTS.<name>``."""

    name: str

    @property
    def kind(self) -> str:
        return "code"


@dataclasses.dataclass(frozen=True)
class Finite:
    """Finite output equal (to ``rtol``) to ``reference()``, computed independently."""

    reference: Callable[[], Any]
    rtol: float = 1e-6

    @property
    def kind(self) -> str:
        return "finite"


def runtime(match: str) -> Raises:
    """A runtime error of a failed check (see :data:`RUNTIME_ERRORS`) matching ``match``."""
    return Raises(RUNTIME_ERRORS, match)


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: ``fn(*args)`` must give ``eager``, and ``jax.jit(fn)(*args)`` ``jit``."""

    id: str
    fn: Callable[..., Any]
    args: tuple = ()
    eager: Raises | Code | Finite | None = None
    jit: Raises | Code | Finite | None = None

    @property
    def jit_expect(self) -> Raises | Code | Finite:
        return self.eager if self.jit is None else self.jit


def _short(err: BaseException) -> str:
    """The message of ``err`` without the traceback that runtime errors carry."""
    text = str(err)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith((" ", "Trace"))]
    return "\n".join(lines[-6:])[-1500:]


def _result(out: Any) -> Any:
    return getattr(out, "result", out)


def check(expect: Raises | Code | Finite, call: Callable[[], Any]) -> None:
    """Run ``call`` and assert ``expect``."""
    if isinstance(expect, Raises):
        try:
            out = call()
            jax.block_until_ready(out)
        except expect.exc as err:
            assert re.search(expect.match, str(err), flags=re.S), (
                f"message does not match {expect.match!r}:\n{_short(err)}"
            )
            return
        except Exception as err:  # the wrong kind of error: show it
            raise AssertionError(
                f"expected {expect.exc} matching {expect.match!r}, got {type(err).__name__}: "
                f"{_short(err)}"
            ) from None
        raise AssertionError(
            f"expected {expect.exc} matching {expect.match!r}, got no error (output {out!r})"
        )
    out = call()
    if isinstance(expect, Code):
        result = _result(out)
        want = getattr(RESULTS, expect.name)
        assert result._enumeration is RESULTS, f"not a RESULTS code: {result!r}"
        index = int(np.asarray(result._value))
        assert bool(np.all(np.asarray(result == want))), (
            f"expected RESULTS.{expect.name}, got {RESULTS._index_to_message[index]!r}"
        )
        return
    ref = expect.reference()
    leaves, ref_leaves = jax.tree.leaves(out), jax.tree.leaves(ref)
    assert jax.tree.structure(out) == jax.tree.structure(ref)
    for got, want in zip(leaves, ref_leaves, strict=True):
        got = np.asarray(got, dtype=np.float64)
        assert np.all(np.isfinite(got)), f"non-finite output {got}"
        np.testing.assert_allclose(got, np.asarray(want, dtype=np.float64), rtol=expect.rtol)


def params(cases: list[Case]) -> list[Any]:
    """``pytest.param``s of ``(case, mode)`` for every case, eagerly and jitted."""
    import pytest

    ids = [c.id for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"duplicate case ids: {sorted(dup)}")
    return [pytest.param(c, m, id=f"{c.id}-{m}") for c in cases for m in ("eager", "jit")]


_JITTED: dict[Any, Any] = {}


def jitted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.jit(fn)``, one per ``fn``: cases sharing a function share its compilations."""
    if fn not in _JITTED:
        _JITTED[fn] = jax.jit(fn)
    return _JITTED[fn]


def run_case(case: Case, mode: str) -> None:
    """Assert the case's expectation in ``mode`` (``"eager"`` or ``"jit"``)."""
    if mode == "eager":
        check(case.eager, lambda: case.fn(*case.args))
    else:
        check(case.jit_expect, lambda: jitted(case.fn)(*case.args))


def tally(cases: list[Case]) -> dict[str, int]:
    """Counts of the eager expectations by kind (error / code / finite)."""
    out = {"error": 0, "code": 0, "finite": 0}
    for c in cases:
        out[c.eager.kind] += 1
    return out
