"""Zeroth-order gradient estimates from function values, to feed any optax chain.

Each estimator is an optax transformation that ignores the incoming updates and estimates the
gradient from the loss, passed as optax's ``value_fn`` extra argument
(``tx.update(None, state, params, value_fn=loss_fn)``); any optax optimizer can follow it in an
``optax.chain``. One module per paper:

* :mod:`~jaxopt_papers.zeroth_order.spsa` — **MeZO** (Malladi et al., NeurIPS 2023): the
  SPSA estimate from two losses with regenerated Gaussian directions: :func:`scale_by_spsa`,
  :func:`mezo` (MeZO-SGD with the reference trainer's weight-decay rule), :func:`spsa_gradient`
  (a plain function), :func:`mezo_decay_mask`, and :func:`mezo_step`, one MeZO-SGD step
  with the reference trainer's in-place arithmetic, at the memory of the forward pass.
* :mod:`~jaxopt_papers.zeroth_order.sparse_mezo` — **Sparse MeZO** (Liu et al., 2024): MeZO on
  the small-magnitude weights of each layer, the mask recomputed on the fly:
  :func:`scale_by_sparse_spsa`, :func:`sparse_mezo`, :func:`sparse_mezo_mask`.
* :mod:`~jaxopt_papers.zeroth_order.rank_sgd` — **ZO-RankSGD** (Tang, Rybin, Chang, ICLR 2024):
  descent from a ranking oracle that only says which perturbed points are best:
  :func:`rank_sgd_direction`, :func:`scale_by_rank_sgd`, :func:`zo_rank_sgd`.
* :mod:`~jaxopt_papers.zeroth_order.deepzero` — **DeepZero** (Chen et al., ICLR 2024):
  coordinate-wise forward differences on a sparse random set of coordinates with ZO-GraSP
  layer-wise ratios: :func:`coordinate_gradient`, :func:`scale_by_coordinate_estimate`,
  :func:`zo_grasp_ratios`, :func:`deepzero`.

Example:
  >>> import jax, jax.numpy as jnp, optax
  >>> from jaxopt_papers import zeroth_order as zo
  >>> loss = lambda p: jnp.sum((p["w"] - 1.0) ** 2)
  >>> tx = optax.chain(zo.scale_by_spsa(num_directions=8), optax.adam(0.05))
  >>> params = {"w": jnp.zeros(3)}
  >>> state = tx.init(params)
  >>> step = jax.jit(lambda p, s: tx.update(None, s, p, value_fn=loss))
  >>> for _ in range(200):
  ...     updates, state = step(params, state)
  ...     params = optax.apply_updates(params, updates)
  >>> print(jnp.round(params["w"], 1))
  [1. 1. 1.]
"""

from jaxopt_papers.zeroth_order.deepzero import (
    CoordinateEstimateState,
    coordinate_gradient,
    deepzero,
    scale_by_coordinate_estimate,
    zo_grasp_ratios,
)
from jaxopt_papers.zeroth_order.rank_sgd import (
    RankSGDState,
    rank_sgd_direction,
    scale_by_rank_sgd,
    zo_rank_sgd,
)
from jaxopt_papers.zeroth_order.sparse_mezo import (
    scale_by_sparse_spsa,
    sparse_mezo,
    sparse_mezo_mask,
)
from jaxopt_papers.zeroth_order.spsa import (
    SPSAState,
    mezo,
    mezo_decay_mask,
    mezo_step,
    scale_by_spsa,
    spsa_gradient,
)

__all__ = [
    "CoordinateEstimateState",
    "RankSGDState",
    "SPSAState",
    "coordinate_gradient",
    "deepzero",
    "mezo",
    "mezo_decay_mask",
    "mezo_step",
    "rank_sgd_direction",
    "scale_by_coordinate_estimate",
    "scale_by_rank_sgd",
    "scale_by_sparse_spsa",
    "scale_by_spsa",
    "sparse_mezo",
    "sparse_mezo_mask",
    "spsa_gradient",
    "zo_grasp_ratios",
    "zo_rank_sgd",
]
