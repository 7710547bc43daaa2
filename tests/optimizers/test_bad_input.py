"""Invalid hyperparameters raise ValueError naming the argument, expectation and value."""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import optax
import pytest

import jaxopt_papers as jop
from tests.optimizers.registry import ENTRIES, IDS


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_negative_learning_rate(entry):
    with pytest.raises(ValueError, match=r"learning_rate.*got -0\.1"):
        entry.make(learning_rate=-0.1)


_WITH_B1 = [e for e in ENTRIES if "b1" in inspect.signature(getattr(jop, e.alias)).parameters]


@pytest.mark.parametrize("entry", _WITH_B1, ids=[e.name for e in _WITH_B1])
@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, float("nan")])
def test_b1_outside_unit_interval(entry, value):
    with pytest.raises(ValueError, match=r"`b1` must be a finite number in \[0\.0, 1\.0\)"):
        entry.make(b1=value)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_negative_weight_decay(entry):
    with pytest.raises(ValueError, match="weight_decay"):
        entry.make(weight_decay=-1.0)


def test_schedules_and_traced_values_are_accepted():
    sched = optax.linear_schedule(1e-3, 0.0, 10)
    for fn in (jop.lion, jop.adan, jop.exadam, jop.diffgrad):
        fn(sched)
    optax.inject_hyperparams(jop.adan)(learning_rate=jnp.asarray(1e-3))


def test_non_numeric_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="b2"):
        jop.adan(b2="0.9")
