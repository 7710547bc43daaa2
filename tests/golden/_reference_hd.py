"""Helpers for the hypergradient-descent golden cases (imported by ``cases_hd.py`` only).

The oracles are the official optimizers of gbaydin/hypergradient-descent (commit 020d608),
``hypergrad/sgd_hd.py`` (``SGDHD``) and ``hypergrad/adam_hd.py`` (``AdamHD``), executed from a
checkout named by ``HD_OFFICIAL`` (see ``make_golden.load_official``); nothing of them is copied
here. The official code has one variant: ``AdamHD`` moves the shared learning rate tensor by
tensor. :func:`paper_variant` wraps it into the paper's variant (one hypergradient summed over
all tensors before any tensor steps) without touching its Adam update.
"""

from __future__ import annotations

import math

COMMIT = "020d608"


def official(name: str):
    """The official optimizer class ``"SGDHD"`` or ``"AdamHD"``."""
    from make_golden import load_official

    path = {"SGDHD": "hypergrad/sgd_hd.py", "AdamHD": "hypergrad/adam_hd.py"}[name]
    return getattr(load_official("HD_OFFICIAL", COMMIT, path), name)


def jax_leaf_order(params: list) -> list:
    """The golden problem's tensors ``[w, b, conv]`` in JAX's leaf order (sorted dict keys).

    ``AdamHD`` updates the shared learning rate in parameter order; ours does so in pytree leaf
    order, so the oracle gets the tensors in that order.
    """
    w, b, conv = params
    return [b, conv, w]


def paper_variant(adam_hd_cls):
    """``AdamHD`` whose learning rate takes the hypergradient summed over all tensors first.

    Before the official step, ``h = Σ_tensors <g, m/(sqrt(v) + eps)> sqrt(bc2)/bc1`` (with the
    previous step's moments and bias corrections, the official formula) is added to the
    learning rate times ``hypergrad_lr``; the official step then runs with ``hypergrad_lr = 0``.
    """
    import torch

    class PaperAdamHD(adam_hd_cls):
        def step(self, closure=None):
            saved = []
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                h = torch.zeros(())
                for p in group["params"]:
                    state = self.state[p]
                    if p.grad is None or len(state) == 0:
                        continue  # first step: no previous direction
                    grad = p.grad.data
                    if group["weight_decay"] != 0:
                        grad = grad.add(p.data, alpha=group["weight_decay"])
                    t = state["step"]
                    direction = state["exp_avg"] / (state["exp_avg_sq"].sqrt() + group["eps"])
                    h = h + torch.dot(grad.view(-1), direction.view(-1)) * (
                        math.sqrt(1 - beta2**t) / (1 - beta1**t)
                    )
                group["lr"] += group["hypergrad_lr"] * h
                saved.append(group["hypergrad_lr"])
                group["hypergrad_lr"] = 0.0
            try:
                return super().step(closure)
            finally:
                for group, value in zip(self.param_groups, saved, strict=True):
                    group["hypergrad_lr"] = value

    return PaperAdamHD
