"""L-BFGS-B: box-constrained L-BFGS by the generalised Cauchy point and subspace minimisation,
implicitly differentiable through the active set.

Byrd, Lu, Nocedal & Zhu, "A Limited Memory Algorithm for Bound Constrained Optimization", SIAM
J. Sci. Comput. 1995 (the algorithm of scipy's ``L-BFGS-B``); reference code: jaxopt 0.8.5's
``LBFGSB``.

Minimises ``fun(x, *args, **kwargs)`` subject to ``lower ≤ x ≤ upper`` (``bounds=(lower,
upper)``: pytrees like ``x`` or scalars, ``±inf`` allowed; ``None``: unconstrained). With the
last ``m = history_size`` pairs ``S``, ``Y`` (oldest first) the Hessian model is the compact form
``B = θI − W M Wᵀ``, ``W = [Y, θS]``, ``M = [[−D, Lᵀ], [L, θSᵀS]]⁻¹`` (``D = diag(sᵢᵀyᵢ)``, ``L``
the strictly lower triangle of ``SᵀY``, ``θ = yᵀy/sᵀy`` of the newest pair). Each iteration:

1. **Generalised Cauchy point** ``x^c``: the first local minimiser of the model along the
   projected steepest-descent path ``P(x − t g)``, found by visiting the breakpoints
   ``tᵢ = (xᵢ − uᵢ)/gᵢ`` (``gᵢ < 0``) or ``(xᵢ − lᵢ)/gᵢ`` (``gᵢ > 0``) in increasing order
   and updating the slope ``f'`` and curvature ``f''`` of the model on each segment (BLNZ §4);
   the variables whose breakpoint was passed are fixed at their bound (the active set).
2. **Subspace minimisation** over the free variables ``F`` by the direct primal method (BLNZ
   §5.1): ``d̂ = −r̂/θ − Zᵀ W (I − M WᵀZZᵀW/θ)⁻¹ M WᵀZ r̂/θ²`` with the reduced gradient
   ``r̂ = Zᵀ(g + θ(x^c − x) − W M c)``, then ``x̄ = x^c + α* d̂`` with the largest ``α* ≤ 1``
   keeping ``x̄`` in the box.
3. A zoom (strong Wolfe) line search along ``d = x̄ − x`` with steps ``≤ max_stepsize = 1`` (so
   every trial point is feasible), or the Hager–Zhang one, or the fixed ``stepsize``.
4. The pair ``(s, y)`` enters the memory if ``sᵀy > ε·yᵀy`` (scipy's rule).

Stop when ``error = ‖P(x − ∇f(x)) − x‖_∞ ≤ tol`` (the projected gradient, as scipy's ``pgtol``
and jaxopt) or after ``max_steps`` steps.

``run(init_params, bounds, *args, **kwargs)`` projects ``init_params`` onto the box and returns a
:class:`~jaxopt_papers.Solution`, differentiable with respect to ``bounds``, ``args`` and
``kwargs`` by implicit differentiation of the projected-gradient fixed point
``F(x) = clip(x − ∇f(x), lower, upper) − x = 0``: on the active set ``∂x/∂bound = 1``, on the
free set the Hessian system. Stats as :class:`~jaxopt_papers.smooth.LBFGS`'s.

Differences from jaxopt (and scipy):

- ``tol=1e-6`` and ``max_steps=500`` by default (jaxopt: ``1e-3`` and ``maxiter=50``, which
  stops moderate problems before they converge); scipy's default ``pgtol`` is ``1e-5``, its
  ``m`` is 10 as here.
- The memory is kept oldest-first and padded rows of the middle matrix are decoupled from the
  used ones (jaxopt fills them with the newest pair's values); a pair is skipped when
  ``sᵀy ≤ ε·yᵀy`` (jaxopt: ``sᵀy ≤ 0``).
- Along a direction that is not one of descent (round-off) the projected gradient step
  ``P(x − g) − x`` is taken instead.
- scipy's Fortran code (v3.0) projects the subspace minimiser onto the box and backtracks only
  when that is not a descent direction (Morales & Nocedal 2011); here, as in BLNZ and jaxopt,
  it is truncated at ``α*``. scipy's line search is Moré–Thuente's ``dcsrch`` (``ftol=1e-3``,
  ``gtol=0.9``); here the zoom search. The iterates therefore differ from scipy's; the solution
  does not (a test compares them to 1e-6 on bounded problems).
- Result codes, ``throw`` and ``Solution``; complex parameters are not supported (as in jaxopt).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_papers import _validation as V
from jaxopt_papers.smooth._base import SmoothSolver, check_params, messages
from jaxopt_papers.smooth._linesearch import _iterate

__all__ = ["LBFGSB", "LBFGSBState"]


class LBFGSBState(eqx.Module):
    """State of :class:`LBFGSB`.

    Attributes:
      num_steps, error: iteration count and the projected-gradient error ``‖P(x − g) − x‖_∞``.
      value, grad, aux: ``f``, ``∇f`` (and ``fun``'s aux) at the iterate.
      stepsize: the last step size.
      S, Y: the last ``history_size`` pairs over the flattened parameters, oldest first (rows).
      num_pairs: number of pairs stored so far (rows ``history_size − min(num_pairs, m)`` on).
      theta: the model's scaling ``yᵀy/sᵀy``.
      failed_linesearch, num_fun_evals, num_linesearch_steps: as in :class:`LBFGSState`.
    """

    num_steps: jax.Array
    error: jax.Array
    value: jax.Array
    grad: Any
    stepsize: jax.Array
    S: jax.Array
    Y: jax.Array
    num_pairs: jax.Array
    theta: jax.Array
    failed_linesearch: jax.Array
    num_fun_evals: jax.Array
    num_linesearch_steps: jax.Array
    aux: Any = None


def _broadcast_bound(bound: Any, params: Any, fill: float, name: str) -> Any:
    if bound is None:
        return jax.tree.map(lambda p: jnp.full(jnp.shape(p), fill, jnp.result_type(p)), params)
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(bound)):
        if jnp.ndim(bound) == 0 or not jax.tree_util.treedef_is_leaf(jax.tree.structure(params)):
            if jnp.ndim(bound) != 0:
                raise ValueError(
                    f"LBFGSB: `{name}` must be a scalar or a pytree with the structure of "
                    f"`init_params`, got an array of shape {jnp.shape(bound)}."
                )
            return jax.tree.map(lambda p: jnp.full(jnp.shape(p), bound, jnp.result_type(p)), params)
    if jax.tree.structure(bound) != jax.tree.structure(params):
        raise ValueError(
            f"LBFGSB: `{name}` must be a scalar or a pytree with the structure of "
            f"`init_params` ({jax.tree.structure(params)}), got {jax.tree.structure(bound)}."
        )

    def fit(b: Any, p: Any) -> jax.Array:
        try:
            return jnp.broadcast_to(jnp.asarray(b, jnp.result_type(p)), jnp.shape(p))
        except ValueError as err:
            raise ValueError(
                f"LBFGSB: `{name}` must broadcast to the shapes of `init_params`, got shape "
                f"{jnp.shape(b)} for a parameter of shape {jnp.shape(p)}."
            ) from err

    return jax.tree.map(fit, bound, params)


def _bounds(bounds: Any, params: Any) -> tuple[Any, Any]:
    if bounds is None:
        return _broadcast_bound(None, params, -jnp.inf, "lower"), _broadcast_bound(
            None, params, jnp.inf, "upper"
        )
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(
            f"LBFGSB: `bounds` must be None or a pair `(lower, upper)`, got "
            f"{type(bounds).__name__}."
        )
    lower = _broadcast_bound(bounds[0], params, -jnp.inf, "lower")
    upper = _broadcast_bound(bounds[1], params, jnp.inf, "upper")
    return lower, upper


def _clip(x: Any, lower: Any, upper: Any) -> Any:
    return jax.tree.map(lambda v, lo, hi: jnp.minimum(jnp.maximum(v, lo), hi), x, lower, upper)


def _pg_error(x: jax.Array, g: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(jnp.clip(x - g, lo, hi) - x))


def _compact(S: jax.Array, Y: jax.Array, valid: jax.Array, theta: jax.Array) -> tuple:
    """``W = [Y, θS]`` (rows of invalid pairs zero) and ``M`` of the compact form."""
    SY = S @ Y.T
    SS = S @ S.T
    L = jnp.tril(SY, -1)
    pad = jnp.where(valid, 0.0, 1.0).astype(S.dtype)
    K = jnp.block([[-jnp.diag(jnp.diag(SY)) + jnp.diag(pad), L.T], [L, theta * SS + jnp.diag(pad)]])
    M = jnp.linalg.inv(K)
    W = jnp.concatenate([Y.T, theta * S.T], axis=1)
    return W, M


def _cauchy_point(x, g, lo, hi, theta, W, M, unrolled=False):
    """Generalised Cauchy point: ``(x^c, c = Wᵀ(x^c − x), free mask)`` (BLNZ Algorithm CP)."""
    n = x.shape[0]
    dtype = x.dtype
    eps = jnp.finfo(dtype).eps
    tb = jnp.where(g < 0, (x - hi) / jnp.where(g < 0, g, 1.0), jnp.inf)
    tb = jnp.where(g > 0, (x - lo) / jnp.where(g > 0, g, 1.0), tb)
    free = tb > 0
    d = jnp.where(free, -g, 0.0)
    order = jnp.argsort(tb)
    ts = tb[order]
    p = W.T @ d
    fp = -(d @ d)
    fpp0 = -theta * fp - p @ (M @ p)
    fpp = jnp.maximum(fpp0, eps * jnp.abs(fpp0))
    dtmin = -fp / fpp
    start = jnp.sum(~free).astype(jnp.int32)

    def go(c):
        i, _, _, _, dtmin, told, _, _ = c
        j = jnp.minimum(i, n - 1)
        return (i < n) & jnp.isfinite(ts[j]) & (dtmin >= ts[j] - told)

    def body(c):
        i, p, cvec, fp_fpp, _, told, xcp, free = c
        fp, fpp = fp_fpp
        b = order[i]
        dt = ts[i] - told
        gb = g[b]
        bound = jnp.where(gb < 0, hi[b], lo[b])
        zb = bound - x[b]
        cvec = cvec + dt * p
        wb = W[b]
        Mw = M @ wb
        fp = fp + dt * fpp + gb * gb + theta * gb * zb - gb * (Mw @ cvec)
        fpp = fpp - theta * gb * gb - 2.0 * gb * (Mw @ p) - gb * gb * (wb @ Mw)
        fpp = jnp.maximum(fpp, eps * jnp.abs(fpp0))
        p = p + gb * wb
        return (i + 1, p, cvec, (fp, fpp), -fp / fpp, ts[i], xcp.at[b].set(bound),
                free.at[b].set(False))  # fmt: skip

    init = (start, p, jnp.zeros_like(p), (fp, fpp), dtmin, jnp.zeros((), dtype), x, free)
    _, p, cvec, _, dtmin, told, xcp, free = _iterate(go, body, init, n, unrolled)
    dtmin = jnp.maximum(jnp.where(jnp.isnan(dtmin), 0.0, dtmin), 0.0)
    told = told + dtmin
    xcp = jnp.where(free, x + told * d, xcp)
    return jnp.clip(xcp, lo, hi), cvec + dtmin * p, free


def _subspace_min(x, g, lo, hi, xcp, c, free, theta, W, M):
    """Direct primal subspace minimisation, truncated into the box (BLNZ §5.1)."""
    r = jnp.where(free, g + theta * (xcp - x) - W @ (M @ c), 0.0)
    WF = W * free[:, None].astype(W.dtype)
    v = M @ (WF.T @ r)
    N = jnp.eye(M.shape[0], dtype=M.dtype) - (M @ (WF.T @ WF)) / theta
    v = jnp.linalg.solve(N, v)
    du = jnp.where(free, -r / theta - (WF @ v) / theta**2, 0.0)
    up = jnp.where(du > 0, (hi - xcp) / jnp.where(du > 0, du, 1.0), jnp.inf)
    down = jnp.where(du < 0, (lo - xcp) / jnp.where(du < 0, du, 1.0), jnp.inf)
    alpha = jnp.minimum(1.0, jnp.min(jnp.minimum(up, down)))
    xbar = xcp + jnp.maximum(alpha, 0.0) * du
    return jnp.where(jnp.all(jnp.isfinite(xbar)), jnp.clip(xbar, lo, hi), xcp)


class LBFGSB(SmoothSolver):
    """L-BFGS-B for box constraints (see the module docstring for the equations and defaults).

    Args:
      fun: objective ``fun(x, *args, **kwargs) -> scalar`` (see :class:`LBFGS` for
        ``value_and_grad`` and ``has_aux``).
      value_and_grad, has_aux: the form of ``fun``'s output.
      tol, max_steps: stop when ``‖P(x − ∇f) − x‖_∞ ≤ tol`` or after ``max_steps`` iterations.
      stepsize, linesearch, linesearch_init, stop_if_linesearch_fails, maxls,
        increase_factor, max_stepsize, min_stepsize: as for :class:`LBFGS`
        (``max_stepsize <= 1`` keeps every trial point in the box).
      history_size: number of ``(s, y)`` pairs kept (``>= 1``).
      implicit_diff, linear_solve, throw: as for :class:`LBFGS`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.smooth import LBFGSB
      >>> fun = lambda x: jnp.sum((x - jnp.array([2.0, -3.0, 0.5])) ** 2)
      >>> sol = LBFGSB(fun).run(jnp.zeros(3), (-1.0, 1.0))
      >>> [round(float(v), 6) for v in sol.params]
      [1.0, -1.0, 0.5]
    """

    fun: Callable = eqx.field(static=True)
    value_and_grad: bool = eqx.field(static=True, default=False)
    has_aux: bool = eqx.field(static=True, default=False)
    tol: float = 1e-6
    max_steps: int = eqx.field(static=True, default=500)
    stepsize: Any = None
    linesearch: str = eqx.field(static=True, default="zoom")
    linesearch_init: str = eqx.field(static=True, default="increase")
    stop_if_linesearch_fails: bool = eqx.field(static=True, default=False)
    maxls: int = eqx.field(static=True, default=30)
    increase_factor: float = 1.5
    max_stepsize: float = 1.0
    min_stepsize: float = 1e-6
    history_size: int = eqx.field(static=True, default=10)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    symmetric_optimality = False
    messages: ClassVar[dict[str, str]] = {
        **messages("L-BFGS-B", "the projected-gradient error"),
        "invalid_input": (
            "L-BFGS-B: an argument failed a check on its value: `bounds` must satisfy "
            "`lower <= upper` (and not be NaN), `tol` >= 0, `max_stepsize` and a fixed "
            "`stepsize` > 0."
        ),
    }

    def __check_init__(self) -> None:
        V.check_int("LBFGSB", "history_size", self.history_size, low=1)

    def _check_call(self, init_params: Any, bounds: Any, *args: Any, **kwargs: Any) -> None:
        check_params("LBFGSB", init_params, allow_complex=False)
        lower, upper = _bounds(bounds, init_params)
        if not any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves((lower, upper))):
            self._check_bounds(lower, upper)
        self._check_fun(init_params, *args, **kwargs)

    def _inputs_valid(self, init_params: Any, bounds: Any, *args: Any, **kwargs: Any) -> Any:
        lower, upper = _bounds(bounds, init_params)
        ok = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.all(a <= b), lower, upper))
        return super()._inputs_valid(init_params) & jnp.all(jnp.stack(ok))

    def _prepare(self, init_params: Any, bounds: Any, *args: Any, **kwargs: Any) -> Any:
        return _clip(init_params, *_bounds(bounds, init_params))

    def optimality_fn(self, params: Any, bounds: Any, *args: Any, **kwargs: Any) -> Any:
        """``clip(x − ∇f(x), lower, upper) − x`` (``∇f`` when ``bounds`` is None)."""
        grad = self.gradient(params, *args, **kwargs)
        if bounds is None:
            return grad
        lower, upper = _bounds(bounds, params)
        step = jax.tree.map(jnp.subtract, params, grad)
        return jax.tree.map(jnp.subtract, _clip(step, lower, upper), params)

    def run(self, init_params: Any, bounds: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Minimise ``fun`` over the box; differentiable in ``bounds``, ``args``, ``kwargs``.

        Args:
          init_params: the starting point (projected onto the box).
          bounds: ``(lower, upper)``, each a scalar or a pytree like ``init_params`` (``±inf``
            for no bound), or None (unconstrained).
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`~jaxopt_papers.Solution` as :meth:`LBFGS.run`'s.
        """
        if bounds is not None and not any(
            isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(bounds)
        ):
            leaves = jax.tree.leaves(init_params)
            if leaves and all(hasattr(v, "shape") for v in leaves):
                try:
                    self._check_bounds(*_bounds(bounds, init_params))
                except jax.errors.ConcretizationTypeError:
                    pass  # broadcast under an outer trace: checked when the computation runs
        return super().run(init_params, bounds, *args, **kwargs)

    @staticmethod
    def _check_bounds(lower: Any, upper: Any) -> None:
        bad = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(~(a <= b))), lower, upper))
        if any(bad):
            raise ValueError(
                "LBFGSB: `bounds` must satisfy lower <= upper everywhere (and contain no NaN), "
                "got a violation; swap or fix the bounds."
            )

    def init(self, init_params: Any, bounds: Any, *args: Any, **kwargs: Any) -> LBFGSBState:
        """The state at ``init_params`` (one evaluation of ``fun``).

        Args:
          init_params: the starting point (inside the box).
          bounds: ``(lower, upper)`` or None.
          *args, **kwargs: passed to ``fun``.

        Returns:
          The solver's state.
        """
        dtype = check_params("LBFGSB", init_params, allow_complex=False)
        value, grad, aux = self.value_grad_aux(init_params, *args, **kwargs)
        lower, upper = _bounds(bounds, init_params)
        x = ravel_pytree(init_params)[0]
        lo, hi = ravel_pytree(lower)[0], ravel_pytree(upper)[0]
        m, n = self.history_size, x.shape[0]
        return LBFGSBState(
            num_steps=jnp.asarray(0, jnp.int32),
            error=_pg_error(x, ravel_pytree(grad)[0], lo, hi).astype(dtype),
            value=jnp.asarray(value, dtype),
            grad=grad,
            stepsize=jnp.asarray(self.max_stepsize, dtype),
            S=jnp.zeros((m, n), dtype),
            Y=jnp.zeros((m, n), dtype),
            num_pairs=jnp.asarray(0, jnp.int32),
            theta=jnp.asarray(1.0, dtype),
            failed_linesearch=jnp.asarray(False),
            num_fun_evals=jnp.asarray(1, jnp.int32),
            num_linesearch_steps=jnp.asarray(0, jnp.int32),
            aux=aux,
        )

    def step(
        self, params: Any, state: LBFGSBState, bounds: Any, *args: Any, **kwargs: Any
    ) -> tuple[Any, LBFGSBState]:
        """One L-BFGS-B iteration (``params`` is projected onto the box first).

        Args:
          params: the current iterate.
          state: the current state.
          bounds: ``(lower, upper)`` or None.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``(params, state)`` after the step.
        """
        lower, upper = _bounds(bounds, params)
        params = _clip(params, lower, upper)
        x, unravel = ravel_pytree(params)
        g = ravel_pytree(state.grad)[0]
        lo, hi = ravel_pytree(lower)[0], ravel_pytree(upper)[0]
        dtype = x.dtype
        m = self.history_size
        valid = jnp.arange(m) >= m - jnp.minimum(state.num_pairs, m)
        W, M = _compact(state.S, state.Y, valid, state.theta)
        xcp, c, free = _cauchy_point(
            x, g, lo, hi, state.theta, W, M, unrolled=not self.implicit_diff
        )
        xbar = _subspace_min(x, g, lo, hi, xcp, c, free, state.theta, W, M)
        d = xbar - x
        d = jnp.where(g @ d < 0, d, jnp.clip(x - g, lo, hi) - x)
        ls, aux = self._search(
            params, state.value, state.grad, unravel(d), state.stepsize, state.num_steps, args,
            kwargs, project=lambda v: _clip(v, lower, upper),
        )  # fmt: skip
        x_new = ravel_pytree(ls.params)[0]
        g_new = ravel_pytree(ls.grad)[0]
        s, y = x_new - x, g_new - g
        sy, yy = s @ y, y @ y
        keep = sy > jnp.finfo(dtype).eps * yy
        S = jnp.where(keep, jnp.roll(state.S, -1, axis=0).at[-1].set(s), state.S)
        Y = jnp.where(keep, jnp.roll(state.Y, -1, axis=0).at[-1].set(y), state.Y)
        new = LBFGSBState(
            num_steps=state.num_steps + 1,
            error=_pg_error(x_new, g_new, lo, hi).astype(dtype),
            value=jnp.asarray(ls.value, dtype),
            grad=ls.grad,
            stepsize=jnp.asarray(ls.stepsize, dtype),
            S=S,
            Y=Y,
            num_pairs=state.num_pairs + keep.astype(jnp.int32),
            theta=jnp.where(keep, yy / sy, state.theta).astype(dtype),
            failed_linesearch=ls.failed,
            num_fun_evals=state.num_fun_evals + ls.num_steps + self.has_aux,
            num_linesearch_steps=state.num_linesearch_steps + ls.num_steps,
            aux=aux if self.has_aux else state.aux,
        )
        return ls.params, new
