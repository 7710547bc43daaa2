"""8-bit optimizer states by block-wise dynamic quantisation (Dettmers et al., ICLR 2022).

* :mod:`.blockwise`: the dynamic code (:func:`dynamic_map`) and exact block-wise
  quantisation (:func:`quantize_blockwise`, :func:`dequantize_blockwise`).
* :mod:`.optimizers`: :func:`adam8bit`, :func:`adamw8bit`, :func:`lion8bit`, :func:`sgd8bit`
  (and ``scale_by_adam8bit``, ``scale_by_lion8bit``), bitsandbytes' 8-bit optimizers.
* :mod:`.wrapper`: :func:`quantize_state` keeps any transformation's moments in 8 bits.
* :func:`native_status`: whether the Adam family's step runs through the compiled XLA:CPU
  kernel (built on first use with the system C++ compiler) or the XLA path.
* :mod:`.embedding`: :class:`StableEmbedding` (flax linen; imported on first use, so flax is
  needed only for it).

Example:
  >>> import jax.numpy as jnp
  >>> import jaxopt_papers as jop
  >>> tx = jop.adam8bit(1e-3)
  >>> state = tx.init({"w": jnp.zeros((512, 512))})
  >>> state.mu["w"].nbytes + state.mu_absmax["w"].nbytes  # 1 byte + 4/256 per entry
  266240
"""

from jaxopt_papers.quantized._native import native_status
from jaxopt_papers.quantized.blockwise import dequantize_blockwise, dynamic_map, quantize_blockwise
from jaxopt_papers.quantized.optimizers import (
    Adam8bitState,
    Lion8bitState,
    SGD8bitState,
    adam8bit,
    adamw8bit,
    lion8bit,
    scale_by_adam8bit,
    scale_by_lion8bit,
    sgd8bit,
)
from jaxopt_papers.quantized.wrapper import QuantizedState, quantize_state

__all__ = [
    "Adam8bitState",
    "Lion8bitState",
    "QuantizedState",
    "SGD8bitState",
    "StableEmbedding",
    "adam8bit",
    "adamw8bit",
    "dequantize_blockwise",
    "dynamic_map",
    "lion8bit",
    "native_status",
    "quantize_blockwise",
    "quantize_state",
    "scale_by_adam8bit",
    "scale_by_lion8bit",
    "sgd8bit",
]


def __getattr__(name: str):
    if name == "StableEmbedding":
        from jaxopt_papers.quantized.embedding import StableEmbedding

        return StableEmbedding
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
