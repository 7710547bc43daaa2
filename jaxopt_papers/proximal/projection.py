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
- ``projection_sparse_simplex`` is differentiated by autodiff through ``top_k`` and the sorting
  simplex (the same Jacobian as jaxopt's hand-written JVP); ``max_nz`` is checked.
- ``projection_box_section`` runs a fixed number of bisection steps followed by one exact step
  on the final active set (exact to round-off; jaxopt's ``Bisection`` stops at ``tol=1e-5``),
  then differentiates the root implicitly as jaxopt does.
- ``projection_polyhedron`` finds the active constraints with FISTA on the dual and returns
  the exact projection onto them (jaxopt: ``OSQP`` at its default ``tol=1e-3``); its
  derivative is that of this affine projection. Emptiness is checked only with concrete
  inputs.
- ``projection_transport`` / ``projection_birkhoff`` solve the same semi-dual as jaxopt with a
  semismooth Newton method to ``tol=1e-12`` (jaxopt: L-BFGS at ``tol=1e-3``) and differentiate
  its gauge-fixed optimality condition; ``kl_projection_transport`` / ``kl_projection_birkhoff``
  use the library's log-domain Sinkhorn (ε = 1). ``make_solver``/``use_semi_dual`` keep
  jaxopt's meaning when a solver is given.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.proximal import _checks as C

__all__ = [
    "kl_projection_birkhoff",
    "kl_projection_transport",
    "projection_affine_set",
    "projection_birkhoff",
    "projection_box",
    "projection_box_section",
    "projection_halfspace",
    "projection_hypercube",
    "projection_hyperplane",
    "projection_l1_ball",
    "projection_l1_sphere",
    "projection_l2_ball",
    "projection_l2_sphere",
    "projection_linf_ball",
    "projection_non_negative",
    "projection_polyhedron",
    "projection_simplex",
    "projection_sparse_simplex",
    "projection_transport",
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
    """Projection onto the non-negative orthant {p ≥ 0}: ``max(x, 0)``. ``hyperparams`` unused.

    Args:
      x: the point, any pytree of arrays.
      hyperparams: unused (the common signature of projections).

    Returns:
      ``max(x, 0)``, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_non_negative
      >>> projection_non_negative(jnp.array([1.5, -2.0, 0.0])).tolist()
      [1.5, 0.0, 0.0]
    """
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

    Args:
      x: the point, any pytree of arrays.
      hyperparams: ``(lower, upper)``; each a scalar (used for every leaf) or a pytree like
        ``x`` whose leaves broadcast to those of ``x``.

    Returns:
      ``clip(x, lower, upper)``, a pytree like ``x``.

    Raises:
      ValueError: concrete bounds with ``lower > upper`` somewhere, or bounds that do not match
        ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_box
      >>> projection_box(jnp.array([2.0, -3.0, 0.5]), (-1.0, jnp.array([1.0, 1.0, 0.2]))).tolist()
      [1.0, -1.0, 0.2]
    """
    owner = "projection_box"
    lower, upper = _pair(owner, hyperparams, "(lower, upper)")
    why = "must be >= `lower` everywhere (the box is empty otherwise)"
    return _box(owner, x, lower, upper, ("lower", "upper"), why)


def projection_hypercube(x: Any, hyperparams: Any = 1.0) -> Any:
    """Projection onto the hypercube {0 ≤ p ≤ u}: ``clip(x, 0, u)``, ``u = hyperparams``.

    A concrete negative ``u`` raises ``ValueError``; a traced one returns ``u`` there.

    Args:
      x: the point, any pytree of arrays.
      hyperparams: ``u ≥ 0`` (default 1.0), a scalar or a pytree like ``x``.

    Returns:
      ``clip(x, 0, u)``, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_hypercube
      >>> projection_hypercube(jnp.array([2.0, -3.0, 0.5])).tolist()
      [1.0, 0.0, 0.5]
    """
    unit = 1.0 if hyperparams is None else hyperparams
    why = "must be >= 0 (the hypercube is empty otherwise)"
    return _box("projection_hypercube", x, 0.0, unit, ("lower", "hyperparams"), why)


def projection_linf_ball(x: Any, max_value: Any = 1.0) -> Any:
    """Projection onto the l∞ ball {‖p‖∞ ≤ r}: ``clip(x, −r, r)``, ``r = max_value``.

    ``max_value`` is a scalar or a pytree like ``x`` (per-coordinate radii). A concrete negative
    radius raises ``ValueError``; a traced one returns ``r`` there.

    Args:
      x: the point, any pytree of arrays.
      max_value: the radius ``r ≥ 0`` (default 1.0), a scalar or a pytree like ``x``
        (per-coordinate radii).

    Returns:
      ``clip(x, −r, r)``, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_linf_ball
      >>> projection_linf_ball(jnp.array([2.0, -3.0, 0.5]), 1.5).tolist()
      [1.5, -1.5, 0.5]
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

    Args:
      x: a 1-D array (``jax.vmap`` for batches).
      value: the total ``v > 0`` (default 1.0), a scalar.

    Returns:
      The nearest point of the simplex, shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_simplex
      >>> projection_simplex(jnp.array([0.5, 1.5, -1.0])).tolist()  # τ = 0.5
      [0.0, 1.0, 0.0]
      >>> p = projection_simplex(jnp.array([0.2, 0.3, 0.1]), 1.6)  # τ = -1/3
      >>> [round(float(v), 4) for v in p], round(float(p.sum()), 6)
      ([0.5333, 0.6333, 0.4333], 1.6)
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

    Args:
      x: a 1-D array.
      value: the radius ``v`` (default 1.0), a scalar.

    Returns:
      A nearest point of the sphere, shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_l1_sphere
      >>> p = projection_l1_sphere(jnp.array([0.1, -0.2, 0.0]))  # σ (|x| + 7/30)
      >>> [round(float(v), 4) for v in p]
      [0.3333, -0.4333, 0.2333]
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

    Args:
      x: a 1-D array.
      max_value: the radius ``r ≥ 0`` (default 1.0), a scalar.

    Returns:
      The nearest point of the ball, shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_l1_ball
      >>> projection_l1_ball(jnp.array([2.0, -1.0, 0.25])).tolist()  # soft threshold at 1
      [1.0, -0.0, 0.0]
      >>> projection_l1_ball(jnp.array([0.5, -0.25])).tolist()  # inside: unchanged
      [0.5, -0.25]
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

    Args:
      x: the point, any pytree of arrays.
      value: the radius ``v`` (default 1.0), a scalar.

    Returns:
      A nearest point of the sphere, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_l2_sphere
      >>> projection_l2_sphere(jnp.array([3.0, 4.0]), 10.0).tolist()
      [6.0, 8.0]
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

    Args:
      x: the point, any pytree of arrays (the norm is taken over all leaves).
      max_value: the radius ``r ≥ 0`` (default 1.0), a scalar.

    Returns:
      The nearest point of the ball, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_l2_ball
      >>> projection_l2_ball({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, 1.0)["b"].tolist()
      [0.8]
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

    Args:
      x: the point, any pytree of arrays.
      hyperparams: ``(a, b)``: ``a`` a non-zero pytree like ``x``, ``b`` a scalar.

    Returns:
      The nearest point of the hyperplane, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_hyperplane
      >>> projection_hyperplane(jnp.array([2.0, 0.0]), (jnp.array([1.0, 1.0]), 1.0)).tolist()
      [1.5, -0.5]
    """
    a, b, aa, preds = _hyperplane_args("projection_hyperplane", x, hyperparams)
    step = jnp.where(aa > 0, (optax.tree.vdot(a, x) - b) / jnp.where(aa > 0, aa, 1.0), 0.0)
    out = jax.tree.map(lambda u, w: u - step * w, x, a)
    return C.handle_traced(out, preds, "", raise_at_runtime=False)


def projection_halfspace(x: Any, hyperparams: tuple[Any, Any]) -> Any:
    """Projection onto the halfspace {aᵀp ≤ b}: ``x − max(aᵀx − b, 0)/(aᵀa) · a``.

    ``hyperparams = (a, b)``: ``a`` a non-zero pytree like ``x``, ``b`` a scalar. A concrete
    ``a = 0`` raises ``ValueError``; a traced one returns ``x`` unchanged.

    Args:
      x: the point, any pytree of arrays.
      hyperparams: ``(a, b)``: ``a`` a non-zero pytree like ``x``, ``b`` a scalar.

    Returns:
      The nearest point of the halfspace, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_halfspace
      >>> a = jnp.array([1.0, 1.0])
      >>> projection_halfspace(jnp.array([2.0, 0.0]), (a, 1.0)).tolist()  # outside: moved
      [1.5, -0.5]
      >>> projection_halfspace(jnp.array([0.0, 0.0]), (a, 1.0)).tolist()  # inside: unchanged
      [0.0, 0.0]
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

    Args:
      x: the point, shape ``(n,)``.
      hyperparams: ``(A, b)``, shapes ``(m, n)`` with ``m ≤ n`` and ``(m,)``.

    Returns:
      The nearest point of the affine set, shape ``(n,)``.

    Raises:
      ValueError: shapes that do not match, ``m > n``, or concrete ``(A, b)`` with an empty set.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_affine_set
      >>> A, b = jnp.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), jnp.array([1.0, 2.0])
      >>> p = projection_affine_set(jnp.array([2.0, 0.0, 0.0]), (A, b))
      >>> [round(float(v), 6) for v in p]
      [1.5, -0.5, 2.0]
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


# ---------------------------------------------------------------------------------------------
# Sparse simplex, box section, polyhedron.


def projection_sparse_simplex(
    x: jax.Array, max_nz: int, use_approx_max_nz: bool = False, value: Any = 1.0
) -> jax.Array:
    r"""Projection onto the simplex with at most ``max_nz`` non-zeros.

    Solves ``argmin ‖p − x‖²`` subject to ``p ≥ 0``, ``Σp = v``, ``‖p‖₀ ≤ max_nz``: keep the
    ``max_nz`` largest entries of ``x`` and project them onto the simplex (Kyrillidis, Becker,
    Cevher, Koch, "Sparse projections onto the simplex", ICML 2013, arXiv 1206.1529).
    Differentiable in ``x`` (Jacobian ``diag(s) − s sᵀ/|s|`` on the support s) and ``value``.

    Args:
      x: a 1-D array of shape (n,).
      max_nz: the largest number of non-zeros, an int in ``[1, n]``.
      use_approx_max_nz: find the top entries with ``jax.lax.approx_max_k`` (faster on TPU).
      value: the sum ``v`` of the result (default 1.0).

    Returns:
      The projection, shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_sparse_simplex
      >>> projection_sparse_simplex(jnp.array([0.5, 0.4, 0.3]), 2).tolist()
      [0.55, 0.45, 0.0]
    """
    owner = "projection_sparse_simplex"
    x = _vector(owner, x)
    n = x.shape[0]
    is_int = isinstance(max_nz, (int, np.integer)) and not isinstance(max_nz, bool)
    if not is_int or not 1 <= max_nz <= n:
        raise ValueError(f"{owner}: `max_nz` must be an int in [1, {n}], got {max_nz!r}.")
    value = _scalar(owner, "value", 1.0 if value is None else value)
    if use_approx_max_nz:
        top, idx = jax.lax.approx_max_k(x, int(max_nz))
    else:
        top, idx = jax.lax.top_k(x, int(max_nz))
    return jnp.zeros_like(x).at[idx].set(_simplex(top, value))


def _box_section_args(owner: str, x: jax.Array, hyperparams: Any) -> tuple:
    if not isinstance(hyperparams, (tuple, list)) or len(hyperparams) != 4:
        raise ValueError(
            f"{owner}: `hyperparams` must be a tuple (alpha, beta, w, c), got {hyperparams!r}."
        )
    alpha, beta, w, c = (jnp.asarray(v, x.dtype) for v in hyperparams)
    for name, v in (("alpha", alpha), ("beta", beta), ("w", w)):
        if v.shape != x.shape:
            raise ValueError(
                f"{owner}: `{name}` must have the shape of `x`, {x.shape}, got {v.shape}."
            )
    _scalar(owner, "c", c)
    return alpha, beta, w, c


def _box_section_residual(tau: jax.Array, x: jax.Array, alpha, beta, w, c) -> jax.Array:
    """``wᵀ clip(x + τw, α, β) − c``, non-decreasing in τ (w > 0)."""
    return jnp.dot(w, jnp.clip(x + tau * w, alpha, beta)) - c


def _box_section_tau(x: jax.Array, alpha, beta, w, c) -> jax.Array:
    """The root τ by bisection, then one exact step on the final active set."""
    lo = jnp.min((alpha - x) / w)
    hi = jnp.max((beta - x) / w)

    def body(_: int, bracket: tuple) -> tuple:
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        below = _box_section_residual(mid, x, alpha, beta, w, c) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 2 * jnp.finfo(x.dtype).nmant + 16, body, (lo, hi))
    tau = 0.5 * (lo + hi)
    free = (x + tau * w > alpha) & (x + tau * w < beta)
    ww = jnp.sum(jnp.where(free, w * w, 0))
    fixed = jnp.dot(w, jnp.where(free, 0, jnp.clip(x + tau * w, alpha, beta)))
    exact = (c - fixed - jnp.dot(w, jnp.where(free, x, 0))) / jnp.where(ww > 0, ww, 1)
    return jnp.where(ww > 0, exact, tau)


def projection_box_section(
    x: jax.Array, hyperparams: tuple[Any, Any, Any, Any], check_feasible: bool = False
) -> jax.Array:
    r"""Projection onto a box section ``{α ≤ p ≤ β, wᵀp = c}`` (w > 0).

    The solution is ``p = clip(x + τw, α, β)`` where the scalar τ solves
    ``φ(τ) = wᵀ clip(x + τw, α, β) − c = 0`` (φ is non-decreasing). τ is found by bisection on
    ``[min((α − x)/w), max((β − x)/w)]`` followed by one exact step on the active set, and
    differentiated implicitly (:func:`~jaxopt_papers.implicit.custom_root` on φ), so ``p`` is
    differentiable with respect to ``x``, ``α``, ``β``, ``w`` and ``c``.

    Args:
      x: a 1-D array of shape (n,).
      hyperparams: ``(alpha, beta, w, c)``: ``alpha``, ``beta``, ``w`` shaped like ``x``
        (``w > 0``), ``c`` a scalar.
      check_feasible: raise ``ValueError`` if ``wᵀα > c`` or ``wᵀβ < c`` (the set is empty);
        needs concrete values (not under ``jit``).

    Returns:
      The projection, shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_box_section
      >>> hp = (jnp.zeros(3), jnp.ones(3), jnp.ones(3), 1.0)   # the simplex, as a box section
      >>> [round(v, 6) for v in projection_box_section(jnp.array([0.5, 0.4, -1.0]), hp).tolist()]
      [0.55, 0.45, 0.0]
    """
    from jaxopt_papers.implicit.implicit_diff import custom_root

    owner = "projection_box_section"
    x = _vector(owner, x)
    alpha, beta, w, c = _box_section_args(owner, x, hyperparams)
    if check_feasible:
        if _traced(alpha, beta, w, c):
            raise ValueError(
                f"{owner}: `check_feasible=True` needs concrete `hyperparams` (it cannot be "
                "used under jit); pass `check_feasible=False` there."
            )
        if float(jnp.dot(w, alpha)) > float(c):
            raise ValueError(f"{owner}: `alpha` must satisfy dot(w, alpha) <= c (empty set).")
        if float(jnp.dot(w, beta)) < float(c):
            raise ValueError(f"{owner}: `beta` must satisfy dot(w, beta) >= c (empty set).")

    solve = custom_root(_box_section_residual)(
        lambda init, x, alpha, beta, w, c: _box_section_tau(x, alpha, beta, w, c)
    )
    tau = solve(jnp.zeros((), x.dtype), x, alpha, beta, w, c)
    return jnp.clip(x + tau * w, alpha, beta)


def _polyhedron_args(owner: str, x: jax.Array, hyperparams: Any) -> tuple:
    if not isinstance(hyperparams, (tuple, list)) or len(hyperparams) != 4:
        raise ValueError(
            f"{owner}: `hyperparams` must be a tuple (A, b, G, h), got {hyperparams!r}."
        )
    A, b, G, h = (jnp.asarray(v, x.dtype) for v in hyperparams)
    (n,) = x.shape
    for mat, vec, names in ((A, b, ("A", "b")), (G, h, ("G", "h"))):
        if mat.ndim != 2 or mat.shape[1] != n:
            raise ValueError(
                f"{owner}: `{names[0]}` must have shape (k, {n}) to match `x`, got {mat.shape}."
            )
        if vec.shape != (mat.shape[0],):
            raise ValueError(
                f"{owner}: `{names[1]}` must have shape ({mat.shape[0]},) to match "
                f"`{names[0]}`, got {vec.shape}."
            )
    return A, b, G, h


def _polyhedron_dual(x: jax.Array, A: jax.Array, b: jax.Array, G: jax.Array, h: jax.Array):
    """FISTA on the dual of the projection onto {Ap = b, Gp ≤ h}, step 1/‖[A; G]‖₂²."""
    from jaxopt_papers.proximal.proximal_gradient import ProximalGradient

    def dual(nu: tuple, x: jax.Array) -> jax.Array:
        mu, lam = nu
        v = A.T @ mu + G.T @ lam
        return 0.5 * jnp.dot(v, v) - jnp.dot(mu, A @ x - b) - jnp.dot(lam, G @ x - h)

    M = jnp.concatenate([A, G])
    lipschitz = jnp.maximum(jnp.linalg.norm(M, 2) ** 2, jnp.finfo(x.dtype).tiny)
    prox = lambda nu, hp, s: (nu[0], jax.nn.relu(nu[1]))
    solver = ProximalGradient(
        dual, prox, stepsize=1.0 / lipschitz, tol=1e-11, max_steps=50_000, throw=False
    )
    init = (jnp.zeros(A.shape[0], x.dtype), jnp.zeros(G.shape[0], x.dtype))
    return solver.run(init, None, x)


def projection_polyhedron(
    x: jax.Array, hyperparams: tuple[Any, Any, Any, Any], check_feasible: bool = True
) -> jax.Array:
    r"""Projection onto the polyhedron ``{A p = b, G p ≤ h}``.

    The active inequalities are found from the dual of ``min ½‖p − x‖²`` s.t. ``Ap = b``,
    ``Gp ≤ h``, i.e. ``min_{μ, λ ≥ 0} ½‖Aᵀμ + Gᵀλ‖² − μᵀ(Ax − b) − λᵀ(Gx − h)``, solved by
    FISTA (:class:`ProximalGradient`, run on the inputs without gradient); the answer is then
    computed exactly as the projection onto the affine set of the equalities and the active
    inequalities
    (``p = x − M⁺(Mx − r)``, ``M = [A; G_active]``), which is also what makes it
    differentiable with respect to ``x``, ``A``, ``b``, ``G`` and ``h`` (the derivative of the
    projection wherever the active set is locally constant).

    Args:
      x: a 1-D array of shape (n,).
      hyperparams: ``(A, b, G, h)`` with ``A`` of shape (p, n), ``b`` (p,), ``G`` (q, n),
        ``h`` (q,).
      check_feasible: with concrete inputs, raise ``ValueError`` when the QP solver reports
        the polyhedron empty or the answer violates the constraints (by more than ``1e-6``
        relative); traced inputs are not checked (the output is then that of the last QP
        iterate's active set).

    Returns:
      The projection, shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_polyhedron
      >>> A, b = jnp.array([[1.0, 1.0]]), jnp.array([1.0])       # p₀ + p₁ = 1
      >>> G, h = jnp.array([[-1.0, 0.0]]), jnp.array([0.0])      # p₀ ≥ 0
      >>> p = projection_polyhedron(jnp.array([-1.0, 1.0]), (A, b, G, h))
      >>> [round(v, 6) + 0.0 for v in p.tolist()]
      [0.0, 1.0]
    """
    owner = "projection_polyhedron"
    x = _vector(owner, x)
    A, b, G, h = _polyhedron_args(owner, x, hyperparams)
    sol = _polyhedron_dual(*jax.lax.stop_gradient((x, A, b, G, h)))
    mu, lam = sol.params
    y = x - A.T @ mu - G.T @ lam
    scale = 1.0 + jnp.max(jnp.abs(jnp.concatenate([h, G @ y, lam])))
    active = jax.lax.stop_gradient((lam > 1e-7 * scale) | (G @ y - h > -1e-7 * scale))
    M = jnp.concatenate([A, jnp.where(active[:, None], G, 0)])
    r = jnp.concatenate([b, jnp.where(active, h, 0)])
    p = x - jnp.linalg.pinv(M) @ (M @ x - r)
    if check_feasible and not _traced(x, A, b, G, h):
        tol = 1e-6 * (1.0 + float(jnp.max(jnp.abs(jnp.concatenate([b, h, x])))))
        viol = max(
            float(jnp.max(jnp.abs(A @ p - b), initial=0.0)),
            float(jnp.max(G @ p - h, initial=0.0)),
        )
        if viol > tol or not bool(jnp.all(jnp.isfinite(p))):
            raise ValueError(
                f"{owner}: the polyhedron {{A p = b, G p <= h}} looks empty: the answer "
                f"violates the constraints by {viol:.3g} (the dual solve stopped with "
                f"{sol.result})."
            )
    return p


# ---------------------------------------------------------------------------------------------
# Transportation and Birkhoff polytopes (Euclidean and Kullback-Leibler).


def _transport_args(owner: str, sim_matrix: Any, marginals: Any) -> tuple:
    S = jnp.asarray(sim_matrix)
    if S.ndim != 2:
        raise ValueError(f"{owner}: `sim_matrix` must be 2-D (m, n), got shape {S.shape}.")
    S = S.astype(jnp.result_type(S, float))
    if not isinstance(marginals, (tuple, list)) or len(marginals) != 2:
        raise ValueError(f"{owner}: `marginals` must be a pair (a, b), got {marginals!r:.80}.")
    a, b = (jnp.asarray(v, S.dtype) for v in marginals)
    if a.shape != (S.shape[0],) or b.shape != (S.shape[1],):
        raise ValueError(
            f"{owner}: `marginals` must have shapes ({S.shape[0]},) and ({S.shape[1]},) to "
            f"match `sim_matrix` of shape {S.shape}, got {a.shape} and {b.shape}."
        )
    if not _traced(a, b):
        an, bn = np.asarray(a), np.asarray(b)
        if np.any(an <= 0) or np.any(bn <= 0):
            raise ValueError(f"{owner}: `marginals` must be positive, got a={an}, b={bn}.")
        if not np.isclose(an.sum(), bn.sum(), rtol=1e-8):
            raise ValueError(
                f"{owner}: the two `marginals` must have the same total, got {an.sum()} and "
                f"{bn.sum()}."
            )
    return S, a, b


def _semi_dual_plan(alpha: jax.Array, cost: jax.Array, b: jax.Array) -> jax.Array:
    """``P[:, j] = b_j · P_simplex((α − C[:, j]) / b_j)`` (l2 regularisation, γ = 1)."""
    cols = jax.vmap(_simplex, in_axes=(1, None))((alpha[:, None] - cost) / b, 1.0)
    return cols.T * b


def _semi_dual_gauge(alpha: jax.Array, cost: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """Gradient of the semi-dual plus ``mean(α)``: zero exactly at the zero-mean optimum."""
    return jnp.sum(_semi_dual_plan(alpha, cost, b), axis=1) - a + jnp.mean(alpha)


def _semi_dual_merit(alpha: jax.Array, cost: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """The semi-dual ``Σ_j b_j max_Ω(α − c_j) − αᵀa`` plus ``m·mean(α)²/2`` (gradient above)."""
    P = jax.lax.stop_gradient(_semi_dual_plan(alpha, cost, b))
    X = alpha[:, None] - cost
    value = jnp.sum(X * P) - 0.5 * jnp.sum(P * P) - jnp.dot(alpha, a)
    return value + 0.5 * alpha.shape[0] * jnp.mean(alpha) ** 2


def _semi_dual_newton(cost: jax.Array, a: jax.Array, b: jax.Array, tol: Any, max_steps: int):
    """Semismooth Newton (Levenberg–Marquardt damped, Armijo) on the gauge-fixed semi-dual."""
    m = cost.shape[0]
    jac = jax.jacfwd(_semi_dual_gauge)

    def cond(carry: tuple) -> jax.Array:
        _, k, err = carry
        return (k < max_steps) & (err > tol)

    def body(carry: tuple) -> tuple:
        alpha, k, _ = carry
        g = _semi_dual_gauge(alpha, cost, a, b)
        mu = jnp.clip(jnp.linalg.norm(g), 1e-10, 1.0)  # LM damping; H is singular off-support
        H = jac(alpha, cost, a, b) + mu * jnp.eye(m, dtype=alpha.dtype)
        d = -jnp.linalg.solve(H, g)
        f0, slope = _semi_dual_merit(alpha, cost, a, b), jnp.dot(g, d)

        def shrink(t: jax.Array) -> jax.Array:
            return t * 0.5

        def too_long(t: jax.Array) -> jax.Array:
            f1 = _semi_dual_merit(alpha + t * d, cost, a, b)
            return (f1 > f0 + 1e-4 * t * slope + 1e-14 * jnp.abs(f0)) & (t > 1e-10)

        t = jax.lax.while_loop(too_long, shrink, jnp.ones((), alpha.dtype))
        alpha = alpha + t * d
        err = jnp.max(jnp.abs(_semi_dual_gauge(alpha, cost, a, b)))
        return alpha, k + 1, err

    alpha = jnp.zeros(m, cost.dtype)
    err = jnp.max(jnp.abs(_semi_dual_gauge(alpha, cost, a, b)))
    return jax.lax.while_loop(cond, body, (alpha, jnp.asarray(0, jnp.int32), err))[0]


def projection_transport(
    sim_matrix: jax.Array,
    marginals: tuple[Any, Any],
    make_solver: Any = None,
    use_semi_dual: bool = True,
    *,
    tol: float = 1e-12,
    max_steps: int = 100,
) -> jax.Array:
    r"""Euclidean projection onto the transportation polytope.

    Solves ``argmin_{P ≥ 0} ‖P − S‖²`` subject to ``P1 = a`` and ``Pᵀ1 = b`` (equivalently
    ``⟨P, C⟩ + ½‖P‖²`` with ``C = −S``; Blondel, Seguy, Rolet, "Smooth and Sparse Optimal
    Transport", AISTATS 2018, arXiv 1710.06276). The semi-dual in the row potentials α,

    .. math::

       \min_α \; \sum_j b_j \max_{p ∈ Δ} \big(⟨α − c_j, p⟩ − \tfrac{b_j}{2}\|p\|^2\big) − ⟨α, a⟩,

    is solved by a semismooth Newton method (its generalised Hessian is
    ``Σ_j diag(s_j) − s_j s_jᵀ/|s_j|``, damped and with an Armijo search), with the gauge
    fixed by ``mean(α) = 0``; the plan is ``P[:, j] = b_j P_simplex((α − c_j)/b_j)``.
    Gradients with respect to ``sim_matrix`` and ``marginals`` come from implicit
    differentiation of the semi-dual's optimality condition.

    Args:
      sim_matrix: the similarity matrix ``S``, shape (m, n).
      marginals: ``(a, b)``, positive, shapes (m,) and (n,), equal totals.
      make_solver: jaxopt's hook: ``make_solver(fun)`` returns a solver whose
        ``run(init, cost_matrix=, marginals_a=, marginals_b=)`` minimises ``fun`` (e.g.
        ``lambda fun: jaxopt_papers.smooth.LBFGS(fun, tol=1e-10)``); ``None``: the Newton
        method above.
      use_semi_dual: with ``make_solver``, minimise the semi-dual (``True``) or the dual in
        ``(α, β)`` (``False``). Without it the semi-dual is always used (the answer does not
        depend on the formulation).
      tol: Newton's stopping tolerance on the gradient's max norm.
      max_steps: Newton's largest number of steps.

    Returns:
      The plan ``P``, shape (m, n): ``P1 = a``, ``Pᵀ1 = b``, ``P ≥ 0`` (typically sparse).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_transport
      >>> S = jnp.array([[2.0, 0.0], [0.0, 2.0]])
      >>> P = projection_transport(S, (jnp.ones(2), jnp.ones(2)))
      >>> [[round(v, 6) for v in row] for row in P.tolist()]
      [[1.0, 0.0], [0.0, 1.0]]
    """
    from jaxopt_papers.implicit.implicit_diff import custom_root

    owner = "projection_transport"
    S, a, b = _transport_args(owner, sim_matrix, marginals)
    cost = -S
    if make_solver is not None:
        return _transport_with_solver(make_solver, use_semi_dual, cost, a, b)
    solve = custom_root(_semi_dual_gauge, symmetric=True)(
        lambda init, cost, a, b: _semi_dual_newton(cost, a, b, tol, max_steps)
    )
    alpha = solve(jnp.zeros(S.shape[0], S.dtype), cost, a, b)
    return _semi_dual_plan(alpha, cost, b)


def _transport_with_solver(
    make_solver: Any, use_semi_dual: bool, cost: jax.Array, a: jax.Array, b: jax.Array
) -> jax.Array:
    """jaxopt's ``make_solver`` path: minimise the (semi-)dual with the user's solver."""
    if use_semi_dual:

        def fun(alpha, cost_matrix, marginals_a, marginals_b):  # type: ignore[no-untyped-def]
            X = alpha[:, None] - cost_matrix
            cols = jax.vmap(_simplex, in_axes=(1, None))(X / marginals_b, 1.0)
            P = jax.lax.stop_gradient(cols.T * marginals_b)  # Danskin: no gradient through P
            value = jnp.sum(X * P) - 0.5 * jnp.sum(P * P)
            return value - jnp.dot(alpha, marginals_a)

        init = jnp.zeros(cost.shape[0], cost.dtype)
    else:

        def fun(ab, cost_matrix, marginals_a, marginals_b):  # type: ignore[no-untyped-def]
            alpha, beta = ab
            slack = jax.nn.relu(alpha[:, None] + beta[None, :] - cost_matrix)
            linear = jnp.dot(alpha, marginals_a) + jnp.dot(beta, marginals_b)
            return 0.5 * jnp.sum(slack**2) - linear

        init = (jnp.zeros(cost.shape[0], cost.dtype), jnp.zeros(cost.shape[1], cost.dtype))
    params = make_solver(fun).run(init, cost_matrix=cost, marginals_a=a, marginals_b=b).params
    if use_semi_dual:
        return _semi_dual_plan(params, cost, b)
    alpha, beta = params
    return jax.nn.relu(alpha[:, None] + beta[None, :] - cost)


def kl_projection_transport(
    sim_matrix: jax.Array,
    marginals: tuple[Any, Any],
    make_solver: Any = None,
    use_semi_dual: bool = True,
    *,
    tol: float = 1e-10,
    max_steps: int = 10_000,
) -> jax.Array:
    r"""Kullback–Leibler projection onto the transportation polytope.

    Solves ``argmin_{P > 0} KL(P, exp(S))`` subject to ``P1 = a``, ``Pᵀ1 = b``, i.e. entropic
    optimal transport with cost ``C = −S`` and ``ε = 1``: ``P = diag(u) exp(S) diag(v)``.
    Computed by :func:`jaxopt_papers.ot.sinkhorn` (log domain, implicitly differentiable with
    respect to ``sim_matrix`` and ``marginals``).

    Args:
      sim_matrix: the similarity matrix ``S``, shape (m, n).
      marginals: ``(a, b)``, positive, shapes (m,) and (n,), equal totals.
      make_solver: jaxopt's hook (``make_solver(fun).run(init, cost_matrix=, marginals_a=,
        marginals_b=)`` minimising the entropic semi-dual or dual); ``None``: Sinkhorn.
      use_semi_dual: with ``make_solver``: semi-dual (``True``) or dual (``False``).
      tol: Sinkhorn's L1 marginal error target.
      max_steps: Sinkhorn's largest number of sweeps.

    Returns:
      The plan ``P``, shape (m, n), positive.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import kl_projection_transport
      >>> P = kl_projection_transport(jnp.zeros((2, 3)), (jnp.ones(2) / 2, jnp.ones(3) / 3))
      >>> round(float(P[0, 0]), 6)     # the independent coupling a bᵀ
      0.166667
    """
    from jaxopt_papers.ot import sinkhorn

    owner = "kl_projection_transport"
    S, a, b = _transport_args(owner, sim_matrix, marginals)
    if make_solver is None:
        return sinkhorn(-S, a, b, 1.0, tol=tol, max_steps=max_steps).plan
    cost = -S
    if use_semi_dual:

        def fun(alpha, cost_matrix, marginals_a, marginals_b):  # type: ignore[no-untyped-def]
            lse = jax.nn.logsumexp(alpha[:, None] - cost_matrix, axis=0) - jnp.log(marginals_b)
            return jnp.dot(marginals_b, lse) - jnp.dot(alpha, marginals_a)

        init = jnp.zeros(cost.shape[0], cost.dtype)
    else:

        def fun(ab, cost_matrix, marginals_a, marginals_b):  # type: ignore[no-untyped-def]
            alpha, beta = ab
            mass = jnp.sum(jnp.exp(alpha[:, None] + beta[None, :] - cost_matrix - 1))
            return mass - jnp.dot(alpha, marginals_a) - jnp.dot(beta, marginals_b)

        init = (jnp.zeros(cost.shape[0], cost.dtype), jnp.zeros(cost.shape[1], cost.dtype))
    params = make_solver(fun).run(init, cost_matrix=cost, marginals_a=a, marginals_b=b).params
    if use_semi_dual:
        return jax.nn.softmax(params[:, None] - cost, axis=0) * b
    alpha, beta = params
    return jnp.exp(alpha[:, None] + beta[None, :] - cost - 1)


def projection_birkhoff(
    sim_matrix: jax.Array, make_solver: Any = None, use_semi_dual: bool = True, **kwargs: Any
) -> jax.Array:
    r"""Euclidean projection onto the Birkhoff polytope (doubly stochastic matrices).

    :func:`projection_transport` with ``a = b = 1`` (all ones); ``sim_matrix`` is square.
    ``kwargs`` (``tol``, ``max_steps``) are passed on.

    Args:
      sim_matrix: the similarity matrix ``S``, shape (n, n).
      make_solver: as :func:`projection_transport` (``None``: its semismooth Newton method).
      use_semi_dual: as :func:`projection_transport`.
      **kwargs: ``tol`` and ``max_steps`` of :func:`projection_transport`.

    Returns:
      The doubly stochastic ``P`` nearest to ``S``, shape (n, n).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import projection_birkhoff
      >>> P = projection_birkhoff(jnp.array([[0.5, 0.2], [0.1, 0.4]]))
      >>> [round(v, 6) for v in P.sum(0).tolist()], [round(v, 6) for v in P.sum(1).tolist()]
      ([1.0, 1.0], [1.0, 1.0])
    """
    S = _birkhoff_args("projection_birkhoff", sim_matrix)
    ones = jnp.ones(S.shape[0], S.dtype)
    return projection_transport(S, (ones, ones), make_solver, use_semi_dual, **kwargs)


def kl_projection_birkhoff(
    sim_matrix: jax.Array, make_solver: Any = None, use_semi_dual: bool = True, **kwargs: Any
) -> jax.Array:
    r"""Kullback–Leibler projection onto the Birkhoff polytope (Sinkhorn scaling of exp(S)).

    :func:`kl_projection_transport` with ``a = b = 1``; ``sim_matrix`` is square.

    Args:
      sim_matrix: the similarity matrix ``S``, shape (n, n).
      make_solver: as :func:`kl_projection_transport`.
      use_semi_dual: as :func:`kl_projection_transport`.
      **kwargs: passed on to :func:`kl_projection_transport`.

    Returns:
      The doubly stochastic ``P`` nearest to ``exp(S)`` in KL divergence, shape (n, n).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import kl_projection_birkhoff
      >>> P = kl_projection_birkhoff(jnp.array([[1.0, 0.0], [0.0, 1.0]]))
      >>> round(float(P[0, 0]), 6)     # e / (1 + e)
      0.731059
    """
    S = _birkhoff_args("kl_projection_birkhoff", sim_matrix)
    ones = jnp.ones(S.shape[0], S.dtype)
    return kl_projection_transport(S, (ones, ones), make_solver, use_semi_dual, **kwargs)


def _birkhoff_args(owner: str, sim_matrix: Any) -> jax.Array:
    S = jnp.asarray(sim_matrix)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"{owner}: `sim_matrix` must be a square matrix, got shape {S.shape}.")
    return S.astype(jnp.result_type(S, float))
