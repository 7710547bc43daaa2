"""LVHBA (Yao, Yu, Zeng, Zhang, ICLR 2024) against independent oracles.

Oracles: a NumPy re-implementation of the update equations (three steps on a small problem with
a nonlinear coupled constraint, a half-space projection and the multiplier clip active), a
NumPy transcription of the official toy script (``Toy-example/LLC/LV-HBA.py``, its defaults,
1500 iterations), the toy's known solution, the closed-form solution of the quadratic problem
and of a small constrained problem (with its KKT multiplier and closed-form value function, by
finite differences), the Euclidean projection of the SVM problem computed by L-BFGS-B on its
dual (scipy), and scikit-learn's linear SVM.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import RESULTS, bilevel
from jaxopt_papers.bilevel._lvhba_problems import _svm_projection, linear_svm, lvhba_toy
from jaxopt_papers.bilevel.lvhba import LVHBA, LVHBAState, halfspace_projection

jax.config.update("jax_enable_x64", True)


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


# -- (1) three steps against a NumPy re-implementation of the update equations --------------------

T_UP, RHO, S_UP = np.array([1.0, -0.5, 2.0]), 0.3, np.array([0.5, -1.0])
Q = np.array([[2.0, 0.3, 0.0], [0.3, 1.5, -0.2], [0.0, -0.2, 1.0]])
BM = np.array([[1.0, -0.5], [0.2, 0.7], [-0.3, 0.4]])
CV = np.array([0.1, -0.2, 0.3])
A_X, A_Y, B_HALF = np.array([1.0, 0.5]), np.array([0.0, 1.0, 1.0]), 0.5


def _upper(x, y, d):
    t, rho, s = d
    return 0.5 * jnp.sum((y - t) ** 2) + 0.5 * rho * jnp.sum((x - s) ** 2)


def _lower(x, y, d):
    Qm, B, c = d
    return 0.5 * y @ (Qm @ y) - y @ (B @ x + c)


def _constraint(x, y, d):
    return jnp.stack([jnp.sum(y) - x[0] - 1.0, y[1] ** 2 + x[1] * y[2] - 2.0])


SMALL = bilevel.BilevelProblem(_upper, _lower, _constraint)
SMALL_DATA = ((jnp.asarray(T_UP), RHO, jnp.asarray(S_UP)), (jnp.asarray(Q), jnp.asarray(BM),
                                                            jnp.asarray(CV)))  # fmt: skip
SETTINGS = dict(alpha=0.1, beta=0.2, eta=0.1, gamma1=2.0, gamma2=0.5, c_lower=0.5, p=0.3,
                lambda0=0.05, z0=0.5, clip_multiplier=3.0, r=2.0)  # fmt: skip


def _numpy_steps(x, y, num_steps, s):
    """The module's equations, written again in NumPy with hand-derived gradients."""
    theta, lam = y.copy(), np.full(2, min(max(s["lambda0"], 0.0), s["clip_multiplier"]))
    z = np.full(2, min(max(s["z0"], 0.0), s["r"]))
    g = lambda x, y: np.array([y.sum() - x[0] - 1.0, y[1] ** 2 + x[1] * y[2] - 2.0])
    jac_y = lambda x, y: np.array([[1.0, 1.0, 1.0], [0.0, 2 * y[1], x[1]]])
    jac_x = lambda x, y: np.array([[-1.0, 0.0], [0.0, y[2]]])
    fy = lambda x, y: Q @ y - (BM @ x + CV)
    fx = lambda x, y: -BM.T @ y
    out = []
    for k in range(num_steps):
        c = s["c_lower"] * (k + 1) ** s["p"]
        d_theta = fy(x, theta) + jac_y(x, theta).T @ lam + (theta - y) / s["gamma1"]
        d_lam = -g(x, theta) + (lam - z) / s["gamma2"]
        theta_new = theta - s["eta"] * d_theta
        lam_new = np.clip(lam - s["eta"] * d_lam, 0.0, s["clip_multiplier"])
        d_x = (RHO * (x - S_UP)) / c + fx(x, y) - fx(x, theta_new)
        d_x = d_x - jac_x(x, theta_new).T @ lam_new
        d_y = (y - T_UP) / c + fy(x, y) - (y - theta_new) / s["gamma1"]
        u = np.concatenate([x - s["alpha"] * d_x, y - s["alpha"] * d_y])
        a = np.concatenate([A_X, A_Y])
        u = u - max(a @ u - B_HALF, 0.0) / (a @ a) * a
        x_new, y_new = u[:2], u[2:]
        z_new = np.clip(z - s["beta"] * (-(lam_new - z) / s["gamma2"]), 0.0, s["r"])
        error = np.sqrt(
            (np.sum((x - x_new) ** 2) + np.sum((y - y_new) ** 2)) / s["alpha"] ** 2
            + (np.sum((theta - theta_new) ** 2) + np.sum((lam - lam_new) ** 2)) / s["eta"] ** 2
            + np.sum((z - z_new) ** 2) / s["beta"] ** 2
        )
        x, y, theta, lam, z = x_new, y_new, theta_new, lam_new, z_new
        out.append((x, y, theta, lam, z, error))
    return out


def test_three_steps_equal_a_numpy_reimplementation_of_the_update_equations():
    x0, y0 = np.array([1.0, 2.0]), np.array([0.5, 1.5, -1.0])
    solver = LVHBA(SMALL, projection=halfspace_projection(A_X, A_Y, B_HALF), **SETTINGS)
    params = bilevel.BilevelParams(jnp.asarray(x0), jnp.asarray(y0))
    state = solver.init(params, *SMALL_DATA)
    assert isinstance(state, LVHBAState) and state.lam.shape == (2,)
    expected = _numpy_steps(x0, y0, 3, SETTINGS)
    step = jax.jit(lambda p, s: solver.step(p, s, *SMALL_DATA))
    clipped = False
    for x, y, theta, lam, z, error in expected:
        params, state = step(params, state)
        np.testing.assert_allclose(params.x, x, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(params.y, y, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(state.theta, theta, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(state.lam, lam, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(state.z, z, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(state.error, error, rtol=1e-12)
        clipped |= bool(np.any(lam == 0.0))
    assert clipped  # the projection of λ onto [0, U] was exercised
    a = np.concatenate([A_X, A_Y])
    assert a @ np.concatenate([params.x, params.y]) <= B_HALF + 1e-12  # (x, y) ∈ C
    assert int(state.num_steps) == 3 and int(state.num_grads) == 18 and int(state.num_hvps) == 0


# -- (2) the paper's toy -----------------------------------------------------------------------

TOY = lvhba_toy()
# Tuned for n = 100 (official settings do not converge, see below): the spectral radius of the
# linearised iteration is 0.977-0.994 for c in [10, 100].
TOY_SETTINGS = dict(alpha=0.07, beta=0.01, eta=0.07, gamma1=2.0, gamma2=0.02, c_lower=10.0,
                    p=0.3)  # fmt: skip


def _official_toy_script(num_steps, n=100):
    """A NumPy transcription of ``Toy-example/LLC/LV-HBA.py`` with its defaults, in its signs.

    The script's constraint is ``g = 1ᵀx + 1ᵀy`` with ``λ₀ = 1``, ``z₀ = −1`` clipped to
    ``[−1000, 1000]``, and its projection subtracts the mean of ``(x, y)``.
    """
    alpha, beta, eta, gamma1, gamma2, u = 0.008, 0.02, 0.01, 10.0, 10.0, 1000.0
    x, y = np.full(n, -20.0), np.full(2 * n, 10.0)  # the script's start after its projections
    theta, lam, z = y.copy(), 1.0, -1.0
    ones = np.ones(n)
    for k in range(num_steps):
        ck = 0.025 * (k + 1) ** 0.3
        d_theta = np.concatenate([theta[:n] - x, ones]) + lam + (theta - y) / gamma1
        d_lam = -(x.sum() + theta.sum()) + (lam - z) / gamma2
        theta = theta - eta * d_theta
        lam = min(max(lam - eta * d_lam, -u), u)
        d1 = (x - y[n:]) / ck - y[:n] + theta[:n] - lam * ones
        d2 = np.concatenate([y[:n] - 1.0, y[n:] - x]) / ck
        d2 = d2 + np.concatenate([y[:n] - x, ones]) - (y - theta) / gamma1
        w = np.concatenate([x - alpha * d1, y - alpha * d2])
        w = w - w.mean()
        x, y = w[:n], w[n:]
        z = min(max(z + beta * (lam - z) / gamma2, -u), u)
    return x, y, lam, z


def test_symmetric_multipliers_reproduce_the_official_toy_script_trajectory():
    # Our constraint is −(1ᵀx + 1ᵀy) ≤ 0: the script's (λ, z) = (1, −1) are our (−1, 1).
    solver = LVHBA(TOY.problem, projection=TOY.extras["projection"],
                   multiplier_bounds="symmetric", lambda0=-1.0, z0=1.0)  # fmt: skip
    sol = solver.run(TOY.x0, TOY.y0, TOY.upper_data, TOY.lower_data)
    x, y, lam, z = _official_toy_script(1500)
    np.testing.assert_allclose(sol.x, x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sol.y, y, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(-sol.state.lam[0], lam, rtol=1e-9)
    np.testing.assert_allclose(-sol.state.z[0], z, rtol=1e-9)
    # The official settings do not converge on the n = 100 toy (the script itself ends at a
    # relative error of 118.6): c_k stays below 0.23 and the inner step is unstable.
    assert _rel(sol.x, TOY.solution.x) > 10.0


def test_toy_converges_to_its_known_solution_and_stays_feasible():
    solver = LVHBA(TOY.problem, projection=TOY.extras["projection"], **TOY_SETTINGS)
    sol = solver.run(TOY.x0, TOY.y0, TOY.upper_data, TOY.lower_data)
    assert sol.result == RESULTS.successful and int(sol.stats["num_steps"]) == 1500
    assert _rel(sol.x, TOY.solution.x) < 1e-2
    assert _rel(sol.y, TOY.solution.y) < 1e-2
    # the multiplier of the active constraint (1 at the solution) and feasibility of (x, y)
    np.testing.assert_allclose(sol.state.lam, [TOY.extras["multiplier"]], rtol=1e-2)
    total = float(jnp.sum(sol.x) + jnp.sum(sol.y))
    assert abs(total) < 1e-10 * float(jnp.sum(jnp.abs(sol.y)))
    assert int(sol.stats["num_grads"]) == 6 * 1500 and int(sol.stats["num_hvps"]) == 0
    # the half-space C = {1ᵀx + 1ᵀy ≥ 0} itself gives a feasible answer too
    half = dataclasses.replace(solver, projection=TOY.extras["halfspace_projection"])
    sol_half = half.run(TOY.x0, TOY.y0, TOY.upper_data, TOY.lower_data)
    assert float(jnp.sum(sol_half.x) + jnp.sum(sol_half.y)) >= -1e-10
    assert _rel(sol_half.x, TOY.solution.x) < 1e-2


# -- (3) unconstrained: the quadratic problem to 1e-4 ---------------------------------------------


def test_quadratic_problem_reaches_1e_4_relative_error():
    rp = bilevel.problems.quadratic()  # dim_x = 5, dim_y = 10
    # c_k = 0.1 (k+1)^0.8 reaches 1e-4 after 611,859 steps (measured); 700,000 for a margin.
    solver = LVHBA(rp.problem, alpha=0.15, eta=0.15, gamma1=10.0, c_lower=0.1, p=0.8,
                   max_steps=700_000, record_upper=False)  # fmt: skip
    sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    assert sol.state.lam is None and sol.state.z is None
    assert _rel(sol.x, rp.solution.x) <= 1e-4
    assert _rel(sol.y, rp.solution.y) <= 5e-4  # y is O(1/c_k) from y*(x): 2.3e-4 measured
    assert int(sol.stats["num_grads"]) == 4 * 700_000


# -- (4) a constrained problem in closed form: solution, multiplier, KKT hypergradient ------------

M = 3
T_C, S_C, RHO_C = jnp.array([1.0, -0.5, 0.3]), jnp.array([1.5, 0.5, 1.0]), 2.0
CONSTRAINED = bilevel.BilevelProblem(
    _upper, lambda x, y, d: 0.5 * jnp.sum((y - x) ** 2), lambda x, y, d: (jnp.sum(y) - 1.0)[None]
)


def _y_star(x):
    """``argmin_y ½‖y − x‖² s.t. 1ᵀy ≤ 1`` in closed form."""
    return x - jnp.maximum(jnp.sum(x) - 1.0, 0.0) / M


def _value(x):
    return _upper(x, _y_star(x), (T_C, RHO_C, S_C))


def test_constrained_problem_solution_multiplier_and_kkt_hypergradient():
    # x* = s on the direction 1, (t + ρ s)/(1 + ρ) across it (1ᵀs = 3 > 1: the constraint is
    # active at y*(x*), multiplier (1ᵀx* − 1)/3 = 2/3).
    par = lambda v: jnp.full(M, jnp.mean(v))
    x_star = par(S_C) + (T_C - par(T_C) + RHO_C * (S_C - par(S_C))) / (1 + RHO_C)
    solver = LVHBA(CONSTRAINED, alpha=0.2, beta=0.2, eta=0.2, gamma1=1.0, gamma2=1.0,
                   c_lower=0.3, p=0.8, projection=halfspace_projection(0.0, 1.0, 1.0),
                   max_steps=30_000, record_upper=False)  # fmt: skip
    sol = solver.run(jnp.zeros(M), jnp.zeros(M), (T_C, RHO_C, S_C), None)
    assert _rel(sol.x, x_star) < 1e-4  # 6.9e-5 measured
    assert _rel(sol.y, _y_star(x_star)) < 5e-4  # 2.8e-4 measured
    np.testing.assert_allclose(sol.state.lam, [2.0 / 3.0], rtol=1e-4)
    x = sol.x
    g = bilevel.hypergradient(CONSTRAINED, x, _y_star(x), (T_C, RHO_C, S_C), None)
    h, value = 1e-6, jax.jit(_value)
    fd = jnp.array([(value(x + h * e) - value(x - h * e)) / (2 * h) for e in jnp.eye(M)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    # LV-HBA's answer is (nearly) stationary for F(x) = f(x, y*(x))
    assert float(jnp.linalg.norm(g)) < 1e-3 * float(jnp.linalg.norm(jax.grad(_value)(x * 0.0)))


# -- (5) bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alpha", "beta", "eta", "gamma1", "gamma2", "c_lower", "r",
                                  "clip_multiplier"])  # fmt: skip
def test_nonpositive_settings_raise_naming_the_argument(name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        LVHBA(TOY.problem, **{name: -0.1})


def test_other_bad_settings_raise():
    with pytest.raises(ValueError, match="`p`"):
        LVHBA(TOY.problem, p=-1.0)
    with pytest.raises(ValueError, match="`multiplier_bounds`"):
        LVHBA(TOY.problem, multiplier_bounds="positive")
    with pytest.raises(TypeError, match="`projection`"):
        LVHBA(TOY.problem, projection=1.0)
    rp = bilevel.problems.multi_block_quadratic(num_blocks=2, dim_x=2, dim_y=3)
    with pytest.raises(TypeError, match="BilevelProblem"):
        LVHBA(rp.problem)
    with pytest.raises(ValueError, match="a_x"):
        halfspace_projection(jnp.ones(3), 1.0)(jnp.ones(2), jnp.ones(2))


def test_schedules_equal_constant_steps():
    rp = bilevel.problems.quadratic(dim_x=2, dim_y=3)
    args = (rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    constant = LVHBA(rp.problem, alpha=0.1, beta=0.2, eta=0.1, max_steps=20).run(*args)
    scheduled = LVHBA(rp.problem, alpha=lambda k: 0.1, beta=lambda k: 0.2,
                      eta=lambda k: 0.1 + 0.0 * k, max_steps=20).run(*args)  # fmt: skip
    np.testing.assert_allclose(scheduled.x, constant.x, rtol=1e-14)
    halved = LVHBA(rp.problem, alpha=lambda k: 0.1 * 0.5 ** (k % 2), max_steps=20).run(*args)
    assert float(jnp.abs(halved.x - constant.x).max()) > 1e-6  # the schedule is used


def test_diverging_steps_report_nonfinite():
    rp = bilevel.problems.quadratic(dim_x=2, dim_y=3)
    solver = LVHBA(rp.problem, alpha=5.0, eta=5.0, max_steps=500, throw=False)
    sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    assert sol.result == RESULTS.nonfinite
    assert int(sol.stats["num_steps"]) < 500
    with pytest.raises(Exception, match="alpha"):
        jax.block_until_ready(
            dataclasses.replace(solver, throw=True)
            .run(rp.x0, rp.y0, rp.upper_data, rp.lower_data).x
        )  # fmt: skip


def test_constrained_solution_is_not_implicitly_differentiable_but_unrolls():
    solver = LVHBA(SMALL, projection=halfspace_projection(A_X, A_Y, B_HALF), max_steps=5,
                   **SETTINGS)  # fmt: skip
    x0, y0 = jnp.array([1.0, 2.0]), jnp.array([0.5, 1.5, -1.0])
    (t, rho, s), lower = SMALL_DATA

    def loss(v, solver):
        return jnp.sum(solver.run(x0, y0, (v * t, rho, s), lower).x ** 2)

    with pytest.raises(ValueError, match="implicit_diff=False"):
        jax.grad(loss)(1.0, solver)
    unrolled = dataclasses.replace(solver, implicit_diff=False)
    h = 1e-6
    fd = (loss(1.0 + h, unrolled) - loss(1.0 - h, unrolled)) / (2 * h)
    np.testing.assert_allclose(jax.grad(loss)(1.0, unrolled), fd, rtol=1e-6)


# -- (6) linear SVM -------------------------------------------------------------------------------

SVM = linear_svm()


def test_svm_projection_is_the_euclidean_projection():
    from scipy.optimize import minimize

    Z, s = (np.asarray(a) for a in SVM.lower_data)
    n, d = Z.shape
    rng = np.random.default_rng(0)
    w0, b0, xi0 = rng.normal(size=d), 0.3, rng.normal(size=n)
    y0 = (jnp.asarray(w0), jnp.asarray(b0), jnp.asarray(xi0))
    x_out, (w, b, xi) = jax.jit(_svm_projection)(SVM.x0, y0, SVM.lower_data)
    assert x_out is not None and bool(jnp.all(x_out == SVM.x0))
    # oracle: the dual max_{μ ≥ 0} μᵀ(1 − G u₀) − ½‖Gᵀμ‖², u = u₀ + Gᵀμ, by L-BFGS-B
    G = np.concatenate([s[:, None] * Z, s[:, None], np.eye(n)], axis=1)
    u0 = np.concatenate([w0, [b0], xi0])

    def dual(m):
        r = G.T @ m
        return 0.5 * r @ r - m @ (1 - G @ u0), G @ r - (1 - G @ u0)

    res = minimize(dual, np.zeros(n), jac=True, method="L-BFGS-B", bounds=[(0, None)] * n,
                   options=dict(maxiter=20000, ftol=1e-15, gtol=1e-12))  # fmt: skip
    u = u0 + G.T @ res.x
    np.testing.assert_allclose(w, u[:d], atol=1e-5)
    np.testing.assert_allclose(b, u[d], atol=1e-5)
    np.testing.assert_allclose(xi, u[d + 1 :], atol=1e-5)
    assert float(jnp.max(1.0 - xi - s * (Z @ w + b))) <= 1e-12  # exactly feasible


def test_linear_svm_runs_and_the_validation_loss_decreases():
    from sklearn.svm import LinearSVC

    solver = LVHBA(SVM.problem, projection=SVM.extras["projection"], max_steps=80,
                   **SVM.extras["settings"])  # fmt: skip
    sol = solver.run(SVM.x0, SVM.y0, SVM.upper_data, SVM.lower_data)
    assert sol.result == RESULTS.successful
    start = float(SVM.problem.upper_fn(SVM.x0, SVM.y0, SVM.upper_data))
    values = np.asarray(sol.stats["upper_values"])
    assert values[-1] < 0.1 * start
    w, b, _ = sol.y
    # feasible for the lower level's constraints, and a sensible classifier on the test set
    assert float(jnp.max(SVM.problem.constraint_fn(sol.x, sol.y, SVM.lower_data))) <= 1e-10
    Z, s = SVM.lower_data
    X_test, labels = SVM.extras["X_test"], SVM.extras["labels_test"]
    accuracy = float(jnp.mean(jnp.where(X_test @ w + b >= 0, 1, -1) == labels))
    reference = LinearSVC().fit(np.asarray(Z), np.asarray(s)).score(X_test, labels)
    assert accuracy >= reference - 0.06
