"""Sparse input to the solvers: ``as_operator``, ``DiaMatrix``, ``EllMatrix``, ``stack_operators``.

Oracles: scipy's own products ``A @ x``, ``A.diagonal()`` and ``A.toarray()`` for every input
format; numpy counts of diagonals and entries for the banded test and its thresholds; a brute-force
minimisation for the ELL width; ``x[cols]`` for the gradient of ``sum(A @ x)`` in the values.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from jax.experimental import sparse as jsparse

from jaxopt_papers.linear import _operators as ops
from jaxopt_papers.linear._operators import as_operator, is_banded, sparse_operator, stack_operators
from jaxopt_papers.linear.dia import DiaMatrix
from jaxopt_papers.linear.sparse import _TAIL_COST, EllMatrix, _ell_width


def stencil(m: int, seed: int = 0) -> sp.csr_array:
    """A 5-point stencil with random positive coefficients on an m × m grid."""
    rng = np.random.default_rng(seed)
    n = m * m
    i = np.arange(n)
    rows, cols = [i], [i]
    for o, ok in ((1, i % m != m - 1), (-1, i % m != 0), (m, i < n - m), (-m, i >= m)):
        rows.append(i[ok])
        cols.append(i[ok] + o)
    r, c = np.concatenate(rows), np.concatenate(cols)
    vals = np.where(r == c, 4.0, -1.0) * rng.uniform(1.0, 2.0, r.size)
    return sp.csr_array((vals, (r, c)), shape=(n, n))


def scattered(n: int, seed: int = 0) -> sp.csr_array:
    """About 10 non-zeros per row at random columns, plus the diagonal (not banded)."""
    rng = np.random.default_rng(seed)
    A = sp.random_array((n, n), density=10 / n, rng=rng, format="csr")
    return sp.csr_array(A + sp.eye_array(n) * 5.0)


def as_format(A: sp.csr_array, fmt: str):
    if fmt == "bcoo":
        return jsparse.BCOO.from_scipy_sparse(A)
    if fmt == "bcsr":
        return jsparse.BCSR.from_scipy_sparse(A)
    if fmt == "numpy":
        return A.toarray()
    if fmt == "jax":
        return jnp.asarray(A.toarray())
    if fmt == "csr_matrix":
        return sp.csr_matrix(A)
    return A.asformat(fmt)


FORMATS = ["csr", "csc", "coo", "dia", "lil", "bsr", "csr_matrix", "bcoo", "bcsr", "numpy", "jax"]


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["stencil", "scattered"])
def test_products_match_scipy_for_every_format(fmt, kind):
    A = stencil(9) if kind == "stencil" else scattered(81)
    x = np.random.default_rng(1).normal(size=(A.shape[0]))
    op = as_operator(as_format(A, fmt))
    assert op.n == A.shape[0]
    np.testing.assert_allclose(op.mv(jnp.asarray(x)), A @ x, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(op.diagonal(), A.diagonal(), rtol=1e-15)
    if fmt in ("numpy", "jax"):
        assert isinstance(op.source, jax.Array)  # dense stays dense
    else:
        expected = DiaMatrix if kind == "stencil" else EllMatrix
        assert type(op.source) is expected
        np.testing.assert_allclose(op.source.todense(), A.toarray(), rtol=1e-15)
    # The same product under jit, with the operator's arrays traced.
    np.testing.assert_allclose(
        eqx.filter_jit(lambda o, v: o.mv(v))(op, jnp.asarray(x)), A @ x, rtol=1e-13, atol=1e-13
    )


def test_stencil_becomes_its_five_diagonals():
    m = 12
    D = sparse_operator(stencil(m))
    assert isinstance(D, DiaMatrix)
    assert D.offsets == (-m, -1, 0, 1, m)


def test_banded_detection_both_ways():
    # Counted independently: distinct j - i and entries against the thresholds.
    for A in (stencil(10), scattered(100), sp.eye_array(50).tocsr(), stencil(10)[::-1]):
        coo = A.tocoo()
        d = np.unique(coo.col - coo.row).size
        expected = d <= ops.MAX_DIAGONALS and coo.nnz >= ops.MIN_DIAGONAL_FILL * d * A.shape[0]
        assert is_banded(coo.row, coo.col, A.shape[0]) == expected
        assert isinstance(sparse_operator(A), DiaMatrix if expected else EllMatrix)
    assert not is_banded(scattered(100).tocoo().row, scattered(100).tocoo().col, 100)
    assert is_banded(stencil(10).tocoo().row, stencil(10).tocoo().col, 100)


def full_diagonals(n: int, offsets) -> sp.csr_array:
    rows, cols = [], []
    for o in offsets:
        i = np.arange(max(0, -o), min(n, n - o))
        rows.append(i)
        cols.append(i + o)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_array((np.ones(r.size), (r, c)), shape=(n, n))


def test_threshold_on_the_number_of_diagonals():
    n, limit = 400, ops.MAX_DIAGONALS
    # Offsets far inside so that every stored diagonal is nearly full.
    at = full_diagonals(n, range(-(limit // 2), limit - limit // 2))
    over = full_diagonals(n, range(-(limit // 2), limit - limit // 2 + 1))
    assert np.unique(at.tocoo().col - at.tocoo().row).size == limit
    assert isinstance(sparse_operator(at), DiaMatrix)
    assert isinstance(sparse_operator(over), EllMatrix)


def test_threshold_on_the_fill():
    n, offsets = 100, (-30, 0, 30)
    A = full_diagonals(n, offsets).tocoo()
    need = int(np.ceil(ops.MIN_DIAGONAL_FILL * len(offsets) * n))
    assert A.nnz > need  # full diagonals: 100 + 2 * 70 entries
    keep = np.argsort(np.where(A.row == A.col, -1, A.row))  # main diagonal first
    for count, banded in ((need, True), (need - 1, False)):
        k = keep[:count]
        B = sp.coo_array((A.data[k], (A.row[k], A.col[k])), shape=(n, n))
        assert np.unique(B.col - B.row).size == len(offsets)
        assert isinstance(sparse_operator(B), DiaMatrix if banded else EllMatrix)
        x = np.arange(n, dtype=float)
        np.testing.assert_allclose(as_operator(B).mv(jnp.asarray(x)), B @ x, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
@pytest.mark.parametrize("kind", ["stencil", "scattered"])
def test_dtype_is_kept(dtype, kind):
    A = stencil(6) if kind == "stencil" else scattered(36)
    if dtype == np.int64:
        A = A.copy()
        A.data = np.round(A.data * 3)
    A = sp.csr_array(A.astype(dtype))
    op = as_operator(A)
    expected = np.float64 if dtype == np.int64 else dtype
    assert op.source.dtype == expected
    x = np.linspace(-1.0, 1.0, A.shape[0]).astype(expected)
    y = op.mv(jnp.asarray(x))
    assert y.dtype == expected
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, A @ x, rtol=tol, atol=tol)


def test_ell_width_minimises_the_modelled_cost():
    rng = np.random.default_rng(0)
    for lengths in (rng.poisson(10, 500), np.full(40, 5), np.array([1] * 99 + [60]), [0, 0, 3]):
        lengths = np.asarray(lengths)
        costs = [
            K * lengths.size + _TAIL_COST * np.maximum(lengths - K, 0).sum()
            for K in range(lengths.max() + 1)
        ]
        assert costs[_ell_width(lengths)] == min(costs)


def test_ell_with_a_tail_and_batched_vectors():
    # One dense row: its entries past the ELL width go to the tail.
    A = sp.lil_array(scattered(60, seed=3))
    A[7, :] = np.arange(1, 61)
    A = sp.csr_array(A)
    E = EllMatrix.from_scipy(A)
    assert E.tail_rows.size > 0 and E.indices.shape[0] < 60
    X = np.random.default_rng(2).normal(size=(3, 60))
    np.testing.assert_allclose(E.mv(jnp.asarray(X)), (A @ X.T).T, rtol=1e-13)
    np.testing.assert_allclose(E.todense(), A.toarray(), rtol=1e-15)
    np.testing.assert_allclose(E.diagonal(), A.diagonal(), rtol=1e-15)
    np.testing.assert_allclose(EllMatrix.from_dense(A.toarray()).mv(X[0]), A @ X[0], rtol=1e-13)


def test_gradient_with_respect_to_the_values():
    A = scattered(50)
    for fmt in ("bcoo", "bcsr"):
        M = as_format(A, fmt)
        x = jnp.asarray(np.random.default_rng(4).normal(size=50))
        if fmt == "bcoo":
            make = lambda d, M=M: jsparse.BCOO((d, M.indices), shape=M.shape)
        else:
            make = lambda d, M=M: jsparse.BCSR((d, M.indices, M.indptr), shape=M.shape)
        grad = jax.grad(lambda d: jnp.sum(as_operator(make(d)).mv(x)))(M.data)
        cols = M.indices[:, 1] if fmt == "bcoo" else M.indices
        np.testing.assert_allclose(grad, np.asarray(x)[np.asarray(cols)], rtol=1e-15)
    # Banded input through DiaMatrix, with repeated entries summed, under jit.
    S = jsparse.BCOO.from_scipy_sparse(stencil(5))
    idx = jnp.concatenate([S.indices, S.indices[:3]])
    x = jnp.arange(25.0)

    @jax.jit
    def total(d):
        op = as_operator(jsparse.BCOO((d, idx), shape=S.shape))
        return jnp.sum(op.mv(x)), op.source

    data = jnp.concatenate([S.data, S.data[:3]])
    grad = jax.grad(lambda d: total(d)[0])(data)
    assert isinstance(total(data)[1], DiaMatrix)
    np.testing.assert_allclose(grad, np.asarray(x)[np.asarray(idx[:, 1])], rtol=1e-15)


def test_traced_bcoo_indices_are_used_as_they_are():
    A = jsparse.BCOO.from_scipy_sparse(scattered(30))
    x = jnp.ones(30)

    @jax.jit
    def f(M):
        op = as_operator(M)
        assert isinstance(op.source, jsparse.BCOO)
        return op.mv(x)

    np.testing.assert_allclose(f(A), scattered(30) @ np.ones(30), rtol=1e-13)


def test_bcoo_padding_entries_are_ignored():
    dense = stencil(4).toarray()
    M = jsparse.BCOO.fromdense(jnp.asarray(dense), nse=int(np.count_nonzero(dense)) + 7)
    assert int(jnp.sum(M.indices[:, 0] >= 16)) > 0  # fromdense pads with out-of-range indices
    op = as_operator(M)
    x = np.random.default_rng(0).normal(size=16)
    np.testing.assert_allclose(op.mv(jnp.asarray(x)), dense @ x, rtol=1e-13)


def test_stacking_banded_and_general_matrices():
    mats = [stencil(8, seed=s) for s in range(4)]
    x = np.random.default_rng(5).normal(size=64)
    S = stack_operators(mats)
    assert isinstance(S, DiaMatrix) and S.data.shape == (4, 5, 64)
    np.testing.assert_allclose(S.mv(jnp.asarray(x)), np.stack([A @ x for A in mats]), rtol=1e-13)

    # One compiled scan over the stack, indexing one matrix per step.
    def scan(S):
        return jax.lax.scan(lambda c, i: (c, S[i].mv(jnp.asarray(x))), 0, jnp.arange(4))[1]

    out = eqx.filter_jit(scan)(S)
    np.testing.assert_allclose(out, np.stack([A @ x for A in mats]), rtol=1e-13)

    # Different offsets: laid out on their union (still banded).
    mixed = [mats[0], sp.csr_array(mats[1] + sp.eye_array(64, k=2))]
    U = stack_operators(mixed)
    assert isinstance(U, DiaMatrix) and U.offsets == (-8, -1, 0, 1, 2, 8)
    np.testing.assert_allclose(U[1].todense(), mixed[1].toarray(), rtol=1e-15)

    # General matrices with one pattern: stacked on request (indices shared, values stacked).
    G = [sp.csr_array(scattered(64)), sp.csr_array(scattered(64))]
    G[1].data = G[1].data * -2.0
    assert stack_operators(G) is None
    E = stack_operators(G, share_pattern=True)
    assert isinstance(E, EllMatrix) and E.data.shape[0] == 2 and E.indices.ndim == 2
    for i in range(2):
        np.testing.assert_allclose(E[i].mv(jnp.asarray(x)), G[i] @ x, rtol=1e-13)

    def batched(E):
        one = lambda d, t: EllMatrix(d, E.indices, t, E.tail_rows, E.tail_cols).mv(x)
        return jax.vmap(one)(E.data, E.tail_data)

    out = eqx.filter_jit(batched)(E)
    np.testing.assert_allclose(out, np.stack([A @ x for A in G]), rtol=1e-13)
    # Indexing every array of the batch would index the shared pattern too: refused.
    with pytest.raises(ValueError, match=r"with A\[i\]"):
        jax.tree.map(lambda leaf: leaf[1], E).mv(jnp.asarray(x))


def test_stacking_gives_none_when_the_structure_differs():
    assert (
        stack_operators([scattered(64, seed=0), scattered(64, seed=1)], share_pattern=True) is None
    )
    assert stack_operators([stencil(8), scattered(64)]) is None
    assert stack_operators([stencil(8), stencil(9)]) is None  # sizes differ
    assert stack_operators([stencil(8), lambda v: v]) is None
    assert stack_operators([]) is None
    # Offsets whose union is no longer banded.
    far = full_diagonals(64, [0, 40])
    assert stack_operators([full_diagonals(64, range(-30, 31)), far]) is None


def test_clear_errors():
    with pytest.raises(ValueError, match=r"`A` must be a square matrix, got shape \(3, 4\)"):
        as_operator(sp.csr_array(np.ones((3, 4))), owner="gmres")
    with pytest.raises(ValueError, match=r"gmres: `A` must be a square matrix"):
        as_operator(jsparse.BCOO.fromdense(jnp.ones((2, 3))), owner="gmres")
    with pytest.raises(TypeError, match=r"gmres: `A` must be a square matrix .* got str"):
        as_operator("A", owner="gmres")
    with pytest.raises(TypeError, match=r"`A` must be a scipy sparse matrix, got ndarray"):
        EllMatrix.from_scipy(np.eye(3))
    with pytest.raises(TypeError, match=r"`A` must be a scipy sparse matrix, got list"):
        DiaMatrix.from_scipy([[1.0]])
    with pytest.raises(ValueError, match=r"`A` must be a square matrix, got shape \(2, 3\)"):
        DiaMatrix.from_dense(np.ones((2, 3)))
    E = EllMatrix.from_scipy(scattered(20))
    with pytest.raises(ValueError, match=r"`data` must have shape \(\.\.\., K, n\)"):
        EllMatrix(E.data[:, :5], E.indices, E.tail_data, E.tail_rows, E.tail_cols)
    batched = jsparse.BCOO.fromdense(jnp.ones((2, 3, 3)), n_batch=1)
    with pytest.raises(ValueError, match=r"must be a square matrix"):
        as_operator(batched)


def test_empty_matrix_products_are_zero():
    Z = sp.csr_array((5, 5))
    for M in (DiaMatrix.from_scipy(Z), EllMatrix.from_scipy(Z), as_operator(Z).source):
        np.testing.assert_array_equal(M.mv(jnp.ones(5)), np.zeros(5))
