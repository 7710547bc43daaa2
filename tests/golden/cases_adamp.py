"""Golden cases for AdamP and SGDP.

Oracle: ``torch_optimizer.AdamP`` / ``torch_optimizer.SGDP`` (0.3.0), bit-identical to the
official clovaai/AdamP code, including SGDP's in-place projection of the momentum buffer when
``nesterov=False``. All cases use ``channel_axis=0`` (torch layout); the golden test replays them
in flax layout with ``channel_axis=-1`` as well.

Which view fires (counted from the recorded runs, per kernel, over 40 steps): on
``scale_invariant`` the row-normalised ``w`` fires the channel view and the globally normalised
``conv`` the layer view on every step (all cases on that problem). On ``quadratic`` with the
default ``delta`` the projection almost never fires (``adamp_wd_quadratic``: conv layer view on
2 steps, w never), so decay keeps ratio 1; a larger ``delta`` mixes all outcomes
(``adamp_wd_quadratic_delta1``: conv channel 14 / layer 18 / none 8, w layer 3 / none 37;
``sgdp_quadratic``: conv channel 40, w channel 6 / none 34). The SGDP cases without nesterov
differ from a run without the in-place buffer projection by 1.7e-2 to 1.2e-1 (relative).
"""

from __future__ import annotations

from make_golden import Case


def _torch_optimizer(name, **kw):
    def build(params):
        import torch_optimizer

        return getattr(torch_optimizer, name)(params, **kw)

    return build


def _adamp(name, problem, lr, b1=0.9, b2=0.999, **kw):
    kwargs = dict(learning_rate=lr, b1=b1, b2=b2, channel_axis=0, **kw)
    return Case(
        name=name,
        optimizer="adamp",
        kwargs=kwargs,
        oracle=_torch_optimizer("AdamP", lr=lr, betas=(b1, b2), **kw),
        oracle_name="torch_optimizer.AdamP 0.3.0",
        problem=problem,
        steps=40,
    )


def _sgdp(name, problem, lr, **kw):
    return Case(
        name=name,
        optimizer="sgdp",
        kwargs=dict(learning_rate=lr, channel_axis=0, **kw),
        oracle=_torch_optimizer("SGDP", lr=lr, **kw),
        oracle_name="torch_optimizer.SGDP 0.3.0",
        problem=problem,
        steps=40,
    )


CASES: list[Case] = [
    _adamp("adamp_default", "scale_invariant", 0.03),
    _adamp("adamp_nesterov", "scale_invariant", 0.03, nesterov=True),
    _adamp("adamp_wd_scale_invariant", "scale_invariant", 0.05, weight_decay=0.5, wd_ratio=0.2),
    _adamp("adamp_wd_quadratic", "quadratic", 0.05, weight_decay=0.3),
    _adamp("adamp_wd_quadratic_delta1", "quadratic", 0.05, weight_decay=0.3, delta=1.0),
    _sgdp("sgdp_nesterov", "scale_invariant", 0.3, momentum=0.9, nesterov=True, weight_decay=1e-2),
    _sgdp("sgdp_momentum", "scale_invariant", 0.3, momentum=0.9),
    _sgdp(
        "sgdp_dampening_wd",
        "scale_invariant",
        0.2,
        momentum=0.8,
        dampening=0.3,
        weight_decay=0.1,
        wd_ratio=0.3,
    ),
    _sgdp("sgdp_quadratic", "quadratic", 0.1, momentum=0.5, weight_decay=0.05, delta=2.0),
]
