"""What the Krylov solvers accept as ``A``: one small wrapper with ``mv``, ``n`` and a diagonal.

Sparse input (scipy sparse of any format, ``BCOO``, ``BCSR``) is converted once to the fastest
product on XLA: :class:`~jaxopt_papers.linear.DiaMatrix` when it is banded — at most
``MAX_DIAGONALS`` distinct diagonals, filled to at least ``MIN_DIAGONAL_FILL`` (non-zeros over
``diagonals × n``) — else :class:`~jaxopt_papers.linear.EllMatrix`. Both thresholds come from
the "banded threshold" table of ``benchmarks/linear.py --parts sparse``: within them the diagonal
product is the faster one.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jax.experimental import sparse as jsparse

from jaxopt_papers.linear.dia import DiaMatrix
from jaxopt_papers.linear.sparse import (
    EllMatrix,
    check_square,
    coo_parts,
    diagonals,
    is_scipy_sparse,
)

__all__ = ["Operator", "as_operator", "is_banded", "sparse_operator", "stack_operators"]

MAX_DIAGONALS = 64
MIN_DIAGONAL_FILL = 0.7


class Operator(eqx.Module):
    """A square linear map ``x ↦ Ax`` on ``R^n`` with what the solvers need.

    The solvers wrap their ``A`` in one (through :func:`as_operator`); users rarely build it.

    Args:
      source: the matrix (a dense array, BCOO/BCSR, :class:`DiaMatrix`, ``EllMatrix``, a lineax
        operator; a pytree, so traced and not baked into compiled code) or a callable
        ``x -> Ax``.
      n: the size (static).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import Operator
      >>> op = Operator(jnp.array([[2.0, 1.0], [0.0, 3.0]]), 2)
      >>> op.mv(jnp.ones(2)).tolist(), op.diagonal().tolist()
      ([3.0, 3.0], [2.0, 3.0])
    """

    source: Any
    n: int = eqx.field(static=True)

    def mv(self, x: jax.Array) -> jax.Array:
        """``A x``.

        Args:
          x: a vector of shape ``(n,)``.

        Returns:
          ``A x``, shape ``(n,)``.
        """
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


def sparse_operator(A: Any, *, owner: str = "sparse_operator") -> DiaMatrix | EllMatrix:
    """A square sparse matrix in the layout with the fastest product under ``jit``.

    A banded matrix (at most ``MAX_DIAGONALS`` = 64 distinct diagonals ``j − i`` holding non-zeros,
    and non-zeros ≥ ``MIN_DIAGONAL_FILL`` = 0.7 × diagonals × ``n``) becomes a
    :class:`~jaxopt_papers.linear.DiaMatrix`, anything else an
    :class:`~jaxopt_papers.linear.EllMatrix`. Explicitly stored zeros count as entries.

    Args:
      A: a scipy sparse matrix or array (any format), or a ``BCOO``/``BCSR`` with concrete
        indices (its values may be traced: the result is differentiable in ``A.data``).
      owner: the name used in error messages.

    Returns:
      A ``DiaMatrix`` or ``EllMatrix`` with the values' dtype (integers become floats).

    Example:
      >>> import scipy.sparse as sp
      >>> lap = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(100, 100), format="csr")
      >>> type(sparse_operator(lap)).__name__
      'DiaMatrix'
      >>> type(sparse_operator(sp.random(100, 100, density=0.05, random_state=0))).__name__
      'EllMatrix'
    """
    rows, cols, values, n = coo_parts(A, owner)
    if is_banded(rows, cols, n):
        return DiaMatrix.from_parts(rows, cols, values, n)
    return EllMatrix.from_parts(rows, cols, values, n)


def is_banded(rows: np.ndarray, cols: np.ndarray, n: int) -> bool:
    """Whether entries at ``(rows, cols)`` of an ``n × n`` matrix are stored faster by diagonals.

    Args:
      rows: the entries' row indices (a concrete integer array).
      cols: the entries' column indices (a concrete integer array).
      n: the size.

    Returns:
      ``True`` when at most ``MAX_DIAGONALS`` distinct ``cols − rows`` occur and the entries fill
      at least ``MIN_DIAGONAL_FILL`` of those diagonals' ``diagonals × n`` slots.

    Example:
      >>> import numpy as np
      >>> i = np.arange(10)
      >>> is_banded(i, i, 10), is_banded(np.array([0, 9]), np.array([9, 0]), 10)
      (True, False)
    """
    offsets, _ = diagonals(rows, cols, n)
    if offsets.size == 0:
        return True
    return offsets.size <= MAX_DIAGONALS and len(rows) >= MIN_DIAGONAL_FILL * offsets.size * n


def as_operator(A: Any, n: int | None = None, *, owner: str = "linear") -> Operator:
    """Wrap ``A`` as an :class:`Operator` for the Krylov solvers.

    Args:
      A: a square matrix — a jax/numpy array, a scipy sparse matrix or array of any format, a
        ``jax.experimental.sparse`` ``BCOO``/``BCSR``, a lineax operator, or an object with ``mv``
        and ``shape`` (e.g. :class:`~jaxopt_papers.linear.DiaMatrix`) — or a callable ``x ↦ Ax``.
        Sparse matrices are converted by :func:`sparse_operator` (banded: ``DiaMatrix``, else
        ``EllMatrix``); a ``BCOO``/``BCSR`` whose indices are traced is used as it is.
      n: the size, needed for a callable (the solvers pass ``b.shape[0]``).
      owner: the name used in error messages.

    Returns:
      The ``Operator`` (``A`` itself when it already is one).

    Example:
      >>> import scipy.sparse as sp, numpy as np
      >>> op = as_operator(sp.eye(4, format="coo") * 2.0)
      >>> op.n, type(op.source).__name__, np.asarray(op.mv(np.ones(4))).tolist()
      (4, 'DiaMatrix', [2.0, 2.0, 2.0, 2.0])
    """
    if isinstance(A, Operator):
        return A
    if isinstance(A, lx.AbstractLinearOperator):
        size = A.in_size()
        if A.out_size() != size:
            raise ValueError(f"{owner}: `A` must be square, got a {A.out_size()}x{size} operator.")
        return Operator(A, size)
    if is_scipy_sparse(A):
        M = sparse_operator(A, owner=owner)
        return Operator(M, M.n)
    if isinstance(A, (jsparse.BCOO, jsparse.BCSR)):
        check_square(owner, A.shape)
        if A.n_batch == 0 and A.n_dense == 0 and not isinstance(A.indices, jax.core.Tracer):
            M = sparse_operator(A, owner=owner)
            return Operator(M, M.n)
        return Operator(A, A.shape[0])
    if hasattr(A, "mv") and hasattr(A, "shape"):
        check_square(owner, tuple(A.shape))
        return Operator(A, A.shape[0])
    if isinstance(A, (jax.Array, jnp.ndarray)) or hasattr(A, "__array__"):
        A = jnp.asarray(A)
        check_square(owner, A.shape)
        return Operator(A, A.shape[0])
    if callable(A):
        if n is None:
            raise ValueError(
                f"{owner}: `A` is a callable x -> Ax; its size must be known (pass b)."
            )
        return Operator(A, int(n))
    raise TypeError(
        f"{owner}: `A` must be a square matrix (jax/numpy array, scipy sparse, BCOO/BCSR, "
        f"DiaMatrix, EllMatrix), a lineax operator or a callable x -> Ax; got "
        f"{type(A).__name__}."
    )


def stack_operators(operators: list | tuple, *, share_pattern: bool = False) -> Any | None:
    """One stacked operator for a list of matrices that share a structure, or ``None``.

    Each item goes through :func:`as_operator` first (scipy and BCOO/BCSR matrices are
    converted). A list of :class:`~jaxopt_papers.linear.DiaMatrix` with the same offsets becomes
    one ``DiaMatrix`` whose ``data`` has a new leading axis (``stacked[i]`` is the ``i``-th, as is
    indexing its arrays); ``solve_sequence`` then solves the list in one compiled ``lax.scan``.
    Banded matrices whose offsets differ are laid out on the union of their offsets when that
    union still passes the banded test. With ``share_pattern=True``, a list of
    :class:`~jaxopt_papers.linear.EllMatrix` with one pattern is stacked too: values stacked,
    index arrays shared (so take the ``i``-th with ``stacked[i]``, not by indexing every array).
    Anything else gives ``None`` (solve the matrices one by one).

    Args:
      operators: the matrices.
      share_pattern: also stack general sparse matrices with a common pattern (``EllMatrix``).

    Returns:
      The stacked ``DiaMatrix`` (or ``EllMatrix``), or ``None``.

    Example:
      >>> import scipy.sparse as sp
      >>> mats = [sp.diags([-1.0, c, -1.0], [-1, 0, 1], shape=(5, 5)) for c in (2.0, 3.0)]
      >>> S = stack_operators(mats)
      >>> S.data.shape, S[1].diagonal().tolist()
      ((2, 3, 5), [3.0, 3.0, 3.0, 3.0, 3.0])
    """
    if not isinstance(operators, (list, tuple)) or not operators:
        return None
    mats = []
    for A in operators:
        try:
            op = as_operator(A, owner="stack_operators")
        except (TypeError, ValueError):
            return None
        mats.append(op.source)
    first = mats[0]
    if all(isinstance(A, DiaMatrix) and A.data.ndim == 2 for A in mats):
        if any(A.n != first.n for A in mats):
            return None
        offsets = tuple(sorted(set().union(*(A.offsets for A in mats))))
        if any(A.offsets != offsets for A in mats):
            n, d = first.n, len(offsets)
            filled = min(int(np.count_nonzero(np.asarray(A.data))) for A in mats)
            if d > MAX_DIAGONALS or filled < MIN_DIAGONAL_FILL * d * n:
                return None
        return DiaMatrix(jnp.stack([_on_offsets(A, offsets) for A in mats]), offsets)
    if share_pattern and all(isinstance(A, EllMatrix) and A.data.ndim == 2 for A in mats):
        same = all(
            A.indices.shape == first.indices.shape
            and A.tail_rows.shape == first.tail_rows.shape
            and bool(jnp.all(A.indices == first.indices))
            and bool(jnp.all(A.tail_rows == first.tail_rows))
            and bool(jnp.all(A.tail_cols == first.tail_cols))
            for A in mats[1:]
        )
        if not same:
            return None
        return EllMatrix(jnp.stack([A.data for A in mats]), first.indices,
                         jnp.stack([A.tail_data for A in mats]), first.tail_rows,
                         first.tail_cols)  # fmt: skip
    return None


def _on_offsets(A: DiaMatrix, offsets: tuple[int, ...]) -> jax.Array:
    """``A.data`` laid out on ``offsets`` (a superset of ``A.offsets``), zeros elsewhere."""
    if A.offsets == offsets:
        return A.data
    where = {o: k for k, o in enumerate(A.offsets)}
    zero = jnp.zeros(A.n, A.dtype)
    return jnp.stack([A.data[where[o]] if o in where else zero for o in offsets])
