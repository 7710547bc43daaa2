"""Second-order optimisers in an optax chain: statistics capture, MKOR and M-FAC.

Kronecker-factored and Fisher-based methods need more than the gradient. Here they stay optax
transformations: what they need arrives through ``update``'s extra arguments, captured in the
same forward and backward pass as the gradients. One module per concept:

* :mod:`~jaxopt_papers.curvature.stats` — :func:`value_grad_and_stats`: the loss, the gradients
  and the per-layer rank-1 statistics (:class:`KroneckerStats`) of flax linen ``Dense``/``Conv``,
  flax nnx ``Linear``/``Conv`` and equinox ``Linear``/``Conv2d`` layers, in one pass;
  :func:`register_layer` for other layer types.
* :mod:`~jaxopt_papers.curvature.mkor` — **MKOR** (Mozaffari et al., NeurIPS 2023): inverse
  Kronecker factors kept by rank-1 Sherman–Morrison updates, then SGD or Adam:
  :func:`scale_by_mkor`, :func:`mkor` (``update(..., layer_stats=stats)``) and **MKOR-H**,
  :func:`mkor_h`, which switches to the first-order optimiser when the loss stops falling fast.
* :mod:`~jaxopt_papers.curvature.mfac` — **M-FAC** (Frantar, Kurtic, Alistarh, NeurIPS 2021):
  the inverse of the empirical Fisher of the last ``m`` gradients applied to the gradient:
  :func:`scale_by_mfac`, :func:`mfac` (gradients only).

Example:
  >>> import jax, jax.numpy as jnp, optax, equinox as eqx
  >>> from jaxopt_papers import curvature
  >>> model = eqx.nn.Linear(3, 1, key=jax.random.key(0))
  >>> x = jax.random.normal(jax.random.key(1), (64, 3))
  >>> y = x @ jnp.array([1.0, -2.0, 0.5])
  >>> loss = lambda m: jnp.mean((jax.vmap(m)(x)[:, 0] - y) ** 2)
  >>> tx = curvature.mkor(0.1, inv_freq=5)
  >>> state = tx.init(eqx.filter(model, eqx.is_array))
  >>> @eqx.filter_jit
  ... def step(model, state):
  ...     value, grads, stats = curvature.value_grad_and_stats(loss, model)
  ...     updates, state = tx.update(grads, state, model, layer_stats=stats)
  ...     return eqx.apply_updates(model, updates), state, value
  >>> for _ in range(100):
  ...     model, state, value = step(model, state)
  >>> print(float(value) < 1e-3)
  True
"""

from jaxopt_papers.curvature.mfac import MFACState, mfac, scale_by_mfac
from jaxopt_papers.curvature.mkor import MKORLayerState, MKORState, mkor, mkor_h, scale_by_mkor
from jaxopt_papers.curvature.stats import KroneckerStats, register_layer, value_grad_and_stats

__all__ = [
    "KroneckerStats",
    "MFACState",
    "MKORLayerState",
    "MKORState",
    "mfac",
    "mkor",
    "mkor_h",
    "register_layer",
    "scale_by_mfac",
    "scale_by_mkor",
    "value_grad_and_stats",
]
