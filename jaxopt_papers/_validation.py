"""Trace-time checks of hyperparameters (optimizers and solvers share them).

Numeric hyperparameters may arrive as Python/NumPy scalars (checked here), as schedules
(callables, checked only for being callable) or as traced arrays under
``optax.inject_hyperparams`` (not checkable at trace time, passed through). Checks never branch
the maths, so they are safe for ``inject_hyperparams``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def _concrete_float(value: Any) -> float | None:
    """The value as a float if it is a concrete scalar, else None (tracer, schedule, array)."""
    if isinstance(value, jax.core.Tracer) or callable(value):
        return None
    try:
        arr = np.asarray(value)
    except Exception:  # e.g. an abstract jax value
        return None
    if arr.shape != () or arr.dtype.kind not in "biuf":
        return None
    return float(arr)


def check_real(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    schedule_ok: bool = False,
) -> None:
    """Raise ``ValueError`` naming ``owner(name=...)`` if a concrete ``value`` is out of range.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``. Schedules are accepted only
    when ``schedule_ok``; tracers are accepted without checking.
    """
    if callable(value) and not isinstance(value, jax.Array):
        if schedule_ok:
            return
        raise TypeError(f"{owner}: `{name}` must be a number, got the callable {value!r}.")
    if (
        value is None
        or isinstance(value, (str, bytes))
        or (not isinstance(value, jax.core.Tracer) and np.ndim(value) != 0)
    ):
        raise TypeError(f"{owner}: `{name}` must be a real scalar, got {value!r}.")
    x = _concrete_float(value)
    if x is None:
        return
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    want = f"in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    bad = not math.isfinite(x)
    if low is not None:
        bad |= x <= low if low_open else x < low
    if high is not None:
        bad |= x >= high if high_open else x > high
    if bad:
        raise ValueError(f"{owner}: `{name}` must be a finite number {want}, got {value!r}.")


def check_learning_rate(owner: str, value: Any) -> None:
    """A learning rate is a non-negative number or a schedule."""
    check_real(owner, "learning_rate", value, low=0.0, schedule_ok=True)


def check_beta(owner: str, name: str, value: Any) -> None:
    """A decay rate lies in [0, 1)."""
    check_real(owner, name, value, low=0.0, high=1.0, high_open=True)


def check_eps(owner: str, name: str, value: Any, *, positive: bool = False) -> None:
    """An epsilon is a non-negative number; with ``positive``, a positive one.

    Use ``positive=True`` where ``eps`` guards a division (``m / (sqrt(v) + eps)``): there
    ``eps = 0`` divides zero by zero for a gradient entry that has always been zero.
    """
    if positive:
        try:
            check_real(owner, name, value, low=0.0, low_open=True)
        except ValueError as err:
            raise ValueError(
                f"{err} It guards a division (0/0 for an entry whose gradient has always been "
                f"zero), so it must be positive."
            ) from None
    else:
        check_real(owner, name, value, low=0.0)


def check_weight_decay(owner: str, value: Any) -> None:
    """Weight decay is a non-negative number or a schedule."""
    check_real(owner, "weight_decay", value, low=0.0, schedule_ok=True)


def check_int(owner: str, name: str, value: Any, *, low: int = 0) -> None:
    """A structural integer (static, never traced) at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: `{name}` must be a Python int, got {value!r}.")
    if value < low:
        raise ValueError(f"{owner}: `{name}` must be an int >= {low}, got {value!r}.")


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    """A string option among ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: `{name}` must be one of {choices}, got {value!r}.")


def check_callable_or_choice(
    owner: str, name: str, value: Any, choices: tuple[str, ...]
) -> Callable | str:
    """A string among ``choices`` or a callable."""
    if callable(value):
        return value
    check_choice(owner, name, value, choices)
    return value


def error_if(x: Any, pred: Any, msg: Any) -> Any:
    """``eqx.error_if`` that keeps ``x``'s sharding.

    Equinox routes its operand through a conditional whose output XLA places on one device, so
    a row-sharded solution would be gathered there. Here the check runs on a scalar and ``x``
    is tied to it by adding that (zero) scalar. ``msg`` is a string or an ``eqx.Enumeration``
    item (whose message is raised). Meant for checks inside a jitted solver: evaluated op by op
    (e.g. in ``lax.custom_linear_solve``'s eager implementation) the add is a separate dispatch,
    and a failed check can surface there as a ``ValueError`` from the poisoned scalar instead of
    an ``EquinoxRuntimeError``; ``eqx.error_if`` is used in those places.
    """
    zero = jnp.zeros((), jnp.int32)
    if isinstance(msg, str):
        token = eqx.error_if(zero, pred, msg)
    else:
        token = msg.error_if(zero, pred)
    return jax.tree.map(lambda v: v + token.astype(jnp.result_type(v)), x)


# --------------------------------------------------------------------------------------------
# structural arguments, dtypes and pytrees (optimizers)


def _static_args_hint(name: str) -> str:
    return (
        f" It is structural (it fixes the shape or the control flow of the computation), so it "
        f"cannot be an array or a traced value; under `optax.inject_hyperparams` pass "
        f'`static_args=("{name}",)`.'
    )


def _describe(value: Any) -> str:
    """A short description of ``value`` for error messages (no long array reprs)."""
    if isinstance(value, (jax.core.Tracer, jax.Array, np.ndarray)):
        return f"an array of dtype {value.dtype} and shape {tuple(value.shape)}"
    return repr(value)


def check_static_int(owner: str, name: str, value: Any, *, low: int | None = 0) -> int:
    """A structural integer: a Python int at least ``low`` (None: any), never an array.

    Returns the value as a Python int. Arrays and tracers (as ``optax.inject_hyperparams`` makes
    of every number it is not told to keep static) raise a ``TypeError`` that asks for
    ``static_args``.
    """
    if isinstance(value, (jax.core.Tracer, jax.Array, np.ndarray)):
        raise TypeError(
            f"{owner}: `{name}` must be a Python int, got {_describe(value)}."
            + _static_args_hint(name)
        )
    if low is None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{owner}: `{name}` must be a Python int, got {value!r}.")
    else:
        check_int(owner, name, value, low=low)
    return int(value)


def check_flag(owner: str, name: str, value: Any) -> bool:
    """A structural boolean: a Python (or NumPy) bool, never an array or a tracer."""
    if isinstance(value, (jax.core.Tracer, jax.Array, np.ndarray)):
        raise TypeError(
            f"{owner}: `{name}` must be a Python bool, got {_describe(value)}."
            + _static_args_hint(name)
        )
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: `{name}` must be a bool (True or False), got {value!r}.")
    return bool(value)


def check_static_choice(
    owner: str, name: str, value: Any, choices: tuple[str, ...], *, callable_ok: bool = False
) -> Any:
    """A structural option: one of ``choices`` (or, with ``callable_ok``, a callable).

    An array (what ``optax.inject_hyperparams`` makes of a callable it takes for a schedule)
    raises a ``TypeError`` that asks for ``static_args``.
    """
    if isinstance(value, (jax.core.Tracer, jax.Array, np.ndarray)):
        want = f"one of {choices}" + (" or a callable" if callable_ok else "")
        raise TypeError(
            f"{owner}: `{name}` must be {want}, got {_describe(value)}." + _static_args_hint(name)
        )
    if callable_ok and callable(value):
        return value
    if not isinstance(value, str) or value not in choices:
        want = f"one of {choices}" + (" or a callable" if callable_ok else "")
        raise ValueError(f"{owner}: `{name}` must be {want}, got {value!r}.")
    return value


def check_mask(owner: str, mask: Any) -> None:
    """A weight-decay ``mask``: None, a pytree of bools or a callable returning one.

    An array (what ``optax.inject_hyperparams`` makes of a callable mask it takes for a
    schedule) raises a ``TypeError`` that asks for ``static_args``.
    """
    if isinstance(mask, (jax.core.Tracer, jax.Array, np.ndarray)):
        raise TypeError(
            f"{owner}: `mask` must be None, a pytree of bools or a callable returning one, got "
            f"{_describe(mask)}." + _static_args_hint("mask")
        )


def check_float_dtype(owner: str, name: str, value: Any) -> np.dtype | None:
    """A floating-point dtype (canonicalised, as ``jnp.zeros(..., dtype)`` would) or None.

    Returns None for None, else the ``numpy.dtype``. Anything that is not a floating-point
    dtype raises a ``TypeError`` naming ``name``.
    """
    if value is None:
        return None
    if isinstance(value, (jax.core.Tracer, jax.Array, np.ndarray)):
        raise TypeError(
            f"{owner}: `{name}` must be a floating-point dtype such as jnp.bfloat16 or "
            f"'float32', got {_describe(value)}. Under `optax.inject_hyperparams` a dtype such "
            f"as jnp.bfloat16 is callable and taken for a schedule: pass "
            f'`static_args=("{name}",)`.'
        )
    try:
        dtype = jnp.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{owner}: `{name}` must be None or a floating-point dtype such as jnp.bfloat16 or "
            f"'float32', got {value!r}."
        )
    return jax.dtypes.canonicalize_dtype(dtype)


def _leaf_name(path) -> str:
    return jax.tree_util.keystr(path) or "the array"


def check_float_leaves(owner: str, name: str, tree: Any) -> None:
    """Every array leaf of ``tree`` (None leaves aside) has a floating-point dtype.

    Integer or boolean parameters would get silently zero (or rounded) updates, so they raise a
    ``TypeError`` naming ``name``, the leaf and its dtype.
    """
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    for path, leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            dtype = np.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{owner}: `{name}` must have floating-point leaves (float16, bfloat16, float32 "
                f"or float64), got dtype {dtype} at {_leaf_name(path)}. Optimise a "
                f"floating-point copy (e.g. `x.astype(jnp.float32)`) and round it yourself."
            )


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else tuple(np.shape(x))


def check_same_tree(owner: str, name: str, tree: Any, reference: Any, reference_name: str) -> None:
    """``tree`` has the pytree structure and leaf shapes of ``reference``.

    None leaves of ``tree`` (gradients that optax passes through) match any leaf. Raises a
    ``ValueError`` naming ``name``, ``reference_name`` and the first mismatch.
    """
    is_none = lambda x: x is None
    got = jax.tree.structure(tree, is_leaf=is_none)
    want = jax.tree.structure(reference, is_leaf=is_none)
    if got != want:
        raise ValueError(
            f"{owner}: `{name}` must have the pytree structure of {reference_name}; got "
            f"{got}, expected {want}."
        )
    for (path, x), y in zip(
        jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_none)[0],
        jax.tree.leaves(reference, is_leaf=is_none),
        strict=True,
    ):
        if x is None or y is None:
            continue
        if _shape(x) != _shape(y):
            raise ValueError(
                f"{owner}: `{name}` must have the shapes of {reference_name}; at "
                f"{_leaf_name(path)} got shape {_shape(x)}, expected {_shape(y)}."
            )


def compute_dtype(*dtypes: Any) -> np.dtype:
    """The dtype to compute in: the promoted ``dtypes``, at least float32.

    Half-precision (float16, bfloat16) arithmetic is done in float32: an ``eps`` of 1e-8
    underflows to 0 in float16, and squared gradients underflow long before the gradients do.
    """
    return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def check_optimizer_init(owner: str, params: Any) -> None:
    """What every optimizer's ``init`` checks: floating-point ``params``."""
    check_float_leaves(owner, "params", params)


def check_optimizer_update(owner: str, updates: Any, params: Any, reference: Any) -> None:
    """What every optimizer's ``update`` checks, at trace time.

    ``updates`` (and ``params`` when given) must have the pytree structure and leaf shapes of
    ``reference`` (a state tree laid out like the params given to ``init``) and floating-point
    leaves. Raises ``ValueError`` (structure, shapes) or ``TypeError`` (dtypes) naming the
    argument and the first mismatch.
    """
    where = "the params given to `init`"
    check_same_tree(owner, "updates", updates, reference, where)
    check_float_leaves(owner, "updates", updates)
    if params is not None:
        check_same_tree(owner, "params", params, reference, where)
        check_float_leaves(owner, "params", params)


def second_moment_dtype(dtype: Any) -> np.dtype:
    """The storage dtype of a second moment (an average of squared gradients) for ``dtype``.

    float32 for float16 params, whose range ends at 6e-8: the square of a gradient below 2e-4
    would be stored as 0 (or with few bits). Other dtypes are kept (bfloat16 has float32's
    range).
    """
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype == jnp.float16 else dtype


def second_moment_zeros(params: Any) -> Any:
    """Zeros laid out like ``params`` in :func:`second_moment_dtype` of each leaf."""
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=second_moment_dtype(p.dtype)), params)


def all_finite(tree: Any) -> jax.Array:
    """Whether every entry of every array leaf of ``tree`` is finite (a scalar bool array)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
