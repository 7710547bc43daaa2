r"""Lion: EvoLved Sign Momentum.

Paper: Xiangning Chen, Chen Liang, Da Huang, Esteban Real, Kaiyuan Wang, Yao Liu, Hieu Pham,
Xuanyi Dong, Thang Luong, Cho-Jui Hsieh, Yifeng Lu, Quoc V. Le, "Symbolic Discovery of
Optimization Algorithms", NeurIPS 2023, arXiv:2302.06675. Reference code: google/automl
``lion/lion_pytorch.py`` (commit 87461ee).

Update (decoupled weight decay ``λ`` applied to the pre-step parameters)::

    x <- x (1 - lr λ) - lr sign(b1 m + (1 - b1) g)
    m <- b2 m + (1 - b2) g

Defaults are the official code's: ``learning_rate=1e-4``, ``b1=0.9``, ``b2=0.99``,
``weight_decay=0``. The paper suggests a learning rate 3-10x smaller than AdamW's and a weight
decay 3-10x larger. With ``weight_decay=λ > 0``, Lion solves ``min f(x)`` s.t. ``‖x‖∞ ≤ 1/λ``
(see :mod:`jaxopt_papers.optimizers.lion_k`).

Differences from the reference code: none (``sign(0) = 0`` as in torch). Unlike
``optax.lion``, the default weight decay is the official 0, not 1e-3.
"""

from __future__ import annotations

from typing import Any

import optax

from jaxopt_papers.optimizers.lion_k import LionKState, lion_k, scale_by_lion_k

__all__ = ["LionState", "lion", "scale_by_lion"]

LionState = LionKState
"""State of :func:`scale_by_lion`: the step count and the momentum ``m`` (a ``LionKState``)."""


def scale_by_lion(
    b1: float = 0.9, b2: float = 0.99, *, mu_dtype: Any = None
) -> optax.GradientTransformationExtraArgs:
    """Lion's direction ``sign(b1 m + (1 - b1) g)``, before the learning rate and weight decay.

    Paper: Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675;
    reference code google/automl ``lion/lion_pytorch.py``::

        direction = sign(b1 m + (1 - b1) g)
        m <- b2 m + (1 - b2) g

    Defaults are the official code's: ``b1=0.9``, ``b2=0.99``. This is
    :func:`scale_by_lion_k` with ``kernel="sign"``.

    Args:
      b1: interpolation factor of the update direction, in ``[0, 1)``.
      b2: decay rate of the momentum, in ``[0, 1)``.
      mu_dtype: dtype of the momentum; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`LionState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_lion()
      >>> u, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
      >>> u.tolist()
      [1.0, -1.0]
    """
    return scale_by_lion_k(b1, b2, kernel="sign", mu_dtype=mu_dtype)


def lion(
    learning_rate: optax.ScalarOrSchedule = 1e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Lion with decoupled weight decay, as the official code.

    Paper: Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023,
    arXiv:2302.06675; reference code google/automl ``lion/lion_pytorch.py``. With ``λ`` the
    decoupled weight decay, applied to the pre-step parameters::

        x <- x (1 - lr λ) - lr sign(b1 m + (1 - b1) g)
        m <- b2 m + (1 - b2) g

    Defaults are the official code's: ``learning_rate=1e-4``, ``b1=0.9``, ``b2=0.99``,
    ``weight_decay=0`` (``optax.lion`` uses 1e-3). The paper suggests a learning rate 3-10x
    smaller than AdamW's and a weight decay 3-10x larger; with ``λ > 0`` Lion solves
    ``min f(x)`` subject to ``‖x‖∞ ≤ 1/λ`` (see :func:`lion_k`). Differences from the reference
    code: none (``sign(0) = 0`` as in torch).

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: interpolation factor of the update direction, in ``[0, 1)``.
      b2: decay rate of the momentum, in ``[0, 1)``.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule of the step count);
        unlike ``optax.lion``, 0 by default, as the official code.
      mu_dtype: dtype of the momentum; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with a
      :class:`LionState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2))}
      >>> tx = jop.lion(1e-4, weight_decay=0.1)
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, tx.init(params), params)
      >>> params = optax.apply_updates(params, updates)
      >>> print(round(float(params["w"][0, 0]), 6))  # 1 - 1e-4 (1 + 0.1)
      0.99989
    """
    return lion_k(learning_rate, b1, b2, weight_decay, kernel="sign", mu_dtype=mu_dtype, mask=mask)
