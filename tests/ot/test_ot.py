"""Sinkhorn and Sinkhorn–Newton–Sparse against POT, ott-jax, dense Newton and closed forms.

Oracles: POT ``ot.sinkhorn(method="sinkhorn_log")`` and ott-jax 0.6.0's Sinkhorn (plans), dense
Newton (``density=1.0``) for SNS at small ε, ``ot.emd`` (the ε → 0 limit), the envelope formula
``∇_x reg_cost = 2(diag(P1)x − Py)`` for squared-Euclidean costs, central finite differences in
float64, and unrolled differentiation through a fixed number of sweeps.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from ott.geometry import geometry
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn as ott_sinkhorn
from scipy.spatial.distance import cdist

from jaxopt_papers import RESULTS
from jaxopt_papers.ot import (
    OTProblem,
    Potentials,
    Sinkhorn,
    SinkhornNewtonSparse,
    euclidean,
    lp_cost,
    sinkhorn,
    sinkhorn_newton_sparse,
    squared_euclidean,
)

RNG = np.random.default_rng(0)
N, M = 40, 30
XS = RNG.normal(size=(N, 2))
YS = RNG.normal(size=(M, 2)) * 0.5 + 1.0
COST = np.asarray(squared_euclidean(jnp.asarray(XS), jnp.asarray(YS)))
A = RNG.uniform(0.5, 1.5, size=N)
A /= A.sum()
B = np.full(M, 1.0 / M)
EPS = 0.1 * COST.mean()
RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def gauss_clouds_cost(n, seed):
    """Squared-Euclidean cost between N(0, I₂) and N(1, 0.5² I₂) clouds (the benchmark's)."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 2)), 1.0 + 0.5 * rng.normal(size=(n, 2))
    return np.asarray(squared_euclidean(jnp.asarray(x), jnp.asarray(y)))


def pot_plan(cost, a, b, eps):
    return ot.sinkhorn(a, b, cost, reg=eps, method="sinkhorn_log", stopThr=1e-14,
                       numItermax=1_000_000)  # fmt: skip


@pytest.mark.parametrize("solver", ["sinkhorn", "sns-dense", "sns"])
def test_plans_match_pot_and_ott(solver):
    if solver == "sinkhorn":
        res = sinkhorn(COST, A, B, EPS, tol=1e-12)
    else:
        density = 1.0 if solver == "sns-dense" else None
        res = sinkhorn_newton_sparse(COST, A, B, EPS, tol=1e-12, density=density)
    assert res.result == RESULTS.successful and float(res.error) <= 1e-12
    np.testing.assert_allclose(res.plan, pot_plan(COST, A, B, EPS), atol=1e-12)
    geom = geometry.Geometry(cost_matrix=jnp.asarray(COST), epsilon=EPS)
    out = ott_sinkhorn.Sinkhorn(threshold=1e-13, max_iterations=100_000)(
        linear_problem.LinearProblem(geom, jnp.asarray(A), jnp.asarray(B))
    )
    np.testing.assert_allclose(res.plan, out.matrix, atol=1e-11)
    # ott's entropy is relative to a⊗b: its reg_ot_cost is larger by ε(H(a) + H(b)).
    entropies = -np.sum(A * np.log(A)) - np.sum(B * np.log(B))
    np.testing.assert_allclose(res.reg_cost + EPS * entropies, out.reg_ot_cost, rtol=1e-10)
    np.testing.assert_allclose(res.transport_cost, np.sum(COST * out.matrix), rtol=1e-10)
    # gauge: Σf = Σg, and f ⊕ g equals ott's (the gauge-invariant combination)
    np.testing.assert_allclose(jnp.sum(res.f), jnp.sum(res.g), atol=1e-10)
    np.testing.assert_allclose(res.f[:, None] + res.g[None], out.f[:, None] + out.g[None],
                               atol=1e-9)  # fmt: skip


def test_float32_is_stable_at_small_epsilon():
    cost32 = COST.astype(np.float32)
    # Round-off floor of the marginals in float32: ~ max|C|/ε · eps ≈ 1e-5 here.
    res = sinkhorn(cost32, A.astype(np.float32), B.astype(np.float32), 0.01 * COST.mean(),
                   tol=1e-4, max_steps=20_000)  # fmt: skip
    assert res.result == RESULTS.successful and float(res.error) < 1e-4
    assert res.plan.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(res.plan)))
    ref = pot_plan(COST, A, B, 0.01 * COST.mean())
    np.testing.assert_allclose(res.plan, ref, atol=1e-4)


def test_sns_on_the_papers_random_assignment_problem():
    """n = 200, C ~ U[0, 1], η = 1200: the paper's algorithm takes tens of Newton steps, like
    dense Newton, to 1e-11; the default schedule (two ε stages here) reaches the same plan."""
    n = 200
    cost = np.random.default_rng(1).uniform(size=(n, n))
    a = np.full(n, 1.0 / n)
    sparse = sinkhorn_newton_sparse(cost, a, a, 1 / 1200, tol=1e-11, schedule="paper")
    dense = sinkhorn_newton_sparse(cost, a, a, 1 / 1200, tol=1e-11, density=1.0,
                                   epsilon_stages=1)  # fmt: skip
    default = sinkhorn_newton_sparse(cost, a, a, 1 / 1200, tol=1e-11)
    np.testing.assert_allclose(default.plan, dense.plan, atol=1e-11)
    assert int(sparse.num_sinkhorn_steps) == 20
    assert int(sparse.num_newton_steps) <= 40
    assert abs(int(sparse.num_newton_steps) - int(dense.num_newton_steps)) <= 5
    np.testing.assert_allclose(sparse.plan, dense.plan, atol=1e-11)
    # Sinkhorn is nowhere near after 40 times as many sweeps.
    slow = sinkhorn(cost, a, a, 1 / 1200, tol=1e-11, max_steps=2000, throw=False)
    assert slow.result == RESULTS.max_steps_reached and float(slow.error) > 1e-6
    # ε → 0: the entropic cost approaches the exact OT cost (ot.emd).
    exact = float(np.sum(ot.emd(a, a, cost) * cost))
    assert exact <= float(sparse.transport_cost) <= exact + 0.01


def test_envelope_gradient_wrt_points_and_finite_differences():
    x, y = jnp.asarray(XS), jnp.asarray(YS)

    def reg_cost(x):
        return sinkhorn(squared_euclidean(x, y), A, B, EPS, tol=1e-13).reg_cost

    g = jax.grad(reg_cost)(x)
    plan = sinkhorn(squared_euclidean(x, y), A, B, EPS, tol=1e-13).plan
    envelope = 2 * (plan.sum(1)[:, None] * x - plan @ y)
    np.testing.assert_allclose(g, envelope, rtol=1e-9, atol=1e-12)
    d = jnp.asarray(RNG.normal(size=x.shape))
    h = 1e-5
    fd = (reg_cost(x + h * d) - reg_cost(x - h * d)) / (2 * h)
    np.testing.assert_allclose(jnp.vdot(g, d), fd, rtol=1e-7)


@pytest.mark.parametrize("solver", ["sinkhorn", "sns"])
def test_implicit_gradient_of_transport_cost_vs_unrolled_and_fd(solver):
    """⟨C, P⟩ depends on the plan: its gradient needs the implicit function theorem."""
    x, y = jnp.asarray(XS), jnp.asarray(YS)
    w = jnp.asarray(RNG.normal(size=(N, M)))

    def loss(x, which=solver):
        cost = squared_euclidean(x, y)
        if which == "sinkhorn":
            res = sinkhorn(cost, A, B, EPS, tol=1e-13)
        elif which == "unrolled":
            res = sinkhorn(
                cost,
                A,
                B,
                EPS,
                tol=1e-14,
                max_steps=3000,
                fixed_steps=True,
                implicit_diff=False,
                throw=False,
            )
        else:
            res = sinkhorn_newton_sparse(cost, A, B, EPS, tol=1e-13, density=1.0)
        return res.transport_cost + jnp.sum(w * res.plan)

    g = jax.grad(loss)(x)
    np.testing.assert_allclose(g, jax.grad(lambda x: loss(x, "unrolled"))(x), rtol=1e-7,
                               atol=1e-10)  # fmt: skip
    d = jnp.asarray(RNG.normal(size=x.shape))
    h = 1e-5
    fd = (loss(x + h * d) - loss(x - h * d)) / (2 * h)
    np.testing.assert_allclose(jnp.vdot(g, d), fd, rtol=1e-6)
    # forward mode agrees with reverse mode
    np.testing.assert_allclose(jax.jvp(loss, (x,), (d,))[1], jnp.vdot(g, d), rtol=1e-9)


def test_fixed_steps_vmap_over_epsilon_and_jit():
    eps = jnp.asarray([0.5, 1.0, 2.0]) * EPS
    run = jax.jit(jax.vmap(lambda e: sinkhorn(COST, A, B, e, tol=1e-13, max_steps=2000,
                                              fixed_steps=True, throw=False).plan))  # fmt: skip
    plans = run(eps)
    for i, e in enumerate(np.asarray(eps)):
        np.testing.assert_allclose(plans[i], pot_plan(COST, A, B, float(e)), atol=1e-10)


def test_l1_ground_cost_matches_pot():
    x, y = jnp.asarray(XS), jnp.asarray(YS)
    cost = np.asarray(lp_cost(x, y, 1.0))
    np.testing.assert_allclose(cost, ot.dist(XS, YS, metric="cityblock"), rtol=1e-12)
    np.testing.assert_allclose(squared_euclidean(x, y), cdist(XS, YS, "sqeuclidean"), rtol=1e-12)
    np.testing.assert_allclose(euclidean(x, y), cdist(XS, YS), rtol=1e-12)
    np.testing.assert_allclose(lp_cost(x, y, 3.0), cdist(XS, YS, "minkowski", p=3.0) ** 3,
                               rtol=1e-12)  # fmt: skip
    res = sinkhorn(cost, A, B, 0.1 * cost.mean(), tol=1e-12)
    np.testing.assert_allclose(res.plan, pot_plan(cost, A, B, 0.1 * cost.mean()), atol=1e-12)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`a` and `b` must have shapes"):
        sinkhorn(COST, A[:-1], B, EPS)
    with pytest.raises(ValueError, match="`a` must be finite and positive"):
        sinkhorn(COST, -A, B, EPS)
    with pytest.raises(ValueError, match="same total mass"):
        sinkhorn(COST, A, 2 * B, EPS)
    with pytest.raises(ValueError, match="`cost` has non-finite entries"):
        sinkhorn(np.where(COST > 1, np.inf, COST), A, B, EPS)
    with pytest.raises(ValueError, match="`epsilon` must be a positive"):
        sinkhorn_newton_sparse(COST, A, B, 0.0)
    with pytest.raises(ValueError, match="`x` and `y` must be point clouds"):
        squared_euclidean(jnp.ones((3, 2)), jnp.ones((3, 3)))
    with pytest.raises(RUNTIME_ERRORS, match="Increase `max_steps`"):
        sinkhorn(COST, A, B, 1e-3 * EPS, max_steps=5).plan.block_until_ready()


def test_sns_uses_the_full_hessian_when_the_plan_is_not_sparse():
    """Gaussian clouds at ε = 1e-2·mean C: the top 16 entries of a row hold well under 99% of its
    mass, so the Newton stage falls back to the full Hessian and converges like dense Newton;
    always sparsifying (the paper's rule, ``min_kept_mass=0``) only converges linearly."""
    n = 300
    cost = gauss_clouds_cost(n, seed=3)
    a = np.full(n, 1.0 / n)
    eps = 1e-2 * cost.mean()
    default = sinkhorn_newton_sparse(cost, a, a, eps, tol=1e-10)
    dense = sinkhorn_newton_sparse(cost, a, a, eps, tol=1e-10, density=1.0)
    assert int(default.num_newton_steps) == int(dense.num_newton_steps) <= 30
    reference = sinkhorn(cost, a, a, eps, tol=1e-9, max_steps=100_000)  # tens of thousands
    np.testing.assert_allclose(default.plan, reference.plan, atol=1e-9)
    paper = sinkhorn_newton_sparse(
        cost, a, a, eps, tol=1e-10, schedule="paper", max_newton_steps=30, throw=False
    )
    assert paper.result == RESULTS.max_steps_reached and float(paper.error) > 1e-8


def test_epsilon_scaling_converges_where_the_papers_schedule_stalls():
    """ε = 1e-3·mean C: Newton from 20 sweeps is still in its damped phase after 60 steps; with a
    coarser first stage (ε-scaling) it converges in tens of steps, to the same plan whatever the
    number of stages, and the cost sits just above the exact OT cost (``ot.emd``)."""
    n = 300
    cost = gauss_clouds_cost(n, seed=3)
    a = np.full(n, 1.0 / n)
    eps = 1e-3 * cost.mean()
    kw = dict(tol=1e-10, max_newton_steps=60)
    paper = sinkhorn_newton_sparse(cost, a, a, eps, throw=False, epsilon_stages=1, **kw)
    assert paper.result == RESULTS.max_steps_reached and float(paper.error) > 1e-4
    two = sinkhorn_newton_sparse(cost, a, a, eps, epsilon_stages=2, **kw)
    three = sinkhorn_newton_sparse(cost, a, a, eps, epsilon_stages=3, epsilon_decay=5.0, **kw)
    assert int(two.num_sinkhorn_steps) == 21 and int(three.num_sinkhorn_steps) == 22
    np.testing.assert_allclose(two.plan, three.plan, atol=1e-9)
    exact = float(np.sum(ot.emd(a, a, cost) * cost))
    assert exact <= float(two.transport_cost) <= exact * 1.01
    with pytest.raises(ValueError, match="epsilon_stages"):
        sinkhorn_newton_sparse(cost, a, a, eps, epsilon_stages=0)


@pytest.mark.parametrize("solver", ["sinkhorn", "sns"])
def test_jit_equals_eager_and_new_epsilon_or_tol_does_not_retrace(solver, monkeypatch):
    """The shared solver invariants for the OT solvers (functions, not IterativeSolvers)."""
    from jaxopt_papers.ot import dual

    traces = {"count": 0}
    finish = dual.finish_ot

    def counting_finish(*args, **kwargs):
        traces["count"] += 1  # runs once per trace of the compiled solver
        return finish(*args, **kwargs)

    monkeypatch.setattr(dual, "finish_ot", counting_finish)
    fn = sinkhorn if solver == "sinkhorn" else sinkhorn_newton_sparse
    first = fn(COST, A, B, EPS, tol=1e-10)
    count = traces["count"]
    for eps, tol in ((1.3 * EPS, 1e-10), (0.8 * EPS, 1e-9)):
        again = fn(COST, A, B, eps, tol=tol)
        assert float(again.error) <= tol
    assert traces["count"] == count  # same shapes and dtypes: no new trace
    jitted = jax.jit(lambda c: fn(c, A, B, EPS, tol=1e-10).plan)(jnp.asarray(COST))
    np.testing.assert_allclose(jitted, first.plan, rtol=1e-10, atol=1e-14)


SOLVERS = {"sinkhorn": sinkhorn, "sns": sinkhorn_newton_sparse}


def _bad_inputs():
    """(name, cost, a, b, ε, code, message) — values only a traced check can see."""
    nan_cost = COST.copy()
    nan_cost[3, 4] = np.nan
    return [
        ("negative-epsilon", COST, A, B, -EPS, RESULTS.invalid_input, "`epsilon` must be > 0"),
        ("nan-cost", nan_cost, A, B, EPS, RESULTS.nonfinite_input, "NaN or inf"),
        ("unequal-mass", COST, A, 1.5 * B, EPS, RESULTS.invalid_input, "same total mass"),
    ]


@pytest.mark.parametrize("solver", ["sinkhorn", "sns"])
@pytest.mark.parametrize("bad", _bad_inputs(), ids=lambda b: b[0])
def test_traced_invalid_input_gives_a_code_and_throw_raises(solver, bad):
    """Under jit the values are traced: the checks become a result code (not a wrong plan with
    `successful`, silent NaN, or "did not reach tol"), and with throw=True an error naming the
    problem, even when only the cost is used."""
    _, cost, a, b, eps, code, message = bad
    fn = SOLVERS[solver]
    args = tuple(jnp.asarray(v) for v in (cost, a, b, eps))
    quiet = jax.jit(lambda *z: fn(*z, throw=False).result)(*args)
    assert quiet == code
    loud = jax.jit(lambda *z: fn(*z).reg_cost)
    with pytest.raises(RUNTIME_ERRORS, match=message):
        jax.block_until_ready(loud(*args))
    # Eager (concrete) inputs are refused before solving, naming the argument.
    with pytest.raises(ValueError, match=r"`cost`|`a` and `b`|`epsilon`"):
        fn(cost, a, b, eps)


def test_throw_fires_through_value_and_grad_of_reg_cost():
    """Only `.reg_cost` is used, and only through value_and_grad: the check still fires."""
    cost = jnp.asarray(gauss_clouds_cost(60, seed=5))
    a = jnp.full(60, 1 / 60)
    eps = 1e-3 * float(cost.mean())
    fn = jax.jit(jax.value_and_grad(
        lambda C: sinkhorn_newton_sparse(C, a, a, eps, max_newton_steps=1).reg_cost))  # fmt: skip
    with pytest.raises(RUNTIME_ERRORS, match="`max_newton_steps`"):
        jax.block_until_ready(fn(cost))
    quiet = sinkhorn_newton_sparse(cost, a, a, eps, max_newton_steps=1, throw=False)
    assert quiet.result == RESULTS.max_steps_reached


def test_failure_messages_name_each_solvers_own_arguments():
    with pytest.raises(RUNTIME_ERRORS, match="`max_steps` sweeps"):
        jax.block_until_ready(sinkhorn(COST, A, B, 1e-2 * EPS, max_steps=3).plan)
    with pytest.raises(RUNTIME_ERRORS, match=r"`max_newton_steps`.*`sinkhorn_steps`"):
        jax.block_until_ready(
            sinkhorn_newton_sparse(COST, A, B, 1e-2 * EPS, max_newton_steps=1).plan
        )


def test_sns_fixed_steps_under_vmap_matches_pot():
    eps = jnp.asarray([0.5, 1.0, 2.0]) * EPS
    solver = SinkhornNewtonSparse(tol=1e-12, max_newton_steps=30, fixed_steps=True, throw=False)
    run = jax.jit(jax.vmap(lambda e: solver.run(OTProblem(COST, A, B, e))))
    sols = run(eps)
    assert bool(jnp.all(sols.result == RESULTS.successful))
    for i, e in enumerate(np.asarray(eps)):
        np.testing.assert_allclose(sols.plan[i], pot_plan(COST, A, B, float(e)), atol=1e-11)


def test_sns_defaults_converge_at_small_epsilon():
    """ε = 1e-3·mean C, n = 300: the paper's single stage is still far off after 200 Newton
    steps; the default schedule (ε-scaling chosen from ε/std C) converges, to the plan of an
    explicit two-stage run, and its cost sits just above the exact OT cost (``ot.emd``)."""
    n = 300
    cost = gauss_clouds_cost(n, seed=3)
    a = np.full(n, 1.0 / n)
    eps = 1e-3 * cost.mean()
    default = sinkhorn_newton_sparse(cost, a, a, eps, tol=1e-9)
    assert default.result == RESULTS.successful and float(default.error) <= 1e-9
    assert int(default.state.num_stages) > 1
    two = sinkhorn_newton_sparse(cost, a, a, eps, tol=1e-9, epsilon_stages=2)
    np.testing.assert_allclose(default.plan, two.plan, atol=1e-8)
    exact = float(np.sum(ot.emd(a, a, cost) * cost))
    assert exact <= float(default.transport_cost) <= exact * 1.01
    # at ε = 0.1·mean C the plan needs no ε-scaling: one stage
    easy = sinkhorn_newton_sparse(cost, a, a, 100 * eps, tol=1e-9)
    assert int(easy.state.num_stages) == 1 and int(easy.num_sinkhorn_steps) == 20


def test_modules_step_by_step_and_solution_fields():
    """init/step reproduce run, and the Solution carries value, aux and stats as documented."""
    problem = OTProblem(COST, A, B, 0.05 * COST.mean())
    for solver in (Sinkhorn(tol=1e-10), SinkhornNewtonSparse(tol=1e-10)):
        sol = solver.run(problem)
        params, state, errors = None, solver.init(None, problem), []
        step = jax.jit(lambda p, s, solver=solver: solver.step(p, s, problem))
        params, state = step(Potentials(jnp.zeros(N), jnp.zeros(M)), state)
        errors.append(float(state.error))
        while float(state.error) > 1e-10:
            params, state = step(params, state)
            errors.append(float(state.error))
        assert int(state.num_steps) == int(sol.num_steps) == int(sol.stats["num_steps"])
        plan = np.exp((params.f[:, None] + params.g[None] - COST) / problem.epsilon)
        np.testing.assert_allclose(plan, sol.plan, atol=1e-12)
        np.testing.assert_allclose(sol.plan, pot_plan(COST, A, B, float(problem.epsilon)),
                                   atol=1e-10)  # fmt: skip
        assert isinstance(sol.value, Potentials) and sol.f is sol.value.f
        assert sol.plan is sol.aux.plan and sol.error is sol.stats["error"]
        assert errors[-1] <= 1e-10 < errors[0]
    assert set(sol.stats) == {"num_steps", "error", "num_sinkhorn_steps", "num_newton_steps",
                              "num_cg_steps"}  # fmt: skip
