"""A catalogue of optimality conditions ``F(x, θ) = 0`` for :func:`custom_root`.

Blondel et al., "Efficient and Modular Implicit Differentiation", NeurIPS 2022, arXiv
2105.15183, §2–3 (reference code: jaxopt 0.8.5's solvers' ``optimality_fun`` and
``make_kkt_optimality_fun``). Each factory returns ``F(x, *θ)`` to pass to ``custom_root``,
with ``F.symmetric`` set when ``∂F/∂x`` is symmetric positive definite at a (strict) minimum, so
that the backward solve may use CG.

=================================  ========================================================
condition                          ``F``
=================================  ========================================================
:func:`gradient_optimality`        ``∇₁f(x, *args)`` (smooth unconstrained minimum)
:func:`fixed_point_optimality`     ``T(x, *args) − x``
:func:`prox_gradient_optimality`   ``prox(x − η∇₁f(x, *args), hp, η) − x``
:func:`projected_gradient_...`     ``proj(x − η∇₁f(x, *args), hp) − x``
:func:`kkt_optimality`             ``(∇ₓf + ∂ₓhᵀν, h(x))`` for ``min f`` s.t. ``h(x) = 0``
:func:`equality_qp_kkt`            the same for ``½xᵀQx + cᵀx`` s.t. ``Ax = b``
:func:`mirror_descent_optimality`  ``step(x, ∇₁f(x, *args), η, hp) − x`` (a mirror step)
=================================  ========================================================

Differences from the reference code: the step ``η`` of the proximal/projected/mirror fixed
points is a parameter (jaxopt fixes it at 1, which makes ``∂F/∂x`` ill-conditioned when the
Lipschitz constant is far from 1); the KKT condition covers equality constraints only (jaxopt
also adds complementary slackness for inequalities); :func:`kl_simplex_step` is the entropic
mirror step written in closed form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "box_kkt_optimality",
    "box_qp_optimality",
    "equality_qp_kkt",
    "fixed_point_optimality",
    "gradient_optimality",
    "kkt_optimality",
    "kl_simplex_step",
    "mirror_descent_optimality",
    "projected_gradient_optimality",
    "prox_gradient_optimality",
]


def _sub(a: Any, b: Any) -> Any:
    return jax.tree.map(jnp.subtract, a, b)


def _axpy(alpha: Any, x: Any, y: Any) -> Any:
    return jax.tree.map(lambda u, v: alpha * u + v, x, y)


def _tagged(fn: Callable, symmetric: bool, name: str) -> Callable:
    fn.symmetric = symmetric  # type: ignore[attr-defined]
    fn.__name__ = fn.__qualname__ = name
    return fn


def _require_callable(owner: str, **fns: Any) -> None:
    for name, fn in fns.items():
        if not callable(fn):
            raise TypeError(f"{owner}: `{name}` must be callable, got {type(fn).__name__}.")


def gradient_optimality(fun: Callable) -> Callable:
    """``F(x, *args, **kw) = ∇₁fun(x, *args, **kw)``: stationarity of a smooth objective.

    Zero at every stationary point of ``fun(·, *args)``; ``∂F/∂x`` is the Hessian, symmetric, so
    ``F.symmetric`` is ``True`` and the backward solve of :func:`custom_root` may use CG
    (jaxopt's ``GradientDescent.optimality_fun``).

    Args:
      fun: the objective ``fun(x, *args, **kw)``, a scalar.

    Returns:
      ``F(x, *args, **kw)``, a pytree shaped like ``x``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.implicit import custom_root, gradient_optimality
      >>> f = lambda x, lam: 0.5 * jnp.sum((x - 1.0) ** 2) + 0.5 * lam * jnp.sum(x**2)
      >>> @custom_root(gradient_optimality(f))
      ... def ridge(init, lam):                    # the minimiser is 1 / (1 + lam)
      ...     return jnp.ones_like(init) / (1.0 + lam)
      >>> # d/dlam of 2 / (1 + lam) at lam = 1: -2 / (1 + lam)² = -0.5
      >>> float(jax.grad(lambda lam: ridge(jnp.zeros(2), lam).sum())(1.0))
      -0.5
    """
    _require_callable("gradient_optimality", fun=fun)
    return _tagged(jax.grad(fun), True, f"gradient_optimality({getattr(fun, '__name__', fun)})")


def fixed_point_optimality(fixed_point_fn: Callable) -> Callable:
    """``F(x, *args, **kw) = T(x, *args, **kw) − x``.

    Zero exactly at the fixed points of ``T`` (jaxopt's ``FixedPointIteration.optimality_fun``);
    :func:`custom_fixed_point` is the decorator built on it.

    Args:
      fixed_point_fn: the map ``T(x, *args, **kw)``, returning a pytree shaped like ``x``.

    Returns:
      ``F(x, *args, **kw)``, a pytree shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.implicit import fixed_point_optimality
      >>> F = fixed_point_optimality(lambda x, theta: 0.5 * x + theta)  # fixed point 2 theta
      >>> float(F(jnp.array(3.0), 1.5)), float(F(jnp.array(1.0), 1.5))
      (0.0, 1.0)
    """
    _require_callable("fixed_point_optimality", fixed_point_fn=fixed_point_fn)

    def F(x: Any, *args: Any, **kwargs: Any) -> Any:
        return _sub(fixed_point_fn(x, *args, **kwargs), x)

    return _tagged(F, False, "fixed_point_optimality")


def prox_gradient_optimality(fun: Callable, prox: Callable, stepsize: float = 1.0) -> Callable:
    """``F(x, hp, *args, **kw) = prox(x − η∇₁fun(x, *args, **kw), hp, η) − x``.

    Zero exactly at minimisers of ``fun(·, *args) + g(·, hp)`` where ``prox`` is ``prox_g``
    (jaxopt's ``ProximalGradient.optimality_fun``, whose step is fixed at 1).

    Args:
      fun: the smooth part ``fun(x, *args, **kw)``, a scalar.
      prox: ``prox(y, hp, η)``, the proximal operator of ``η g(·, hp)``, e.g. one of
        :mod:`jaxopt_papers.proximal`'s ``prox_*``.
      stepsize: ``η > 0``; ``1/L`` (``L`` the Lipschitz constant of ``∇fun``) keeps ``∂F/∂x``
        well conditioned.

    Returns:
      ``F(x, hyperparams_prox, *args, **kw)``, a pytree shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.implicit import prox_gradient_optimality
      >>> from jaxopt_papers.proximal import prox_lasso
      >>> fun = lambda x, y: 0.5 * jnp.sum((x - y) ** 2)
      >>> F = prox_gradient_optimality(fun, prox_lasso)
      >>> y = jnp.array([2.0, 0.3, -1.5])
      >>> x_star = prox_lasso(y, 0.5)  # argmin ½‖x − y‖² + 0.5‖x‖₁: soft thresholding
      >>> x_star.tolist(), float(jnp.abs(F(x_star, 0.5, y)).max())
      ([1.5, 0.0, -1.0], 0.0)
    """
    _require_callable("prox_gradient_optimality", fun=fun, prox=prox)
    grad = jax.grad(fun)

    def F(x: Any, hyperparams_prox: Any, *args: Any, **kwargs: Any) -> Any:
        y = _axpy(-stepsize, grad(x, *args, **kwargs), x)
        return _sub(prox(y, hyperparams_prox, stepsize), x)

    return _tagged(F, False, "prox_gradient_optimality")


def projected_gradient_optimality(
    fun: Callable, projection: Callable, stepsize: float = 1.0
) -> Callable:
    """``F(x, hp, *args, **kw) = proj(x − η∇₁fun(x, *args, **kw), hp) − x``.

    Zero exactly at minimisers of ``fun(·, *args)`` over the convex set of ``proj(·, hp)``
    (jaxopt's ``ProjectedGradient.optimality_fun``, whose step is fixed at 1).

    Args:
      fun: the objective ``fun(x, *args, **kw)``, a scalar.
      projection: ``projection(y, hp)``, the Euclidean projection on the feasible set, e.g. one
        of :mod:`jaxopt_papers.proximal`'s ``projection_*``.
      stepsize: ``η > 0``; ``1/L`` (``L`` the Lipschitz constant of ``∇fun``) keeps ``∂F/∂x``
        well conditioned.

    Returns:
      ``F(x, hyperparams_proj, *args, **kw)``, a pytree shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.implicit import projected_gradient_optimality
      >>> from jaxopt_papers.proximal import projection_box
      >>> fun = lambda x, y: 0.5 * jnp.sum((x - y) ** 2)
      >>> F = projected_gradient_optimality(fun, projection_box)
      >>> y, box = jnp.array([2.0, 0.3, -1.5]), (-1.0, 1.0)
      >>> x_star = jnp.clip(y, -1.0, 1.0)  # the closest point of the box
      >>> float(jnp.abs(F(x_star, box, y)).max()), float(jnp.abs(F(y, box, y)).max())
      (0.0, 1.0)
    """
    _require_callable("projected_gradient_optimality", fun=fun, projection=projection)
    grad = jax.grad(fun)

    def F(x: Any, hyperparams_proj: Any, *args: Any, **kwargs: Any) -> Any:
        y = _axpy(-stepsize, grad(x, *args, **kwargs), x)
        return _sub(projection(y, hyperparams_proj), x)

    return _tagged(F, False, "projected_gradient_optimality")


def kkt_optimality(fun: Callable, eq_fun: Callable) -> Callable:
    """KKT conditions of ``min_x fun(x, θ_f)`` subject to ``eq_fun(x, θ_h) = 0``.

    ``F((x, ν), θ_f, θ_h) = (∇ₓfun(x, θ_f) + ∂ₓeq_fun(x, θ_h)ᵀν, eq_fun(x, θ_h))``; the
    unknown is the pair (primal, multipliers). ``∂F/∂(x, ν)`` is symmetric but indefinite
    (the backward solve needs GMRES or LU, not CG). jaxopt's ``make_kkt_optimality_fun`` also
    covers inequalities; here, equality constraints only (see :func:`box_kkt_optimality` for
    bounds).

    Args:
      fun: the objective ``fun(x, θ_f)``, a scalar.
      eq_fun: the constraints ``eq_fun(x, θ_h)``, a pytree (one multiplier per entry).

    Returns:
      ``F((x, ν), θ_f, θ_h)``, a pair shaped like ``(x, ν)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.implicit import kkt_optimality
      >>> fun = lambda x, _: 0.5 * x @ x
      >>> eq = lambda x, total: jnp.array([x.sum() - total])
      >>> F = kkt_optimality(fun, eq)
      >>> # min ½‖x‖² s.t. x₀ + x₁ = 1: x = (½, ½), ν = −½
      >>> stationarity, h = F((jnp.array([0.5, 0.5]), jnp.array([-0.5])), None, 1.0)
      >>> stationarity.tolist(), h.tolist()
      ([0.0, 0.0], [0.0])
    """
    _require_callable("kkt_optimality", fun=fun, eq_fun=eq_fun)
    grad = jax.grad(fun)

    def F(params: tuple[Any, Any], params_fun: Any, params_eq: Any) -> tuple[Any, Any]:
        x, nu = params
        h, h_vjp = jax.vjp(lambda z: eq_fun(z, params_eq), x)
        stationarity = jax.tree.map(jnp.add, grad(x, params_fun), h_vjp(nu)[0])
        return stationarity, h

    return _tagged(F, False, "kkt_optimality")


def _qp_objective(x: jax.Array, params_obj: tuple[jax.Array, jax.Array]) -> jax.Array:
    Q, c = params_obj
    return 0.5 * x @ (Q @ x) + c @ x


def _qp_constraint(x: jax.Array, params_eq: tuple[jax.Array, jax.Array]) -> jax.Array:
    A, b = params_eq
    return A @ x - b


#: KKT of ``min ½xᵀQx + cᵀx`` s.t. ``Ax = b``: ``F((x, ν), (Q, c), (A, b))``.
equality_qp_kkt = _tagged(kkt_optimality(_qp_objective, _qp_constraint), False, "equality_qp_kkt")
equality_qp_kkt.__doc__ = """KKT conditions of ``min ½xᵀQx + cᵀx`` subject to ``Ax = b``.

    :func:`kkt_optimality` of the equality-constrained QP:
    ``F((x, ν), (Q, c), (A, b)) = (Qx + c + Aᵀν, Ax − b)`` (``Q`` used as given, not
    symmetrised). Pass it to :func:`custom_root` with a QP solver to differentiate the solution
    with respect to ``Q``, ``c``, ``A`` and ``b``.

    Args:
      params: the pair ``(x, ν)``: the primal solution and one multiplier per row of ``A``.
      params_fun: ``(Q, c)``, dense ``(n, n)`` and ``(n,)``.
      params_eq: ``(A, b)``, dense ``(m, n)`` and ``(m,)``.

    Returns:
      The pair ``(Qx + c + Aᵀν, Ax − b)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.implicit import equality_qp_kkt
      >>> Q, c = jnp.eye(2), jnp.zeros(2)
      >>> A, b = jnp.ones((1, 2)), jnp.array([1.0])
      >>> # min ½‖x‖² s.t. x₀ + x₁ = 1: x = (½, ½), ν = −½
      >>> r = equality_qp_kkt((jnp.array([0.5, 0.5]), jnp.array([-0.5])), (Q, c), (A, b))
      >>> r[0].tolist(), r[1].tolist()
      ([0.0, 0.0], [0.0])
    """


def mirror_descent_optimality(fun: Callable, mirror_step: Callable) -> Callable:
    """``F(x, hp, *args, **kw) = mirror_step(x, ∇₁fun(x, *args, **kw), 1, hp) − x``.

    Zero at the minimisers of ``fun(·, *args)`` over the feasible set of the mirror step
    (jaxopt's ``MirrorDescent.optimality_fun``, step 1).

    Args:
      fun: the objective ``fun(x, *args, **kw)``, a scalar.
      mirror_step: ``mirror_step(x, g, η, hp)``, one mirror-descent step
        ``∇φ*(∇φ(x) − ηg)`` followed by the Bregman projection on the feasible set, e.g.
        :func:`kl_simplex_step`.

    Returns:
      ``F(x, hyperparams_proj, *args, **kw)``, a pytree shaped like ``x``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.implicit import kl_simplex_step, mirror_descent_optimality
      >>> fun = lambda x, c: c @ x + jnp.sum(x * jnp.log(x))  # min over the simplex: softmax(-c)
      >>> F = mirror_descent_optimality(fun, kl_simplex_step)
      >>> c = jnp.array([1.0, 2.0, 3.0])
      >>> bool(jnp.abs(F(jax.nn.softmax(-c), None, c)).max() < 1e-12)
      True
    """
    _require_callable("mirror_descent_optimality", fun=fun, mirror_step=mirror_step)
    grad = jax.grad(fun)

    def F(x: Any, hyperparams_proj: Any, *args: Any, **kwargs: Any) -> Any:
        return _sub(mirror_step(x, grad(x, *args, **kwargs), 1.0, hyperparams_proj), x)

    return _tagged(F, False, "mirror_descent_optimality")


def kl_simplex_step(
    x: jax.Array, grad: jax.Array, stepsize: float = 1.0, hyperparams: Any = None
) -> jax.Array:
    """Entropic mirror step on the probability simplex: ``softmax(log x − η g)``.

    The mirror step of :func:`mirror_descent_optimality` for the negative entropy
    ``φ(x) = Σ x log x``, written in closed form (the KL Bregman projection onto the simplex is
    a normalisation).

    Args:
      x: a point of the simplex (positive entries summing to 1 along the last axis).
      grad: the gradient at ``x``, shaped like ``x``.
      stepsize: ``η``.
      hyperparams: unused (the signature of a ``mirror_step``).

    Returns:
      ``softmax(log x − η grad)`` along the last axis.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.implicit import kl_simplex_step
      >>> x = kl_simplex_step(jnp.array([0.5, 0.5]), jnp.array([0.0, jnp.log(3.0)]))
      >>> [round(float(v), 4) for v in x]  # (1, 1/3) normalised
      [0.75, 0.25]
    """
    del hyperparams
    return jax.nn.softmax(jnp.log(x) - stepsize * grad, axis=-1)


def _clip_to_box(v: jax.Array, lower: jax.Array, upper: jax.Array) -> jax.Array:
    # Written with `where` rather than `jnp.clip`: the derivative goes entirely to the bound that
    # is hit (also when lower == upper, an equality), and infinite bounds give no NaN.
    return jnp.where(v >= upper, upper, jnp.where(v <= lower, lower, v))


def _box_kkt(grad_fn: Callable, constraint_fn: Callable, name: str) -> Callable:
    def F(params: Any, params_fun: Any, params_g: Any, params_box: tuple[Any, Any]) -> Any:
        (x, z), y = params
        lower, upper = params_box
        g, g_vjp = jax.vjp(lambda v: constraint_fn(params_g, v), x)
        stationarity = jax.tree.map(jnp.add, grad_fn(x, params_fun), g_vjp(y)[0])
        projected = jax.tree.map(_clip_to_box, jax.tree.map(jnp.add, z, y), lower, upper)
        return (stationarity, _sub(g, z)), _sub(z, projected)

    return _tagged(F, False, name)


def box_kkt_optimality(fun: Callable, constraint_fn: Callable) -> Callable:
    """KKT conditions of ``min_x fun(x, θ_f)`` subject to ``l ≤ constraint_fn(θ_g, x) ≤ u``.

    With the slack ``z = g(x)`` (``g = constraint_fn(θ_g, ·)``) and one multiplier ``y`` per
    constraint (``y = μ − φ``: ``μ ≥ 0`` for the upper bound, ``φ ≥ 0`` for the lower one), the
    unknown is ``((x, z), y)`` and

    ``F(((x, z), y), θ_f, θ_g, (l, u)) = ((∇ₓfun(x, θ_f) + ∂ₓg(x)ᵀy, g(x) − z),
    z − Π_[l,u](z + y))``.

    The last block is zero exactly when ``l ≤ z ≤ u`` and ``y`` lies in the normal cone of the box
    at ``z`` (``y ≥ 0`` where ``z = u``, ``y ≤ 0`` where ``z = l``, ``y = 0`` in between):
    complementary slackness and dual feasibility in one equation, without a multiplier per
    bound. ``l = u`` is an equality constraint; infinite bounds are allowed. Under strict
    complementarity the Jacobian in ``((x, z), y)`` is nonsingular when ``∇²fun`` is positive
    definite on the null space of the active constraints' gradients and those are linearly
    independent, so implicit gradients with respect to ``θ_f``, ``θ_g``, ``l`` and ``u`` are
    well defined. ``x``, ``z`` and ``y`` may be pytrees (``z``, ``y``, ``l``, ``u`` with the
    structure of ``g(x)``).

    Args:
      fun: the objective ``fun(x, θ_f)``, a scalar.
      constraint_fn: ``g = constraint_fn(θ_g, x)``, the constrained quantities (note the order:
        parameters first, as OSQP's ``matvec_A``).

    Returns:
      ``F(((x, z), y), θ_f, θ_g, (l, u))``, a pytree shaped like ``((x, z), y)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.implicit import box_kkt_optimality
      >>> F = box_kkt_optimality(lambda x, c: 0.5 * x @ x - c @ x, lambda A, x: A @ x)
      >>> # min ½‖x‖² − x₀ − x₁ s.t. x₀ + x₁ ≤ 1: x = (½, ½), the constraint active, y = ½.
      >>> sol = ((jnp.array([0.5, 0.5]), jnp.array([1.0])), jnp.array([0.5]))
      >>> res = F(sol, jnp.ones(2), jnp.ones((1, 2)), (jnp.array([-jnp.inf]), jnp.array([1.0])))
      >>> float(sum(jnp.abs(r).sum() for r in jax.tree.leaves(res)))
      0.0
    """
    _require_callable("box_kkt_optimality", fun=fun, constraint_fn=constraint_fn)
    return _box_kkt(jax.grad(fun), constraint_fn, "box_kkt_optimality")


def box_qp_optimality(
    matvec_Q: Callable | None = None, matvec_A: Callable | None = None
) -> Callable:
    """:func:`box_kkt_optimality` of ``min ½xᵀQx + cᵀx`` subject to ``l ≤ Ax ≤ u``.

    Returns ``F(((x, z), y), (params_Q, c), params_A, (l, u))`` with stationarity
    ``Qx + c + Aᵀy`` (``Q`` used as given, not symmetrised), where ``Qx = matvec_Q(params_Q, x)``
    and ``Ax = matvec_A(params_A, x)`` (default: ``params_Q @ x`` and ``params_A @ x``, dense
    matrices). ``Aᵀy`` comes from the transpose of ``matvec_A``.

    Args:
      matvec_Q: ``matvec_Q(params_Q, x)``, the product ``Qx``; None: ``params_Q @ x``.
      matvec_A: ``matvec_A(params_A, x)``, the product ``Ax``; None: ``params_A @ x``.

    Returns:
      ``F(((x, z), y), (params_Q, c), params_A, (l, u))``, a pytree shaped like
      ``((x, z), y)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.implicit import box_qp_optimality
      >>> F = box_qp_optimality()
      >>> # min ½‖x‖² − x₀ − x₁ s.t. x₀ + x₁ ≤ 1: x = (½, ½), y = ½.
      >>> sol = ((jnp.array([0.5, 0.5]), jnp.array([1.0])), jnp.array([0.5]))
      >>> res = F(sol, (jnp.eye(2), -jnp.ones(2)), jnp.ones((1, 2)),
      ...         (jnp.array([-jnp.inf]), jnp.array([1.0])))
      >>> float(sum(jnp.abs(r).sum() for r in jax.tree.leaves(res)))
      0.0
    """
    if matvec_Q is not None or matvec_A is not None:
        _require_callable(
            "box_qp_optimality", **{k: v for k, v in (("matvec_Q", matvec_Q),
                                                      ("matvec_A", matvec_A)) if v is not None}
        )  # fmt: skip
    mv_Q = matvec_Q if matvec_Q is not None else (lambda Q, x: Q @ x)
    mv_A = matvec_A if matvec_A is not None else (lambda A, x: A @ x)

    def grad_fn(x: Any, params_obj: tuple[Any, Any]) -> Any:
        params_Q, c = params_obj
        return jax.tree.map(jnp.add, mv_Q(params_Q, x), c)

    return _box_kkt(grad_fn, mv_A, "box_qp_optimality")
