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

import optax

from jaxopt_papers.optimizers.lion_k import LionKState, lion_k, scale_by_lion_k

__all__ = ["LionState", "lion", "scale_by_lion"]

LionState = LionKState
"""State of :func:`scale_by_lion`: step count and the momentum ``m``."""


def scale_by_lion(
    b1: float = 0.9, b2: float = 0.99, mu_dtype=None
) -> optax.GradientTransformationExtraArgs:
    """Lion direction ``sign(b1 m + (1 - b1) g)``, before learning rate and weight decay."""
    return scale_by_lion_k("sign", 1.0, b1, b2, mu_dtype)


def lion(
    learning_rate: optax.ScalarOrSchedule = 1e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mu_dtype=None,
    mask=None,
) -> optax.GradientTransformationExtraArgs:
    """Lion with decoupled weight decay, as the official code (see module docstring)."""
    return lion_k(learning_rate, "sign", 1.0, b1, b2, weight_decay, mu_dtype, mask)
