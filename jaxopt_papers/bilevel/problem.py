"""Bilevel problems: ``BilevelProblem`` (one lower level) and ``MultiBlockProblem`` (m of them).

A bilevel problem is

    min_x  F(x) = upper_fn(x, y*(x), upper_data)
    s.t.   y*(x) ∈ argmin_y { lower_fn(x, y, lower_data) : constraint_fn(x, y, lower_data) ≤ 0 },

with ``x`` the upper-level variable (hyperparameters, sample weights, a representation) and
``y`` the lower-level one (model weights). ``x`` and ``y`` may be any pytrees of floating-point
arrays; the data are pytrees passed through unchanged (arrays, tuples, dicts).

A multi-block problem (BSVRB, Hu et al. ICML 2023) averages ``m`` such problems that share ``x``:
``F(x) = (1/m) Σᵢ upper_fn(x, yᵢ*(x), upper_dataᵢ)`` with
``yᵢ*(x) = argmin_y lower_fn(x, y, lower_dataᵢ)``. Its data and ``y`` carry the block index on
the leading axis of every leaf.

Differences from the reference code: the papers' codes hard-wire their problems; this is the
library's common interface, on which every bilevel algorithm of :mod:`jaxopt_papers.bilevel`
runs unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["BilevelParams", "BilevelProblem", "MultiBlockProblem"]


class BilevelParams(NamedTuple):
    """The pair of variables of a bilevel problem: ``x`` (upper level) and ``y`` (lower level).

    The ``value`` of a bilevel solver's :class:`~jaxopt_papers.Solution`; ``sol.x`` and
    ``sol.y`` read its fields.

    Args:
      x: the upper-level variable (a pytree of floating-point arrays).
      y: the lower-level variable (for a :class:`MultiBlockProblem`, the block axis first).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> p = bilevel.BilevelParams(x=jnp.zeros(2), y=jnp.ones(3))
      >>> p.x.shape, p.y.shape
      ((2,), (3,))
    """

    x: Any
    y: Any


def _dtype_of(leaf: Any) -> np.dtype:
    return jnp.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.result_type(leaf)


def _describe(tree: Any) -> str:
    return str(jax.tree.map(lambda v: f"{_dtype_of(v)}{list(np.shape(v))}", tree))


def _check_scalar(owner: str, name: str, fn: Callable, *args: Any) -> None:
    try:
        out = jax.eval_shape(fn, *args)
    except Exception as err:  # the user's function cannot take these arguments
        raise ValueError(
            f"{owner}: `{name}` could not be evaluated as {name}(x, y, data) on x = "
            f"{_describe(args[0])}, y = {_describe(args[1])}: {type(err).__name__}: {err}. "
            f"Check that `x0`/`y0` have the structure and shapes the function expects."
        ) from err
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        raise ValueError(
            f"{owner}: `{name}` must return a scalar, got {jax.tree.map(lambda s: s.shape, out)}."
        )


def _check_float(owner: str, name: str, tree: Any) -> None:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not leaves:
        raise ValueError(f"{owner}: `{name}` has no array leaves.")
    for path, leaf in leaves:
        dtype = _dtype_of(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{owner}: `{name}` must have floating-point leaves, got dtype {dtype} at "
                f"{jax.tree_util.keystr(path) or 'the array'}."
            )


class BilevelProblem(eqx.Module):
    """A bilevel problem: ``min_x upper_fn(x, y*(x))``, ``y*(x)`` minimising ``lower_fn(x, ·)``.

    Args:
      upper_fn: ``upper_fn(x, y, upper_data) -> scalar``, the upper-level objective.
      lower_fn: ``lower_fn(x, y, lower_data) -> scalar``, the lower-level objective, minimised
        over ``y``.
      constraint_fn: ``constraint_fn(x, y, lower_data) -> array``, lower-level constraints,
        feasible where every entry is ``<= 0`` (they may couple ``x`` and ``y``); ``None`` for
        an unconstrained lower level.

    The functions are static (part of the compiled program): pass module-level functions or
    closures over constants; arrays that change between calls belong in the data.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> problem = bilevel.BilevelProblem(
      ...     upper_fn=lambda x, y, t: 0.5 * jnp.sum((y - t) ** 2),
      ...     lower_fn=lambda x, y, _: 0.5 * jnp.sum((y - x) ** 2))   # y*(x) = x
      >>> float(problem.upper_fn(jnp.ones(2), jnp.ones(2), jnp.zeros(2)))
      1.0
    """

    upper_fn: Callable = eqx.field(static=True)
    lower_fn: Callable = eqx.field(static=True)
    constraint_fn: Callable | None = eqx.field(static=True, default=None)

    def __check_init__(self) -> None:
        for name in ("upper_fn", "lower_fn"):
            if not callable(getattr(self, name)):
                raise TypeError(
                    f"BilevelProblem: `{name}` must be callable as {name}(x, y, data) -> scalar, "
                    f"got {type(getattr(self, name)).__name__}."
                )
        if self.constraint_fn is not None and not callable(self.constraint_fn):
            raise TypeError(
                "BilevelProblem: `constraint_fn` must be None or callable as constraint_fn(x, y, "
                f"lower_data) -> array, got {type(self.constraint_fn).__name__}."
            )

    @property
    def num_blocks(self) -> None:
        """``None``: one lower level (see :class:`MultiBlockProblem`)."""
        return None

    def check(self, owner: str, x: Any, y: Any, upper_data: Any, lower_data: Any) -> None:
        """Trace-time checks that the functions accept ``x``, ``y`` and the data.

        Raises ``TypeError`` (non-float variables) or ``ValueError`` (a function that cannot be
        evaluated on these arguments, or that does not return a scalar), naming ``owner``.
        """
        _check_float(owner, "x", x)
        _check_float(owner, "y", y)
        _check_scalar(owner, "upper_fn", self.upper_fn, x, y, upper_data)
        _check_scalar(owner, "lower_fn", self.lower_fn, x, y, lower_data)
        if self.constraint_fn is not None:
            try:
                out = jax.eval_shape(self.constraint_fn, x, y, lower_data)
            except Exception as err:
                raise ValueError(
                    f"{owner}: `constraint_fn` could not be evaluated as constraint_fn(x, y, "
                    f"lower_data): {type(err).__name__}: {err}."
                ) from err
            if len(jax.tree.leaves(out)) != 1:
                raise ValueError(f"{owner}: `constraint_fn` must return one array, got {out}.")


class MultiBlockProblem(eqx.Module):
    """``m`` lower-level blocks sharing ``x``: ``F(x) = (1/m) Σᵢ upper_fn(x, yᵢ*(x), uᵢ)``.

    ``yᵢ*(x) = argmin_y lower_fn(x, y, lᵢ)``. ``upper_fn`` and ``lower_fn`` describe one block;
    the data ``u``, ``l`` and the lower-level variable ``y`` carry the block index ``i`` on the
    leading axis of every leaf (``m`` blocks), and inside a block every leaf's next axis indexes
    samples (stochastic methods draw mini-batches along it).

    Args:
      upper_fn: ``upper_fn(x, y_i, upper_data_i) -> scalar`` for one block.
      lower_fn: ``lower_fn(x, y_i, lower_data_i) -> scalar`` for one block, strongly convex in
        ``y_i``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> problem = bilevel.MultiBlockProblem(
      ...     upper_fn=lambda x, y, t: 0.5 * jnp.sum((y - t) ** 2),
      ...     lower_fn=lambda x, y, a: 0.5 * jnp.sum((y - a * x) ** 2))
      >>> problem.block_upper(jnp.ones(2), jnp.ones((3, 2)), jnp.zeros((3, 2))).shape
      (3,)
    """

    upper_fn: Callable = eqx.field(static=True)
    lower_fn: Callable = eqx.field(static=True)

    def __check_init__(self) -> None:
        for name in ("upper_fn", "lower_fn"):
            if not callable(getattr(self, name)):
                raise TypeError(
                    f"MultiBlockProblem: `{name}` must be callable as {name}(x, y_i, data_i) -> "
                    f"scalar, got {type(getattr(self, name)).__name__}."
                )

    @property
    def constraint_fn(self) -> None:
        """``None``: the blocks' lower levels are unconstrained."""
        return None

    def block_upper(self, x: Any, y: Any, upper_data: Any) -> jax.Array:
        """``upper_fn`` of every block, shape ``(m,)``."""
        return jax.vmap(self.upper_fn, in_axes=(None, 0, 0))(x, y, upper_data)

    def block_lower(self, x: Any, y: Any, lower_data: Any) -> jax.Array:
        """``lower_fn`` of every block, shape ``(m,)``."""
        return jax.vmap(self.lower_fn, in_axes=(None, 0, 0))(x, y, lower_data)

    def num_blocks_of(self, owner: str, y: Any, upper_data: Any, lower_data: Any) -> int:
        """The number of blocks ``m`` (leading axis of ``y`` and of the data), checked."""
        sizes = {}
        for name, tree in (("y", y), ("upper_data", upper_data), ("lower_data", lower_data)):
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                shape = np.shape(leaf)
                if not shape:
                    raise ValueError(
                        f"{owner}: every leaf of `{name}` must have the block axis first, got a "
                        f"scalar at {jax.tree_util.keystr(path) or 'the array'}."
                    )
                sizes[f"{name}{jax.tree_util.keystr(path)}"] = shape[0]
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"{owner}: `y`, `upper_data` and `lower_data` must have the same number of "
                f"blocks on their leading axis, got {sizes}."
            )
        return next(iter(sizes.values()))

    def check(self, owner: str, x: Any, y: Any, upper_data: Any, lower_data: Any) -> None:
        """Trace-time checks on one block (see :meth:`BilevelProblem.check`)."""
        _check_float(owner, "x", x)
        _check_float(owner, "y", y)
        self.num_blocks_of(owner, y, upper_data, lower_data)
        first = lambda t: jax.tree.map(lambda v: v[0], t)
        yi, ui, li = first(y), first(upper_data), first(lower_data)
        _check_scalar(owner, "upper_fn", self.upper_fn, x, yi, ui)
        _check_scalar(owner, "lower_fn", self.lower_fn, x, yi, li)
