"""Every optimizer of the library, as the shared invariant suite sees it.

Adding a method = adding its entries here (plus golden cases, a benchmark row, a notebook
cell). ``static`` lists the structural arguments that ``optax.inject_hyperparams`` must be told
about (``static_args``) for the entry's arguments: they shape the computation and cannot be
traced (``mu_dtype``, structural for every optimizer, is not listed: the entries leave it None).
``mu_field`` names the state field holding the first moment (the one ``mu_dtype`` sets).
``converge`` is the peak learning rate of a cosine schedule that reaches the minimum of the
quadratic and Rosenbrock problems in ``test_invariants.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jaxopt_papers as jop


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    alias: str
    kwargs: dict[str, Any]
    static: tuple[str, ...] = ()
    converge: dict[str, Any] = dataclasses.field(default_factory=dict)
    mu_field: str = "mu"

    def make(self, **overrides):
        return getattr(jop, self.alias)(**{**self.kwargs, **overrides})

    def make_injected(self, static_args=None, **overrides):
        import optax

        static = self.static if static_args is None else static_args
        fn = optax.inject_hyperparams(getattr(jop, self.alias), static_args=static)
        return fn(**{**self.kwargs, **overrides})


SPAM_SMALL = dict(warmup_steps=4, reset_interval=12, grad_accu_steps=3, threshold=50.0)
SPAM_STATIC = ("warmup_steps", "reset_interval", "grad_accu_steps")

ENTRIES = [
    Entry(
        "adamp",
        "adamp",
        dict(learning_rate=1e-2, weight_decay=0.1),
        ("channel_axis",),
        dict(learning_rate=0.1, weight_decay=0.0),
    ),
    Entry(
        "adamp_nesterov",
        "adamp",
        dict(learning_rate=1e-2, nesterov=True, channel_axis=0),
        ("channel_axis",),
        dict(learning_rate=0.1),
    ),
    Entry(
        "sgdp",
        "sgdp",
        dict(learning_rate=1e-2, momentum=0.9, weight_decay=0.1),
        ("channel_axis",),
        dict(learning_rate=2e-3, weight_decay=0.0),
        mu_field="momentum",
    ),
    Entry(
        "sgdp_nesterov",
        "sgdp",
        dict(learning_rate=1e-2, momentum=0.9, nesterov=True, dampening=0.0),
        ("channel_axis",),
        dict(learning_rate=2e-3),
        mu_field="momentum",
    ),
    Entry(
        "adan",
        "adan",
        dict(learning_rate=1e-2, weight_decay=0.02),
        (),
        dict(learning_rate=0.1, weight_decay=0.0),
    ),
    Entry(
        "adan_no_prox_clip",
        "adan",
        dict(learning_rate=1e-2, weight_decay=0.02, no_prox=True, max_grad_norm=1.0),
        (),
        dict(learning_rate=0.1, weight_decay=0.0, max_grad_norm=0.0),
    ),
    Entry(
        "lion",
        "lion",
        dict(learning_rate=1e-3, weight_decay=0.1),
        (),
        dict(learning_rate=0.03, weight_decay=0.0),
    ),
    Entry(
        "lion_k_l2", "lion_k", dict(learning_rate=1e-3, kernel="l2"), (), dict(learning_rate=0.05)
    ),
    Entry(
        "lion_k_tanh",
        "lion_k",
        dict(learning_rate=1e-3, kernel="tanh", kernel_scale=3.0),
        (),
        dict(learning_rate=0.03),
    ),
    Entry(
        "lion_k_huber",
        "lion_k",
        dict(learning_rate=1e-3, kernel="huber", kernel_scale=0.5),
        (),
        dict(learning_rate=0.03),
    ),
    Entry(
        "lion_k_relativistic",
        "lion_k",
        dict(learning_rate=1e-3, kernel="relativistic", kernel_scale=0.5),
        (),
        dict(learning_rate=0.03),
    ),
    Entry(
        "exadam",
        "exadam",
        dict(learning_rate=1e-3, weight_decay=0.01),
        (),
        dict(learning_rate=0.02, weight_decay=0.0),
    ),
    Entry(
        "exadam_dynamic_lr",
        "exadam",
        dict(learning_rate=1e-3, dynamic_lr=True),
        (),
        dict(learning_rate=0.01),
    ),
    Entry(
        "spam",
        "spam",
        dict(learning_rate=1e-2, weight_decay=0.01, **SPAM_SMALL),
        SPAM_STATIC,
        dict(learning_rate=0.1, weight_decay=0.0, reset_interval=100_000),
    ),
    Entry(
        "stable_spam_pytorch_optimizer",
        "stable_spam",
        dict(learning_rate=1e-2, update_proj_gap=12, variant="pytorch_optimizer"),
        ("update_proj_gap",),  # t_max is None here
        dict(learning_rate=0.1, update_proj_gap=100_000),
    ),
    Entry(
        "stable_spam",
        "stable_spam",
        dict(learning_rate=1e-2, weight_decay=0.01, update_proj_gap=12, t_max=50),
        ("update_proj_gap", "t_max"),
        dict(learning_rate=0.1, weight_decay=0.0, update_proj_gap=100_000, t_max=None),
    ),
    Entry(
        "diffgrad",
        "diffgrad",
        dict(learning_rate=1e-2, weight_decay=0.01),
        (),
        dict(learning_rate=0.1, weight_decay=0.0),
    ),
    Entry(
        "sgd_hd",
        "sgd_hd",
        dict(learning_rate=1e-2, hypergrad_lr=1e-4, momentum=0.9, weight_decay=0.01),
        (),
        dict(learning_rate=2e-3, hypergrad_lr=1e-8, weight_decay=0.0),
        mu_field="momentum",
    ),
    Entry(
        "sgd_hd_nesterov",
        "sgd_hd",
        dict(learning_rate=1e-2, hypergrad_lr=1e-4, momentum=0.9, nesterov=True),
        (),
        dict(learning_rate=2e-3, hypergrad_lr=1e-8),
        mu_field="momentum",
    ),
    Entry(
        "adam_hd",
        "adam_hd",
        dict(learning_rate=1e-2, hypergrad_lr=1e-5, weight_decay=0.01),
        (),
        dict(learning_rate=0.1, hypergrad_lr=1e-6, weight_decay=0.0),
    ),
    Entry(
        "adam_hd_paper",
        "adam_hd",
        dict(learning_rate=1e-2, hypergrad_lr=1e-5, variant="paper"),
        (),
        dict(learning_rate=0.1, hypergrad_lr=1e-6),
    ),
    Entry(
        "mfac",
        "mfac",
        dict(learning_rate=1e-2, num_grads=4, damping=1.0, momentum=0.5, weight_decay=0.01),
        ("num_grads",),
        dict(learning_rate=0.05, damping=1.0, weight_decay=0.0),
        mu_field="ema",
    ),
    Entry(
        "mkor",
        "mkor",
        dict(learning_rate=1e-2, momentum=0.9, weight_decay=0.01, inv_freq=2),
        (),
        dict(learning_rate=2e-3, weight_decay=0.0),
        mu_field="trace",
    ),
    Entry(
        "adagrad_norm",
        "adagrad_norm",
        dict(learning_rate=0.1, momentum=0.5, weight_decay=0.01),
        (),
        dict(learning_rate=3.0, momentum=0.9, weight_decay=0.0),
    ),
]

IDS = [e.name for e in ENTRIES]
