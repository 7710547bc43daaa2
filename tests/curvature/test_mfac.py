"""M-FAC against a dense inverse (float64) and against the official code's trajectories."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import curvature
from tests.curvature._golden import load, relative_errors


def _dense_direction(rows: list[np.ndarray], g: np.ndarray, m: int, lam: float) -> np.ndarray:
    """``(λ I + (1/m) Σ rows rowsᵀ)⁻¹ g`` by a dense solve (missing rows are zero)."""
    d = g.size
    fisher = lam * np.eye(d)
    for r in rows[-m:]:
        fisher += np.outer(r, r) / m
    return np.linalg.solve(fisher, g)


def test_direction_equals_dense_inverse_float64():
    m, lam = 5, 1e-3
    rng = np.random.default_rng(0)
    tx = curvature.scale_by_mfac(num_grads=m, damping=lam)
    params = {"a": jnp.zeros((3, 2)), "b": jnp.zeros(4)}
    state = tx.init(params)
    step = jax.jit(tx.update)
    seen = []
    # 8 gradients: the window fills (zero rows counted with the fixed 1/m), then wraps around
    for _ in range(8):
        g = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
        u, state = step(g, state)
        flat = np.concatenate([g["a"].ravel(), g["b"]])
        seen.append(flat)
        want = _dense_direction(seen, flat, m, lam)
        got = np.concatenate([np.asarray(u["a"]).ravel(), np.asarray(u["b"])])
        assert np.max(np.abs(got - want)) / np.max(np.abs(want)) <= 1e-10
    assert int(state.count) == 8


# With the default damping λ = 1e-5 the m × m system λ m I + G Gᵀ has a condition number near
# 1e6 on this problem: the reference's unpivoted LU and our Cholesky factorisation then agree to
# about 1e-9 (rounding, amplified by the condition number and by 20 steps of the trajectory).
@pytest.mark.parametrize(
    "name, rtol", [("mfac_default_damping", 5e-8), ("mfac_momentum_wd", 1e-10)]
)
def test_trajectory_matches_official_code(name, rtol):
    meta, z = load(name)
    tx = curvature.mfac(**meta["kwargs"])

    def body(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    p0 = jax.tree.map(jnp.asarray, z["p0"])
    _, traj = jax.jit(lambda p, gs: jax.lax.scan(body, (p, tx.init(p)), gs))(p0, z["grads"])
    errs = relative_errors(traj, z["params"])
    assert errs.max() <= rtol, errs


def test_bad_input():
    with pytest.raises(TypeError, match="num_grads"):
        curvature.scale_by_mfac(num_grads=2.0)
    with pytest.raises(ValueError, match="num_grads"):
        curvature.scale_by_mfac(num_grads=0)
    with pytest.raises(ValueError, match="damping"):
        curvature.mfac(damping=0.0)
    with pytest.raises(ValueError, match="momentum"):
        curvature.mfac(momentum=1.0)
    tx = curvature.scale_by_mfac(num_grads=2)
    with pytest.raises(ValueError, match="updates"):
        tx.update(jnp.zeros(4), tx.init(jnp.zeros(3)))
