"""Learning to Relax (Khodak, Chow, Balcan & Talwalkar, ICLR 2024): choose SOR's ``ω`` online.

A stream of SPD systems ``A_t x = b_t`` is solved by SOR, ``x ← x + M⁻¹(b − Ax)`` with
``M = D/ω + L``, until ``‖r‖/‖r₀‖ < tol``; the cost of an instance is its number of iterations.
``ω_t`` is chosen *before* the instance is solved, from past costs only:

- :class:`TsallisINF` (bandit; regret against the best fixed ``ω`` in hindsight). Over the grid
  ``linspace(1, 1.95, 20)``, with ``η_t = 2/√t``, play ``i ~ p`` where
  ``p_i = 4(η(K_i/s − x))⁻²`` and the normaliser ``x`` comes from 20 Newton steps from
  ``x = −1``; after cost ``ℓ``, ``K_i += (ℓ − 1)/p_i`` (the minimum cost is 1) and ``s`` is the
  mean observed cost minus 1.
- :class:`ChebCB` (contextual; regret against the instance-optimal ``ω``): the context is a
  scalar (the reference experiments use the diagonal offset ``c`` of ``A_t = A + cI``). Each
  action's cost is regressed on Chebyshev polynomials ``T_0..T_{m−1}`` of the rescaled context
  (least squares, box-constrained when the plain solution leaves the box of decaying Chebyshev
  coefficients), and the action is drawn by inverse-gap weighting (SquareCB):
  ``p_i = 1/(d + η(ŷ_i − ŷ_min))`` for the non-greedy actions.
- :class:`TsallisINFCB`: the context interval cut into bins, one Tsallis-INF per bin.

:class:`SOR` (and :func:`sor`) is the solver (``lax.while_loop`` over triangular solves);
:func:`ssor_pcg` is CG preconditioned by SSOR; :func:`optimal_omega` is the asymptotically optimal
``ω* = 1 + (β/(1 + √(1 − β²)))²`` with ``β = ρ(I − D⁻¹A)`` (consistently ordered matrices);
:func:`shifted_laplacian_stream` generates the paper's instances.

The learners are host-side Python objects with a numpy generator (the cost of an instance is
known only after a solve, so the loop is sequential anyway): ``ω = learner.propose()``, solve,
``learner.update(cost)``.

Differences from the reference code (MATLAB, github.com/mkhodak/learning-to-relax): sampling uses
numpy's generator, so trajectories match in distribution, not draw for draw. ChebCB's constrained
least squares is scipy's ``lsq_linear`` (MATLAB: ``lsqlin``) and the unconstrained one is
``numpy.linalg.lstsq`` (minimum norm, as ``lsqminnorm``). ``sor`` counts its iterations as the
reference does (the solve of the first iteration is iteration 1) and also returns a result code.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, Solution, finish
from jaxopt_papers.linear import krylov
from jaxopt_papers.linear._splitting import Triangular, as_matrix, check_omega
from jaxopt_papers.linear.dia import DiaMatrix
from jaxopt_papers.linear.krylov import default_tol
from jaxopt_papers.linear.preconditioners import ssor

__all__ = [
    "SOR",
    "ChebCB",
    "SORState",
    "TsallisINF",
    "TsallisINFCB",
    "optimal_omega",
    "shifted_laplacian_stream",
    "sor",
    "ssor_pcg",
]


class SOR(eqx.Module):
    """SOR with relaxation ``omega``: ``x ← x + M⁻¹(b − Ax)``, ``M = D/ω + L``, until
    ``‖b − Ax‖ < tol·‖b − Ax₀‖`` (at least one iteration, at most ``max_steps``).

    ``run`` returns the :class:`~jaxopt_papers.Solution`: ``value`` (alias ``x``), ``result``,
    ``stats`` with ``num_steps`` (iterations: the cost of an instance, counted as the reference
    does), ``num_matvecs`` and ``error`` (``‖b − Ax‖/‖b − Ax₀‖``, the relative residual
    ``‖b − Ax‖/‖b‖`` from ``x0 = 0``). One ``step`` is one iteration. ``run`` is differentiable
    with respect to ``A`` and ``b`` (``jax.lax.custom_linear_solve``: the derivative solves are SOR
    on ``A`` and ``Aᵀ``); the iteration count is not.

    A run that hits ``max_steps`` is a normal outcome in a tuning loop (its cost is the cap), so
    ``throw`` is off by default.

    Args:
      omega: the relaxation ``ω ∈ (0, 2)`` (``1``: Gauss–Seidel).
      tol: the relative residual target (``None``: ``1e-8`` in float64, ``1e-5`` in float32).
      max_steps: cap on iterations (the reference's 10,000).
      throw: raise when ``tol`` is not reached.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import RESULTS
      >>> from jaxopt_papers.linear import SOR
      >>> A = jnp.array([[4.0, -1.0], [-1.0, 4.0]])
      >>> sol = SOR(omega=1.1).run(A, jnp.array([3.0, 3.0]))
      >>> sol.x.round(4).tolist(), bool(sol.result == RESULTS.successful)
      ([1.0, 1.0], True)
    """

    omega: Any = 1.0
    tol: Any = None
    max_steps: int = 10_000
    throw: bool = eqx.field(static=True, default=False)

    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "sor did not reach `tol` within `max_steps` iterations: increase `max_steps`, "
            "loosen `tol` or choose a better `omega` (e.g. optimal_omega(A))."
        ),
        "nonfinite": (
            "sor produced non-finite values: check `A`, `b` and `x0` for NaN/inf, and that "
            "`omega` lies in (0, 2) (SOR diverges otherwise)."
        ),
        "invalid_input": "sor: `omega` must lie in (0, 2) (SOR diverges otherwise).",
    }

    def _setup(self, A: Any, b: Any, x0: Any) -> tuple:
        owner = "sor"
        M = as_matrix(owner, A)
        check_omega(owner, self.omega)
        V.check_int(owner, "max_steps", self.max_steps, low=1)
        b = jnp.asarray(b)
        n = M.shape[0]
        if b.shape != (n,):
            raise ValueError(f"{owner}: `b` must have shape ({n},) to match `A`, got {b.shape}.")
        dtype = jnp.result_type(M.dtype, b.dtype)
        if not jnp.issubdtype(dtype, jnp.inexact):
            dtype = jnp.asarray(1.0).dtype
        if x0 is not None:
            x0 = jnp.asarray(x0, dtype)
            if x0.shape != (n,):
                raise ValueError(f"{owner}: `x0` must have shape ({n},), got {x0.shape}.")
        tol = default_tol(dtype) if self.tol is None else self.tol
        V.check_real(owner, "tol", tol, low=0.0, low_open=True)
        if isinstance(M, DiaMatrix):
            M = DiaMatrix(M.data.astype(dtype), M.offsets)
        else:
            M = M.astype(dtype)
        solver = dataclasses.replace(
            self, omega=jnp.asarray(self.omega, dtype), tol=jnp.asarray(tol, dtype)
        )
        return solver, M, b.astype(dtype), x0

    def run(self, A: Any, b: Any, x0: Any = None) -> Solution:
        """Solve ``Ax = b`` by SOR.

        Args:
          A: a dense matrix or a :class:`~jaxopt_papers.linear.DiaMatrix` (small sparse and
            lineax operators are made dense).
          b: ``(n,)`` right-hand side.
          x0: initial guess (``None``: zero).

        Returns:
          The :class:`~jaxopt_papers.Solution` (class docstring).
        """
        solver, M, b, x0 = self._setup(A, b, x0)
        x, code, stats = _compiled_sor(solver, M, b, x0)
        return finish(x, code, stats, throw=self.throw, messages=self.messages)

    def _loop(self, M: Any, rhs: jax.Array) -> tuple[jax.Array, dict]:
        tri = Triangular(M, self.omega, True)
        norm0 = jnp.linalg.norm(rhs)
        target = self.tol * norm0

        def cond(c):
            _, r, k = c
            nr = jnp.linalg.norm(r)
            return (k < self.max_steps) & ((k == 0) | (nr >= target)) & jnp.isfinite(nr)

        def body(c):
            x, r, k = c
            x = x + tri.solve(r)
            return x, rhs - _mv(M, x), k + 1

        x, r, k = jax.lax.while_loop(
            cond, body, (jnp.zeros_like(rhs), rhs, jnp.zeros((), jnp.int32))
        )
        rel = jnp.linalg.norm(r) / jnp.where(norm0 > 0, norm0, 1.0)
        code = RESULTS.where(rel < self.tol, RESULTS.successful, RESULTS.max_steps_reached)
        code = RESULTS.where(jnp.isfinite(rel), code, RESULTS.nonfinite)
        return x, {"num_steps": k, "error": rel, "code": code}

    def _solve(self, M: Any, b: jax.Array, x0: Any) -> tuple:
        Mt = M.T
        if x0 is None:
            rhs, used = b, 0
        else:
            x0 = jax.lax.stop_gradient(x0)
            rhs, used = b - _mv(M, x0), 1
        solve = lambda mv, r: self._loop(jax.lax.stop_gradient(M), r)
        tsolve = lambda mv, r: self._loop(jax.lax.stop_gradient(Mt), r)
        y, aux = jax.lax.custom_linear_solve(lambda v: _mv(M, v), rhs, solve, tsolve,
                                             has_aux=True)  # fmt: skip
        aux = jax.lax.stop_gradient(aux)
        x = y if x0 is None else x0 + y
        stats = {"num_steps": aux["num_steps"], "num_matvecs": aux["num_steps"] + used,
                 "error": aux["error"]}  # fmt: skip
        # A traced ω outside (0, 2) (checked statically when concrete) is reported as such, not
        # as the divergence or stall it causes.
        valid = (self.omega > 0) & (self.omega < 2)
        return x, RESULTS.where(valid, aux["code"], RESULTS.invalid_input), stats

    def init(self, A: Any, b: Any, x0: Any = None) -> SORState:
        """The state before the first iteration.

        Args:
          A: the matrix, as in :meth:`run`.
          b: the ``(n,)`` right-hand side.
          x0: the initial guess (``None``: zero).

        Returns:
          The :class:`SORState` at ``x0`` (``error`` 1, ``num_steps`` 0).
        """
        _, M, b, x0 = self._setup(A, b, x0)
        x = jnp.zeros_like(b) if x0 is None else x0
        r = b - _mv(M, x)
        norm0 = jnp.linalg.norm(r)
        return SORState(x, r, norm0, jnp.ones((), b.dtype), jnp.zeros((), jnp.int32))

    def step(self, state: SORState, A: Any, b: Any) -> SORState:
        """One SOR iteration ``x ← x + (D/ω + L)⁻¹ (b − Ax)``.

        Args:
          state: the current :class:`SORState`.
          A: the matrix, as in :meth:`run`.
          b: the ``(n,)`` right-hand side.

        Returns:
          The next :class:`SORState` (``error = ‖b − Ax‖/‖r₀‖``).
        """
        solver, M, b, _ = self._setup(A, b, None)
        x = state.x + Triangular(M, solver.omega, True).solve(state.r)
        r = b - _mv(M, x)
        error = jnp.linalg.norm(r) / jnp.where(state.norm0 > 0, state.norm0, 1.0)
        return SORState(x, r, state.norm0, error, state.num_steps + 1)


class SORState(eqx.Module):
    """The state of :class:`SOR` between iterations.

    Attributes:
      x: the current iterate.
      r: its residual ``b − Ax``.
      norm0: ``‖r₀‖``, the norm of the initial residual.
      error: ``‖r‖/‖r₀‖``, the stopping quantity.
      num_steps: iterations done (int32).
    """

    x: jax.Array
    r: jax.Array
    norm0: jax.Array
    error: jax.Array
    num_steps: jax.Array


def _mv(M: Any, x: jax.Array) -> jax.Array:
    return M.mv(x) if isinstance(M, DiaMatrix) else M @ x


@eqx.filter_jit
def _compiled_sor(solver: SOR, M: Any, b: jax.Array, x0: Any) -> tuple:
    return solver._solve(M, b, x0)


def sor(
    A: Any,
    b: Any,
    omega: float = 1.0,
    x0: Any = None,
    *,
    tol: float | None = None,
    max_steps: int = 10_000,
    throw: bool = False,
) -> Solution:
    """SOR with relaxation ``omega`` until ``‖b − Ax‖ < tol·‖b − Ax₀‖`` (:class:`SOR`).

    Args:
      A: a dense matrix or a :class:`~jaxopt_papers.linear.DiaMatrix` (small sparse and
        lineax operators are made dense).
      b: the ``(n,)`` right-hand side.
      omega: the relaxation ``ω ∈ (0, 2)`` (``1``: Gauss–Seidel).
      x0: the initial guess (``None``: zero).
      tol: the relative residual target (``None``: ``1e-8`` in float64, ``1e-5`` in float32).
      max_steps: cap on iterations (the reference's 10,000).
      throw: raise when ``tol`` is not reached (off by default: in a tuning loop the cap is
        the cost of a bad ``ω``).

    Returns:
      The :class:`~jaxopt_papers.Solution` (``.x``, ``.num_steps``: the cost, ``.residual``,
      ``.result``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import optimal_omega, sor
      >>> int(sor(jnp.array([[2.0, 0.0], [0.0, 4.0]]), jnp.ones(2)).num_steps)  # diagonal: exact
      1
      >>> A = 2 * jnp.eye(20) - jnp.eye(20, k=1) - jnp.eye(20, k=-1)
      >>> slow = int(sor(A, jnp.ones(20), 1.0).num_steps)  # Gauss–Seidel
      >>> fast = int(sor(A, jnp.ones(20), float(optimal_omega(A))).num_steps)
      >>> fast < slow
      True
    """
    return SOR(omega, tol, max_steps, throw).run(A, b, x0)


def ssor_pcg(A: Any, b: Any, omega: float = 1.0, *, tol: float | None = None,
             max_steps: int = 10_000, throw: bool = False) -> Solution:  # fmt: skip
    """CG preconditioned by SSOR(``omega``) (the reference's ``ssor_pcg``).

    Args:
      A: an SPD matrix (dense or :class:`~jaxopt_papers.linear.DiaMatrix`).
      b: ``(n,)`` right-hand side.
      omega: SSOR's relaxation in ``(0, 2)``.
      tol: CG's relative residual target (``None``: :func:`default_tol` of the dtype).
      max_steps: cap on CG's iterations.
      throw: raise when ``tol`` is not reached (off by default, as :func:`sor`).

    Returns:
      The :class:`~jaxopt_papers.Solution` of CG; the cost of an instance is ``num_matvecs``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import ssor_pcg
      >>> A = jnp.array([[4.0, -1.0], [-1.0, 4.0]])
      >>> ssor_pcg(A, jnp.array([3.0, 3.0]), 1.2).x.round(5).tolist()
      [1.0, 1.0]
    """
    return krylov.cg(A, b, tol=tol, max_steps=max_steps, preconditioner=ssor(A, omega),
                     throw=throw)  # fmt: skip


def optimal_omega(A: Any) -> jax.Array:
    """``ω* = 1 + (β/(1 + √(1 − β²)))²``, ``β = ρ(I − D⁻¹A)`` (Young's formula; dense
    eigenvalues, so for moderate ``n``).

    The asymptotically optimal SOR relaxation for consistently ordered matrices (e.g. the
    5-point Laplacian), the "instance-optimal" baseline of Learning to Relax.

    Args:
      A: a square matrix with a non-zero diagonal (dense or
        :class:`~jaxopt_papers.linear.DiaMatrix`).

    Returns:
      ``ω*``, a scalar array.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import optimal_omega
      >>> A = 2 * jnp.eye(4) - jnp.eye(4, k=1) - jnp.eye(4, k=-1)  # β = cos(π/5)
      >>> round(float(optimal_omega(A)), 6), round(2 / (1 + float(jnp.sin(jnp.pi / 5))), 6)
      (1.259616, 1.259616)
    """
    M = as_matrix("optimal_omega", A)
    dense = M.todense() if hasattr(M, "todense") else M
    J = jnp.eye(dense.shape[0], dtype=dense.dtype) - dense / jnp.diagonal(dense)[:, None]
    beta = jnp.max(jnp.abs(jnp.linalg.eigvals(J)))
    return 1.0 + (beta / (1.0 + jnp.sqrt(jnp.maximum(1.0 - beta**2, 0.0)))) ** 2


def shifted_laplacian_stream(
    key: jax.Array, num: int, *, variance: str = "high", side: int = 10
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The reference's instances: ``A_t = A + c_t I`` with ``A`` the 5-point Laplacian on the
    ``side × side`` interior of a square grid (MATLAB ``delsq(numgrid('S', side + 2))``),
    ``c_t = −0.15 + 0.6·B`` with ``B ~ Beta(0.5, 1.5)`` (``variance="high"``) or ``Beta(2, 6)``
    (``"low"``), as the reference's ``learning.m``, and
    ``b_t`` standard Gaussian rejected until ``‖b‖ ≤ √n``.

    Args:
      key: a JAX random key.
      num: the number of instances.
      variance: ``"high"`` (``Beta(0.5, 1.5)`` offsets) or ``"low"`` (``Beta(2, 6)``).
      side: interior grid points per side (``n = side²``; the reference uses 10).

    Returns:
      ``(A, c, b)`` with shapes ``(n, n)``, ``(num,)`` and ``(num, n)``; ``A + c[t]·I`` and
      ``b[t]`` are instance ``t``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.linear import shifted_laplacian_stream
      >>> A, c, b = shifted_laplacian_stream(jax.random.key(0), 3, side=4)
      >>> A.shape, c.shape, b.shape
      ((16, 16), (3,), (3, 16))
      >>> bool(jnp.all((c >= -0.15) & (c <= 0.45))), bool(jnp.all(jnp.linalg.norm(b, axis=1) <= 4))
      (True, True)
    """
    V.check_int("shifted_laplacian_stream", "num", num, low=1)
    V.check_int("shifted_laplacian_stream", "side", side, low=2)
    V.check_choice("shifted_laplacian_stream", "variance", variance, ("high", "low"))
    n = side * side
    t = jnp.eye(side) * 2 - jnp.eye(side, k=1) - jnp.eye(side, k=-1)
    # numgrid('S') numbers the interior column by column; the 5-point Laplacian is the same
    # matrix under either row- or column-major ordering of a square grid.
    A = jnp.kron(jnp.eye(side), t) + jnp.kron(t, jnp.eye(side))
    k_c, k_b = jax.random.split(key)
    a, bb = (0.5, 1.5) if variance == "high" else (2.0, 6.0)
    c = -0.15 + 0.6 * jax.random.beta(k_c, a, bb, (num,))

    def draw(k):
        def cond(s):
            return jnp.linalg.norm(s[1]) > jnp.sqrt(n)

        def body(s):
            k, _ = s
            k, sub = jax.random.split(k)
            return k, jax.random.normal(sub, (n,))

        k, sub = jax.random.split(k)
        return jax.lax.while_loop(cond, body, (k, jax.random.normal(sub, (n,))))[1]

    b = jax.vmap(draw)(jax.random.split(k_b, num))
    return A, c, b


# ------------------------------------------------------------------------------------ learners


def _grid(owner: str, grid: Any) -> np.ndarray:
    g = np.asarray(grid, float).reshape(-1)
    if g.size < 2 or not np.all((g > 0) & (g < 2)):
        raise ValueError(f"{owner}: `grid` must hold at least 2 values of ω in (0, 2), got {g}.")
    return g


def _check_cost(owner: str, cost: Any) -> float:
    cost = float(cost)
    if not np.isfinite(cost) or cost < 1:
        raise ValueError(
            f"{owner}.update: `cost` must be a finite iteration count ≥ 1, got {cost}."
        )
    return cost


class TsallisINF:
    """Tsallis-INF bandit over a grid of ``ω``: ``propose()`` then ``update(cost)``, alternately.

    Learning to Relax's non-contextual learner (regret against the best fixed ``ω`` in
    hindsight). With ``η_t = 2/√t`` it plays ``i ~ p``, ``p_i = 4(η(K_i/s − x))⁻²`` (``x`` the
    normaliser, 20 Newton steps from −1); after a cost ``ℓ``, ``K_i += (ℓ − 1)/p_i`` and ``s``
    is the mean observed cost minus 1. Host-side Python with a numpy generator: draws match the
    MATLAB reference in distribution, not draw for draw.

    Args:
      grid: the candidate ``ω`` values in ``(0, 2)`` (default ``linspace(1, 1.95, 20)``, the
        reference's).
      seed: the numpy generator's seed.

    Example:
      >>> from jaxopt_papers.linear import TsallisINF
      >>> def cost(omega):  # a synthetic iteration count, smallest at ω = 1.5
      ...     return 1 + 20 * abs(omega - 1.5)
      >>> learner = TsallisINF(seed=0)
      >>> for _ in range(30):
      ...     learner.update(cost(learner.propose()))
      >>> p = learner.probabilities()
      >>> p.shape, round(float(p.sum()), 6)
      ((20,), 1.0)
    """

    def __init__(self, grid: Any = None, *, seed: int = 0) -> None:
        self.grid = _grid("TsallisINF", np.linspace(1.0, 1.95, 20) if grid is None else grid)
        self.rng = np.random.default_rng(seed)
        self.K = np.zeros(self.grid.size)  # importance-weighted cumulative costs (minus 1)
        self.costs: list[float] = []
        self.scale = 1.0
        self.index: int | None = None
        self.prob = 1.0

    @property
    def t(self) -> int:
        return len(self.costs) + 1

    def probabilities(self) -> np.ndarray:
        """The current sampling distribution over ``grid`` (sums to 1)."""
        eta = 2.0 / np.sqrt(self.t)
        x = -1.0
        for _ in range(20):
            p = 4.0 * (eta * (self.K / self.scale - x)) ** -2.0
            x = x - (p.sum() - 1.0) / (eta * (p**1.5).sum())
        return p

    def propose(self) -> float:
        """Draw the next ``ω`` (then call :meth:`update` with its cost)."""
        if self.index is not None:
            raise RuntimeError("TsallisINF.propose: call update(cost) for the last proposal first.")
        p = self.probabilities()
        if np.all(np.isfinite(p)) and p.sum() > 0:
            self.index = int(self.rng.choice(self.grid.size, p=p / p.sum()))
            self.prob = float(p[self.index])
        else:  # as the reference: fall back to uniform
            self.index = int(self.rng.integers(self.grid.size))
            self.prob = 1.0 / self.grid.size
        return float(self.grid[self.index])

    def update(self, cost: Any) -> None:
        """Record the cost (iterations, ``≥ 1``) of the last proposed ``ω``."""
        if self.index is None:
            raise RuntimeError("TsallisINF.update: call propose() first.")
        cost = _check_cost("TsallisINF", cost)
        self.costs.append(cost)
        scale = float(np.mean(self.costs)) - 1.0
        self.scale = scale if scale > 0 else 1.0
        self.K[self.index] += (cost - 1.0) / self.prob
        self.index = None


class TsallisINFCB:
    """Tsallis-INF per bin of a scalar context in ``[low, high]`` (``bins`` equal bins).

    Learning to Relax's simple contextual baseline: the context interval is cut into ``bins``
    equal bins and each bin runs its own :class:`TsallisINF`. ``propose(context)`` then
    ``update(cost)``, alternately.

    Args:
      low: the smallest context.
      high: the largest context (``> low``).
      grid: the candidate ``ω`` values (default ``linspace(1, 1.95, 20)``).
      bins: the number of bins.
      seed: the seed of the first bin's generator (bin ``i`` uses ``seed + i``).

    Example:
      >>> from jaxopt_papers.linear import TsallisINFCB
      >>> def cost(omega):  # a synthetic iteration count, smallest at ω = 1.5
      ...     return 1 + 20 * abs(omega - 1.5)
      >>> learner = TsallisINFCB(-0.15, 0.45, bins=3, seed=0)
      >>> for t in range(12):
      ...     learner.update(cost(learner.propose(-0.15 + 0.05 * t)))
      >>> [len(b.costs) for b in learner.learners]  # four contexts fell in each bin
      [4, 4, 4]
    """

    def __init__(self, low: float, high: float, grid: Any = None, *, bins: int = 5,
                 seed: int = 0) -> None:  # fmt: skip
        V.check_int("TsallisINFCB", "bins", bins, low=1)
        if not high > low:
            raise ValueError(f"TsallisINFCB: need low < high, got low={low}, high={high}.")
        self.low, self.high = float(low), float(high)
        self.learners = [TsallisINF(grid, seed=seed + i) for i in range(bins)]
        self.grid = self.learners[0].grid
        self.active: TsallisINF | None = None

    def propose(self, context: float) -> float:
        """Draw the next ``ω`` for this context (then call :meth:`update` with its cost)."""
        frac = (float(context) - self.low) / (self.high - self.low)
        i = int(np.clip(np.floor(frac * len(self.learners)), 0, len(self.learners) - 1))
        self.active = self.learners[i]
        return self.active.propose()

    def update(self, cost: Any) -> None:
        """Record the cost (iterations, ``≥ 1``) of the last proposed ``ω``."""
        if self.active is None:
            raise RuntimeError("TsallisINFCB.update: call propose(context) first.")
        self.active.update(cost)
        self.active = None


class ChebCB:
    """ChebCB contextual bandit: Chebyshev regression of each action's cost on a scalar context
    in ``[low, high]`` and inverse-gap-weighted sampling.

    Learning to Relax's contextual learner (regret against the instance-optimal ``ω``). Each
    action's cost is regressed on Chebyshev polynomials ``T_0..T_{degree−1}`` of the rescaled
    context (least squares, box-constrained when the plain solution leaves the box of decaying
    coefficients: scipy's ``lsq_linear`` where the reference calls MATLAB's ``lsqlin``), and the
    action is drawn by inverse-gap weighting (SquareCB): ``p_i = 1/(d + η(ŷ_i − ŷ_min))`` for
    the non-greedy actions. ``propose(context)`` then ``update(cost)``, alternately.

    Args:
      low: the smallest context (the reference: the diagonal offset ``c`` of ``A + cI``).
      high: the largest context (``> low``).
      grid: the candidate ``ω`` values (default ``linspace(1, 1.95, 20)``, the reference's).
      degree: the number ``m`` of Chebyshev features.
      seed: the numpy generator's seed.

    Example:
      >>> from jaxopt_papers.linear import ChebCB
      >>> def cost(omega):  # a synthetic iteration count, smallest at ω = 1.5
      ...     return 1 + 20 * abs(omega - 1.5)
      >>> learner = ChebCB(-0.15, 0.45, seed=0)
      >>> for t in range(12):
      ...     learner.update(cost(learner.propose(-0.15 + 0.05 * t)))
      >>> len(learner.costs), learner.theta.shape  # one regression per action
      (12, (20, 6))
    """

    def __init__(self, low: float, high: float, grid: Any = None, *, degree: int = 6,
                 seed: int = 0) -> None:  # fmt: skip
        V.check_int("ChebCB", "degree", degree, low=1)
        if not high > low:
            raise ValueError(f"ChebCB: need low < high, got low={low}, high={high}.")
        self.grid = _grid("ChebCB", np.linspace(1.0, 1.95, 20) if grid is None else grid)
        self.d, self.m = self.grid.size, int(degree)
        self.a, self.bma = float(low), float(high) - float(low)
        self.rng = np.random.default_rng(seed)
        self.theta = np.zeros((self.d, self.m))
        self.eta, self.scale = 0.0, 0.0
        self.features: list[np.ndarray] = []
        self.actions: list[int] = []
        self.costs: list[float] = []
        self.predicted: list[float] = []
        self._pending: tuple[int, np.ndarray] | None = None

    def _features(self, context: float) -> np.ndarray:
        z = 2.0 / self.bma * (float(context) - self.a) - 1.0
        return np.polynomial.chebyshev.chebvander(z, self.m - 1).reshape(-1)

    def propose(self, context: float) -> float:
        """Draw the next ``ω`` for this context (then call :meth:`update` with its cost)."""
        if self._pending is not None:
            raise RuntimeError("ChebCB.propose: call update(cost) for the last proposal first.")
        f = self._features(context)
        yhat = self.theta @ f
        best = int(np.argmin(yhat))
        p = 1.0 / (self.d + self.eta * (yhat - yhat[best]))
        p[best] = 0.0
        p[best] = 1.0 - p.sum()
        i = int(self.rng.choice(self.d, p=np.clip(p, 0, None) / np.clip(p, 0, None).sum()))
        self._pending = (i, f)
        self.predicted.append(float(self.theta[i] @ f))
        return float(self.grid[i])

    def update(self, cost: Any) -> None:
        """Record the cost (iterations, ``≥ 1``) of the last proposed ``ω`` and refit."""
        from scipy.optimize import lsq_linear

        if self._pending is None:
            raise RuntimeError("ChebCB.update: call propose(context) first.")
        cost = _check_cost("ChebCB", cost)
        i_now, f = self._pending
        self._pending = None
        self.actions.append(i_now)
        self.features.append(f)
        self.costs.append(cost)
        costs, feats, acts = (
            np.asarray(self.costs),
            np.asarray(self.features),
            np.asarray(self.actions),
        )
        K = costs.max()
        L = (costs.max() - costs.min()) / self.bma
        N = 2.0 + 4.0 * self.bma * L / K * (1.0 + np.log(self.m))
        refit_all = self.scale != K * N
        self.scale = K * N
        ub = np.concatenate([[1.0 / N], 2.0 * self.bma * L / self.scale / np.arange(1, self.m)])
        resnorm = 0.0
        for i in range(self.d):
            if not (refit_all or i == i_now):
                continue
            rows = acts == i
            if not rows.any():
                continue
            X, y = feats[rows], (costs[rows] - 1.0) / self.scale
            theta = np.linalg.lstsq(X, y, rcond=None)[0]
            if np.any(np.abs(theta) > ub):
                # Bounds of zero fix a coefficient at 0 (lsqlin's lb = ub); the rest by scipy.
                free, theta = ub > 0, np.zeros(self.m)
                if free.any():
                    theta[free] = lsq_linear(X[:, free], y, bounds=(-ub[free], ub[free])).x
                resnorm = float(np.sum((X @ theta - y) ** 2))
            self.theta[i] = theta
        alpha = (
            (np.pi + 2.0 / np.pi * np.log(2.0 * self.m + 1))
            / (2.0 * self.scale * (self.m + 1))
            * self.bma
            * L
        )
        t = len(self.costs)
        R = float(np.sum((np.asarray(self.predicted) - costs / K / N) ** 2))
        denom = R - resnorm + 2.0 * alpha**2 * t
        self.eta = 2.0 * t * np.sqrt(self.d * t / denom) if denom > 0 else 0.0
