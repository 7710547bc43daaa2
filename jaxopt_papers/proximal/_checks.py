"""Checks shared by the proximal operators, the projections and the proximal-gradient solver.

A check whose operands are concrete raises ``ValueError`` at trace time naming the argument. A
traced check is handled according to the mode a solver sets around the code it traces (see
:func:`traced_checks`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V


def shape(leaf: Any) -> tuple[int, ...]:
    return tuple(jnp.shape(leaf))


def like_x(owner: str, name: str, hp: Any, x: Any) -> Any:
    """``hp`` as a pytree with the structure of ``x``: a single leaf is repeated for every leaf.

    Raises ``ValueError`` if ``hp`` is neither one leaf nor a pytree of ``x``'s structure, or if a
    leaf's shape does not broadcast to the shape of the corresponding leaf of ``x``.
    """
    x_def = jax.tree.structure(x)
    hp_def = jax.tree.structure(hp)
    if hp_def != x_def:
        if not jax.tree_util.treedef_is_leaf(hp_def) or hp_def.num_leaves != 1:
            raise ValueError(
                f"{owner}: `{name}` must be a scalar or a pytree with the structure of `x` "
                f"({x_def}), got {hp_def}."
            )
        hp = jax.tree.unflatten(x_def, [hp] * x_def.num_leaves)
    for (path, xl), h in zip(
        jax.tree_util.tree_flatten_with_path(x)[0], jax.tree.leaves(hp), strict=True
    ):
        h_shape, x_shape = shape(h), shape(xl)
        try:
            ok = np.broadcast_shapes(h_shape, x_shape) == x_shape
        except ValueError:
            ok = False
        if not ok:
            where = f" at {jax.tree_util.keystr(path)}" if path else ""
            raise ValueError(
                f"{owner}: `{name}`{where} must have a shape broadcastable to {x_shape} "
                f"(the shape of that leaf of `x`), got {h_shape}."
            )
    return hp


# ---------------------------------------------------------------------------------------------
# Checks of values (regularisation weights, radii, bounds).
#
# A check whose operands are concrete raises ``ValueError`` at trace time. A traced check is
# handled according to the mode set by a solver around the code it traces:
#   None (default)  the prox raises a runtime error when the computation runs (projections
#                   return their documented value instead);
#   "poison"        the output is NaN where the check fails (a solver compares it with the
#                   output in "skip" mode and reports ``RESULTS.invalid_input``; this works
#                   through any transformation the prox applies, e.g. ``vmap`` over groups);
#   "skip"          not checked (a solver's loop, whose inputs were checked once before).

TRACED_CHECKS: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "jaxopt_papers_traced_checks", default=None
)


@contextlib.contextmanager
def traced_checks(mode: Any) -> Iterator[Any]:
    """Set how traced value checks are handled (see above) while tracing the enclosed code."""
    token = TRACED_CHECKS.set(mode)
    try:
        yield mode
    finally:
        TRACED_CHECKS.reset(token)


def is_traced(v: Any) -> bool:
    return isinstance(v, jax.core.Tracer)


def check_value(owner: str, name: str, ok: Any, message: str, got: Any) -> Any:
    """Check ``ok`` (a bool for every element) of argument ``name``.

    Concrete: raise ``ValueError`` with ``message`` and ``got`` (a function of nothing giving
    the offending value as text) when not all true; return None. Traced: return the scalar
    predicate "all good" for the caller to handle (see :func:`handle_traced`).
    """
    if is_traced(ok):
        return jnp.all(ok)
    if not bool(np.all(np.asarray(ok))):
        raise ValueError(f"{owner}: `{name}` {message}, got {got()}.")
    return None


def describe_values(value: Any) -> str:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return repr(arr.item())
    bad = arr[~(arr >= 0)] if arr.dtype.kind == "f" else arr[arr < 0]
    return f"an array of shape {arr.shape} with entries such as {bad.flat[0].item()!r}"


def non_negative(owner: str, name: str, value: Any, why: str = "") -> list[Any]:
    """Check that every leaf of ``value`` is ``>= 0`` (and not NaN); traced predicates returned."""
    preds = []
    for leaf in jax.tree.leaves(value):
        if is_traced(leaf):
            preds.append(jnp.all(jnp.asarray(leaf) >= 0))
            continue
        arr = np.asarray(leaf)
        if arr.dtype.kind not in "biuf":
            continue
        check_value(owner, name, arr >= 0, f"must be >= 0{why}", lambda a=arr: describe_values(a))
    return preds


def handle_traced(out: Any, preds: list[Any], message: str, *, raise_at_runtime: bool) -> Any:
    """Apply the current mode to the traced predicates ``preds`` of a value check of ``out``."""
    preds = [p for p in preds if p is not None]
    if not preds:
        return out
    mode = TRACED_CHECKS.get()
    if mode == "skip":
        return out
    ok = jnp.all(jnp.stack(preds))
    if mode == "poison":
        return jax.tree.map(lambda v: jnp.where(ok, v, jnp.nan), out)
    if raise_at_runtime:
        return V.error_if(out, ~ok, message)
    return out


NEGATIVE = " (a negative weight rewards the penalty and pushes the prox away from 0)"


def checked_weights(
    owner: str, out: Any, weights: tuple[tuple[str, Any], ...], scaling: Any
) -> Any:
    """Check regularisation ``weights`` (name, value) >= 0 and a concrete ``scaling`` >= 0."""
    preds = []
    for name, value in weights:
        preds += non_negative(owner, name, value, NEGATIVE)
    if TRACED_CHECKS.get() != "skip" and not is_traced(scaling) and not callable(scaling):
        non_negative(owner, "scaling", scaling, " (it is a step size)")
    names = " and ".join(f"`{n}`" for n, _ in weights)
    msg = f"{owner}: {names} must be >= 0{NEGATIVE}; the traced value has a negative or NaN entry."
    return handle_traced(out, preds, msg, raise_at_runtime=True)
