"""The implicit hypergradient ``∇F(x) = ∇ₓf − ∇²ₓᵧg [∇²ᵧᵧg]⁻¹ ∇ᵧf`` at a lower-level solution.

For ``F(x) = f(x, y*(x))`` with ``y*(x)`` a root of the lower level's optimality condition
``G(y, x) = 0``, the implicit function theorem gives ``∇F(x) = ∇ₓf + (∂ₓG)ᵀu`` with
``(∂ᵧG)ᵀu = −∇ᵧf`` (approximate implicit differentiation, AID). ``G`` is

- ``∇ᵧ lower_fn(x, y)`` for an unconstrained lower level (``∂ᵧG = ∇²ᵧᵧg``, symmetric), or
- the KKT system of ``min_y lower_fn(x, y) s.t. c(x, y) ≤ 0`` (``c = constraint_fn``) in the
  unknown ``((y, s), μ)`` with slack ``s = c(x, y)`` and multipliers ``μ ≥ 0``:
  ``(∇ᵧg + ∂ᵧcᵀμ, c − s, s − Π₍₋∞,₀₎(s + μ))``
  (:func:`~jaxopt_papers.implicit.box_kkt_optimality` with the box ``(−∞, 0]``), valid under
  linear independence of the active constraints' gradients and strict complementarity.

Only products with ``∂G`` are formed (``jax.vjp``/``jax.linearize``), and the linear system goes
to a :class:`~jaxopt_papers.implicit.LinearSolve` (dense LU for small ``y``, CG or GMRES
otherwise, or a :class:`~jaxopt_papers.linear.RecyclingSolve` carried across outer steps).
The answer is trustworthy only at a lower-level solution: the relative optimality residual at
``y`` is checked against ``lower_tol`` and reported.

Reference: Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016;
Blondel et al., "Efficient and Modular Implicit Differentiation", NeurIPS 2022.

Differences from the reference code (jaxopt 0.8.5, where a hypergradient is ``jax.grad`` of the
upper objective through ``custom_root``): one call with the problem's own functions; the lower
level's KKT multipliers are estimated from ``y`` when not given; the lower-level residual is
checked (a hypergradient at a ``y`` far from ``y*(x)`` is reported, not returned silently); the
backward solve is dense LU for small problems (jaxopt: normal-equation CG at ``tol=1e-5``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_papers._solution import RESULTS, Solution, finish
from jaxopt_papers.bilevel.problem import BilevelProblem, MultiBlockProblem
from jaxopt_papers.implicit.implicit_diff import root_vjp
from jaxopt_papers.implicit.linear_solve import LinearSolve, as_linear_solve

__all__ = ["estimate_multipliers", "hypergradient", "lower_residual"]

_MESSAGES = {
    "inaccurate": (
        "hypergradient: `y` does not solve the lower-level problem at `x` (its relative "
        "optimality residual, `stats['lower_residual']`, exceeds `lower_tol`), so the implicit "
        "hypergradient would be wrong. Solve the lower level more accurately, or pass a larger "
        "`lower_tol`."
    ),
}


def _norm(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.abs(v) ** 2) for v in leaves))


def _dtype(tree: Any) -> Any:
    return jnp.result_type(*jax.tree.leaves(tree))


def _relative_residual(F: Any, u: Any) -> jax.Array:
    """``‖F(u)‖ / ‖A u − F(u)‖`` with ``A = ∂F(u)``: the residual against the scale of ``F``."""
    fu, lin = jax.linearize(F, u)
    num = _norm(fu)
    den = _norm(jax.tree.map(jnp.subtract, lin(u), fu))
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), num)


def _default_tol(tree: Any, tol: float | None, wide: float, narrow: float) -> Any:
    if tol is not None:
        return tol
    return wide if jnp.finfo(_dtype(tree)).bits >= 64 else narrow


def _gradient_condition(problem: Any, lower_data: Any) -> Any:
    return lambda y, x: jax.grad(problem.lower_fn, argnums=1)(x, y, lower_data)


def estimate_multipliers(
    problem: BilevelProblem, x: Any, y: Any, lower_data: Any, *, active_tol: float | None = None
) -> jax.Array:
    """KKT multipliers ``μ ≥ 0`` of the lower level's constraints at ``y``, by least squares.

    ``μ`` minimises ``‖∇ᵧg(x, y) + ∂ᵧc(x, y)ᵀμ‖`` over the constraints that are active
    (``c(x, y) ≥ −active_tol``); inactive ones get ``μ = 0`` and negative estimates are set to
    zero. The Jacobian of the constraints is formed densely (one row per constraint).

    Args:
      problem: a :class:`BilevelProblem` with a ``constraint_fn``.
      x: the upper-level variable.
      y: a lower-level solution at ``x``.
      lower_data: the lower level's data.
      active_tol: a constraint with ``c ≥ −active_tol`` counts as active (``None``: 1e-6 in
        float64, 1e-3 otherwise).

    Returns:
      ``μ``, shaped like ``constraint_fn(x, y, lower_data)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> # min_y ½‖y − x‖² s.t. y₀ ≤ 0: at x = (1, 1), y = (0, 1) and μ = 1.
      >>> p = bilevel.BilevelProblem(lambda x, y, d: 0.0 * jnp.sum(y),
      ...                            lambda x, y, d: 0.5 * jnp.sum((y - x) ** 2),
      ...                            lambda x, y, d: y[:1])
      >>> bilevel.estimate_multipliers(p, jnp.ones(2), jnp.array([0.0, 1.0]), None).tolist()
      [1.0]
    """
    if problem.constraint_fn is None:
        raise ValueError("estimate_multipliers: `problem` has no `constraint_fn`.")
    c = problem.constraint_fn(x, y, lower_data)
    active_tol = _default_tol(y, active_tol, 1e-6, 1e-3)
    flat_y, unravel = ravel_pytree(y)
    grad = ravel_pytree(jax.grad(problem.lower_fn, argnums=1)(x, y, lower_data))[0]
    jac = jax.jacrev(lambda v: jnp.ravel(problem.constraint_fn(x, unravel(v), lower_data)))(flat_y)
    active = jnp.ravel(c) >= -active_tol
    jt = jnp.where(active[None, :], jac.T, 0.0)  # (dim y, number of constraints)
    mu = jnp.linalg.lstsq(jt, -grad)[0]
    return jnp.where(active, jnp.maximum(mu, 0.0), 0.0).reshape(jnp.shape(c))


def _kkt_condition(problem: Any, lower_data: Any) -> Any:
    def G(unknown: Any, x: Any) -> Any:
        (y, s), mu = unknown
        c, c_vjp = jax.vjp(lambda v: problem.constraint_fn(x, v, lower_data), y)
        grad = jax.grad(problem.lower_fn, argnums=1)(x, y, lower_data)
        stationarity = jax.tree.map(jnp.add, grad, c_vjp(mu)[0])
        return (stationarity, c - s), s - jnp.minimum(s + mu, 0.0)

    return G


def _single(
    problem: BilevelProblem, x: Any, y: Any, upper_data: Any, lower_data: Any,
    linear_solve: LinearSolve, multipliers: Any, active_tol: Any,
) -> tuple[Any, dict[str, jax.Array]]:  # fmt: skip
    gx, gy = jax.grad(problem.upper_fn, argnums=(0, 1))(x, y, upper_data)
    if problem.constraint_fn is None:
        G, unknown, cot, symmetric = _gradient_condition(problem, lower_data), y, gy, True
    else:
        mu = multipliers
        if mu is None:
            mu = estimate_multipliers(problem, x, y, lower_data, active_tol=active_tol)
        s = problem.constraint_fn(x, y, lower_data)
        G, unknown, symmetric = _kkt_condition(problem, lower_data), ((y, s), mu), False
        cot = ((gy, jnp.zeros_like(s)), jnp.zeros_like(mu))
    residual = _relative_residual(lambda u: G(u, x), unknown)
    (x_bar,), lstats = root_vjp(
        G, unknown, (x,), cot, solve=linear_solve, symmetric=symmetric, return_stats=True
    )
    grad = jax.tree.map(jnp.add, gx, x_bar)
    stats = {
        "lower_residual": residual,
        "linear_residual": jnp.asarray(lstats["residual"]),
        "num_steps": jnp.asarray(lstats["num_steps"]),
    }
    if "num_matvecs" in lstats:
        stats["num_matvecs"] = jnp.asarray(lstats["num_matvecs"])
    return grad, stats, lstats.get("recycle_state")


def lower_residual(
    problem: BilevelProblem | MultiBlockProblem, x: Any, y: Any, lower_data: Any
) -> jax.Array:
    """The lower level's relative optimality residual ``‖G(y)‖ / ‖∂G·y − G(y)‖`` at ``y``.

    ``G = ∇ᵧ lower_fn(x, ·)`` (the largest over blocks for a :class:`MultiBlockProblem`); zero
    exactly at a lower-level solution, scale-free (for a quadratic lower level
    ``½yᵀHy − bᵀy`` it is ``‖Hy − b‖ / ‖b‖``). Not defined for constrained lower levels (their
    residual involves the multipliers; see :func:`hypergradient` with ``full_output=True``).

    Args:
      problem: the bilevel problem (no ``constraint_fn``).
      x: the upper-level variable.
      y: the lower-level variable.
      lower_data: the lower level's data.

    Returns:
      A scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> p = bilevel.BilevelProblem(lambda x, y, d: jnp.sum(y),
      ...                            lambda x, y, d: 0.5 * jnp.sum((y - x) ** 2))
      >>> float(bilevel.lower_residual(p, jnp.ones(2), jnp.ones(2), None))
      0.0
    """
    if problem.constraint_fn is not None:
        raise ValueError(
            "lower_residual: `problem` has a `constraint_fn`; use hypergradient(..., "
            "full_output=True) for the KKT residual."
        )
    if isinstance(problem, MultiBlockProblem):
        single = BilevelProblem(problem.upper_fn, problem.lower_fn)
        return jnp.max(jax.vmap(lambda yi, li: lower_residual(single, x, yi, li))(y, lower_data))
    G = _gradient_condition(problem, lower_data)
    return _relative_residual(lambda u: G(u, x), y)


def hypergradient(
    problem: BilevelProblem | MultiBlockProblem,
    x: Any,
    y: Any,
    upper_data: Any,
    lower_data: Any,
    solve: Any = "auto",
    *,
    multipliers: Any = None,
    lower_tol: float | None = None,
    active_tol: float | None = None,
    full_output: bool = False,
    throw: bool = True,
) -> Any:
    """``∇F(x)``, the gradient of ``upper_fn(x, y*(x), upper_data)``, at a lower solution ``y``.

    Approximate implicit differentiation: one linear solve with the lower level's Hessian (or
    KKT matrix), through Hessian–vector products only. ``x`` and ``y`` may be pytrees; the
    result is shaped like ``x``. Differentiable again (``jax.jacobian`` of it gives the
    Hessian of ``F``), and usable under ``jit`` and ``vmap`` (with ``throw=False`` or a
    successful check).

    Args:
      problem: a :class:`BilevelProblem` (with or without ``constraint_fn``) or a
        :class:`MultiBlockProblem` (``F`` is the mean over blocks; ``y`` and the data carry
        the block axis first).
      x: the upper-level variable.
      y: a solution of the lower level at ``x``.
      upper_data: the upper level's data.
      lower_data: the lower level's data.
      solve: the backward linear solve: ``"auto"`` (dense LU up to 256 unknowns, then CG, or
        GMRES for the KKT system), a name (``"cg"``, ``"gmres"``, ``"normal_cg"``, ``"lu"``), a
        :class:`~jaxopt_papers.implicit.LinearSolve`, a lineax solver, a
        :class:`~jaxopt_papers.linear.RecyclingSolve` or a callable ``solve(matvec, b)``.
      multipliers: the lower level's KKT multipliers at ``y`` (constrained problems only;
        ``None``: :func:`estimate_multipliers`).
      lower_tol: the largest accepted relative optimality residual of ``y``
        (:func:`lower_residual`); ``None``: 1e-4 in float64, 1e-2 otherwise.
      active_tol: passed to :func:`estimate_multipliers`.
      full_output: return a :class:`~jaxopt_papers.Solution` (``value`` the hypergradient,
        ``result``, ``stats`` with ``lower_residual``, ``linear_residual``, ``num_steps`` of
        the linear solve (and ``num_matvecs`` when the solve reports it) and ``error`` =
        ``lower_residual``; ``state`` the new recycle state of a
        :class:`~jaxopt_papers.linear.RecyclingSolve`, else ``None``) instead of the
        hypergradient.
      throw: raise a runtime error when ``y`` is not a lower-level solution to ``lower_tol``
        or the linear solve fails; ``False`` reports it in ``result`` (with
        ``full_output=True``; use it under ``vmap``).

    Returns:
      The hypergradient, shaped like ``x`` (or the :class:`~jaxopt_papers.Solution`).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> # y*(x) = 2x, F(x) = ½‖y*(x) − 1‖²: ∇F(x) = 2(2x − 1).
      >>> p = bilevel.BilevelProblem(lambda x, y, d: 0.5 * jnp.sum((y - 1.0) ** 2),
      ...                            lambda x, y, d: 0.5 * jnp.sum((y - 2.0 * x) ** 2))
      >>> x = jnp.array([1.0, 0.0])
      >>> bilevel.hypergradient(p, x, 2.0 * x, None, None).tolist()
      [2.0, -2.0]
    """
    if not isinstance(problem, (BilevelProblem, MultiBlockProblem)):
        raise TypeError(
            "hypergradient: `problem` must be a BilevelProblem or a MultiBlockProblem, got "
            f"{type(problem).__name__}."
        )
    problem.check("hypergradient", x, y, upper_data, lower_data)
    if multipliers is not None and problem.constraint_fn is None:
        raise ValueError("hypergradient: `multipliers` given but `problem` has no constraint_fn.")
    if isinstance(solve, str):
        linear_solve = LinearSolve(solver=solve, throw=throw)
    else:
        linear_solve = as_linear_solve(solve, owner="hypergradient")
    if isinstance(problem, MultiBlockProblem):
        single = BilevelProblem(problem.upper_fn, problem.lower_fn)
        grads, st, recycle = jax.vmap(
            lambda yi, ui, li: _single(single, x, yi, ui, li, linear_solve, None, active_tol)
        )(y, upper_data, lower_data)
        grad = jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)
        st = {k: jnp.max(v) for k, v in st.items()}
    else:
        grad, st, recycle = _single(
            problem, x, y, upper_data, lower_data, linear_solve, multipliers, active_tol
        )
    tol = _default_tol(y, lower_tol, 1e-4, 1e-2)
    solved = st["lower_residual"] <= tol
    result = RESULTS.where(solved, RESULTS.successful, RESULTS.inaccurate)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grad)]))
    result = RESULTS.where(finite | ~solved, result, RESULTS.nonfinite)
    stats = {"num_steps": st["num_steps"], "error": st["lower_residual"], **st}
    sol: Solution = finish(grad, result, stats, state=recycle, throw=throw, messages=_MESSAGES)
    return sol if full_output else sol.value
