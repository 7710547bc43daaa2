"""Lion-K: kernels against optax's Lion variants, and the constrained view of weight decay."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_papers as jop
from jaxopt_papers.optimizers.lion_k import kernel_gradient


def _trajectory(tx, x0, grad_fn, steps):
    def step(carry, _):
        x, s = carry
        u, s = tx.update(grad_fn(x), s, x)
        x = optax.apply_updates(x, u)
        return (x, s), x

    return jax.lax.scan(step, (x0, tx.init(x0)), None, length=steps)[1]


@pytest.mark.parametrize(
    ("kernel", "scale", "optax_kwargs"),
    [
        ("sign", 1.0, {}),
        ("tanh", 2.5, {"mode": "smooth", "smooth_beta": 2.5}),
        ("huber", 1.0, {"mode": "refined"}),
    ],
)
def test_kernels_match_optax_lion_modes(kernel, scale, optax_kwargs):
    """optax's hard / smooth / refined Lion are Lion-K with the sign / tanh / Huber(1) kernels."""
    x0 = jnp.linspace(-2.0, 2.0, 7)
    grad_fn = jax.grad(lambda x: jnp.sum(jnp.cosh(x) + 0.3 * x**3))
    ours = jop.lion_k(0.05, kernel=kernel, kernel_scale=scale, weight_decay=0.1)
    ref = optax.chain(
        optax.scale_by_lion(**optax_kwargs),
        optax.add_decayed_weights(0.1),
        optax.scale_by_learning_rate(0.05),
    )
    np.testing.assert_allclose(
        _trajectory(ours, x0, grad_fn, 50), _trajectory(ref, x0, grad_fn, 50), rtol=1e-13
    )


def test_lion_matches_optax_lion_with_explicit_weight_decay():
    x0 = jnp.linspace(-2.0, 2.0, 9)
    grad_fn = jax.grad(lambda x: jnp.sum((x - 0.7) ** 4 + jnp.sin(x)))
    ours = _trajectory(jop.lion(0.02, weight_decay=0.5), x0, grad_fn, 80)
    ref = _trajectory(optax.lion(0.02, weight_decay=0.5), x0, grad_fn, 80)
    np.testing.assert_allclose(ours, ref, rtol=1e-13)


def test_lion_default_weight_decay_is_the_official_zero():
    """optax.lion defaults to weight_decay=1e-3; the official code (and ours) to 0."""
    x0 = jnp.ones(3)
    grad_fn = lambda x: jnp.zeros_like(x)
    np.testing.assert_array_equal(_trajectory(jop.lion(), x0, grad_fn, 5)[-1], x0)
    assert float(_trajectory(optax.lion(1e-4), x0, grad_fn, 5)[-1][0]) < 1.0


@pytest.mark.parametrize("kernel", ["sign", "l2", "tanh", "huber", "relativistic"])
def test_constant_gradient_fixed_point_is_minus_grad_k_over_lambda(kernel):
    """With a constant gradient g the iterates converge to x* = -∇K(g)/λ (the constrained view)."""
    lam, scale = 2.0, 0.7
    g = jnp.array([3.0, -0.2, 0.05, -4.0])
    x_star = -kernel_gradient(kernel, scale)(g) / lam
    sched = optax.cosine_decay_schedule(0.02, 3000)
    tx = jop.lion_k(sched, kernel=kernel, kernel_scale=scale, weight_decay=lam)
    x = _trajectory(tx, jnp.array([2.0, -3.0, 0.0, 1.0]), lambda x: g, 3000)[-1]
    np.testing.assert_allclose(x, x_star, atol=2e-3)


def test_sign_kernel_keeps_iterates_in_the_box():
    """Lion with weight decay λ drives iterates into ‖x‖∞ ≤ 1/λ and keeps them there."""
    lam, lr = 4.0, 0.01
    grad_fn = jax.grad(lambda x: jnp.sum((x - jnp.array([3.0, -5.0, 0.1])) ** 2))
    xs = _trajectory(jop.lion(lr, weight_decay=lam), jnp.array([1.0, 1.0, -1.0]), grad_fn, 600)
    sup = np.abs(np.asarray(xs)).max(axis=1)
    assert sup[0] > 1 / lam  # starts outside the box
    inside = np.nonzero(sup <= 1 / lam + lr)[0]
    assert inside.size and np.all(sup[inside[0] :] <= 1 / lam + lr)
    # the unconstrained minimiser lies outside: the solution sits on the box faces
    np.testing.assert_allclose(xs[-1][:2], [1 / lam, -1 / lam], atol=lr)


def test_callable_kernel():
    cube = lambda c: jnp.clip(c, -1, 1) ** 3
    x0 = jnp.array([0.5, -0.5])
    xs = _trajectory(jop.lion_k(0.1, kernel=cube, b1=0.0, b2=0.0), x0, lambda x: x, 1)
    np.testing.assert_allclose(xs[0], x0 - 0.1 * x0**3)


def test_callable_kernel_must_keep_the_shape():
    """A kernel returning a scalar (e.g. a norm instead of its gradient) is rejected."""
    x0 = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    tx = jop.lion_k(0.1, kernel=lambda c: jnp.sum(c**2))
    with pytest.raises(
        ValueError, match=r"`kernel` must return .* got shape \(\) for an input of shape \(2,\)"
    ):
        tx.init(x0)
    state = jop.lion_k(0.1).init(x0)
    with pytest.raises(ValueError, match="`kernel` must return"):
        tx.update(x0, state, x0)
    with pytest.raises(ValueError, match=r"got no array"):
        jop.lion_k(0.1, kernel=lambda c: None).init(x0)


def test_callable_kernel_under_inject_hyperparams_needs_static_args():
    cube = lambda c: jnp.clip(c, -1, 1) ** 3
    x0 = jnp.array([0.5, -0.5])
    with pytest.raises(TypeError, match=r'`kernel`.*static_args=\("kernel",\)'):
        optax.inject_hyperparams(jop.lion_k)(learning_rate=0.1, kernel=cube).init(x0)
    tx = optax.inject_hyperparams(jop.lion_k, static_args=("kernel",))(
        learning_rate=0.1, kernel=cube, b1=0.0, b2=0.0
    )
    np.testing.assert_allclose(_trajectory(tx, x0, lambda x: x, 1)[0], x0 - 0.1 * x0**3)


def test_unknown_kernel_is_rejected():
    with pytest.raises(ValueError, match="kernel"):
        jop.lion_k(1e-3, kernel="cauchy")
    with pytest.raises(ValueError, match="kernel_scale"):
        jop.lion_k(1e-3, kernel="tanh", kernel_scale=0.0)
