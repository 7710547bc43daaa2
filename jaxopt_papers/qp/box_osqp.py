"""BoxOSQP: the OSQP splitting (ADMM) for box-constrained QPs, implicitly differentiable.

Stellato, Banjac, Goulart, Bemporad & Boyd, "OSQP: an operator splitting solver for quadratic
programs", Math. Prog. Comp. 2020 (arXiv 1711.08013); differentiated as in Blondel et al.,
"Efficient and Modular Implicit Differentiation", NeurIPS 2022 (arXiv 2105.15183). Reference
code: jaxopt 0.8.5's ``BoxOSQP``.

Solves ``min_x ½xᵀQx + cᵀx`` subject to ``Ax = z``, ``l ≤ z ≤ u`` (``l = u`` for equalities,
``±inf`` for one-sided rows), ``Q`` positive semidefinite. With the step ``ρ``, the ridge ``σ`` and
the relaxation ``α`` (``momentum``), one ADMM step from ``(x, z, y)`` is

- ``(Q + σI + ρAᵀA) x̄ = σx − c + Aᵀ(ρz − y)``, ``z̄ = Ax̄``;
- ``x⁺ = x + α(x̄ − x)``, ``ẑ = z + α(z̄ − z)``, ``z⁺ = Π_[l,u](ẑ + y/ρ)``, ``y⁺ = y + ρ(ẑ − z⁺)``;
- residuals ``r_p = Ax⁺ − z⁺`` and ``r_d = Qx⁺ + c + Aᵀy⁺``; every ``termination_check_frequency``
  steps ``error = max(‖r_p‖∞, ‖r_d‖∞)`` is compared with ``tol`` and the infeasibility
  certificates are tested on ``δx = x⁺ − x``, ``δy = y⁺ − y``;
- every ``stepsize_updates_frequency`` steps ``ρ ← clip(ρ·√((‖r_p‖∞/‖Ax‖∞) /
  (‖r_d‖∞/max(‖Qx‖∞, ‖Aᵀy‖∞, ‖c‖∞))), rho_min, rho_max)`` and the system is refactorised.

The answer is a :class:`KKTSolution` ``(primal=(x, z), dual_eq=y, dual_ineq=(μ, φ))`` with
``μ = max(y, 0)``, ``φ = max(−y, 0)`` the multipliers of ``z ≤ u`` and ``l ≤ z``. It is
differentiable with respect to ``params_obj = (Q, c)``, ``params_eq = A`` and
``params_ineq = (l, u)`` by implicit differentiation of
:func:`~jaxopt_papers.implicit.box_qp_optimality` (stationarity ``Qx + c + Aᵀy``, feasibility
``Ax − z`` and the box condition ``z − Π_[l,u](z + y)``), plus ``μ − max(y, 0)`` and
``φ − max(−y, 0)``. Gradients are exact at a solution with strict complementarity (an active
row has ``y ≠ 0``) and ``Q`` positive definite on the null space of the active rows of ``A``.

Defaults are jaxopt's: ``sigma=1e-6``, ``momentum=1.6``, ``rho_start=0.1``, ``rho_min=1e-6``,
``rho_max=1e6``, ``stepsize_updates_frequency=10``, ``termination_check_frequency=5``,
``primal_infeasible_tol = dual_infeasible_tol = 1e-3``, ``tol=1e-3`` (absolute, on the
residuals' max norms), ``max_steps=4000``. Use a tight ``tol`` (e.g. ``1e-9`` in float64) when
the gradients matter: they are only as accurate as the solution.

The ``x̄`` system (``eq_qp_solve``): ``"auto"`` (default) is a Cholesky factorisation of the dense
matrix ``Q + σI + ρAᵀA`` when ``Q`` and ``A`` are arrays, recomputed only when ``ρ`` changes, and
warm-started conjugate gradients (lineax ``CG``) when ``matvec_Q`` or ``matvec_A`` is given;
``"cholesky"``, ``"lu"``, ``"cg"`` and ``"cg+jacobi"`` (diagonal preconditioner, dense only) choose.
CG stops at jaxopt's tolerances, ``atol = 0.15·√(‖r_p‖∞‖r_d‖∞)`` and ``rtol = 1e-7·tol`` (floored
at ``100·eps``), in lineax's max-norm test (jaxopt: ``jax.scipy.sparse.linalg.cg``'s 2-norm).

Differences from jaxopt:

- ``eq_qp_solve="auto"``: dense problems are factorised (jaxopt's default is CG, ``"lu"`` on
  request); with CG the iterates agree with jaxopt's to the inner tolerance.
- Infeasibility is reported as ``RESULTS.primal_infeasible``/``RESULTS.dual_infeasible`` (with
  ``throw=True`` a runtime error naming the arguments) and checked by default
  (``check_primal_dual_infeasability=True``; jaxopt checks only with ``jit=False``). The
  certificates are OSQP's: ``‖Aᵀδy‖∞ ≤ ε‖δy‖∞`` and ``uᵀδy₊ + lᵀδy₋ ≤ −ε‖δy‖∞`` (an infinite
  bound in that sum counts as ``+inf``; jaxopt replaces it by 0 and accepts ``≤ +ε‖δy‖∞``), and
  ``‖Qδx‖∞ ≤ ε‖δx‖∞``, ``cᵀδx ≤ −ε‖δx‖∞`` with ``Aδx`` in the recession cone of the box (jaxopt:
  ``cᵀδx ≤ +ε‖δx‖∞``); they are tested only when the residuals have not met ``tol`` and the
  step ``δ`` is non-zero (jaxopt flags a stationary iterate ``δx = 0`` as dual infeasible).
- The ``ρ`` update guards its divisions (``‖Ax‖∞ = 0`` gives NaN in jaxopt).
- The optimality condition is :func:`~jaxopt_papers.implicit.box_qp_optimality` (one multiplier
  per row, the box condition as a projection) instead of jaxopt's complementary slackness
  ``μ(z − u)``, ``φ(l − z)``, whose Jacobian is singular on equality rows (``l = u``); the
  backward system is solved by :class:`~jaxopt_papers.implicit.LinearSolve` (dense LU up to
  ``4096`` unknowns, then GMRES; jaxopt: normal-equation CG at ``1e-5``) and checked.
- ``run(init_params, params_obj, params_eq, params_ineq)`` keeps jaxopt's arguments (``None``
  ``init_params`` starts from ``x = 0``, ``z = Π(A0)``, ``y = 0``) and returns a
  :class:`~jaxopt_papers.Solution`; ``maxiter`` is ``max_steps`` (``maxiter=`` is accepted).
  ``fun=`` (the objective as a function), ``verbose``, ``jit`` and ``unroll`` are not offered:
  pass ``matvec_Q`` instead of ``fun``. Dense mode needs a 1-D ``x`` (a matrix ``Q`` and ``A``);
  with ``matvec_Q``/``matvec_A``, ``x`` and ``z`` may be pytrees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, Solution, result_where
from jaxopt_papers.implicit.linear_solve import LinearSolve, as_linear_solve
from jaxopt_papers.implicit.optimality import box_qp_optimality
from jaxopt_papers.implicit.solver import IterativeSolver

__all__ = ["BoxOSQP", "BoxOSQPState", "KKTSolution"]

UNSOLVED, SOLVED, DUAL_INFEASIBLE, PRIMAL_INFEASIBLE = 0, 1, 2, 3
_EQ_QP_SOLVES = ("auto", "cholesky", "lu", "cg", "cg+jacobi")


class KKTSolution(NamedTuple):
    """Primal and dual solution of a QP (jaxopt's ``KKTSolution``), a named tuple.

    Args:
      primal: :class:`BoxOSQP`: the pair ``(x, z)``; :class:`~jaxopt_papers.qp.OSQP`: ``x``.
      dual_eq: :class:`BoxOSQP`: ``y``, the multipliers of ``Ax = z``;
        :class:`~jaxopt_papers.qp.OSQP`: those of ``Ax = b`` (``None`` without equalities).
      dual_ineq: :class:`BoxOSQP`: ``(μ, φ)``, the multipliers of ``z ≤ u`` and ``l ≤ z``;
        :class:`~jaxopt_papers.qp.OSQP`: those of ``Gx ≤ h`` (``None`` without inequalities).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.qp import KKTSolution
      >>> sol = KKTSolution(jnp.zeros(2), jnp.ones(1), None)
      >>> x, nu, lam = sol  # unpacks like jaxopt's
      >>> x.shape, sol.dual_eq.tolist(), lam is None
      ((2,), [1.0], True)
    """

    primal: Any
    dual_eq: Any
    dual_ineq: Any


class BoxOSQPState(eqx.Module):
    """State of :class:`BoxOSQP`.

    Attributes:
      num_steps: ADMM steps taken.
      error: ``max(‖r_p‖∞, ‖r_d‖∞)`` at the last termination check (``inf`` before).
      status: 0 unsolved, 1 solved, 2 dual infeasible, 3 primal infeasible (jaxopt's numbers).
      primal_residuals, dual_residuals: ``Ax − z`` and ``Qx + c + Aᵀy`` at the current iterate.
      rho: the current ADMM step ``ρ``.
      factor: the factorisation of ``Q + σI + ρAᵀA`` (dense modes), the inverse Jacobi diagonal
        (``"cg+jacobi"``) or ``None``.
      x_bar: the last ``x̄`` (the warm start of CG).
    """

    num_steps: jax.Array
    error: jax.Array
    status: jax.Array
    primal_residuals: Any
    dual_residuals: Any
    rho: jax.Array
    factor: Any
    x_bar: Any


def _tmap(fn: Callable, *trees: Any) -> Any:
    return jax.tree.map(fn, *trees)


def _inf_norm(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.max(jnp.stack([jnp.max(jnp.abs(v), initial=0.0) for v in leaves]))


def _clip(v: Any, lower: Any, upper: Any) -> Any:
    return _tmap(lambda a, lo, hi: jnp.minimum(jnp.maximum(a, lo), hi), v, lower, upper)


def _shape(x: Any) -> Any:
    return jax.tree.map(lambda v: tuple(jnp.shape(v)), x)


class BoxOSQP(IterativeSolver):
    """OSQP's ADMM for ``min ½xᵀQx + cᵀx`` s.t. ``Ax = z``, ``l ≤ z ≤ u`` (see the module doc).

    Args:
      matvec_Q: ``matvec_Q(params_Q, x) -> Qx`` (default: ``params_Q @ x``, a dense matrix).
      matvec_A: ``matvec_A(params_A, x) -> Ax`` (default: ``params_A @ x``); ``Aᵀ`` comes from
        its transpose.
      check_primal_dual_infeasability: test the infeasibility certificates (jaxopt's spelling).
      sigma: ridge ``σ > 0`` of the ``x̄`` system.
      momentum: relaxation ``α`` in ``(0, 2)``.
      eq_qp_solve: ``"auto"``, ``"cholesky"``, ``"lu"``, ``"cg"`` or ``"cg+jacobi"``.
      rho_start, rho_min, rho_max: initial ADMM step and its bounds.
      stepsize_updates_frequency: steps between updates of ``ρ``.
      primal_infeasible_tol, dual_infeasible_tol: relative tolerances of the certificates.
      max_steps: iteration cap (jaxopt's ``maxiter``).
      tol: absolute tolerance on ``max(‖Ax − z‖∞, ‖Qx + c + Aᵀy‖∞)``.
      termination_check_frequency: steps between termination checks.
      implicit_diff: implicit differentiation (``True``) or unrolled ``lax.scan``.
      linear_solve: the backward solve (``None``: :class:`~jaxopt_papers.implicit.LinearSolve`
        with dense LU up to 4096 unknowns).
      throw: raise on failure, or return the result code (``False``, for ``vmap``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.qp import BoxOSQP
      >>> # min ½‖x‖² − 2x₀ − 2x₁  s.t.  x₀ + x₁ ≤ 1,  0 ≤ x ≤ 1
      >>> Q, c = jnp.eye(2), jnp.array([-2.0, -2.0])
      >>> A = jnp.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
      >>> l, u = jnp.array([-jnp.inf, 0.0, 0.0]), jnp.array([1.0, 1.0, 1.0])
      >>> sol = BoxOSQP(tol=1e-8).run(None, (Q, c), A, (l, u))
      >>> x, z = sol.params.primal
      >>> [round(v, 4) for v in x.tolist()], round(float(sol.params.dual_eq[0]), 4)
      ([0.5, 0.5], 1.5)
    """

    matvec_Q: Callable | None = eqx.field(static=True, default=None)
    matvec_A: Callable | None = eqx.field(static=True, default=None)
    check_primal_dual_infeasability: bool = eqx.field(static=True, default=True)
    sigma: float = 1e-6
    momentum: float = 1.6
    eq_qp_solve: str = eqx.field(static=True, default="auto")
    rho_start: float = 0.1
    rho_min: float = 1e-6
    rho_max: float = 1e6
    stepsize_updates_frequency: int = eqx.field(static=True, default=10)
    primal_infeasible_tol: float = 1e-3
    dual_infeasible_tol: float = 1e-3
    max_steps: int = eqx.field(static=True, default=4000)
    tol: float = 1e-3
    termination_check_frequency: int = eqx.field(static=True, default=5)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    UNSOLVED: ClassVar[int] = UNSOLVED
    SOLVED: ClassVar[int] = SOLVED
    DUAL_INFEASIBLE: ClassVar[int] = DUAL_INFEASIBLE
    PRIMAL_INFEASIBLE: ClassVar[int] = PRIMAL_INFEASIBLE

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "OSQP did not reach `tol` within `max_steps` ADMM iterations. Increase `max_steps`, "
            "loosen `tol`, or rescale the problem so that `Q`, `c`, `A` and the bounds have "
            "similar magnitudes (ADMM is slow on badly scaled problems). Pass `throw=False` to "
            "get the last iterate with this result code instead."
        ),
        "primal_infeasible": (
            "OSQP: the problem is primal infeasible: no x satisfies the constraints (`l <= Ax "
            "<= u` from `params_eq` and `params_ineq`; for OSQP `Ax = b` and `Gx <= h`). Check "
            "the bounds and the constraint matrix. The certificate's tolerance is "
            "`primal_infeasible_tol`; `check_primal_dual_infeasability=False` turns the test "
            "off."
        ),
        "dual_infeasible": (
            "OSQP: the problem is dual infeasible: the objective is unbounded below on the "
            "feasible set (`Q` is singular along a direction d with `c·d < 0` that the "
            "constraints do not block). Bound the variables (`params_ineq`) or make `Q` "
            "positive definite. The certificate's tolerance is `dual_infeasible_tol`; "
            "`check_primal_dual_infeasability=False` turns the test off."
        ),
        "nonfinite": (
            "OSQP produced non-finite values (NaN or inf). Check `params_obj`, `params_eq`, "
            "`params_ineq` and `init_params` for NaN (infinite bounds are fine) and that `Q` is "
            "positive semidefinite."
        ),
        "invalid_input": (
            "OSQP: an argument failed a check on its value: the bounds `params_ineq = (l, u)` "
            "must satisfy `l <= u` and not be NaN (for OSQP: `h`/`b` not NaN), and `tol`, "
            "`sigma`, `rho_start` must be positive."
        ),
    }

    def __check_init__(self) -> None:
        owner = type(self).__name__
        for name in ("matvec_Q", "matvec_A"):
            fn = getattr(self, name)
            if fn is not None and not callable(fn):
                raise TypeError(
                    f"{owner}: `{name}` must be None or a callable "
                    f"{name}(params, x), got {type(fn).__name__}."
                )
        V.check_static_choice(owner, "eq_qp_solve", self.eq_qp_solve, _EQ_QP_SOLVES)
        dense_only = self.eq_qp_solve in ("cholesky", "lu", "cg+jacobi")
        if dense_only and not self._dense():
            raise ValueError(
                f"{owner}: `eq_qp_solve={self.eq_qp_solve!r}` needs dense matrices; with "
                "`matvec_Q`/`matvec_A` use 'cg' (or 'auto')."
            )
        V.check_real(owner, "sigma", self.sigma, low=0.0, low_open=True)
        V.check_real(owner, "momentum", self.momentum, low=0.0, high=2.0, low_open=True,
                     high_open=True)  # fmt: skip
        V.check_real(owner, "rho_start", self.rho_start, low=0.0, low_open=True)
        V.check_real(owner, "rho_min", self.rho_min, low=0.0, low_open=True)
        V.check_real(owner, "rho_max", self.rho_max, low=0.0, low_open=True)
        V.check_real(owner, "tol", self.tol, low=0.0)
        V.check_real(owner, "primal_infeasible_tol", self.primal_infeasible_tol, low=0.0)
        V.check_real(owner, "dual_infeasible_tol", self.dual_infeasible_tol, low=0.0)
        V.check_int(owner, "max_steps", self.max_steps, low=1)
        V.check_int(owner, "stepsize_updates_frequency", self.stepsize_updates_frequency, low=1)
        V.check_int(owner, "termination_check_frequency", self.termination_check_frequency, low=1)
        V.check_flag(owner, "check_primal_dual_infeasability", self.check_primal_dual_infeasability)

    # ------------------------------------------------------------------ operators

    def _dense(self) -> bool:
        return self.matvec_Q is None and self.matvec_A is None

    def _method(self) -> str:
        if self.eq_qp_solve == "auto":
            return "cholesky" if self._dense() else "cg"
        return self.eq_qp_solve

    def _apply_A(self, params_A: Any, x: Any) -> Any:
        if self.matvec_A is None:
            return params_A @ x
        return self.matvec_A(params_A, x)

    def _apply_Q(self, params_Q: Any, x: Any) -> Any:
        if self.matvec_Q is None:
            return params_Q @ x
        return self.matvec_Q(params_Q, x)

    def _A_is_matrix(self) -> bool:
        return self.matvec_A is None

    def _dense_A(self, params_A: Any) -> jax.Array:
        return params_A

    def _operators(self, params_obj: Any, params_eq: Any, x: Any) -> tuple:
        params_Q, c = params_obj

        def Q(v: Any) -> Any:
            return self._apply_Q(params_Q, v)

        def A(v: Any) -> Any:
            return self._apply_A(params_eq, v)

        if self._dense():
            A_mat = self._dense_A(params_eq)

            def AT(w: Any) -> Any:
                return A_mat.T @ w
        else:
            transpose = jax.linear_transpose(A, x)

            def AT(w: Any) -> Any:
                return transpose(w)[0]

        return Q, c, A, AT

    # ------------------------------------------------------------------ the x̄ system

    def _factor(self, params_obj: Any, params_eq: Any, rho: jax.Array) -> Any:
        method = self._method()
        if method == "cg":
            return None
        Q, A = params_obj[0], self._dense_A(params_eq)
        if method == "cg+jacobi":
            diag = jnp.diagonal(Q) + self.sigma + rho * jnp.sum(A * A, axis=0)
            return 1.0 / diag
        M = Q + self.sigma * jnp.eye(Q.shape[0], dtype=Q.dtype) + rho * (A.T @ A)
        if method == "cholesky":
            return jax.scipy.linalg.cholesky(M, lower=True)
        return jax.scipy.linalg.lu_factor(M)

    def _solve_x_bar(self, b: Any, state: BoxOSQPState, ops: tuple) -> Any:
        method = self._method()
        if method == "cholesky":
            return jax.scipy.linalg.cho_solve((state.factor, True), b)
        if method == "lu":
            return jax.scipy.linalg.lu_solve(state.factor, b)
        Q, _, A, AT = ops
        rho, sigma = state.rho, self.sigma

        def matvec(v: Any) -> Any:
            return _tmap(lambda q, v_, a: q + sigma * v_ + rho * a, Q(v), v, AT(A(v)))

        dtype = state.error.dtype
        # The tolerances and the warm start carry no derivative (lineax would reject tangents
        # on them in the unrolled mode, and the answer does not depend on them).
        atol = 0.15 * jnp.sqrt(_inf_norm(state.primal_residuals) * _inf_norm(state.dual_residuals))
        atol = jax.lax.stop_gradient(atol)
        rtol = jnp.maximum(1e-7 * jnp.asarray(self.tol, dtype), 100 * jnp.finfo(dtype).eps)
        rtol = jax.lax.stop_gradient(rtol)
        tags = (lx.symmetric_tag, lx.positive_semidefinite_tag)
        operator = lx.FunctionLinearOperator(matvec, jax.eval_shape(lambda: b), tags)
        options = {"y0": jax.lax.stop_gradient(state.x_bar)}
        if method == "cg+jacobi":
            precond = lx.DiagonalLinearOperator(state.factor)
            options["preconditioner"] = lx.TaggedLinearOperator(precond, tags)
        solver = lx.CG(rtol=rtol, atol=atol, stabilise_every=None)
        return lx.linear_solve(operator, b, solver, options=options, throw=False).value

    # ------------------------------------------------------------------ checks

    def _check_call(self, init_params: Any, params_obj: Any, params_eq: Any, params_ineq: Any):
        """Trace-time checks of ``run``'s arguments (shapes and structures, named)."""
        owner = type(self).__name__
        if not (isinstance(params_obj, (tuple, list)) and len(params_obj) == 2):
            raise TypeError(
                f"{owner}: `params_obj` must be a pair (Q, c) (or (params_Q, c) with "
                f"`matvec_Q`), got {type(params_obj).__name__}."
            )
        if not (isinstance(params_ineq, (tuple, list)) and len(params_ineq) == 2):
            raise TypeError(
                f"{owner}: `params_ineq` must be a pair (l, u) of bounds, got "
                f"{type(params_ineq).__name__}."
            )
        params_Q, c = params_obj
        V.check_float_leaves(owner, "params_obj[1] (c)", c)
        if self.matvec_Q is None:
            if jnp.ndim(c) != 1:
                raise ValueError(
                    f"{owner}: with a dense `Q`, `c` must be a 1-D array (n,), got shape "
                    f"{jnp.shape(c)}; pass `matvec_Q` for pytree variables."
                )
            n = jnp.shape(c)[0]
            if jnp.shape(params_Q) != (n, n):
                raise ValueError(
                    f"{owner}: `params_obj[0]` (Q) must have shape (n, n) = ({n}, {n}) to match "
                    f"`c` of shape ({n},), got {jnp.shape(params_Q)}."
                )
        x_struct = jax.eval_shape(lambda: c)
        if self._A_is_matrix():
            n = jnp.shape(c)[0] if jnp.ndim(c) == 1 else None
            if jnp.ndim(params_eq) != 2 or (n is not None and jnp.shape(params_eq)[1] != n):
                raise ValueError(
                    f"{owner}: `params_eq` (A) must be a matrix of shape (m, n) with n = "
                    f"{n} (the size of `c`), got shape {jnp.shape(params_eq)}."
                )
        try:
            z_struct = jax.eval_shape(lambda p, x: self._apply_A(p, x), params_eq, x_struct)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{owner}: `params_eq` could not be applied to x of shapes {_shape(x_struct)} "
                f"(the shapes of `c`). The error was: {err}"
            ) from err
        want = _shape(z_struct)
        for name, bound in zip(("l", "u"), params_ineq, strict=True):
            if jax.tree.structure(bound) != jax.tree.structure(z_struct) or _shape(bound) != want:
                raise ValueError(
                    f"{owner}: `params_ineq` bound `{name}` must have the structure and shapes "
                    f"of Ax ({want}), got {_shape(bound)}."
                )
        if init_params is not None:
            if not isinstance(init_params, KKTSolution):
                raise TypeError(
                    f"{owner}: `init_params` must be None or a KKTSolution((x, z), y, (mu, "
                    f"phi)), got {type(init_params).__name__}."
                )
            x0, z0 = init_params.primal
            got = (_shape(x0), _shape(z0), _shape(init_params.dual_eq))
            if got != (_shape(x_struct), want, want):
                raise ValueError(
                    f"{owner}: `init_params` must have x of shapes {_shape(x_struct)} and z, y of "
                    f"shapes {want}, got {got}."
                )

    def _inputs_valid(self, init_params: Any, params_obj: Any, params_eq: Any, params_ineq: Any):
        lower, upper = params_ineq
        ok = _tmap(lambda lo, hi: jnp.all(lo <= hi), lower, upper)  # False for NaN bounds
        preds = [*jax.tree.leaves(ok), jnp.asarray(self.tol) >= 0, jnp.asarray(self.sigma) > 0,
                 jnp.asarray(self.rho_start) > 0]  # fmt: skip
        return jnp.all(jnp.stack(preds))

    def _backward_solve(self) -> LinearSolve:
        if self.linear_solve is None:
            return LinearSolve(dense_max_size=4096, throw=self.throw)
        return as_linear_solve(self.linear_solve, owner=type(self).__name__)

    # ------------------------------------------------------------------ init / step

    def init_params(
        self, init_x: Any, params_obj: Any, params_eq: Any, params_ineq: Any
    ) -> KKTSolution:
        """The default start of :meth:`run` (jaxopt's ``init_params``).

        Args:
          init_x: the initial ``x``, or ``None`` for zeros shaped like ``c``.
          params_obj, params_eq, params_ineq: the problem, as for :meth:`run`.

        Returns:
          ``KKTSolution((x, Π_[l,u](Ax)), 0, (0, 0))``.
        """
        x = _tmap(jnp.zeros_like, params_obj[1]) if init_x is None else init_x
        z = _clip(self._apply_A(params_eq, x), *params_ineq)
        y = _tmap(jnp.zeros_like, z)
        return KKTSolution((x, z), y, (y, y))

    def init(
        self, init_params: KKTSolution, params_obj: Any, params_eq: Any, params_ineq: Any
    ) -> BoxOSQPState:
        """The state before the first ADMM step (jaxopt's ``init_state``).

        Args:
          init_params: the starting :class:`KKTSolution` (e.g. from :meth:`init_params`).
          params_obj, params_eq, params_ineq: the problem, as for :meth:`run`.

        Returns:
          A :class:`BoxOSQPState`: residuals at the start, ``ρ = rho_start`` and the
          factorisation of ``Q + σI + ρAᵀA`` (dense modes), ``error = inf``.
        """
        (x, z), y = init_params.primal, init_params.dual_eq
        dtype = jnp.result_type(*jax.tree.leaves(params_obj[1]))
        ops = self._operators(params_obj, params_eq, x)
        Q, c, A, AT = ops
        r_p = _tmap(jnp.subtract, A(x), z)
        r_d = _tmap(lambda a, b, d: a + b + d, Q(x), c, AT(y))
        rho = jnp.asarray(self.rho_start, dtype)
        return BoxOSQPState(
            num_steps=jnp.asarray(0, jnp.int32),
            error=jnp.asarray(jnp.inf, dtype),
            status=jnp.asarray(UNSOLVED, jnp.int32),
            primal_residuals=r_p,
            dual_residuals=r_d,
            rho=rho,
            factor=self._factor(params_obj, params_eq, rho),
            x_bar=x,
        )

    def _infeasibility(
        self, status: jax.Array, dx: Any, dy: Any, ops: tuple, params_ineq: Any
    ) -> jax.Array:
        Q, c, A, AT = ops
        lower, upper = params_ineq
        tiny = jnp.finfo(jnp.result_type(*jax.tree.leaves(c))).tiny
        # Primal: Aᵀδy ≈ 0 and uᵀδy₊ + lᵀδy₋ < 0 (an infinite bound met by δy counts as +inf).
        ndy = _inf_norm(dy)
        eps_p = self.primal_infeasible_tol * ndy
        support = sum(
            jnp.sum(jnp.where(d > 0, hi * d, 0.0) + jnp.where(d < 0, lo * d, 0.0))
            for d, lo, hi in zip(
                jax.tree.leaves(dy), jax.tree.leaves(lower), jax.tree.leaves(upper), strict=True
            )
        )
        primal = (ndy > tiny) & (_inf_norm(AT(dy)) <= eps_p) & (support <= -eps_p)
        # Dual: Qδx ≈ 0, cᵀδx < 0 and Aδx in the recession cone of [l, u].
        ndx = _inf_norm(dx)
        eps_d = self.dual_infeasible_tol * ndx
        Adx = A(dx)
        cone = jax.tree.leaves(
            _tmap(
                lambda a, lo, hi: jnp.all(
                    (jnp.isinf(lo) | (a >= -eps_d)) & (jnp.isinf(hi) | (a <= eps_d))
                ),
                Adx, lower, upper,
            )
        )  # fmt: skip
        dual = (ndx > tiny) & (_inf_norm(Q(dx)) <= eps_d) & (optax.tree.vdot(c, dx) <= -eps_d)
        dual = dual & jnp.all(jnp.stack(cone))
        unsolved = status == UNSOLVED
        status = jnp.where(unsolved & dual, DUAL_INFEASIBLE, status)
        return jnp.where(unsolved & primal, PRIMAL_INFEASIBLE, status).astype(jnp.int32)

    def step(
        self,
        params: KKTSolution,
        state: BoxOSQPState,
        params_obj: Any,
        params_eq: Any,
        params_ineq: Any,
    ) -> tuple[KKTSolution, BoxOSQPState]:
        """One ADMM step (see the module docstring; jaxopt's ``update``).

        Args:
          params: the current :class:`KKTSolution` ``((x, z), y, (μ, φ))``.
          state: the current :class:`BoxOSQPState`.
          params_obj, params_eq, params_ineq: the problem, as for :meth:`run`.

        Returns:
          The next ``(params, state)``; every ``stepsize_updates_frequency`` steps ``ρ`` is
          updated (and the system refactorised), every ``termination_check_frequency`` steps
          ``error`` and ``status`` are.
        """
        (x, z), y = params.primal, params.dual_eq
        lower, upper = params_ineq
        ops = self._operators(params_obj, params_eq, x)
        Q, c, A, AT = ops
        rho, alpha, sigma = state.rho, self.momentum, self.sigma
        rhs = _tmap(lambda xx, cc, a: sigma * xx - cc + a, x, c,
                    AT(_tmap(lambda zz, yy: rho * zz - yy, z, y)))  # fmt: skip
        x_bar = self._solve_x_bar(rhs, state, ops)
        z_bar = A(x_bar)
        x_new = _tmap(lambda a, b: a + alpha * (b - a), x, x_bar)
        z_hat = _tmap(lambda a, b: a + alpha * (b - a), z, z_bar)
        z_new = _clip(_tmap(lambda a, b: a + b / rho, z_hat, y), lower, upper)
        y_new = _tmap(lambda a, b, d: a + rho * (b - d), y, z_hat, z_new)
        Ax, ATy, Qx = A(x_new), AT(y_new), Q(x_new)
        r_p = _tmap(jnp.subtract, Ax, z_new)
        r_d = _tmap(lambda a, b, d: a + b + d, Qx, c, ATy)
        norm_p, norm_d = _inf_norm(r_p), _inf_norm(r_d)

        def update_rho(_: None) -> tuple[jax.Array, Any]:
            tiny = jnp.finfo(rho.dtype).tiny
            primal_coef = norm_p / jnp.maximum(_inf_norm(Ax), tiny)
            scale = jnp.maximum(_inf_norm(Qx), jnp.maximum(_inf_norm(ATy), _inf_norm(c)))
            dual_coef = norm_d / jnp.maximum(scale, tiny)
            coef = jnp.sqrt(primal_coef / (dual_coef + jnp.finfo(rho.dtype).eps))
            new_rho = jnp.clip(rho * coef, self.rho_min, self.rho_max).astype(rho.dtype)
            return new_rho, self._factor(params_obj, params_eq, new_rho)

        new_rho, factor = jax.lax.cond(
            state.num_steps % self.stepsize_updates_frequency == 0,
            update_rho,
            lambda _: (rho, state.factor),
            None,
        )

        def check(_: None) -> tuple[jax.Array, jax.Array]:
            error = jnp.maximum(norm_p, norm_d).astype(state.error.dtype)
            status = jnp.where(error <= self.tol, SOLVED, UNSOLVED).astype(jnp.int32)
            if self.check_primal_dual_infeasability:
                dx = _tmap(jnp.subtract, x_new, x)
                dy = _tmap(jnp.subtract, y_new, y)
                status = self._infeasibility(status, dx, dy, ops, params_ineq)
            return error, status

        error, status = jax.lax.cond(
            state.num_steps % self.termination_check_frequency == 0,
            check,
            lambda _: (state.error, state.status),
            None,
        )
        mu = _tmap(lambda v: jnp.where(v >= 0, v, 0.0), y_new)
        phi = _tmap(lambda v: jnp.maximum(-v, 0.0), y_new)
        new_state = BoxOSQPState(
            num_steps=state.num_steps + 1,
            error=error,
            status=status,
            primal_residuals=r_p,
            dual_residuals=r_d,
            rho=new_rho,
            factor=factor,
            x_bar=x_bar,
        )
        return KKTSolution((x_new, z_new), y_new, (mu, phi)), new_state

    def optimality_fn(
        self, params: KKTSolution, params_obj: Any, params_eq: Any, params_ineq: Any
    ) -> KKTSolution:
        """:func:`~jaxopt_papers.implicit.box_qp_optimality`, plus ``μ − max(y, 0)`` and
        ``φ − max(−y, 0)``; zero exactly at a solution."""
        F = box_qp_optimality(self._apply_Q, self._apply_A)
        (rx, rz), ry = F((params.primal, params.dual_eq), params_obj, params_eq, params_ineq)
        mu, phi = params.dual_ineq
        y = params.dual_eq
        r_mu = _tmap(lambda m, v: m - jnp.where(v >= 0, v, 0.0), mu, y)
        r_phi = _tmap(lambda p, v: p - jnp.maximum(-v, 0.0), phi, y)
        return KKTSolution((rx, rz), ry, (r_mu, r_phi))

    def _continue(self, state: BoxOSQPState) -> jax.Array:
        infeasible = (state.status == PRIMAL_INFEASIBLE) | (state.status == DUAL_INFEASIBLE)
        return super()._continue(state) & ~infeasible

    # ------------------------------------------------------------------ run

    def _result(self, params: Any, state: BoxOSQPState) -> RESULTS:
        result = super()._result(params, state)
        result = result_where(state.status == PRIMAL_INFEASIBLE, RESULTS.primal_infeasible, result)
        return result_where(state.status == DUAL_INFEASIBLE, RESULTS.dual_infeasible, result)

    def _stats(self, state: BoxOSQPState) -> dict[str, Any]:
        return {
            **super()._stats(state),
            "primal_residual": _inf_norm(state.primal_residuals),
            "dual_residual": _inf_norm(state.dual_residuals),
            "rho": state.rho,
        }

    def run(
        self,
        init_params: KKTSolution | None = None,
        params_obj: Any = None,
        params_eq: Any = None,
        params_ineq: Any = None,
    ) -> Solution:
        """Solve the QP; differentiable in ``params_obj``, ``params_eq`` and ``params_ineq``.

        Args:
          init_params: a :class:`KKTSolution` ``((x, z), y, (μ, φ))`` to warm start from, or
            ``None`` (see :meth:`init_params`).
          params_obj: ``(Q, c)``, or ``(params_Q, c)`` with ``matvec_Q``.
          params_eq: ``A``, or ``params_A`` with ``matvec_A``.
          params_ineq: ``(l, u)``, shaped like ``Ax`` (``-inf``/``inf`` for free sides).

        Returns:
          A :class:`~jaxopt_papers.Solution` whose ``params`` is a :class:`KKTSolution` and whose
          ``stats`` has ``num_steps``, ``error``, ``primal_residual``, ``dual_residual`` and
          ``rho``.
        """
        owner = type(self).__name__
        for name, value in (("params_obj", params_obj), ("params_eq", params_eq),
                            ("params_ineq", params_ineq)):  # fmt: skip
            if value is None:
                raise TypeError(f"{owner}.run: `{name}` is required.")
        params_ineq = tuple(params_ineq) if isinstance(params_ineq, list) else params_ineq
        params_obj = tuple(params_obj) if isinstance(params_obj, list) else params_obj
        self._check_call(init_params, params_obj, params_eq, params_ineq)
        dtype = jnp.result_type(*jax.tree.leaves(params_obj[1]))
        params_ineq = jax.tree.map(lambda b: jnp.asarray(b, dtype), params_ineq)
        if init_params is None:
            init_params = self.init_params(None, params_obj, params_eq, params_ineq)
        return super().run(init_params, params_obj, params_eq, params_ineq)
