"""The implicit hypergradient against closed forms and float64 finite differences.

Quadratic lower level ``½yᵀHy − yᵀ(Bx + c)``: ``y*(x) = H⁻¹(Bx + c)`` and, with
``f = ½‖y − t‖² + ½ρ‖x‖²``, ``∇F(x) = Mᵀ(y*(x) − t) + ρx`` with ``M = H⁻¹B`` (NumPy).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import RESULTS, bilevel
from jaxopt_papers.linear import RecyclingSolve

jax.config.update("jax_enable_x64", True)

RP = bilevel.problems.quadratic(dim_x=4, dim_y=6, seed=3)
(T, RHO), (H, B, C) = RP.upper_data, RP.lower_data
Hn, Bn, Cn, Tn = (np.asarray(a) for a in (H, B, C, T))
M = np.linalg.solve(Hn, Bn)


def y_star(x, c=Cn):
    return np.linalg.solve(Hn, Bn @ np.asarray(x) + c)


def grad_F(x, t=Tn, rho=float(RHO)):
    return M.T @ (y_star(x) - t) + rho * np.asarray(x)


X = jnp.asarray(np.random.default_rng(0).normal(size=4))


def test_closed_form_and_finite_differences():
    g = bilevel.hypergradient(RP.problem, X, jnp.asarray(y_star(X)), RP.upper_data, RP.lower_data)
    np.testing.assert_allclose(g, grad_F(X), rtol=1e-10)
    F = lambda x: 0.5 * np.sum((y_star(x) - Tn) ** 2) + 0.5 * float(RHO) * np.sum(x**2)
    h = 1e-6
    fd = [(F(X + h * e) - F(X - h * e)) / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(g, fd, rtol=1e-7)


@pytest.mark.parametrize("solve", ["cg", "gmres", "lu", RecyclingSolve(restart=6, recycle=2)],
                         ids=["cg", "gmres", "lu", "recycling"])  # fmt: skip
def test_every_backward_solve_gives_the_closed_form(solve):
    y = jnp.asarray(y_star(X))
    sol = bilevel.hypergradient(
        RP.problem, X, y, RP.upper_data, RP.lower_data, solve=solve, full_output=True
    )
    np.testing.assert_allclose(sol.value, grad_F(X), rtol=1e-8)
    assert sol.result == RESULTS.successful
    if isinstance(solve, RecyclingSolve):
        assert sol.state is not None and sol.state.U.shape == (6, 2)


def test_under_jit_and_vmap_over_a_hyperparameter():
    y = jnp.asarray(y_star(X))
    g = jax.jit(lambda x, yy: bilevel.hypergradient(RP.problem, x, yy, RP.upper_data,
                                                    RP.lower_data))(X, y)  # fmt: skip
    np.testing.assert_allclose(g, grad_F(X), rtol=1e-10)
    rhos = jnp.array([0.0, 0.1, 1.0])
    gs = jax.vmap(
        lambda r: bilevel.hypergradient(RP.problem, X, y, (T, r), RP.lower_data, throw=False)
    )(rhos)
    for r, gr in zip(rhos, gs, strict=True):
        np.testing.assert_allclose(gr, grad_F(X, rho=float(r)), rtol=1e-10)


def test_pytree_x_and_y():
    # x = {"a": x[:2], "b": x[2:]}, y = (y[:3], y[3:]): the same problem written on pytrees.
    def join(x):
        return jnp.concatenate([x["a"], x["b"]])

    def upper(x, y, d):
        return RP.problem.upper_fn(join(x), jnp.concatenate(y), d)

    def lower(x, y, d):
        return RP.problem.lower_fn(join(x), jnp.concatenate(y), d)

    problem = bilevel.BilevelProblem(upper, lower)
    ys = jnp.asarray(y_star(X))
    g = bilevel.hypergradient(
        problem, {"a": X[:2], "b": X[2:]}, (ys[:3], ys[3:]), RP.upper_data, RP.lower_data
    )
    np.testing.assert_allclose(join(g), grad_F(X), rtol=1e-10)


def test_hessian_of_F_by_differentiating_the_hypergradient():
    def hg(x):
        y = jnp.linalg.solve(H, B @ x + C)
        return bilevel.hypergradient(RP.problem, x, y, RP.upper_data, RP.lower_data)

    np.testing.assert_allclose(jax.jacobian(hg)(X), M.T @ M + float(RHO) * np.eye(4), rtol=1e-8)
    np.testing.assert_allclose(jax.jacfwd(hg)(X), M.T @ M + float(RHO) * np.eye(4), rtol=1e-8)


def test_unsolved_lower_level_is_reported_and_raises():
    y = jnp.asarray(y_star(X)) + 0.1
    sol = bilevel.hypergradient(
        RP.problem, X, y, RP.upper_data, RP.lower_data, full_output=True, throw=False
    )
    assert sol.result == RESULTS.inaccurate
    # the residual is ‖Hy − (Bx + c)‖ / ‖Bx + c‖ for a quadratic lower level
    b = Bn @ np.asarray(X) + Cn
    expected = np.linalg.norm(Hn @ np.asarray(y) - b) / np.linalg.norm(b)
    np.testing.assert_allclose(sol.stats["lower_residual"], expected, rtol=1e-10)
    with pytest.raises(eqx.EquinoxRuntimeError, match="does not solve the lower-level"):
        bilevel.hypergradient(RP.problem, X, y, RP.upper_data, RP.lower_data)
    np.testing.assert_allclose(
        bilevel.lower_residual(RP.problem, X, y, RP.lower_data), expected, rtol=1e-10
    )


# --- a constrained lower level: min_y ½‖y − x‖² s.t. Σy ≤ 0 -------------------------------------

TC = jnp.array([0.3, -0.5, 1.0])
CONSTRAINED = bilevel.BilevelProblem(
    lambda x, y, t: 0.5 * jnp.sum((y - t) ** 2) + 0.1 * jnp.sum(x**3),
    lambda x, y, d: 0.5 * jnp.sum((y - d * x) ** 2),
    lambda x, y, d: jnp.sum(y)[None],
)


def _project(x, d=1.0):  # the lower solution when Σx > 0 (the constraint active)
    v = d * np.asarray(x)
    return v - max(v.sum(), 0.0) / v.size


def test_constrained_kkt_hypergradient_equals_finite_differences():
    x = np.array([1.0, 2.0, 0.5])
    F = lambda x: 0.5 * np.sum((_project(x) - np.asarray(TC)) ** 2) + 0.1 * np.sum(x**3)
    h = 1e-6
    fd = [(F(x + h * e) - F(x - h * e)) / (2 * h) for e in np.eye(3)]
    xj = jnp.asarray(x)
    g = bilevel.hypergradient(CONSTRAINED, xj, jnp.asarray(_project(x)), TC, 1.0)
    np.testing.assert_allclose(g, fd, rtol=1e-7)
    mu = bilevel.estimate_multipliers(CONSTRAINED, xj, jnp.asarray(_project(x)), 1.0)
    np.testing.assert_allclose(mu, [x.sum() / 3], rtol=1e-10)  # ∇ᵧg + μ·1 = 0
    g2 = bilevel.hypergradient(CONSTRAINED, xj, jnp.asarray(_project(x)), TC, 1.0,
                               multipliers=mu)  # fmt: skip
    np.testing.assert_allclose(g2, g, rtol=1e-12)
    # an inactive constraint (Σx < 0): the unconstrained hypergradient y*(x) = x
    x = np.array([-1.0, 0.2, -0.5])
    g = bilevel.hypergradient(CONSTRAINED, jnp.asarray(x), jnp.asarray(x), TC, 1.0)
    np.testing.assert_allclose(g, (x - np.asarray(TC)) + 0.3 * x**2, rtol=1e-10)


def test_multi_block_equals_the_mean_of_the_blocks_closed_forms():
    rp = bilevel.problems.multi_block_quadratic(num_blocks=5, dim_x=3, dim_y=4, seed=1)
    A, mu = (np.asarray(a) for a in rp.lower_data)
    t = np.asarray(rp.upper_data)
    x = np.array([0.3, -0.2, 0.7])
    y = np.einsum("iab,b->ia", A, x) / (1 + mu[:, None])
    g = bilevel.hypergradient(rp.problem, jnp.asarray(x), jnp.asarray(y), rp.upper_data,
                              rp.lower_data)  # fmt: skip
    expected = np.mean([A[i].T @ (y[i] - t[i]) / (1 + mu[i]) for i in range(5)], axis=0)
    np.testing.assert_allclose(g, expected, rtol=1e-10)


def test_bad_input_names_the_argument():
    y = jnp.asarray(y_star(X))
    with pytest.raises(ValueError, match="`lower_fn` could not be evaluated"):
        bilevel.hypergradient(RP.problem, jnp.zeros(5), y, RP.upper_data, RP.lower_data)
    with pytest.raises(TypeError, match="`x` must have floating-point leaves"):
        bilevel.hypergradient(RP.problem, jnp.zeros(4, int), y, RP.upper_data, RP.lower_data)
    with pytest.raises(TypeError, match="`problem` must be a BilevelProblem"):
        bilevel.hypergradient(lambda x: x, X, y, RP.upper_data, RP.lower_data)
    with pytest.raises(ValueError, match="`multipliers` given"):
        bilevel.hypergradient(RP.problem, X, y, RP.upper_data, RP.lower_data,
                              multipliers=jnp.ones(1))  # fmt: skip
    bad = bilevel.BilevelProblem(lambda x, y, d: y, RP.problem.lower_fn)
    with pytest.raises(ValueError, match="`upper_fn` must return a scalar"):
        bilevel.hypergradient(bad, X, y, RP.upper_data, RP.lower_data)
    with pytest.raises(TypeError, match="`lower_fn` must be callable"):
        bilevel.BilevelProblem(RP.problem.upper_fn, 3.0)
    with pytest.raises(ValueError, match="same number of blocks"):
        rp = bilevel.problems.multi_block_quadratic(num_blocks=3)
        bilevel.hypergradient(rp.problem, rp.x0, rp.y0[:2], rp.upper_data, rp.lower_data)
