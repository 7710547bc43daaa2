"""Line searches of the quasi-Newton solvers: zoom (strong Wolfe) and Hager–Zhang.

Both search ``φ(t) = f(x + t·d)`` along a descent direction ``d`` (``φ'(0) = s₀ < 0``) and
evaluate ``f`` and ``∇f`` once per iteration of one ``lax.while_loop``; the accepted point's
value and gradient are returned, so the solver never evaluates ``f`` again at it.

**Zoom** (Nocedal & Wright, *Numerical Optimization*, 2nd ed., Algorithms 3.5–3.6). Phase 1
tries ``t₀`` then doubles the step (capped at ``max_stepsize``) until an interval containing a
point that satisfies the conditions is bracketed; phase 2 shrinks the bracket ``[lo, hi]`` with
the minimiser of the cubic through ``lo``, ``hi`` and the previous end (kept if it lies 20 % of
the bracket away from both ends), else of the quadratic through ``lo`` and ``hi`` (10 %), else
bisection. A step is accepted when

- sufficient decrease: ``φ(t) ≤ φ(0) + c₁·t·s₀``, or its approximate (Hager–Zhang) form
  ``φ'(t) ≤ (2c₁ − 1)·s₀`` together with ``φ(t) ≤ φ(0) + c₃·|φ(0)|``, which keeps the search
  reliable when ``φ(t) − φ(0)`` is below round-off;
- curvature (strong Wolfe): ``|φ'(t)| ≤ c₂·|s₀|``.

Defaults ``c₁ = 1e-4``, ``c₂ = 0.9``, ``c₃ = 1e-6`` (jaxopt's ``ZoomLineSearch``). When
``maxls`` iterations pass (or the bracket shrinks below ``1e-6``) the largest step seen with
sufficient decrease is taken, or, if there is none, the last step (as jaxopt does), and the
search reports failure. If the step reaches ``max_stepsize`` with the function still decreasing
the search stops there (not a failure).

**Hager–Zhang** (Hager & Zhang, "A new conjugate gradient method with guaranteed descent and an
efficient line search", SIAM J. Optim. 2005, §4). Accepts a step satisfying the (exact) Wolfe
conditions with ``c₁ = 0.1``, ``c₂ = 0.9`` or the approximate Wolfe conditions
``(2c₁ − 1)s₀ ≥ φ'(t) ≥ c₂s₀`` with ``φ(t) ≤ φ(0) + ε|φ(0)|`` (``ε = 1e-6``). It first expands
the trial step by ``expansion = 5`` until a bracket ``[a, b]`` with ``φ'(a) < 0 ≤ φ'(b)`` (or
a point with ``φ > φ(0) + ε|φ(0)|``, resolved by the bisection update U3) is found, then
replaces an end of the bracket by a secant step ``(a·φ'(b) − b·φ'(a))/(φ'(b) − φ'(a))``
with the update rules U0–U3, falling back to bisection when two secant steps shrank the bracket
by less than ``shrinkage = 0.66``.

Differences from jaxopt: the zoom search makes one function-and-gradient evaluation per
iteration and none after failing (jaxopt evaluates the fallback step once more: the point is
kept in the loop's state instead); otherwise its trial steps are jaxopt's. The Hager–Zhang search
takes one secant step per iteration instead of the paper's (and jaxopt's) double secant step
"secant²", with the same bracket updates and bisection safeguard, so it evaluates ``f`` once per
iteration; its trial steps therefore differ from jaxopt's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["LineSearchResult", "hager_zhang", "rdot", "zoom"]


def rdot(a: Any, b: Any) -> jax.Array:
    """``Re Σ conj(a)·b`` over the leaves of two pytrees (the real inner product)."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    parts = [jnp.real(jnp.vdot(u, v)) for u, v in pairs]
    return sum(parts[1:], parts[0])


class LineSearchResult(NamedTuple):
    """The accepted step: ``stepsize``, the point, its value and gradient, and counters."""

    stepsize: jax.Array
    params: Any
    value: jax.Array
    grad: Any
    failed: jax.Array
    num_steps: jax.Array


#: ``phi(t) -> (params, value, grad, slope)`` at ``x + t·d``.
Phi = Callable[[jax.Array], tuple[Any, jax.Array, Any, jax.Array]]


def _nan_to_inf(x: jax.Array) -> jax.Array:
    return jnp.where(jnp.isnan(x), jnp.inf, x)


def _safe(x: jax.Array) -> jax.Array:
    # A nonzero stand-in for a zero divisor: the quotient is discarded by the caller's test,
    # and neither it nor its derivative (unrolled mode) is NaN.
    return jnp.where(x == 0, 1.0, x)


def _cubic_argmin(a, fa, da, b, fb, c, fc):
    # Minimiser of the cubic p with p(a) = fa, p'(a) = da, p(b) = fb, p(c) = fc.
    db, dc = b - a, c - a
    rb, rc = fb - fa - da * db, fc - fa - da * dc
    denom = (db * dc) ** 2 * (db - dc)
    bad = (denom == 0) | ~jnp.isfinite(denom)
    denom = jnp.where(bad, 1.0, denom)
    A = (dc**2 * rb - db**2 * rc) / denom
    B = (-(dc**3) * rb + db**3 * rc) / denom
    radical = B * B - 3.0 * A * da
    bad = bad | (radical < 0) | (A == 0)
    root = jnp.sqrt(jnp.where(bad, 1.0, radical))
    return jnp.where(bad, jnp.nan, a + (-B + root) / (3.0 * _safe(A)))


def _quad_argmin(a, fa, da, b, fb):
    db = b - a
    curv = (fb - fa - da * db) / _safe(db**2)
    return jnp.where(curv == 0, jnp.nan, a - da / (2.0 * _safe(curv)))


class _Zoom(NamedTuple):
    i: jax.Array
    bracketed: jax.Array
    done: jax.Array
    failed: jax.Array
    t: jax.Array  # last trial step
    prev: tuple  # (t, f, slope) of the previous phase-1 trial
    lo: tuple  # (t, f, slope)
    hi: tuple  # (t, f, slope)
    ref: tuple  # (t, f): third point of the cubic
    last: tuple  # (params, value, grad) at the last trial
    safe_t: jax.Array
    safe: tuple  # (params, value, grad) at the largest step with sufficient decrease
    decrease: jax.Array


def _select(pred: jax.Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)


def _iterate(cond: Callable, body: Callable, init: Any, maxls: int, unrolled: bool) -> Any:
    """``lax.while_loop``, or (``unrolled``) ``maxls`` frozen steps of a reverse-differentiable
    ``fori_loop``."""
    if not unrolled:
        return jax.lax.while_loop(cond, body, init)
    return jax.lax.fori_loop(0, maxls, lambda _, c: _select(cond(c), body(c), c), init)


def zoom(
    phi: Phi,
    x0: Any,
    value0: jax.Array,
    grad0: Any,
    slope0: jax.Array,
    init_stepsize: jax.Array,
    *,
    max_stepsize: Any,
    maxls: int,
    c1: Any = 1e-4,
    c2: Any = 0.9,
    c3: Any = 1e-6,
    increase_factor: Any = 2.0,
    interval_threshold: Any = 1e-6,
    unrolled: bool = False,
) -> LineSearchResult:
    """Zoom line search for the strong Wolfe conditions (see the module docstring).

    Args:
      phi: ``t -> (x + t·d, f, ∇f, Re⟨∇f, d⟩)``.
      x0, value0, grad0, slope0: the start point, ``f``, ``∇f`` and ``φ'(0)`` there.
      init_stepsize: first trial step.
      max_stepsize: the largest step tried.
      maxls: most evaluations.
      c1, c2, c3: sufficient decrease, curvature and approximate-decrease constants.
      increase_factor: phase-1 expansion.
      interval_threshold: a bracket shorter than this with a safe step ends the search.
      unrolled: a fixed-length loop (reverse-differentiable) instead of a while loop.

    Returns:
      A :class:`LineSearchResult`.
    """
    dtype = jnp.result_type(value0)
    zero = jnp.zeros((), dtype)
    point0 = (x0, value0, grad0)

    def errors(t, f, s):
        exact = f - value0 - c1 * t * slope0
        approx = jnp.maximum(s - (2 * c1 - 1.0) * slope0, f - value0 - c3 * jnp.abs(value0))
        dec = _nan_to_inf(jnp.maximum(jnp.minimum(exact, approx), 0.0))
        curv = _nan_to_inf(jnp.maximum(jnp.abs(s) - c2 * jnp.abs(slope0), 0.0))
        return dec, curv

    def trial(c: _Zoom) -> jax.Array:
        expand = jnp.where(c.i == 0, init_stepsize, increase_factor * c.prev[0])
        expand = jnp.minimum(expand, max_stepsize)
        (lo, flo, dlo), (hi, fhi, _), (rt, rf) = c.lo, c.hi, c.ref
        left, right = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
        width = right - left
        cub = _cubic_argmin(lo, flo, dlo, hi, fhi, rt, rf)
        quad = _quad_argmin(lo, flo, dlo, hi, fhi)
        cub_ok = (cub > left + 0.2 * width) & (cub < right - 0.2 * width)
        quad_ok = (quad > left + 0.1 * width) & (quad < right - 0.1 * width)
        inner = jnp.where(cub_ok, cub, jnp.where(quad_ok, quad, 0.5 * (lo + hi)))
        return jnp.where(c.bracketed, inner, expand).astype(dtype)

    def body(c: _Zoom) -> _Zoom:
        t = trial(c)
        return update(c, t, *phi(t))

    def update(c: _Zoom, t: jax.Array, x: Any, f: jax.Array, g: Any, s: jax.Array) -> _Zoom:
        dec, curv = errors(t, f, s)
        ok = (dec <= 0) & (curv <= 0)
        new = (t, f, s)
        # Phase 1: bracket.
        hi_is_new = (dec > 0) | ((f >= c.prev[1]) & (c.i > 0))
        lo_is_new = (s >= 0) & ~hi_is_new
        b_lo = _select(lo_is_new, new, c.prev)
        b_hi = _select(lo_is_new, c.prev, new)
        b_found = hi_is_new | lo_is_new | ok
        b_done = ok | ((t >= max_stepsize) & ~b_found)
        # Phase 2: zoom.
        (lo, flo, _), hi = c.lo, c.hi
        hi_to_mid = (dec > 0) | (f >= flo)
        hi_to_lo = (s * (hi[0] - lo) >= 0) & ~hi_to_mid
        z_hi = _select(hi_to_mid, new, _select(hi_to_lo, c.lo, hi))
        z_lo = _select(hi_to_mid, c.lo, new)
        z_ref = _select(hi_to_mid | hi_to_lo, hi[:2], c.lo[:2])
        short = jnp.abs(hi[0] - lo) <= interval_threshold

        bracketed = c.bracketed
        lo_new = _select(bracketed, z_lo, b_lo)
        hi_new = _select(bracketed, z_hi, b_hi)
        ref_new = _select(bracketed, z_ref, b_lo[:2])
        done = jnp.where(bracketed, ok, b_done)
        safe_new = (dec <= 0) & (t >= c.safe_t)
        safe_t = jnp.where(safe_new, t, c.safe_t)
        safe = _select(safe_new, (x, f, g), c.safe)
        failed = ((c.i + 1 >= maxls) | (bracketed & short & (safe_t > 0))) & ~done
        return _Zoom(
            i=c.i + 1, bracketed=jnp.where(bracketed, True, b_found), done=done, failed=failed,
            t=t, prev=new, lo=lo_new, hi=hi_new, ref=ref_new, last=(x, f, g), safe_t=safe_t,
            safe=safe, decrease=dec,
        )  # fmt: skip

    start = (zero, value0, slope0)
    init = _Zoom(
        i=jnp.zeros((), jnp.int32), bracketed=jnp.asarray(False), done=jnp.asarray(False),
        failed=jnp.asarray(False), t=zero, prev=start, lo=start, hi=start, ref=start[:2],
        last=point0, safe_t=zero, safe=point0, decrease=jnp.asarray(jnp.inf, dtype),
    )  # fmt: skip
    go = lambda c: ~(c.done | c.failed)

    def finish(c: _Zoom) -> LineSearchResult:
        # On failure: the largest safe step; with none, the last step unless it left the domain.
        use_safe = c.failed & ((c.safe_t > 0) | jnp.isinf(c.decrease))
        t = jnp.where(use_safe, c.safe_t, c.t)
        x, f, g = _select(use_safe, c.safe, c.last)
        return LineSearchResult(t, x, f, g, c.failed, c.i)

    if unrolled:
        return finish(_iterate(go, body, init, maxls, unrolled))
    # The first trial is evaluated outside the loop; when it satisfies the conditions (most
    # quasi-Newton steps) the loop and its bookkeeping are skipped: same answer, less work.
    t0 = trial(init)
    x1, f1, g1, s1 = phi(t0)
    dec1, curv1 = errors(t0, f1, s1)
    accepted = (dec1 <= 0) & (curv1 <= 0)

    def first(_: None) -> LineSearchResult:
        one = jnp.ones((), jnp.int32)
        return LineSearchResult(t0, x1, f1, g1, jnp.asarray(False), one)

    def search(_: None) -> LineSearchResult:
        return finish(jax.lax.while_loop(go, body, update(init, t0, x1, f1, g1, s1)))

    return jax.lax.cond(accepted, first, search, None)


class _HZ(NamedTuple):
    i: jax.Array
    phase: jax.Array  # 0: expand, 1: bracketed (secant), 2: U3 bisection of [a, b]
    done: jax.Array
    t: jax.Array
    a: tuple  # (t, f, slope): φ'(a) < 0, φ(a) ≤ φ(0) + ε|φ(0)|
    b: tuple  # (t, f, slope)
    width: jax.Array  # bracket width when the secant counter was reset
    secants: jax.Array  # secant steps since then
    bisect: jax.Array  # the next phase-1 step is a bisection
    best: tuple  # (t, params, value, grad) of the accepted point (or the lowest seen)


def hager_zhang(
    phi: Phi,
    x0: Any,
    value0: jax.Array,
    grad0: Any,
    slope0: jax.Array,
    init_stepsize: jax.Array,
    *,
    maxls: int,
    c1: Any = 0.1,
    c2: Any = 0.9,
    epsilon: Any = 1e-6,
    expansion: Any = 5.0,
    shrinkage: Any = 0.66,
    unrolled: bool = False,
) -> LineSearchResult:
    """Hager–Zhang line search with approximate Wolfe conditions (see the module docstring).

    Args:
      phi: ``t -> (x + t·d, f, ∇f, Re⟨∇f, d⟩)``.
      x0, value0, grad0, slope0: the start point, ``f``, ``∇f`` and ``φ'(0)`` there.
      init_stepsize: first trial step.
      maxls: most evaluations.
      c1, c2: Wolfe constants (the paper's δ and σ).
      epsilon: relative tolerance on ``φ`` of the approximate conditions.
      expansion: growth of the trial step while no bracket is found.
      shrinkage: the bracket must shrink by this factor over two secant steps, else bisect.
      unrolled: a fixed-length loop (reverse-differentiable) instead of a while loop.

    Returns:
      A :class:`LineSearchResult`; when no step is accepted, the lowest point seen.
    """
    dtype = jnp.result_type(value0)
    zero = jnp.zeros((), dtype)
    f_cap = value0 + epsilon * jnp.abs(value0)

    def accept(t, f, s):
        wolfe = (f - value0 <= c1 * t * slope0) & (s >= c2 * slope0)
        approx = ((2 * c1 - 1.0) * slope0 >= s) & (s >= c2 * slope0) & (f <= f_cap)
        return (wolfe | approx) & jnp.isfinite(f)

    def trial(c: _HZ) -> tuple[jax.Array, jax.Array]:
        (ta, _, da), (tb, _, db) = c.a, c.b
        mid = 0.5 * (ta + tb)
        secant = jnp.where(db == da, jnp.nan, (ta * db - tb * da) / _safe(db - da))
        lo, hi = jnp.minimum(ta, tb), jnp.maximum(ta, tb)
        secant_ok = jnp.isfinite(secant) & (secant > lo) & (secant < hi)
        use_secant = (c.phase == 1) & ~c.bisect & secant_ok
        expand = jnp.where(c.i == 0, init_stepsize, expansion * c.t)
        t = jnp.where(c.phase == 0, expand, jnp.where(use_secant, secant, mid))
        return t.astype(dtype), use_secant

    def body(c: _HZ) -> _HZ:
        t, was_secant = trial(c)
        x, f, g, s = phi(t)
        f = jnp.where(jnp.isnan(f), jnp.inf, f)
        ok = accept(t, f, s)
        new = (t, f, s)
        up_b = s >= 0  # U1: [a, t]
        up_a = (s < 0) & (f <= f_cap)  # U2: [t, b]
        u3 = (s < 0) & (f > f_cap)  # U3: bisect [a, t] until φ' ≥ 0
        a = _select(up_a, new, c.a)
        b = _select(up_b | u3, new, c.b)
        phase = jnp.where(
            c.phase == 0,
            jnp.where(up_b, 1, jnp.where(u3, 2, 0)),
            jnp.where(c.phase == 2, jnp.where(up_b, 1, 2), jnp.where(u3, 2, 1)),
        ).astype(jnp.int32)
        width_now = jnp.abs(b[0] - a[0])
        fresh = (phase == 1) & ((c.phase != 1) | ~was_secant)
        secants = jnp.where(fresh, 0, c.secants + was_secant.astype(jnp.int32))
        checked = secants >= 2
        bisect = checked & (width_now > shrinkage * c.width)
        reset = fresh | checked
        secants = jnp.where(checked, 0, secants)
        width = jnp.where(reset, width_now, c.width)
        lower = (f < c.best[2]) | ok
        best = _select(lower, (t, x, f, g), c.best)
        return _HZ(c.i + 1, phase, ok, t, a, b, width, secants, bisect, best)

    start = (zero, value0, slope0)
    init = _HZ(
        i=jnp.zeros((), jnp.int32), phase=jnp.zeros((), jnp.int32), done=jnp.asarray(False),
        t=zero, a=start, b=start, width=jnp.asarray(jnp.inf, dtype),
        secants=jnp.zeros((), jnp.int32), bisect=jnp.asarray(False),
        best=(zero, x0, value0, grad0),
    )  # fmt: skip
    c = _iterate(lambda c: ~c.done & (c.i < maxls), body, init, maxls, unrolled)
    t, x, f, g = c.best
    return LineSearchResult(t, x, f, g, ~c.done, c.i)
