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
    """``F(x, *args, **kw) = ∇₁fun(x, *args, **kw)``: stationarity of a smooth objective."""
    _require_callable("gradient_optimality", fun=fun)
    return _tagged(jax.grad(fun), True, f"gradient_optimality({getattr(fun, '__name__', fun)})")


def fixed_point_optimality(fixed_point_fn: Callable) -> Callable:
    """``F(x, *args, **kw) = T(x, *args, **kw) − x``."""
    _require_callable("fixed_point_optimality", fixed_point_fn=fixed_point_fn)

    def F(x: Any, *args: Any, **kwargs: Any) -> Any:
        return _sub(fixed_point_fn(x, *args, **kwargs), x)

    return _tagged(F, False, "fixed_point_optimality")


def prox_gradient_optimality(fun: Callable, prox: Callable, stepsize: float = 1.0) -> Callable:
    """``F(x, hp, *args, **kw) = prox(x − η∇₁fun(x, *args, **kw), hp, η) − x``.

    Zero exactly at minimisers of ``fun(·, *args) + g(·, hp)`` where ``prox`` is ``prox_g``.
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
    """``F(x, hp, *args, **kw) = proj(x − η∇₁fun(x, *args, **kw), hp) − x``."""
    _require_callable("projected_gradient_optimality", fun=fun, projection=projection)
    grad = jax.grad(fun)

    def F(x: Any, hyperparams_proj: Any, *args: Any, **kwargs: Any) -> Any:
        y = _axpy(-stepsize, grad(x, *args, **kwargs), x)
        return _sub(projection(y, hyperparams_proj), x)

    return _tagged(F, False, "projected_gradient_optimality")


def kkt_optimality(fun: Callable, eq_fun: Callable) -> Callable:
    """KKT conditions of ``min_x fun(x, θ_f)`` subject to ``eq_fun(x, θ_h) = 0``.

    Returns ``F((x, ν), θ_f, θ_h) = (∇ₓfun(x, θ_f) + ∂ₓeq_fun(x, θ_h)ᵀν, eq_fun(x, θ_h))``; the
    unknown is the pair (primal, multipliers). ``∂F/∂(x, ν)`` is symmetric but indefinite.
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


def mirror_descent_optimality(fun: Callable, mirror_step: Callable) -> Callable:
    """``F(x, hp, *args, **kw) = mirror_step(x, ∇₁fun(x, *args, **kw), 1, hp) − x``.

    ``mirror_step(x, g, η, hp)`` is one mirror-descent step ``∇φ*(∇φ(x) − ηg)`` followed by the
    Bregman projection on the feasible set, e.g. :func:`kl_simplex_step`.
    """
    _require_callable("mirror_descent_optimality", fun=fun, mirror_step=mirror_step)
    grad = jax.grad(fun)

    def F(x: Any, hyperparams_proj: Any, *args: Any, **kwargs: Any) -> Any:
        return _sub(mirror_step(x, grad(x, *args, **kwargs), 1.0, hyperparams_proj), x)

    return _tagged(F, False, "mirror_descent_optimality")


def kl_simplex_step(
    x: jax.Array, grad: jax.Array, stepsize: float = 1.0, hyperparams: Any = None
) -> jax.Array:
    """Entropic mirror step on the probability simplex: ``softmax(log x − η g)``."""
    del hyperparams
    return jax.nn.softmax(jnp.log(x) - stepsize * grad, axis=-1)
