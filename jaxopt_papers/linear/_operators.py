"""What the Krylov solvers accept as ``A``: one small wrapper with ``mv``, ``n`` and a diagonal."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jax.experimental import sparse as jsparse

__all__ = ["Operator", "as_operator"]


class Operator(eqx.Module):
    """A square linear map ``x ↦ Ax`` on ``R^n`` with what the solvers need.

    ``source`` is the matrix (a pytree: traced, not baked into compiled code) or a callable."""

    source: Any
    n: int = eqx.field(static=True)

    def mv(self, x: jax.Array) -> jax.Array:
        A = self.source
        if isinstance(A, lx.AbstractLinearOperator) or (hasattr(A, "mv") and hasattr(A, "shape")):
            return A.mv(x)
        if isinstance(A, (jax.Array, jsparse.BCOO, jsparse.BCSR)):
            return A @ x
        return A(x)

    def diagonal(self) -> jax.Array:
        """``diag(A)``; only for matrices (dense, sparse, lineax, objects with ``diagonal()``)."""
        A = self.source
        if isinstance(A, lx.AbstractLinearOperator):
            return lx.diagonal(A)
        if isinstance(A, (jsparse.BCOO, jsparse.BCSR)):
            coo = A if isinstance(A, jsparse.BCOO) else A.to_bcoo()
            rows, cols = coo.indices[:, 0], coo.indices[:, 1]
            on_diagonal = jnp.where(rows == cols, coo.data, 0)
            return jnp.zeros(self.n, coo.dtype).at[rows].add(on_diagonal, mode="drop")
        if isinstance(A, jax.Array):
            return jnp.diagonal(A)
        if hasattr(A, "diagonal"):
            return A.diagonal()
        raise TypeError(
            "diagonal: `A` was given as a callable x -> Ax, which has no diagonal; pass the "
            "matrix (dense, BCOO/BCSR, DiaMatrix or a lineax operator) for a Jacobi or SOR "
            "preconditioner."
        )


def as_operator(A: Any, n: int | None = None, *, owner: str = "linear") -> Operator:
    """Wrap ``A``: a callable ``x ↦ Ax`` (with ``n``), a square 2-D array,
    ``jax.experimental.sparse.BCOO``/``BCSR``, a lineax operator, or an object with ``mv``
    (e.g. :class:`~jaxopt_papers.linear.DiaMatrix`)."""
    if isinstance(A, Operator):
        return A
    if isinstance(A, lx.AbstractLinearOperator):
        size = A.in_size()
        if A.out_size() != size:
            raise ValueError(f"{owner}: `A` must be square, got a {A.out_size()}x{size} operator.")
        return Operator(A, size)
    if isinstance(A, (jsparse.BCOO, jsparse.BCSR)):
        _check_square(owner, A.shape)
        return Operator(A, A.shape[0])
    if hasattr(A, "mv") and hasattr(A, "shape"):
        _check_square(owner, tuple(A.shape))
        return Operator(A, A.shape[0])
    if isinstance(A, (jax.Array, jnp.ndarray)) or hasattr(A, "__array__"):
        A = jnp.asarray(A)
        _check_square(owner, A.shape)
        return Operator(A, A.shape[0])
    if callable(A):
        if n is None:
            raise ValueError(
                f"{owner}: `A` is a callable x -> Ax; its size must be known (pass b)."
            )
        return Operator(A, int(n))
    raise TypeError(
        f"{owner}: `A` must be a square matrix (jax/numpy array, BCOO/BCSR, DiaMatrix), a lineax "
        f"operator or a callable x -> Ax; got {type(A).__name__}."
    )


def _check_square(owner: str, shape: tuple) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{owner}: `A` must be a square matrix, got shape {shape}.")


def stack_operators(operators: list | tuple) -> Any | None:
    """One stacked operator for a list of matrices that share a structure, or ``None``.

    ``solve_sequence`` solves a stacked sequence in one compiled ``lax.scan``; a list of
    ``DiaMatrix`` with the same offsets (after :func:`as_operator`) is stacked along a new
    leading axis. Anything else returns ``None`` (solved one by one).
    """
    from jaxopt_papers.linear.dia import DiaMatrix

    if not operators or not all(isinstance(A, DiaMatrix) for A in operators):
        return None
    first = operators[0]
    if any(A.offsets != first.offsets or A.data.shape != first.data.shape for A in operators):
        return None
    return DiaMatrix(jnp.stack([A.data for A in operators]), first.offsets)
