"""Golden cases for SPAM against the official code (TianjinYellow/SPAM-Optimizer @ e8185fb).

There is no exact pip oracle (``pytorch_optimizer.SPAM`` warms up one step late), so the oracle is
the official ``galore_torch/SPAM.py`` (class ``AdamW``, exported as ``SPAM``), imported from a
checkout named by the environment variable ``SPAM_OFFICIAL``. It only needs torch. Regenerate
with::

    git clone https://github.com/TianjinYellow/SPAM-Optimizer /tmp/spam_official
    SPAM_OFFICIAL=/tmp/spam_official python tests/golden/make_golden.py spam

Short ``reset_interval`` / ``warmup_steps`` / ``grad_accu_steps`` make every branch fire within
60 steps: momentum resets at K = ΔT, 2ΔT, ...; the cosine warm-up after each reset; the spike
clipping (gradient spikes on the steps in ``SPIKES``; the one at step 22 falls in the
no-clipping window after the reset at 20); weight decay. ``spam_no_clip`` uses a threshold high
enough that nothing is clipped and ``spam_threshold_zero`` the official "0 disables clipping".
"""

from __future__ import annotations

import contextlib
import io

from make_golden import Case, load_official

SPIKES = {12: 100.0, 22: 60.0, 33: -100.0, 50: 80.0}


def _official_class():
    return load_official("SPAM_OFFICIAL", None, "galore_torch/SPAM.py").AdamW


def _oracle(kw):
    """Build the official optimizer from our keyword arguments (silencing its prints)."""

    def build(params):
        cls = _official_class()

        class Quiet(cls):
            def step(self, closure=None):
                with contextlib.redirect_stdout(io.StringIO()):
                    return super().step(closure)

        with contextlib.redirect_stdout(io.StringIO()):
            return Quiet(
                params,
                lr=kw["learning_rate"],
                betas=(kw["b1"], kw["b2"]),
                eps=kw["eps"],
                weight_decay=kw["weight_decay"],
                correct_bias=True,
                no_deprecation_warning=True,
                warmup_steps=kw["warmup_steps"],
                threshold=kw["threshold"],
                DeltaT=kw["reset_interval"],
                grad_accu_steps=kw["grad_accu_steps"],
            )

    return build


def _case(name, steps=60, spikes=SPIKES, problem="quadratic", **overrides):
    kw = dict(
        learning_rate=1e-2,
        b1=0.9,
        b2=0.999,
        eps=1e-6,
        weight_decay=0.0,
        warmup_steps=8,
        threshold=5000.0,
        reset_interval=20,
        grad_accu_steps=5,
    )
    kw.update(overrides)
    return Case(
        name=name,
        optimizer="spam",
        kwargs=kw,
        oracle=_oracle(kw),
        oracle_name="official SPAM-Optimizer galore_torch/SPAM.py@e8185fb",
        problem=problem,
        steps=steps,
        spikes=dict(spikes),
    )


CASES = [
    # resets at 20, 40, 60; warm-up over 20..27, 40..47; spikes at 12, 33, 50 clipped.
    _case("spam_clip_reset_warmup"),
    # same schedule, threshold so high that no entry is ever clipped.
    _case("spam_no_clip", threshold=1e9),
    # threshold 0: the official code skips clipping altogether.
    _case("spam_threshold_zero", threshold=0.0),
    # decoupled weight decay applied after the step (not scaled by the warm-up).
    _case("spam_weight_decay", weight_decay=0.5),
    # short cycles: 6 resets, warm-up 4, eps large enough to matter, other betas.
    _case(
        "spam_short_cycles",
        b1=0.8,
        b2=0.99,
        eps=1e-3,
        warmup_steps=4,
        threshold=50.0,
        reset_interval=10,
        grad_accu_steps=3,
        weight_decay=0.1,
        spikes={7: 30.0, 18: -30.0, 26: 30.0, 44: 30.0},
        problem="scale_invariant",
    ),
]
