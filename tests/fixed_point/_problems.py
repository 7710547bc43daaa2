"""Small problems shared by the fixed-point tests (float64; tests/conftest.py enables it)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

RNG = np.random.default_rng(42)
N = 8
_M = RNG.normal(size=(N, N))
#: an affine contraction T(x) = Mx + b, ‖M‖₂ = 0.9: x* = (I − M)⁻¹ b
M = jnp.asarray(0.9 * _M / np.linalg.norm(_M, 2))
B = jnp.asarray(RNG.normal(size=N))
#: a well-conditioned nonsingular matrix for root finding
A = jnp.asarray(RNG.normal(size=(N, N)) / np.sqrt(N) + 2 * np.eye(N))


def affine(x, M, b):
    return M @ x + b


def nonlinear(x, M, b):
    """``0.9 tanh(Mx) + b`` — Lipschitz ≤ 0.81."""
    return 0.9 * jnp.tanh(M @ x) + b


def root_fun(x, A, b):
    return A @ x + 0.3 * jnp.tanh(x) + 0.05 * x**3 - b


def np_nonlinear(x, M, b):
    return 0.9 * np.tanh(np.asarray(M) @ x) + np.asarray(b)
