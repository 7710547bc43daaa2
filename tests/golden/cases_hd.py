"""Golden cases for hypergradient descent: ``sgd_hd`` and ``adam_hd`` (both variants).

Oracle: the official gbaydin/hypergradient-descent optimizers (commit 020d608), ``SGDHD`` and
``AdamHD``, run from a checkout named by ``HD_OFFICIAL`` (helpers in ``_reference_hd.py``). The
tensors are handed to them in JAX's leaf order (``b, conv, w``), the order in which
``adam_hd(variant="code")`` moves the shared learning rate. ``variant="paper"`` is the official
``AdamHD`` with the hypergradient summed over all tensors before the step
(``_reference_hd.paper_variant``). Regenerate with::

    git clone https://github.com/gbaydin/hypergradient-descent /tmp/hypergradient-descent
    HD_OFFICIAL=/tmp/hypergradient-descent python tests/golden/make_golden.py sgd_hd adam_hd

The hypergradient learning rates are large enough for the learning rate to move (by 7% to 4x
over the 40 steps; the default ``adam_hd`` case keeps the official defaults, where it moves by
0.7%), so every term of the rule is exercised: replaying without hypergradient steps misses the
reference by 6e-4 to 2.3 (relative), and the other ``adam_hd`` variant by 3e-5 to 2e-2.
"""

from __future__ import annotations

from _reference_hd import jax_leaf_order, official, paper_variant
from make_golden import Case

SGD_ORACLE = "official SGDHD (gbaydin/hypergradient-descent 020d608)"
ADAM_ORACLE = "official AdamHD (gbaydin/hypergradient-descent 020d608)"


def _sgd_hd(name, problem, learning_rate, hypergrad_lr, **kw):
    torch_kw = dict(lr=learning_rate, hypergrad_lr=hypergrad_lr, **kw)

    def build(params):
        return official("SGDHD")(jax_leaf_order(params), **torch_kw)

    return Case(
        name=name,
        optimizer="sgd_hd",
        kwargs=dict(learning_rate=learning_rate, hypergrad_lr=hypergrad_lr, **kw),
        oracle=build,
        oracle_name=SGD_ORACLE,
        problem=problem,
        steps=40,
    )


def _adam_hd(name, problem, learning_rate, hypergrad_lr, variant="code", b1=0.9, b2=0.999, **kw):
    torch_kw = dict(lr=learning_rate, hypergrad_lr=hypergrad_lr, betas=(b1, b2), **kw)

    def build(params):
        cls = official("AdamHD")
        if variant == "paper":
            cls = paper_variant(cls)
        return cls(jax_leaf_order(params), **torch_kw)

    oracle_name = ADAM_ORACLE + (
        ", hypergradient summed over tensors" if variant == "paper" else ""
    )
    return Case(
        name=name,
        optimizer="adam_hd",
        kwargs=dict(
            learning_rate=learning_rate,
            hypergrad_lr=hypergrad_lr,
            b1=b1,
            b2=b2,
            variant=variant,
            **kw,
        ),
        oracle=build,
        oracle_name=oracle_name,
        problem=problem,
        steps=40,
    )


CASES: list[Case] = [
    _sgd_hd("sgd_hd_plain", "quadratic", 0.05, 1e-3),
    _sgd_hd(
        "sgd_hd_momentum_dampening_wd",
        "quadratic",
        0.01,
        1e-3,
        momentum=0.9,
        dampening=0.2,
        weight_decay=0.05,
    ),
    _sgd_hd("sgd_hd_nesterov", "scale_invariant", 0.05, 1e-3, momentum=0.8, nesterov=True),
    _adam_hd("adam_hd_default", "quadratic", 1e-3, 1e-8),
    _adam_hd("adam_hd_code_wd", "quadratic", 0.02, 1e-4, weight_decay=0.05, eps=1e-6),
    _adam_hd("adam_hd_paper_wd", "quadratic", 0.02, 1e-4, "paper", weight_decay=0.05, eps=1e-6),
    _adam_hd("adam_hd_code_betas", "scale_invariant", 0.05, 3e-4, b1=0.8, b2=0.99),
    _adam_hd("adam_hd_paper_betas", "scale_invariant", 0.05, 3e-4, "paper", b1=0.8, b2=0.99),
]
