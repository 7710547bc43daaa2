"""SKR's sorting and recycled solve of sequences; the recycled solve as implicit-diff backend.

Oracles: a plain-Python greedy nearest-neighbour chain, ``scipy.sparse.linalg.spsolve``, the
solver without recycling (GMRES), and central finite differences in float64.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.linear.sequence import greedy_order


def naive_greedy(params: np.ndarray) -> list[int]:
    order, left = [0], set(range(1, len(params)))
    while left:
        cur = params[order[-1]]
        nxt = min(sorted(left), key=lambda j: float(np.sum((params[j] - cur) ** 2)))
        order.append(nxt)
        left.remove(nxt)
    return order


@pytest.mark.parametrize("shape", [(1, 3), (7, 1), (40, 5), (25, 4, 4)])
def test_greedy_order_matches_a_plain_python_chain(shape):
    params = np.random.default_rng(sum(shape)).normal(size=shape)
    order = greedy_order(jnp.asarray(params))
    assert list(np.asarray(order)) == naive_greedy(params.reshape(shape[0], -1))


def test_greedy_order_is_jittable_and_a_permutation():
    params = jax.random.normal(jax.random.PRNGKey(0), (50, 3))
    order = jax.jit(greedy_order)(params)
    assert sorted(np.asarray(order).tolist()) == list(range(50))
    # Points along a line, shuffled: the chain from the first walks to one end, then the other.
    t = np.random.default_rng(1).permutation(20).astype(float)
    order = np.asarray(greedy_order(jnp.asarray(t[:, None])))
    walked = t[order]
    assert np.all(np.abs(np.diff(walked)) >= 1) and len(set(walked)) == 20


# ------------------------------------------------------------------------- solve_sequence

import scipy.sparse.linalg as spla  # noqa: E402

from jaxopt_papers import RESULTS  # noqa: E402
from jaxopt_papers.implicit import custom_root, root_vjp  # noqa: E402
from jaxopt_papers.linear import (  # noqa: E402
    RecyclingSolve,
    SolveSequence,
    darcy,
    gcrodr,
    solve_sequence,
)


@pytest.fixture(scope="module")
def seq():
    return darcy(jax.random.PRNGKey(3), 8, s=26)


def test_solve_sequence_answers_in_the_callers_order(seq):
    res = solve_sequence(seq.operators, seq.rhs, seq.params, tol=1e-10)
    order = np.asarray(res.order)
    assert sorted(order.tolist()) == list(range(8))
    assert list(order) == naive_greedy(np.asarray(seq.params))
    for i in range(8):
        ref = spla.spsolve(seq.to_scipy(i).tocsc(), np.asarray(seq.rhs[i]))
        np.testing.assert_allclose(res.x[i], ref, rtol=1e-7)
    assert res.result == RESULTS.successful and float(res.residual.max()) <= 1e-10
    assert bool(jnp.all(res.results == RESULTS.successful)) and res.x.shape == (8, 24 * 24)
    unsorted = solve_sequence(seq.operators, seq.rhs, seq.params, sort=False, tol=1e-10)
    np.testing.assert_allclose(unsorted.x, res.x, rtol=1e-7)
    plain = solve_sequence(seq.operators, seq.rhs, seq.params, method="gmres", tol=1e-10)
    assert int(res.num_matvecs.sum()) < int(plain.num_matvecs.sum())


def test_solve_sequence_takes_a_list_and_matches_the_stacked_run(seq):
    stacked = solve_sequence(seq.operators, seq.rhs, seq.params, tol=1e-9)
    listed = solve_sequence([seq.operators[i] for i in range(8)], seq.rhs, seq.params, tol=1e-9)
    np.testing.assert_allclose(listed.x, stacked.x, rtol=1e-9)
    np.testing.assert_array_equal(listed.num_matvecs, stacked.num_matvecs)
    dense = [jnp.asarray(seq.to_scipy(i).toarray()) for i in range(3)]
    out = solve_sequence(dense, seq.rhs[:3], method="cg", sort=False, tol=1e-10)
    for i in range(3):
        np.testing.assert_allclose(dense[i] @ out.x[i], seq.rhs[i], atol=1e-7)


def test_solve_sequence_bad_input(seq):
    with pytest.raises(ValueError, match="`rhs` must have shape"):
        solve_sequence(seq.operators, seq.rhs[0])
    with pytest.raises(ValueError, match="leading axis of size 7"):
        solve_sequence(seq.operators, seq.rhs[:7])
    with pytest.raises(ValueError, match="`params` must have 8 rows"):
        solve_sequence(seq.operators, seq.rhs, seq.params[:5])
    with pytest.raises(ValueError, match="`method`"):
        solve_sequence(seq.operators, seq.rhs, method="bicg")
    with pytest.raises(ValueError, match="got 2 operators but 8"):
        solve_sequence([seq.operators[0]] * 2, seq.rhs)
    with pytest.raises(ValueError, match="`rhs` must hold at least one system"):
        solve_sequence([], jnp.zeros((0, 576)))
    small = darcy(jax.random.PRNGKey(0), 1, s=10).operators[0]
    with pytest.raises(ValueError, match=r"every matrix of `operators` must be 576x576.*64x64"):
        solve_sequence([seq.operators[0], small], seq.rhs[:2])


def test_non_finite_params_raise_or_give_a_code_never_other_systems_answers(seq):
    bad = np.asarray(seq.params).copy()
    bad[3, 5], bad[6, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match="`params` \\(the sort key\\) must be finite"):
        solve_sequence(seq.operators, seq.rhs, bad)
    # Traced (under jit): a result code, a permutation, and each answer its own system's.
    run = jax.jit(lambda p: solve_sequence(seq.operators, seq.rhs, p, tol=1e-9, throw=False))
    sol = run(jnp.asarray(bad))
    assert sol.result == RESULTS.invalid_input
    assert bool(jnp.all(sol.results == RESULTS.invalid_input))
    assert sorted(np.asarray(sol.order).tolist()) == list(range(8))
    for i in range(8):
        ref = spla.spsolve(seq.to_scipy(i).tocsc(), np.asarray(seq.rhs[i]))
        np.testing.assert_allclose(sol.x[i], ref, rtol=1e-6)
    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError), match="sort key"):
        jax.block_until_ready(
            jax.jit(lambda p: solve_sequence(seq.operators, seq.rhs, p).num_matvecs)(bad)
        )
    # greedy_order itself always returns a permutation.
    assert sorted(np.asarray(greedy_order(jnp.asarray(bad))).tolist()) == list(range(8))


def test_a_list_of_banded_matrices_is_stacked_and_solved_in_one_scan(seq, monkeypatch):
    from jaxopt_papers.linear import sequence

    calls = {"scan": 0}
    scan = sequence._scan_sequence

    def counting(*args, **kwargs):
        calls["scan"] += 1
        return scan(*args, **kwargs)

    monkeypatch.setattr(sequence, "_scan_sequence", counting)
    listed = solve_sequence([seq.operators[i] for i in range(8)], seq.rhs, seq.params, tol=1e-9)
    assert calls["scan"] == 1
    for i in range(8):
        ref = spla.spsolve(seq.to_scipy(i).tocsc(), np.asarray(seq.rhs[i]))
        np.testing.assert_allclose(listed.x[i], ref, rtol=1e-7)


def test_manual_steps_reproduce_run(seq):
    solver = SolveSequence(tol=1e-9, restart=30, recycle=10)
    sol = solver.run(seq.operators, seq.rhs, seq.params)
    state = solver.init(seq.operators, seq.rhs, seq.params)
    for _ in range(8):
        state = solver.step(state, seq.operators, seq.rhs)
    np.testing.assert_allclose(state.x, sol.x, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(state.num_matvecs, sol.num_matvecs)
    assert int(state.krylov_steps) == int(sol.num_steps)
    assert isinstance(sol.state.U, jax.Array) and sol.state.U.shape == (576, 10)


# --------------------------------------------------------- recycling in implicit diff


def _problem(n=150, seed=0):
    """1-D convection–diffusion (non-symmetric, condition ~n²: GMRES(20) needs many cycles)."""
    rng = np.random.default_rng(seed)
    A0 = jnp.asarray(np.diag(np.full(n, 2.0)) + np.diag(np.full(n - 1, -1.3), -1)
                     + np.diag(np.full(n - 1, -0.7), 1))  # fmt: skip
    B = jnp.asarray(np.diag(rng.uniform(0.0, 0.01, n)))
    b = jnp.asarray(rng.normal(size=n))
    return A0, B, b


def test_recycling_solve_hypergradients_along_an_outer_loop():
    """x*(θ) solves (A0 + θB)x = b; the hypergradient of ½‖x*‖² by root_vjp with a recycled
    adjoint space matches the dense formula at every outer step, with fewer products than a
    fresh solve once the space is warm."""
    A0, B, b = _problem()
    F = lambda x, theta: (A0 + theta * B) @ x - b
    # compiled once per structure of the solver (without and with a state), reused every step
    adjoint = jax.jit(
        lambda x, theta, solve: root_vjp(F, x, (theta,), x, solve=solve, return_stats=True)
    )
    solve = RecyclingSolve(restart=30, recycle=10, tol=1e-12)
    fresh_counts, recycled_counts = [], []
    for theta in np.linspace(0.1, 0.3, 6):
        A = A0 + theta * B
        x = jnp.linalg.solve(A, b)
        (g,), stats = adjoint(x, theta, solve)
        exact = -(jnp.linalg.solve(A.T, x) @ (B @ x))  # dL/dθ = −uᵀ B x, Aᵀu = x
        np.testing.assert_allclose(g, exact, rtol=1e-9)
        recycled_counts.append(int(stats["num_matvecs"]))
        fresh = RecyclingSolve(restart=30, recycle=10, tol=1e-12)
        fresh_counts.append(int(adjoint(x, theta, fresh)[1]["num_matvecs"]))
        solve = solve.with_state(stats["recycle_state"])
    assert recycled_counts[0] == fresh_counts[0]
    assert sum(recycled_counts[2:]) < sum(fresh_counts[2:])


def test_gradient_through_custom_root_with_a_recycling_solve_matches_fd():
    A0, B, b = _problem(n=100, seed=1)
    F = lambda x, theta: (A0 + theta * B) @ x - b
    warm = gcrodr(A0.T, b, restart=30, recycle=10, tol=1e-12).state  # an adjoint-side space

    @custom_root(F, solve=RecyclingSolve(restart=30, recycle=10, tol=1e-12, state=warm))
    def x_star(init, theta):
        return gcrodr(A0 + theta * B, b, tol=1e-13, restart=30, recycle=10).x

    loss = lambda theta: 0.5 * jnp.sum(x_star(None, theta) ** 2)
    h = 1e-5
    fd = (loss(0.2 + h) - loss(0.2 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(loss)(0.2), fd, rtol=1e-6)
