"""The entropic OT dual shared by the solvers: plan, marginals, optimality, result, checks.

Entropic OT between weights ``a`` (n) and ``b`` (m) with cost ``C`` and regularisation ``ε``:
``min_P ⟨C, P⟩ − εH(P)`` s.t. ``P1 = a``, ``Pᵀ1 = b``, ``H(P) = −Σ P(log P − 1)``. With the
potentials ``(f, g)`` of ott-jax's convention, ``P_ij = exp((f_i + g_j − C_ij)/ε)`` and the
concave dual is ``D(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − ε Σ_ij P_ij``, with gradient
``(a − P1, b − Pᵀ1)`` and Hessian ``−(1/ε)[[diag(P1), P], [Pᵀ, diag(Pᵀ1)]]``.

**Gauge.** ``(f + t, g − t)`` gives the same plan. Solvers return the representative with
``Σf = Σg``, and implicit differentiation uses the optimality condition

    F(f, g) = (P1 − a + w·s·1, Pᵀ1 − b − w·s·1),   s = Σf − Σg,

whose Jacobian ``(1/ε)M + w·qqᵀ`` (``q = (1, −1)``) is symmetric positive definite, so the
backward solve is CG (dense Cholesky/LU on small problems) without a null space; ``w`` is set to
the scale of ``M/ε``. Only gauge-invariant outputs (the plan, the costs, ``f_i + g_j``) have
meaningful derivatives; derivatives with respect to ``a`` and ``b`` are meaningful along
mass-preserving directions (``Σȧ = Σḃ = 0``).

**Costs.** ``transport_cost = ⟨C, P⟩`` is differentiated through the plan (implicitly);
``reg_cost = ⟨a, f⟩ + ⟨b, g⟩ − ε(ΣP − Σa)`` (the dual value, ``= ⟨C, P⟩ − εH(P)`` at the
optimum; ott-jax's ``reg_ot_cost`` takes the entropy relative to ``a⊗b`` and is larger by
``ε(H(a) + H(b))``, ``H(a) = −Σa log a``) is differentiated by Danskin's theorem, with the
potentials held fixed: ``∂/∂C = P``, ``∂/∂a = f + ε``, ``∂/∂b = g``.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.implicit.solver import RESULTS

__all__ = ["OTResult"]


class OTResult(eqx.Module):
    """What the OT solvers return (see the module docstring for the conventions)."""

    f: jax.Array
    g: jax.Array
    plan: jax.Array
    transport_cost: jax.Array
    reg_cost: jax.Array
    error: jax.Array
    num_steps: jax.Array
    num_sinkhorn_steps: jax.Array
    num_newton_steps: jax.Array
    result: RESULTS


def log_plan(f: jax.Array, g: jax.Array, cost: jax.Array, epsilon: Any) -> jax.Array:
    return (f[:, None] + g[None, :] - cost) / epsilon


def marginal_error(plan: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁``."""
    return jnp.sum(jnp.abs(plan.sum(1) - a)) + jnp.sum(jnp.abs(plan.sum(0) - b))


def normalise_gauge(f: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The representative ``(f + t, g − t)`` with ``Σf = Σg``."""
    t = (jnp.sum(g) - jnp.sum(f)) / (f.shape[0] + g.shape[0])
    return f + t, g - t


def optimality(
    potentials: tuple[jax.Array, jax.Array], cost: jax.Array, a: jax.Array, b: jax.Array, epsilon
) -> tuple[jax.Array, jax.Array]:
    """Gauge-fixed first-order conditions (module docstring); zero at the normalised solution."""
    f, g = potentials
    plan = jnp.exp(log_plan(f, g, cost, epsilon))
    n, m = cost.shape
    w = jax.lax.stop_gradient(jnp.sum(a)) / (epsilon * max(n, m) * (n + m))
    s = jnp.sum(f) - jnp.sum(g)
    return plan.sum(1) - a + w * s, plan.sum(0) - b - w * s


optimality.symmetric = True  # type: ignore[attr-defined]


def finish(
    f: jax.Array,
    g: jax.Array,
    cost: jax.Array,
    a: jax.Array,
    b: jax.Array,
    epsilon: Any,
    tol: Any,
    stats: dict[str, jax.Array],
    throw: bool,
) -> OTResult:
    """Plan, costs, error and result code from the (implicitly differentiated) potentials."""
    plan = jnp.exp(log_plan(f, g, cost, epsilon))
    error = marginal_error(plan, a, b)
    fs, gs = jax.lax.stop_gradient((f, g))
    plan_fixed = jnp.exp(log_plan(fs, gs, cost, epsilon))
    reg_cost = a @ fs + b @ gs - epsilon * (jnp.sum(plan_fixed) - jnp.sum(a))
    finite = jnp.isfinite(error) & jnp.all(jnp.isfinite(f)) & jnp.all(jnp.isfinite(g))
    # Converged by the loop's own test (the error of the iterate before the last step), or by the
    # error recomputed here: in float32 the two differ by round-off (~|C|/ε · eps).
    converged = stats["converged"] | (error <= tol)
    code = RESULTS.where(converged, RESULTS.successful, RESULTS.max_steps_reached)
    code = RESULTS.where(finite, code, RESULTS.nonfinite)
    if throw:
        f = code.error_if(f, code != RESULTS.successful)
    return OTResult(
        f=f,
        g=g,
        plan=plan,
        transport_cost=jnp.sum(cost * plan),
        reg_cost=reg_cost,
        error=jax.lax.stop_gradient(error),
        num_steps=stats["num_sinkhorn_steps"] + stats["num_newton_steps"],
        num_sinkhorn_steps=stats["num_sinkhorn_steps"],
        num_newton_steps=stats["num_newton_steps"],
        result=code,
    )


def _concrete(x: Any) -> np.ndarray | None:
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:
        return None


def check_problem(owner: str, cost: Any, a: Any, b: Any, epsilon: Any, tol: Any) -> tuple:
    """Shapes and (when concrete) values of an OT problem; returns arrays in one dtype."""
    cost, a, b = jnp.asarray(cost), jnp.asarray(a), jnp.asarray(b)
    if cost.ndim != 2:
        raise ValueError(f"{owner}: `cost` must be a matrix (n, m), got shape {cost.shape}.")
    n, m = cost.shape
    if a.shape != (n,) or b.shape != (m,):
        raise ValueError(
            f"{owner}: `a` and `b` must have shapes ({n},) and ({m},) to match `cost` of shape "
            f"{cost.shape}, got {a.shape} and {b.shape}."
        )
    for name, v in (("cost", cost), ("a", a), ("b", b)):
        if not jnp.issubdtype(v.dtype, jnp.floating):
            raise ValueError(f"{owner}: `{name}` must be floating point, got {v.dtype}.")
    ca, cb, cc = _concrete(a), _concrete(b), _concrete(cost)
    if cc is not None and not np.all(np.isfinite(cc)):
        raise ValueError(f"{owner}: `cost` has non-finite entries.")
    for name, v in (("a", ca), ("b", cb)):
        if v is not None and not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise ValueError(
                f"{owner}: `{name}` must be finite and positive (drop zero-weight points), got "
                f"min {np.min(v)!r}."
            )
    if ca is not None and cb is not None:
        sa, sb = float(ca.sum()), float(cb.sum())
        if abs(sa - sb) > 1e-5 * max(sa, sb):
            raise ValueError(
                f"{owner}: `a` and `b` must have the same total mass (balanced OT), got "
                f"{sa!r} and {sb!r}."
            )
    for name, v in (("epsilon", epsilon), ("tol", tol)):
        c = _concrete(v)
        if c is not None and (c.shape != () or not float(c) > 0):
            raise ValueError(f"{owner}: `{name}` must be a positive scalar, got {v!r}.")
    dtype = jnp.result_type(cost, a, b)
    return cost.astype(dtype), a.astype(dtype), b.astype(dtype)
