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


def check_eps(owner: str, name: str, value: Any) -> None:
    """An epsilon is a non-negative number."""
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
