"""Adan: how and why it differs from ``optax.adan``, in closed form."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_papers as jop


def _adan_direction(g1, g2, b1, b2, b3, eps, diff_weight):
    """Step-2 Adan direction for scalar gradients g1, g2, with the difference weighted by
    ``diff_weight`` (the official code: b2; optax 0.2.8: 1 - b2)."""
    diff = g2 - g1
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    d = (1 - b2) * diff  # d_1 = 0
    n = b3 * (1 - b3) * g1**2 + (1 - b3) * (g2 + diff_weight * diff) ** 2
    denom = np.sqrt(n / (1 - b3**2)) + eps
    return (m / (1 - b1**2) + diff_weight * d / (1 - b2**2)) / denom


def _two_steps(tx, g1, g2):
    p = jnp.zeros(())
    state = tx.init(p)
    u1, state = tx.update(jnp.asarray(g1), state, p)
    u2, _ = tx.update(jnp.asarray(g2), state, p)
    return float(u1), float(u2)


def test_adan_follows_the_official_b2_weighting_and_optax_does_not():
    b1, b2, b3, eps = 0.98, 0.92, 0.99, 1e-8
    g1, g2 = 1.0, -3.0
    ours = _two_steps(jop.scale_by_adan(b1, b2, b3, eps), g1, g2)
    theirs = _two_steps(optax.scale_by_adan(b1, b2, b3, eps, eps_root=0.0), g1, g2)
    # step 1: no gradient difference yet, both agree
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    # step 2: ours weighs the difference by b2 = 0.92, optax by 1 - b2 = 0.08
    np.testing.assert_allclose(ours[1], _adan_direction(g1, g2, b1, b2, b3, eps, b2), rtol=1e-12)
    np.testing.assert_allclose(
        theirs[1], _adan_direction(g1, g2, b1, b2, b3, eps, 1 - b2), rtol=1e-12
    )
    assert abs(ours[1] - theirs[1]) > 0.1


def test_proximal_weight_decay_closed_form():
    """Default Adan decays proximally: x+ = (x - lr u)/(1 + lr λ)."""
    lr, lam = 0.1, 0.5
    x = jnp.array([2.0, -1.0])
    g = jnp.array([0.3, 0.3])
    u, _ = jop.scale_by_adan().update(g, jop.scale_by_adan().init(x), x)
    tx = jop.adan(lr, weight_decay=lam)
    step, _ = tx.update(g, tx.init(x), x)
    np.testing.assert_allclose(x + step, (x - lr * u) / (1 + lr * lam), rtol=1e-14)
    tx = jop.adan(lr, weight_decay=lam, no_prox=True)
    step, _ = tx.update(g, tx.init(x), x)
    np.testing.assert_allclose(x + step, x * (1 - lr * lam) - lr * u, rtol=1e-14)
