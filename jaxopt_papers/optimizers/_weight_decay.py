"""Weight-decay forms that depend on the learning rate non-linearly.

optax's ``add_decayed_weights`` covers the additive forms (coupled L2 before the moments and
decoupled ``p <- p(1 - lr*wd) - lr*u``). Two reference codes use other forms, which must be
reproduced exactly to match their trajectories. Both act on *learning-rate-scaled* updates
``d`` (i.e. they come after ``optax.scale_by_learning_rate`` in a chain):

* proximal (Adan, Algorithm 1):  ``p+ = (p + d) / (1 + lr*wd)``, i.e.
  ``Δ = (d - lr*wd*p) / (1 + lr*wd)``
* step-then-decay (SPAM, bitsandbytes CUDA):  ``p+ = (p + d)(1 - lr*wd)``  =>
  ``Δ = d - lr*wd*(p + d)``
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V


class ScheduledDecayState(NamedTuple):
    """Step counter used to evaluate learning-rate and weight-decay schedules."""

    count: jax.Array


def scheduled_value(x: optax.ScalarOrSchedule, count: jax.Array):
    """A hyperparameter at step ``count``: the schedule evaluated, or the number itself."""
    return x(count) if callable(x) else x


def _scheduled_decay(
    owner: str, learning_rate, weight_decay, combine
) -> optax.GradientTransformation:
    V.check_learning_rate(owner, learning_rate)
    V.check_weight_decay(owner, weight_decay)

    def init_fn(params):
        del params
        return ScheduledDecayState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"{owner}: weight decay needs `params`; pass them to `update`.")
        lr = scheduled_value(learning_rate, state.count)
        wd = scheduled_value(weight_decay, state.count)
        new = jax.tree.map(
            lambda d, p: None if d is None else combine(d, p, lr * wd).astype(d.dtype),
            updates,
            params,
            is_leaf=lambda x: x is None,
        )
        return new, ScheduledDecayState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def proximal_weight_decay(
    learning_rate: optax.ScalarOrSchedule, weight_decay: optax.ScalarOrSchedule
) -> optax.GradientTransformation:
    """Proximal (implicit) decay ``p+ = (p + d)/(1 + lr*wd)`` on lr-scaled updates ``d``."""
    return _scheduled_decay(
        "proximal_weight_decay",
        learning_rate,
        weight_decay,
        lambda d, p, lw: (d - lw * p) / (1 + lw),
    )


def decay_after_step(
    learning_rate: optax.ScalarOrSchedule, weight_decay: optax.ScalarOrSchedule
) -> optax.GradientTransformation:
    """Decoupled decay applied after the step, ``p+ = (p + d)(1 - lr*wd)``."""
    return _scheduled_decay(
        "decay_after_step",
        learning_rate,
        weight_decay,
        lambda d, p, lw: d - lw * (p + d),
    )
