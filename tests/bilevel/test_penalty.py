"""PenaltyBilevel and penalty_gradient (Kwon et al., ICLR 2024) against closed forms.

Oracles: the quadratic problem's closed-form minimisers ``y_σ* = (H + σI)⁻¹(Bx + c + σt)`` and
``z* = H⁻¹(Bx + c)``, the exact implicit hypergradient at ``y*(x)``, a NumPy re-implementation
of the iteration, and the lower level solved to high accuracy by plain gradient descent.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import RESULTS, bilevel
from jaxopt_papers.bilevel.penalty import PenaltyBilevel, PenaltyBilevelState, penalty_gradient

jax.config.update("jax_enable_x64", True)

RP = bilevel.problems.quadratic()  # dim_x = 5, dim_y = 10, eigenvalues of H in [1, 10]
(T_UP, RHO), (H, B, C) = (
    [np.asarray(a) for a in RP.upper_data],
    [np.asarray(a) for a in RP.lower_data],
)


def _rel(x, ref):
    return float(jnp.linalg.norm(x - ref) / jnp.linalg.norm(ref))


def _y_sigma(x, sigma):
    """``argmin_y σ f(x, y) + g(x, y)`` of the quadratic problem, in closed form."""
    return np.linalg.solve(H + sigma * np.eye(len(C)), B @ x + C + sigma * T_UP)


def _z_star(x):
    return np.linalg.solve(H, B @ x + C)


def _grad_psi(x, sigma):
    """``∇ψ_σ(x)`` at the exact inner minimisers (the paper's formula, NumPy)."""
    return RHO * x - B.T @ (_y_sigma(x, sigma) - _z_star(x)) / sigma


X_TEST = np.asarray(RP.solution.x) + np.random.default_rng(1).normal(size=5)


# -- (a) ∇ψ_σ is O(σ)-close to ∇F ------------------------------------------------------------------


def test_penalty_gradient_is_order_sigma_close_to_the_hypergradient():
    x = jnp.asarray(X_TEST)
    exact = bilevel.hypergradient(RP.problem, x, jnp.asarray(_z_star(X_TEST)), *RP[3:5])
    sigmas = 0.02 / 2.0 ** np.arange(6)
    errors = []
    for s in sigmas:
        G = penalty_gradient(
            RP.problem, x, jnp.asarray(_y_sigma(X_TEST, s)), jnp.asarray(_z_star(X_TEST)),
            RP.upper_data, RP.lower_data, s,
        )  # fmt: skip
        np.testing.assert_allclose(G, _grad_psi(X_TEST, s), rtol=1e-9, atol=1e-12)
        errors.append(float(jnp.linalg.norm(G - exact)))
    ratios = np.asarray(errors[:-1]) / np.asarray(errors[1:])
    assert np.all((ratios >= 1.6) & (ratios <= 2.4)), ratios
    assert errors[-1] < 1e-2 * float(jnp.linalg.norm(exact))


# -- (b) the solver's G tends to ∇ψ_σ as the inner loops converge ----------------------------------


def test_solver_gradient_estimate_tends_to_grad_psi_as_inner_steps_grow():
    sigma = 1e-2
    x0 = jnp.asarray(X_TEST)
    errors = []
    for steps in (5, 20, 80, 320):
        solver = PenaltyBilevel(
            RP.problem, sigma=sigma, sigma_decay=0.0, alpha=1.0, beta=0.1, inner_steps=steps
        )
        params = bilevel.BilevelParams(x0, RP.y0)
        state = solver.init(params, RP.upper_data, RP.lower_data)
        new, state = solver.step(params, state, RP.upper_data, RP.lower_data)
        G = x0 - new.x  # α = 1, no projection
        np.testing.assert_allclose(float(state.error), float(jnp.linalg.norm(G)), rtol=1e-12)
        errors.append(float(np.linalg.norm(G - _grad_psi(X_TEST, sigma))))
    assert np.all(np.diff(errors) < 0), errors
    assert errors[-1] < 1e-9 * np.linalg.norm(_grad_psi(X_TEST, sigma))


# -- (c) steps against a NumPy re-implementation ---------------------------------------------------


def _numpy_steps(num, x, y, *, sig, alp, power, bet, T, Tz, lo, hi):
    z = y.copy()
    for k in range(num):
        s, beta = sig(k), bet(k)
        for _ in range(T):
            y = np.clip(y - beta * (s * (y - T_UP) + H @ y - (B @ x + C)), lo, hi)
        for _ in range(Tz):
            z = np.clip(z - beta * (H @ z - (B @ x + C)), lo, hi)
        G = RHO * x + (-B.T @ y + B.T @ z) / s
        a = alp(k) * (s / sig(0)) ** power
        x = np.clip(x - a * G, lo, hi)
    return x, y, z


POWER_LAW = (
    dict(sigma=0.5, sigma_decay=0.7, sigma_min=0.2, alpha=0.3, beta=0.08),
    dict(sig=lambda k: max(0.2, 0.5 * (k + 1.0) ** -0.7), alp=lambda k: 0.3, bet=lambda k: 0.08),
)
SCHEDULES = (
    dict(sigma_schedule=lambda k: 0.5 * 0.8**k, alpha=lambda k: 0.3 / (k + 1.0),
         beta=lambda k: 0.08 + 0.01 * k),
    dict(sig=lambda k: 0.5 * 0.8**k, alp=lambda k: 0.3 / (k + 1.0), bet=lambda k: 0.08 + 0.01 * k),
)  # fmt: skip


@pytest.mark.parametrize("config", [POWER_LAW, SCHEDULES], ids=["power-law", "schedules"])
def test_steps_match_a_numpy_reimplementation_with_projections(config):
    options, reference = config
    lo, hi = -0.3, 0.4
    box = lambda v: jnp.clip(v, lo, hi)
    solver = PenaltyBilevel(RP.problem, projection_x=box, projection_y=box, alpha_power=0.5,
                            inner_steps=3, inner_steps_z=4, **options)  # fmt: skip
    params = bilevel.BilevelParams(jnp.asarray(X_TEST).clip(lo, hi), RP.y0 + 0.1)
    state = solver.init(params, RP.upper_data, RP.lower_data)
    step = jax.jit(lambda p, s: solver.step(p, s, RP.upper_data, RP.lower_data))
    for _ in range(4):  # power law: σ = 0.5, 0.31, 0.23, then the floor 0.2
        params, state = step(params, state)
    x, y, z = _numpy_steps(
        4, np.asarray(X_TEST).clip(lo, hi), np.full(10, 0.1), power=0.5, T=3, Tz=4, lo=lo,
        hi=hi, **reference,
    )  # fmt: skip
    np.testing.assert_allclose(params.x, x, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state.y_sigma, y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(params.y, z, rtol=1e-12, atol=1e-14)
    assert isinstance(state, PenaltyBilevelState)
    np.testing.assert_allclose(float(state.sigma), reference["sig"](3), rtol=1e-14)
    assert bool(state.settled) == (options.get("sigma_schedule") is None)


def test_sigma_below_the_floor_is_kept_and_tol_waits_for_the_floor():
    fixed = PenaltyBilevel(RP.problem, sigma=1e-6, sigma_decay=0.0, alpha=1.0, tol=1e-3)
    sol = fixed.run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)
    assert float(sol.state.sigma) == 1e-6 and sol.result == RESULTS.successful
    assert float(sol.stats["error"]) <= 1e-3 and int(sol.stats["num_steps"]) < 60
    # σ_k = 1/(k+1) reaches the floor 0.01 at the 100th step: ‖G‖ <= 1e-3 does not stop it earlier
    slow = PenaltyBilevel(RP.problem, sigma_decay=1.0, sigma_min=0.01, alpha=1.0, tol=1e-3)
    sol = slow.run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)
    assert sol.result == RESULTS.successful and int(sol.stats["num_steps"]) >= 99
    assert float(sol.state.sigma) == 0.01
    short = PenaltyBilevel(RP.problem, sigma_decay=1.0, sigma_min=0.01, alpha=1.0, tol=1e-3,
                           max_steps=80, throw=False)  # fmt: skip
    sol = short.run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)
    assert sol.result == RESULTS.max_steps_reached


# -- (d) convergence to the closed-form solution ---------------------------------------------------


def test_decreasing_sigma_reaches_the_closed_form_to_1e_4():
    solver = PenaltyBilevel(
        RP.problem, sigma=1.0, sigma_decay=2.0, sigma_min=1e-5, alpha=1.0, beta=0.1,
        inner_steps=10, max_steps=1000,
    )  # fmt: skip
    state = solver.init(bilevel.BilevelParams(RP.x0, RP.y0), RP.upper_data, RP.lower_data)

    def body(carry, _):
        params, st = solver.step(*carry, RP.upper_data, RP.lower_data)
        return (params, st), jnp.linalg.norm(params.x - RP.solution.x)

    (_, state), dist = jax.jit(lambda p, s: jax.lax.scan(body, (p, s), None, length=1000))(
        bilevel.BilevelParams(RP.x0, RP.y0), state
    )
    rel = np.asarray(dist) / float(jnp.linalg.norm(RP.solution.x))
    first = int(np.argmax(rel <= 1e-4)) + 1
    # Measured: 1e-4 relative first after 326 outer iterations (10 + 10 inner steps each);
    # the σ floor leaves a bias ≈ 0.36·σ_min relative.
    assert rel[-1] <= 1e-4 and first <= 400, (first, rel[-1])
    assert np.all(rel[first - 1 :] <= 1e-4)
    # run with a tol stops only once σ has settled, and agrees with the manual loop
    sol = PenaltyBilevel(
        RP.problem, sigma=1.0, sigma_decay=2.0, sigma_min=1e-5, alpha=1.0, tol=1e-8,
        max_steps=1000,
    ).run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)  # fmt: skip
    assert sol.result == RESULTS.successful
    assert float(sol.state.sigma) == 1e-5 and _rel(sol.x, RP.solution.x) < 1e-4


def test_multi_block_quadratic_reaches_the_closed_form():
    rp = bilevel.problems.multi_block_quadratic(num_blocks=4, dim_x=3, dim_y=4)
    sol = PenaltyBilevel(
        rp.problem, sigma_decay=2.0, sigma_min=1e-6, alpha=1.0, beta=0.5, max_steps=600
    ).run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    assert _rel(sol.x, rp.solution.x) < 1e-4
    assert int(sol.stats["num_grads"]) == 600 * 4 * (3 * 10 + 3)


def test_multi_block_mini_batches_of_every_row_equal_the_full_batch():
    rp = bilevel.problems.multi_task_logistic(num_blocks=2)  # 300 / 135 rows per block
    options = dict(alpha=1.0, alpha_power=2 / 3, beta=0.5, inner_steps=3, max_steps=10)
    perm = PenaltyBilevel(rp.problem, batch_size=300, upper_batch_size=135, **options)
    full = PenaltyBilevel(rp.problem, **options)
    a = perm.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data, key=jax.random.key(0))
    b = full.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    assert float(jnp.abs(b.x).max()) > 1e-3  # x moved
    np.testing.assert_allclose(a.x, b.x, rtol=1e-9, atol=1e-15)
    small = PenaltyBilevel(rp.problem, batch_size=32, upper_batch_size=32, **options)
    c = small.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data, key=jax.random.key(0))
    assert float(jnp.abs(c.x - b.x).max()) > 1e-6  # real mini-batches differ


# -- (e) stochastic mode ---------------------------------------------------------------------------


def _ridge_problem(n=48, d=4):
    """Log-ridge selection on least squares: every data leaf has one row per sample."""
    rng = np.random.default_rng(0)
    A, Av = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    w = rng.normal(size=d)
    b, bv = A @ w + 0.5 * rng.normal(size=n), Av @ w + 0.5 * rng.normal(size=n)
    upper = lambda x, y, data: 0.5 * jnp.mean((data[0] @ y - data[1]) ** 2)
    lower = lambda x, y, data: (0.5 * jnp.mean((data[0] @ y - data[1]) ** 2)
                                + 0.5 * jnp.exp(x[0]) * jnp.sum(y**2))  # fmt: skip
    a = jnp.asarray
    return bilevel.BilevelProblem(upper, lower), (a(Av), a(bv)), (a(A), a(b))


def test_stochastic_mode_is_reproducible_and_a_full_batch_is_deterministic():
    problem, upper, lower = _ridge_problem()
    x0, y0 = jnp.zeros(1), jnp.zeros(4)
    solver = PenaltyBilevel(problem, sigma_min=1e-2, alpha=0.5, beta=0.2, batch_size=8,
                            upper_batch_size=8, max_steps=60)  # fmt: skip
    with pytest.raises(ValueError, match="key"):
        solver.run(x0, y0, upper, lower)
    one = solver.run(x0, y0, upper, lower, key=jax.random.key(0))
    again = solver.run(x0, y0, upper, lower, key=jax.random.key(0))
    other = solver.run(x0, y0, upper, lower, key=jax.random.key(1))
    np.testing.assert_array_equal(one.x, again.x)
    np.testing.assert_array_equal(one.y, again.y)
    assert float(jnp.abs(one.x - other.x).max()) > 1e-6
    # Batches of all 48 rows are permutations of the data: the mean losses are the full ones.
    full = PenaltyBilevel(problem, sigma_min=1e-2, alpha=0.5, alpha_power=2 / 3, beta=0.2,
                          max_steps=60)  # fmt: skip
    perm = PenaltyBilevel(problem, sigma_min=1e-2, alpha=0.5, beta=0.2, batch_size=48,
                          upper_batch_size=48, max_steps=60)  # fmt: skip
    np.testing.assert_allclose(
        perm.run(x0, y0, upper, lower, key=jax.random.key(3)).x,
        full.run(x0, y0, upper, lower).x, rtol=1e-10,
    )  # fmt: skip


# -- (f) no second-order products, honest counts ---------------------------------------------------


def test_counts_gradients_and_no_hessian_vector_products():
    sol = PenaltyBilevel(RP.problem, inner_steps=7, inner_steps_z=5, max_steps=30).run(
        RP.x0, RP.y0, RP.upper_data, RP.lower_data
    )
    assert int(sol.stats["num_hvps"]) == 0
    assert int(sol.stats["num_steps"]) == 30
    assert int(sol.stats["num_grads"]) == 30 * (2 * 7 + 5 + 3)


def _first_order_only(fn, grads):
    """``fn`` whose gradient comes from a NumPy callback: any second derivative raises."""

    @jax.custom_vjp
    def wrapped(x, y, data):
        return fn(x, y, data)

    def fwd(x, y, data):
        return fn(x, y, data), (x, y, data)

    def bwd(res, ct):
        x, y, data = res
        shapes = (jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(y.shape, y.dtype))
        gx, gy = jax.pure_callback(grads, shapes, x, y, data)
        return ct * gx, ct * gy, jax.tree.map(jnp.zeros_like, data)

    wrapped.defvjp(fwd, bwd)
    return wrapped


def _upper_grads(x, y, data):
    t, rho = (np.asarray(a) for a in data)
    return rho * np.asarray(x), np.asarray(y) - t


def _lower_grads(x, y, data):
    Hd, Bd, cd = (np.asarray(a) for a in data)
    x, y = np.asarray(x), np.asarray(y)
    return -Bd.T @ y, Hd @ y - (Bd @ x + cd)


def test_runs_on_first_order_oracles_only():
    """Gradients from a non-differentiable callback: a Hessian(-vector) product would raise."""
    problem = bilevel.BilevelProblem(
        _first_order_only(RP.problem.upper_fn, _upper_grads),
        _first_order_only(RP.problem.lower_fn, _lower_grads),
    )
    with pytest.raises(Exception, match=r"(?i)jvp|differentiat"):  # the oracle is first order
        jax.hessian(problem.lower_fn, argnums=1)(RP.x0, RP.y0, RP.lower_data)
    params = bilevel.BilevelParams(jnp.asarray(X_TEST), RP.y0)
    out = []
    for prob in (problem, RP.problem):
        solver = PenaltyBilevel(prob, sigma_decay=0.5, inner_steps=3)
        state = solver.init(params, RP.upper_data, RP.lower_data)
        step = jax.jit(lambda p, s, solver=solver: solver.step(p, s, RP.upper_data, RP.lower_data))
        p, st = step(params, state)
        p, st = step(p, st)
        out.append((p.x, p.y, st.y_sigma))
    for a, b in zip(*out, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# -- (g) bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [({"sigma": 0.0}, "sigma"), ({"sigma": -1.0}, "sigma"), ({"sigma_min": 0.0}, "sigma_min"),
     ({"alpha": -0.1}, "alpha"), ({"beta": 0.0}, "beta"), ({"sigma_decay": -1.0}, "sigma_decay"),
     ({"inner_steps": 0}, "inner_steps"), ({"batch_size": 0}, "batch_size")],
)  # fmt: skip
def test_bad_hyperparameters_name_the_argument(options, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        PenaltyBilevel(RP.problem, **options)


def test_constraint_without_projection_is_rejected():
    problem = bilevel.BilevelProblem(
        RP.problem.upper_fn, RP.problem.lower_fn, constraint_fn=lambda x, y, d: y - 1.0
    )
    with pytest.raises(ValueError, match="projection_y"):
        PenaltyBilevel(problem)


def test_divergence_is_reported_as_nonfinite():
    solver = PenaltyBilevel(RP.problem, beta=1.0, max_steps=50, throw=False)  # β > 2/L
    sol = solver.run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)
    assert sol.result == RESULTS.nonfinite
    assert int(sol.stats["num_steps"]) < 50
    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError), match="beta"):
        jax.block_until_ready(
            PenaltyBilevel(RP.problem, beta=1.0, max_steps=50)
            .run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)
            .x
        )


# -- (h) data hyper-cleaning -----------------------------------------------------------------------


def test_hyper_cleaning_lowers_the_validation_loss():
    rp = bilevel.problems.hyper_cleaning(0.5, num_train=300, num_val=150)
    problem = rp.problem
    grad = jax.grad(problem.lower_fn, argnums=1)

    @jax.jit
    def validation_loss(x):  # the lower level solved to a small gradient by plain GD
        W = jax.lax.fori_loop(0, 2000, lambda _, W: W - 0.5 * grad(x, W, rp.lower_data), rp.y0)
        return problem.upper_fn(x, W, rp.upper_data), jnp.linalg.norm(grad(x, W, rp.lower_data))

    solver = PenaltyBilevel(problem, sigma_min=1e-2, alpha=10.0, beta=0.5, max_steps=300)
    sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    before, res0 = validation_loss(rp.x0)
    after, res1 = validation_loss(sol.x)
    assert float(res0) < 1e-2 and float(res1) < 1e-2
    assert float(after) < 0.5 * float(before), (float(before), float(after))
    weights = jax.nn.sigmoid(sol.x)
    corrupted = rp.extras["corrupted"]
    assert float(weights[corrupted].mean()) < float(weights[~corrupted].mean()) - 0.2
