"""Banded sparse matrices stored by diagonals: fast, jit- and vmap-friendly matrix–vector products.

``DiaMatrix(data, offsets)`` holds ``data[k, i] = A[i, i + offsets[k]]`` (zero where ``i + o`` is
out of range). ``A @ x = Σ_k data[k] * shift(x, offsets[k])``: a handful of fused elementwise
passes, which XLA runs far faster than a gather/scatter ``BCOO`` product for stencil matrices
(5-point finite differences have 5 diagonals). ``data`` may carry leading batch axes (one matrix
per system of a sequence); index them with ``A[i]``.
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
    """A square ``n × n`` matrix by diagonals (module docstring)."""

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
        return self.data.shape[-1]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    def __getitem__(self, i: Any) -> DiaMatrix:
        """The ``i``-th matrix of a batch."""
        return DiaMatrix(self.data[i], self.offsets)

    def mv(self, x: jax.Array) -> jax.Array:
        out = self.data[..., 0, :] * _shift(x, self.offsets[0])
        for k, o in enumerate(self.offsets[1:], start=1):
            out = out + self.data[..., k, :] * _shift(x, o)
        return out

    def __matmul__(self, x: jax.Array) -> jax.Array:
        return self.mv(x)

    @property
    def T(self) -> DiaMatrix:
        # Aᵀ[i, i − o] = A[i − o, i] = data[k, i − o].
        data = jnp.stack([_shift(self.data[..., k, :], -o) for k, o in enumerate(self.offsets)], -2)
        return DiaMatrix(data, tuple(-o for o in self.offsets))

    def diagonal(self) -> jax.Array:
        if 0 not in self.offsets:
            return jnp.zeros((*self.data.shape[:-2], self.n), self.dtype)
        return self.data[..., self.offsets.index(0), :]

    def todense(self) -> jax.Array:
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
    def from_scipy(cls, A: Any) -> DiaMatrix:
        """From any square scipy sparse matrix (its nonzero diagonals)."""
        A = A.tocoo()
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"DiaMatrix.from_scipy: `A` must be square, got shape {A.shape}.")
        n = A.shape[0]
        offsets = tuple(int(o) for o in np.unique(A.col - A.row))
        data = np.zeros((len(offsets), n), np.result_type(A.dtype, np.float32))
        index = {o: k for k, o in enumerate(offsets)}
        np.add.at(data, (np.array([index[o] for o in A.col - A.row], int), A.row), A.data)
        return cls(jnp.asarray(data), offsets)

    @classmethod
    def from_dense(cls, A: Any) -> DiaMatrix:
        import scipy.sparse as sp

        return cls.from_scipy(sp.coo_array(np.asarray(A)))
