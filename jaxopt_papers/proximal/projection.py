r"""Euclidean projections with jaxopt's signatures, ``projection_X(x, hyperparams=None)``.

Source: M. Blondel, Q. Berthet, M. Cuturi, R. Frostig, S. Hoyer, F. Llinares-López, F. Pedregosa,
J.-P. Vert, "Efficient and Modular Implicit Differentiation", NeurIPS 2022 (arXiv 2105.15183), whose
reference code is ``jaxopt/_src/projection.py`` of jaxopt 0.8.5; formulas from N. Parikh and
S. Boyd, "Proximal Algorithms", 2014 (§6.2); the simplex by sorting from J. Duchi,
S. Shalev-Shwartz, Y. Singer, T. Chandra, "Efficient Projections onto the l1-Ball for Learning
in High Dimensions", ICML 2008, and L. Condat, "Fast projection onto the simplex and the l1
ball", Math. Program. 158, 2016.

Every function returns ``P_C(x) = argmin_{p ∈ C} ‖p − x‖²`` for a closed convex set C (the l1 and
l2 spheres are not convex; there the function returns one nearest point):

===========================  =================  ======================================
function                     set C              P_C(x)
===========================  =================  ======================================
``projection_non_negative``  p ≥ 0              max(x, 0)
``projection_box``           lower ≤ p ≤ upper  clip(x, lower, upper)
``projection_hypercube``     0 ≤ p ≤ u          clip(x, 0, u)
``projection_linf_ball``     ‖p‖∞ ≤ r           clip(x, −r, r)
``projection_simplex``       p ≥ 0, Σp = v      max(x − τ, 0) with Σ max(x − τ, 0) = v
``projection_l1_sphere``     ‖p‖₁ = v           sign(x) ⊙ P_simplex(|x|, v)
``projection_l1_ball``       ‖p‖₁ ≤ r           x if ‖x‖₁ ≤ r else P_l1_sphere(x, r)
``projection_l2_sphere``     ‖p‖₂ = v           v · x / ‖x‖₂
``projection_l2_ball``       ‖p‖₂ ≤ r           x · min(1, r / ‖x‖₂)
``projection_hyperplane``    aᵀp = b            x − (aᵀx − b)/(aᵀa) · a
``projection_halfspace``     aᵀp ≤ b            x − max(aᵀx − b, 0)/(aᵀa) · a
``projection_affine_set``    A p = b            x − Aᵀ (A Aᵀ)⁻¹ (A x − b)
===========================  =================  ======================================

The simplex threshold τ is found by sorting (O(n log n)): with u = sort(x) decreasing and
c_k = u_1 + … + u_k, ρ = #{k : u_k − (c_k − v)/k > 0} and τ = (c_ρ − v)/ρ. All functions are
differentiated by plain autodiff; through the sort and cumulative sum this gives the simplex
Jacobian ``diag(s) − s sᵀ/|s|`` (s the 0/1 support indicator) and ``∂p/∂v = s/|s|``.

``projection_non_negative``, ``projection_box``/``hypercube``/``linf_ball``, the l2 sphere/ball,
hyperplane and halfspace take any pytree ``x`` (norms and inner products over all leaves); the
simplex, l1 sphere/ball and affine set take a 1-D array (``jax.vmap`` for batches).

Differences from the reference code
-----------------------------------
- ``projection_l1_ball`` selects with ``jnp.where`` instead of ``lax.cond`` (both branches are
  computed, which batches cheaply under ``vmap``); both branches have finite derivatives
  everywhere, so the gradient at ``x = 0`` is finite (the identity).
- ``projection_l2_ball`` uses ``jnp.where`` and a safe norm: finite gradient at ``x = 0``.
- ``projection_l2_sphere`` at ``x = 0`` (where every point of the sphere is nearest) returns the
  point with all coordinates ``v/√n`` instead of NaN; its derivative there is 0.
- ``projection_l1_sphere`` gives zero coordinates of ``x`` the sign +1; jaxopt multiplies by
  ``jnp.sign(x) = 0`` there, so for ``x`` with zero entries strictly inside the ball its output
  is not on the sphere (e.g. ``[0, 0.1, 0] ↦ [0, 0.4, 0]`` for v = 1).
- ``projection_simplex`` uses the sorting threshold with ``v`` directly, differentiated by
  autodiff, instead of ``v · P(x/v)`` with a hand-written JVP: same values and derivatives for
  v > 0, and ``v = 0`` gives 0 instead of NaN.
- ``projection_affine_set`` uses the closed form above (one m×m solve) instead of jaxopt's
  ``EqualityConstrainedQP``; it is differentiable with respect to ``x``, ``A`` and ``b``.
- ``projection_box`` (hence ``hypercube``, ``linf_ball``) broadcasts scalar bounds to every leaf
  of a pytree ``x``; jaxopt's ``tree_map`` fails on that combination.
- ``projection_hypercube``'s second argument is named ``hyperparams`` (jaxopt: ``unit``), so that
  it can be passed by keyword like the other hyperparameters.
- ``None`` hyperparameters select the documented default everywhere one exists (jaxopt does so
  only for the simplex).
- Static shape problems raise ``ValueError`` naming the function, the argument, what was expected
  and what was given: a wrong ``ndim`` or shape of ``x``, ``A``, ``b``, ``a``, a radius or bound;
  pytree structures different from ``x``; hyperparameters that are not a pair.
- Values that leave the set empty or undefined raise ``ValueError`` naming the argument when
  they are concrete: ``lower > upper`` (``projection_box``, a negative ``hyperparams`` of
  ``projection_hypercube``, a negative ``max_value`` of ``projection_linf_ball``), a negative
  radius of ``projection_l2_ball`` or ``projection_l1_ball``, ``a = 0`` for the hyperplane and
  halfspace, and for ``projection_affine_set`` a ``b`` outside the range of ``A``. Traced values
  are not checked (inside :class:`~jaxopt_papers.proximal.ProjectedGradient` they give the
  result code ``RESULTS.invalid_input``) and the output is NaN-free and documented by each
  function; jaxopt returns NaN (``a = 0``, rank-deficient ``A``) or a wrong point silently.
- ``projection_affine_set`` uses the pseudo-inverse of ``A``, so a rank-deficient ``A`` whose
  set is not empty (``b`` in the range of ``A``) gets the exact projection; jaxopt's solve
  returns NaN.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.proximal import _checks as C

__all__ = [
    "projection_affine_set",
    "projection_box",
    "projection_halfspace",
    "projection_hypercube",
    "projection_hyperplane",
    "projection_l1_ball",
    "projection_l1_sphere",
    "projection_l2_ball",
    "projection_l2_sphere",
    "projection_linf_ball",
    "projection_non_negative",
    "projection_simplex",
]


# ---------------------------------------------------------------------------------------------
# Static checks and pytree helpers.


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(jnp.shape(value))


def _pair(owner: str, hyperparams: Any, names: str) -> tuple[Any, Any]:
    if not isinstance(hyperparams, (tuple, list)) or len(hyperparams) != 2:
        raise ValueError(f"{owner}: `hyperparams` must be a pair {names}, got {hyperparams!r}.")
    return hyperparams[0], hyperparams[1]


def _scalar(owner: str, name: str, value: Any) -> Any:
    if jnp.ndim(value) != 0:
        raise ValueError(f"{owner}: `{name}` must be a scalar, got shape {_shape(value)}.")
    return value


def _vector(owner: str, x: Any) -> jax.Array:
    if jnp.ndim(x) != 1:
        raise ValueError(
            f"{owner}: `x` must be a 1-D array of shape (n,) (use jax.vmap for batches), "
            f"got shape {_shape(x)}."
        )
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(x, float))


def _same_structure(owner: str, name: str, value: Any, x: Any) -> None:
    x_def, v_def = jax.tree.structure(x), jax.tree.structure(value)
    if v_def != x_def:
        raise ValueError(
            f"{owner}: `{name}` must be a pytree with the structure of `x` ({x_def}), got {v_def}."
        )
    for (path, xl), vl in zip(
        jax.tree_util.tree_flatten_with_path(x)[0], jax.tree.leaves(value), strict=True
    ):
        if _shape(vl) != _shape(xl):
            where = f" at {jax.tree_util.keystr(path)}" if path else ""
            raise ValueError(
                f"{owner}: `{name}`{where} must have the shape of `x`{where}, {_shape(xl)}, "
                f"got {_shape(vl)}."
            )


# ---------------------------------------------------------------------------------------------
# Orthant, box and l∞ ball.


def projection_non_negative(x: Any, hyperparams: Any = None) -> Any:
    """Projection onto the non-negative orthant {p ≥ 0}: ``max(x, 0)``. ``hyperparams`` unused."""
    del hyperparams
    return jax.tree.map(jax.nn.relu, x)


def _box(owner: str, x: Any, lower: Any, upper: Any, names: tuple[str, str], why: str) -> Any:
    lo = C.like_x(owner, names[0], lower, x)
    hi = C.like_x(owner, names[1], upper, x)
    preds = []
    for a, b in zip(jax.tree.leaves(lo), jax.tree.leaves(hi), strict=True):
        ok = jnp.asarray(a) <= jnp.asarray(b) if _traced(a, b) else np.asarray(a) <= np.asarray(b)
        preds.append(C.check_value(owner, names[1], ok, why, lambda a=a, b=b: _bounds(a, b)))
    out = jax.tree.map(lambda u, a, b: jnp.clip(u, a, b), x, lo, hi)
    return C.handle_traced(out, preds, "", raise_at_runtime=False)


def _traced(*values: Any) -> bool:
    return any(isinstance(v, jax.core.Tracer) for v in values)


def _bounds(lower: Any, upper: Any) -> str:
    lo, hi = np.broadcast_arrays(np.asarray(lower), np.asarray(upper))
    i = int(np.argmax(~(lo <= hi)))
    lo, hi = lo.flat[i].item(), hi.flat[i].item()
    return f"lower {lo!r} > upper {hi!r}"


def projection_box(x: Any, hyperparams: tuple[Any, Any]) -> Any:
    """Projection onto {lower ≤ p ≤ upper}: ``clip(x, lower, upper)``.

    ``hyperparams = (lower, upper)``; each a scalar (used for every leaf) or a pytree like ``x``
    whose leaves broadcast to those of ``x``. Concrete bounds with ``lower > upper`` somewhere
    (an empty box) raise ``ValueError``; traced ones return ``upper`` at those coordinates
    (``jnp.clip``'s rule).
    """
    owner = "projection_box"
    lower, upper = _pair(owner, hyperparams, "(lower, upper)")
    why = "must be >= `lower` everywhere (the box is empty otherwise)"
    return _box(owner, x, lower, upper, ("lower", "upper"), why)


def projection_hypercube(x: Any, hyperparams: Any = 1.0) -> Any:
    """Projection onto the hypercube {0 ≤ p ≤ u}: ``clip(x, 0, u)``, ``u = hyperparams``.

    A concrete negative ``u`` raises ``ValueError``; a traced one returns ``u`` there.
    """
    unit = 1.0 if hyperparams is None else hyperparams
    why = "must be >= 0 (the hypercube is empty otherwise)"
    return _box("projection_hypercube", x, 0.0, unit, ("lower", "hyperparams"), why)


def projection_linf_ball(x: Any, max_value: Any = 1.0) -> Any:
    """Projection onto the l∞ ball {‖p‖∞ ≤ r}: ``clip(x, −r, r)``, ``r = max_value``.

    ``max_value`` is a scalar or a pytree like ``x`` (per-coordinate radii). A concrete negative
    radius raises ``ValueError``; a traced one returns ``r`` there.
    """
    r = 1.0 if max_value is None else max_value
    neg = jax.tree.map(jnp.negative, r)
    why = "must be >= 0 (the ball is empty otherwise)"
    return _box("projection_linf_ball", x, neg, r, ("max_value", "max_value"), why)


# ---------------------------------------------------------------------------------------------
# Simplex and l1 sphere / ball (1-D arrays).


def _simplex(x: jax.Array, value: Any) -> jax.Array:
    """max(x − τ, 0) with Σ max(x − τ, 0) = value, τ found by sorting (Duchi et al. 2008)."""
    u = jnp.sort(x)[::-1]
    cssv = jnp.cumsum(u) - value
    k = jnp.arange(1, x.shape[0] + 1, dtype=u.dtype)
    rho = jnp.count_nonzero(u - cssv / k > 0)
    rho = jnp.maximum(rho, 1)  # value ≤ 0 (or NaN input): keep the index valid
    tau = cssv[rho - 1] / rho.astype(u.dtype)
    return jax.nn.relu(x - tau)


def projection_simplex(x: jax.Array, value: Any = 1.0) -> jax.Array:
    """Projection onto the simplex {p ≥ 0, Σp = v}: ``max(x − τ, 0)`` with τ such that Σp = v.

    ``x`` is a 1-D array (``jax.vmap`` for batches), ``value`` (v, default 1.0) a scalar. τ comes
    from sorting ``x`` (O(n log n), Duchi et al. 2008 / Condat 2016). Differentiable in ``x``
    (Jacobian ``diag(s) − s sᵀ/|s|`` on the support s) and in ``value`` (``s/|s|``).
    """
    owner = "projection_simplex"
    x = _vector(owner, x)
    value = _scalar(owner, "value", 1.0 if value is None else value)
    return _simplex(x, value)


def _sign_plus(x: jax.Array) -> jax.Array:
    """sign(x) with sign(0) = +1."""
    return jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype)


def projection_l1_sphere(x: jax.Array, value: Any = 1.0) -> jax.Array:
    """A nearest point of the l1 sphere {‖p‖₁ = v}: ``σ ⊙ P_simplex(|x|, v)``, σ = sign(x).

    Zero coordinates get σ = +1, so the result is on the sphere also when ``x`` has zeros.
    ``x`` is a 1-D array, ``value`` a scalar.
    """
    owner = "projection_l1_sphere"
    x = _vector(owner, x)
    value = _scalar(owner, "value", 1.0 if value is None else value)
    return _sign_plus(x) * _simplex(jnp.abs(x), value)


def projection_l1_ball(x: jax.Array, max_value: Any = 1.0) -> jax.Array:
    """Projection onto the l1 ball {‖p‖₁ ≤ r}: ``x`` if ‖x‖₁ ≤ r, else ``P_l1_sphere(x, r)``.

    ``x`` is a 1-D array, ``max_value`` (r) a scalar. Selected with ``jnp.where`` (both branches
    are computed; cheap under ``vmap``, finite gradient at ``x = 0``). A concrete negative ``r``
    raises ``ValueError``; a traced one is taken as 0 (the output is 0).
    """
    owner = "projection_l1_ball"
    x = _vector(owner, x)
    r = _scalar(owner, "max_value", 1.0 if max_value is None else max_value)
    preds = C.non_negative(owner, "max_value", r, " (the ball is empty otherwise)")
    r = jnp.maximum(r, 0)
    on_sphere = _sign_plus(x) * _simplex(jnp.abs(x), r)
    out = jnp.where(jnp.sum(jnp.abs(x)) <= r, x, on_sphere)
    return C.handle_traced(out, preds, "", raise_at_runtime=False)


# ---------------------------------------------------------------------------------------------
# l2 sphere / ball (pytrees).


def projection_l2_sphere(x: Any, value: Any = 1.0) -> Any:
    """A nearest point of the l2 sphere {‖p‖₂ = v}: ``v · x / ‖x‖₂`` (norm over all leaves).

    At ``x = 0`` every point of the sphere is nearest; the point with all coordinates ``v/√n``
    is returned (derivative 0 there).
    """
    owner = "projection_l2_sphere"
    v = _scalar(owner, "value", 1.0 if value is None else value)
    sq = optax.tree.norm(x, squared=True)
    nonzero = sq > 0
    factor = jnp.where(nonzero, v / jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)
    fill = jnp.where(nonzero, 0.0, v / jnp.sqrt(max(optax.tree.size(x), 1)))
    return jax.tree.map(lambda u: factor * u + fill, x)


def projection_l2_ball(x: Any, max_value: Any = 1.0) -> Any:
    """Projection onto the l2 ball {‖p‖₂ ≤ r}: ``x · min(1, r / ‖x‖₂)`` (norm over all leaves).

    ``max_value`` (r) is a scalar. Uses ``jnp.where`` and a safe norm: finite gradient at 0. A
    concrete negative ``r`` raises ``ValueError``; a traced one is taken as 0 (the output is 0).
    """
    owner = "projection_l2_ball"
    r = _scalar(owner, "max_value", 1.0 if max_value is None else max_value)
    preds = C.non_negative(owner, "max_value", r, " (the ball is empty otherwise)")
    r = jnp.maximum(r, 0)
    out = _l2_ball(x, r)
    return C.handle_traced(out, preds, "", raise_at_runtime=False)


def _l2_ball(x: Any, r: Any) -> Any:
    sq = optax.tree.norm(x, squared=True)
    outside = sq > r * r
    factor = jnp.where(outside, r / jnp.sqrt(jnp.where(outside, sq, 1.0)), 1.0)
    return jax.tree.map(lambda u: factor * u, x)


# ---------------------------------------------------------------------------------------------
# Hyperplane, halfspace, affine set.


def _hyperplane_args(owner: str, x: Any, hyperparams: Any) -> tuple[Any, Any, Any, list]:
    a, b = _pair(owner, hyperparams, "(a, b)")
    _same_structure(owner, "a", a, x)
    _scalar(owner, "b", b)
    aa = optax.tree.norm(a, squared=True)
    preds = []
    if not _traced(*jax.tree.leaves(a)):
        nonzero = any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(a))
        why = "must be non-zero (aᵀp = b is then no hyperplane)"
        C.check_value(owner, "a", nonzero, why, lambda: "a = 0")
    else:
        preds.append(aa > 0)
    return a, b, aa, preds


def projection_hyperplane(x: Any, hyperparams: tuple[Any, Any]) -> Any:
    """Projection onto the hyperplane {aᵀp = b}: ``x − (aᵀx − b)/(aᵀa) · a``.

    ``hyperparams = (a, b)``: ``a`` a non-zero pytree like ``x``, ``b`` a scalar. A concrete
    ``a = 0`` raises ``ValueError``; a traced one returns ``x`` unchanged.
    """
    a, b, aa, preds = _hyperplane_args("projection_hyperplane", x, hyperparams)
    step = jnp.where(aa > 0, (optax.tree.vdot(a, x) - b) / jnp.where(aa > 0, aa, 1.0), 0.0)
    out = jax.tree.map(lambda u, w: u - step * w, x, a)
    return C.handle_traced(out, preds, "", raise_at_runtime=False)


def projection_halfspace(x: Any, hyperparams: tuple[Any, Any]) -> Any:
    """Projection onto the halfspace {aᵀp ≤ b}: ``x − max(aᵀx − b, 0)/(aᵀa) · a``.

    ``hyperparams = (a, b)``: ``a`` a non-zero pytree like ``x``, ``b`` a scalar. A concrete
    ``a = 0`` raises ``ValueError``; a traced one returns ``x`` unchanged.
    """
    a, b, aa, preds = _hyperplane_args("projection_halfspace", x, hyperparams)
    viol = jax.nn.relu(optax.tree.vdot(a, x) - b)
    step = jnp.where(aa > 0, viol / jnp.where(aa > 0, aa, 1.0), 0.0)
    out = jax.tree.map(lambda u, w: u - step * w, x, a)
    return C.handle_traced(out, preds, "", raise_at_runtime=False)


def projection_affine_set(x: jax.Array, hyperparams: tuple[Any, Any]) -> jax.Array:
    """Projection onto the affine set {A p = b}: ``x − Aᵀ (A Aᵀ)⁻¹ (A x − b)``.

    ``hyperparams = (A, b)`` with ``A`` of shape (m, n), m ≤ n, and ``b`` of shape (m,); ``x`` of
    shape (n,). Computed as ``x − A⁺(A x − b)`` with the pseudo-inverse ``A⁺``, so a
    rank-deficient ``A`` is fine as long as the set is not empty (``b`` in the range of ``A``);
    differentiable with respect to ``x``, ``A`` and ``b``. Concrete ``A`` and ``b`` with an
    empty set raise ``ValueError``; traced ones return the point nearest to ``x`` among the
    least-squares solutions of ``A p = b``.
    """
    owner = "projection_affine_set"
    A, b = _pair(owner, hyperparams, "(A, b)")
    x = _vector(owner, x)
    (n,) = x.shape
    if jnp.ndim(A) != 2 or _shape(A)[1] != n:
        raise ValueError(
            f"{owner}: `A` must have shape (m, {n}) to match `x` of shape ({n},), got {_shape(A)}."
        )
    m = _shape(A)[0]
    if m > n:
        raise ValueError(
            f"{owner}: `A` must have at most as many rows as columns (full row rank), "
            f"got shape {_shape(A)}."
        )
    if _shape(b) != (m,):
        raise ValueError(
            f"{owner}: `b` must have shape ({m},) to match `A` of shape {_shape(A)}, "
            f"got {_shape(b)}."
        )
    A = jnp.asarray(A)
    preds = []
    if _traced(A, b):
        A_pinv = jnp.linalg.pinv(A)
        b_ = jnp.asarray(b)
        preds.append(_consistent(A, A_pinv, b_, jnp))
    else:
        A_pinv = jnp.linalg.pinv(A)
        A_np, b_np = np.asarray(A, dtype=float), np.asarray(b, dtype=float)
        ok = _consistent(A_np, np.linalg.pinv(A_np), b_np, np)
        why = "must lie in the range of `A` (A is rank-deficient and {A p = b} is empty)"
        C.check_value(owner, "b", ok, why, lambda: f"residual ‖A A⁺ b − b‖ > 0 for b = {b_np}")
    out = x - A_pinv @ (A @ x - b)
    return C.handle_traced(out, preds, "", raise_at_runtime=False)


def _consistent(A: Any, A_pinv: Any, b: Any, xp: Any) -> Any:
    """Whether ``A p = b`` has a solution, up to a tolerance of √eps relative to the data."""
    eps = xp.finfo(xp.result_type(A.dtype, b.dtype)).eps
    res = xp.linalg.norm(A @ (A_pinv @ b) - b)
    scale = xp.linalg.norm(b) + xp.linalg.norm(A) * xp.linalg.norm(A_pinv @ b)
    return res <= xp.sqrt(eps) * scale
