"""optax-style gradient transformations from the papers, one module per paper.

Each module offers ``scale_by_<name>`` (the paper's rescaling), the user-facing alias
``<name>(learning_rate, ...)`` built with ``optax.chain`` and the state ``<Name>State``.

Conventions (as in optax):

* Numeric hyperparameters (``b1``, ``b2``, ``eps``, ``weight_decay``, ...) may be passed by
  position; flags and options (``nesterov``, ``no_prox``, ``dynamic_lr``, ``variant``,
  ``kernel``), ``mu_dtype`` and ``mask`` are keyword-only.
* ``mu_dtype`` sets the dtype of the first moment (as in ``optax.adam``); the other moments
  follow the params. Half-precision params are updated with float32 arithmetic and get their
  updates in their own dtype; integer params are rejected.
* Structural arguments (``channel_axis``, ``kernel``, ``mu_dtype``, ``t_max``,
  ``update_proj_gap``, ``warmup_steps``, ``reset_interval``, ``grad_accu_steps``, a callable
  ``mask``) must be listed in ``static_args`` of ``optax.inject_hyperparams``; forgetting one
  raises a ``TypeError`` that says so::

      tx = optax.inject_hyperparams(jop.adamp, static_args=("channel_axis",))(
          learning_rate=1e-3, channel_axis=0
      )

**Non-finite gradients.** One NaN or infinite gradient entry enters the moments and poisons
every later update (optax's optimizers behave the same). Wrap the optimizer in
``optax.apply_if_finite``: a step whose gradients are not all finite is skipped (zero updates,
the optimizer state left unchanged) and training goes on; after ``max_consecutive_errors``
bad steps in a row the updates are applied anyway, so that a persistent problem shows.

Differences from the reference code: each optimizer's module (and its function's docstring)
lists its own; defaults are the reference code's throughout.

Example:
  >>> import jax.numpy as jnp, optax
  >>> import jaxopt_papers as jop
  >>> tx = optax.apply_if_finite(jop.adan(1e-3), max_consecutive_errors=5)
  >>> params = {"w": jnp.ones(3)}
  >>> state = tx.init(params)
  >>> updates, state = tx.update({"w": jnp.array([1.0, jnp.nan, 0.0])}, state, params)
  >>> updates["w"].tolist(), int(state.notfinite_count)
  ([0.0, 0.0, 0.0], 1)
"""

from jaxopt_papers.optimizers.adamp import (
    AdamPState,
    SGDPState,
    adamp,
    scale_by_adamp,
    scale_by_sgdp,
    sgdp,
)
from jaxopt_papers.optimizers.adan import AdanState, adan, scale_by_adan
from jaxopt_papers.optimizers.diffgrad import DiffGradState, diffgrad, scale_by_diffgrad
from jaxopt_papers.optimizers.exadam import EXAdamState, exadam, scale_by_exadam
from jaxopt_papers.optimizers.lion import LionState, lion, scale_by_lion
from jaxopt_papers.optimizers.lion_k import LionKState, lion_k, scale_by_lion_k
from jaxopt_papers.optimizers.spam import SPAMState, scale_by_spam, spam
from jaxopt_papers.optimizers.stable_spam import (
    StableSPAMState,
    scale_by_stable_spam,
    stable_spam,
)

__all__ = [
    "AdamPState",
    "AdanState",
    "DiffGradState",
    "EXAdamState",
    "LionKState",
    "LionState",
    "SGDPState",
    "SPAMState",
    "StableSPAMState",
    "adamp",
    "adan",
    "diffgrad",
    "exadam",
    "lion",
    "lion_k",
    "scale_by_adamp",
    "scale_by_adan",
    "scale_by_diffgrad",
    "scale_by_exadam",
    "scale_by_lion",
    "scale_by_lion_k",
    "scale_by_sgdp",
    "scale_by_spam",
    "scale_by_stable_spam",
    "sgdp",
    "spam",
    "stable_spam",
]
