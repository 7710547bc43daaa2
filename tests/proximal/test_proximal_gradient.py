"""ProximalGradient / ProjectedGradient against scikit-learn, scipy, jaxopt and closed forms.

Forward oracles: scikit-learn Lasso, ElasticNet, Ridge, LogisticRegression; scipy lsq_linear and
nnls; jaxopt 0.8.5's ProximalGradient iterate by iterate (the reference code). Gradient oracles:
central finite differences in float64, the unrolled mode, ridge's closed form, the lasso support
formula dw_S/dλ = −(X_SᵀX_S/n)⁻¹ sign(w_S).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.optimize import lsq_linear, nnls
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge

from jaxopt_papers.implicit import RESULTS
from jaxopt_papers.proximal import (
    ProjectedGradient,
    ProximalGradient,
    projection_box,
    projection_non_negative,
    prox_elastic_net,
    prox_lasso,
    prox_ridge,
)

RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def _standardise(X, y=None):
    X = (X - X.mean(0)) / X.std(0)
    return X if y is None else (X, (y - y.mean()) / y.std())


_Xd, _yd = _standardise(*load_diabetes(return_X_y=True))
XD, YD = jnp.asarray(_Xd), jnp.asarray(_yd)
N, P = XD.shape
L = float(np.linalg.eigvalsh(_Xd.T @ _Xd / N)[-1])
X_TR, Y_TR, X_VA, Y_VA = XD[:300], YD[:300], XD[300:], YD[300:]
L_TR = float(np.linalg.eigvalsh(np.asarray(X_TR.T @ X_TR) / 300)[-1])


def lsq(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def tight(prox, **kw):
    kw = {"stepsize": 1 / L, "tol": 1e-12, "max_steps": 5000, **kw}
    return ProximalGradient(lsq, prox, **kw)


# ------------------------------------------------------------------ forward vs scikit-learn


@pytest.mark.parametrize("acceleration", [True, False])
@pytest.mark.parametrize("alpha", [0.01, 0.1])
def test_lasso_matches_sklearn(alpha, acceleration):
    sk = Lasso(alpha=alpha, fit_intercept=False, tol=1e-15, max_iter=100_000).fit(_Xd, _yd)
    sol = tight(prox_lasso, acceleration=acceleration).run(jnp.zeros(P), alpha, XD, YD)
    assert sol.result == RESULTS.successful
    np.testing.assert_allclose(sol.params, sk.coef_, atol=1e-8)


def test_elastic_net_matches_sklearn():
    alpha, l1_ratio = 0.05, 0.6
    sk = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-15,
                    max_iter=100_000).fit(_Xd, _yd)  # fmt: skip
    # sklearn: α·ρ‖w‖₁ + ½α(1 − ρ)‖w‖²  =  λ(‖w‖₁ + γ/2‖w‖²) with λ = αρ, γ = (1 − ρ)/ρ.
    hp = (alpha * l1_ratio, (1 - l1_ratio) / l1_ratio)
    sol = tight(prox_elastic_net).run(jnp.zeros(P), hp, XD, YD)
    np.testing.assert_allclose(sol.params, sk.coef_, atol=1e-8)


def test_ridge_matches_sklearn_and_closed_form_jacobian():
    lam = 0.3
    # sklearn Ridge: ‖y − Xw‖² + α‖w‖²  =  2n(½ mean + (λ/2)‖w‖²) with α = nλ.
    sk = Ridge(alpha=N * lam, fit_intercept=False, solver="cholesky").fit(_Xd, _yd)
    solver = tight(prox_ridge)
    sol = solver.run(jnp.zeros(P), lam, XD, YD)
    np.testing.assert_allclose(sol.params, sk.coef_, atol=1e-10)
    H = XD.T @ XD / N + lam * jnp.eye(P)
    expected = -jnp.linalg.solve(H, sol.params)
    for jac in (jax.jacrev, jax.jacfwd):
        got = jac(lambda lam: solver.run(jnp.zeros(P), lam, XD, YD).params)(lam)
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_l2_logistic_regression_matches_sklearn():
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xb = jnp.asarray(_standardise(Xb))
    sign = jnp.asarray(2.0 * yb - 1.0)
    n = Xb.shape[0]
    C = 0.05
    loss = lambda w, X, s: jnp.mean(jnp.logaddexp(0.0, -s * (X @ w)))
    sk = LogisticRegression(C=C, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(
        np.asarray(Xb), yb
    )
    # sklearn: C Σ log-loss + ½‖w‖²  ∝  mean log-loss + (λ/2)‖w‖² with λ = 1/(C n).
    L_log = float(np.linalg.eigvalsh(np.asarray(Xb.T @ Xb) / n)[-1]) / 4
    pg = ProximalGradient(loss, prox_ridge, stepsize=1 / L_log, tol=1e-11, max_steps=20_000)
    sol = pg.run(jnp.zeros(Xb.shape[1]), 1 / (C * n), Xb, sign)
    np.testing.assert_allclose(sol.params, sk.coef_[0], atol=1e-6 * np.abs(sk.coef_).max())


def test_lasso_with_unpenalised_intercept_as_a_pytree():
    alpha = 0.05
    y = _yd + 3.0  # a non-zero mean for the intercept to take
    sk = Lasso(alpha=alpha, tol=1e-15, max_iter=100_000).fit(_Xd, y)
    fun = lambda p, X, y: 0.5 * jnp.mean((X @ p["w"] + p["b"] - y) ** 2)
    pg = ProximalGradient(fun, prox_lasso, stepsize=1 / (L + 1), tol=1e-12, max_steps=5000)
    init = {"w": jnp.zeros(P), "b": jnp.zeros(())}
    sol = pg.run(init, {"w": alpha, "b": 0.0}, XD, jnp.asarray(y))
    np.testing.assert_allclose(sol.params["w"], sk.coef_, atol=1e-8)
    np.testing.assert_allclose(sol.params["b"], sk.intercept_, atol=1e-8)


def test_backtracking_reaches_tight_tolerances_where_jaxopts_line_search_stalls():
    """Default line search: sklearn to 1e-10 in a few hundred steps; jaxopt's test stalls."""
    sk = Lasso(alpha=0.02, fit_intercept=False, tol=1e-15, max_iter=100_000).fit(_Xd, _yd)
    for acceleration in (True, False):
        pg = ProximalGradient(lsq, prox_lasso, tol=1e-12, max_steps=1000, acceleration=acceleration)
        sol = pg.run(jnp.zeros(P), 0.02, XD, YD)
        np.testing.assert_allclose(sol.params, sk.coef_, atol=1e-10)
        stalled = dataclasses.replace(pg, stable_linesearch=False, throw=False, max_steps=5000)
        sol_j = stalled.run(jnp.zeros(P), 0.02, XD, YD)
        assert sol_j.result == RESULTS.max_steps_reached
        theirs = jaxopt.ProximalGradient(fun=lsq, prox=jaxopt.prox.prox_lasso, tol=1e-12,
                                         maxiter=5000, acceleration=acceleration)  # fmt: skip
        assert int(theirs.run(jnp.zeros(P), 0.02, XD, YD).state.iter_num) == 5000


# ------------------------------------------------------- faithful to the reference code


@pytest.mark.parametrize("acceleration", [True, False])
@pytest.mark.parametrize("stepsize", [None, 0.05])
def test_iterates_replay_jaxopt(acceleration, stepsize):
    """Iterate k of ours equals iterate k of jaxopt's ProximalGradient (backtracking included).

    With ``stable_linesearch=False``; the default departs from jaxopt only once jaxopt's
    sufficient-decrease test is decided by round-off (see the test above).
    """
    fun = lambda w, X, y: 0.5 * jnp.mean((X @ w - y) ** 2) + 0.01 * jnp.sum(w**4)
    theirs = jaxopt.ProximalGradient(fun=fun, prox=jaxopt.prox.prox_lasso,
                                     stepsize=0.0 if stepsize is None else stepsize,
                                     acceleration=acceleration, tol=0.0, maxiter=1)  # fmt: skip
    ours = ProximalGradient(fun, prox_lasso, stepsize=stepsize, acceleration=acceleration,
                            stable_linesearch=False)  # fmt: skip
    w_t, s_t = jnp.zeros(P), theirs.init_state(jnp.zeros(P), 0.05, XD, YD)
    w_o, s_o = jnp.zeros(P), ours.init(jnp.zeros(P), 0.05, XD, YD)
    step = jax.jit(lambda w, s: ours.step(w, s, 0.05, XD, YD))
    for _ in range(40):
        w_t, s_t = theirs.update(w_t, s_t, 0.05, XD, YD)
        w_o, s_o = step(w_o, s_o)
        np.testing.assert_allclose(w_o, w_t, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(s_o.stepsize, s_t.stepsize, rtol=1e-12)
        np.testing.assert_allclose(s_o.error, s_t.error, rtol=1e-10)


# ------------------------------------------------------------------------ hypergradients


def val_loss_of(solver):
    return lambda alpha: lsq(solver.run(jnp.zeros(P), alpha, X_TR, Y_TR).params, X_VA, Y_VA)


def test_lasso_hypergradient_vs_finite_differences_unrolled_and_support_formula():
    alpha = 0.03
    solver = ProximalGradient(lsq, prox_lasso, stepsize=1 / L_TR, tol=1e-12, max_steps=5000)
    f = val_loss_of(solver)
    g = jax.grad(f)(alpha)
    h = 1e-6
    fd = (f(alpha + h) - f(alpha - h)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    unrolled = dataclasses.replace(solver, implicit_diff=False)
    np.testing.assert_allclose(jax.grad(val_loss_of(unrolled))(alpha), g, rtol=1e-8)
    w = solver.run(jnp.zeros(P), alpha, X_TR, Y_TR).params
    S = np.flatnonzero(np.asarray(w) != 0)
    assert 0 < S.size < P  # a genuinely sparse solution
    dw = np.zeros(P)
    XS = np.asarray(X_TR)[:, S]
    dw[S] = -np.linalg.solve(XS.T @ XS / 300, np.sign(np.asarray(w)[S]))
    jac = jax.jacfwd(lambda a: solver.run(jnp.zeros(P), a, X_TR, Y_TR).params)(alpha)
    np.testing.assert_allclose(jac, dw, rtol=1e-8, atol=1e-10)


def test_check_grads_elastic_net_in_hyperparameters_and_data():
    solver = ProximalGradient(lsq, prox_elastic_net, stepsize=1 / L_TR, tol=1e-13, max_steps=8000)
    f = lambda lam, gam, y: solver.run(jnp.zeros(P), (lam, gam), X_TR, y).params
    check_grads(f, (0.03, 0.5, Y_TR), order=1, modes=("fwd", "rev"), eps=1e-6)


def test_vmap_over_regularisation_and_jit_with_the_solver_as_argument():
    alphas = jnp.array([0.01, 0.03, 0.1, 0.3])
    solver = ProximalGradient(lsq, prox_lasso, stepsize=1 / L_TR, tol=1e-12, max_steps=20_000,
                              throw=False)  # fmt: skip

    @jax.jit
    def hypergrads(solver, alphas):
        f = lambda a: lsq(solver.run(jnp.zeros(P), a, X_TR, Y_TR).params, X_VA, Y_VA)
        ok = lambda a: solver.run(jnp.zeros(P), a, X_TR, Y_TR).result == RESULTS.successful
        return jax.vmap(jax.value_and_grad(f))(alphas), jax.vmap(ok)(alphas)

    (vals, grads), ok = hypergrads(solver, alphas)
    assert bool(jnp.all(ok))
    for a, v, g in zip(alphas, vals, grads, strict=True):
        one = dataclasses.replace(solver, throw=True)
        v1, g1 = jax.value_and_grad(val_loss_of(one))(a)
        np.testing.assert_allclose(v, v1, rtol=1e-10)
        np.testing.assert_allclose(g, g1, rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------- projected gradient


def test_projected_gradient_box_least_squares_vs_scipy_and_bound_gradient():
    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(40, 8)), rng.normal(size=40)
    fun = lambda x, A, b: 0.5 * jnp.sum((A @ x - b) ** 2)
    step = 1 / np.linalg.eigvalsh(A.T @ A)[-1]
    pg = ProjectedGradient(fun, projection_box, stepsize=step, tol=1e-12, max_steps=20_000)
    lo, hi = -0.1, 0.15
    sol = pg.run(jnp.zeros(8), (lo, hi), jnp.asarray(A), jnp.asarray(b))
    ref = lsq_linear(A, b, bounds=(lo, hi), tol=1e-14, method="bvls").x
    np.testing.assert_allclose(sol.params, ref, atol=1e-9)
    f = lambda hi: jnp.sum(pg.run(jnp.zeros(8), (lo, hi), jnp.asarray(A), jnp.asarray(b)).params)
    h = 1e-6
    np.testing.assert_allclose(jax.grad(f)(hi), (f(hi + h) - f(hi - h)) / (2 * h), rtol=1e-6)


def test_projected_gradient_nnls_vs_scipy():
    rng = np.random.default_rng(1)
    A, b = rng.normal(size=(30, 10)), rng.normal(size=30)
    fun = lambda x, A, b: 0.5 * jnp.sum((A @ x - b) ** 2)
    pg = ProjectedGradient(fun, projection_non_negative, stepsize=1 / np.linalg.norm(A, 2) ** 2,
                           tol=1e-12, max_steps=20_000)  # fmt: skip
    sol = pg.run(jnp.zeros(10), None, jnp.asarray(A), jnp.asarray(b))
    np.testing.assert_allclose(sol.params, nnls(A, b)[0], atol=1e-9)


# -------------------------------------------------------------------------- error paths


def test_non_convergence_raises_with_advice_or_returns_the_code():
    with pytest.raises(RUNTIME_ERRORS, match="Increase `max_steps`"):
        tight(prox_lasso, max_steps=5).run(jnp.zeros(P), 0.1, XD, YD).params.block_until_ready()
    sol = tight(prox_lasso, max_steps=5, throw=False).run(jnp.zeros(P), 0.1, XD, YD)
    assert sol.result == RESULTS.max_steps_reached
    assert int(sol.stats["num_steps"]) == 5 and float(sol.stats["error"]) > 1e-12


def test_non_finite_data_is_reported():
    y_bad = YD.at[3].set(jnp.nan)
    sol = tight(prox_lasso, throw=False).run(jnp.zeros(P), 0.1, XD, y_bad)
    assert sol.result == RESULTS.nonfinite
    with pytest.raises(RUNTIME_ERRORS, match="non-finite values"):
        tight(prox_lasso).run(jnp.zeros(P), 0.1, XD, y_bad).params.block_until_ready()


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="`stepsize` must be > 0, a callable, or None"):
        ProximalGradient(lsq, prox_lasso, stepsize=0.0)
    with pytest.raises(ValueError, match="`tol`"):
        ProximalGradient(lsq, prox_lasso, tol=-1.0)
    with pytest.raises(ValueError, match="`max_steps`"):
        ProximalGradient(lsq, prox_lasso, max_steps=0)
    with pytest.raises(ValueError, match="`decrease_factor`"):
        ProximalGradient(lsq, prox_lasso, decrease_factor=1.5)
    with pytest.raises(TypeError, match="`fun` must be callable"):
        ProximalGradient("lsq")
    with pytest.raises(TypeError, match="`projection` must be callable"):
        ProjectedGradient(lsq, None)
    with pytest.raises(ValueError, match="`init_params` must contain at least one array"):
        ProximalGradient(lsq).run({}, None, XD, YD)
