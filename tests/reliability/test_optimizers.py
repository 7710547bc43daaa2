"""Bad input to the optimizers: hyperparameters, parameter dtypes, gradient trees, float16."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_papers as jop
from tests.reliability._cases import Case, Finite, Raises, params, run_case

ALIASES = ["adamp", "sgdp", "adan", "diffgrad", "exadam", "lion", "lion_k", "spam", "stable_spam"]
#: Those whose update divides by ``sqrt(v) + eps``.
WITH_EPS = ["adamp", "adan", "diffgrad", "exadam", "spam", "stable_spam"]

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2), "b": jnp.array([0.5, -0.5])}
GRADS = {"w": jnp.full((3, 2), 0.1), "b": jnp.array([0.2, -0.3])}


def make(alias, **kw):
    return getattr(jop, alias)(**{"learning_rate": 1e-3, **kw})


def first_update(alias, grads, params, **kw):
    tx = make(alias, **kw)
    return tx.update(grads, tx.init(params), params)[0]


def _cast(tree, dtype):
    return jax.tree.map(lambda v: v.astype(dtype), tree)


def _f32_reference(alias):
    # The same first step computed in float32 from the float16-rounded inputs.
    p, g = (
        _cast(_cast(PARAMS, jnp.float16), jnp.float32),
        _cast(_cast(TINY, jnp.float16), jnp.float32),
    )
    return jax.jit(lambda g: first_update(alias, g, p))(g)


#: Gradients whose squares (1e-10) underflow to 0 in float16.
TINY = jax.tree.map(lambda v: jnp.sign(v) * 1e-5, GRADS)


def cases_for(alias):
    c = [
        Case(
            f"{alias}_negative_learning_rate",
            lambda g: first_update(alias, g, PARAMS, learning_rate=-0.1),
            (GRADS,),
            Raises(ValueError, r"`learning_rate`.*-0\.1"),
        ),
        Case(
            f"{alias}_nan_learning_rate",
            lambda g: first_update(alias, g, PARAMS, learning_rate=float("nan")),
            (GRADS,),
            Raises(ValueError, r"`learning_rate`"),
        ),
        Case(
            f"{alias}_negative_weight_decay",
            lambda g: first_update(alias, g, PARAMS, weight_decay=-1.0),
            (GRADS,),
            Raises(ValueError, r"`weight_decay`"),
        ),
        Case(
            f"{alias}_int_params",
            lambda p: make(alias).init(p),
            ({"w": jnp.ones((3, 2), jnp.int32), "b": jnp.ones(2, jnp.int32)},),
            Raises(TypeError, r"`params` must have floating-point leaves.*int32"),
        ),
        Case(
            f"{alias}_grads_tree_mismatch",
            lambda g: first_update(alias, g, PARAMS),
            ({"w": GRADS["w"]},),
            Raises(ValueError, r"`updates` must have the pytree structure"),
        ),
        Case(
            f"{alias}_grads_shape_mismatch",
            lambda g: first_update(alias, g, PARAMS),
            ({"w": GRADS["w"].T, "b": GRADS["b"]},),
            Raises(ValueError, r"`updates` must have the shapes.*\['w'\] got shape \(2, 3\)"),
        ),
        Case(
            f"{alias}_params_tree_mismatch",
            lambda g: (lambda tx: tx.update(g, tx.init(PARAMS), {"w": PARAMS["w"]}))(make(alias)),
            (GRADS,),
            Raises(ValueError, r"`params` must have the pytree structure"),
        ),
        Case(
            f"{alias}_string_hyperparameter",
            lambda g: first_update(
                alias, g, PARAMS, **({"momentum": "0.9"} if alias == "sgdp" else {"b1": "0.9"})
            ),
            (GRADS,),
            Raises(TypeError, r"`(b1|momentum)` must be a real scalar"),
        ),
    ]
    if alias == "sgdp":
        c.append(
            Case(
                "sgdp_momentum_above_one",
                lambda g: first_update(alias, g, PARAMS, momentum=1.5),
                (GRADS,),
                Raises(ValueError, r"`momentum`"),
            )
        )
    else:
        c.append(
            Case(
                f"{alias}_b1_one",
                lambda g: first_update(alias, g, PARAMS, b1=1.0),
                (GRADS,),
                Raises(ValueError, r"`b1` must be a finite number in \[0\.0, 1\.0\)"),
            )
        )
    if alias in WITH_EPS:
        c += [
            Case(
                f"{alias}_eps_zero",
                lambda g: first_update(alias, g, PARAMS, eps=0.0),
                (GRADS,),
                Raises(ValueError, r"`eps`.*must be positive"),
            ),
            Case(
                f"{alias}_eps_negative",
                lambda g: first_update(alias, g, PARAMS, eps=-1e-8),
                (GRADS,),
                Raises(ValueError, r"`eps`"),
            ),
            Case(
                f"{alias}_float16_tiny_grads",
                lambda g: first_update(alias, g, _cast(PARAMS, jnp.float16)),
                (_cast(TINY, jnp.float16),),
                Finite(lambda: _f32_reference(alias), rtol=1e-2),
            ),
        ]
    return c


CASES = [case for alias in ALIASES for case in cases_for(alias)] + [
    Case(
        "lion_k_kernel_returns_scalar",
        lambda g: first_update("lion_k", g, PARAMS, kernel=lambda m: jnp.sum(m)),
        (GRADS,),
        Raises(ValueError, r"`kernel` must return an array of the shape of its input"),
    ),
    Case(
        "lion_k_unknown_kernel",
        lambda g: first_update("lion_k", g, PARAMS, kernel="nope"),
        (GRADS,),
        Raises(ValueError, r"`kernel` must be one of"),
    ),
    Case(
        "adamp_channel_axis_array",
        lambda g: first_update("adamp", g, PARAMS, channel_axis=np.asarray(0)),
        (GRADS,),
        Raises(TypeError, r"`channel_axis`"),
    ),
    Case(
        "adan_mu_dtype_int",
        lambda g: first_update("adan", g, PARAMS, mu_dtype=jnp.int32),
        (GRADS,),
        Raises(TypeError, r"`mu_dtype` must be None or a floating-point dtype"),
    ),
]


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_case(case, mode):
    run_case(case, mode)
