"""Krylov solvers under ``jit``: CG, restarted GMRES(m) and GCRO-DR(m, k) with recycling.

Each method is an ``equinox.Module`` (:class:`CG`, :class:`GMRES`, :class:`GCRODR`) with
``init``/``step``/``run``; :func:`cg`, :func:`gmres` and :func:`gcrodr` are thin wrappers. ``run``
returns the library's :class:`~jaxopt_papers.Solution`: ``value`` (alias ``x``) the solution,
``result`` a :class:`~jaxopt_papers.RESULTS` code, ``stats`` with ``num_steps`` (CG iterations,
or restart cycles of GMRES/GCRO-DR: one ``step`` each), ``num_matvecs`` (products with ``A``) and
``error`` (alias ``residual``: the true relative residual ``‖b − Ax‖/‖b‖``), and for GCRO-DR the
:class:`RecycleState` in ``state``.

**CG** (Hestenes & Stiefel 1952) runs the library's one CG kernel; when its recursively updated
residual meets ``tol`` the true residual is checked, and CG restarts from it while that improves
it (residual replacement), so ``successful`` always means ``‖b − Ax‖ ≤ tol·‖b‖``. A direction of
non-positive curvature (``pᵀAp ≤ 0``) stops it with ``RESULTS.indefinite``.

**GMRES(m)** (Saad & Schultz 1986): cycles of ``m`` Arnoldi steps from the true residual
``r = b − Ax``; the basis is orthogonalised by classical Gram–Schmidt, one pass as PETSc's default
(``reorthogonalize=True``: two, CGS2); the residual norm of
``min ‖βe₁ − H̄y‖`` is tracked by the left null vector of ``H̄`` (one dot product per step): a
cycle stops as soon as it is ``≤ tol·‖b‖`` (as PETSc and scipy do), the small problem is solved
by QR, and the true residual is checked before the next cycle. An Arnoldi breakdown (the Krylov
space is invariant) whose true residual is still above ``tol`` means ``A`` is singular on it:
``RESULTS.breakdown``. A cycle that does not reduce the true residual ends with
``RESULTS.stagnation``.

**GCRO-DR(m, k)** (Parks, de Sturler, Mackey, Johnson & Maiti, SIAM J. Sci. Comput. 2006; the
solver of the SKR paper, Wang et al. ICLR 2024, with PETSc/HPDDM's ``m = 40``, ``k = 20``). A
recycled subspace ``U`` (``n × k``) is carried from one system to the next:

1. with ``U`` from the previous system: ``AU = QR``, ``C = Q``, ``U ← UR⁻¹`` (so ``AU = C``,
   ``CᵀC = I``), ``x += UCᵀr``, ``r −= CCᵀr``; the QR is a shifted Cholesky-QR3, which keeps
   vectors sharded across devices (only ``k × k`` Gram matrices are reduced);
2. each cycle: ``m − k`` Arnoldi steps of ``(I − CCᵀ)A`` from ``r/‖r‖`` give
   ``AV = CB + V₊H̄`` with ``B = CᵀAV``; the least-squares problem over ``span[U, V]`` splits into
   the GMRES problem ``min ‖βe₁ − H̄y‖`` and ``y_U = −D⁻¹By`` (``D`` scales ``U`` to unit
   columns), so ``x += Vy − U(By)``;
3. new ``U``: the ``k`` harmonic Ritz vectors of smallest harmonic Ritz value,
   ``GᵀG z = θ GᵀŴᵀV̂ z`` with ``V̂ = [UD, V]``, ``Ŵ = [C, V₊]``, ``G = [[D, B], [0, H̄]]``;
   ``Ỹ = V̂P``, ``GP = QR``, ``C = ŴQ``, ``U = ỸR⁻¹``.

Without a recycle state the first cycle is a GMRES(m) cycle (``k`` columns of zeros). The state
keeps ``U`` only; ``C`` is recomputed from the next system's ``A`` (step 1), which may differ.

Preconditioning is on the right (``AM⁻¹y = b``, ``x = M⁻¹y``), so ``tol`` is on the true relative
residual ``‖b − Ax‖/‖b‖`` for every method. ``tol=None`` (the default) is ``1e-8`` in float64 and
``1e-5`` in float32 (``100ε`` below). ``num_matvecs`` counts every product with ``A``: the
Arnoldi steps, the true residual at the end of each cycle, ``b − Ax₀`` for a given ``x0``, and
``AU`` (``k`` products) when a recycle state is used.

**Derivatives.** ``run`` (and the functions) are differentiable in forward and reverse mode, and
batch under ``vmap``, with respect to ``b`` and to every floating-point array of ``A`` (a dense
array, BCOO/BCSR ``data``, ``DiaMatrix.data``, a lineax operator's arrays, arrays a callable
closes over), by ``jax.lax.custom_linear_solve``: ``ẋ = A⁻¹(ḃ − Ȧx)`` by the same method, and the
transposed solve runs the method on ``Aᵀ`` (with the preconditioner's transpose; GCRO-DR without
the recycle state, which belongs to ``A``). ``x0``, the recycle state and the preconditioner are
not differentiated.

Differences from the reference code (PETSc/HPDDM): HPDDM orthogonalises by CGS or MGS with
optional re-orthogonalisation and updates the recycled space by the same generalised
eigenproblem; here classical Gram–Schmidt (one pass by default), and the eigenproblem is solved
as the standard one
``(GᵀG)⁻¹GᵀŴᵀV̂`` (largest ``|1/θ|``); with the ``k`` smallest ``|θ|`` a complex-conjugate pair
contributes its real and imaginary parts. PETSc's matvec count does not include the residual
checks. ``eig`` runs on the host (``pure_callback``) off CPU, where XLA has no ``eig``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, Solution, finish
from jaxopt_papers.linear._cg import pcg, pcg_init, pcg_step
from jaxopt_papers.linear._operators import Operator, as_operator

__all__ = [
    "CG",
    "GCRODR",
    "GMRES",
    "CGState",
    "GCRODRState",
    "GMRESState",
    "RecycleState",
    "cg",
    "default_tol",
    "gcrodr",
    "gmres",
]


def default_tol(dtype: Any) -> float:
    """The default relative tolerance of the linear solvers for ``dtype``.

    Args:
      dtype: a floating-point dtype.

    Returns:
      ``1e-8`` for float64, ``1e-5`` for float32 and ``100ε`` for lower precisions.

    Example:
      >>> import jax.numpy as jnp
      >>> default_tol(jnp.float64), default_tol(jnp.float32)
      (1e-08, 1e-05)
    """
    eps = float(jnp.finfo(dtype).eps)
    if eps < 1e-12:
        return 1e-8
    if eps < 1e-6:
        return 1e-5
    return 100.0 * eps


class RecycleState(eqx.Module):
    """GCRO-DR's recycled subspace: ``U`` ``(n, k)`` and whether it holds one (``valid``).

    Attributes:
      U: ``(n, k)`` the recycled basis (zeros when ``valid`` is false).
      valid: a boolean scalar.

    Example:
      >>> state = RecycleState.empty(10, 3)
      >>> state.U.shape, bool(state.valid)
      ((10, 3), False)
    """

    U: jax.Array
    valid: jax.Array

    @classmethod
    def empty(cls, n: int, k: int, dtype: Any = float) -> RecycleState:
        """No recycled space yet: ``U = 0`` ``(n, k)``, ``valid = False``.

        Args:
          n: the number of unknowns.
          k: the recycle dimension.
          dtype: the dtype of ``U``.

        Returns:
          The empty :class:`RecycleState`.
        """
        return cls(jnp.zeros((n, k), dtype), jnp.asarray(False))


def _identity(r: jax.Array) -> jax.Array:
    return r


def _transposed(precond: Callable, example: jax.Array) -> Callable:
    """``r ↦ M⁻ᵀr``: the preconditioner for the transposed system (``M⁻¹`` must be linear in
    JAX's sense; otherwise no preconditioner)."""
    if precond is _identity:
        return _identity
    try:
        transpose = jax.linear_transpose(precond, example)
        transpose(example)
    except Exception:  # a preconditioner JAX cannot transpose: solve Aᵀ without one
        return _identity
    return lambda r: transpose(r)[0]


def _code(rnorm, target, num_matvecs, max_steps, *, stalled=False, broke=False,
          indefinite=False) -> RESULTS:  # fmt: skip
    """The final code; ``successful`` exactly when the true residual meets the target."""
    del num_matvecs, max_steps  # the loop stopped: by its cap unless one of the flags says why
    code = RESULTS.where(jnp.asarray(stalled), RESULTS.stagnation, RESULTS.max_steps_reached)
    code = RESULTS.where(jnp.asarray(broke), RESULTS.breakdown, code)
    code = RESULTS.where(jnp.asarray(indefinite), RESULTS.indefinite, code)
    code = RESULTS.where(rnorm <= target, RESULTS.successful, code)
    return RESULTS.where(jnp.isfinite(rnorm), code, RESULTS.nonfinite)


_TOL_PRECISION = (
    " If `tol` is near the precision of the dtype (ε = 1.2e-7 in float32), the attainable "
    "residual is about ε·cond(A): loosen `tol` (tol=None picks a default for the dtype) or use "
    "float64."
)


class _Krylov(eqx.Module):
    """Shared checks, the differentiable solve and ``finish`` of the Krylov solvers."""

    owner: ClassVar[str] = "krylov"
    symmetric: ClassVar[bool] = False
    messages: ClassVar[dict[str, str]] = {}

    # ---- set-up

    def _setup(self, A: Any, b: Any, x0: Any) -> tuple:
        owner = self.owner
        b = jnp.asarray(b)
        if b.ndim != 1:
            raise ValueError(f"{owner}: `b` must be a vector (n,), got shape {b.shape}.")
        if not jnp.issubdtype(b.dtype, jnp.inexact):
            b = b.astype(float)
        op = as_operator(A, b.shape[0], owner=owner)
        if op.n != b.shape[0]:
            raise ValueError(f"{owner}: `A` is {op.n}x{op.n} but `b` has shape {b.shape}.")
        if x0 is not None:
            x0 = jnp.asarray(x0, b.dtype)
            if x0.shape != b.shape:
                raise ValueError(
                    f"{owner}: `x0` must have the shape of `b` {b.shape}, got {x0.shape}."
                )
        tol = default_tol(b.dtype) if self.tol is None else self.tol
        V.check_real(owner, "tol", tol, low=0.0, low_open=True)
        max_steps = min(10 * op.n, 10_000) if self.max_steps is None else self.max_steps
        V.check_int(owner, "max_steps", max_steps, low=1)
        if self.preconditioner is not None and not callable(self.preconditioner):
            raise TypeError(
                f"{owner}: `preconditioner` must be a callable r -> M^-1 r or None, got "
                f"{type(self.preconditioner).__name__}."
            )
        real = jnp.finfo(b.dtype).dtype
        solver = dataclasses.replace(self, tol=jnp.asarray(tol, real), max_steps=max_steps)
        return solver, op, b, x0

    def _precond(self) -> Callable:
        return _identity if self.preconditioner is None else self.preconditioner

    # ---- the differentiable solve

    @abc.abstractmethod
    def _loop(self, matvec, precond, rhs, target, extra, transpose: bool) -> tuple[Any, dict]:
        """Solve ``A y = rhs`` (``Aᵀ`` when ``transpose``) to ``target``; returns ``(y, aux)``."""

    def _solve(self, op: Operator, b: jax.Array, x0: Any, extra: Any) -> tuple:
        precond = self._precond()
        bnorm = jax.lax.stop_gradient(jnp.linalg.norm(b))
        if x0 is None:
            rhs, used = b, 0
        else:
            x0 = jax.lax.stop_gradient(x0)
            rhs, used = b - op.mv(x0), 1

        # `tol` is relative to ‖b‖. The derivative solves (other right-hand sides) are relative
        # to their own right-hand side; starting from x0, the primal one is recognised by its
        # right-hand side b − Ax0.
        anchor = None if x0 is None else jax.lax.stop_gradient(rhs)

        def make(transpose):
            def solve(mv, vec):
                scale = jnp.linalg.norm(vec)
                if anchor is not None:
                    scale = jnp.where(jnp.all(vec == anchor), bnorm, scale)
                p = _transposed(precond, vec) if transpose else precond
                return self._loop(mv, p, vec, self.tol * scale, extra, transpose)

            return solve

        y, aux = jax.lax.custom_linear_solve(
            op.mv, rhs, make(False), None if self.symmetric else make(True),
            symmetric=self.symmetric, has_aux=True,
        )  # fmt: skip
        aux = jax.lax.stop_gradient(aux)
        x = y if x0 is None else x0 + y
        denom = jnp.where(bnorm > 0, bnorm, 1.0)
        stats = {
            "num_steps": aux.pop("num_steps"),
            "num_matvecs": aux.pop("num_matvecs") + used,
            "error": aux.pop("rnorm") / denom,
        }
        code = RESULTS.where(jnp.isfinite(bnorm), aux.pop("code"), RESULTS.nonfinite)
        return x, code, stats, aux.pop("state", None)

    def run(self, A: Any, b: Any, x0: Any = None) -> Solution:
        """Solve ``Ax = b``.

        Args:
          A: a matrix (dense, BCOO/BCSR, :class:`~jaxopt_papers.linear.DiaMatrix`, a lineax
            operator) or a callable ``x ↦ Ax``.
          b: ``(n,)`` right-hand side.
          x0: initial guess (``None``: zero).

        Returns:
          The :class:`~jaxopt_papers.Solution` (module docstring).
        """
        return self._run(A, b, x0)

    def _run(self, A: Any, b: Any, x0: Any = None, extra: Any = None) -> Solution:
        solver, op, b, x0 = self._setup(A, b, x0)
        x, code, stats, state = _compiled_solve(solver, op, b, x0, extra)
        return finish(x, code, stats, state=state, throw=self.throw, messages=self.messages)


@eqx.filter_jit
def _compiled_solve(solver: _Krylov, op: Operator, b: jax.Array, x0: Any, extra: Any) -> tuple:
    return solver._solve(op, b, x0, extra)


def _prepare_manual(solver: _Krylov, A: Any, b: Any, x0: Any) -> tuple:
    solver, op, b, x0 = solver._setup(A, b, x0)
    target = solver.tol * jnp.linalg.norm(b)
    return solver, op, b, x0, target


# -------------------------------------------------------------------------------------- CG


class CGState(eqx.Module):
    """The state of :class:`CG` between manual steps.

    Attributes:
      x: the iterate.
      r: its (recursively updated) residual.
      p: the search direction.
      rz: ``rᵀM⁻¹r``.
      target: ``tol·‖b‖``.
      error: ``‖r‖/‖b‖``.
      num_steps: iterations done.
      num_matvecs: products with ``A``.
      indefinite: a direction of non-positive curvature was met.
      done: whether ``run`` would stop here.
    """

    x: jax.Array
    r: jax.Array
    p: jax.Array
    rz: jax.Array
    target: jax.Array
    error: jax.Array
    num_steps: jax.Array
    num_matvecs: jax.Array
    indefinite: jax.Array
    done: jax.Array


class CG(_Krylov):
    """Preconditioned conjugate gradients for symmetric positive definite ``A`` (and ``M``).

    Hestenes & Stiefel (1952), right-preconditioned::

        α = rᵀz / pᵀAp ;  x ← x + αp ;  r ← r − αAp ;  z = M⁻¹r
        β = rᵀz / (rᵀz)_old ;  p ← z + βp

    until ``‖b − Ax‖ ≤ tol·‖b‖``. When the recursively updated residual meets ``tol`` the true
    residual is checked and CG restarts from it while that improves it (residual replacement),
    so ``successful`` always means the true residual meets ``tol``; ``pᵀAp ≤ 0`` stops it with
    ``RESULTS.indefinite``. ``num_steps`` counts CG iterations; ``step`` is one iteration
    (manual stepping has no residual replacement). ``run`` is differentiable with respect to
    ``b`` and to the arrays of ``A`` (``jax.lax.custom_linear_solve``).

    Args:
      tol: relative residual target ``‖b − Ax‖/‖b‖`` (``None``: :func:`default_tol`).
      max_steps: cap on products with ``A`` (``None``: ``min(10n, 10000)``).
      preconditioner: ``r ↦ M⁻¹r`` (symmetric positive definite), or ``None``.
      throw: raise on failure (``False``: return the code in ``result``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import CG
      >>> A = jnp.array([[4.0, 1.0], [1.0, 3.0]])
      >>> sol = CG().run(A, jnp.array([1.0, 2.0]))
      >>> bool(jnp.allclose(A @ sol.x, jnp.array([1.0, 2.0]), atol=1e-4)), int(sol.num_steps)
      (True, 2)
    """

    tol: Any = None
    max_steps: int | None = None
    preconditioner: Any = None
    throw: bool = eqx.field(static=True, default=True)

    owner: ClassVar[str] = "cg"
    symmetric: ClassVar[bool] = True
    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "cg did not reach `tol` within `max_steps` products with A: increase `max_steps`, "
            "loosen `tol` or pass a `preconditioner` (e.g. linear.jacobi(A) or linear.ssor(A))."
        ),
        "indefinite": (
            "cg met a direction of non-positive curvature (pᵀAp ≤ 0): `A` (or the "
            "`preconditioner`) is not symmetric positive definite. Use gmres or gcrodr."
        ),
        "stagnation": (
            "cg's recursively updated residual reached `tol` but the true residual ‖b − Ax‖ did "
            "not, and restarting from it made no progress." + _TOL_PRECISION
        ),
        "nonfinite": "cg produced non-finite values: check `A`, `b` and `x0` for NaN/inf.",
    }

    def _loop(self, matvec, precond, rhs, target, extra, transpose):
        max_steps = self.max_steps
        x, _, k, bad = pcg(matvec, rhs, target, max_steps, precond=precond)
        rn = jnp.linalg.norm(rhs - matvec(x))
        init = (x, rn, jnp.asarray(jnp.inf, rn.dtype), k + 1, k, bad)

        def cond(c):
            _, rn, prev, mv, _, bad = c
            return (rn > target) & (rn < prev) & (mv < max_steps) & ~bad & jnp.isfinite(rn)

        def body(c):  # residual replacement: CG again from the true residual
            x, rn, _, mv, steps, _ = c
            x_new, _, k, bad = pcg(matvec, rhs, target, max_steps - mv, x0=x, precond=precond)
            rn_new = jnp.linalg.norm(rhs - matvec(x_new))
            return x_new, rn_new, rn, mv + k + 1, steps + k - 1, bad

        x, rn, prev, mv, steps, bad = jax.lax.while_loop(cond, body, init)
        stalled = (rn > target) & (rn >= prev)
        code = _code(rn, target, mv, max_steps, stalled=stalled, indefinite=bad)
        return x, {"num_steps": steps, "num_matvecs": mv, "rnorm": rn, "code": code}

    def init(self, A: Any, b: Any, x0: Any = None) -> CGState:
        """The state before the first iteration.

        Args:
          A: the matrix or callable, as in :meth:`run`.
          b: ``(n,)`` right-hand side.
          x0: initial guess (``None``: zero).

        Returns:
          The :class:`CGState` at ``x0``.
        """
        solver, op, b, x0, target = _prepare_manual(self, A, b, x0)
        carry = pcg_init(op.mv, b, x0, self._precond())
        return solver._state(carry, target, jnp.linalg.norm(b), jnp.zeros((), jnp.int32))

    def _state(self, carry, target, bnorm, steps) -> CGState:
        x, r, p, rz, mv, bad = carry
        rn = jnp.linalg.norm(r)
        done = (rn <= target) | (mv >= self.max_steps) | bad | ~jnp.isfinite(rn)
        return CGState(x, r, p, rz, target, rn / jnp.where(bnorm > 0, bnorm, 1.0), steps, mv,
                       bad, done)  # fmt: skip

    def step(self, state: CGState, A: Any, b: Any) -> CGState:
        """One CG iteration.

        Args:
          state: the current :class:`CGState`.
          A: the matrix or callable, as in :meth:`run`.
          b: ``(n,)`` right-hand side.

        Returns:
          The next :class:`CGState`.
        """
        solver, op, b, _, _ = _prepare_manual(self, A, b, None)
        carry = (state.x, state.r, state.p, state.rz, state.num_matvecs, state.indefinite)
        return solver._state(pcg_step(op.mv, carry, self._precond()), state.target,
                             jnp.linalg.norm(b), state.num_steps + 1)  # fmt: skip


def cg(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    tol: float | None = None,
    max_steps: int | None = None,
    preconditioner: Callable | None = None,
    throw: bool = True,
) -> Solution:
    """Preconditioned conjugate gradients for symmetric positive definite ``A`` (and ``M``).

    ``CG(tol, max_steps, preconditioner, throw).run(A, b, x0)``; see :class:`CG`.

    Args:
      A: a matrix (dense, BCOO/BCSR, :class:`~jaxopt_papers.linear.DiaMatrix`, a lineax
        operator) or a callable ``x ↦ Ax``.
      b: ``(n,)`` right-hand side.
      x0: initial guess (``None``: zero).
      tol: relative residual target ``‖b − Ax‖/‖b‖`` (``None``: :func:`default_tol`).
      max_steps: cap on products with ``A`` (``None``: ``min(10n, 10000)``).
      preconditioner: ``r ↦ M⁻¹r`` (symmetric positive definite), or ``None``.
      throw: raise on failure (``False``: return the code in ``result``).

    Returns:
      The :class:`~jaxopt_papers.Solution` (``.x``, ``.num_matvecs``, ``.residual``,
      ``.result``).

    Example:
      >>> import jax.numpy as jnp
      >>> sol = cg(jnp.diag(jnp.array([1.0, 2.0, 4.0])), jnp.ones(3))
      >>> sol.x.round(4).tolist()
      [1.0, 0.5, 0.25]
    """
    return CG(tol, max_steps, preconditioner, throw).run(A, b, x0)


# ------------------------------------------------------------------------------------ GMRES


class GMRESState(eqx.Module):
    """The state of :class:`GMRES` between restart cycles.

    Attributes:
      x: the iterate.
      r: its true residual ``b − Ax``.
      rnorm: ``‖r‖``.
      bnorm: ``‖b‖``.
      target: ``tol·‖b‖``.
      error: ``‖r‖/‖b‖``.
      num_steps: restart cycles done.
      num_matvecs: products with ``A``.
      stalled: the last cycle did not reduce ``‖r‖``.
      broke: the last cycle ended by an Arnoldi breakdown above ``tol``.
    """

    x: jax.Array
    r: jax.Array
    rnorm: jax.Array
    bnorm: jax.Array
    target: jax.Array
    error: jax.Array
    num_steps: jax.Array
    num_matvecs: jax.Array
    stalled: jax.Array
    broke: jax.Array

    @property
    def done(self) -> jax.Array:
        """Whether ``run`` would stop here (with ``max_steps`` checked by the solver)."""
        return (self.rnorm <= self.target) | self.stalled | self.broke | ~jnp.isfinite(self.rnorm)


def _gmres_state(x, r, target, bnorm, steps, mv, stalled, broke) -> GMRESState:
    rnorm = jnp.linalg.norm(r)
    return GMRESState(x, r, rnorm, bnorm, target, rnorm / jnp.where(bnorm > 0, bnorm, 1.0), steps,
                      mv, jnp.asarray(stalled), jnp.asarray(broke))  # fmt: skip


def _gmres_cycle(matvec, precond, b, s: GMRESState, m, max_steps, reorth) -> GMRESState:
    apply = lambda v: matvec(precond(v))
    allowed = jnp.minimum(m, max_steps - s.num_matvecs)
    cyc = _arnoldi(apply, jnp.zeros((0, b.shape[0]), b.dtype), s.r, s.rnorm, m, allowed,
                   s.target, reorth)  # fmt: skip
    y = _ls_solution(cyc, s.rnorm, m)
    x = s.x + precond(_pad(y) @ cyc.V)
    r = b - matvec(x)
    rnorm = jnp.linalg.norm(r)
    broke = jnp.any(jnp.isinf(cyc.u)) & (rnorm > s.target)
    mv = s.num_matvecs + cyc.steps + 1
    return _gmres_state(x, r, s.target, s.bnorm, s.num_steps + 1, mv, rnorm >= s.rnorm, broke)


def _keep_going(s, max_steps) -> jax.Array:
    return ~s.done & (s.num_matvecs < max_steps)


class GMRES(_Krylov):
    """Restarted GMRES(``restart``) until ``‖b − Ax‖ ≤ tol·‖b‖``.

    Saad & Schultz (1986): each cycle runs up to ``m = restart`` Arnoldi steps from the true
    residual ``r = b − Ax`` (classical Gram–Schmidt, one pass as PETSc's default), giving
    ``AV = V₊H̄``, and updates ``x ← x + M⁻¹Vy`` with ``y = argmin ‖βe₁ − H̄y‖`` (``β = ‖r‖``;
    right preconditioning, so ``tol`` is on the true residual). A cycle stops as soon as the
    tracked residual meets ``tol`` (as PETSc and scipy); the true residual is checked before
    the next one. An Arnoldi breakdown above ``tol`` gives ``RESULTS.breakdown``, a cycle that
    does not reduce the residual ``RESULTS.stagnation``. One ``step`` is one restart cycle;
    ``num_steps`` counts cycles. The default ``restart=40`` is PETSc/HPDDM's (the SKR paper's
    setting); ``run`` is differentiable with respect to ``b`` and the arrays of ``A``.

    Args:
      restart: Arnoldi steps per cycle (``m``).
      tol: relative residual target (``None``: :func:`default_tol`).
      max_steps: cap on products with ``A`` (``None``: ``min(10n, 10000)``, PETSc's cap).
      preconditioner: right preconditioner ``r ↦ M⁻¹r``, or ``None``.
      reorthogonalize: a second Gram–Schmidt pass per step (CGS2; ~2× the cost per step).
      throw: raise on failure (``False``: return the code in ``result``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import RESULTS
      >>> from jaxopt_papers.linear import GMRES
      >>> A = jnp.array([[3.0, 1.0], [-1.0, 2.0]])
      >>> sol = GMRES(restart=2).run(A, jnp.array([1.0, 0.0]))
      >>> bool(jnp.allclose(A @ sol.x, jnp.array([1.0, 0.0]), atol=1e-4))
      True
      >>> bool(sol.result == RESULTS.successful), int(sol.num_steps)
      (True, 1)
    """

    restart: int = eqx.field(static=True, default=40)
    tol: Any = None
    max_steps: int | None = None
    preconditioner: Any = None
    reorthogonalize: bool = eqx.field(static=True, default=False)
    throw: bool = eqx.field(static=True, default=True)

    owner: ClassVar[str] = "gmres"
    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "gmres did not reach `tol` within `max_steps` products with A: increase "
            "`max_steps` or `restart`, loosen `tol`, or pass a `preconditioner`."
        ),
        "stagnation": (
            "gmres stagnated: a restart cycle did not reduce the true residual ‖b − Ax‖ (A may "
            "be singular or the system inconsistent). Increase `restart`, pass a "
            "`preconditioner`, or use gcrodr." + _TOL_PRECISION
        ),
        "breakdown": (
            "gmres broke down: the Krylov space became invariant before ‖b − Ax‖ reached `tol`, "
            "so `A` is singular on it (the system has no solution, or `preconditioner` is "
            "singular)."
        ),
        "nonfinite": "gmres produced non-finite values: check `A`, `b` and `x0` for NaN/inf.",
    }

    def _m(self, n: int) -> int:
        V.check_int(self.owner, "restart", self.restart, low=1)
        return min(self.restart, n)

    def _loop(self, matvec, precond, rhs, target, extra, transpose):
        m = self._m(rhs.shape[0])
        bnorm = jnp.linalg.norm(rhs)
        zero = jnp.zeros((), jnp.int32)
        s = _gmres_state(jnp.zeros_like(rhs), rhs, target, bnorm, zero, zero, False, False)
        s = jax.lax.while_loop(
            lambda s: _keep_going(s, self.max_steps),
            lambda s: _gmres_cycle(
                matvec, precond, rhs, s, m, self.max_steps, self.reorthogonalize
            ),
            s,
        )
        code = _code(s.rnorm, target, s.num_matvecs, self.max_steps, stalled=s.stalled,
                     broke=s.broke)  # fmt: skip
        return s.x, {"num_steps": s.num_steps, "num_matvecs": s.num_matvecs, "rnorm": s.rnorm,
                     "code": code}  # fmt: skip

    def init(self, A: Any, b: Any, x0: Any = None) -> GMRESState:
        """The state before the first cycle.

        Args:
          A: the matrix or callable, as in :meth:`run`.
          b: ``(n,)`` right-hand side.
          x0: initial guess (``None``: zero).

        Returns:
          The :class:`GMRESState` at ``x0``.
        """
        _, op, b, x0, target = _prepare_manual(self, A, b, x0)
        x = jnp.zeros_like(b) if x0 is None else x0
        r, mv = (b, 0) if x0 is None else (b - op.mv(x0), 1)
        zero = jnp.zeros((), jnp.int32)
        return _gmres_state(x, r, target, jnp.linalg.norm(b), zero, zero + mv, False, False)

    def step(self, state: GMRESState, A: Any, b: Any) -> GMRESState:
        """One restart cycle.

        Args:
          state: the current :class:`GMRESState`.
          A: the matrix or callable, as in :meth:`run`.
          b: ``(n,)`` right-hand side.

        Returns:
          The :class:`GMRESState` after the cycle.
        """
        solver, op, b, _, _ = _prepare_manual(self, A, b, None)
        return _gmres_cycle(op.mv, self._precond(), b, state, self._m(op.n), solver.max_steps,
                            self.reorthogonalize)  # fmt: skip


def gmres(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    restart: int = 40,
    tol: float | None = None,
    max_steps: int | None = None,
    preconditioner: Callable | None = None,
    reorthogonalize: bool = False,
    throw: bool = True,
) -> Solution:
    """Restarted GMRES(``restart``) until ``‖b − Ax‖ ≤ tol·‖b‖`` (module docstring).

    ``GMRES(restart, tol, max_steps, preconditioner, reorthogonalize, throw).run(A, b, x0)``;
    see :class:`GMRES`.

    Args:
      A: a matrix (dense, BCOO/BCSR, :class:`~jaxopt_papers.linear.DiaMatrix`, a lineax
        operator) or a callable ``x ↦ Ax``.
      b: ``(n,)`` right-hand side.
      x0: initial guess (``None``: zero).
      restart: Arnoldi steps per cycle (``m``; PETSc's 40).
      tol: relative residual target (``None``: :func:`default_tol`).
      max_steps: cap on products with ``A`` (``None``: ``min(10n, 10000)``, PETSc's cap).
      preconditioner: right preconditioner ``r ↦ M⁻¹r``, or ``None``.
      reorthogonalize: a second Gram–Schmidt pass per step (CGS2; ~2× the cost per step).
      throw: raise on failure (``False``: return the code in ``result``).

    Returns:
      The :class:`~jaxopt_papers.Solution` (``.x``, ``.num_matvecs``, ``.residual``,
      ``.result``).

    Example:
      >>> import jax.numpy as jnp
      >>> sol = gmres(jnp.array([[2.0, 1.0], [0.0, 1.0]]), jnp.array([3.0, 1.0]))
      >>> sol.x.round(4).tolist()
      [1.0, 1.0]
    """
    solver = GMRES(restart, tol, max_steps, preconditioner, reorthogonalize, throw)
    return solver.run(A, b, x0)


# ----------------------------------------------------------------------------------- GCRO-DR


class GCRODRState(eqx.Module):
    """The state of :class:`GCRODR` between restart cycles.

    Attributes:
      x: the iterate.
      r: its true residual ``b − Ax``.
      Ut: ``(k, n)`` the recycled basis ``U``, as rows.
      C: ``(k, n)`` ``C = AU`` (orthonormal rows), as rows.
      CU: the ``k × k`` product ``CUᵀ``.
      UU: the ``k × k`` product ``UUᵀ``.
      valid: ``U`` holds a recycled space.
      rnorm: ``‖r‖``.
      bnorm: ``‖b‖``.
      target: ``tol·‖b‖``.
      error: ``‖r‖/‖b‖``.
      num_steps: restart cycles done.
      num_matvecs: products with ``A``.
      stalled: the last cycle did not reduce ``‖r‖``.
      broke: the last cycle ended by an Arnoldi breakdown above ``tol``.
    """

    x: jax.Array
    r: jax.Array
    Ut: jax.Array
    C: jax.Array
    CU: jax.Array
    UU: jax.Array
    valid: jax.Array
    rnorm: jax.Array
    bnorm: jax.Array
    target: jax.Array
    error: jax.Array
    num_steps: jax.Array
    num_matvecs: jax.Array
    stalled: jax.Array
    broke: jax.Array

    @property
    def done(self) -> jax.Array:
        """Whether ``run`` would stop here (with ``max_steps`` checked by the solver)."""
        return (self.rnorm <= self.target) | self.stalled | self.broke | ~jnp.isfinite(self.rnorm)

    def recycle_state(self) -> RecycleState:
        """The :class:`RecycleState` to pass to the next system."""
        return RecycleState(self.Ut.T, self.valid & jnp.any(self.Ut != 0))


def _gcrodr_init(matvec, precond, b, x, r, mv, target, U0, valid0) -> GCRODRState:
    """Step 1 of the module docstring: recycle ``U0`` (``(n, k)``) for this system."""
    k = U0.shape[1]
    apply = lambda v: matvec(precond(v))
    Ut = U0.T
    AU = jax.vmap(apply)(Ut)
    C, Rinv_t, ok = _cholesky_qr_rows(AU)
    ok = valid0 & ok
    mv = mv + jnp.where(valid0, k, 0)
    C = jnp.where(ok, C, 0.0)
    Ut = jnp.where(ok, Rinv_t @ Ut, 0.0)
    cr = C @ r
    x = x + precond(cr @ Ut)
    r = r - cr @ C
    # The k × k products CUᵀ and UUᵀ are formed here once per system and then carried through
    # the cycles by small algebra, so that a cycle touches the n-long rows of C and U only to
    # update them.
    rnorm, bnorm = jnp.linalg.norm(r), jnp.linalg.norm(b)
    error = rnorm / jnp.where(bnorm > 0, bnorm, 1.0)
    zero = jnp.zeros((), jnp.int32)
    false = jnp.asarray(False)
    return GCRODRState(x, r, Ut, C, C @ Ut.T, Ut @ Ut.T, ok, rnorm, bnorm, target, error, zero,
                       jnp.asarray(mv, jnp.int32), false, false)  # fmt: skip


def _gcrodr_cycle(matvec, precond, b, st: GCRODRState, m, max_steps, reorth) -> GCRODRState:
    """Steps 2–3 of the module docstring: one cycle and the new recycled space."""
    k = st.Ut.shape[0]
    s = m - k  # Arnoldi steps per cycle
    dtype = b.dtype
    apply = lambda v: matvec(precond(v))
    x, r, Ut, C, CU, UU, rnorm = st.x, st.r, st.Ut, st.C, st.CU, st.UU, st.rnorm
    allowed = jnp.minimum(s, max_steps - st.num_matvecs)
    cyc = _arnoldi(apply, C, r, rnorm, s, allowed, st.target, reorth)
    y = _ls_solution(cyc, rnorm, s)
    x = x + precond(_pad(y) @ cyc.V - (cyc.B @ y) @ Ut)
    r_new = b - matvec(x)
    # New recycled space from this cycle (harmonic Ritz, module docstring step 3). D scales U to
    # unit rows; it is folded into the small factors (Us = D·U is never formed).
    u_sq = jnp.diag(UU)
    d = jnp.where(u_sq > 0, jax.lax.rsqrt(jnp.where(u_sq > 0, u_sq, 1.0)), 1.0)
    used = jnp.arange(s) < cyc.steps
    eye_used = jnp.eye(s + 1, s, dtype=dtype) * used[None, :]
    Hbar = cyc.H + jnp.diag(jnp.where(used, 0.0, 1.0), k=-1)[: s + 1, :s]
    G = jnp.block([[jnp.diag(d), cyc.B], [jnp.zeros((s + 1, k), dtype), Hbar]])
    VUs = (Ut @ cyc.V.T).T * d[None, :]  # V·Usᵀ, the one product with n-long rows here
    WV = jnp.block([[CU * d[None, :], jnp.zeros((k, s), dtype)], [VUs, eye_used]])
    P = _harmonic_ritz(G, WV, k)
    Qn, Rn = jnp.linalg.qr(G @ P)
    rdiag = jnp.abs(jnp.diag(Rn))
    good = jnp.all(rdiag > 1e-12 * jnp.max(rdiag)) & jnp.all(jnp.isfinite(Rn))
    Rn = jnp.where(good, Rn, jnp.eye(k, dtype=dtype))
    C_new = _small(Qn[:k].T) @ C + _small(Qn[k:].T) @ cyc.V
    # U = ỸR⁻¹ with Ỹ = V̂P: fold R⁻¹ into the small (k+s) × k factor first, so that the n-long
    # rows are touched by one product (a triangular solve with n right-hand sides and the product
    # Ỹ each cost more than it).
    F = jax.scipy.linalg.solve_triangular(Rn.T, P.T, lower=True)  # (k, k + s)
    U_new = _small(F[:, :k] * d[None, :]) @ Ut + _small(_pad(F[:, k:] * used[None, :])) @ cyc.V
    # C_new·U_newᵀ = Qᵀ(ŴV̂ᵀ)Fᵀ and U_new·U_newᵀ = F(V̂V̂ᵀ)Fᵀ, with ŴV̂ᵀ = WV and
    # V̂V̂ᵀ = [[D·UUᵀ·D, (V_s·Usᵀ)ᵀ], [V_s·Usᵀ, I]].
    VsUs = VUs[:s] * used[:, None]
    gram = jnp.block([[UU * d[:, None] * d[None, :], VsUs.T], [VsUs, eye_used[:s]]])
    CU_new, UU_new = Qn.T @ WV @ F.T, F @ gram @ F.T
    keep = lambda new, old: jnp.where(good, new, old)
    new_norm = jnp.linalg.norm(r_new)
    broke = jnp.any(jnp.isinf(cyc.u)) & (new_norm > st.target)
    return GCRODRState(
        x, r_new, keep(U_new, Ut), keep(C_new, C), keep(CU_new, CU), keep(UU_new, UU),
        st.valid | good, new_norm, st.bnorm, st.target,
        new_norm / jnp.where(st.bnorm > 0, st.bnorm, 1.0), st.num_steps + 1,
        st.num_matvecs + cyc.steps + 1, new_norm >= rnorm, broke,
    )  # fmt: skip


class GCRODR(_Krylov):
    """GCRO-DR(``restart``, ``recycle``) with a recycled subspace.

    Parks, de Sturler, Mackey, Johnson & Maiti, "Recycling Krylov Subspaces for Sequences of
    Linear Systems", SIAM J. Sci. Comput. 2006; the solver of the SKR paper (Wang et al., ICLR
    2024), with PETSc/HPDDM's defaults ``m = 40``, ``k = 20``. A recycled basis ``U``
    (``n × k``) carried from a previous, similar system is made ``AU = C``, ``CᵀC = I`` and
    the residual projected off ``C`` (``x += UCᵀr``, ``r −= CCᵀr``); each cycle then runs
    ``m − k`` Arnoldi steps of ``(I − CCᵀ)A`` and minimises the residual over
    ``span[U, V]``; the new ``U`` is spanned by the ``k`` harmonic Ritz vectors of smallest
    harmonic Ritz value. Without a recycle state the first cycle is a GMRES(m) cycle.

    ``run(A, b, x0, state=...)`` starts from the :class:`RecycleState` of a previous, similar,
    system and returns the new one in ``Solution.state``. One ``step`` is one restart cycle;
    ``num_steps`` counts cycles. Differences from PETSc/HPDDM: classical Gram–Schmidt (one pass
    by default), and the harmonic Ritz problem is solved as a standard eigenproblem.

    Args:
      restart: the subspace size ``m`` (``m − k`` Arnoldi steps per cycle).
      recycle: the recycle dimension ``k < m``.
      tol: relative residual target (``None``: :func:`default_tol`).
      max_steps: cap on products with ``A`` (``None``: ``min(10n, 10000)``).
      preconditioner: right preconditioner ``r ↦ M⁻¹r``, or ``None``.
      reorthogonalize: a second Gram–Schmidt pass per step (CGS2).
      throw: raise on failure (``False``: return the code in ``result``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import GCRODR
      >>> A = jnp.diag(jnp.arange(1.0, 31.0)) + jnp.eye(30, k=1)
      >>> solver = GCRODR(restart=10, recycle=4)
      >>> first = solver.run(A, jnp.ones(30))
      >>> again = solver.run(A, jnp.ones(30), state=first.state)
      >>> int(again.num_matvecs) <= int(first.num_matvecs)
      True
    """

    restart: int = eqx.field(static=True, default=40)
    recycle: int = eqx.field(static=True, default=20)
    tol: Any = None
    max_steps: int | None = None
    preconditioner: Any = None
    reorthogonalize: bool = eqx.field(static=True, default=False)
    throw: bool = eqx.field(static=True, default=True)

    owner: ClassVar[str] = "gcrodr"
    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "gcrodr did not reach `tol` within `max_steps` products with A: increase "
            "`max_steps`, `restart` or `recycle`, loosen `tol`, or pass a `preconditioner`."
        ),
        "stagnation": (
            "gcrodr stagnated: a restart cycle did not reduce the true residual ‖b − Ax‖ (A may "
            "be singular or the system inconsistent). Increase `restart` or `recycle`, or pass a "
            "`preconditioner`." + _TOL_PRECISION
        ),
        "breakdown": (
            "gcrodr broke down: the Krylov space became invariant before ‖b − Ax‖ reached "
            "`tol`, so `A` is singular on it (the system has no solution, or `preconditioner` "
            "is singular)."
        ),
        "nonfinite": (
            "gcrodr produced non-finite values: check `A`, `b`, `x0` and the recycle `state` "
            "for NaN/inf."
        ),
    }

    def _m(self, n: int) -> int:
        owner = self.owner
        V.check_int(owner, "restart", self.restart, low=2)
        V.check_int(owner, "recycle", self.recycle, low=1)
        m = min(self.restart, n)
        if self.recycle >= m:
            raise ValueError(
                f"{owner}: `recycle` must be smaller than `restart` (and n), got "
                f"recycle={self.recycle}, restart={self.restart}, n={n}."
            )
        return m

    def _state_in(self, state: Any, n: int, dtype: Any) -> RecycleState:
        if state is None:
            return RecycleState.empty(n, self.recycle, dtype)
        if not isinstance(state, RecycleState):
            raise TypeError(
                f"{self.owner}: `state` must be a RecycleState (the `.state` of a previous "
                f"solve) or None, got {type(state).__name__}."
            )
        if state.U.shape != (n, self.recycle):
            raise ValueError(
                f"{self.owner}: `state.U` must have shape (n, recycle) = {(n, self.recycle)}, "
                f"got {state.U.shape}."
            )
        return RecycleState(jax.lax.stop_gradient(state.U.astype(dtype)), state.valid)

    def _loop(self, matvec, precond, rhs, target, extra, transpose):
        n = rhs.shape[0]
        m = self._m(n)
        state = RecycleState.empty(n, self.recycle, rhs.dtype) if transpose else extra
        st = _gcrodr_init(matvec, precond, rhs, jnp.zeros_like(rhs), rhs, 0, target, state.U,
                          state.valid)  # fmt: skip
        st = jax.lax.while_loop(
            lambda st: _keep_going(st, self.max_steps),
            lambda st: _gcrodr_cycle(
                matvec, precond, rhs, st, m, self.max_steps, self.reorthogonalize
            ),
            st,
        )
        code = _code(st.rnorm, target, st.num_matvecs, self.max_steps, stalled=st.stalled,
                     broke=st.broke)  # fmt: skip
        return st.x, {"num_steps": st.num_steps, "num_matvecs": st.num_matvecs,
                      "rnorm": st.rnorm, "code": code, "state": st.recycle_state()}  # fmt: skip

    def run(self, A: Any, b: Any, x0: Any = None, *, state: RecycleState | None = None
            ) -> Solution:  # fmt: skip
        """Solve ``Ax = b`` from an optional recycle ``state``.

        Args:
          A: a matrix (dense, BCOO/BCSR, :class:`~jaxopt_papers.linear.DiaMatrix`, a lineax
            operator) or a callable ``x ↦ Ax``.
          b: ``(n,)`` right-hand side.
          x0: initial guess (``None``: zero).
          state: the :class:`RecycleState` of a previous solve (``None``: none yet).

        Returns:
          The :class:`~jaxopt_papers.Solution`; its ``state`` is the new :class:`RecycleState`.
        """
        b_arr = jnp.asarray(b)
        n = as_operator(A, b_arr.shape[0] if b_arr.ndim else None, owner=self.owner).n
        self._m(n)
        dtype = b_arr.dtype if jnp.issubdtype(b_arr.dtype, jnp.inexact) else jnp.asarray(1.0).dtype
        return self._run(A, b, x0, self._state_in(state, n, dtype))

    def init(self, A: Any, b: Any, x0: Any = None, *, state: RecycleState | None = None
             ) -> GCRODRState:  # fmt: skip
        """The state before the first cycle, the recycle step done.

        Args:
          A: the matrix or callable, as in :meth:`run`.
          b: ``(n,)`` right-hand side.
          x0: initial guess (``None``: zero).
          state: the :class:`RecycleState` of a previous solve (``None``: none yet).

        Returns:
          The :class:`GCRODRState` after projecting the residual off ``C = AU``.
        """
        _, op, b, x0, target = _prepare_manual(self, A, b, x0)
        self._m(op.n)
        rec = self._state_in(state, op.n, b.dtype)
        x = jnp.zeros_like(b) if x0 is None else x0
        r, mv = (b, 0) if x0 is None else (b - op.mv(x0), 1)
        return _gcrodr_init(op.mv, self._precond(), b, x, r, mv, target, rec.U, rec.valid)

    def step(self, state: GCRODRState, A: Any, b: Any) -> GCRODRState:
        """One restart cycle.

        Args:
          state: the current :class:`GCRODRState`.
          A: the matrix or callable, as in :meth:`run`.
          b: ``(n,)`` right-hand side.

        Returns:
          The :class:`GCRODRState` after the cycle.
        """
        solver, op, b, _, _ = _prepare_manual(self, A, b, None)
        return _gcrodr_cycle(op.mv, self._precond(), b, state, self._m(op.n), solver.max_steps,
                             self.reorthogonalize)  # fmt: skip


def gcrodr(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    restart: int = 40,
    recycle: int = 20,
    tol: float | None = None,
    max_steps: int | None = None,
    state: RecycleState | None = None,
    preconditioner: Callable | None = None,
    reorthogonalize: bool = False,
    throw: bool = True,
) -> Solution:
    """GCRO-DR(``restart``, ``recycle``) from an optional recycle ``state``.

    ``GCRODR(restart, recycle, tol, max_steps, preconditioner, reorthogonalize, throw)``
    ``.run(A, b, x0, state=state)``; see :class:`GCRODR`.

    Args:
      A: a matrix (dense, BCOO/BCSR, :class:`~jaxopt_papers.linear.DiaMatrix`, a lineax
        operator) or a callable ``x ↦ Ax``.
      b: ``(n,)`` right-hand side.
      x0: initial guess (``None``: zero).
      restart: the subspace size ``m`` (PETSc/HPDDM's 40).
      recycle: the recycle dimension ``k < m`` (PETSc/HPDDM's 20).
      tol: relative residual target (``None``: :func:`default_tol`).
      max_steps: cap on products with ``A`` (``None``: ``min(10n, 10000)``).
      state: the :class:`RecycleState` of a previous solve (``None``: none yet).
      preconditioner: right preconditioner ``r ↦ M⁻¹r``, or ``None``.
      reorthogonalize: a second Gram–Schmidt pass per step (CGS2).
      throw: raise on failure (``False``: return the code in ``result``).

    Returns:
      The :class:`~jaxopt_papers.Solution`; pass its ``.state`` to the next, similar, system.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import gcrodr
      >>> A = jnp.diag(jnp.arange(1.0, 31.0)) + jnp.eye(30, k=1)
      >>> sol = gcrodr(A, jnp.ones(30), restart=10, recycle=4)
      >>> bool(jnp.allclose(A @ sol.x, jnp.ones(30), atol=1e-3)), sol.state.U.shape
      (True, (30, 4))
    """
    solver = GCRODR(restart, recycle, tol, max_steps, preconditioner, reorthogonalize, throw)
    return solver.run(A, b, x0, state=state)


# ----------------------------------------------------------------------------------- Arnoldi


class _Cycle(eqx.Module):
    V: jax.Array  # (m + 1, n) orthonormal rows (unused rows 0)
    H: jax.Array  # (m + 1, m) Hessenberg H̄
    B: jax.Array  # (k, m) Cᵀ A V
    u: jax.Array  # (m + 1,) left null vector of H̄: ‖βe₁ − H̄y‖_min = β / ‖u‖
    steps: jax.Array  # Arnoldi steps done


_BLOCK = 8  # rows of V per stage of the blocked Arnoldi loop


def _arnoldi(apply, C, r, beta, m, allowed, target, reorthogonalize: bool = False) -> _Cycle:
    """Up to ``allowed`` (≤ m) steps of Arnoldi on ``(I − CᵀC)·apply`` from ``r/β`` (``C``:
    ``(k, n)`` orthonormal rows), stopping once the least-squares residual is ``≤ target``.

    The residual of ``min ‖βe₁ − H̄_j y‖`` is ``β/‖u‖`` with ``H̄_jᵀu = 0``, ``u₀ = 1``, built one
    entry per step (``u_{j+1} = −H̄[:j+1, j]·u[:j+1] / h_{j+1,j}``): a dot product instead of
    ``j`` sequential Givens rotations, which inside XLA's loop cost more than the product.

    Gram–Schmidt is memory-bound (two passes over the basis per step), so the basis is built in
    blocks of ``_BLOCK`` rows, one ``while_loop`` per block: step ``j`` reads the finished blocks
    and the current one, never the zero rows of the blocks still to come (with one loop over a
    zero-padded ``(m+1, n)`` basis, a quarter of every pass read zeros)."""
    n, dtype = r.shape[0], r.dtype
    tiny = max(1e-14, 50 * float(jnp.finfo(dtype).eps))
    k = C.shape[0]
    bs = _BLOCK
    finished: list[jax.Array] = []
    cur = jnp.zeros((bs + 1, n), dtype).at[0].set(r / beta)
    H = jnp.zeros((m + 1, m), dtype)
    B = jnp.zeros((k, m), dtype)
    u = jnp.zeros(m + 1, dtype).at[0].set(1.0)
    steps = jnp.zeros((), jnp.int32)

    for start in range(0, m, bs):
        stop = min(start + bs, m)
        done = tuple(finished)

        def cond(c, stop=stop):
            _, _, _, u, j = c
            return (j < jnp.minimum(allowed, stop)) & (beta > target * jnp.linalg.norm(u))

        def body(c, start=start, done=done):
            cur, H, B, u, j = c
            w = apply(cur[j - start])

            def project(w):
                # Classical Gram–Schmidt against C, the finished blocks and the current one
                # (its rows past j are zero).
                bc, hs = C @ w, [Vb @ w for Vb in done] + [cur @ w]
                w = w - bc @ C - sum(h @ Vb for h, Vb in zip(hs, [*done, cur], strict=True))
                return w, bc, jnp.concatenate(hs)

            w, bc, h = project(w)
            if reorthogonalize:  # CGS2; PETSc's default is one pass
                w, bc2, h2 = project(w)
                bc, h = bc + bc2, h + h2
            h = jnp.zeros(m + 1, dtype).at[: h.shape[0]].set(h[: m + 1])
            norm = jnp.linalg.norm(w)
            breakdown = norm <= tiny * jnp.linalg.norm(h)
            safe = jnp.where(breakdown, 1.0, norm)
            v_next = jnp.where(breakdown, 0.0, w / safe)
            col = h.at[j + 1].set(jnp.where(breakdown, 0.0, norm))
            # A breakdown makes the residual exact (zero): an infinite u ends the cycle.
            u_next = jnp.where(breakdown, jnp.inf, -(h @ u) / safe)
            return (cur.at[j - start + 1].set(v_next), H.at[:, j].set(col),
                    B.at[:, j].set(bc), u.at[j + 1].set(u_next), j + 1)  # fmt: skip

        cur, H, B, u, steps = jax.lax.while_loop(cond, body, (cur, H, B, u, steps))
        finished.append(cur[:bs])
        cur = jnp.zeros((bs + 1, n), dtype).at[0].set(cur[bs])
    V = jnp.concatenate([*finished, cur[:1]])[: m + 1]
    return _Cycle(V, H, B, u, steps)


def _pad(a: jax.Array) -> jax.Array:
    """A zero coefficient for the basis' last row: ``_pad(y) @ V`` instead of ``y @ V[:m]``, whose
    slice XLA copies (a pass over ``V``)."""
    return jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, 1)])


def _small(a: jax.Array) -> jax.Array:
    """The small left factor of a product with n-long rows, materialised: XLA otherwise folds its
    transpose into the product, which XLA:CPU then runs 2× slower."""
    return jax.lax.optimization_barrier(a)


def _ls_solution(c: _Cycle, beta: jax.Array, m: int) -> jax.Array:
    """``y`` of ``min ‖βe₁ − H̄y‖`` over the steps done (zero beyond them), by QR.

    After a breakdown on a singular ``A``, ``R`` has (near-)zero pivots: their components of
    ``y`` are set to zero, so ``y`` stays finite and the true residual tells the outcome."""
    used = jnp.arange(m) < c.steps
    # Unused columns become e_{i+1} (rows with a zero right-hand side): their y is 0.
    H = jnp.where(used[None, :], c.H, 0.0) + jnp.diag(jnp.where(used, 0.0, 1.0), k=-1)[:, :m]
    Q, R = jnp.linalg.qr(H)
    d = jnp.abs(jnp.diag(R))
    small = d <= 100 * jnp.finfo(R.dtype).eps * jnp.max(d)
    R = R + jnp.diag(jnp.where(small, 1.0, 0.0).astype(R.dtype))
    R = jnp.where(small[:, None] & ~jnp.eye(m, dtype=bool), 0.0, R)
    rhs = jnp.where(small, 0.0, beta * Q[0])
    return jax.scipy.linalg.solve_triangular(R, rhs, lower=False)


def _eig(M: jax.Array) -> tuple[jax.Array, jax.Array]:
    if jax.default_backend() == "cpu":
        return jnp.linalg.eig(M)
    ctype = jnp.result_type(M.dtype, jnp.complex64)
    shapes = (jax.ShapeDtypeStruct(M.shape[:1], ctype), jax.ShapeDtypeStruct(M.shape, ctype))
    return jax.pure_callback(
        lambda a: tuple(x.astype(ctype) for x in np.linalg.eig(a)), shapes, M
    )  # fmt: skip


def _harmonic_ritz(G: jax.Array, WV: jax.Array, k: int) -> jax.Array:
    """``(k+m, k)`` real basis of the ``k`` harmonic Ritz vectors of smallest ``|θ|`` for
    ``GᵀG z = θ GᵀWV z`` (as the largest ``|μ|`` of ``(GᵀG)⁻¹GᵀWV``, ``μ = 1/θ``)."""
    gram = G.T @ G
    scale = jnp.max(jnp.abs(jnp.diag(gram)))
    gram = gram + 1e-14 * scale * jnp.eye(gram.shape[0], dtype=gram.dtype)
    mu, Z = _eig(jnp.linalg.solve(gram, G.T @ WV))
    idx = jnp.argsort(-jnp.abs(mu))[:k]
    mu, Z = mu[idx], Z[:, idx]
    # A complex pair's real and imaginary parts span its invariant subspace.
    return jnp.where(jnp.imag(mu)[None, :] >= 0, jnp.real(Z), jnp.imag(Z))


def _cholesky_qr_rows(X: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``X = RᵀQ`` for ``X`` with ``k`` long rows: returns ``Q`` (orthonormal rows), ``R⁻ᵀ`` and
    whether ``X`` has full rank.

    Shifted Cholesky-QR3 (Fukaya, Kannan, Nakatsukasa, Yamamoto & Yanagisawa, SIAM J. Sci.
    Comput. 2020): three passes ``G = XXᵀ``, ``G = LLᵀ``, ``X ← L⁻¹X``, the first with a shift
    of ``G`` by ``10·k·ε·tr G`` (stable for ``κ(X) ≲ ε⁻¹``). Only ``k × k`` Gram matrices and
    products of ``k × k`` matrices with ``X`` touch the long rows, so rows sharded across
    devices stay sharded (a Householder QR or a triangular solve with ``n`` right-hand sides
    would be gathered onto every device).
    """
    k = X.shape[0]
    eye = jnp.eye(k, dtype=X.dtype)
    eps = jnp.finfo(X.dtype).eps
    Rinv_t = eye  # accumulates L₃⁻¹L₂⁻¹L₁⁻¹ = R⁻ᵀ
    diag = jnp.ones((k,), X.dtype)  # diag(R) = ∏ diag(Lᵢ)
    for shifted in (True, False, False):
        G = X @ X.T
        if shifted:
            G = G + 10.0 * k * eps * jnp.trace(G) * eye
        L = jnp.linalg.cholesky(G)
        Linv = jax.scipy.linalg.solve_triangular(L, eye, lower=True)
        X = Linv @ X
        Rinv_t = Linv @ Rinv_t
        diag = diag * jnp.diag(L)
    ok = jnp.all(jnp.isfinite(Rinv_t)) & jnp.all(diag > 1e-10 * jnp.max(diag))
    return X, Rinv_t, ok
