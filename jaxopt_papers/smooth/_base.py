"""What the smooth solvers share: the objective wrapper, checks, the line-search step, ``_run``.

A smooth solver minimises ``fun(x, *args, **kwargs)`` (or, with ``value_and_grad=True``, ``fun``
returns ``(value, grad)``; with ``has_aux=True`` it returns ``(value, aux)``). Its state holds
``value``/``grad`` at the current iterate, the last step size, ``failed_linesearch`` and the
evaluation counters; ``run`` reports ``RESULTS.stagnation`` when it stopped because the line
search failed (``stop_if_linesearch_fails=True``).

Differences from jaxopt: see the solver modules.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS
from jaxopt_papers.implicit.solver import IterativeSolver
from jaxopt_papers.smooth._linesearch import LineSearchResult, hager_zhang, rdot, zoom

LINESEARCHES = ("zoom", "hager-zhang")
LINESEARCH_INITS = ("increase", "max", "current")


def axpy(a: Any, x: Any, y: Any) -> Any:
    """``a·x + y`` leaf by leaf."""
    return jax.tree.map(lambda u, v: (a * u).astype(v.dtype) + v, x, y)


def tree_norm(tree: Any) -> jax.Array:
    """Euclidean norm over all leaves (complex entries by modulus)."""
    return jnp.sqrt(rdot(tree, tree))


def signature_error(fn: Callable, *args: Any, **kwargs: Any) -> str | None:
    """None if ``fn`` accepts these arguments, else its signature as text."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        return str(sig)
    return None


def shapes(tree: Any) -> str:
    """The shapes of a pytree's leaves, as text."""
    return str(jax.tree.map(lambda v: tuple(jnp.shape(v)), tree))


def check_params(owner: str, params: Any, *, allow_complex: bool) -> np.dtype:
    """Trace-time checks of ``init_params``; returns its (common) dtype."""
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(f"{owner}: `init_params` must contain at least one array, got {params!r}.")
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = jnp.result_type(leaf)
        ok = jnp.issubdtype(dtype, jnp.floating) or (
            allow_complex and jnp.issubdtype(dtype, jnp.complexfloating)
        )
        if not ok:
            kinds = "floating-point or complex" if allow_complex else "floating-point"
            raise TypeError(
                f"{owner}: `init_params` must have {kinds} leaves, got dtype {dtype} at "
                f"{jax.tree_util.keystr(path) or 'the array'}; pass e.g. "
                f"`x.astype(jnp.float64)`."
            )
    return jnp.result_type(*leaves)


def real_dtype(dtype: Any) -> np.dtype:
    """The real dtype of a (possibly complex) dtype."""
    return jnp.finfo(dtype).dtype


class SmoothSolver(IterativeSolver):
    """Base of :class:`LBFGS`, :class:`BFGS` and :class:`LBFGSB` (not public)."""

    symmetric_optimality = True

    def __check_init__(self) -> None:
        owner = type(self).__name__
        if not callable(self.fun):
            raise TypeError(f"{owner}: `fun` must be callable, got {type(self.fun).__name__}.")
        V.check_real(owner, "tol", self.tol, low=0.0)
        V.check_int(owner, "max_steps", self.max_steps, low=1)
        V.check_int(owner, "maxls", self.maxls, low=1)
        V.check_real(owner, "max_stepsize", self.max_stepsize, low=0.0, low_open=True)
        V.check_real(owner, "min_stepsize", self.min_stepsize, low=0.0)
        V.check_real(owner, "increase_factor", self.increase_factor, low=1.0)
        V.check_static_choice(owner, "linesearch", self.linesearch, LINESEARCHES)
        V.check_static_choice(owner, "linesearch_init", self.linesearch_init, LINESEARCH_INITS)
        if self.stepsize is not None and not callable(self.stepsize):
            V.check_real(owner, "stepsize", self.stepsize, low=0.0, low_open=True)

    # -- the objective -------------------------------------------------------------------------

    def value_grad_aux(self, params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
        """``(f(x), ∇f(x), aux)`` for the three forms of ``fun``."""
        if self.value_and_grad:
            out, grad = self.fun(params, *args, **kwargs)
            value, aux = out if self.has_aux else (out, None)
            return value, grad, aux
        if self.has_aux:
            (value, aux), grad = jax.value_and_grad(self.fun, has_aux=True)(params, *args, **kwargs)
            return value, grad, aux
        value, grad = jax.value_and_grad(self.fun)(params, *args, **kwargs)
        return value, grad, None

    def gradient(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``∇f(params)``."""
        return self.value_grad_aux(params, *args, **kwargs)[1]

    def _check_fun(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        owner = type(self).__name__
        sig = signature_error(self.fun, init_params, *args, **kwargs)
        if sig is not None:
            raise TypeError(
                f"{owner}: `fun` must accept `(init_params, *args, **kwargs)` as given to `run` "
                f"({len(args)} extra positional and {sorted(kwargs)} keyword arguments), got a "
                f"callable with signature {sig}."
            )
        try:
            value, grad, _ = eqx.filter_eval_shape(
                self.value_grad_aux, init_params, *args, **kwargs
            )
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{owner}: `fun` could not be evaluated (and differentiated) at `init_params` of "
                f"shapes {shapes(init_params)}: check that `init_params` has the structure and "
                f"shapes that `fun` expects and that `fun` returns a real scalar"
                f"{' and its gradient' if self.value_and_grad else ''}. The error was: {err}"
            ) from err
        if not (hasattr(value, "shape") and value.shape == ()) or jnp.issubdtype(
            value.dtype, jnp.complexfloating
        ):
            raise ValueError(
                f"{owner}: `fun` must return a real scalar, got "
                f"{getattr(value, 'shape', type(value).__name__)} "
                f"{getattr(value, 'dtype', '')} at `init_params`."
            )
        if jax.tree.structure(grad) != jax.tree.structure(init_params):
            raise ValueError(
                f"{owner}: the gradient returned by `fun` (value_and_grad=True) must have the "
                f"structure of `init_params`, got {shapes(grad)} for {shapes(init_params)}."
            )

    # -- the line search -----------------------------------------------------------------------

    def _first_trial(self, prev: jax.Array) -> jax.Array:
        if self.linesearch_init == "max":
            return jnp.asarray(self.max_stepsize, prev.dtype)
        if self.linesearch_init == "current":
            return prev
        return jnp.where(prev <= self.min_stepsize, self.max_stepsize, prev * self.increase_factor)

    def _search(
        self,
        params: Any,
        value: jax.Array,
        grad: Any,
        direction: Any,
        prev_stepsize: jax.Array,
        num_steps: jax.Array,
        args: tuple,
        kwargs: dict,
        project: Callable | None = None,
    ) -> tuple[LineSearchResult, Any]:
        """Step along ``direction``: a line search, or the fixed ``stepsize``; returns aux."""
        rdtype = prev_stepsize.dtype

        def phi(t: jax.Array) -> tuple:
            x = axpy(t, direction, params)
            if project is not None:
                x = project(x)
            f, g, _ = self.value_grad_aux(x, *args, **kwargs)
            return x, f, g, rdot(jax.tree.map(jnp.conj, g), direction)

        if self.stepsize is not None:
            s = self.stepsize(num_steps) if callable(self.stepsize) else self.stepsize
            t = jnp.asarray(s, rdtype)
            x, f, g, _ = phi(t)
            ls = LineSearchResult(t, x, f, g, jnp.asarray(False), jnp.asarray(1, jnp.int32))
        else:
            slope = rdot(jax.tree.map(jnp.conj, grad), direction)
            init = self._first_trial(prev_stepsize).astype(rdtype)
            if self.linesearch == "zoom":
                ls = zoom(
                    phi, params, value, grad, slope, init, max_stepsize=self.max_stepsize,
                    maxls=self.maxls, unrolled=not self.implicit_diff,
                )  # fmt: skip
            else:
                ls = hager_zhang(
                    phi, params, value, grad, slope, init, maxls=self.maxls,
                    unrolled=not self.implicit_diff,
                )  # fmt: skip
        aux = None
        if self.has_aux:
            aux = self.value_grad_aux(ls.params, *args, **kwargs)[2]
        return ls, aux

    # -- the loop ------------------------------------------------------------------------------

    def _continue(self, state: Any) -> jax.Array:
        go = super()._continue(state)
        if self.stop_if_linesearch_fails:
            go = go & ~state.failed_linesearch
        return go

    def _prepare(self, init_params: Any, *args: Any, **kwargs: Any) -> Any:
        """``init_params`` as the loop starts from it (LBFGSB projects it onto the box)."""
        return init_params

    def _while_loop(self, init_params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return super()._while_loop(self._prepare(init_params, *args, **kwargs), *args, **kwargs)

    def _scan_loop(self, init_params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return super()._scan_loop(self._prepare(init_params, *args, **kwargs), *args, **kwargs)

    def _inputs_valid(self, init_params: Any, *args: Any, **kwargs: Any) -> jax.Array:
        preds = [jnp.asarray(self.tol) >= 0, jnp.asarray(self.max_stepsize) > 0]
        if self.stepsize is not None and not callable(self.stepsize):
            preds.append(jnp.asarray(self.stepsize) > 0)
        return jnp.all(jnp.stack(preds))

    def _result(self, params: Any, state: Any) -> RESULTS:
        finite = jnp.isfinite(state.error) & V.all_finite(params) & jnp.isfinite(state.value)
        stalled = state.failed_linesearch if self.stop_if_linesearch_fails else False
        result = RESULTS.where(
            state.error <= self.tol,
            RESULTS.successful,
            RESULTS.where(stalled, RESULTS.stagnation, RESULTS.max_steps_reached),
        )
        return RESULTS.where(finite, result, RESULTS.nonfinite)

    def _stats(self, state: Any) -> dict[str, Any]:
        return {
            "num_steps": state.num_steps,
            "error": state.error,
            "objective": state.value,
            "num_fun_evals": state.num_fun_evals,
            "num_grad_evals": state.num_fun_evals,
            "num_linesearch_steps": state.num_linesearch_steps,
        }

    def _aux(self, state: Any) -> Any:
        return state.aux


def messages(name: str, error: str) -> dict[str, str]:
    """The failure messages of a smooth solver called ``name`` whose error is ``error``."""
    return {
        "max_steps_reached": (
            f"{name} did not reach `tol` ({error}) within `max_steps` iterations. Increase "
            f"`max_steps`, loosen `tol`, or rescale the problem (features, objective). Pass "
            f"`throw=False` to get the last iterate with this result code instead."
        ),
        "stagnation": (
            f"{name}: the line search found no step satisfying its conditions within `maxls` "
            f"evaluations and `stop_if_linesearch_fails=True` stopped the solver. Increase "
            f"`maxls`, try `linesearch='hager-zhang'`, work in float64, or rescale the problem."
        ),
        "nonfinite": (
            f"{name} produced non-finite values (NaN or inf). Check `init_params`, the "
            f"arguments of `fun` and `fun` itself for NaN/inf (at `init_params` and along the "
            f"search direction); a smaller `max_stepsize` keeps the line search closer."
        ),
        "invalid_input": (
            f"{name}: an argument failed a check on its value: `tol` must be >= 0, "
            f"`max_stepsize` and a fixed `stepsize` > 0."
        ),
    }
