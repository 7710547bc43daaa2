"""Banded sparse matrices stored by diagonals: fast, jit- and vmap-friendly matrix–vector products.

``DiaMatrix(data, offsets)`` holds ``data[k, i] = A[i, i + offsets[k]]`` (zero where ``i + o`` is
out of range). ``A @ x = Σ_k data[k] * shift(x, offsets[k])``: a handful of fused elementwise
passes, which XLA runs far faster than a gather/scatter ``BCOO`` product for stencil matrices
(5-point finite differences have 5 diagonals). ``data`` may carry leading batch axes (one matrix
per system of a sequence); index them with ``A[i]``.

Differences from the reference code: scipy's ``dia_array`` indexes each stored diagonal by
column (``data[k, j] = A[j − offsets[k], j]``); here by row (``data[k, i] = A[i, i + offsets[k]]``),
so a product is a shift of ``x`` times a row of ``data``. :meth:`DiaMatrix.from_scipy` converts
either way.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DiaMatrix"]


def _shift(x: jax.Array, offset: int) -> jax.Array:
    """``y[i] = x[i + offset]`` along the last axis, zero outside."""
    if offset == 0:
        return x
    n = x.shape[-1]
    pad = [(0, 0)] * (x.ndim - 1)
    if offset > 0:
        return jnp.pad(x[..., offset:], [*pad, (0, min(offset, n))])
    return jnp.pad(x[..., : n + offset], [*pad, (min(-offset, n), 0)])


class DiaMatrix(eqx.Module):
    """A square ``n × n`` matrix stored by diagonals: ``data[..., k, i] = A[i, i + offsets[k]]``.

    Build one with :meth:`from_scipy`, :meth:`from_bcoo` or :meth:`from_dense`, or let
    :func:`~jaxopt_papers.linear.as_operator` choose it for banded input. ``data`` may carry leading
    batch axes (one matrix per system of a sequence, same offsets); ``A[i]`` is the ``i``-th.

    Args:
      data: ``(..., d, n)`` the ``d`` stored diagonals (entries outside the matrix are ignored).
      offsets: ``d`` distinct ints, ``j − i`` of each diagonal (static).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import DiaMatrix
      >>> D = DiaMatrix(jnp.array([[-1.0] * 4, [2.0] * 4, [-1.0] * 4]), (-1, 0, 1))
      >>> D.mv(jnp.ones(4)).tolist()
      [1.0, 0.0, 0.0, 1.0]
      >>> D.todense()[:2].tolist()
      [[2.0, -1.0, 0.0, 0.0], [-1.0, 2.0, -1.0, 0.0]]
    """

    data: jax.Array
    offsets: tuple[int, ...] = eqx.field(static=True)

    def __check_init__(self) -> None:
        if self.data.ndim < 2 or self.data.shape[-2] != len(self.offsets):
            raise ValueError(
                f"DiaMatrix: `data` must have shape (..., {len(self.offsets)}, n) for "
                f"{len(self.offsets)} offsets, got {self.data.shape}."
            )
        if len(set(self.offsets)) != len(self.offsets):
            raise ValueError(f"DiaMatrix: `offsets` must be distinct, got {self.offsets}.")

    @property
    def n(self) -> int:
        """The size ``n``."""
        return self.data.shape[-1]

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, n)``."""
        return (self.n, self.n)

    @property
    def dtype(self) -> Any:
        """The values' dtype."""
        return self.data.dtype

    def __getitem__(self, i: Any) -> DiaMatrix:
        """The ``i``-th matrix of a batch."""
        return DiaMatrix(self.data[i], self.offsets)

    def mv(self, x: jax.Array) -> jax.Array:
        """``A @ x`` for ``x`` of shape ``(..., n)`` (broadcast against the batch axes).

        Args:
          x: the vector(s).

        Returns:
          ``A x`` (``(..., n)``).
        """
        x = jnp.asarray(x)
        if not self.offsets:
            shape = jnp.broadcast_shapes((*self.data.shape[:-2], self.n), x.shape)
            return jnp.zeros(shape, jnp.result_type(self.dtype, x.dtype))
        out = self.data[..., 0, :] * _shift(x, self.offsets[0])
        for k, o in enumerate(self.offsets[1:], start=1):
            out = out + self.data[..., k, :] * _shift(x, o)
        return out

    def __matmul__(self, x: jax.Array) -> jax.Array:
        return self.mv(x)

    @property
    def T(self) -> DiaMatrix:
        """The transpose (a ``DiaMatrix`` with negated offsets)."""
        # Aᵀ[i, i − o] = A[i − o, i] = data[k, i − o].
        data = jnp.stack([_shift(self.data[..., k, :], -o) for k, o in enumerate(self.offsets)], -2)
        return DiaMatrix(data, tuple(-o for o in self.offsets))

    def diagonal(self) -> jax.Array:
        """``diag(A)`` (``(..., n)``)."""
        if 0 not in self.offsets:
            return jnp.zeros((*self.data.shape[:-2], self.n), self.dtype)
        return self.data[..., self.offsets.index(0), :]

    def todense(self) -> jax.Array:
        """The dense ``(..., n, n)`` array."""
        n = self.n
        i = jnp.arange(n)
        dense = jnp.zeros((*self.data.shape[:-2], n, n), self.dtype)
        for k, o in enumerate(self.offsets):
            j = i + o
            ok = (j >= 0) & (j < n)
            dense = dense.at[..., i, jnp.clip(j, 0, n - 1)].add(
                jnp.where(ok, self.data[..., k, :], 0)
            )
        return dense

    def to_scipy(self) -> Any:
        """``scipy.sparse.csr_array`` (one matrix, not a batch)."""
        import scipy.sparse as sp

        data = np.asarray(self.data)
        n = self.n
        diags = [data[k, : n - o] if o >= 0 else data[k, -o:] for k, o in enumerate(self.offsets)]
        return sp.csr_array(sp.diags(diags, list(self.offsets), shape=(n, n)))

    @classmethod
    def from_parts(cls, rows: np.ndarray, cols: np.ndarray, values: Any, n: int) -> DiaMatrix:
        """From coordinates: ``A[rows[j], cols[j]] += values[j]``, one stored diagonal per
        distinct ``cols − rows``.

        Args:
          rows: the row indices, a concrete integer array in ``[0, n)``.
          cols: the column indices, a concrete integer array in ``[0, n)``.
          values: the values (numpy or JAX; differentiable when JAX), integers become floats.
          n: the size.

        Returns:
          The ``DiaMatrix`` (offsets sorted); ``values`` keep their dtype when inexact.

        Example:
          >>> import numpy as np
          >>> D = DiaMatrix.from_parts(np.array([0, 1]), np.array([1, 0]), np.array([2.0, 3.0]), 2)
          >>> D.offsets, D.todense().tolist()
          ((-1, 1), [[0.0, 2.0], [3.0, 0.0]])
        """
        from jaxopt_papers.linear.sparse import diagonals, float_dtype, place

        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        offsets, k = diagonals(rows, cols, n)
        data = place(values, (offsets.size, n), (k, rows), float_dtype(values.dtype))
        return cls(data, tuple(int(o) for o in offsets))

    @classmethod
    def from_scipy(cls, A: Any) -> DiaMatrix:
        """From any square scipy sparse matrix or array (any format): its non-zero diagonals.

        Args:
          A: the matrix.

        Returns:
          The ``DiaMatrix`` (dtype kept when inexact, integers become floats).

        Example:
          >>> import numpy as np, scipy.sparse as sp
          >>> A = sp.diags([[-1.0] * 3, [2.0] * 4, [-1.0] * 3], [-1, 0, 1], format="csr")
          >>> D = DiaMatrix.from_scipy(A)
          >>> D.offsets, bool(np.allclose(D @ np.ones(4), A @ np.ones(4)))
          ((-1, 0, 1), True)
        """
        from jaxopt_papers.linear.sparse import coo_parts, is_scipy_sparse

        if not is_scipy_sparse(A):
            raise TypeError(
                f"DiaMatrix.from_scipy: `A` must be a scipy sparse matrix, got {type(A).__name__}."
            )
        return cls.from_parts(*coo_parts(A, "DiaMatrix.from_scipy"))

    @classmethod
    def from_bcoo(cls, A: Any) -> DiaMatrix:
        """From a square ``BCOO``/``BCSR`` with concrete indices (values may be traced).

        Args:
          A: the matrix (no batch or dense dimensions).

        Returns:
          The ``DiaMatrix``; its ``data`` is a differentiable function of ``A.data``.

        Example:
          >>> import jax.numpy as jnp
          >>> from jax.experimental import sparse
          >>> A = sparse.BCOO.fromdense(jnp.array([[2.0, 1.0], [0.0, 3.0]]))
          >>> DiaMatrix.from_bcoo(A).offsets
          (0, 1)
        """
        from jaxopt_papers.linear.sparse import coo_parts

        return cls.from_parts(*coo_parts(A, "DiaMatrix.from_bcoo"))

    @classmethod
    def from_dense(cls, A: Any) -> DiaMatrix:
        """From a square dense array (concrete): its non-zero diagonals.

        Args:
          A: the ``(n, n)`` array.

        Returns:
          The ``DiaMatrix``.

        Example:
          >>> DiaMatrix.from_dense([[2.0, 1.0], [0.0, 3.0]]).offsets
          (0, 1)
        """
        from jaxopt_papers.linear.sparse import check_square

        A = np.asarray(A)
        check_square("DiaMatrix.from_dense", A.shape)
        rows, cols = np.nonzero(A)
        return cls.from_parts(rows, cols, A[rows, cols], A.shape[0])
