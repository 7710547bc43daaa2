r"""``StableEmbedding``: the embedding layer the 8-bit optimizers paper trains with (flax linen).

Paper: Tim Dettmers, Mike Lewis, Sam Shleifer, Luke Zettlemoyer, "8-bit Optimizers via
Block-wise Quantization", ICLR 2022, arXiv:2110.02861, section 2.3. Reference code:
bitsandbytes ``nn.StableEmbedding`` (commit 95f9af30).

An embedding table initialised with Xavier-uniform (Glorot) instead of ``N(0, 1)``, followed by
a layer norm of the looked-up vectors; its table keeps 32-bit optimizer state in every 8-bit
optimizer of this package (the table parameter is named ``stable_embedding``, which the 8-bit
optimizers recognise, as bitsandbytes registers an ``optim_bits=32`` override).

Differences from the reference code: the table is a flax parameter named
``"stable_embedding"`` (bitsandbytes' ``weight``), and the layer norm has flax's defaults
(``epsilon=1e-6``; torch's is ``1e-5``: pass ``epsilon`` to match). ``padding_idx`` and
``max_norm`` are not offered.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxopt_papers.quantized._moments import STABLE_EMBEDDING_PARAM

__all__ = ["StableEmbedding"]


class StableEmbedding(nn.Module):
    """Embedding with Xavier-uniform init and layer norm; keeps 32-bit optimizer state.

    Args:
      num_embeddings: vocabulary size.
      features: embedding width.
      epsilon: the layer norm's epsilon.
      dtype: computation dtype (None: the table's).
      param_dtype: dtype of the table and the layer-norm parameters.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> layer = jop.StableEmbedding(num_embeddings=100, features=16)
      >>> variables = layer.init(jax.random.key(0), jnp.array([1, 2, 3]))
      >>> y = layer.apply(variables, jnp.array([1, 2, 3]))
      >>> y.shape, abs(round(float(jnp.mean(y[0])), 4))  # layer norm: zero mean
      ((3, 16), 0.0)
    """

    num_embeddings: int
    features: int
    epsilon: float = 1e-6
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ids: jax.Array) -> jax.Array:
        table = self.param(
            STABLE_EMBEDDING_PARAM,
            nn.initializers.xavier_uniform(),
            (self.num_embeddings, self.features),
            self.param_dtype,
        )
        x = jnp.take(table, ids, axis=0)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        return nn.LayerNorm(epsilon=self.epsilon, dtype=self.dtype, param_dtype=self.param_dtype)(x)
