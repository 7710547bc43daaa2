"""Learning rate as a function of batch size (Granziol, Zohren, Roberts, JMLR 2022)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import schedules


@pytest.mark.parametrize("b0, b", [(32, 32), (128, 512), (256, 64), (100, 3000)])
def test_rules(b0, b):
    lr0 = 0.05
    assert schedules.scale_lr_for_batch(lr0, b0, b) == pytest.approx(lr0 * b / b0, rel=1e-15)
    assert schedules.scale_lr_for_batch(lr0, b0, b, rule="sqrt") == pytest.approx(
        lr0 * math.sqrt(b / b0), rel=1e-15
    )


def test_schedule_is_scaled_at_every_step():
    base = optax.cosine_decay_schedule(0.1, 20)
    scaled = schedules.scale_lr_for_batch(base, 64, 256, rule="sqrt")
    for t in (0, 5, 19, 25):
        assert float(scaled(t)) == pytest.approx(2.0 * float(base(t)), rel=1e-12)


def test_traced_batch_size():
    f = jax.jit(lambda b: schedules.scale_lr_for_batch(0.1, 32, b, rule="sqrt"))
    np.testing.assert_allclose(
        [float(f(jnp.asarray(b))) for b in (32, 128, 288)], [0.1, 0.2, 0.3], rtol=1e-12
    )
    lin = jax.jit(lambda b: schedules.scale_lr_for_batch(0.1, 32, b))(jnp.asarray(96.0))
    assert float(lin) == pytest.approx(0.3, rel=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r"`rule` must be one of \('linear', 'sqrt'\).*'cubic'"):
        schedules.scale_lr_for_batch(0.1, 32, 64, rule="cubic")
    with pytest.raises(ValueError, match=r"`batch_size` must be a finite number in \(0\.0, inf\]"):
        schedules.scale_lr_for_batch(0.1, 32, 0)
    with pytest.raises(ValueError, match=r"`base_batch_size`.*got -4"):
        schedules.scale_lr_for_batch(0.1, -4, 64)
    with pytest.raises(ValueError, match=r"`learning_rate`.*got -0\.1"):
        schedules.scale_lr_for_batch(-0.1, 32, 64)
