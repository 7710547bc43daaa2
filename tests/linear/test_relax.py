"""SOR and "Learning to Relax" against independent oracles.

Oracles: a numpy/scipy SOR loop written from the reference's ``sor.m`` (iteration counts), the
closed-form spectrum of the 5-point Laplacian (Young's optimal ω), a scipy assembly of the
Laplacian, scipy's root finder (Tsallis-INF's normaliser), and the best fixed ω in hindsight
computed by solving every instance at every ω of the grid.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
import scipy.optimize as sopt
import scipy.sparse as sp

from jaxopt_papers.implicit import RESULTS
from jaxopt_papers.linear import (
    ChebCB,
    TsallisINF,
    TsallisINFCB,
    optimal_omega,
    shifted_laplacian_stream,
    sor,
    ssor_pcg,
)

RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def numpy_sor(A, b, omega, tol=1e-8, cap=10_000):
    M = np.diag(np.diag(A)) / omega + np.tril(A, -1)
    x = np.zeros_like(b)
    r = b - A @ x
    norm0 = np.linalg.norm(r)
    for k in range(1, cap + 1):
        x = x + sla.solve_triangular(M, r, lower=True)
        r = b - A @ x
        if np.linalg.norm(r) / norm0 < tol:
            return k, x
    return cap, x


@pytest.fixture(scope="module")
def stream():
    A, c, B = shifted_laplacian_stream(jax.random.PRNGKey(0), 400, side=6)
    return np.asarray(A), np.asarray(c), np.asarray(B)


def test_stream_matches_delsq_and_distributions():
    A, c, B = shifted_laplacian_stream(jax.random.PRNGKey(1), 4000)
    t = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(10, 10))
    lap = (sp.kron(sp.eye(10), t) + sp.kron(t, sp.eye(10))).toarray()
    np.testing.assert_array_equal(np.asarray(A), lap)
    assert bool(jnp.all(jnp.linalg.norm(B, axis=1) <= 10.0))
    assert -0.15 <= float(c.min()) and float(c.max()) <= 0.45
    # −0.15 + 0.6·Beta(0.5, 1.5): mean −0.15 + 0.6/4 = 0, sd 0.6·√(0.75/(4·3)) = 0.15.
    assert abs(float(c.mean())) < 4 * 0.15 / np.sqrt(4000)
    _, c_low, _ = shifted_laplacian_stream(jax.random.PRNGKey(1), 4000, variance="low")
    # −0.15 + 0.6·Beta(2, 6): the same mean 0, sd 0.6·√(12/(64·9)) = 0.087 (reference learning.m).
    assert abs(float(c_low.mean())) < 4 * 0.087 / np.sqrt(4000)
    np.testing.assert_allclose(float(c_low.std()), 0.087, rtol=0.1)
    np.testing.assert_allclose(float(c.std()), 0.15, rtol=0.1)


@pytest.mark.parametrize("omega", [1.0, 1.35, 1.8])
def test_sor_counts_and_solution_match_reference_loop(stream, omega):
    A, c, B = stream
    for t in range(3):
        At = A + c[t] * np.eye(A.shape[0])
        k_ref, x_ref = numpy_sor(At, B[t], omega)
        res = sor(jnp.asarray(At), B[t], omega)
        assert abs(int(res.num_steps) - k_ref) <= 1
        assert bool(res.result == RESULTS.successful)
        x = np.asarray(res.x)
        assert np.linalg.norm(B[t] - At @ x) < 1e-8 * np.linalg.norm(B[t])
        np.testing.assert_allclose(x, x_ref, rtol=1e-6, atol=1e-9)


def test_optimal_omega_closed_form_and_is_near_the_cheapest():
    A, c, B = shifted_laplacian_stream(jax.random.PRNGKey(2), 3)
    for t in range(3):
        At = A + c[t] * jnp.eye(100)
        beta = 4 * np.cos(np.pi / 11) / (4 + float(c[t]))  # ρ of the Jacobi matrix
        want = 2 / (1 + np.sqrt(1 - beta**2))
        w = float(optimal_omega(At))
        np.testing.assert_allclose(w, want, rtol=1e-10)
        grid = np.linspace(1.0, 1.95, 20)
        costs = [int(sor(At, B[t], g).num_steps) for g in grid]
        assert int(sor(At, B[t], w).num_steps) <= 1.1 * min(costs) + 2


def test_ssor_pcg_converges_and_cap_is_reported(stream):
    A, c, B = stream
    At = jnp.asarray(A + c[0] * np.eye(A.shape[0]))
    res = ssor_pcg(At, B[0], 1.4, tol=1e-10)
    np.testing.assert_allclose(res.x, np.linalg.solve(At, B[0]), rtol=1e-7, atol=1e-10)
    capped = sor(At, B[0], 1.0, max_steps=3)
    assert int(capped.num_steps) == 3 and bool(capped.result == RESULTS.max_steps_reached)
    with pytest.raises(RUNTIME_ERRORS, match="max_steps"):
        jax.block_until_ready(sor(At, B[0], 1.0, max_steps=3, throw=True).x)


def test_tsallis_normaliser_matches_root_finder():
    L = TsallisINF(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        L.propose()
        L.update(1 + rng.integers(50, 500))
    p = L.probabilities()
    eta = 2 / np.sqrt(L.t)
    z = L.K / L.scale

    def excess(x):
        return np.sum(4 * (eta * (z - x)) ** -2.0) - 1

    x = sopt.brentq(excess, z.min() - 1e6, z.min() - 1e-12)
    np.testing.assert_allclose(p, 4 * (eta * (z - x)) ** -2.0, rtol=1e-8)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-8)


@pytest.fixture(scope="module")
def hindsight():
    """The reference's stream (n = 100, high variance) and the iterations of every instance at
    every ω of the grid: the table the best fixed ω in hindsight is read from."""
    A, c, B = shifted_laplacian_stream(jax.random.PRNGKey(0), 300)
    grid = jnp.linspace(1.0, 1.95, 20)

    @jax.jit
    def steps(ct, b, w):
        return sor(A + ct * jnp.eye(A.shape[0]), b, w).num_steps

    # one compiled solve per (instance, ω): a vmap over ω runs every ω as long as the slowest
    table = np.array([[int(steps(c[t], B[t], w)) for w in grid] for t in range(len(c))])
    return table, np.asarray(grid), np.asarray(c)


def play(learner, costs, grid, contexts=None):
    total = []
    for t in range(costs.shape[0]):
        w = learner.propose() if contexts is None else learner.propose(contexts[t])
        i = int(np.argmin(np.abs(grid - w)))
        total.append(costs[t, i])
        learner.update(costs[t, i])
    return np.asarray(total, float)


def test_bandits_approach_the_best_fixed_omega(hindsight):
    table, grid, c = hindsight
    half = table.shape[0] // 2
    uniform = table.mean()
    tsallis = np.mean([play(TsallisINF(seed=s), table, grid) for s in range(3)], axis=0)
    # Tsallis-INF learns: its second half costs less than its first, and far less than a
    # uniformly random ω. (Over 1,000 instances it stays 1.2-1.4x the best fixed ω: see
    # benchmarks/linear.py.)
    assert tsallis[half:].mean() < tsallis[:half].mean()
    assert tsallis[half:].mean() < 0.75 * uniform
    # The contextual bandit, once it has seen 150 instances, costs less than the best fixed ω in
    # hindsight over the same instances (0.65-0.79x over 8 seeds when this was written).
    cheb = np.mean([play(ChebCB(-0.15, 0.65, seed=s), table, grid, c) for s in range(3)], axis=0)
    assert cheb[half:].mean() <= 0.9 * table[half:].mean(0).min()
    binned = play(TsallisINFCB(-0.15, 0.65, seed=0), table, grid, c)
    assert binned[half:].mean() < binned[:half].mean()


def test_learner_misuse_is_named():
    L = TsallisINF()
    with pytest.raises(RuntimeError, match="propose"):
        L.update(10)
    L.propose()
    with pytest.raises(RuntimeError, match="update"):
        L.propose()
    with pytest.raises(ValueError, match="cost"):
        L.update(float("nan"))
    with pytest.raises(ValueError, match="grid"):
        TsallisINF(grid=[1.0, 2.5])
    with pytest.raises(ValueError, match="low < high"):
        ChebCB(1.0, 0.0)
    with pytest.raises(ValueError, match="omega"):
        sor(jnp.eye(3), jnp.ones(3), 2.0)
    with pytest.raises(ValueError, match="`b`"):
        sor(jnp.eye(3), jnp.ones(4), 1.0)
