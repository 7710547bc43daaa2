"""The seven projections jaxopt had and we lacked: jaxopt, independent oracles, gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from jaxopt_papers import proximal as P
from tests.migration._jaxopt import jaxopt, module

JP = module("projection")
RNG = np.random.default_rng(0)


def _fd_check(f, x, direction, eps=1e-6, rtol=1e-6, atol=1e-8):
    """Directional derivative of ``f`` at ``x`` by jax.jvp against central differences."""
    _, jvp = jax.jvp(f, (x,), (direction,))
    fd = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(jvp, fd, rtol=rtol, atol=atol)


def _lbfgs(fun):
    return jaxopt.LBFGS(fun=fun, tol=1e-13, maxiter=5000)


def test_sparse_simplex_matches_jaxopt_and_the_definition():
    x = jnp.asarray(RNG.normal(size=9))
    for k in (1, 3, 9):
        for v in (1.0, 2.5):
            p = P.projection_sparse_simplex(x, k, value=v)
            np.testing.assert_allclose(p, JP.projection_sparse_simplex(x, k, value=v), atol=1e-12)
            assert int(jnp.sum(p > 0)) <= k and abs(float(p.sum()) - v) < 1e-12
    # oracle: the simplex projection of the k largest entries, zeros elsewhere
    top = np.argsort(-np.asarray(x))[:3]
    want = np.zeros(9)
    want[top] = P.projection_simplex(x[top])
    np.testing.assert_allclose(P.projection_sparse_simplex(x, 3), want, atol=1e-12)
    J = jax.jacobian(lambda z: P.projection_sparse_simplex(z, 3))(x)
    np.testing.assert_allclose(
        J, jax.jacobian(lambda z: JP.projection_sparse_simplex(z, 3))(x), atol=1e-12
    )
    with pytest.raises(ValueError, match="max_nz"):
        P.projection_sparse_simplex(x, 0)


def _box_section_scipy(x, alpha, beta, w, c):
    res = scipy.optimize.minimize(
        lambda p: 0.5 * np.sum((p - x) ** 2),
        np.clip(x, alpha, beta),
        jac=lambda p: p - x,
        bounds=list(zip(alpha, beta, strict=True)),
        constraints=[{"type": "eq", "fun": lambda p: w @ p - c, "jac": lambda p: w}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return res.x


def test_box_section_matches_scipy_and_jaxopt_and_differentiates():
    n = 7
    x = RNG.normal(size=n)
    alpha, beta = -0.3 * np.ones(n), np.ones(n)
    w, c = RNG.uniform(0.5, 2.0, n), 1.5
    hp = (*(jnp.asarray(v) for v in (alpha, beta, w)), c)
    p = P.projection_box_section(jnp.asarray(x), hp, check_feasible=True)
    np.testing.assert_allclose(p, _box_section_scipy(x, alpha, beta, w, c), atol=1e-7)
    assert abs(float(jnp.dot(hp[2], p)) - c) < 1e-12
    # jaxopt bisects to its default tol (1e-5), so its answer is only that accurate
    np.testing.assert_allclose(p, JP.projection_box_section(jnp.asarray(x), hp), atol=1e-5)
    d = jnp.asarray(RNG.normal(size=n))
    _fd_check(lambda z: P.projection_box_section(z, hp), jnp.asarray(x), d)
    _fd_check(lambda wz: P.projection_box_section(jnp.asarray(x), (*hp[:2], wz, c)), hp[2], d)
    _fd_check(lambda cz: P.projection_box_section(jnp.asarray(x), (*hp[:3], cz)), 1.5, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        P.projection_box_section(jnp.asarray(x), (*hp[:3], -10.0), check_feasible=True)


def _polyhedron_problem(seed):
    rng = np.random.default_rng(seed)
    A, b = rng.normal(size=(2, 6)), rng.normal(size=2)
    G, h = rng.normal(size=(4, 6)), rng.uniform(0.0, 1.0, 4)
    x = 3 * rng.normal(size=6)
    return x, A, b, G, h


def test_polyhedron_satisfies_kkt_and_matches_scipy_and_jaxopt():
    x, A, b, G, h = _polyhedron_problem(1)
    hp = tuple(jnp.asarray(v) for v in (A, b, G, h))
    p = np.asarray(P.projection_polyhedron(jnp.asarray(x), hp))
    assert np.abs(A @ p - b).max() < 1e-10 and (G @ p - h).max() < 1e-10
    # KKT: x − p = Aᵀμ + G_Sᵀλ with λ ≥ 0 on the active set S
    S = G @ p - h > -1e-9
    M = np.concatenate([A, G[S]])
    mult = np.linalg.lstsq(M.T, x - p, rcond=None)[0]
    np.testing.assert_allclose(M.T @ mult, x - p, atol=1e-9)
    assert np.all(mult[len(b) :] >= -1e-9)
    res = scipy.optimize.minimize(
        lambda q: 0.5 * np.sum((q - x) ** 2),
        np.zeros(6),
        jac=lambda q: q - x,
        constraints=[
            {"type": "eq", "fun": lambda q: A @ q - b, "jac": lambda q: A},
            {"type": "ineq", "fun": lambda q: h - G @ q, "jac": lambda q: -G},
        ],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    np.testing.assert_allclose(p, res.x, atol=1e-7)
    # jaxopt's OSQP stops at tol=1e-3
    np.testing.assert_allclose(p, JP.projection_polyhedron(jnp.asarray(x), hp), atol=3e-3)
    d = jnp.asarray(np.random.default_rng(2).normal(size=6))
    _fd_check(lambda z: P.projection_polyhedron(z, hp, check_feasible=False), jnp.asarray(x), d)
    _fd_check(
        lambda hz: P.projection_polyhedron(jnp.asarray(x), (*hp[:3], hz), check_feasible=False),
        hp[3],
        jnp.asarray(np.random.default_rng(3).normal(size=4)),
    )
    with pytest.raises(ValueError, match="empty"):  # p₀ ≤ −1 and p₀ ≥ 1
        P.projection_polyhedron(
            jnp.zeros(2),
            (jnp.zeros((0, 2)), jnp.zeros(0), jnp.array([[1.0, 0.0], [-1.0, 0.0]]), -jnp.ones(2)),
        )


def _marginals(m, n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.5, 1.5, m), rng.uniform(0.5, 1.5, n)
    return jnp.asarray(a / a.sum()), jnp.asarray(b / b.sum())


def test_transport_matches_jaxopt_and_is_the_euclidean_projection():
    S = jnp.asarray(RNG.normal(size=(4, 5)))
    a, b = _marginals(4, 5, 4)
    plan = P.projection_transport(S, (a, b))
    # jaxopt with a tight L-BFGS on its own semi-dual
    ref = JP.projection_transport(S, (a, b), make_solver=_lbfgs)
    np.testing.assert_allclose(plan, ref, atol=1e-10)
    # independent: a QP solved by scipy, min ½‖P − S‖² s.t. marginals, P ≥ 0
    m, n = S.shape
    E = np.concatenate([np.kron(np.eye(m), np.ones(n)), np.kron(np.ones(m), np.eye(n))])
    E, r = E[:-1], np.concatenate([a, b])[:-1]  # one marginal constraint is redundant
    res = scipy.optimize.minimize(
        lambda q: 0.5 * np.sum((q - np.asarray(S).ravel()) ** 2),
        np.outer(a, b).ravel(),
        jac=lambda q: q - np.asarray(S).ravel(),
        bounds=[(0, None)] * (m * n),
        constraints=[{"type": "eq", "fun": lambda q: E @ q - r, "jac": lambda q: E}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    np.testing.assert_allclose(plan, res.x.reshape(m, n), atol=1e-7)
    # the make_solver hook, both formulations, as in jaxopt
    np.testing.assert_allclose(P.projection_transport(S, (a, b), _lbfgs), ref, atol=1e-10)
    dual = P.projection_transport(S, (a, b), _lbfgs, use_semi_dual=False)
    np.testing.assert_allclose(dual, ref, atol=1e-8)
    W = jnp.asarray(RNG.normal(size=(4, 5)))
    _fd_check(lambda s: P.projection_transport(s, (a, b)), S, W)
    _fd_check(lambda bb: P.projection_transport(S, (a, bb)), b, jnp.asarray([1, -1, 0, 0.5, -0.5]))


def test_kl_transport_matches_jaxopt_and_the_sinkhorn_form():
    S = jnp.asarray(RNG.normal(size=(4, 5)))
    a, b = _marginals(4, 5, 5)
    plan = P.kl_projection_transport(S, (a, b))
    ref = JP.kl_projection_transport(S, (a, b), make_solver=_lbfgs)
    np.testing.assert_allclose(plan, ref, atol=1e-9)
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-10)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-10)
    # P = diag(u) exp(S) diag(v): log P − S has rank one in the log domain
    L = np.log(np.asarray(plan)) - np.asarray(S)
    assert np.abs(L - L[:, :1] - L[:1, :] + L[0, 0]).max() < 1e-8
    dual = P.kl_projection_transport(S, (a, b), _lbfgs, use_semi_dual=False)
    np.testing.assert_allclose(dual, ref, atol=1e-8)
    _fd_check(
        lambda s: P.kl_projection_transport(s, (a, b)), S, jnp.asarray(RNG.normal(size=(4, 5)))
    )


def test_birkhoff_variants_match_jaxopt():
    S = jnp.asarray(RNG.normal(size=(4, 4)))
    np.testing.assert_allclose(
        P.projection_birkhoff(S), JP.projection_birkhoff(S, make_solver=_lbfgs), atol=1e-10
    )
    np.testing.assert_allclose(
        P.kl_projection_birkhoff(S), JP.kl_projection_birkhoff(S, make_solver=_lbfgs), atol=1e-9
    )
    with pytest.raises(ValueError, match="square"):
        P.projection_birkhoff(jnp.ones((2, 3)))
