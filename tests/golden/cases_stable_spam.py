"""Golden cases for Stable-SPAM.

Two oracles, one per ``variant`` of :func:`jaxopt_papers.stable_spam`:

* ``pytorch_optimizer.StableSPAM`` (pytorch-optimizer 4.1.0, ``foreach=False``), the default
  variant;
* the official TianjinYellow/StableSPAM ``galore_torch/stablespam.py`` (commit 6a66da1) for
  ``variant="official"``, imported from a checkout named by ``STABLESPAM_OFFICIAL``.

Regenerate with::

    git clone https://github.com/TianjinYellow/StableSPAM /tmp/stablespam_official
    STABLESPAM_OFFICIAL=/tmp/stablespam_official python tests/golden/make_golden.py stable_spam

Every branch fires within 60 steps: spike clipping (the gradient spikes in ``SPIKES``, and
often with ``theta=0.9``), momentum resets (``update_proj_gap=15``), the cosine factor with
``t_max`` (before and after ``t_max``), weight decay, ``gamma1=-1`` and an all-zero gradient at
step 25 (spike factor 0: pytorch_optimizer skips the tensor, the official code does not).
"""

from __future__ import annotations

from make_golden import Case, load_official

SPIKES = {9: 50.0, 25: 0.0, 31: -40.0, 47: 60.0}


def _kwargs(overrides):
    kw = dict(
        learning_rate=1e-2,
        b1=0.9,
        b2=0.999,
        gamma1=0.7,
        gamma2=0.9,
        theta=0.999,
        t_max=None,
        eta_min=0.5,
        weight_decay=0.0,
        update_proj_gap=1000,
        eps=1e-8,
    )
    kw.update(overrides)
    return kw


def _pytorch_optimizer(kw):
    def build(params):
        from pytorch_optimizer import StableSPAM

        return StableSPAM(
            params,
            lr=kw["learning_rate"],
            betas=(kw["b1"], kw["b2"]),
            gamma1=kw["gamma1"],
            gamma2=kw["gamma2"],
            theta=kw["theta"],
            t_max=kw["t_max"],
            eta_min=kw["eta_min"],
            weight_decay=kw["weight_decay"],
            update_proj_gap=kw["update_proj_gap"],
            eps=kw["eps"],
            foreach=False,
        )

    return build


def _official(kw):
    def build(params):
        mod = load_official("STABLESPAM_OFFICIAL", None, "galore_torch/stablespam.py")
        return mod.StableSPAM(
            params,
            lr=kw["learning_rate"],
            betas=(kw["b1"], kw["b2"]),
            eps=kw["eps"],
            weight_decay=kw["weight_decay"],
            gamma1=kw["gamma1"],
            gamma2=kw["gamma2"],
            gamma3=kw["theta"],
            total_T=kw["t_max"],
            eta_min=kw["eta_min"],
            update_proj_gap=kw["update_proj_gap"],
        )

    return build


def _case(name, official=False, steps=60, spikes=SPIKES, problem="quadratic", **overrides):
    kw = _kwargs(overrides)
    if official:
        kw["variant"] = "official"
        oracle = _official(kw)
        oracle_name = "official StableSPAM galore_torch/stablespam.py@6a66da1"
    else:
        kw["variant"] = "pytorch_optimizer"
        oracle, oracle_name = _pytorch_optimizer(kw), "pytorch_optimizer.StableSPAM 4.1.0"
    return Case(
        name=name,
        optimizer="stable_spam",
        kwargs=kw,
        oracle=oracle,
        oracle_name=oracle_name,
        problem=problem,
        steps=steps,
        spikes=dict(spikes),
    )


_RESETS_WD = dict(t_max=40, update_proj_gap=15, weight_decay=0.1)
_SHARP = dict(
    b1=0.8,
    b2=0.99,
    gamma1=-1.0,
    gamma2=0.99,
    theta=0.9,
    eps=1e-6,
    t_max=30,
    eta_min=0.2,
    update_proj_gap=20,
)

CASES = [
    # defaults (no reset, no cosine factor) with spikes and a zero gradient.
    _case("stable_spam_default"),
    # cosine factor over 40 steps (then eta_min), resets every 15 steps, weight decay.
    _case("stable_spam_resets_wd", **_RESETS_WD),
    # gamma1 = -1 (= b1), fast theta so clipping fires often, scale-invariant problem.
    _case("stable_spam_sharp", problem="scale_invariant", **_SHARP),
    # the official code on the same runs.
    _case("stable_spam_official_default", official=True),
    _case("stable_spam_official_resets_wd", official=True, **_RESETS_WD),
    _case("stable_spam_official_sharp", official=True, problem="scale_invariant", **_SHARP),
]
