"""SciPy's optimizers as library solvers: usable under ``jit``/``vmap``, implicitly differentiable.

:class:`ScipyMinimize`, :class:`ScipyBoundedMinimize`, :class:`ScipyRootFinding` and
:class:`ScipyLeastSquares` run ``scipy.optimize.minimize`` / ``root`` / ``least_squares`` on the
host through ``jax.pure_callback``: the pytree of parameters is flattened to one float64 vector,
and scipy calls back jit-compiled JAX functions for the objective and its gradient (or the
residuals and their Jacobian). They return the library's :class:`~jaxopt_papers.Solution`
(``value``, ``result``, ``stats`` with ``num_steps``, ``error``, ``num_fun_evals``, ``status``,
and ``state``: a :class:`ScipyInfo`), so ``params, info = solver.run(...)`` works as in jaxopt.

Result codes come from scipy's ``success`` flag: ``successful``; ``max_steps_reached`` when
scipy stopped at its iteration or evaluation limit (``max_steps``); ``nonfinite`` when the
answer or the objective is NaN/inf; ``inaccurate`` for any other failure scipy reports (e.g. a
line search that lost precision; ``state.status`` is scipy's own status code);
``invalid_input`` when scipy raised an exception (e.g. inconsistent bounds; the exception is
reported as a ``RuntimeWarning`` on the host). ``throw=True`` (default) turns any of these into
a runtime error naming the solver's arguments.

Gradients with respect to every floating-point array in ``args``/``kwargs`` (and the bounds)
come from :func:`~jaxopt_papers.implicit.custom_root` on the optimality condition
(Blondel et al., NeurIPS 2022, arXiv 2105.15183):

=========================  ================================================================
solver                     ``F(x, θ) = 0`` at the answer
=========================  ================================================================
:class:`ScipyMinimize`     ``∇ₓf(x, θ)``
:class:`ScipyBoundedMin…`  ``clip(x − ∇ₓf(x, θ), lower, upper) − x`` (projected gradient)
:class:`ScipyRootFinding`  ``F(x, θ)`` itself
:class:`ScipyLeastSquares` ``∇ₓ ½ f_s² Σ ρ((r(x, θ)/f_s)²)`` (``Jᵀr`` for the linear loss)
=========================  ================================================================

so ``jax.grad``, ``jax.jacfwd`` and ``jax.vmap`` of them all work, at the cost of one linear solve
per derivative (:class:`~jaxopt_papers.implicit.LinearSolve`). The functions must be written in
JAX and take their data through ``args``/``kwargs`` (not as traced values they close over),
since they are evaluated on the host, outside the traced computation.

Reference code: jaxopt 0.8.5's ``ScipyMinimize``, ``ScipyBoundedMinimize``,
``ScipyRootFinding``, ``ScipyLeastSquares``. Differences from jaxopt:

- Usable under ``jit`` and ``vmap`` (jaxopt's wrappers call scipy on concrete values and fail
  when traced); the solver is an ``equinox.Module``.
- ``run`` returns :class:`~jaxopt_papers.Solution` with a result code and honours ``throw``
  (jaxopt returns ``(params, info)`` whatever scipy reported); ``maxiter`` is called
  ``max_steps`` (:class:`ScipyMinimize` keeps jaxopt's 500; the others default to scipy's own
  limits); ``info.hess_inv`` and ``callback`` are not offered.
- :class:`ScipyLeastSquares` takes its scipy options as keywords (``f_scale``, ``options`` for the
  rest); its ``"huber"`` loss is scipy's (jaxopt's optimality condition used ``r`` instead of
  ``|r|`` and was wrong for negative residuals).
- :class:`ScipyRootFinding` defaults to ``method="hybr"`` (scipy's default, jaxopt's ``None``)
  and passes the Jacobian only to the methods that use it (``hybr``, ``lm``).
- The backward solve is :class:`~jaxopt_papers.implicit.LinearSolve` and is checked (jaxopt:
  normal-equation CG at ``tol=1e-5``), and the derivative is refused (error or NaN) when scipy's
  answer is not a root of the optimality condition to ``1e-4`` relative.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize as sopt
from jax.flatten_util import ravel_pytree

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, Solution, finish
from jaxopt_papers.implicit.implicit_diff import custom_root
from jaxopt_papers.implicit.linear_solve import LinearSolve, as_linear_solve

__all__ = [
    "ScipyBoundedMinimize",
    "ScipyInfo",
    "ScipyLeastSquares",
    "ScipyMinimize",
    "ScipyRootFinding",
]

_MINIMIZE_METHODS = (
    "Nelder-Mead", "Powell", "CG", "BFGS", "Newton-CG", "L-BFGS-B", "TNC", "COBYLA", "COBYQA",
    "SLSQP", "trust-constr", "dogleg", "trust-ncg", "trust-exact", "trust-krylov",
)  # fmt: skip
_BOUNDED_METHODS = ("Nelder-Mead", "Powell", "L-BFGS-B", "TNC", "SLSQP", "trust-constr", "COBYLA",
                    "COBYQA")  # fmt: skip
_ROOT_METHODS = (
    "hybr", "lm", "broyden1", "broyden2", "anderson", "linearmixing", "diagbroyden",
    "excitingmixing", "krylov", "df-sane",
)  # fmt: skip
_LOSSES = ("linear", "soft_l1", "huber", "cauchy", "arctan")

# host status codes
_OK, _LIMIT, _FAILED, _RAISED = 0, 1, 2, 3


class ScipyInfo(eqx.Module):
    """What scipy reported (the ``state`` of the :class:`~jaxopt_papers.Solution`).

    Built by the wrappers; ``params, info = solver.run(...)`` unpacks it as in jaxopt.

    Args:
      fun_val: the objective at the answer (:class:`ScipyMinimize`), scipy's ``cost``
        (:class:`ScipyLeastSquares`) or ``‖F(x)‖₂`` (:class:`ScipyRootFinding`).
      success: scipy's ``success`` flag.
      status: scipy's ``status`` code (its meaning depends on the method; ``-1`` if scipy
        raised).
      num_steps: scipy's iteration count (``nit``; evaluations where a method reports none).
      num_fun_evals, num_jac_evals: scipy's ``nfev``/``njev`` (``0`` where not reported).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.scipy_wrappers import ScipyMinimize
      >>> params, info = ScipyMinimize(lambda x: jnp.sum((x - 2.0) ** 2)).run(jnp.zeros(2))
      >>> bool(info.success), round(float(info.fun_val), 8)
      (True, 0.0)
    """

    fun_val: jax.Array
    success: jax.Array
    status: jax.Array
    num_steps: jax.Array
    num_fun_evals: jax.Array
    num_jac_evals: jax.Array


def _freeze(options: Any) -> Any:
    if options is None or isinstance(options, tuple):  # None, or already frozen
        return options
    if not isinstance(options, dict):
        raise TypeError(f"`options` must be a dict or None, got {type(options).__name__}.")
    return tuple(sorted(options.items()))


def _box_float(x: Any) -> Any:
    return jnp.asarray(x) if isinstance(x, (float, complex)) else x


def _count(res: Any, name: str) -> int:
    v = getattr(res, name, None)
    return 0 if v is None else int(v)


class _ScipyBase(eqx.Module):
    """Shared machinery: trace-time checks, the host callback, implicit differentiation."""

    #: ``∂F/∂x`` is symmetric (stationarity of a smooth objective).
    symmetric_optimality: ClassVar[bool] = True
    scipy_name: ClassVar[str] = ""

    messages: ClassVar[dict[str, str]] = {}

    def run(self, init_params: Any, *args: Any, **kwargs: Any) -> Solution:
        """Solve from ``init_params``; differentiable in ``args``/``kwargs`` (module docstring).

        Args:
          init_params: the starting point (a pytree of floating-point arrays).
          *args, **kwargs: passed to the function after the parameters (the data and the
            hyperparameters to differentiate).

        Returns:
          A :class:`~jaxopt_papers.Solution`: ``value``, ``result``, ``stats`` (``num_steps``,
          ``error`` = the norm of the optimality condition, ``num_fun_evals``, ``status``) and
          ``state`` (a :class:`ScipyInfo`).
        """
        init_params, args, kwargs = jax.tree.map(_box_float, (init_params, args, kwargs))
        return _compiled_run(self, init_params, args, kwargs)

    # --- what each wrapper provides
    @abc.abstractmethod
    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """The function whose root the solution is (differentiated implicitly)."""

    @abc.abstractmethod
    def _host_solve(
        self, x0: np.ndarray, unravel: Callable, args: tuple, kwargs: dict, jitted: dict
    ) -> Any:
        """Run scipy from ``x0`` (float64); returns ``(res, hit_limit, fun_val)``.

        ``jitted`` caches the compiled JAX functions that scipy calls (one per trace)."""

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        """Checks of ``run``'s arguments before tracing (none by default)."""

    # --- shared
    def _owner(self) -> str:
        return type(self).__name__

    def _backward_solve(self) -> LinearSolve:
        if self.linear_solve is None:
            return LinearSolve(throw=self.throw)
        return as_linear_solve(self.linear_solve, owner=self._owner())

    def _check_params(self, init_params: Any) -> None:
        leaves = jax.tree.leaves(init_params)
        if not leaves:
            raise ValueError(
                f"{self._owner()}: `init_params` must contain at least one array, got "
                f"{init_params!r}."
            )
        V.check_float_leaves(self._owner(), "init_params", init_params)

    def _solve(self, init_params: Any, *args: Any, **kwargs: Any) -> tuple[Any, ScipyInfo]:
        """Flatten, call scipy on the host, unflatten (no derivative rule: see ``_run``)."""
        x0, unravel = ravel_pytree(init_params)
        dyn, static = eqx.partition((args, kwargs), eqx.is_array)
        dtype = x0.dtype

        def unravel_host(z: Any) -> Any:  # scipy's float64 vector -> the params' pytree
            return unravel(jnp.asarray(z).astype(dtype))

        jitted: dict[str, Callable] = {}  # compiled once per trace, reused by every call

        def host(x0_np: np.ndarray, dyn_np: Any) -> tuple:
            a, k = eqx.combine(jax.tree.map(jnp.asarray, dyn_np), static)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", sopt.OptimizeWarning)
                    res, hit_limit, fun_val = self._host_solve(
                        np.asarray(x0_np, np.float64), unravel_host, a, k, jitted
                    )
            except Exception as err:  # reported as RESULTS.invalid_input
                warnings.warn(
                    f"{self._owner()}: scipy.optimize.{self.scipy_name} raised {err!r}; the "
                    "solution is reported with RESULTS.invalid_input.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                nan = np.full(x0_np.shape, np.nan, dtype)
                return (nan, np.asarray(np.nan, dtype), np.asarray(False), np.int32(-1),
                        np.int32(_RAISED), np.int32(0), np.int32(0), np.int32(0))  # fmt: skip
            if res.success:
                code = _OK
            elif hit_limit:
                code = _LIMIT
            else:
                code = _FAILED
            nit = getattr(res, "nit", None)
            if nit is None:
                nit = getattr(res, "njev", None) or getattr(res, "nfev", 0)
            return (
                np.asarray(res.x, dtype).reshape(x0_np.shape),
                np.asarray(fun_val, dtype),
                np.asarray(bool(res.success)),
                np.int32(int(getattr(res, "status", 0))),
                np.int32(code),
                np.int32(int(nit)),
                np.int32(_count(res, "nfev")),
                np.int32(_count(res, "njev")),
            )

        i32 = jax.ShapeDtypeStruct((), jnp.int32)
        shapes = (
            jax.ShapeDtypeStruct(x0.shape, dtype),
            jax.ShapeDtypeStruct((), dtype),
            jax.ShapeDtypeStruct((), jnp.bool_),
            i32, i32, i32, i32, i32,
        )  # fmt: skip
        out = jax.pure_callback(host, shapes, x0, dyn, vmap_method="sequential")
        x, fun_val, success, status, code, nit, nfev, njev = out
        info = ScipyInfo(fun_val, success, status, nit, nfev, njev)
        return unravel(x), (info, code)

    def _run(self, init_params: Any, *args: Any, **kwargs: Any) -> Solution:
        self._check_params(init_params)
        self._check_call(init_params, *args, **kwargs)
        solve = custom_root(
            _optimality,
            solve=self._backward_solve(),
            has_aux=True,
            symmetric=self.symmetric_optimality,
        )(_solve)
        params, (info, code) = solve(init_params, self, *args, **kwargs)
        error = optax.tree.norm(jax.lax.stop_gradient(self.optimality_fn(params, *args, **kwargs)))
        finite = V.all_finite(params) & jnp.isfinite(info.fun_val)
        result = RESULTS.where(code == _OK, RESULTS.successful, RESULTS.inaccurate)
        result = RESULTS.where(code == _LIMIT, RESULTS.max_steps_reached, result)
        result = RESULTS.where(finite | (code == _RAISED), result, RESULTS.nonfinite)
        result = RESULTS.where(code == _RAISED, RESULTS.invalid_input, result)
        stats = {
            "num_steps": info.num_steps,
            "error": error,
            "num_fun_evals": info.num_fun_evals,
            "status": info.status,
        }
        return finish(params, result, stats, state=info, throw=self.throw, messages=self.messages)


def _optimality(params: Any, solver: _ScipyBase, *args: Any, **kwargs: Any) -> Any:
    return solver.optimality_fn(params, *args, **kwargs)


def _solve(init_params: Any, solver: _ScipyBase, *args: Any, **kwargs: Any) -> Any:
    return solver._solve(init_params, *args, **kwargs)


@eqx.filter_jit
def _compiled_run(solver: _ScipyBase, init_params: Any, args: tuple, kwargs: dict) -> Solution:
    return solver._run(init_params, *args, **kwargs)


def _flat_fn(fn: Callable, unravel: Callable) -> Callable:
    """``z (flat) -> fn(unravel(z))``."""
    return lambda z, *a, **k: fn(unravel(z), *a, **k)


def _messages(owner: str, scipy_fn: str, limit: str) -> dict[str, str]:
    return {
        "max_steps_reached": (
            f"{owner}: scipy.optimize.{scipy_fn} stopped at its iteration limit without "
            f"converging. Increase `{limit}`, loosen `tol`, or try another `method`. Pass "
            "`throw=False` to get the last iterate with this result code instead."
        ),
        "inaccurate": (
            f"{owner}: scipy.optimize.{scipy_fn} reported a failure (its status code is in "
            "`sol.state.status`, e.g. a line search that lost precision). Rescale the problem, "
            "loosen `tol`, or try another `method`."
        ),
        "nonfinite": (
            f"{owner}: the answer or the objective is non-finite (NaN or inf). Check "
            "`init_params` and the arguments for NaN/inf, and that the function is finite "
            "near the starting point."
        ),
        "invalid_input": (
            f"{owner}: scipy.optimize.{scipy_fn} raised an exception (shown as a "
            "RuntimeWarning on the host), e.g. bounds with `lower > upper` or an `options` "
            "entry it does not accept."
        ),
    }


def _check_options(owner: str, options: Any, reserved: tuple[str, ...]) -> None:
    for key, _ in options or ():
        if key in reserved:
            raise ValueError(
                f"{owner}: do not pass {key!r} in `options`; use the `max_steps` argument."
            )


# ------------------------------------------------------------------------------ minimize


class ScipyMinimize(_ScipyBase):
    """``scipy.optimize.minimize`` of ``fun(x, *args, **kwargs)`` (see the module docstring).

    Args:
      fun: the smooth objective, written in JAX, returning a scalar (``(value, aux)`` with
        ``has_aux=True``, ``(value, grad)`` with ``value_and_grad=True``).
      method: scipy's ``method`` (``None``: scipy's choice, BFGS without bounds).
      tol: scipy's ``tol``.
      options: scipy's ``options`` (without ``maxiter``).
      max_steps: scipy's ``maxiter`` (jaxopt's ``maxiter=500``).
      has_aux: ``fun`` returns ``(value, aux)``; ``aux`` is ignored.
      value_and_grad: ``fun`` returns ``(value, grad)``; the gradient given is used by scipy and
        as the optimality condition (it must then be differentiable in JAX).
      linear_solve: backward solve of the implicit derivative (``None``: ``LinearSolve()``).
      throw: raise on failure, or return the result code.

    ``run(init_params, *args, **kwargs)`` returns a :class:`~jaxopt_papers.Solution`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.scipy_wrappers import ScipyMinimize
      >>> fun = lambda w, lam: jnp.sum((w - 1.0) ** 2) + lam * jnp.sum(w ** 2)
      >>> solver = ScipyMinimize(fun, method="BFGS", tol=1e-10)
      >>> sol = jax.jit(solver.run)(jnp.zeros(2), 1.0)            # w* = 1 / (1 + lam)
      >>> [round(float(v), 6) for v in sol.value]
      [0.5, 0.5]
      >>> round(float(jax.grad(lambda l: solver.run(jnp.zeros(2), l).value[0])(1.0)), 6)
      -0.25
    """

    fun: Callable = eqx.field(static=True)
    method: str | None = eqx.field(static=True, default=None)
    tol: float | None = eqx.field(static=True, default=None)
    options: Any = eqx.field(static=True, default=None, converter=_freeze)
    max_steps: int = eqx.field(static=True, default=500)
    has_aux: bool = eqx.field(static=True, default=False)
    value_and_grad: bool = eqx.field(static=True, default=False)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    scipy_name: ClassVar[str] = "minimize"
    messages: ClassVar[dict[str, str]] = _messages("ScipyMinimize", "minimize", "max_steps")

    def __check_init__(self) -> None:
        owner = self._owner()
        if not callable(self.fun):
            raise TypeError(f"{owner}: `fun` must be callable, got {type(self.fun).__name__}.")
        if self.method is not None:
            V.check_choice(owner, "method", self.method, self._methods())
        if self.tol is not None:
            V.check_real(owner, "tol", self.tol, low=0.0)
        V.check_int(owner, "max_steps", self.max_steps, low=1)
        V.check_flag(owner, "has_aux", self.has_aux)
        V.check_flag(owner, "value_and_grad", self.value_and_grad)
        if self.has_aux and self.value_and_grad:
            raise ValueError(f"{owner}: `has_aux` and `value_and_grad` cannot both be True.")
        _check_options(owner, self.options, ("maxiter",))

    def _methods(self) -> tuple[str, ...]:
        return _MINIMIZE_METHODS

    def _value(self, x: Any, *args: Any, **kwargs: Any) -> jax.Array:
        out = self.fun(x, *args, **kwargs)
        return out[0] if (self.has_aux or self.value_and_grad) else out

    def _grad(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if self.value_and_grad:
            return self.fun(x, *args, **kwargs)[1]
        return jax.grad(self._value)(x, *args, **kwargs)

    def _value_and_grad(self, x: Any, *args: Any, **kwargs: Any) -> tuple[jax.Array, Any]:
        if self.value_and_grad:
            return self.fun(x, *args, **kwargs)
        return jax.value_and_grad(self._value)(x, *args, **kwargs)

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        owner = self._owner()
        try:
            value = eqx.filter_eval_shape(self._value, init_params, *args, **kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{owner}: `fun` could not be evaluated at `init_params` with the arguments "
                f"given to `run`: check that `init_params` has the structure and shapes that "
                f"`fun` expects. The error was: {err}"
            ) from err
        if not (hasattr(value, "shape") and value.shape == ()):
            hint = " (pass `has_aux=True` if it returns `(value, aux)`)" if not self.has_aux else ""
            raise ValueError(
                f"{owner}: `fun` must return a scalar, got "
                f"{getattr(value, 'shape', type(value).__name__)}{hint}."
            )

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``∇ₓfun(x, *args, **kwargs)``."""
        return self._grad(params, *args, **kwargs)

    def _scipy_minimize(self, x0: np.ndarray, unravel: Callable, args: tuple, kwargs: dict,
                        jitted: dict, bounds: Any = None) -> tuple[Any, bool, Any]:  # fmt: skip
        if "vg" not in jitted:
            jitted["vg"] = jax.jit(_flat_fn(self._value_and_grad, unravel))
        vg = jitted["vg"]

        def f(z: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = vg(jnp.asarray(z), *args, **kwargs)
            return float(value), np.asarray(ravel_pytree(grad)[0], np.float64)

        options = dict(self.options or ())
        options["maxiter"] = self.max_steps
        res = sopt.minimize(
            f, x0, jac=True, method=self.method, tol=self.tol, bounds=bounds, options=options
        )
        hit = getattr(res, "nit", 0) >= self.max_steps
        return res, hit, res.fun

    def _host_solve(
        self, x0: np.ndarray, unravel: Callable, args: tuple, kwargs: dict, jitted: dict
    ) -> Any:
        return self._scipy_minimize(x0, unravel, args, kwargs, jitted)


def _flat_with_jacobian(fn: Callable, unravel: Callable, jitted: dict, use_jacrev: bool):
    """``z ↦ ravel(fn(unravel(z), ...))`` and its Jacobian, jitted once per trace (cached in
    ``jitted``)."""
    if "fn" not in jitted:
        flat = _flat_fn(lambda x, *a, **k: ravel_pytree(fn(x, *a, **k))[0], unravel)
        jac = jax.jacrev(flat) if use_jacrev else jax.jacfwd(flat)
        jitted["fn"], jitted["jac"] = jax.jit(flat), jax.jit(jac)
    return jitted["fn"], jitted["jac"]


def _broadcast_bound(owner: str, name: str, bound: Any, params: Any) -> Any:
    """A bound as a pytree like ``params``: a scalar is broadcast to every leaf."""
    if bound is None:
        fill = -jnp.inf if name == "lower" else jnp.inf
        return jax.tree.map(lambda p: jnp.full(jnp.shape(p), fill, p.dtype), params)
    if not jax.tree.leaves(bound) or jax.tree.structure(bound) == jax.tree.structure(0.0):
        b = jnp.asarray(bound)
        if b.ndim == 0 and jax.tree.structure(params) != jax.tree.structure(0.0):
            return jax.tree.map(lambda p: jnp.broadcast_to(b, jnp.shape(p)).astype(p.dtype),
                                params)  # fmt: skip
    if jax.tree.structure(bound) != jax.tree.structure(params):
        raise ValueError(
            f"{owner}: `bounds` must be `(lower, upper)` with each a scalar or a pytree like "
            f"`init_params` ({jax.tree.structure(params)}); `{name}` is "
            f"{jax.tree.structure(bound)}."
        )
    out = []
    for b, p in zip(jax.tree.leaves(bound), jax.tree.leaves(params), strict=True):
        if jnp.shape(b) != jnp.shape(p) and jnp.ndim(b) != 0:
            raise ValueError(
                f"{owner}: `bounds` `{name}` must have the shapes of `init_params`; got "
                f"{jnp.shape(b)} for a leaf of shape {jnp.shape(p)}."
            )
        out.append(jnp.broadcast_to(jnp.asarray(b, jnp.result_type(p)), jnp.shape(p)))
    return jax.tree.unflatten(jax.tree.structure(params), out)


class ScipyBoundedMinimize(ScipyMinimize):
    """``scipy.optimize.minimize`` subject to ``lower ≤ x ≤ upper`` (module docstring).

    Args:
      fun, tol, options, max_steps, has_aux, value_and_grad, linear_solve, throw: as in
        :class:`ScipyMinimize`.
      method: a scipy method that takes bounds (default ``"L-BFGS-B"``).

    ``run(init_params, bounds, *args, **kwargs)`` with ``bounds = (lower, upper)``, each ``None``
    (unbounded), a scalar, or a pytree like ``init_params`` (``±inf`` allowed); the solution is
    differentiable with respect to the bounds too.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.scipy_wrappers import ScipyBoundedMinimize
      >>> fun = lambda w, c: jnp.sum((w - c) ** 2)
      >>> solver = ScipyBoundedMinimize(fun, tol=1e-12)
      >>> sol = solver.run(jnp.zeros(3), (0.0, 1.0), jnp.array([-1.0, 0.5, 2.0]))
      >>> [round(float(v), 6) for v in sol.value]
      [0.0, 0.5, 1.0]
      >>> g = jax.grad(lambda u: solver.run(jnp.zeros(3), (0.0, u), jnp.array([-1.0, 0.5, 2.0]))
      ...              .value.sum())(1.0)               # only the last coordinate is at `upper`
      >>> round(float(g), 6)
      1.0
    """

    method: str | None = eqx.field(static=True, default="L-BFGS-B")

    scipy_name: ClassVar[str] = "minimize"
    messages: ClassVar[dict[str, str]] = _messages("ScipyBoundedMinimize", "minimize", "max_steps")
    #: the projected-gradient condition has a non-symmetric Jacobian at active bounds.
    symmetric_optimality: ClassVar[bool] = False

    def _methods(self) -> tuple[str, ...]:
        return _BOUNDED_METHODS

    def run(self, init_params: Any, bounds: Any = None, *args: Any, **kwargs: Any) -> Solution:
        """Solve from ``init_params`` within ``bounds = (lower, upper)`` (or ``None``).

        Args:
          init_params: the starting point (a pytree of floating-point arrays).
          bounds: ``(lower, upper)``, each ``None``, a scalar or a pytree like ``init_params``.
          *args, **kwargs: passed to ``fun`` after the parameters.

        Returns:
          A :class:`~jaxopt_papers.Solution` as :meth:`ScipyMinimize.run`.
        """
        owner = self._owner()
        if bounds is None:
            bounds = (None, None)
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
            raise TypeError(
                f"{owner}: `bounds` must be a pair `(lower, upper)` or None, got {bounds!r}."
            )
        self._check_params(init_params)
        lower = _broadcast_bound(owner, "lower", bounds[0], init_params)
        upper = _broadcast_bound(owner, "upper", bounds[1], init_params)
        concrete = [
            (np.asarray(lo), np.asarray(hi))
            for lo, hi in zip(jax.tree.leaves(lower), jax.tree.leaves(upper), strict=True)
            if not isinstance(lo, jax.core.Tracer) and not isinstance(hi, jax.core.Tracer)
        ]
        if any(np.any(lo > hi) for lo, hi in concrete):
            raise ValueError(
                f"{owner}: `bounds` must have `lower <= upper` everywhere (the box is empty "
                "otherwise)."
            )
        return super().run(init_params, (lower, upper), *args, **kwargs)

    def _check_call(self, init_params: Any, bounds: Any, *args: Any, **kwargs: Any) -> None:
        super()._check_call(init_params, *args, **kwargs)

    def optimality_fn(self, params: Any, bounds: Any, *args: Any, **kwargs: Any) -> Any:
        """``clip(x − ∇ₓfun(x, *args, **kwargs), lower, upper) − x``."""
        lower, upper = bounds
        grad = self._grad(params, *args, **kwargs)
        return jax.tree.map(
            lambda x, g, lo, hi: jnp.clip(x - g, lo, hi) - x, params, grad, lower, upper
        )

    def _host_solve(
        self, x0: np.ndarray, unravel: Callable, args: tuple, kwargs: dict, jitted: dict
    ) -> Any:
        (lower, upper), *rest = args
        lb = np.asarray(ravel_pytree(lower)[0], np.float64)
        ub = np.asarray(ravel_pytree(upper)[0], np.float64)
        if np.any(lb > ub):
            raise ValueError("bounds have lower > upper")
        return self._scipy_minimize(x0, unravel, tuple(rest), kwargs, jitted, sopt.Bounds(lb, ub))


# ---------------------------------------------------------------------------- root finding


class ScipyRootFinding(_ScipyBase):
    """``scipy.optimize.root`` of ``optimality_fun(x, *args, **kwargs) = 0`` (module docstring).

    Args:
      optimality_fun: ``F(x, *args, **kwargs)``, written in JAX, returning a pytree like ``x``
        (``(value, aux)`` with ``has_aux=True``; ``aux`` is ignored).
      method: scipy's ``method`` (default ``"hybr"``).
      tol: scipy's ``tol``.
      options: scipy's ``options`` for the method.
      max_steps: the method's iteration or evaluation limit (``maxfev`` for ``hybr`` and
        ``df-sane``, ``maxiter`` otherwise; ``None``: scipy's default).
      use_jacrev: Jacobian by ``jax.jacrev`` (``True``) or ``jax.jacfwd``.
      has_aux, linear_solve, throw: as in :class:`ScipyMinimize`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.scipy_wrappers import ScipyRootFinding
      >>> F = lambda x, a: x ** 3 - a                               # x* = a^(1/3)
      >>> solver = ScipyRootFinding(F, tol=1e-12)
      >>> round(float(solver.run(jnp.ones(1), 8.0).value[0]), 6)
      2.0
      >>> round(float(jax.grad(lambda a: solver.run(jnp.ones(1), a).value[0])(8.0)), 6)
      0.083333
    """

    optimality_fun: Callable = eqx.field(static=True)
    method: str = eqx.field(static=True, default="hybr")
    tol: float | None = eqx.field(static=True, default=None)
    options: Any = eqx.field(static=True, default=None, converter=_freeze)
    max_steps: int | None = eqx.field(static=True, default=None)
    use_jacrev: bool = eqx.field(static=True, default=True)
    has_aux: bool = eqx.field(static=True, default=False)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    scipy_name: ClassVar[str] = "root"
    symmetric_optimality: ClassVar[bool] = False
    messages: ClassVar[dict[str, str]] = _messages("ScipyRootFinding", "root", "max_steps")

    def __check_init__(self) -> None:
        owner = self._owner()
        if not callable(self.optimality_fun):
            raise TypeError(
                f"{owner}: `optimality_fun` must be callable, got "
                f"{type(self.optimality_fun).__name__}."
            )
        V.check_choice(owner, "method", self.method, _ROOT_METHODS)
        if self.tol is not None:
            V.check_real(owner, "tol", self.tol, low=0.0)
        if self.max_steps is not None:
            V.check_int(owner, "max_steps", self.max_steps, low=1)
        V.check_flag(owner, "use_jacrev", self.use_jacrev)
        V.check_flag(owner, "has_aux", self.has_aux)
        _check_options(owner, self.options, (self._limit_key(),) if self.max_steps else ())

    def _limit_key(self) -> str:
        return "maxfev" if self.method in ("hybr", "df-sane") else "maxiter"

    def _f(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        out = self.optimality_fun(x, *args, **kwargs)
        return out[0] if self.has_aux else out

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        owner = self._owner()
        try:
            out = eqx.filter_eval_shape(self._f, init_params, *args, **kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{owner}: `optimality_fun` could not be evaluated at `init_params` with the "
                f"arguments given to `run`. The error was: {err}"
            ) from err
        want = jax.tree.map(lambda v: tuple(jnp.shape(v)), init_params)
        got = jax.tree.map(lambda v: tuple(jnp.shape(v)), out)
        if jax.tree.structure(out) != jax.tree.structure(init_params) or want != got:
            raise ValueError(
                f"{owner}: `optimality_fun` must return a pytree with the structure and shapes "
                f"of `init_params` ({want}), got {got}."
            )

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``optimality_fun(x, *args, **kwargs)``."""
        return self._f(params, *args, **kwargs)

    def _host_solve(
        self, x0: np.ndarray, unravel: Callable, args: tuple, kwargs: dict, jitted: dict
    ) -> Any:
        f_jit, jac_jit = _flat_with_jacobian(self._f, unravel, jitted, self.use_jacrev)
        options = dict(self.options or ())
        if self.max_steps is not None:
            options[self._limit_key()] = self.max_steps
        if self.method in ("hybr", "lm"):

            def fj(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                zj = jnp.asarray(z)
                return (np.asarray(f_jit(zj, *args, **kwargs), np.float64),
                        np.asarray(jac_jit(zj, *args, **kwargs), np.float64))  # fmt: skip

            res = sopt.root(fj, x0, jac=True, method=self.method, tol=self.tol, options=options)
        else:

            def f(z: np.ndarray) -> np.ndarray:
                return np.asarray(f_jit(jnp.asarray(z), *args, **kwargs), np.float64)

            res = sopt.root(f, x0, method=self.method, tol=self.tol, options=options)
        msg = str(getattr(res, "message", "")).lower()
        hit = (
            (self.method == "hybr" and res.status == 2)
            or (self.method == "lm" and res.status == 5)
            or any(s in msg for s in ("maximum number", "maxfev", "too many", "maxiter"))
        )
        return res, hit, np.linalg.norm(np.asarray(res.fun, np.float64))


# --------------------------------------------------------------------------- least squares


def _rho(loss: str, z: jax.Array) -> jax.Array:
    """scipy's losses ``ρ(z)`` of ``z = (r / f_scale)²``."""
    if loss == "linear":
        return z
    if loss == "soft_l1":
        return 2 * (jnp.sqrt(1 + z) - 1)
    if loss == "huber":
        return jnp.where(z <= 1, z, 2 * jnp.sqrt(jnp.maximum(z, 1)) - 1)
    if loss == "cauchy":
        return jnp.log1p(z)
    return jnp.arctan(z)  # "arctan"


class ScipyLeastSquares(_ScipyBase):
    """``scipy.optimize.least_squares`` of the residuals ``fun(x, *args, **kwargs)``.

    Minimises ``½ f_scale² Σ ρ((r_i/f_scale)²)`` where ``r = fun(x, ...)`` (any pytree of
    residuals) and ``ρ`` is scipy's ``loss`` (module docstring).

    Args:
      fun: the residuals, written in JAX (``(residuals, aux)`` with ``has_aux=True``).
      loss: ``"linear"``, ``"soft_l1"``, ``"huber"``, ``"cauchy"`` or ``"arctan"``.
      f_scale: scipy's ``f_scale`` (soft margin between inlier and outlier residuals).
      method: scipy's ``method`` (``"trf"``, ``"dogbox"`` or ``"lm"``).
      options: other keywords of ``least_squares`` (``ftol``, ``xtol``, ``gtol``, ``x_scale``,
        ...; not ``max_nfev``).
      max_steps: scipy's ``max_nfev`` (``None``: scipy's default).
      use_jacrev: Jacobian by ``jax.jacrev`` (``True``) or ``jax.jacfwd``.
      has_aux, linear_solve, throw: as in :class:`ScipyMinimize`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.scipy_wrappers import ScipyLeastSquares
      >>> t = jnp.linspace(0.0, 1.0, 20)
      >>> resid = lambda p, y: p[0] * jnp.exp(p[1] * t) - y
      >>> y = 2.0 * jnp.exp(-1.5 * t)
      >>> solver = ScipyLeastSquares(resid, options={"xtol": 1e-14, "ftol": 1e-14, "gtol": 1e-14})
      >>> [round(float(v), 6) for v in solver.run(jnp.array([1.0, 0.0]), y).value]
      [2.0, -1.5]
      >>> g = jax.grad(lambda y: solver.run(jnp.array([1.0, 0.0]), y).value[0])(y)
      >>> g.shape
      (20,)
    """

    fun: Callable = eqx.field(static=True)
    loss: str = eqx.field(static=True, default="linear")
    f_scale: float = eqx.field(static=True, default=1.0)
    method: str = eqx.field(static=True, default="trf")
    options: Any = eqx.field(static=True, default=None, converter=_freeze)
    max_steps: int | None = eqx.field(static=True, default=None)
    use_jacrev: bool = eqx.field(static=True, default=True)
    has_aux: bool = eqx.field(static=True, default=False)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    scipy_name: ClassVar[str] = "least_squares"
    messages: ClassVar[dict[str, str]] = _messages(
        "ScipyLeastSquares", "least_squares", "max_steps"
    )

    def __check_init__(self) -> None:
        owner = self._owner()
        if not callable(self.fun):
            raise TypeError(f"{owner}: `fun` must be callable, got {type(self.fun).__name__}.")
        V.check_choice(owner, "loss", self.loss, _LOSSES)
        V.check_choice(owner, "method", self.method, ("trf", "dogbox", "lm"))
        V.check_real(owner, "f_scale", self.f_scale, low=0.0, low_open=True)
        if self.max_steps is not None:
            V.check_int(owner, "max_steps", self.max_steps, low=1)
        V.check_flag(owner, "use_jacrev", self.use_jacrev)
        V.check_flag(owner, "has_aux", self.has_aux)
        _check_options(owner, self.options, ("max_nfev",))
        for key, _ in self.options or ():
            if key in ("loss", "f_scale", "method", "jac", "bounds", "args", "kwargs"):
                raise ValueError(
                    f"{owner}: {key!r} is an argument of ScipyLeastSquares (or fixed by it), "
                    "not an `options` entry."
                )

    def _residuals(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        out = self.fun(x, *args, **kwargs)
        return out[0] if self.has_aux else out

    def _cost(self, x: Any, *args: Any, **kwargs: Any) -> jax.Array:
        r = ravel_pytree(self._residuals(x, *args, **kwargs))[0]
        fs = self.f_scale
        return 0.5 * fs**2 * jnp.sum(_rho(self.loss, (r / fs) ** 2))

    def _check_call(self, init_params: Any, *args: Any, **kwargs: Any) -> None:
        try:
            out = eqx.filter_eval_shape(self._residuals, init_params, *args, **kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{self._owner()}: `fun` could not be evaluated at `init_params` with the "
                f"arguments given to `run`. The error was: {err}"
            ) from err
        if not jax.tree.leaves(out):
            raise ValueError(f"{self._owner()}: `fun` must return at least one residual.")

    def optimality_fn(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        """``∇ₓ cost(x)`` (``Jᵀr`` for the linear loss)."""
        return jax.grad(self._cost)(params, *args, **kwargs)

    def _host_solve(
        self, x0: np.ndarray, unravel: Callable, args: tuple, kwargs: dict, jitted: dict
    ) -> Any:
        r_jit, jac_jit = _flat_with_jacobian(self._residuals, unravel, jitted, self.use_jacrev)
        kw = dict(self.options or ())
        if self.max_steps is not None:
            kw["max_nfev"] = self.max_steps
        res = sopt.least_squares(
            lambda z: np.asarray(r_jit(jnp.asarray(z), *args, **kwargs), np.float64),
            x0,
            jac=lambda z: np.asarray(jac_jit(jnp.asarray(z), *args, **kwargs), np.float64),
            method=self.method,
            loss=self.loss,
            f_scale=self.f_scale,
            **kw,
        )
        return res, res.status == 0, res.cost
