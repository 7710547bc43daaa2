"""Adaptive batch sizes: AdAdaGrad's batch-size tests, AdaGrad-Norm and a growing-batch loop.

* :mod:`.adadagrad` — **AdAdaGrad** (Lau, Liu, Kolar, arXiv:2402.11215): the batch-size tests
  on per-example gradients :func:`norm_test`, :func:`inner_product_test`,
  :func:`orthogonality_test`, :func:`augmented_inner_product_test` (each returns the next batch
  size, never smaller) and :func:`grow_batch_training`, a training loop that grows the batch
  when a test fails and rescales the learning rate
  (:func:`jaxopt_papers.schedules.scale_lr_for_batch`).
* :mod:`.adagrad_norm` — **AdaGrad-Norm** (Ward, Wu, Bottou, arXiv:1806.01811), the base
  optimizer of AdAdaGradNorm: :func:`adagrad_norm`, :func:`scale_by_adagrad_norm` (row-wise as
  the reference code by default, or the paper's single global step size).

The tests are jit-compatible functions of a pytree of per-example gradients (leading example
axis, e.g. from ``jax.vmap(jax.grad(loss), (None, 0))``) and return an int32 array.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxopt_papers import batch_size
  >>> x = jax.random.normal(jax.random.key(0), (32, 4))
  >>> y = x @ jnp.ones(4) + 3.0 * jax.random.normal(jax.random.key(1), (32,))
  >>> loss = lambda w, xi, yi: (xi @ w - yi) ** 2
  >>> per_example = jax.vmap(jax.grad(loss), (None, 0, 0))(jnp.zeros(4), x, y)
  >>> b_next = batch_size.norm_test(per_example, 32, eta=0.5)
  >>> b_next.dtype, bool(b_next >= 32)
  (dtype('int32'), True)
"""

from jaxopt_papers.batch_size.adadagrad import (
    GrowBatchResult,
    augmented_inner_product_test,
    grow_batch_training,
    inner_product_test,
    norm_test,
    orthogonality_test,
)
from jaxopt_papers.batch_size.adagrad_norm import (
    AdaGradNormState,
    adagrad_norm,
    scale_by_adagrad_norm,
)

__all__ = [
    "AdaGradNormState",
    "GrowBatchResult",
    "adagrad_norm",
    "augmented_inner_product_test",
    "grow_batch_training",
    "inner_product_test",
    "norm_test",
    "orthogonality_test",
    "scale_by_adagrad_norm",
]
