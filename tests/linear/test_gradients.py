"""Derivatives through the Krylov solvers and ``solve_sequence`` against a dense solve.

Oracle: ``jnp.linalg.solve`` on the dense matrix in float64, differentiated by JAX (forward and
reverse mode), for the operator's data (dense array, BCOO ``data``, ``DiaMatrix.data``) and the
right-hand side; ``vmap`` over right-hand sides and over matrices against a loop of dense solves.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse as jsparse

from jaxopt_papers import RESULTS
from jaxopt_papers.linear import DiaMatrix, cg, gcrodr, gmres, poisson, solve_sequence

TOL = 1e-13


def _system():
    """A shifted 2-D Laplacian (SPD, n = 64) with a random diagonal, and a right-hand side."""
    seq = poisson(jax.random.PRNGKey(0), 1, s=10)
    A = seq.operators[0]
    d = jnp.asarray(np.random.default_rng(0).uniform(0.0, 20.0, A.n))
    data = A.data.at[A.offsets.index(0)].add(d)
    return DiaMatrix(data, A.offsets), seq.rhs[0]


A_DIA, B = _system()
DENSE = A_DIA.todense()
N = B.shape[0]

SOLVERS = {
    "cg": lambda A, b: cg(A, b, tol=TOL).x,
    "gmres": lambda A, b: gmres(A, b, tol=TOL, restart=30).x,
    "gcrodr": lambda A, b: gcrodr(A, b, tol=TOL, restart=30, recycle=8).x,
    "solve_sequence": lambda A, b: solve_sequence([A, A], jnp.stack([b, 0.5 * b]), sort=False,
                                                  tol=TOL, restart=30, recycle=8).x[1] * 2,
}  # fmt: skip

# How each operator form is built from the dense matrix (the differentiated argument).
FORMS = {
    "dense": lambda M: M,
    "dia": lambda M: DiaMatrix(jnp.stack([_diag_of(M, o) for o in A_DIA.offsets]), A_DIA.offsets),
    "bcoo": lambda M: jsparse.BCOO((M[ROWS, COLS], IDX), shape=(N, N)),
}


def _diag_of(M, o):
    i = jnp.arange(N)
    j = jnp.clip(i + o, 0, N - 1)
    return jnp.where((i + o >= 0) & (i + o < N), M[i, j], 0.0)


ROWS, COLS = np.nonzero(np.asarray(DENSE))
IDX = jnp.asarray(np.stack([ROWS, COLS], 1))
W = jnp.asarray(np.random.default_rng(1).normal(size=N))
DIRECTION = jnp.asarray(np.where(np.asarray(DENSE) != 0, 1.0, 0.0)) * jnp.asarray(
    np.random.default_rng(2).normal(size=(N, N))
)


def loss_of(solve, form):
    return lambda M, b: jnp.sum(W * solve(FORMS[form](M), b))


def dense_loss(M, b):
    return jnp.sum(W * jnp.linalg.solve(M, b))


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("name", list(SOLVERS))
def test_reverse_and_forward_derivatives_match_a_dense_solve(name, form):
    f = loss_of(SOLVERS[name], form)
    gA, gb = jax.grad(f, argnums=(0, 1))(DENSE, B)
    rA, rb = jax.grad(dense_loss, argnums=(0, 1))(DENSE, B)
    mask = np.asarray(DENSE) != 0  # the sparse forms only hold the pattern's entries
    np.testing.assert_allclose(np.asarray(gA)[mask], np.asarray(rA)[mask], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(gb, rb, rtol=1e-8, atol=1e-12)
    tangent = (DIRECTION, 0.3 * B)
    _, jv = jax.jvp(f, (DENSE, B), tangent)
    _, rjv = jax.jvp(dense_loss, (DENSE, B), tangent)
    np.testing.assert_allclose(jv, rjv, rtol=1e-8)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_vmap_over_rhs_and_over_matrices_matches_dense_solves(name):
    solve = SOLVERS[name]
    bs = jnp.stack([B, B[::-1], jnp.cos(jnp.arange(N))])
    xs = jax.vmap(lambda b: solve(A_DIA, b))(bs)
    np.testing.assert_allclose(xs, jnp.linalg.solve(DENSE, bs.T).T, rtol=1e-9, atol=1e-12)
    scales = jnp.array([0.0, 3.0, 10.0])
    datas = jax.vmap(lambda c: A_DIA.data.at[A_DIA.offsets.index(0)].add(c))(scales)
    xs = jax.vmap(lambda d: solve(DiaMatrix(d, A_DIA.offsets), B))(datas)
    for i, c in enumerate(scales):
        ref = jnp.linalg.solve(DENSE + c * jnp.eye(N), B)
        np.testing.assert_allclose(xs[i], ref, rtol=1e-9, atol=1e-12)


def test_sequence_gradient_through_the_stacked_scan_matches_dense_solves():
    """The stacked path (one lax.scan, recycling along): the gradient with respect to every
    system's data and right-hand side."""
    shifts = jnp.array([0.0, 0.5, 1.0, 1.5])
    data = jax.vmap(lambda c: A_DIA.data.at[A_DIA.offsets.index(0)].add(c))(shifts)
    rhs = jnp.stack([B * (1 + k) for k in range(4)])
    params = shifts[:, None]

    def ours(data, rhs):
        sol = solve_sequence(DiaMatrix(data, A_DIA.offsets), rhs, params, tol=TOL, restart=30,
                             recycle=8)  # fmt: skip
        return jnp.sum(W * sol.x)

    def ref(data, rhs):
        mats = jax.vmap(lambda d: DiaMatrix(d, A_DIA.offsets).todense())(data)
        return jnp.sum(W * jnp.linalg.solve(mats, rhs[..., None])[..., 0])

    g = jax.grad(ours, argnums=(0, 1))(data, rhs)
    r = jax.grad(ref, argnums=(0, 1))(data, rhs)
    np.testing.assert_allclose(g[1], r[1], rtol=1e-8, atol=1e-12)
    live = np.asarray(data) != 0
    np.testing.assert_allclose(np.asarray(g[0])[live], np.asarray(r[0])[live], rtol=1e-8,
                               atol=1e-12)  # fmt: skip
    sol = solve_sequence(DiaMatrix(data, A_DIA.offsets), rhs, params, tol=TOL, restart=30,
                         recycle=8)  # fmt: skip
    assert sol.result == RESULTS.successful
