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
    """``r ↦ r / diag(A)``: the Jacobi preconditioner (built by :func:`jacobi`).

    Args:
      inv_diag: ``1 / diag(A)``, shape ``(n,)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import Jacobi
      >>> Jacobi(jnp.array([0.5, 0.25]))(jnp.array([2.0, 4.0])).tolist()
      [1.0, 1.0]
    """

    inv_diag: jax.Array

    def __call__(self, r: jax.Array) -> jax.Array:
        return r * self.inv_diag


def jacobi(A: Any) -> Jacobi:
    """Jacobi preconditioner of ``A``: ``M = diag(A)``, applied as ``r ↦ r / diag(A)``.

    Args:
      A: a square matrix: dense, :class:`~jaxopt_papers.linear.DiaMatrix`, or (up to
        ``n = 4096``) a BCOO/BCSR matrix or lineax operator.

    Returns:
      A :class:`Jacobi` module (``M⁻¹`` as a callable).

    Raises:
      ValueError: a zero on the diagonal of a concrete ``A`` (traced: a runtime error when the
        preconditioner is built).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> A = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
      >>> M = linear.jacobi(A)
      >>> M(jnp.array([4.0, 3.0, 2.0])).tolist()
      [1.0, 1.0, 1.0]
      >>> sol = linear.cg(A, jnp.ones(3), preconditioner=M)
      >>> bool(jnp.allclose(A @ sol.x, 1.0, atol=1e-5))
      True
    """
    d = nonzero_diagonal("jacobi", as_matrix("jacobi", A))
    code = RESULTS.where(jnp.all(d != 0), RESULTS.successful, RESULTS.invalid_input)
    msg = {"invalid_input": "jacobi: the diagonal of `A` must have no zeros."}
    return Jacobi(raise_if_failed(1.0 / d, code, msg))


class BlockJacobi(eqx.Module):
    """``r ↦ blockdiag(A)⁻¹ r`` with LU factors of the diagonal blocks (see :func:`block_jacobi`).

    Args:
      lu: the LU factors of the diagonal blocks, shape ``(num_blocks, size, size)`` (the last
        block padded with an identity).
      pivots: their pivots, shape ``(num_blocks, size)``.
      n: the size of ``A``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> A = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
      >>> M = linear.block_jacobi(A, block_size=3)  # one block: the exact inverse
      >>> bool(jnp.allclose(M(A @ jnp.array([1.0, 2.0, 3.0])), jnp.array([1.0, 2.0, 3.0])))
      True
    """

    lu: jax.Array  # (num_blocks, size, size)
    pivots: jax.Array
    n: int = eqx.field(static=True)

    def __call__(self, r: jax.Array) -> jax.Array:
        nb, size = self.lu.shape[:2]
        blocks = jnp.pad(r, (0, nb * size - self.n)).reshape(nb, size)
        solve = jax.vmap(lambda lu, p, v: jax.scipy.linalg.lu_solve((lu, p), v))
        return solve(self.lu, self.pivots, blocks).reshape(-1)[: self.n]


def block_jacobi(A: Any, block_size: int = 64) -> BlockJacobi:
    """Block Jacobi preconditioner with contiguous diagonal blocks of ``block_size`` rows.

    ``M`` is the block diagonal of ``A`` (PETSc's ``bjacobi`` with exact local solves; PETSc's
    default local solve is ILU(0)); the last block may be smaller. Each block is LU-factored
    once.

    Args:
      A: a square matrix: dense, :class:`~jaxopt_papers.linear.DiaMatrix`, or (up to
        ``n = 4096``) a BCOO/BCSR matrix or lineax operator.
      block_size: rows per block (default 64).

    Returns:
      A :class:`BlockJacobi` module (``M⁻¹`` as a callable).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> A = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
      >>> M = linear.block_jacobi(A, block_size=2)  # blocks rows {0, 1} and {2}
      >>> blocks = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.0, 2.0]])
      >>> r = jnp.array([1.0, -1.0, 2.0])
      >>> bool(jnp.allclose(M(blocks @ r), r))
      True
    """
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
    """``r ↦ (D/ω + L)⁻¹ r``: one forward SOR sweep from zero (built by :func:`sor_sweep`).

    Args:
      factor: the lower-triangular factor ``D/ω + L`` and its solve.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> A = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
      >>> M = linear.sor_sweep(A)  # Gauss–Seidel: D + L
      >>> r = jnp.array([1.0, -1.0, 2.0])
      >>> bool(jnp.allclose(M(jnp.tril(A) @ r), r))
      True
    """

    factor: Triangular

    def __call__(self, r: jax.Array) -> jax.Array:
        return self.factor.solve(r)


def sor_sweep(A: Any, omega: float = 1.0) -> SORSweep:
    """SOR preconditioner ``M = D/ω + L`` (``ω = 1``: Gauss–Seidel).

    One forward sweep from zero; ``M`` is not symmetric, so use it with GMRES, not CG.

    Args:
      A: a square matrix with a non-zero diagonal: dense,
        :class:`~jaxopt_papers.linear.DiaMatrix`, or (up to ``n = 4096``) BCOO/BCSR or a lineax
        operator.
      omega: the relaxation ``ω`` in ``(0, 2)`` (default 1).

    Returns:
      A :class:`SORSweep` module (``M⁻¹`` as a callable).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> A = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
      >>> w = 1.5
      >>> M = jnp.diag(jnp.diag(A)) / w + jnp.tril(A, -1)
      >>> r = jnp.array([1.0, -1.0, 2.0])
      >>> bool(jnp.allclose(linear.sor_sweep(A, w)(M @ r), r))
      True
    """
    check_omega("sor_sweep", omega)
    M = as_matrix("sor_sweep", A)
    nonzero_diagonal("sor_sweep", M)
    return SORSweep(Triangular(M, jnp.asarray(omega, M.dtype), True))


class SSOR(eqx.Module):
    """``r ↦ ω(2 − ω)(D + ωL)⁻¹ D (D + ωU)⁻¹ r``: SSOR (built by :func:`ssor`).

    Args:
      lower: the lower factor ``D/ω + L`` and its solve.
      upper: the upper factor ``D/ω + U`` and its solve.
      diag: ``diag(A)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> A = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
      >>> M = linear.ssor(A)  # symmetric Gauss–Seidel
      >>> P = jnp.stack([M(e) for e in jnp.eye(3)])  # M⁻¹ as a matrix: symmetric
      >>> bool(jnp.allclose(P, P.T)), bool(jnp.all(jnp.linalg.eigvalsh(P) > 0))
      (True, True)
    """

    lower: Triangular
    upper: Triangular
    diag: jax.Array

    def __call__(self, r: jax.Array) -> jax.Array:
        # (D + ωU)⁻¹ = (D/ω + U)⁻¹/ω and likewise for L: the ω's combine into (2 − ω)/ω·ω.
        w = self.lower.omega
        y = self.upper.solve(r) / w
        return (2.0 - w) * w * self.lower.solve(self.diag * y) / w


def ssor(A: Any, omega: float = 1.0) -> SSOR:
    """SSOR preconditioner (symmetric Gauss–Seidel at ``ω = 1``); SPD for SPD ``A``.

    ``M = (D + ωU) D⁻¹ (D + ωL) / (ω(2 − ω))`` with ``A = L + D + U``, the factor order of the
    "Learning to Relax" reference code's ``ssor_pcg``. SPD for SPD ``A`` and ``0 < ω < 2``, so
    it suits CG.

    Args:
      A: a square matrix with a non-zero diagonal: dense,
        :class:`~jaxopt_papers.linear.DiaMatrix`, or (up to ``n = 4096``) BCOO/BCSR or a lineax
        operator.
      omega: the relaxation ``ω`` in ``(0, 2)`` (default 1).

    Returns:
      An :class:`SSOR` module (``M⁻¹`` as a callable).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> A = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
      >>> w = 1.2
      >>> D, L, U = jnp.diag(jnp.diag(A)), jnp.tril(A, -1), jnp.triu(A, 1)
      >>> M = (D + w * U) @ jnp.linalg.inv(D) @ (D + w * L) / (w * (2 - w))
      >>> r = jnp.array([1.0, -1.0, 2.0])
      >>> bool(jnp.allclose(linear.ssor(A, w)(M @ r), r))
      True
      >>> sol = linear.cg(A, jnp.ones(3), preconditioner=linear.ssor(A, w))
      >>> bool(jnp.allclose(A @ sol.x, 1.0, atol=1e-5))
      True
    """
    check_omega("ssor", omega)
    M = as_matrix("ssor", A)
    d = nonzero_diagonal("ssor", M)
    w = jnp.asarray(omega, M.dtype)
    return SSOR(Triangular(M, w, True), Triangular(M, w, False), d)
