"""Preconditioners for the Krylov solvers: Jacobi, block Jacobi, SOR and SSOR.

Each is an ``equinox.Module`` holding arrays, called as ``M(r) = M⁻¹r``: the solvers' jitted code
is reused for every new matrix of the same shape (a fresh closure would compile again). Build one
from a matrix with the lower-case functions; ``solve_sequence`` takes the function itself as its
``preconditioner`` factory (e.g. ``preconditioner=linear.jacobi``).

With ``A = L + D + U`` (strict lower part, diagonal, strict upper part):

- Jacobi: ``M = D``;
- block Jacobi: ``M`` = the diagonal blocks of ``A`` of ``block_size`` rows (PETSc's ``bjacobi``
  with exact local solves; the last block may be smaller);
- SOR: ``M = D/ω + L``, one forward Gauss–Seidel sweep with relaxation ``ω`` (not symmetric: for
  GMRES, not CG);
- SSOR: ``M = (D + ωU) D⁻¹ (D + ωL) / (ω(2 − ω))``, as the "Learning to Relax" reference code's
  ``ssor_pcg`` (``M₁ = (D + ωL)ᵀD⁻¹``, ``M₂ = (D + ωL)/(ω(2 − ω))``), which is ``(D + ωL)ᵀ`` for
  the symmetric matrices it targets; SPD for SPD ``A`` and ``0 < ω < 2``, so it suits CG.

Matrices: dense arrays, :class:`~jaxopt_papers.linear.DiaMatrix`, and (up to ``n = 4096``, made
dense) ``jax.experimental.sparse`` BCOO/BCSR and lineax operators. The triangular solves of SOR and
SSOR are ``solve_triangular`` on dense matrices and a sequential sweep over the rows (``lax.scan``)
on a ``DiaMatrix``: exact, but ``n`` dependent steps per application, so slow for large ``n``.

Differences from the reference code: PETSc's ``bjacobi`` splits the rows across processes and
solves each block by ILU(0) by default; here the blocks are contiguous and solved exactly (LU). The
SSOR factor order follows the "Learning to Relax" code (upper sweep applied last in ``M``).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jax.experimental import sparse as jsparse

from jaxopt_papers import _validation as V
from jaxopt_papers.linear.dia import DiaMatrix

__all__ = ["SOR", "SSOR", "BlockJacobi", "Jacobi", "block_jacobi", "jacobi", "sor_sweep", "ssor"]

_DENSE_LIMIT = 4096


def _matrix(owner: str, A: Any) -> jax.Array | DiaMatrix:
    """``A`` as a ``DiaMatrix`` or a dense 2-D array (small sparse and lineax operators)."""
    if isinstance(A, DiaMatrix):
        if A.data.ndim != 2:
            raise ValueError(
                f"{owner}: `A` must be one DiaMatrix, got a batch with data shape "
                f"{A.data.shape}; index it (A[i]) or pass the factory to solve_sequence."
            )
        return A
    if isinstance(A, (jsparse.BCOO, jsparse.BCSR, lx.AbstractLinearOperator)):
        n = A.shape[0] if not isinstance(A, lx.AbstractLinearOperator) else A.in_size()
        if n > _DENSE_LIMIT:
            raise ValueError(
                f"{owner}: a {type(A).__name__} with n = {n} > {_DENSE_LIMIT} would be made dense; "
                "convert a banded matrix with DiaMatrix.from_scipy instead."
            )
        dense = A.as_matrix() if isinstance(A, lx.AbstractLinearOperator) else A.todense()
        return _matrix(owner, dense)
    if callable(A) and not hasattr(A, "shape"):
        raise TypeError(
            f"{owner}: `A` was given as a callable x -> Ax, which has no entries; pass the "
            "matrix (dense, DiaMatrix, BCOO/BCSR or a lineax operator)."
        )
    A = jnp.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{owner}: `A` must be a square matrix, got shape {A.shape}.")
    return A


def _diagonal(owner: str, A: jax.Array | DiaMatrix) -> jax.Array:
    d = A.diagonal() if isinstance(A, DiaMatrix) else jnp.diagonal(A)
    if not isinstance(d, jax.core.Tracer) and not bool(jnp.all(d != 0)):
        raise ValueError(
            f"{owner}: the diagonal of `A` must have no zeros, got {int(jnp.sum(d == 0))} zero "
            "entries."
        )
    return d


def _check_omega(owner: str, omega: Any) -> None:
    if isinstance(omega, (int, float)) and not 0.0 < float(omega) < 2.0:
        raise ValueError(f"{owner}: `omega` must lie in (0, 2), got {omega}.")


# ------------------------------------------------------------------------------------- Jacobi


class Jacobi(eqx.Module):
    """``r ↦ r / diag(A)``."""

    inv_diag: jax.Array

    def __call__(self, r: jax.Array) -> jax.Array:
        return r * self.inv_diag


def jacobi(A: Any) -> Jacobi:
    """Jacobi preconditioner of ``A`` (module docstring)."""
    return Jacobi(1.0 / _diagonal("jacobi", _matrix("jacobi", A)))


class BlockJacobi(eqx.Module):
    """``r ↦ blockdiag(A)⁻¹ r`` with LU factors of the diagonal blocks."""

    lu: jax.Array  # (num_blocks, size, size)
    pivots: jax.Array
    n: int = eqx.field(static=True)

    def __call__(self, r: jax.Array) -> jax.Array:
        nb, size = self.lu.shape[:2]
        blocks = jnp.pad(r, (0, nb * size - self.n)).reshape(nb, size)
        solve = jax.vmap(lambda lu, p, v: jax.scipy.linalg.lu_solve((lu, p), v))
        return solve(self.lu, self.pivots, blocks).reshape(-1)[: self.n]


def block_jacobi(A: Any, block_size: int = 64) -> BlockJacobi:
    """Block Jacobi preconditioner with contiguous diagonal blocks of ``block_size`` rows."""
    owner = "block_jacobi"
    V.check_int(owner, "block_size", block_size, low=1)
    M = _matrix(owner, A)
    n = M.shape[0]
    size = min(block_size, n)
    nb = -(-n // size)
    i = jnp.arange(nb * size).reshape(nb, size)  # padded rows get an identity block
    row, col = i[:, :, None], i[:, None, :]
    inside = (row < n) & (col < n)
    if isinstance(M, DiaMatrix):
        blocks = jnp.zeros((nb, size, size), M.dtype)
        for k, o in enumerate(M.offsets):
            if abs(o) < size:
                entry = M.data[k, jnp.clip(row, 0, n - 1)]
                blocks = blocks + jnp.where((col - row == o) & inside, entry, 0)
    else:
        blocks = jnp.where(inside, M[jnp.clip(row, 0, n - 1), jnp.clip(col, 0, n - 1)], 0)
    blocks = blocks + jnp.where((row == col) & ~inside, 1.0, 0.0).astype(blocks.dtype)
    lu, pivots, _ = jax.lax.linalg.lu(blocks)
    return BlockJacobi(lu, pivots, n)


# ------------------------------------------------------------------------ SOR / SSOR sweeps


def _dia_sweep(diag: jax.Array, data: jax.Array, offsets: tuple[int, ...], r: jax.Array,
               forward: bool) -> jax.Array:  # fmt: skip
    """Solve ``(diag + T) x = r`` for ``T`` = the given strict lower (forward) or upper diagonals
    (``data[k, i] = T[i, i + offsets[k]]``), one row after the other."""
    n = r.shape[0]
    idx = jnp.arange(n) if forward else jnp.arange(n - 1, -1, -1)

    def step(x, i):
        acc = r[i]
        for k, o in enumerate(offsets):
            j = i + o
            ok = (j >= 0) & (j < n)
            acc = acc - jnp.where(ok, data[k, i] * x[jnp.clip(j, 0, n - 1)], 0.0)
        return x.at[i].set(acc / diag[i]), None

    x, _ = jax.lax.scan(step, jnp.zeros_like(r), idx)
    return x


class _Triangular(eqx.Module):
    """``D/ω + L`` (or ``D/ω + U``) of a dense or banded ``A``: ``solve(r)`` and ``mv(x)``."""

    matrix: Any  # dense (n, n) or DiaMatrix
    omega: jax.Array
    lower: bool = eqx.field(static=True)

    def _parts(self):
        A = self.matrix
        keep = [(k, o) for k, o in enumerate(A.offsets) if (o < 0 if self.lower else o > 0)]
        data = A.data[jnp.array([k for k, _ in keep], int)] if keep else A.data[:0]
        return A.diagonal() / self.omega, data, tuple(o for _, o in keep)

    def solve(self, r: jax.Array) -> jax.Array:
        if isinstance(self.matrix, DiaMatrix):
            diag, data, offsets = self._parts()
            return _dia_sweep(diag, data, offsets, r, forward=self.lower)
        A = self.matrix
        T = jnp.tril(A, -1) if self.lower else jnp.triu(A, 1)
        M = T + jnp.diag(jnp.diagonal(A) / self.omega)
        return jax.scipy.linalg.solve_triangular(M, r, lower=self.lower)


class SOR(eqx.Module):
    """``r ↦ (D/ω + L)⁻¹ r``: one forward SOR sweep from zero."""

    factor: _Triangular

    def __call__(self, r: jax.Array) -> jax.Array:
        return self.factor.solve(r)


def sor_sweep(A: Any, omega: float = 1.0) -> SOR:
    """SOR preconditioner ``M = D/ω + L`` (``ω = 1``: Gauss–Seidel)."""
    _check_omega("sor_sweep", omega)
    M = _matrix("sor_sweep", A)
    _diagonal("sor_sweep", M)
    return SOR(_Triangular(M, jnp.asarray(omega, M.dtype), True))


class SSOR(eqx.Module):
    """``r ↦ ω(2 − ω)(D + ωL)⁻¹ D (D + ωU)⁻¹ r`` (module docstring)."""

    lower: _Triangular
    upper: _Triangular
    diag: jax.Array

    def __call__(self, r: jax.Array) -> jax.Array:
        # (D + ωU)⁻¹ = (D/ω + U)⁻¹/ω and likewise for L: the ω's combine into (2 − ω)/ω·ω.
        w = self.lower.omega
        y = self.upper.solve(r) / w
        return (2.0 - w) * w * self.lower.solve(self.diag * y) / w


def ssor(A: Any, omega: float = 1.0) -> SSOR:
    """SSOR preconditioner (symmetric Gauss–Seidel at ``ω = 1``); SPD for SPD ``A``."""
    _check_omega("ssor", omega)
    M = _matrix("ssor", A)
    d = _diagonal("ssor", M)
    w = jnp.asarray(omega, M.dtype)
    return SSOR(_Triangular(M, w, True), _Triangular(M, w, False), d)
