"""``quantize_state``: any transformation's moments in 8 bits, against optax run on the
dequantised state and a brute-force nearest-code search in NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.quantized._ns import jop
from tests.quantized.test_quantized import SIGNED, UNSIGNED, brute_nearest


def _dequant(codes, absmax, code, block):
    flat = np.asarray(codes).reshape(-1)
    a = np.repeat(np.asarray(absmax, np.float32), block)[: flat.size]
    return (code[flat] * a).reshape(codes.shape)


def _quant(x, code, block, signed):
    flat = np.asarray(x, np.float32).reshape(-1)
    nb = -(-flat.size // block)
    blocks = np.pad(flat, (0, nb * block - flat.size)).reshape(nb, block)
    absmax = np.abs(blocks).max(axis=1)
    xn = (blocks / np.where(absmax > 0, absmax, 1)[:, None]).astype(np.float32)
    c = brute_nearest(code, xn.reshape(-1)).reshape(nb, block)
    if signed:
        wrong = np.signbit(code[c]) != np.signbit(blocks)
        c = np.where(wrong, np.where(blocks > 0, c + 1, c - 1), c) % 256
    return c.reshape(-1)[: flat.size].reshape(np.shape(x)), absmax


def test_steps_equal_optax_on_the_dequantised_state():
    block = 64
    inner = optax.scale_by_adam()
    tx = jop.quantize_state(inner, block_size=block, min_8bit_size=100)
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.standard_normal((30, 7)), jnp.float32),
              "b": jnp.asarray(rng.standard_normal(7), jnp.float32)}  # fmt: skip
    state = tx.init(params)
    assert state.inner.mu["w"].dtype == jnp.uint8 and state.inner.mu["b"].dtype == jnp.float32
    assert state.absmax.nu["w"].shape == (4,) and state.absmax.count.shape == (0,)
    ref_state = inner.init(params)
    for step in range(3):
        g = {k: jnp.asarray(rng.standard_normal(v.shape) * 10.0 ** rng.uniform(-5, 0, v.shape),
                            jnp.float32) for k, v in params.items()}  # fmt: skip
        # the reference: optax on the state we hold, dequantised by NumPy
        s = state.inner
        a = state.absmax
        dense = s._replace(
            mu={"w": jnp.asarray(_dequant(s.mu["w"], a.mu["w"], SIGNED, block)), "b": s.mu["b"]},
            nu={"w": jnp.asarray(_dequant(s.nu["w"], a.nu["w"], UNSIGNED, block)), "b": s.nu["b"]},
        )
        ref_u, ref_new = inner.update(g, dense, params)
        u, state = jax.jit(tx.update)(g, state, params)
        for k in params:
            np.testing.assert_allclose(np.asarray(u[k]), np.asarray(ref_u[k]), rtol=1e-6)
        for field, code, signed in (("mu", SIGNED, True), ("nu", UNSIGNED, False)):
            want, want_a = _quant(getattr(ref_new, field)["w"], code, block, signed)
            np.testing.assert_array_equal(np.asarray(getattr(state.inner, field)["w"]), want)
            np.testing.assert_allclose(np.asarray(getattr(state.absmax, field)["w"]), want_a,
                                       rtol=1e-6)  # fmt: skip
        assert int(state.inner.count) == step + 1
        ref_state = ref_new
    del ref_state


def test_trains_in_a_chain_with_inject_hyperparams():
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.normal(size=(200, 40)))
    target = jnp.asarray(rng.normal(size=(200, 30)))
    x_star = np.linalg.lstsq(np.asarray(a), np.asarray(target), rcond=None)[0]

    def make(learning_rate):
        return optax.chain(
            jop.quantize_state(optax.scale_by_adam(), block_size=128, min_8bit_size=0),
            optax.scale_by_learning_rate(learning_rate),
        )

    tx = optax.inject_hyperparams(make)(learning_rate=optax.cosine_decay_schedule(0.05, 1500))

    def f(x):
        return 0.5 * jnp.mean(jnp.sum((a @ x - target) ** 2, axis=1))

    @jax.jit
    def solve(x):
        def step(carry, _):
            x, s = carry
            u, s = tx.update(jax.grad(f)(x), s, x)
            return (optax.apply_updates(x, u), s), None

        return jax.lax.scan(step, (x, tx.init(x)), None, length=1500)[0]

    x, state = solve(jnp.zeros((40, 30)))
    assert state.inner_state[0].inner.mu.dtype == jnp.uint8
    err = np.linalg.norm(np.asarray(x) - x_star) / np.linalg.norm(x_star)
    assert err < 2e-2, err


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"`inner` must be an optax\.GradientTransformation"):
        jop.quantize_state(lambda p: p)
    with pytest.raises(TypeError, match="`second_moments` must be a sequence of field names"):
        jop.quantize_state(optax.scale_by_adam(), second_moments="nu")
    with pytest.raises(ValueError, match="`block_size` must be an int >= 1"):
        jop.quantize_state(optax.scale_by_adam(), block_size=0)
