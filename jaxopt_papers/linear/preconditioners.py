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

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, raise_if_failed
from jaxopt_papers.linear._splitting import Triangular, as_matrix, check_omega, nonzero_diagonal
from jaxopt_papers.linear.dia import DiaMatrix

__all__ = [
    "SSOR",
    "BlockJacobi",
    "Jacobi",
    "SORSweep",
    "block_jacobi",
    "jacobi",
    "sor_sweep",
    "ssor",
]

# ------------------------------------------------------------------------------------- Jacobi


class Jacobi(eqx.Module):
    """``r ↦ r / diag(A)``."""

    inv_diag: jax.Array

    def __call__(self, r: jax.Array) -> jax.Array:
        return r * self.inv_diag


def jacobi(A: Any) -> Jacobi:
    """Jacobi preconditioner of ``A`` (module docstring).

    A zero on the diagonal raises ``ValueError`` (concrete ``A``) or, traced, a runtime error when
    the preconditioner is built."""
    d = nonzero_diagonal("jacobi", as_matrix("jacobi", A))
    code = RESULTS.where(jnp.all(d != 0), RESULTS.successful, RESULTS.invalid_input)
    msg = {"invalid_input": "jacobi: the diagonal of `A` must have no zeros."}
    return Jacobi(raise_if_failed(1.0 / d, code, msg))


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
    M = as_matrix(owner, A)
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


class SORSweep(eqx.Module):
    """``r ↦ (D/ω + L)⁻¹ r``: one forward SOR sweep from zero (built by :func:`sor_sweep`)."""

    factor: Triangular

    def __call__(self, r: jax.Array) -> jax.Array:
        return self.factor.solve(r)


def sor_sweep(A: Any, omega: float = 1.0) -> SORSweep:
    """SOR preconditioner ``M = D/ω + L`` (``ω = 1``: Gauss–Seidel)."""
    check_omega("sor_sweep", omega)
    M = as_matrix("sor_sweep", A)
    nonzero_diagonal("sor_sweep", M)
    return SORSweep(Triangular(M, jnp.asarray(omega, M.dtype), True))


class SSOR(eqx.Module):
    """``r ↦ ω(2 − ω)(D + ωL)⁻¹ D (D + ωU)⁻¹ r`` (module docstring)."""

    lower: Triangular
    upper: Triangular
    diag: jax.Array

    def __call__(self, r: jax.Array) -> jax.Array:
        # (D + ωU)⁻¹ = (D/ω + U)⁻¹/ω and likewise for L: the ω's combine into (2 − ω)/ω·ω.
        w = self.lower.omega
        y = self.upper.solve(r) / w
        return (2.0 - w) * w * self.lower.solve(self.diag * y) / w


def ssor(A: Any, omega: float = 1.0) -> SSOR:
    """SSOR preconditioner (symmetric Gauss–Seidel at ``ω = 1``); SPD for SPD ``A``."""
    check_omega("ssor", omega)
    M = as_matrix("ssor", A)
    d = nonzero_diagonal("ssor", M)
    w = jnp.asarray(omega, M.dtype)
    return SSOR(Triangular(M, w, True), Triangular(M, w, False), d)
