"""The linear solve of implicit differentiation: pluggable, checked, and reporting its residual.

Implicit differentiation of a root ``F(x*, θ) = 0`` needs one linear solve per derivative:
``A ẋ = −B θ̇`` (forward mode) or ``Aᵀ u = −v`` (reverse mode), with ``A = ∂F/∂x`` and
``B = ∂F/∂θ`` available only as matrix-free products. :class:`LinearSolve` says how that system
is solved and checks the answer.

Solvers (``solver=``):

- ``"auto"`` (default): dense LU when the unknown has at most ``dense_max_size`` entries (exact,
  and on small problems faster than any Krylov method), otherwise CG when ``A`` is declared
  symmetric positive definite (``symmetric=True``, e.g. the Hessian of a smooth objective) and
  GMRES when it is not;
- ``"cg"``, ``"normal_cg"`` (jaxopt's default), ``"gmres"``, ``"bicgstab"``, ``"lu"``, ``"qr"``,
  ``"svd"`` (minimum-norm answer for singular systems): the lineax solver of that name;
- any ``lineax.AbstractLinearSolver`` instance;
- any jaxopt-style callable ``solve(matvec, b) -> x`` (for example
  ``functools.partial(jaxopt.linear_solve.solve_cg, tol=1e-10)``): the migration path, and the hook
  for the recycling Krylov solver. A callable may also return ``(x, stats)`` with a dict whose
  ``success``/``num_steps`` entries are used and whose other entries (e.g. the recycle state of
  :class:`jaxopt_papers.linear.RecyclingSolve`) are passed on in the stats of ``root_vjp``/
  ``root_jvp``.

``ridge`` solves ``(A + ridge·I) x = b`` instead (for singular or nearly singular ``A``).

**Checking.** The answer is accepted when the solver reports success (lineax solvers) and the
relative residual ``‖(A + ridge·I)x − b‖₂ / ‖b‖₂`` is finite and at most ``max_residual``
(default ``1e-4`` in float64, ``1e-2`` in lower precision: a safety net against singular
systems and solvers that report nothing; the accuracy itself is set by ``rtol``). A rejected
answer raises a runtime error saying what to change when ``throw=True``; with ``throw=False``
it is replaced by NaN, so a failed backward solve can never pass for a gradient. The outcome is
reported as a :class:`~jaxopt_papers.RESULTS` code in ``stats["result"]``: lineax's own code when
lineax failed, ``inaccurate`` when the residual check rejected the answer, ``nonfinite`` for
NaN/inf.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxopt_papers.implicit import LinearSolve
  >>> A = jnp.array([[4.0, 1.0], [1.0, 3.0]])
  >>> x, stats = LinearSolve()(lambda u: A @ u, jnp.array([1.0, 2.0]))
  >>> bool(jnp.allclose(A @ x, jnp.array([1.0, 2.0]), atol=1e-5)), bool(stats["success"])
  (True, True)

Differences from the reference code (jaxopt 0.8.5 ``linear_solve.py``): the default is not
normal-equation CG at ``tol=1e-5`` (which squares the condition number and limits Jacobians to
about 1e-5) but dense LU for small systems and CG/GMRES at ``rtol=1e-10`` (float64) otherwise;
lineax does the solving; every answer is checked; ``ridge`` applies to every solver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, as_results, raise_if_failed

__all__ = ["LinearSolve", "as_linear_solve"]

_ITERATIVE = (lx.CG, lx.GMRES, lx.BiCGStab, lx.Normal)

_NAMED = ("auto", "cg", "normal_cg", "gmres", "bicgstab", "lu", "qr", "svd")

_FAILURE = (
    "The linear solve of implicit differentiation (A u = b with A = ∂F/∂x, the Jacobian of the "
    "optimality condition at the solution) failed: the solver did not converge or the residual "
    "is too large or not finite. Try, in this order: solve the forward problem more accurately "
    "(smaller `tol`, larger `max_steps`), since A is only meaningful at a true solution; pass "
    "`LinearSolve(ridge=...)` if A is singular (collinear features, a degenerate solution, a "
    "gauge freedom) or `solver='svd'` for the minimum-norm answer; raise the backward "
    "`max_steps` or use a dense `solver='lu'` for ill-conditioned systems."
)


_MESSAGES = {
    name: _FAILURE
    for name in ("max_steps_reached", "singular", "breakdown", "stagnation", "conlim",
                 "nonfinite_input", "nonfinite", "inaccurate")
}  # fmt: skip


def _result_dtype(b: Any) -> np.dtype:
    leaves = jax.tree.leaves(b)
    return jnp.result_type(*leaves) if leaves else np.dtype(np.float32)


class LinearSolve(eqx.Module):
    """How the implicit-differentiation system ``A u = b`` is solved and checked.

    Args:
    ``"auto"`` (the default) is dense LU up to ``dense_max_size`` unknowns, else CG when the
    caller declares ``A`` symmetric positive definite and GMRES otherwise. Every answer is
    checked: the relative residual ``‖(A + ridge·I)u − b‖₂ / ‖b‖₂`` must be finite and at most
    ``max_residual``. jaxopt's default is normal-equation CG at ``tol=1e-5``
    (``solver="normal_cg"`` here), which squares the condition number.

    Args:
      solver: ``"auto"``, a lineax solver name (``"cg"``, ``"normal_cg"``, ``"gmres"``,
        ``"bicgstab"``, ``"lu"``, ``"qr"``, ``"svd"``), a ``lineax.AbstractLinearSolver``, or a
        jaxopt-style callable ``solve(matvec, b) -> x`` (or ``-> (x, stats)``).
      rtol: relative tolerance of iterative solvers (lineax's scaled max-norm test); ``None``:
        ``1e-10`` in float64 and ``1e-5`` otherwise.
      atol: absolute tolerance of iterative solvers; ``None``: ``rtol·max|b|``.
      max_steps: iteration cap of iterative solvers (``None``: lineax's default, 10·n).
      ridge: solve ``(A + ridge·I) u = b`` (for singular or nearly singular ``A``).
      dense_max_size: ``"auto"`` uses dense LU up to this many unknowns.
      max_residual: largest accepted relative residual (``None``: 1e-4 in float64, 1e-2 else).
      throw: raise a runtime error on failure (``True``) or return NaN (``False``, for ``vmap``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.implicit import LinearSolve, custom_root
      >>> A = jnp.array([[4.0, 1.0], [1.0, 3.0]])
      >>> u, stats = LinearSolve("cg")(lambda v: A @ v, jnp.ones(2), symmetric=True)
      >>> [round(float(v), 4) for v in u], bool(stats["success"])  # A⁻¹(1, 1) = (2, 3) / 11
      ([0.1818, 0.2727], True)
      >>> F = lambda x, a: x**3 - a                  # the backward solve of a custom_root
      >>> cbrt = custom_root(F, solve=LinearSolve("lu"))(lambda init, a: jnp.cbrt(a))
      >>> round(float(jax.grad(cbrt, argnums=1)(0.0, 8.0)), 6)  # 1 / (3 a^(2/3))
      0.083333
    """

    solver: Any = "auto"
    rtol: float | None = None
    atol: float | None = None
    max_steps: int | None = eqx.field(static=True, default=None)
    ridge: float = 0.0
    dense_max_size: int = eqx.field(static=True, default=256)
    max_residual: float | None = None
    throw: bool = eqx.field(static=True, default=True)

    def __check_init__(self) -> None:
        s = self.solver
        if isinstance(s, str):
            if s not in _NAMED:
                raise ValueError(
                    f"LinearSolve: `solver` must be one of {_NAMED}, a lineax solver or a "
                    f"callable solve(matvec, b); got {s!r}."
                )
        elif not (isinstance(s, lx.AbstractLinearSolver) or callable(s)):
            raise TypeError(
                "LinearSolve: `solver` must be a name, a lineax.AbstractLinearSolver or a "
                f"callable solve(matvec, b) -> x; got {type(s).__name__}."
            )
        for name in ("rtol", "atol", "max_residual", "ridge"):
            if getattr(self, name) is not None:
                V.check_real("LinearSolve", name, getattr(self, name), low=0.0)
        if self.max_steps is not None:
            V.check_int("LinearSolve", "max_steps", self.max_steps, low=1)

    def _tolerances(self, dtype: np.dtype) -> tuple[float, float, float]:
        wide = jnp.finfo(dtype).bits >= 64
        rtol = (1e-10 if wide else 1e-5) if self.rtol is None else self.rtol
        atol = 0.0 if self.atol is None else self.atol
        max_residual = (1e-4 if wide else 1e-2) if self.max_residual is None else self.max_residual
        return rtol, atol, max_residual

    def _lineax_solver(self, b: Any, size: int, dtype: np.dtype, symmetric: bool) -> Any:
        s = self.solver
        if not isinstance(s, str):
            return s
        if s == "auto":
            s = "lu" if size <= self.dense_max_size else ("cg" if symmetric else "gmres")
        rtol, atol, _ = self._tolerances(dtype)
        if self.atol is None:
            # Relative to the right-hand side: with atol = 0, lineax's CG can miss an exact
            # convergence (the next step divides by ~0) and report max_steps_reached.
            atol = rtol * jnp.max(jnp.stack([jnp.max(jnp.abs(v)) for v in jax.tree.leaves(b)]))
        kw = {"rtol": rtol, "atol": atol, "max_steps": self.max_steps}
        return {
            # No periodic exact-residual recompute (lineax's default every 10 steps costs 10%
            # more products; the backward systems converge in tens of steps).
            "cg": lambda: lx.CG(**kw, stabilise_every=None),
            "normal_cg": lambda: lx.Normal(lx.CG(**kw)),
            "gmres": lambda: lx.GMRES(**kw),
            "bicgstab": lambda: lx.BiCGStab(**kw),
            "lu": lx.LU,
            "qr": lx.QR,
            "svd": lx.SVD,
        }[s]()

    def __call__(
        self,
        matvec: Callable[[Any], Any],
        b: Any,
        *,
        symmetric: bool = False,
        report_residual: bool = True,
    ) -> tuple[Any, dict[str, jax.Array]]:
        """Solve ``A x = b`` for the linear map ``matvec`` (x ↦ A x); returns ``(x, stats)``.

        Args:
          matvec: the linear map ``x ↦ A x`` on pytrees shaped like ``b``.
          b: the right-hand side (a pytree).
          symmetric: declare ``A`` symmetric positive definite (``"auto"`` then uses CG).
          report_residual: ``False`` (used inside gradients, where the stats are not returned)
            spares the extra product ``A x`` when an iterative lineax solver reports
            convergence, its own stopping test being the stricter one; ``residual`` is then
            NaN. Direct solvers and callables are always checked by their residual.

        Returns:
          ``(x, stats)``: ``stats`` has ``residual`` (relative, 2-norm), ``num_steps`` (−1 when
          the solver does not say), ``result`` (a :class:`~jaxopt_papers.RESULTS` code) and
          ``success`` (``result == RESULTS.successful``), plus what a callable solver returned.
        """
        dtype = _result_dtype(b)
        size = sum(int(np.prod(jnp.shape(x))) for x in jax.tree.leaves(b))
        _, _, max_residual = self._tolerances(dtype)
        ridge = self.ridge

        def op(u: Any) -> Any:
            return jax.tree.map(lambda au, uu: au + ridge * uu, matvec(u), u)

        solver = self._lineax_solver(b, size, dtype, symmetric)
        extra: dict[str, Any] = {}
        iterative = isinstance(solver, _ITERATIVE)
        if isinstance(solver, lx.AbstractLinearSolver):
            spd = isinstance(solver, (lx.CG, lx.Cholesky))
            tags = (lx.symmetric_tag, lx.positive_semidefinite_tag) if (symmetric or spd) else ()
            structure = jax.eval_shape(lambda: b)
            operator = lx.FunctionLinearOperator(op, structure, tags)
            sol = lx.linear_solve(operator, b, solver, throw=False)
            x = sol.value
            code = RESULTS.promote(sol.result)
            num_steps = jnp.asarray(sol.stats.get("num_steps", -1))
        else:
            x = solver(op, b)
            if isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], dict):
                x, extra = x  # a callable may return (x, stats), e.g. a recycle state
            extra = dict(extra)
            if "result" in extra:
                code = as_results(extra.pop("result"))
                extra.pop("success", None)
            else:
                ok = jnp.asarray(extra.pop("success", True))
                code = RESULTS.where(ok, RESULTS.successful, RESULTS.max_steps_reached)
            num_steps = jnp.asarray(extra.pop("num_steps", -1))
        finite = jnp.isfinite(optax.tree.norm(x))
        if report_residual or not iterative:
            r = jax.tree.map(jnp.subtract, op(x), b)
            b_norm = optax.tree.norm(b)
            r_norm = optax.tree.norm(r)
            residual = jnp.where(b_norm > 0, r_norm / jnp.where(b_norm > 0, b_norm, 1.0), r_norm)
            finite = finite & jnp.isfinite(residual)
            accurate = residual <= max_residual
        else:
            residual = jnp.asarray(jnp.nan, dtype)
            accurate = jnp.asarray(True)
        code = RESULTS.where((code == RESULTS.successful) & ~accurate, RESULTS.inaccurate, code)
        code = RESULTS.where(finite, code, RESULTS.nonfinite)
        success = code == RESULTS.successful
        if self.throw:
            x = raise_if_failed(x, code, _MESSAGES)
        else:
            x = jax.tree.map(lambda v: jnp.where(success, v, jnp.nan), x)
        stats = {"residual": residual, "num_steps": num_steps, "result": code, "success": success}
        return x, stats | extra


def as_linear_solve(solve: Any, *, owner: str = "custom_root") -> LinearSolve:
    """Normalise what users pass as ``solve=`` to a :class:`LinearSolve`."""
    if solve is None:
        return LinearSolve()
    if isinstance(solve, LinearSolve):
        return solve
    if isinstance(solve, str) or isinstance(solve, lx.AbstractLinearSolver) or callable(solve):
        return LinearSolve(solver=solve)
    raise TypeError(
        f"{owner}: `solve` must be None, a LinearSolve, a lineax solver, a solver name or a "
        f"callable solve(matvec, b) -> x; got {type(solve).__name__}."
    )
