"""The entropic OT problem and its dual, shared by the solvers.

:class:`OTProblem` holds ``(cost, a, b, epsilon)``; every solver returns a
:class:`~jaxopt_papers.Solution` whose ``value`` is :class:`Potentials` ``(f, g)`` and whose
``aux`` is :class:`OTOutputs` ``(plan, transport_cost, reg_cost)``.

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

Differences from the reference code (ott-jax 0.6.0): ``reg_cost`` is the entropy-regularised
cost itself, not ott's ``reg_ot_cost`` (see above); the problem's values are checked (a result
code under ``jit``) where ott runs on and returns NaN; gradients come from the gauge-fixed
condition above (ott: the Schur complement of its own linear system, or unrolling).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers._solution import RESULTS, Solution, any_traced, finish, raise_if_failed
from jaxopt_papers.implicit.implicit_diff import custom_root

__all__ = ["OTOutputs", "OTProblem", "Potentials"]

#: Relative tolerance of the equal-mass check (balanced OT): ``|Σa − Σb| ≤ MASS_RTOL·max``.
MASS_RTOL = 1e-5


def _concrete(x: Any) -> np.ndarray | None:
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:
        return None


def check_problem(owner: str, cost: Any, a: Any, b: Any, epsilon: Any) -> tuple:
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
        raise ValueError(f"{owner}: `cost` has non-finite entries (NaN or inf).")
    for name, v in (("a", ca), ("b", cb)):
        if v is not None and not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise ValueError(
                f"{owner}: `{name}` must be finite and positive (drop zero-weight points), got "
                f"min {np.min(v)!r}."
            )
    if ca is not None and cb is not None:
        sa, sb = float(ca.sum()), float(cb.sum())
        if abs(sa - sb) > MASS_RTOL * max(sa, sb):
            raise ValueError(
                f"{owner}: `a` and `b` must have the same total mass (balanced OT), got "
                f"{sa!r} and {sb!r}."
            )
    check_positive(owner, "epsilon", epsilon)
    dtype = jnp.result_type(cost, a, b)
    return tuple(v if v.dtype == dtype else v.astype(dtype) for v in (cost, a, b))


def check_positive(owner: str, name: str, value: Any) -> None:
    """A positive finite scalar (checked only when concrete)."""
    c = _concrete(value)
    if c is not None and (c.shape != () or not np.isfinite(c) or not float(c) > 0):
        raise ValueError(f"{owner}: `{name}` must be a positive finite scalar, got {value!r}.")


class OTProblem(eqx.Module):
    """An entropic optimal transport problem ``min ⟨C, P⟩ − εH(P)``, ``P1 = a``, ``Pᵀ1 = b``.

    Shapes and dtypes are checked at construction; values (finite cost, positive weights of
    equal total mass, ``ε > 0``) are checked at construction when they are concrete, and by the
    solvers' result code (``RESULTS.nonfinite_input`` / ``RESULTS.invalid_input``) when they are
    traced under ``jit``.

    Args:
      cost: ``(n, m)`` cost matrix.
      a: positive row weights, shape ``(n,)``.
      b: positive column weights, shape ``(m,)``, of the same total mass as ``a``.
      epsilon: the (absolute) entropic regularisation ``ε > 0``.

    Returns:
      The problem (an ``equinox.Module``: its arrays are traced under ``jit``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import OTProblem, Sinkhorn
      >>> x = jnp.linspace(0.0, 1.0, 5)
      >>> problem = OTProblem((x[:, None] - x[None]) ** 2, jnp.full(5, 0.2), jnp.full(5, 0.2), 0.1)
      >>> sol = Sinkhorn().run(problem)
      >>> sol.plan.shape, bool(sol.error <= 1e-6)
      ((5, 5), True)
    """

    cost: jax.Array
    a: jax.Array
    b: jax.Array
    epsilon: jax.Array

    def __init__(self, cost: Any, a: Any, b: Any, epsilon: Any):
        cost, a, b = check_problem("OTProblem", cost, a, b, epsilon)
        self.cost, self.a, self.b = cost, a, b
        self.epsilon = jnp.asarray(epsilon, cost.dtype)
        if self.epsilon.shape != ():
            raise ValueError(
                f"OTProblem: `epsilon` must be a scalar, got shape {self.epsilon.shape}."
            )

    def cost_summary(self) -> tuple[jax.Array, jax.Array]:
        """Whether every cost is finite, and the spread of the costs.

        Returns:
          ``(finite, std)``: a boolean scalar, and the standard deviation of the entries of at
          most 256 evenly spaced rows of ``C`` (it sets the automatic ε schedule of
          :class:`~jaxopt_papers.ot.SinkhornNewtonSparse`; ``inf``/``nan`` when ``C²`` overflows).
        """
        c = self.cost
        # One pass over C: finite row sums mean finite entries; a non-finite total (an entry, or
        # an overflow) is settled by the exact test, which only then reads C again.
        total = jnp.sum(jnp.sum(c, axis=1))
        finite = jax.lax.cond(
            jnp.isfinite(total), lambda: jnp.asarray(True), lambda: jnp.all(jnp.isfinite(c))
        )
        return finite, jnp.std(c[:: max(1, c.shape[0] // 256)])

    def input_result(self, cost_finite: jax.Array | None = None) -> RESULTS:
        """The value checks as a result code (for values traced under ``jit``).

        Args:
          cost_finite: whether every cost is finite, if already known (see
            :meth:`cost_summary`); ``None`` computes it.

        Returns:
          ``RESULTS.nonfinite_input`` if ``cost``, ``a``, ``b`` or ``epsilon`` has NaN/inf,
          else ``RESULTS.invalid_input`` if ``ε ≤ 0``, a weight is ``≤ 0`` or the total masses
          differ by more than ``1e-5`` relatively, else ``RESULTS.successful``.
        """
        if cost_finite is None:
            cost_finite = jnp.all(jnp.isfinite(self.cost))
        finite = (
            cost_finite
            & jnp.all(jnp.isfinite(self.a))
            & jnp.all(jnp.isfinite(self.b))
            & jnp.isfinite(self.epsilon)
        )
        sa, sb = jnp.sum(self.a), jnp.sum(self.b)
        valid = (
            (self.epsilon > 0)
            & jnp.all(self.a > 0)
            & jnp.all(self.b > 0)
            & (jnp.abs(sa - sb) <= MASS_RTOL * jnp.maximum(sa, sb))
        )
        code = RESULTS.where(valid, RESULTS.successful, RESULTS.invalid_input)
        return RESULTS.where(finite, code, RESULTS.nonfinite_input)


class Potentials(eqx.Module):
    """Dual potentials ``(f, g)``: ``P_ij = exp((f_i + g_j − C_ij)/ε)`` (ott-jax's convention).

    Args:
      f: ``(n,)`` potential of the rows.
      g: ``(m,)`` potential of the columns.

    Solvers return the representative of the pair with ``Σf = Σg``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import Potentials
      >>> Potentials(jnp.zeros(3), jnp.zeros(2)).f.shape
      (3,)
    """

    f: jax.Array
    g: jax.Array


class OTOutputs(eqx.Module):
    """What the OT solvers compute from the potentials (``Solution.aux``).

    Args:
      plan: the ``(n, m)`` transport plan ``P``.
      transport_cost: ``⟨C, P⟩`` (differentiated through the plan).
      reg_cost: the entropic cost ``⟨C, P⟩ − εH(P)`` as the dual value (differentiated by
        Danskin's theorem; see the module docstring).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import OTOutputs
      >>> out = OTOutputs(jnp.eye(2) / 2, jnp.asarray(0.0), jnp.asarray(0.0))
      >>> float(out.plan.sum())
      1.0
    """

    plan: jax.Array
    transport_cost: jax.Array
    reg_cost: jax.Array


def log_plan(f: jax.Array, g: jax.Array, cost: jax.Array, epsilon: Any) -> jax.Array:
    return (f[:, None] + g[None, :] - cost) / epsilon


def marginal_error(plan: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁``."""
    return jnp.sum(jnp.abs(plan.sum(1) - a)) + jnp.sum(jnp.abs(plan.sum(0) - b))


def normalise_gauge(p: Potentials) -> Potentials:
    """The representative ``(f + t, g − t)`` with ``Σf = Σg``."""
    t = (jnp.sum(p.g) - jnp.sum(p.f)) / (p.f.shape[0] + p.g.shape[0])
    return Potentials(p.f + t, p.g - t)


def optimality(params: Potentials, _solver: Any, problem: OTProblem) -> Potentials:
    """Gauge-fixed first-order conditions (module docstring); zero at the normalised solution."""
    f, g = params.f, params.g
    cost, a, b, epsilon = problem.cost, problem.a, problem.b, problem.epsilon
    plan = jnp.exp(log_plan(f, g, cost, epsilon))
    n, m = cost.shape
    w = jax.lax.stop_gradient(jnp.sum(a)) / (epsilon * max(n, m) * (n + m))
    s = jnp.sum(f) - jnp.sum(g)
    return Potentials(plan.sum(1) - a + w * s, plan.sum(0) - b - w * s)


def zeros(problem: OTProblem) -> Potentials:
    return Potentials(jnp.zeros_like(problem.a), jnp.zeros_like(problem.b))


def check_init(
    owner: str, init_params: Any, problem: OTProblem, *, zeros_if_none: bool = True
) -> Potentials | None:
    """Check ``problem`` and ``init_params``; return the initial potentials in the cost's dtype
    (for ``None``: zeros, or ``None`` with ``zeros_if_none=False``, so that a compiled run makes
    them without a dispatch)."""
    if not isinstance(problem, OTProblem):
        raise TypeError(
            f"{owner}: `problem` must be an OTProblem(cost, a, b, epsilon), got "
            f"{type(problem).__name__}."
        )
    if init_params is None:
        return zeros(problem) if zeros_if_none else None
    if not isinstance(init_params, Potentials):
        raise TypeError(
            f"{owner}: `init_params` must be Potentials(f, g) or None, got "
            f"{type(init_params).__name__}."
        )
    n, m = problem.cost.shape
    if jnp.shape(init_params.f) != (n,) or jnp.shape(init_params.g) != (m,):
        raise ValueError(
            f"{owner}: `init_params` must have f of shape ({n},) and g of shape ({m},), got "
            f"{jnp.shape(init_params.f)} and {jnp.shape(init_params.g)}."
        )
    dt = problem.cost.dtype
    return Potentials(jnp.asarray(init_params.f, dt), jnp.asarray(init_params.g, dt))


def outputs(params: Potentials, problem: OTProblem) -> tuple[OTOutputs, jax.Array]:
    """Plan, costs and the L1 marginal error from the (implicitly differentiated) potentials."""
    cost, a, b, epsilon = problem.cost, problem.a, problem.b, problem.epsilon
    plan = jnp.exp(log_plan(params.f, params.g, cost, epsilon))
    error = marginal_error(plan, a, b)
    fs, gs = jax.lax.stop_gradient((params.f, params.g))
    plan_fixed = jnp.exp(log_plan(fs, gs, cost, epsilon))
    reg_cost = a @ fs + b @ gs - epsilon * (jnp.sum(plan_fixed) - jnp.sum(a))
    aux = OTOutputs(plan, jnp.sum(cost * plan), reg_cost)
    return aux, jax.lax.stop_gradient(error)


def solve_potentials(solve: Any, solver: Any, init_params: Potentials | None, problem: OTProblem):
    """``solve(init_params, solver, problem) -> (potentials, state)``, differentiated implicitly
    through the gauge-fixed :func:`optimality` unless ``solver.implicit_diff`` is off."""
    if init_params is None:
        init_params = zeros(problem)
    if solver.implicit_diff:
        solve = custom_root(
            optimality, solve=solver._backward_solve(), has_aux=True, symmetric=True
        )(solve)
    return solve(init_params, solver, problem)


def run_compiled(
    compiled_run: Any, solver: Any, init_params: Potentials | None, problem: OTProblem
):
    """``compiled_run(solver, init_params, problem, throw)``, with ``throw`` applied here when
    nothing is traced: the check then runs in Python on the result code, and the compiled run
    does not tie it to the plans (two passes over an ``(n, m)`` array).
    """
    if solver.throw and not any_traced((solver, init_params, problem)):
        sol = compiled_run(solver, init_params, problem, False)
        return raise_if_failed(sol, sol.result, solver.messages)
    return compiled_run(solver, init_params, problem, solver.throw)


def finish_ot(
    params: Potentials,
    problem: OTProblem,
    converged: jax.Array,
    tol: Any,
    stats: dict[str, Any],
    *,
    state: Any,
    throw: bool,
    messages: Mapping[str, str],
) -> Solution:
    """Outputs, result code and :class:`~jaxopt_papers.Solution` through ``finish``."""
    aux, error = outputs(params, problem)
    finite = jnp.isfinite(error) & jnp.all(jnp.isfinite(params.f)) & jnp.all(jnp.isfinite(params.g))
    # Converged by the loop's own test, or by the error recomputed here: in float32 the two
    # differ by round-off (~|C|/ε · eps).
    code = RESULTS.where(converged | (error <= tol), RESULTS.successful, RESULTS.max_steps_reached)
    code = RESULTS.where(finite, code, RESULTS.nonfinite)
    # The loop's state already says whether the inputs passed; which check failed is computed
    # only then (a second pass over the cost costs ~4% of a solve at ε = 0.1·mean C).
    input_code = jax.lax.cond(
        state.input_ok, lambda: RESULTS.successful, lambda: problem.input_result()
    )
    code = RESULTS.where(input_code == RESULTS.successful, code, input_code)
    stats = {**stats, "error": error}
    return finish(params, code, stats, state=state, aux=aux, throw=throw, messages=messages)


def input_messages(owner: str) -> dict[str, str]:
    """The messages of the value checks made under ``jit``, naming ``owner``'s arguments."""
    return {
        "invalid_input": (
            f"{owner}: invalid input (checked on traced values): `epsilon` must be > 0, and "
            f"`a` and `b` must be positive with the same total mass (relative difference "
            f"<= {MASS_RTOL:g}; balanced OT)."
        ),
        "nonfinite_input": (
            f"{owner}: `cost`, `a`, `b` or `epsilon` has NaN or inf entries (checked on traced "
            "values)."
        ),
        "nonfinite": (
            f"{owner}: the potentials became non-finite (NaN or inf). In float32 at small "
            "`epsilon` the plan can underflow: use float64 or a larger `epsilon`."
        ),
    }
