"""Sparse MeZO: the per-layer magnitude mask and the coordinates it leaves untouched."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import zeroth_order as zo

rng = np.random.default_rng(0)
PARAMS = {"w": rng.normal(size=(8, 5)), "b": rng.normal(size=7), "s": rng.normal(size=())}


def loss(p):
    return sum(jnp.sum(jnp.sin(x) + 0.5 * x**2) for x in jax.tree.leaves(p))


def numpy_mask(x, sparsity):
    """Independent: keep the n - floor(s n) smallest |x| (by a stable argsort)."""
    a = np.abs(x).ravel()
    keep = a.size - int(np.floor(sparsity * a.size))
    m = np.zeros(a.size, bool)
    m[np.argsort(a, kind="stable")[:keep]] = True
    return m.reshape(np.shape(x))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.75, 0.99])
def test_mask_keeps_the_smallest_magnitudes_per_leaf(sparsity):
    got = zo.sparse_mezo_mask(jax.tree.map(jnp.asarray, PARAMS), sparsity)
    for k, x in PARAMS.items():
        np.testing.assert_array_equal(np.asarray(got[k]), numpy_mask(x, sparsity))


def test_masked_out_coordinates_stay_untouched_over_a_run():
    tx = zo.sparse_mezo(1e-2, sparsity=0.6, seed=3)

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(None, state, params, value_fn=loss)
        return (optax.apply_updates(params, updates), state), (params, updates)

    p0 = jax.tree.map(jnp.asarray, PARAMS)
    _, (before, updates) = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=6))(p0)
    for t in range(6):
        for k in PARAMS:
            m = numpy_mask(np.asarray(before[k][t]), 0.6)  # the mask of that step's params
            u = np.asarray(updates[k][t])
            assert np.all(u[~m] == 0), (t, k)
            assert np.all(u[m] != 0), (t, k)


def test_sparse_estimate_is_spsa_with_the_magnitude_mask():
    # same key and directions: scale_by_sparse_spsa == spsa_gradient with mask_fn = the mask
    p = jax.tree.map(jnp.asarray, PARAMS)
    tx = zo.scale_by_sparse_spsa(eps=1e-3, sparsity=0.5, num_directions=2, seed=4)
    est, _ = tx.update(None, tx.init(p), p, value_fn=loss)
    key = jax.random.fold_in(jax.random.PRNGKey(4), 0)
    mask = zo.sparse_mezo_mask(p, 0.5)
    want = zo.spsa_gradient(loss, p, key, 1e-3, 2, mask_fn=lambda _: mask)
    for k in p:
        np.testing.assert_allclose(np.asarray(est[k]), np.asarray(want[k]), rtol=1e-12)


def test_sparsity_zero_is_mezo():
    p = jax.tree.map(jnp.asarray, PARAMS)
    a, _ = zo.sparse_mezo(1e-2, sparsity=0.0).update(None, zo.mezo(1e-2).init(p), p, value_fn=loss)
    b, _ = zo.mezo(1e-2).update(None, zo.mezo(1e-2).init(p), p, value_fn=loss)
    for k in p:  # equal up to rounding (the masked program fuses differently)
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=1e-12)
