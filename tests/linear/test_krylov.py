"""CG, GMRES and GCRO-DR against scipy; DiaMatrix and the PDE generators against scipy assemblies.

Oracles: ``scipy.sparse.linalg.spsolve`` (solutions), scipy's ``gmres`` (matvec counts at the
same restart and tolerance), ``numpy.linalg.qr`` (the recycle step's Cholesky-QR), independent
scipy/numpy assemblies of the 5-point operators, and
the solvers' own invariants (recycling a converged space cannot cost more products).
"""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jax.experimental import sparse as jsparse

from jaxopt_papers import RESULTS, Solution
from jaxopt_papers.linear import (
    CG,
    GCRODR,
    GMRES,
    DiaMatrix,
    as_operator,
    cg,
    darcy,
    default_tol,
    gcrodr,
    gmres,
    helmholtz,
    poisson,
)

RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def scipy_darcy(a: np.ndarray) -> sp.csr_array:
    """−∇·(a∇u) with arithmetic face means, zero Dirichlet, assembled entry by entry."""
    s = a.shape[0]
    m, h2 = s - 2, (1.0 / (s - 1)) ** 2
    rows, cols, vals = [], [], []
    for i in range(1, s - 1):
        for j in range(1, s - 1):
            p = (i - 1) * m + (j - 1)
            diag = 0.0
            for di, dj in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                w = 0.5 * (a[i, j] + a[i + di, j + dj]) / h2
                diag += w
                ii, jj = i + di, j + dj
                if 1 <= ii <= s - 2 and 1 <= jj <= s - 2:
                    rows.append(p), cols.append((ii - 1) * m + (jj - 1)), vals.append(-w)
            rows.append(p), cols.append(p), vals.append(diag)
    return sp.csr_array((vals, (rows, cols)), shape=(m * m, m * m))


def counted(A):
    count = [0]

    def mv(x):
        count[0] += 1
        return A @ x

    return spla.LinearOperator(A.shape, matvec=mv), count


@pytest.fixture(scope="module")
def small_darcy():
    return darcy(jax.random.PRNGKey(0), 4, s=24)


def test_darcy_operator_matches_an_independent_assembly(small_darcy):
    a = np.exp(np.asarray(small_darcy.params[1]).reshape(24, 24))
    ref = scipy_darcy(a)
    ours = small_darcy.to_scipy(1)
    np.testing.assert_allclose(ours.toarray(), ref.toarray(), rtol=1e-12, atol=1e-9)
    dense = ref.toarray()
    np.testing.assert_allclose(dense, dense.T)
    assert np.linalg.eigvalsh(dense).min() > 0
    # Reproducible from the key; the field has the GRF's zero mean.
    again = darcy(jax.random.PRNGKey(0), 4, s=24)
    np.testing.assert_array_equal(again.params, small_darcy.params)
    assert abs(float(small_darcy.params.mean())) < 0.5


def test_poisson_and_helmholtz_operators():
    p = poisson(jax.random.PRNGKey(1), 2, s=12)
    lap = scipy_darcy(np.ones((12, 12))).toarray()
    np.testing.assert_allclose(p.to_scipy(0).toarray(), lap, rtol=1e-12)
    h = helmholtz(jax.random.PRNGKey(2), 2, s=12)
    k = np.asarray(h.params[0]).reshape(12, 12)[1:-1, 1:-1].ravel()
    np.testing.assert_allclose(h.to_scipy(0).toarray(), lap - np.diag(k**2), rtol=1e-12)


def test_dia_matrix_against_scipy():
    rng = np.random.default_rng(0)
    A = sp.random(30, 30, density=0.2, random_state=1) + sp.diags(rng.uniform(1, 2, 30))
    D = DiaMatrix.from_scipy(A)
    x = rng.normal(size=30)
    np.testing.assert_allclose(D.mv(jnp.asarray(x)), A @ x, rtol=1e-12)
    np.testing.assert_allclose(D.T.mv(jnp.asarray(x)), A.T @ x, rtol=1e-12)
    np.testing.assert_allclose(D.todense(), A.toarray(), rtol=1e-12)
    np.testing.assert_allclose(D.diagonal(), A.diagonal(), rtol=1e-12)
    np.testing.assert_allclose(D.to_scipy().toarray(), A.toarray(), rtol=1e-12)
    # A batch: vmap over the data, jit.
    batch = DiaMatrix(jnp.stack([D.data, 2 * D.data]), D.offsets)
    out = jax.jit(jax.vmap(lambda d, v: DiaMatrix(d, D.offsets).mv(v)))(
        batch.data, jnp.stack([x, x])
    )
    np.testing.assert_allclose(out[1], 2 * (A @ x), rtol=1e-12)


@pytest.mark.parametrize("solver", ["gmres", "gcrodr", "cg"])
def test_solutions_match_spsolve(small_darcy, solver):
    A = small_darcy.to_scipy(0)
    b = np.asarray(small_darcy.rhs[0])
    ref = spla.spsolve(A.tocsc(), b)
    fn = {"gmres": gmres, "gcrodr": gcrodr, "cg": cg}[solver]
    res = fn(small_darcy.operators[0], b, tol=1e-10)
    assert res.result == RESULTS.successful
    assert float(res.residual) <= 1e-10
    np.testing.assert_allclose(res.x, ref, rtol=1e-7 * np.linalg.cond(A.toarray()) ** 0)


def test_nonsymmetric_system():
    rng = np.random.default_rng(3)
    n = 60
    A = np.eye(n) * 4 + rng.normal(size=(n, n)) / np.sqrt(n)
    b = rng.normal(size=n)
    ref = np.linalg.solve(A, b)
    for fn in (gmres, gcrodr):
        res = fn(A, b, tol=1e-12, restart=30, **({"recycle": 10} if fn is gcrodr else {}))
        np.testing.assert_allclose(res.x, ref, rtol=1e-9, atol=1e-10)


def test_gmres_matvecs_match_scipy(small_darcy):
    A = small_darcy.to_scipy(2)
    b = np.asarray(small_darcy.rhs[2])
    for restart in (10, 40):
        op, count = counted(A)
        _, info = spla.gmres(op, b, rtol=1e-8, restart=restart, maxiter=10_000)
        assert info == 0
        ours = gmres(small_darcy.operators[2], b, tol=1e-8, restart=restart)
        # scipy checks the true residual at each restart too; ours also counts the final check.
        assert abs(int(ours.num_matvecs) - count[0]) <= 0.05 * count[0] + 2


def test_recycling_never_costs_more_on_a_repeated_system(small_darcy):
    A, b = small_darcy.operators[0], small_darcy.rhs[0]
    first = gcrodr(A, b, tol=1e-9)
    counts, state = [int(first.num_matvecs)], first.state
    for _ in range(3):
        res = gcrodr(A, b, tol=1e-9, state=state)
        counts.append(int(res.num_matvecs))
        state = res.state
    assert all(c2 <= c1 for c1, c2 in itertools.pairwise(counts)), counts
    # A nearby system (a different coefficient field) recycled: fewer products than GMRES(40).
    near = gcrodr(small_darcy.operators[1], small_darcy.rhs[1], tol=1e-9, state=state)
    plain = gmres(small_darcy.operators[1], small_darcy.rhs[1], tol=1e-9)
    assert int(near.num_matvecs) < int(plain.num_matvecs)


def test_every_operator_type_gives_the_same_solution(small_darcy):
    A = small_darcy.to_scipy(0)
    dense = jnp.asarray(A.toarray())
    b = small_darcy.rhs[0]
    ref = spla.spsolve(A.tocsc(), np.asarray(b))
    bcoo = jsparse.BCOO.fromdense(dense)
    for op in (dense, np.asarray(dense), bcoo, jsparse.BCSR.fromdense(dense),
               lx.MatrixLinearOperator(dense), small_darcy.operators[0],
               lambda v: dense @ v):  # fmt: skip
        res = gmres(op, b, tol=1e-10)
        np.testing.assert_allclose(res.x, ref, rtol=1e-7)
        if not callable(op) or hasattr(op, "mv"):
            np.testing.assert_allclose(as_operator(op).diagonal(), A.diagonal(), rtol=1e-12)
    with pytest.raises(TypeError, match="no diagonal"):
        as_operator(lambda v: v, 3).diagonal()


def test_jacobi_preconditioning_reduces_products_and_meets_tol_on_the_true_residual():
    # A badly scaled SPD system: Jacobi fixes the scaling.
    rng = np.random.default_rng(5)
    n = 200
    scale = np.exp(rng.uniform(-3, 3, n))
    L = sp.diags([-np.ones(n - 1), 2.2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    A = (sp.diags(np.sqrt(scale)) @ L @ sp.diags(np.sqrt(scale))).toarray()
    b = rng.normal(size=n)
    d = jnp.asarray(np.diag(A))
    for fn in (gmres, cg, gcrodr):
        plain = fn(A, b, tol=1e-9, throw=False, max_steps=5000)
        pre = fn(A, b, tol=1e-9, preconditioner=lambda r: r / d)
        assert int(pre.num_matvecs) < int(plain.num_matvecs)
        assert np.linalg.norm(b - A @ np.asarray(pre.x)) <= 1.01e-9 * np.linalg.norm(b)


def test_jit_and_vmap_over_right_hand_sides(small_darcy):
    A = small_darcy.operators[0]
    B = jax.random.normal(jax.random.PRNGKey(1), (3, small_darcy.rhs.shape[1]))
    xs = jax.jit(jax.vmap(lambda b: gmres(A, b, tol=1e-10).x))(B)
    ref = np.linalg.solve(np.asarray(A.todense()), np.asarray(B).T).T
    np.testing.assert_allclose(xs, ref, rtol=1e-7, atol=1e-10)


def test_bad_input_and_result_codes():
    A = np.eye(4) * 2.0
    with pytest.raises(ValueError, match="`A` is 4x4 but `b` has shape"):
        gmres(A, np.ones(5))
    with pytest.raises(ValueError, match="must be a square matrix"):
        gmres(np.ones((3, 4)), np.ones(3))
    with pytest.raises(ValueError, match="`recycle` must be smaller than `restart`"):
        gcrodr(np.eye(50), np.ones(50), restart=10, recycle=10)
    with pytest.raises(TypeError, match="`preconditioner` must be a callable"):
        cg(A, np.ones(4), preconditioner="jacobi")
    bad = gmres(A, np.array([1.0, np.nan, 0.0, 1.0]), throw=False)
    assert bad.result == RESULTS.nonfinite
    with pytest.raises(RUNTIME_ERRORS, match="non-finite"):
        gmres(A, np.array([1.0, np.inf, 0.0, 1.0]))
    hard = gmres(scipy_darcy(np.ones((24, 24))).toarray(), np.ones(484), restart=5,
                 max_steps=20, throw=False)  # fmt: skip
    # The cap is on Arnoldi steps; the true-residual checks add at most two products.
    assert hard.result == RESULTS.max_steps_reached and int(hard.num_matvecs) <= 22
    # A singular, inconsistent system: the Krylov space becomes invariant above `tol`; GMRES
    # and GCRO-DR say so (breakdown), with a finite least-squares answer.
    for fn in (gmres, lambda A, b, **kw: gcrodr(A, b, restart=3, recycle=1, **kw)):
        sing = fn(np.diag([1.0, 1.0, 0.0]), np.ones(3), throw=False)
        assert sing.result == RESULTS.breakdown
        x = np.asarray(sing.x)  # finite, with the least-squares residual ‖(0, 0, 1)‖ = 1
        np.testing.assert_allclose(np.ones(3) - np.diag([1.0, 1.0, 0.0]) @ x, [0, 0, 1], atol=1e-12)
        with pytest.raises(RUNTIME_ERRORS, match=r"broke down.*singular"):
            fn(np.diag([1.0, 1.0, 0.0]), np.ones(3))
    zero = gmres(A, np.zeros(4))
    assert zero.result == RESULTS.successful and not np.any(np.asarray(zero.x))


def test_a_new_system_of_the_same_shape_does_not_recompile(small_darcy, monkeypatch):
    from jaxopt_papers.linear import krylov

    traces = {"count": 0}
    arnoldi = krylov._arnoldi

    def counting(*args, **kwargs):
        traces["count"] += 1  # runs once per trace
        return arnoldi(*args, **kwargs)

    monkeypatch.setattr(krylov, "_arnoldi", counting)
    for fn in (gmres, gcrodr):
        fn(small_darcy.operators[0], small_darcy.rhs[0], tol=1e-8)
        count = traces["count"]
        state = None
        for i in (1, 2):
            kw = {"state": state} if fn is gcrodr else {}
            res = fn(small_darcy.operators[i], small_darcy.rhs[i] * i, tol=1e-7 * i, **kw)
            state = getattr(res, "state", None)
        assert traces["count"] == count, fn.__name__


@pytest.mark.parametrize("cond", [1.0, 1e5, 1e9, 1e11, 1e12])
def test_recycle_qr_matches_numpy_qr_and_flags_rank_deficiency(cond):
    """The shifted Cholesky-QR3 of GCRO-DR's recycle step against ``numpy.linalg.qr``: the same
    ``Q`` up to ``ε·κ``, and full rank judged as a Householder ``R`` would be (``|R_ii|`` above
    ``1e-10·max |R_jj|``)."""
    from jaxopt_papers.linear.krylov import _cholesky_qr_rows

    rng = np.random.default_rng(0)
    k, n = 8, 500
    left, _ = np.linalg.qr(rng.standard_normal((k, k)))
    right, _ = np.linalg.qr(rng.standard_normal((n, k)))
    X = (left * np.geomspace(1.0, 1.0 / cond, k)) @ right.T  # κ(X) = cond
    Q, Rinv_t, ok = _cholesky_qr_rows(jnp.asarray(X))
    q_np, r_np = np.linalg.qr(X.T)
    r_diag = np.abs(np.diag(r_np))
    assert bool(ok) == bool(np.all(r_diag > 1e-10 * r_diag.max()))
    Q = np.asarray(Q)
    np.testing.assert_allclose(Q @ Q.T, np.eye(k), atol=1e-14)
    if ok:
        signs = np.sign(np.diag(r_np))  # numpy's R may have negative diagonal entries
        np.testing.assert_allclose(Q, (q_np * signs).T, atol=1e-14 * cond)
        np.testing.assert_allclose(np.asarray(Rinv_t) @ X, Q, atol=1e-14 * cond)

    X[-1] = X[0] + X[1]  # rank k − 1
    assert not bool(_cholesky_qr_rows(jnp.asarray(X))[2])


# ------------------------------------------------------------------ the solver contract


def spd(n, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    return (M @ M.T / n + np.eye(n)).astype(dtype), rng.normal(size=n).astype(dtype)


@pytest.mark.parametrize("fn", [cg, gmres, gcrodr])
def test_float32_default_tol_succeeds_on_a_well_conditioned_system(fn):
    """tol=None is 1e-5 in float32 (1e-8 would be below what float32 can reach)."""
    A, b = spd(6, 0, np.float32)
    kw = {"restart": 4, "recycle": 2} if fn is gcrodr else {}
    sol = fn(jnp.asarray(A), jnp.asarray(b), **kw)
    assert sol.result == RESULTS.successful and sol.x.dtype == jnp.float32
    assert float(sol.residual) <= 1e-5
    exact = np.linalg.solve(A.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(sol.x, exact, rtol=1e-4, atol=1e-5)
    # float64 keeps 1e-8.
    assert (default_tol(jnp.float32), default_tol(jnp.float64)) == (1e-5, 1e-8)
    sol64 = fn(jnp.asarray(A, jnp.float64), jnp.asarray(b, jnp.float64), **kw)
    assert sol64.result == RESULTS.successful and float(sol64.residual) <= 1e-8


def test_cg_reports_indefinite_not_nonfinite_and_never_succeeds_above_tol():
    # Singular, inconsistent: p = e3 meets pᵀAp = 0.
    sing = cg(np.diag([1.0, 1.0, 0.0]), np.ones(3), throw=False)
    assert sing.result == RESULTS.indefinite
    assert bool(jnp.all(jnp.isfinite(sing.x)))
    with pytest.raises(RUNTIME_ERRORS, match="non-positive curvature"):
        cg(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([1.0, 0.0]))
    # Symmetric indefinite systems at tol 1e-5: success only where the true residual meets tol.
    rng = np.random.default_rng(1)
    codes = []
    for seed in range(8):
        Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(12, 12)))
        A = Q @ np.diag(rng.uniform(0.5, 2.0, 12) * np.where(np.arange(12) < 2, -1, 1)) @ Q.T
        b = rng.normal(size=12)
        sol = cg(A, b, tol=1e-5, throw=False)
        true = np.linalg.norm(b - A @ np.asarray(sol.x)) / np.linalg.norm(b)
        np.testing.assert_allclose(float(sol.residual), true, rtol=1e-6)
        if sol.result == RESULTS.successful:
            assert true <= 1e-5
        codes.append(int(sol.result._value))
    assert int(RESULTS.indefinite._value) in codes


def test_solvers_are_modules_with_manual_steps_that_reproduce_run(small_darcy):
    A, b = small_darcy.operators[0], small_darcy.rhs[0]
    for solver in (CG(tol=1e-9), GMRES(restart=20, tol=1e-9), GCRODR(restart=20, recycle=5,
                                                                       tol=1e-9)):  # fmt: skip
        sol = solver.run(A, b)
        assert isinstance(sol, Solution) and sol.result == RESULTS.successful
        assert {"num_steps", "num_matvecs", "error"} <= set(sol.stats)
        x_ref = spla.spsolve(small_darcy.to_scipy(0).tocsc(), np.asarray(b))
        np.testing.assert_allclose(sol.x, x_ref, rtol=1e-7)
        state = solver.init(A, b)
        step = jax.jit(lambda state, A, b, solver=solver: solver.step(state, A, b))  # compiled once
        while not bool(state.done) and int(state.num_matvecs) < 10 * b.shape[0]:
            state = step(state, A, b)
        assert int(state.num_steps) == int(sol.num_steps)
        np.testing.assert_allclose(state.x, sol.x, rtol=1e-9, atol=1e-12)
    # jaxopt-style unpacking; GCRO-DR's state is its recycle space.
    _, rec = GCRODR(restart=20, recycle=5).run(A, b)
    assert rec.U.shape == (b.shape[0], 5) and bool(rec.valid)


def test_messages_name_each_solvers_own_arguments(small_darcy):
    A, b = small_darcy.operators[0], small_darcy.rhs[0]
    with pytest.raises(RUNTIME_ERRORS, match=r"gmres did not reach `tol`.*`restart`"):
        gmres(A, b, max_steps=5)
    with pytest.raises(RUNTIME_ERRORS, match=r"gcrodr did not reach `tol`.*`recycle`"):
        gcrodr(A, b, max_steps=5, restart=10, recycle=3)
    with pytest.raises(RUNTIME_ERRORS, match=r"cg did not reach `tol`.*`preconditioner`"):
        cg(A, b, max_steps=5)
    # Under jit the check is tied to every output: the step count alone still raises.
    with pytest.raises(RUNTIME_ERRORS, match="`max_steps`"):
        jax.block_until_ready(jax.jit(lambda b: gmres(A, b, max_steps=5).num_matvecs)(b))


def test_warm_start_x0_meets_tol_relative_to_b(small_darcy):
    A, b = small_darcy.operators[0], small_darcy.rhs[0]
    x_ref = spla.spsolve(small_darcy.to_scipy(0).tocsc(), np.asarray(b))
    x0 = jnp.asarray(x_ref) * (1 + 1e-3)
    for fn in (cg, gmres):
        cold, warm = fn(A, b, tol=1e-9), fn(A, b, x0, tol=1e-9)
        assert float(warm.residual) <= 1e-9
        assert int(warm.num_matvecs) < int(cold.num_matvecs)
        np.testing.assert_allclose(warm.x, x_ref, rtol=1e-7)
