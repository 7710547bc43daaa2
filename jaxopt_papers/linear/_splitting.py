"""The splitting ``A = L + D + U`` shared by the SOR/SSOR preconditioners and the SOR solver.

``as_matrix`` brings ``A`` to a dense array or a :class:`~jaxopt_papers.linear.DiaMatrix`;
``Triangular`` is ``D/ω + L`` (or ``D/ω + U``) with a triangular ``solve``; ``check_omega`` and
``nonzero_diagonal`` are the argument checks both use.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jax.experimental import sparse as jsparse

from jaxopt_papers.linear.dia import DiaMatrix

__all__ = ["Triangular", "as_matrix", "check_omega", "dia_sweep", "nonzero_diagonal"]

_DENSE_LIMIT = 4096


def as_matrix(owner: str, A: Any) -> jax.Array | DiaMatrix:
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
        return as_matrix(owner, dense)
    if callable(A) and not hasattr(A, "shape"):
        raise TypeError(
            f"{owner}: `A` was given as a callable x -> Ax, which has no entries; pass the "
            "matrix (dense, DiaMatrix, BCOO/BCSR or a lineax operator)."
        )
    A = jnp.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{owner}: `A` must be a square matrix, got shape {A.shape}.")
    return A


def nonzero_diagonal(owner: str, A: jax.Array | DiaMatrix) -> jax.Array:
    d = A.diagonal() if isinstance(A, DiaMatrix) else jnp.diagonal(A)
    if not isinstance(d, jax.core.Tracer) and not bool(jnp.all(d != 0)):
        raise ValueError(
            f"{owner}: the diagonal of `A` must have no zeros, got {int(jnp.sum(d == 0))} zero "
            "entries."
        )
    return d


def check_omega(owner: str, omega: Any) -> None:
    if isinstance(omega, (int, float)) and not 0.0 < float(omega) < 2.0:
        raise ValueError(f"{owner}: `omega` must lie in (0, 2), got {omega}.")


def dia_sweep(diag: jax.Array, data: jax.Array, offsets: tuple[int, ...], r: jax.Array,
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


class Triangular(eqx.Module):
    """``D/ω + L`` (``lower=True``) or ``D/ω + U`` of a dense or banded ``A``, with ``solve(r)``.

    ``matrix``: dense ``(n, n)`` or a :class:`~jaxopt_papers.linear.DiaMatrix`; ``omega``: the
    relaxation (an array, so a new value does not recompile)."""

    matrix: Any  # dense (n, n) or DiaMatrix
    omega: jax.Array
    lower: bool = eqx.field(static=True)

    def _parts(self):
        A = self.matrix
        keep = [(k, o) for k, o in enumerate(A.offsets) if (o < 0 if self.lower else o > 0)]
        data = A.data[jnp.array([k for k, _ in keep], int)] if keep else A.data[:0]
        return A.diagonal() / self.omega, data, tuple(o for _, o in keep)

    def solve(self, r: jax.Array) -> jax.Array:
        """``(D/ω + L)⁻¹r`` (or with ``U``), by a triangular solve (dense) or a sweep (banded)."""
        if isinstance(self.matrix, DiaMatrix):
            diag, data, offsets = self._parts()
            return dia_sweep(diag, data, offsets, r, forward=self.lower)
        A = self.matrix
        T = jnp.tril(A, -1) if self.lower else jnp.triu(A, 1)
        M = T + jnp.diag(jnp.diagonal(A) / self.omega)
        return jax.scipy.linalg.solve_triangular(M, r, lower=self.lower)
