r"""Learning rates as a function of the batch size.

Paper: Diego Granziol, Stefan Zohren, Stephen Roberts, "Learning Rates as a Function of Batch
Size: A Random Matrix Theory Approach to Neural Network Training", JMLR 23 (2022),
arXiv:2006.09092. No reference code accompanies the rule; this follows the paper.

From a spiked random-matrix model of the mini-batch Hessian, the largest stable learning rate
grows with the batch size ``B`` (below the curvature-dominated regime, where it saturates)::

    η(B) = η₀ B / B₀            SGD (linear scaling)
    η(B) = η₀ sqrt(B / B₀)      Adam and other adaptive methods (square-root scaling)

with ``η₀`` tuned at the batch size ``B₀``.

Defaults: ``rule="linear"`` (the SGD rule; pass ``"sqrt"`` for adaptive methods).

Differences from the reference code: none (there is no reference code; the rules are the
paper's).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["scale_lr_for_batch"]

_RULES = ("linear", "sqrt")


def scale_lr_for_batch(
    learning_rate: optax.ScalarOrSchedule,
    base_batch_size: Any,
    batch_size: Any,
    rule: str = "linear",
) -> Any:
    """Rescale a learning rate tuned at one batch size to another (Granziol et al., 2022).

    Paper: Granziol, Zohren, Roberts, "Learning Rates as a Function of Batch Size: A Random
    Matrix Theory Approach to Neural Network Training", JMLR 2022, arXiv:2006.09092::

        rule="linear":  η = learning_rate · batch_size / base_batch_size          (SGD)
        rule="sqrt":    η = learning_rate · sqrt(batch_size / base_batch_size)    (Adam)

    Both hold below the curvature-dominated regime, where the stable learning rate stops
    growing. Batch sizes may be traced (e.g. a batch size that a test grows during training);
    re-scale whenever the batch size changes.

    Args:
      learning_rate: the learning rate tuned at ``base_batch_size``: a non-negative number,
        array or an optax schedule.
      base_batch_size: the batch size ``B₀`` at which ``learning_rate`` was tuned (> 0).
      batch_size: the new batch size ``B`` (> 0).
      rule: ``"linear"`` (SGD) or ``"sqrt"`` (adaptive methods such as Adam).

    Returns:
      A float when every input is a Python number, a JAX array when one is an array or traced,
      and a schedule when ``learning_rate`` is one.

    Example:
      >>> from jaxopt_papers import schedules
      >>> schedules.scale_lr_for_batch(0.1, 128, 512)
      0.4
      >>> schedules.scale_lr_for_batch(1e-3, 128, 512, rule="sqrt")
      0.002
    """
    owner = "scale_lr_for_batch"
    V.check_static_choice(owner, "rule", rule, _RULES)
    V.check_learning_rate(owner, learning_rate)
    V.check_real(owner, "base_batch_size", base_batch_size, low=0.0, low_open=True)
    V.check_real(owner, "batch_size", batch_size, low=0.0, low_open=True)
    numbers = (base_batch_size, batch_size) + (() if callable(learning_rate) else (learning_rate,))
    if all(isinstance(x, (int, float)) for x in numbers):
        ratio = batch_size / base_batch_size
        factor = ratio if rule == "linear" else math.sqrt(ratio)
    else:
        ratio = jnp.asarray(batch_size) / jnp.asarray(base_batch_size)
        factor = ratio if rule == "linear" else jnp.sqrt(ratio)
    if callable(learning_rate) and not isinstance(learning_rate, jax.Array):
        return lambda count: learning_rate(count) * factor
    return learning_rate * factor
