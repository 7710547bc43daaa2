"""Helpers shared by the fixed-point and root-finding solvers: calls with ``has_aux``, checks."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V


def split_aux(fn: Callable, has_aux: bool) -> Callable:
    """``fn`` as a function returning ``(value, aux)`` (``aux = None`` without ``has_aux``)."""
    if has_aux:
        return fn
    return lambda *a, **k: (fn(*a, **k), None)


def params_dtype(owner: str, params: Any) -> np.dtype:
    """The (real, floating-point) dtype of ``init_params``; raises on empty or integer leaves."""
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(f"{owner}: `init_params` must contain at least one array, got {params!r}.")
    V.check_float_leaves(owner, "init_params", params)
    return jnp.result_type(*leaves)


def _shapes(tree: Any) -> Any:
    return jax.tree.map(lambda v: tuple(jnp.shape(v)), tree)


def check_map(
    owner: str, name: str, fn: Callable, has_aux: bool, params: Any, args: tuple, kwargs: dict
) -> Any:
    """Trace-time checks that ``fn(params, *args, **kwargs)`` returns a pytree like ``params``.

    Returns the shape of ``aux`` (``None`` without ``has_aux``). Raises ``TypeError`` when
    ``fn`` cannot take the arguments and ``ValueError`` for a wrong output structure or shapes.
    """
    params_dtype(owner, params)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(params, *args, **kwargs)
        except TypeError:
            raise TypeError(
                f"{owner}: `{name}` must accept `(init_params, *args, **kwargs)` as given to "
                f"`run` ({len(args)} extra positional and {sorted(kwargs)} keyword arguments), "
                f"got a callable with signature {sig}."
            ) from None
    try:
        out = eqx.filter_eval_shape(fn, params, *args, **kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{owner}: `{name}` could not be evaluated at `init_params` of shapes "
            f"{_shapes(params)}: check that `init_params` has the structure and shapes that "
            f"`{name}` expects. The error was: {err}"
        ) from err
    aux = None
    if has_aux:
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ValueError(
                f"{owner}: with `has_aux=True`, `{name}` must return a pair `(value, aux)`, got "
                f"{jax.tree.structure(out)}."
            )
        out, aux = out
    want, got = _shapes(params), _shapes(out)
    if jax.tree.structure(out) != jax.tree.structure(params) or want != got:
        hint = " (if it returns `(value, aux)`, pass `has_aux=True`)" if not has_aux else ""
        raise ValueError(
            f"{owner}: `{name}` must return a pytree with the structure and shapes of "
            f"`init_params` ({want}), got {got}{hint}."
        )
    return aux


def zeros_like_shape(tree: Any) -> Any:
    """Zeros for every ``jax.ShapeDtypeStruct`` leaf of ``tree``."""
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)


def check_callable(owner: str, name: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{owner}: `{name}` must be callable, got {type(fn).__name__}.")
