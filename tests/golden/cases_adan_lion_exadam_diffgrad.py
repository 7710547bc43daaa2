"""Golden cases for Adan, Lion, EXAdam and diffGrad.

Oracles:
- Adan: the official ``adan.py`` (sail-sg/Adan @2c65bea, single-tensor path), from a clone given by
  ``ADAN_REPO``. (``pytorch_optimizer.Adan`` agrees to 1e-16 except with ``max_grad_norm``, whose
  global norm it computes in float32.)
- Lion: ``pytorch_optimizer.Lion`` (the official google/automl update with decoupled decay).
- diffGrad: ``torch_optimizer.DiffGrad`` (identical to the official ``diffGrad_v2.py``).
- EXAdam: the official ``exadam.py`` itself, loaded from a clone of AhmedMostafa16/EXAdam given by
  the ``EXADAM_REPO`` environment variable (HEAD 989d7b6 for the default, the first release
  9ff8463 for ``dynamic_lr=True``).

Regenerate with::

    ADAN_REPO=/path/to/Adan EXADAM_REPO=/path/to/EXAdam \
        python tests/golden/make_golden.py adan lion exadam diffgrad
"""

from __future__ import annotations

import numpy as np
from make_golden import Case, load_official


def _pytorch_optimizer(name, **kw):
    def build(params):
        import pytorch_optimizer

        return getattr(pytorch_optimizer, name)(params, **kw)

    return build


def _torch_optimizer(name, **kw):
    def build(params):
        import torch_optimizer

        return getattr(torch_optimizer, name)(params, **kw)

    return build


def _official_exadam(commit, **kw):
    def build(params):
        module = load_official("EXADAM_REPO", commit, "exadam.py", inject={"np": np})
        return module.EXAdam(params, **kw)

    return build


def _official_adan(**kw):
    def build(params):
        module = load_official("ADAN_REPO", "2c65bea", "adan.py")
        return module.Adan(params, foreach=False, fused=False, **kw)

    return build


CASES = [
    # --- Adan -------------------------------------------------------------------------------
    Case(
        "adan_default",
        "adan",
        {"learning_rate": 1e-2},
        _official_adan(lr=1e-2),
        "official adan.py @2c65bea",
    ),
    Case(
        "adan_prox_wd",
        "adan",
        {"learning_rate": 2e-2, "weight_decay": 0.5},
        _official_adan(lr=2e-2, weight_decay=0.5),
        "official adan.py @2c65bea (prox)",
    ),
    Case(
        "adan_no_prox_wd",
        "adan",
        {"learning_rate": 2e-2, "weight_decay": 0.5, "no_prox": True},
        _official_adan(lr=2e-2, weight_decay=0.5, no_prox=True),
        "official adan.py @2c65bea (no_prox)",
    ),
    Case(
        "adan_clip_betas",
        "adan",
        {
            "learning_rate": 1e-2,
            "b1": 0.9,
            "b2": 0.8,
            "b3": 0.95,
            "eps": 1e-6,
            "max_grad_norm": 0.5,
            "weight_decay": 0.1,
        },
        _official_adan(
            lr=1e-2, betas=(0.9, 0.8, 0.95), eps=1e-6, max_grad_norm=0.5, weight_decay=0.1
        ),
        "official adan.py @2c65bea (max_grad_norm)",
        spikes={7: 30.0, 15: 50.0},
    ),
    # --- Lion -------------------------------------------------------------------------------
    Case(
        "lion_default",
        "lion",
        {"learning_rate": 1e-2},
        _pytorch_optimizer("Lion", lr=1e-2),
        "pytorch_optimizer.Lion",
    ),
    Case(
        "lion_wd",
        "lion",
        {"learning_rate": 3e-2, "b1": 0.95, "b2": 0.98, "weight_decay": 2.0},
        _pytorch_optimizer("Lion", lr=3e-2, betas=(0.95, 0.98), weight_decay=2.0),
        "pytorch_optimizer.Lion(weight_decouple=True)",
        steps=60,
    ),
    Case(
        "lion_k_sign_wd",
        "lion_k",
        {"learning_rate": 3e-2, "kernel": "sign", "weight_decay": 1.0},
        _pytorch_optimizer("Lion", lr=3e-2, weight_decay=1.0),
        "pytorch_optimizer.Lion(weight_decouple=True)",
    ),
    # --- EXAdam -----------------------------------------------------------------------------
    Case(
        "exadam_default",
        "exadam",
        {"learning_rate": 1e-3},
        _official_exadam("989d7b6", lr=1e-3),
        "official exadam.py @989d7b6",
    ),
    Case(
        "exadam_wd",
        "exadam",
        {"learning_rate": 5e-3, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.3},
        _official_exadam("989d7b6", lr=5e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3),
        "official exadam.py @989d7b6",
    ),
    Case(
        "exadam_dynamic_lr",
        "exadam",
        {"learning_rate": 2e-3, "weight_decay": 0.1, "dynamic_lr": True},
        _official_exadam("9ff8463", lr=2e-3, weight_decay=0.1),
        "official exadam.py @9ff8463 (paper step size)",
    ),
    # --- diffGrad ---------------------------------------------------------------------------
    Case(
        "diffgrad_default",
        "diffgrad",
        {"learning_rate": 1e-2},
        _torch_optimizer("DiffGrad", lr=1e-2),
        "torch_optimizer.DiffGrad",
    ),
    Case(
        "diffgrad_l2",
        "diffgrad",
        {"learning_rate": 2e-2, "b1": 0.85, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.2},
        _torch_optimizer("DiffGrad", lr=2e-2, betas=(0.85, 0.99), eps=1e-6, weight_decay=0.2),
        "torch_optimizer.DiffGrad",
        spikes={5: 20.0},
    ),
]
