"""BOREP (Hao, Gong, Liu, ICLR 2024) against closed forms and a NumPy re-implementation.

Oracles: the quadratic problem's closed forms (``y*(x) = H⁻¹(Bx + c)``, ``(∇²ᵧᵧg)⁻¹∇ᵧf =
H⁻¹(y − t)``, the recursion of the ``z`` update and of the Neumann series, the solution
``x*``), the exact implicit hypergradient at a lower-level solution found by Newton's method, a
NumPy re-implementation of the iteration, and the lower level solved by plain gradient descent.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import RESULTS, bilevel
from jaxopt_papers.bilevel.borep import BOREP

jax.config.update("jax_enable_x64", True)

RP = bilevel.problems.quadratic()  # dim_x = 5, dim_y = 10, eigenvalues of H in [1, 10]
(T_UP, RHO), (H, B, C) = (
    [np.asarray(a) for a in RP.upper_data],
    [np.asarray(a) for a in RP.lower_data],
)
MU, L = 1.0, 10.0
X_RANDOM = np.random.default_rng(1).normal(size=5)


def _rel(x, ref):
    return float(np.linalg.norm(np.asarray(x) - ref) / np.linalg.norm(ref))


def _y_star(x):
    return np.linalg.solve(H, B @ x + C)


def _one_run(solver, x0, y0, steps=None):
    """``run`` with ``max_steps=steps``."""
    if steps is not None:
        solver = dataclasses.replace(solver, max_steps=steps)
    return solver.run(jnp.asarray(x0), jnp.asarray(y0), RP.upper_data, RP.lower_data)


# -- (a) the code's z update solves the linear system -------------------------------------------


def test_code_z_update_converges_to_the_inverse_hessian_vector_product():
    # x frozen (outer_lr = 0) and y at y*(x): ∇ᵧf = y* − t is fixed, so after T steps
    # z_T = (I − (I − νH)^T) H⁻¹∇ᵧf exactly (from z_0 = 0).
    y = _y_star(X_RANDOM)
    fy = y - T_UP
    z_star = np.linalg.solve(H, fy)
    nu = 0.05
    solver = BOREP(RP.problem, outer_lr=0.0, z_lr=nu)
    for steps in (7, 600):
        sol = _one_run(solver, X_RANDOM, y, steps)
        np.testing.assert_allclose(sol.x, X_RANDOM, rtol=0, atol=0)
        closed = z_star - np.linalg.matrix_power(np.eye(10) - nu * H, steps) @ z_star
        np.testing.assert_allclose(sol.state.z, closed, rtol=1e-9, atol=1e-12)
    assert _rel(sol.state.z, z_star) < 1e-10
    assert _rel(_one_run(solver, X_RANDOM, y, 7).state.z, z_star) > 1e-2  # not there yet


# -- (b) the paper's Neumann series ---------------------------------------------------------------


@pytest.mark.parametrize("terms", [1, 4, 25])
def test_neumann_estimate_error_is_at_most_one_minus_mu_over_l_to_the_q(terms):
    y = _y_star(X_RANDOM)
    fy = y - T_UP
    z_star = np.linalg.solve(H, fy)
    solver = BOREP(RP.problem, outer_lr=0.0, hypergrad="neumann", neumann_terms=terms,
                   neumann_scale=1 / L)  # fmt: skip
    sol = _one_run(solver, X_RANDOM, y, 1)
    M = np.eye(10) - H / L
    np.testing.assert_allclose(
        sol.state.z, (np.eye(10) - np.linalg.matrix_power(M, terms)) @ z_star, rtol=1e-10
    )
    error = _rel(sol.state.z, z_star)
    assert error <= (1 - MU / L) ** terms
    assert error >= 0.1 * (1 - MU / L) ** terms  # the bound is nearly tight here
    assert int(sol.stats["num_hvps"]) == terms  # Q − 1 HVPs and one JVP


# -- (c) normalised momentum -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "outer_lr", [0.05, optax.exponential_decay(0.3, transition_steps=5, decay_rate=0.5)]
)
def test_normalised_step_moves_x_by_exactly_eta(outer_lr):
    solver = BOREP(RP.problem, outer_lr=outer_lr, update_interval=3, inner_steps=4)
    params = bilevel.BilevelParams(RP.x0, RP.y0)
    state = solver.init(params, RP.upper_data, RP.lower_data)
    step = jax.jit(lambda p, s: solver.step(p, s, RP.upper_data, RP.lower_data))
    for t in range(20):
        new, state = step(params, state)
        eta = outer_lr(t) if callable(outer_lr) else outer_lr
        moved = float(jnp.linalg.norm(new.x - params.x))
        norm = float(state.error)  # ‖m_t‖; the step is η‖m‖/(‖m‖ + 1e-10) = η up to 1e-10/‖m‖
        np.testing.assert_allclose(moved, eta * norm / (norm + 1e-10), rtol=1e-12)
        np.testing.assert_allclose(moved, eta, rtol=1e-9 / norm)
        params = new
    # without normalisation the step is η m
    plain = BOREP(RP.problem, normalize=False, outer_lr=0.05)
    p0 = bilevel.BilevelParams(RP.x0, RP.y0)
    s0 = plain.init(p0, RP.upper_data, RP.lower_data)
    p1, s1 = plain.step(p0, s0, RP.upper_data, RP.lower_data)
    np.testing.assert_allclose(p1.x, RP.x0 - 0.05 * s1.momentum, rtol=1e-14)


# -- (d) a NumPy re-implementation ----------------------------------------------------------------


def _numpy_step(x, y, z, m, k, cfg):
    """One BO-REP iteration on the quadratic problem, with hand-derived derivatives."""
    grad_g = lambda yy: H @ yy - (B @ x + C)
    if k == 0:
        for _ in range(cfg["init_steps"]):
            y = y - cfg["inner_lr"] * grad_g(y)
    if k % cfg["update_interval"] == 0:
        for _ in range(cfg["inner_steps"]):
            y = y - cfg["inner_lr"] * grad_g(y)
    fx, fy = RHO * x, y - T_UP
    if cfg.get("hypergrad", "code") == "code":
        z = z - cfg["z_lr"] * (H @ z - fy)
    else:
        s, v, total = cfg["neumann_scale"], fy.copy(), fy.copy()
        for _ in range(cfg["neumann_terms"] - 1):
            v = v - s * (H @ v)
            total = total + v
        z = s * total
    g_hat = fx + B.T @ z  # ∇²ₓᵧg z = −Bᵀz for g = ½yᵀHy − yᵀ(Bx + c)
    m = cfg["beta"] * m + (1 - cfg["beta"]) * g_hat
    x = x - cfg["outer_lr"] * m / (np.linalg.norm(m) + 1e-10)
    return x, y, z, m


CONFIGS = [
    dict(outer_lr=0.07, inner_lr=0.08, update_interval=3, inner_steps=4, beta=0.8, z_lr=0.03,
         init_steps=5),
    dict(outer_lr=0.2, inner_lr=0.05, update_interval=2, inner_steps=2, beta=0.9, z_lr=0.01,
         init_steps=0, hypergrad="neumann", neumann_terms=6, neumann_scale=0.09),
]  # fmt: skip


@pytest.mark.parametrize("cfg", CONFIGS)
def test_steps_match_a_numpy_reimplementation(cfg):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=5), rng.normal(size=10)
    z, m = rng.normal(size=10), rng.normal(size=5)
    solver = BOREP(RP.problem, **cfg)
    params = bilevel.BilevelParams(jnp.asarray(x), jnp.asarray(y))
    state = solver.init(params, RP.upper_data, RP.lower_data)
    state = dataclasses.replace(state, z=jnp.asarray(z), momentum=jnp.asarray(m))
    step = jax.jit(lambda p, s: solver.step(p, s, RP.upper_data, RP.lower_data))
    grads = 0
    for k in range(5):  # the first step (refinement + update), steps with and without update
        params, state = step(params, state)
        x, y, z, m = _numpy_step(x, y, z, m, k, cfg)
        for ours, ref in ((params.x, x), (params.y, y), (state.z, z), (state.momentum, m)):
            np.testing.assert_allclose(ours, ref, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(state.error, np.linalg.norm(m), rtol=1e-12)
        grads += 1 + cfg["inner_steps"] * (k % cfg["update_interval"] == 0)
        grads += cfg["init_steps"] * (k == 0)
        assert int(state.num_grads) == grads
    hvps = 2 if cfg.get("hypergrad", "code") == "code" else cfg["neumann_terms"]
    assert int(state.num_hvps) == 5 * hvps


def test_estimate_equals_the_exact_hypergradient_at_exact_inner_quantities():
    """Non-quadratic check: at y = y*(x) and z = (∇²ᵧᵧg)⁻¹∇ᵧf, ĝ is the implicit hypergradient."""
    rp = bilevel.problems.logistic_l2(per_feature=True)  # ridge exp(xⱼ) per feature
    problem, upper, lower = rp.problem, rp.upper_data, rp.lower_data
    x = jnp.asarray(0.5 * np.random.default_rng(2).normal(size=30) - 2.0)
    g = lambda w: problem.lower_fn(x, w, lower)

    solver = BOREP(problem, beta=0.5)

    @jax.jit
    def check():
        newton = lambda _, w: w - jnp.linalg.solve(jax.hessian(g)(w), jax.grad(g)(w))
        w = jax.lax.fori_loop(0, 30, newton, rp.y0)  # the lower level, strongly convex
        fy = jax.grad(problem.upper_fn, argnums=1)(x, w, upper)
        z = jnp.linalg.solve(jax.hessian(g)(w), fy)
        params = bilevel.BilevelParams(x, w)
        state = dataclasses.replace(solver.init(params, upper, lower), z=z)
        _, state = solver.step(params, state, upper, lower)
        exact = bilevel.hypergradient(problem, x, w, upper, lower)
        return state.momentum, exact, jnp.linalg.norm(jax.grad(g)(w))

    momentum, exact, residual = check()
    assert float(residual) < 1e-12
    assert float(jnp.linalg.norm(exact)) > 1e-3
    np.testing.assert_allclose(momentum / 0.5, exact, rtol=1e-8, atol=1e-14)


# -- (e) convergence on the quadratic problem ------------------------------------------------------


def _first_below(solver, threshold, steps):
    """The first iteration after which ``‖x − x*‖/‖x*‖ <= threshold`` (``None``: never)."""
    x_star = RP.solution.x

    @eqx.filter_jit
    def errors(solver):
        params = bilevel.BilevelParams(RP.x0, RP.y0)
        state = solver.init(params, RP.upper_data, RP.lower_data)

        def body(carry, _):
            params, state = solver.step(*carry, RP.upper_data, RP.lower_data)
            return (params, state), jnp.linalg.norm(params.x - x_star) / jnp.linalg.norm(x_star)

        (params, state), errs = jax.lax.scan(body, (params, state), None, length=steps)
        return errs, params, state

    errs, params, state = errors(solver)
    errs = np.asarray(errs)
    below = np.flatnonzero(errs <= threshold)
    return (int(below[0]) + 1 if below.size else None), errs, params, state


def test_step_decay_reaches_the_closed_form_to_1e_4():
    # The official defaults (η₀ = α = 5e-2 aside, ν = 1e-2, I = 2, N = 10, β = 0.9) with a
    # StepLR-like staircase decay of η: ×0.5 every 50 steps from 0.1. Measured: 459 iterations
    # (not monotone: normalised momentum overshoots while η is still large).
    eta = optax.exponential_decay(0.1, transition_steps=50, decay_rate=0.5, staircase=True)
    first, errs, params, state = _first_below(BOREP(RP.problem, outer_lr=eta), 1e-4, 1000)
    assert first is not None and first <= 520, first
    assert errs[-1] <= 1e-5  # measured: 3e-7 after 1000 iterations
    # with a fixed η the normalised step cannot settle: it ends in a cycle of steps of length η
    # around x* (here of period 2, between 2e-4 and 4e-2 relative error)
    _, fixed, _, _ = _first_below(BOREP(RP.problem, outer_lr=0.05), 1e-4, 1000)
    assert fixed[-100:].max() > 0.5 * 0.05 / np.linalg.norm(RP.solution.x)
    # (a) at the end, z solves the linear system at the final point
    z_star = np.linalg.solve(H, np.asarray(params.y) - T_UP)
    assert _rel(state.z, z_star) < 1e-6
    # y was last updated at an earlier x (periodic updates), within the last steps' movement
    assert _rel(params.y, _y_star(np.asarray(params.x))) < 1e-5


def test_neumann_mode_reaches_the_closed_form_to_1e_4():
    # With Q = 100 terms the Neumann bias (1 − μ/L)^Q ≈ 3e-5 is below the target.
    eta = optax.exponential_decay(0.1, transition_steps=50, decay_rate=0.5, staircase=True)
    solver = BOREP(RP.problem, outer_lr=eta, hypergrad="neumann", neumann_terms=100,
                   neumann_scale=1 / L)  # fmt: skip
    first, _, _, _ = _first_below(solver, 1e-4, 800)
    assert first is not None and first <= 700, first  # measured: 608


def test_run_with_tol_stops_on_the_momentum_norm():
    eta = optax.exponential_decay(0.1, transition_steps=50, decay_rate=0.5)
    solver = BOREP(RP.problem, outer_lr=eta, inner_lr=0.1, z_lr=0.1, tol=1e-8, max_steps=2000)
    sol = solver.run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)
    assert sol.result == RESULTS.successful
    assert float(sol.stats["error"]) <= 1e-8 and int(sol.stats["num_steps"]) < 2000
    assert _rel(sol.x, np.asarray(RP.solution.x)) < 1e-6


# -- (f) stochastic mode ---------------------------------------------------------------------------


def test_stochastic_mode_is_reproducible_and_a_full_batch_is_deterministic():
    rp = bilevel.problems.hyper_cleaning(0.5, num_train=60, num_val=30)
    args = (rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    solver = BOREP(
        rp.problem, outer_lr=0.1, init_steps=3, batch_size=16, upper_batch_size=10, max_steps=30
    )
    with pytest.raises(ValueError, match="key"):
        solver.run(*args)
    one = solver.run(*args, key=jax.random.key(0))
    again = solver.run(*args, key=jax.random.key(0))
    other = solver.run(*args, key=jax.random.key(1))
    np.testing.assert_array_equal(one.x, again.x)
    np.testing.assert_array_equal(one.y, again.y)
    assert float(jnp.abs(one.x - other.x).max()) > 1e-6
    # Batches of all rows are permutations of the data: the mean losses are the full ones.
    full = BOREP(rp.problem, outer_lr=0.1, init_steps=3, max_steps=30)
    perm = dataclasses.replace(solver, batch_size=60, upper_batch_size=30)
    ours = perm.run(*args, key=jax.random.key(3))
    ref = full.run(*args)
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.y, ref.y, rtol=1e-10, atol=1e-12)
    assert int(ours.stats["num_grads"]) == int(ref.stats["num_grads"]) == 30 + 15 * 10 + 3


# -- (g) data hyper-cleaning ---------------------------------------------------------------------


def test_hyper_cleaning_lowers_the_validation_loss():
    rp = bilevel.problems.hyper_cleaning(0.5, num_train=300, num_val=150)
    problem = rp.problem
    grad = jax.grad(problem.lower_fn, argnums=1)

    @jax.jit
    def validation_loss(x):  # the lower level solved to a small gradient by plain GD
        W = jax.lax.fori_loop(0, 2000, lambda _, W: W - 0.5 * grad(x, W, rp.lower_data), rp.y0)
        return problem.upper_fn(x, W, rp.upper_data), jnp.linalg.norm(grad(x, W, rp.lower_data))

    # the official hyper-cleaning defaults: η = α = 5e-2, ν = 1e-2, I = 2, N = 10, β = 0.9
    sol = BOREP(problem, max_steps=300).run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    before, res0 = validation_loss(rp.x0)
    after, res1 = validation_loss(sol.x)
    assert float(res0) < 1e-2 and float(res1) < 1e-2
    assert float(after) < 0.8 * float(before), (float(before), float(after))  # 1.695 -> 1.199
    weights = jax.nn.sigmoid(sol.x)
    corrupted = rp.extras["corrupted"]
    assert float(weights[corrupted].mean()) < float(weights[~corrupted].mean()) - 0.2


# -- (h) bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        (dict(outer_lr=-0.1), "outer_lr"),
        (dict(inner_lr=-1.0), "inner_lr"),
        (dict(inner_lr=0.0), "inner_lr"),
        (dict(z_lr=-1e-2), "z_lr"),
        (dict(neumann_scale=-0.1), "neumann_scale"),
        (dict(beta=1.0), "beta"),
        (dict(eps=0.0), "eps"),
        (dict(update_interval=0), "update_interval"),
        (dict(inner_steps=0), "inner_steps"),
        (dict(neumann_terms=0), "neumann_terms"),
        (dict(init_steps=-1), "init_steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(hypergrad="exact"), "hypergrad"),
        (dict(tol=-1.0), "tol"),
    ],
)
def test_bad_hyperparameters_name_the_argument(options, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        BOREP(RP.problem, **options)


def test_unsupported_problems_are_rejected():
    with pytest.raises(TypeError, match="BilevelProblem"):
        BOREP(bilevel.problems.multi_block_quadratic().problem)
    constrained = bilevel.BilevelProblem(
        RP.problem.upper_fn, RP.problem.lower_fn, constraint_fn=lambda x, y, d: y
    )
    with pytest.raises(ValueError, match="constraint_fn"):
        BOREP(constrained)


def test_divergence_is_reported_as_nonfinite():
    solver = BOREP(RP.problem, inner_lr=1.0, max_steps=100, throw=False)  # α > 2/L
    sol = solver.run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)
    assert sol.result == RESULTS.nonfinite
    assert int(sol.stats["num_steps"]) < 100
    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError), match="inner_lr"):
        jax.block_until_ready(
            dataclasses.replace(solver, throw=True)
            .run(RP.x0, RP.y0, RP.upper_data, RP.lower_data)
            .x
        )


def test_pytree_y_gives_the_same_run_as_an_array_y():
    cat = lambda y: jnp.concatenate([y["a"], y["b"]])
    problem = bilevel.BilevelProblem(
        lambda x, y, d: RP.problem.upper_fn(x, cat(y), d),
        lambda x, y, d: RP.problem.lower_fn(x, cat(y), d),
    )
    y0 = {"a": RP.y0[:4], "b": RP.y0[4:]}
    for options in (dict(init_steps=3), dict(hypergrad="neumann", neumann_terms=4)):
        data = (RP.upper_data, RP.lower_data)
        tree = BOREP(problem, max_steps=25, **options).run(RP.x0, y0, *data)
        flat = BOREP(RP.problem, max_steps=25, **options).run(RP.x0, RP.y0, *data)
        np.testing.assert_allclose(tree.x, flat.x, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(cat(tree.y), flat.y, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(cat(tree.state.z), flat.state.z, rtol=1e-13, atol=1e-15)
