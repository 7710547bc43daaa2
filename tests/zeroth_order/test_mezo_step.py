"""``mezo_step``: the reference trainer's in-place arithmetic, and its memory.

The trajectory is compared with a float64 NumPy replay of the official ``zo_step``/``zo_update``
(``princeton-nlp/MeZO`` ``large_models/trainer.py``: perturb by +εz, loss, -2εz, loss, +εz,
then ``θ -= lr (proj z + wd θ)`` on weights that are not biases) fed the same directions; the
memory with XLA's compiled memory analysis against the forward pass and the transformation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import zeroth_order as zo
from jaxopt_papers.zeroth_order.spsa import _rbg_leaf_noise

rng = np.random.default_rng(0)
X = rng.normal(size=(16, 3))
Y = rng.normal(size=(16, 4))


def loss_np(p):
    return float(np.mean((np.tanh(X @ p["w"] + p["bias"]) - Y) ** 2))


def loss(p):
    return jnp.mean((jnp.tanh(jnp.asarray(X) @ p["w"] + p["bias"]) - jnp.asarray(Y)) ** 2)


def test_trajectory_equals_a_float64_replay_of_the_reference_arithmetic():
    params = {"bias": jnp.asarray(rng.normal(size=4)), "w": jnp.asarray(rng.normal(size=(3, 4)))}
    lr, eps, wd = 0.05, 1e-3, 0.1
    state = zo.scale_by_spsa(seed=3).init(params)
    step = jax.jit(lambda p, s: zo.mezo_step(loss, p, s, lr, eps, wd))
    theta = {k: np.asarray(v, np.float64) for k, v in params.items()}
    for t in range(4):
        key = jax.random.fold_in(jax.random.fold_in(state.key, t), 0)
        leaves = jax.tree.leaves(params)  # order: bias, w
        z = {k: np.asarray(_rbg_leaf_noise(key, i, leaf)) for i, (k, leaf) in
             enumerate(zip(sorted(params), leaves, strict=True))}  # fmt: skip
        for k in theta:
            theta[k] = theta[k] + eps * z[k]
        f_plus = loss_np(theta)
        for k in theta:
            theta[k] = theta[k] - 2 * eps * z[k]
        f_minus = loss_np(theta)
        proj = (f_plus - f_minus) / (2 * eps)
        for k in theta:
            theta[k] = theta[k] + eps * z[k]
            decay = 0.0 if k == "bias" else wd * theta[k]
            theta[k] = theta[k] - lr * (proj * z[k] + decay)
        params, state, reported = step(params, state)
        assert abs(float(reported) - f_plus) <= 1e-12
        for k in theta:
            np.testing.assert_allclose(params[k], theta[k], rtol=1e-12, atol=1e-13)
    assert int(state.count) == 4


def _peak(compiled) -> int:
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
            + m.temp_size_in_bytes)  # fmt: skip


def test_compiled_peak_is_the_forward_pass_plus_about_two_leaves():
    # parameter-heavy (small batch), so that copies of the params dominate the difference;
    # six leaves, so that two leaves are a third of the params
    params = {f"w{i}": jax.ShapeDtypeStruct((512, 512), jnp.float32) for i in range(6)}
    x = jax.ShapeDtypeStruct((8, 512), jnp.float32)

    def f(p, x):
        for i in range(6):
            x = jnp.tanh(x @ p[f"w{i}"])
        return jnp.mean(x**2)

    param_bytes = 6 * 512 * 512 * 4
    forward = _peak(jax.jit(f).lower(params, x).compile())
    state = jax.eval_shape(zo.scale_by_spsa().init, params)
    lean = jax.jit(lambda p, s, x: zo.mezo_step(lambda q: f(q, x), p, s, 1e-3),
                   donate_argnums=(0, 1)).lower(params, state, x).compile()  # fmt: skip
    tx = zo.mezo(1e-3)
    tx_state = jax.eval_shape(tx.init, params)

    def chained(p, s, x):
        u, s = tx.update(None, s, p, value_fn=lambda q: f(q, x))
        return optax.apply_updates(p, u), s

    usual = jax.jit(chained, donate_argnums=(0, 1)).lower(params, tx_state, x).compile()
    leaf_bytes = param_bytes / 6
    assert _peak(lean) <= forward + 2.05 * leaf_bytes, (_peak(lean), forward, leaf_bytes)
    assert _peak(lean) <= 0.6 * _peak(usual), (_peak(lean), _peak(usual))


def test_bad_input_names_the_argument():
    params = {"w": jnp.zeros(3)}
    state = zo.scale_by_spsa().init(params)
    with pytest.raises(TypeError, match="`state`"):
        zo.mezo_step(lambda p: jnp.sum(p["w"]), params, (0, 1), 0.1)
    with pytest.raises(ValueError, match="eps"):
        zo.mezo_step(lambda p: jnp.sum(p["w"]), params, state, 0.1, eps=0.0)
    with pytest.raises((TypeError, ValueError), match="value_fn"):
        zo.mezo_step(None, params, state, 0.1)
