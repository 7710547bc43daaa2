"""The shared optimizer invariant suite (``tests/optimizers/test_invariants.py``) run on the
8-bit optimizers, with ``min_8bit_size=0`` (and a small block) so that the test problems'
small tensors are quantised too. The suite's ``mu_dtype`` tests do not apply (the 8-bit state
has fixed dtypes); the bad-input and 8-bit-specific conventions are tested at the end."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.optimizers import test_invariants as suite
from tests.optimizers.registry import Entry
from tests.quantized._ns import jop


@dataclasses.dataclass(frozen=True)
class Entry8(Entry):
    """A registry entry whose alias lives in the quantized namespace."""

    def make(self, **overrides):
        return getattr(jop, self.alias)(**{**self.kwargs, **overrides})

    def make_injected(self, static_args=None, **overrides):
        static = self.static if static_args is None else static_args
        fn = optax.inject_hyperparams(getattr(jop, self.alias), static_args=static)
        return fn(**{**self.kwargs, **overrides})


STATIC = ("block_size", "min_8bit_size")
ENTRIES = [
    # the 2-state kernel (adamw8bit is the same function with another default decay), with
    # blocks of 16 so that the test tensors span several blocks
    Entry8("adam8bit_block16", "adam8bit",
           dict(learning_rate=1e-2, weight_decay=0.1, min_8bit_size=0, block_size=16), STATIC,
           dict(learning_rate=0.1, weight_decay=0.0)),
    # the 1-state kernel in its two forms
    Entry8("lion8bit", "lion8bit", dict(learning_rate=1e-3, weight_decay=0.1, min_8bit_size=0),
           STATIC, dict(learning_rate=0.03, weight_decay=0.0)),
]  # fmt: skip
# sgd8bit shares the 1-state kernel with lion8bit; its trajectory is replayed in test_quantized.py
IDS = [e.name for e in ENTRIES]
pytestmark = pytest.mark.parametrize("entry", ENTRIES, ids=IDS)

SHARED = [
    "test_jit_equals_eager",
    "test_no_recompilation",
    "test_unknown_extra_args_ignored",
    "test_inject_hyperparams_identical",
    "test_dtypes_preserved",
    "test_state_type_stable_in_cond",
    "test_multisteps_averages_gradients",
    "test_masked_leaves_untouched",
    "test_init_on_abstract_params",
    "test_nan_gradient_skipped_by_apply_if_finite",
    "test_converges_on_quadratic",
    "test_converges_on_rosenbrock",
    "test_float16_matches_float32_with_zero_and_small_gradient_entries",
    "test_integer_params_are_rejected",
    "test_mismatched_updates_are_a_clear_error",
]
for _name in SHARED:
    globals()[_name] = getattr(suite, _name)


def test_states_are_really_8bit(entry):
    state = entry.make().init(suite.make_params(jnp.float32))
    assert all(x.dtype == jnp.uint8 for x in jax.tree.leaves(state.mu))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.mu_absmax))


def test_structural_arguments_ask_for_static_args(entry):
    p = suite.make_params(jnp.float32)
    for name in entry.static:
        rest = tuple(n for n in entry.static if n != name)
        with pytest.raises(TypeError, match=rf'`{name}`.*static_args=\("{name}",\)'):
            entry.make_injected(static_args=rest).init(p)


def test_invalid_hyperparameters_are_rejected(entry):
    with pytest.raises(ValueError, match="`block_size` must be an int >= 1"):
        entry.make(block_size=0)
    with pytest.raises(TypeError, match="`min_8bit_size` must be a Python int"):
        entry.make(min_8bit_size=1.5)
    with pytest.raises(ValueError, match="`learning_rate` must be a finite number"):
        entry.make(learning_rate=-1.0)
    if "adam" in entry.alias:
        with pytest.raises(ValueError, match=r"`eps` must be a finite number in \(0\.0, inf\]"):
            entry.make(eps=0.0)
        with pytest.raises(ValueError, match=r"`b2` must be a finite number in \[0\.0, 1\.0\)"):
            entry.make(b2=1.0)


def test_bfloat16_params_train(entry):
    """bf16 params: bf16 updates, 8-bit state, the float32 run's updates rounded to bf16."""
    p32 = suite.make_params(jnp.float32)
    p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), p32)
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), p16)
    tx = entry.make()
    g32 = suite.grads_at(p32)
    u16, _ = tx.update(jax.tree.map(lambda x: x.astype(jnp.bfloat16), g32), tx.init(p16), p16)
    u32, _ = tx.update(jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(jnp.float32), g32),
                       tx.init(p32), p32)  # fmt: skip
    for a, b in zip(jax.tree.leaves(u16), jax.tree.leaves(u32), strict=True):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_allclose(
            np.asarray(a, np.float32), np.asarray(b.astype(jnp.bfloat16), np.float32), rtol=1e-2
        )
