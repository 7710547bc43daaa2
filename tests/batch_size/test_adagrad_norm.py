"""AdaGrad-Norm against a float64 NumPy replay of the reference code's ``Adagradnorm``.

Replay of timlautk/AdAdaGrad ``adagradnorm.py``: ``__init__`` (lines 26, 40-50: accumulator
``initial_accumulator_value`` per row for 2-D/4-D weights, momentum buffer zero), ``step``
(lines 79-105: accumulate the squared row norms, ``std = sqrt(sum) + 1e-10``, momentum
``buf = m buf + (1 - m) g``, ``p -= lr buf / std``), carried out in PyTorch's layouts
(``(out, in)``, ``(out, in, kh, kw)``) on the transposed JAX arrays. Biases get coordinate-wise
AdaGrad (the reference's coupling of a bias to the previous weight is a documented
difference), and weight decay is the decoupled ``p -= lr λ p`` (the reference's adds ``lr λ g``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import batch_size as bs


def make_params():
    k = jax.random.split(jax.random.key(0), 3)
    return {
        "w": jax.random.normal(k[0], (5, 3)),  # Dense (in, out)
        "conv": jax.random.normal(k[1], (2, 2, 3, 4)),  # Conv (kh, kw, in, out)
        "b": jax.random.normal(k[2], (3,)),
    }


def grad_at(params, t):
    return jax.tree.map(lambda p: jnp.sin(3.0 * p + t) + 0.1 * t * p, params)


def to_torch(name, x):
    x = np.asarray(x, np.float64)
    if name == "w":
        return x.T
    return x.transpose(3, 2, 0, 1) if name == "conv" else x


def from_torch(name, x):
    if name == "w":
        return x.T
    return x.transpose(2, 3, 1, 0) if name == "conv" else x


def replay_rowwise(params, steps, lr, init, momentum, wd):
    p = {k: to_torch(k, v) for k, v in params.items()}
    acc = {k: np.full(v.shape[:1] + (1,) * (v.ndim - 1), init) if v.ndim >= 2 else
           np.full(v.shape, init) for k, v in p.items()}  # fmt: skip
    buf = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(steps):
        jp = {k: from_torch(k, v) for k, v in p.items()}
        g = {k: to_torch(k, v) for k, v in grad_at(jax.tree.map(jnp.asarray, jp), t).items()}
        for k in p:
            gk = g[k]
            if gk.ndim >= 2:
                row = np.linalg.norm(gk.reshape(gk.shape[0], -1), axis=1) ** 2
                acc[k] = acc[k] + row.reshape(acc[k].shape)
            else:
                acc[k] = acc[k] + gk * gk
            std = np.sqrt(acc[k]) + 1e-10
            buf[k] = momentum * buf[k] + (1 - momentum) * gk
            p[k] = p[k] - lr * buf[k] / std - lr * wd * p[k]
    return {k: from_torch(k, v) for k, v in p.items()}


def replay_global(params, steps, lr, init):
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    b2 = init
    for t in range(steps):
        g = {k: np.asarray(v) for k, v in grad_at(jax.tree.map(jnp.asarray, p), t).items()}
        b2 += sum(float(np.sum(v * v)) for v in g.values())
        p = {k: p[k] - lr * g[k] / (np.sqrt(b2) + 1e-10) for k in p}
    return p


def run(tx, params, steps):
    state = tx.init(params)
    update = jax.jit(tx.update)
    for t in range(steps):
        u, state = update(grad_at(params, t), state, params)
        params = optax.apply_updates(params, u)
    return params, state


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(learning_rate=0.3, momentum=0.9, weight_decay=0.05, initial_accumulator_value=0.5),
    ],
    ids=["defaults", "momentum_wd"],
)
def test_rowwise_matches_the_reference_replay(kwargs):
    params = make_params()
    got, state = run(bs.adagrad_norm(**kwargs), params, 6)
    want = replay_rowwise(
        params,
        6,
        kwargs.get("learning_rate", 1.0),
        kwargs.get("initial_accumulator_value", 1e-2),
        kwargs.get("momentum", 0.0),
        kwargs.get("weight_decay", 0.0),
    )
    for k in params:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-12, atol=1e-14)
    assert state[0].sum_of_squares["conv"].shape == (1, 1, 1, 4)
    assert int(state[0].count) == 6


def test_global_matches_the_paper_replay():
    params = make_params()
    got, state = run(bs.adagrad_norm(0.4, granularity="global"), params, 6)
    want = replay_global(params, 6, 0.4, 1e-2)
    for k in params:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-12, atol=1e-14)
    assert state[0].sum_of_squares.shape == ()


def test_defaults_are_the_reference_code():
    import inspect

    sig = inspect.signature(bs.adagrad_norm).parameters
    assert sig["learning_rate"].default == 1.0
    assert sig["initial_accumulator_value"].default == 1e-2
    assert sig["eps"].default == 1e-10
    assert sig["momentum"].default == 0.0
    assert sig["granularity"].default == "rowwise"


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"`eps` must be a finite number in \(0\.0, inf\]"):
        bs.adagrad_norm(eps=0.0)
    with pytest.raises(ValueError, match=r"`initial_accumulator_value` must be .* got -1"):
        bs.adagrad_norm(initial_accumulator_value=-1.0)
    with pytest.raises(ValueError, match=r"`momentum` must be .*\[0\.0, 1\.0\).* got 1\.0"):
        bs.adagrad_norm(momentum=1.0)
    with pytest.raises(ValueError, match=r"`granularity` must be one of"):
        bs.adagrad_norm(granularity="layer")
    with pytest.raises(ValueError, match=r"`learning_rate` must be .* got -0\.1"):
        bs.adagrad_norm(-0.1)
