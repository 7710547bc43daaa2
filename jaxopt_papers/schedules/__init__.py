"""Learning-rate schedules, hypergradient step sizes and batch-size rules.

One module per paper:

* :mod:`.refinement` — **refinement** (Defazio, Cutkosky, Mehta, Mishchenko, arXiv:2310.07831):
  :func:`linear_decay` (the paper's baseline), :func:`refined_schedule` (a schedule from the
  gradient norms of a previous run) and :func:`record_grad_norms` (records them).
* :mod:`.hypergradient_descent` — **hypergradient descent** (Baydin et al., ICLR 2018): the
  learning rate learned online, :func:`sgd_hd`, :func:`adam_hd` (their ``scale_by_*`` forms)
  and :func:`scale_by_hypergradient_lr` (in front of any direction). The learned learning rate
  is the ``learning_rate`` field of the state.
* :mod:`.batch_scaling` — **learning rates as a function of batch size** (Granziol, Zohren,
  Roberts, JMLR 2022): :func:`scale_lr_for_batch` (linear for SGD, square root for Adam).

Schedules are optax schedules (functions of the step count) and the optimizers are optax
transformations: they compose with ``optax.chain``, ``optax.inject_hyperparams`` and the rest.

Example:
  >>> import jax.numpy as jnp, numpy as np, optax
  >>> from jaxopt_papers import schedules
  >>> # a first run records its gradient norms ...
  >>> tx = optax.chain(schedules.record_grad_norms(num_steps=100), optax.sgd(0.1))
  >>> params = jnp.zeros(3)
  >>> state = tx.init(params)
  >>> for t in range(100):
  ...     g = params - 1.0 + 0.5 * jnp.sin(t)  # a noisy gradient
  ...     updates, state = tx.update(g, state, params)
  ...     params = optax.apply_updates(params, updates)
  >>> # ... the next run uses the refined schedule: large early norms give a warm-up
  >>> sched = schedules.refined_schedule(state[0].l2, peak_value=0.1)
  >>> [round(float(sched(t)), 3) for t in (0, 10, 50, 100)]
  [0.008, 0.1, 0.022, 0.0]
"""

from jaxopt_papers.schedules.batch_scaling import scale_lr_for_batch
from jaxopt_papers.schedules.hypergradient_descent import (
    AdamHDState,
    HypergradientLRState,
    SGDHDState,
    adam_hd,
    scale_by_adam_hd,
    scale_by_hypergradient_lr,
    scale_by_sgd_hd,
    sgd_hd,
)
from jaxopt_papers.schedules.refinement import (
    RecordGradNormsState,
    linear_decay,
    record_grad_norms,
    refined_schedule,
)

__all__ = [
    "AdamHDState",
    "HypergradientLRState",
    "RecordGradNormsState",
    "SGDHDState",
    "adam_hd",
    "linear_decay",
    "record_grad_norms",
    "refined_schedule",
    "scale_by_adam_hd",
    "scale_by_hypergradient_lr",
    "scale_by_sgd_hd",
    "scale_lr_for_batch",
    "sgd_hd",
]
