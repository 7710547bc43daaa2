"""BSVRB (v1 and v2) against the exact hypergradient, a NumPy step, closed forms and bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers import RESULTS, bilevel
from jaxopt_papers.bilevel.bsvrb import BSVRB, BSVRBState, msvr_update
from tests.conftest import ROOT

jax.config.update("jax_enable_x64", True)

QUAD = bilevel.problems.multi_block_quadratic()  # m = 8, dim_x = 4, dim_y = 6
LOGI = bilevel.problems.multi_task_logistic(num_blocks=4, num_train=40, num_val=30)


def _rel(x, ref):
    return float(jnp.linalg.norm(x - ref) / jnp.linalg.norm(ref))


def _newton_lower(problem, x, y0, lower_data, steps=20):
    """``yᵢ*(x)`` of every block by Newton's method with dense Hessians (an independent solve)."""
    g = jax.grad(problem.lower_fn, argnums=1)
    H = jax.hessian(problem.lower_fn, argnums=1)

    def one(y, data):
        for _ in range(steps):
            y = y - jnp.linalg.solve(H(x, y, data), g(x, y, data))
        return y

    return jax.vmap(one)(y0, lower_data)


def _one_step(solver, params, state, upper, lower):
    return jax.jit(lambda p, s: solver.step(p, s, upper, lower))(params, state)


# -- (a) the oracle: with every block and the full data, the estimate is the exact hypergradient


def _quadratic_with_x_in_upper():
    # fᵢ = ½‖y − tᵢ‖² + ¼‖x‖²·(1 + tᵢ₀²): the upper level depends on x too (∇ₓf ≠ 0).
    upper = lambda x, y, t: 0.5 * jnp.sum((y - t) ** 2) + 0.25 * jnp.sum(x**2) * (1 + t[0] ** 2)
    base = QUAD.problem
    problem = bilevel.MultiBlockProblem(upper, base.lower_fn)
    x = jnp.linspace(-1.0, 1.0, 4)
    A, mu = QUAD.lower_data
    y = jnp.einsum("iab,b->ia", A, x) / (1 + mu[:, None])  # yᵢ*(x) in closed form
    return problem, x, y, QUAD.upper_data, QUAD.lower_data


def _logistic_point():
    rp = LOGI
    x = jnp.asarray(np.random.default_rng(1).normal(size=rp.x0.shape))
    y = _newton_lower(rp.problem, x, rp.y0, rp.lower_data)
    return rp.problem, x, y, rp.upper_data, rp.lower_data


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("point", [_quadratic_with_x_in_upper, _logistic_point],
                         ids=["quadratic", "logistic"])  # fmt: skip
def test_estimate_is_the_exact_hypergradient_at_the_lower_solution(version, point):
    problem, x, y, upper, lower = point()
    exact = bilevel.hypergradient(problem, x, y, upper, lower, lower_tol=1e-10)
    hess = jax.vmap(jax.hessian(problem.lower_fn, argnums=1), in_axes=(None, 0, 0))(x, y, lower)
    fy = jax.vmap(jax.grad(problem.upper_fn, argnums=1), in_axes=(None, 0, 0))(x, y, upper)
    for beta in (1.0, 0.9):
        solver = BSVRB(problem, version=version, lr=0.1, beta=beta)
        params = bilevel.BilevelParams(x, y)
        state = solver.init(params, upper, lower)
        if version == "v1":  # Hᵢ = ∇²ᵧᵧgᵢ, now and at the previous point (= this point)
            state = dataclasses.replace(state, H=hess, H_prev=hess)
        else:  # vᵢ = (∇²ᵧᵧgᵢ)⁻¹ ∇ᵧfᵢ
            v = jnp.linalg.solve(hess, fy[..., None])[..., 0]
            state = dataclasses.replace(state, v=v, v_prev=v)
        new, state = _one_step(solver, params, state, upper, lower)
        # z = (1 − β)(0 − G_old) + G_new with G_old = G_new = ∇F(x) at the first step.
        np.testing.assert_allclose(state.z, beta * exact, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(new.x, x - 0.1 * beta * exact, rtol=1e-10, atol=1e-13)
        assert float(state.error) == pytest.approx(beta * float(jnp.linalg.norm(exact)))


# -- (b) the MSVR estimator ---------------------------------------------------------------------


def test_msvr_update_is_its_formula_on_the_sampled_rows_only():
    rng = np.random.default_rng(0)
    e, new, old = rng.normal(size=(6, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    idx = np.array([4, 1])
    out = np.asarray(msvr_update(jnp.asarray(e), jnp.asarray(idx), new, old, 0.7, 2.5))
    want = e.copy()
    for j, i in enumerate(idx):
        want[i] = 0.3 * e[i] + 3.2 * new[j] - 2.5 * old[j]
    np.testing.assert_allclose(out, want, rtol=1e-14)
    # a projection applies to the updated rows only, and pytrees are mapped leaf by leaf
    tree = msvr_update({"a": jnp.asarray(e)}, jnp.asarray(idx), {"a": new}, {"a": old}, 0.7, 2.5,
                       project=lambda rows: 2.0 * rows)  # fmt: skip
    want2 = want.copy()
    want2[idx] *= 2.0
    np.testing.assert_allclose(tree["a"], want2, rtol=1e-14)


# -- (c) one step against a NumPy re-implementation (the official code's loop, on our problem) --


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_lower(x, w, X, s, index, tau, lam):
    """∇_w g, ∇²_ww g and q ↦ ∂ₓ⟨∇_w g, q⟩ of the weighted logistic loss (hand derivatives)."""
    n = len(s)
    z = s * (X @ w) / tau
    weight = _sig(x[index])
    r = -(s / tau) * _sig(-z)  # d/d(Xw) of log(1 + exp(−z))
    grad = (weight * r) @ X / n + lam * w
    hess = (X.T * (weight * _sig(z) * _sig(-z) / tau**2)) @ X / n + lam * np.eye(len(w))

    def cross(q):
        out = np.zeros(len(x))
        np.add.at(out, index, weight * (1 - weight) * r * (X @ q) / n)
        return out

    return grad, hess, cross


def _np_upper_grad(w, X, s, tau):
    z = s * (X @ w) / tau
    return (-(s / tau) * _sig(-z)) @ X / len(s)


def _np_step(version, hp, x, y, st, idx, rows_u, rows_l, upper, lower):
    """One BSVRB iteration written like the official main.py loop, with NumPy."""
    a, g, b = hp["alpha"], hp["gamma"], hp["beta"]
    Xv, sv, tau_u = upper
    X, s_lab, index, tau_l, lam = lower
    st = {k: (None if v is None else np.array(v)) for k, v in st.items()}
    m = y.shape[0]
    G_new, G_old = np.zeros_like(x), np.zeros_like(x)
    H_next = None if st["H"] is None else st["H"].copy()
    for j, i in enumerate(idx):
        rl, ru = rows_l[j], rows_u[j]
        data_l = (X[i][rl], s_lab[i][rl], index[i][rl], tau_l[i], lam[i])
        gy_n, H_n, cross_n = _np_lower(x, y[i], *data_l)
        gy_o, H_o, cross_o = _np_lower(st["x_prev"], st["y_prev"][i], *data_l)
        fy_n = _np_upper_grad(y[i], Xv[i][ru], sv[i][ru], tau_u[i])
        fy_o = _np_upper_grad(st["y_prev"][i], Xv[i][ru], sv[i][ru], tau_u[i])
        st["s"][i] = (1 - a) * st["s"][i] + (a + g) * gy_n - g * gy_o
        if version == "v1":
            q_n = np.linalg.solve(st["H"][i], fy_n)
            q_o = np.linalg.solve(st["H_prev"][i], fy_o)
            Hi = (1 - a) * st["H"][i] + (a + g) * H_n - g * H_o
            norm = np.linalg.norm(Hi)
            H_next[i] = Hi * (hp["hessian_bound"] / norm) if norm < hp["hessian_bound"] else Hi
        else:
            q_n, q_o = st["v"][i], st["v_prev"][i]
            st["u"][i] = ((1 - a) * st["u"][i] + (a + g) * (H_n @ q_n - fy_n)
                          - g * (H_o @ q_o - fy_o))  # fmt: skip
        G_new += -cross_n(q_n)
        G_old += -cross_o(q_o)
    G_new, G_old = G_new / len(idx), G_old / len(idx)
    z = (1 - b) * (st["z"] - G_old) + G_new
    x_new = x - hp["lr"] * z
    y_new = y.copy()
    out = dict(x_prev=x, y_prev=y, z=z, s=st["s"])
    if version == "v1":
        for i in range(m):
            y_new[i] = y_new[i] - hp["tau"] * st["s"][i]
        out.update(H=H_next, H_prev=st["H"])
    else:
        v_new, delay = st["v"].copy(), st["delay"].copy()
        for i in range(m):
            if i in idx:
                dc = delay[i] + 1
                y_new[i] = y_new[i] - hp["tau"] * dc * st["s"][i]
                cand = v_new[i] - hp["tau_v"] * dc * st["u"][i]
                nrm = np.linalg.norm(cand)
                v_new[i] = cand / nrm * hp["v_bound"] if nrm > hp["v_bound"] else cand
                delay[i] = 0
            else:
                delay[i] += 1
        out.update(v=v_new, v_prev=st["v"], u=st["u"], delay=delay)
    return x_new, y_new, out


@pytest.mark.parametrize(
    "version, options",
    [("v1", {}), ("v1", {"hessian_bound": 0.3}), ("v2", {}), ("v2", {"v_bound": 0.5})],
    ids=["v1", "v1-bound-0.3", "v2", "v2-vbound-0.5"],
)
def test_one_step_equals_numpy(version, options):
    rp = LOGI
    m, d, n = rp.y0.shape[0], rp.y0.shape[1], rp.x0.shape[0]
    hp = dict(lr=0.7, tau=0.4, tau_v=0.6, alpha=0.8, gamma=1.5, beta=0.7, hessian_bound=10.0,
              v_bound=10.0)  # fmt: skip
    hp.update(options)
    solver = BSVRB(rp.problem, version=version, num_sampled_blocks=2, batch_size=8, **hp)
    rng = np.random.default_rng(3)
    x = rng.normal(size=n)
    y = rng.normal(size=(m, d)) * 0.3
    params = bilevel.BilevelParams(jnp.asarray(x), jnp.asarray(y))
    key = jax.random.key(7)
    state = solver.init(params, rp.upper_data, rp.lower_data, key)
    mats = rng.normal(size=(2, m, d, d)) / np.sqrt(d)
    spd = np.einsum("kiab,kicb->kiac", mats, mats) + 0.5 * np.eye(d)
    spd[:, 1] *= 20.0  # some blocks above the Hessian bound, some below
    vs = rng.normal(size=(2, m, d))
    vs[:, 2] *= 30.0  # beyond v_bound
    fields = dict(
        x_prev=rng.normal(size=n), y_prev=rng.normal(size=(m, d)) * 0.3,
        z=rng.normal(size=n), s=rng.normal(size=(m, d)),
    )  # fmt: skip
    if version == "v1":
        fields.update(H=spd[0], H_prev=spd[1])
    else:
        fields.update(v=vs[0], v_prev=vs[1], u=rng.normal(size=(m, d)),
                      delay=np.array([0, 3, 1, 5], np.int32))  # fmt: skip
    state = dataclasses.replace(state, **{k: jnp.asarray(v) for k, v in fields.items()})
    new, new_state = _one_step(solver, params, state, rp.upper_data, rp.lower_data)

    # The documented draw: split the key, blocks by choice, rows by per-block keys.
    _, kb, ku, kl = jax.random.split(key, 4)
    idx = np.asarray(jax.random.choice(kb, m, (2,), replace=False))
    n_val = rp.upper_data[0].shape[1]
    rows_u = [np.asarray(jax.random.choice(k, n_val, (8,), replace=False))
              for k in jax.random.split(ku, 2)]  # fmt: skip
    rows_l = [np.asarray(jax.random.choice(k, n, (8,), replace=False))
              for k in jax.random.split(kl, 2)]  # fmt: skip
    to_np = lambda t: tuple(np.asarray(v) for v in t)
    old = {k: getattr(state, k) for k in ("x_prev", "y_prev", "z", "s", "H", "H_prev", "v",
                                          "v_prev", "u", "delay")}  # fmt: skip
    x_np, y_np, want = _np_step(version, hp, x, y, old, idx, rows_u, rows_l,
                                to_np(rp.upper_data), to_np(rp.lower_data))  # fmt: skip
    np.testing.assert_allclose(new.x, x_np, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(new.y, y_np, rtol=1e-10, atol=1e-13)
    for name, value in want.items():
        np.testing.assert_allclose(getattr(new_state, name), value, rtol=1e-10, atol=1e-13,
                                   err_msg=name)  # fmt: skip
    hvps = 2 * (2 + 2 * d) if version == "v1" else 2 * 4
    assert int(new_state.num_grads) - int(state.num_grads) == 2 * 4
    assert int(new_state.num_hvps) == hvps


# -- (d) convergence on the closed-form multi-block quadratic -----------------------------------


@pytest.mark.parametrize(
    "options, steps",
    [({"version": "v1", "lr": 3.0}, 60), ({"version": "v2", "lr": 0.5, "tau": 0.3}, 150)],
    ids=["v1", "v2"],
)
def test_reaches_the_closed_form_with_all_blocks(options, steps):
    rp = QUAD
    sol = BSVRB(rp.problem, max_steps=steps, **options).run(
        rp.x0, rp.y0, rp.upper_data, rp.lower_data
    )
    assert sol.result == RESULTS.successful
    assert _rel(sol.x, rp.solution.x) < 1e-4
    assert _rel(sol.y, rp.solution.y) < 1e-4
    # with a tol, the run stops early and succeeds
    tight = BSVRB(rp.problem, tol=1e-8, max_steps=1000, **options).run(
        rp.x0, rp.y0, rp.upper_data, rp.lower_data
    )
    assert tight.result == RESULTS.successful and int(tight.stats["num_steps"]) < 1000
    assert _rel(tight.x, rp.solution.x) < 1e-6


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_sampled_blocks_still_reduce_the_error(version):
    rp = QUAD  # 4 of the 8 blocks per step; a constant step leaves a noise floor
    solver = BSVRB(rp.problem, version=version, lr=0.01, tau=0.1, num_sampled_blocks=4,
                   max_steps=2000)  # fmt: skip
    sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data, key=jax.random.key(0))
    assert _rel(rp.x0, rp.solution.x) == 1.0  # x0 = 0
    assert _rel(sol.x, rp.solution.x) < (0.12 if version == "v1" else 0.2)
    assert int(sol.stats["num_grads"]) == 2000 * 4 * 4 + (0 if version == "v1" else 8)


# -- (e) reproducibility ----------------------------------------------------------------------


def test_same_key_same_run_and_key_required_when_sampling():
    rp = QUAD
    solver = BSVRB(rp.problem, lr=0.01, tau=0.1, num_sampled_blocks=3, max_steps=30)
    run = lambda key: solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data, key=key)
    a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.allclose(a.x, c.x)
    with pytest.raises(ValueError, match="key"):
        solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    # all blocks (None or m) and full batches: deterministic, no key needed, the same run
    full = BSVRB(rp.problem, lr=1.0, max_steps=10)
    same = dataclasses.replace(full, num_sampled_blocks=8)
    np.testing.assert_array_equal(
        full.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data).x,
        same.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data).x,
    )


def test_pytree_y_gives_the_array_run():
    rp = QUAD
    split = lambda y: {"a": y[..., :2], "b": y[..., 2:]}
    join = lambda y: jnp.concatenate([y["a"], y["b"]], axis=-1)
    tree_problem = bilevel.MultiBlockProblem(
        lambda x, y, t: rp.problem.upper_fn(x, join(y), t),
        lambda x, y, data: rp.problem.lower_fn(x, join(y), data),
    )
    a = BSVRB(rp.problem, version="v2", lr=0.5, tau=0.3, max_steps=15).run(
        rp.x0, rp.y0, rp.upper_data, rp.lower_data
    )
    b = BSVRB(tree_problem, version="v2", lr=0.5, tau=0.3, max_steps=15).run(
        rp.x0, split(rp.y0 + 0.0), rp.upper_data, rp.lower_data
    )
    np.testing.assert_allclose(b.x, a.x, rtol=1e-12)
    np.testing.assert_allclose(join(b.y), a.y, rtol=1e-12)
    assert isinstance(b.state, BSVRBState) and b.state.s.shape == (8, 6)


# -- (f) the multi-task logistic problem with sampled blocks and mini-batches ---------------------


@pytest.mark.parametrize("version, lr", [("v1", 100.0), ("v2", 30.0)])
def test_upper_objective_decreases_on_multi_task_logistic(version, lr):
    rp = bilevel.problems.multi_task_logistic(num_blocks=10)
    problem = rp.problem
    solver = BSVRB(problem, version=version, lr=lr, num_sampled_blocks=3, batch_size=32,
                   max_steps=300)  # fmt: skip
    sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data, key=jax.random.key(0))

    def F(x):  # F(x) = (1/m) Σ fᵢ(x, yᵢ*(x)), the lower levels solved by Newton
        y = _newton_lower(problem, x, jnp.zeros_like(rp.y0), rp.lower_data, steps=12)
        return float(jnp.mean(problem.block_upper(x, y, rp.upper_data)))

    F0, F1 = F(rp.x0), F(sol.x)
    assert F1 < F0 - 0.005, (F0, F1)
    values = np.asarray(sol.stats["upper_values"])
    assert np.all(np.isfinite(values)) and values[-1] < values[0]


# -- (g) regression: v1 with 10 blocks of d = 31 used to deadlock inside the compiled run ---------

# jaxlib 0.10's batched LU (``lapack_dgetrf_ffi``) splits a batch of at least about 2e5 flops
# (here 10 blocks of 31 × 31) over XLA:CPU's intra-op thread pool and blocks its worker thread
# until its chunks are done; the two solves of a v1 step (new and old point), run concurrently
# inside the ``while_loop``, then held both workers of a 2-thread pool and the run hung forever.
# The child pins itself to 2 CPUs (the pool's size) so that the old code hangs on any machine; it
# runs in a subprocess so that a hang fails the test instead of stalling the suite.
_V1_TEN_BLOCKS = """
import json, os
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
import jax
import numpy as np
jax.config.update("jax_enable_x64", True)
from jaxopt_papers import RESULTS, bilevel
steps = 60
rp = bilevel.problems.multi_task_logistic(num_blocks=10, seed=0)
solver = bilevel.BSVRB(rp.problem, version="v1", max_steps=steps, throw=False)
sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
params = bilevel.BilevelParams(rp.x0, rp.y0)
state = solver.init(params, rp.upper_data, rp.lower_data)
step = jax.jit(lambda p, s: solver.step(p, s, rp.upper_data, rp.lower_data))
for _ in range(steps):
    params, state = step(params, state)
print(json.dumps({
    "num_steps": int(sol.stats["num_steps"]),
    "successful": bool(sol.result == RESULTS.successful),
    "norm_x": float(np.linalg.norm(params.x)),
    "diff_x": float(np.max(np.abs(np.asarray(sol.x) - np.asarray(params.x)))),
    "diff_y": float(np.max(np.abs(np.asarray(sol.y) - np.asarray(params.y)))),
}))
"""


def test_v1_ten_blocks_run_does_not_hang_and_equals_the_stepwise_loop():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _V1_TEN_BLOCKS], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=90,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("BSVRB v1 on multi_task_logistic(num_blocks=10) hung in the compiled run")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["num_steps"] == 60 and out["successful"]
    assert out["norm_x"] > 0  # x moved away from x0 = 0
    assert out["diff_x"] <= 1e-12 * out["norm_x"], out
    assert out["diff_y"] <= 1e-12, out


# -- (h) bad input ----------------------------------------------------------------------------


def test_bad_input():
    rp = QUAD
    with pytest.raises(ValueError, match="`lr`"):
        BSVRB(rp.problem, lr=-1.0)
    with pytest.raises(ValueError, match="`tau`"):
        BSVRB(rp.problem, tau=0.0)
    with pytest.raises(ValueError, match="`alpha`"):
        BSVRB(rp.problem, alpha=1.5)
    with pytest.raises(ValueError, match="`version`"):
        BSVRB(rp.problem, version="v3")
    single = bilevel.problems.quadratic(dim_x=2, dim_y=3)
    with pytest.raises(TypeError, match="BSVRB needs a MultiBlockProblem"):
        BSVRB(single.problem)
    too_many = BSVRB(rp.problem, num_sampled_blocks=9)
    with pytest.raises(ValueError, match="`num_sampled_blocks`"):
        too_many.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`num_sampled_blocks`"):
        too_many.init(bilevel.BilevelParams(rp.x0, rp.y0), rp.upper_data, rp.lower_data,
                      jax.random.key(0))  # fmt: skip
    # diverging steps give RESULTS.nonfinite (reported with throw=False)
    sol = BSVRB(rp.problem, version="v2", tau=5.0, max_steps=300, throw=False).run(
        rp.x0, rp.y0, rp.upper_data, rp.lower_data
    )
    assert sol.result == RESULTS.nonfinite
