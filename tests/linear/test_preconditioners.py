"""Jacobi, block Jacobi, SOR and SSOR against explicit numpy matrices M (``M⁻¹r`` by
``numpy.linalg.solve``), and preconditioned solves against ``scipy.sparse.linalg.spsolve``."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse.linalg as spla
from jax.experimental import sparse as jsparse

from jaxopt_papers.linear import (
    DiaMatrix,
    block_jacobi,
    cg,
    darcy,
    gcrodr,
    gmres,
    helmholtz,
    jacobi,
    solve_sequence,
    sor_sweep,
    ssor,
)


@pytest.fixture(scope="module")
def system():
    seq = darcy(jax.random.PRNGKey(3), 2, s=13)  # n = 121, not a multiple of the block sizes
    A = seq.operators[0]
    return A, np.asarray(A.todense()), np.asarray(seq.rhs[0])


def explicit(name, A, omega=1.0, size=None):
    """The preconditioning matrix M, built from its definition."""
    D, L, U = np.diag(np.diag(A)), np.tril(A, -1), np.triu(A, 1)
    if name == "jacobi":
        return D
    if name == "block_jacobi":
        M = np.zeros_like(A)
        for s in range(0, A.shape[0], size):
            M[s : s + size, s : s + size] = A[s : s + size, s : s + size]
        return M
    if name == "sor":
        return D / omega + L
    return (D + omega * U) @ np.linalg.inv(D) @ (D + omega * L) / (omega * (2 - omega))


CASES = [("jacobi", {}), ("block_jacobi", {"size": 16}), ("block_jacobi", {"size": 7}),
         ("sor", {"omega": 1.0}), ("sor", {"omega": 1.6}), ("ssor", {"omega": 1.0}),
         ("ssor", {"omega": 1.3})]  # fmt: skip


def build(name, A, kw):
    if name == "jacobi":
        return jacobi(A)
    if name == "block_jacobi":
        return block_jacobi(A, block_size=kw["size"])
    if name == "sor":
        return sor_sweep(A, kw["omega"])
    return ssor(A, kw["omega"])


@pytest.mark.parametrize("as_dia", [True, False])
@pytest.mark.parametrize(("name", "kw"), CASES)
def test_apply_matches_explicit_matrix(system, name, kw, as_dia):
    A, dense, _ = system
    r = np.random.default_rng(0).standard_normal(dense.shape[0])
    M = build(name, A if as_dia else jnp.asarray(dense), kw)
    want = np.linalg.solve(explicit(name, dense, kw.get("omega", 1.0), kw.get("size")), r)
    got = eqx.filter_jit(lambda M, r: M(r))(M, jnp.asarray(r))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


def test_sparse_inputs_match_dense(system):
    _, dense, _ = system
    r = jnp.asarray(np.random.default_rng(1).standard_normal(dense.shape[0]))
    bcoo = jsparse.BCOO.fromdense(jnp.asarray(dense))
    for make in (jacobi, lambda A: block_jacobi(A, 10), lambda A: ssor(A, 1.2)):
        np.testing.assert_allclose(make(bcoo)(r), make(jnp.asarray(dense))(r), rtol=1e-12)


def test_preconditioned_solves_match_spsolve_with_fewer_products(system):
    A, _, b = system
    exact = spla.spsolve(A.to_scipy().tocsc(), b)
    plain = cg(A, b, tol=1e-10)
    for name, res in [
        ("cg+ssor", cg(A, b, tol=1e-10, preconditioner=ssor(A, 1.5))),
        ("cg+jacobi", cg(A, b, tol=1e-10, preconditioner=jacobi(A))),
        ("gmres+sor", gmres(A, b, tol=1e-10, preconditioner=sor_sweep(A, 1.2))),
        ("gcrodr+bjacobi", gcrodr(A, b, tol=1e-10, preconditioner=block_jacobi(A, 22))),
    ]:
        np.testing.assert_allclose(res.x, exact, rtol=1e-7, atol=1e-9 * np.abs(exact).max(),
                                   err_msg=name)  # fmt: skip
        if name != "cg+jacobi":  # Darcy's diagonal varies little: Jacobi barely helps CG
            assert int(res.num_matvecs) < int(plain.num_matvecs), name


def test_factory_in_solve_sequence_matches_spsolve():
    seq = helmholtz(jax.random.PRNGKey(0), 4, s=18)
    res = solve_sequence(seq.operators, seq.rhs, seq.params, tol=1e-9,
                         preconditioner=lambda A: block_jacobi(A, 32))  # fmt: skip
    for i in range(4):
        exact = spla.spsolve(seq.to_scipy(i).tocsc(), np.asarray(seq.rhs[i]))
        np.testing.assert_allclose(res.x[i], exact, rtol=1e-6, atol=1e-9 * np.abs(exact).max())


def test_bad_input_is_named(system):
    A, dense, _ = system
    with pytest.raises(ValueError, match="omega"):
        ssor(A, 2.0)
    with pytest.raises(ValueError, match="omega"):
        sor_sweep(A, 0.0)
    with pytest.raises(ValueError, match="diagonal"):
        jacobi(jnp.asarray(dense) - jnp.diag(jnp.diag(jnp.asarray(dense))))
    with pytest.raises(TypeError, match="callable"):
        ssor(lambda x: x, 1.0)
    with pytest.raises(ValueError, match="block_size"):
        block_jacobi(A, 0)
    with pytest.raises(ValueError, match="square"):
        jacobi(jnp.ones((3, 4)))
    batch = DiaMatrix(jnp.stack([A.data, A.data]), A.offsets)
    with pytest.raises(ValueError, match="batch"):
        jacobi(batch)
