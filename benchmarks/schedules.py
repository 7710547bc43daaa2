"""Benchmark of the learning-rate schedules, hypergradient descent, FedHyper and AdAdaGrad.

Sections (``--sections``, default all):

``refinement``
    Defazio et al., arXiv:2310.07831. Two tasks: the digits CNN
    (:func:`jaxopt_papers.tour.workloads.digits_cnn`) with weight decay (``L2_CNN``, a penalty in
    the loss) trained by SGD with momentum 0.9, and a small character-level transformer
    (``lm_workload`` of ``benchmarks/quantized.py`` on ``LM_CHARS`` characters of Python
    source, less than one pass over the data) trained by Adam. The peak learning rate is
    tuned once for **linear decay** on a small grid (seed 0, final training loss). For each
    seed, run 1 uses linear decay at that peak and records the gradient norms with
    ``record_grad_norms`` (ℓ2 for SGD, ℓ1 for Adam); run 2 uses
    ``refined_schedule(norms, peak, kind="sgd"|"adam")`` for the same number of steps, with the
    same initialisation and batches; cosine decay (to zero) is the other baseline. Two
    comparisons: every schedule at linear decay's peak, and every schedule at its own peak tuned
    on the same grid (seed 0; the paper re-tunes the peak of the refined schedule). Reported:
    final training loss (the first ``EVAL_EXAMPLES`` training examples) and final test
    accuracy / test loss, mean over seeds. Without weight decay the CNN memorises its 1437
    images (training loss ~1e-5); the gradient norms then fall 10^4-fold and the refined
    schedule becomes a long warm-up.
``hypergradient``
    Baydin et al., ICLR 2018. The digits MLP with a small L2 penalty (``L2_HD``; the objective
    then has a positive minimum, so final losses can be compared by ratio). Adam's and SGD's
    (momentum 0.9) learning rates are tuned on a grid (seed 0, final training loss); then
    ``adam_hd`` / ``sgd_hd`` start from a learning rate **10x smaller** than the tuned one, with
    the hypergradient learning rate β picked from a grid at that bad learning rate (seed 0), and
    are compared with Adam / SGD at the bad learning rate (untuned) and at the tuned one.
    Reported: final training loss, its ratio to tuned Adam's (SGD's), the learned learning rate.
``federated``
    FedAvg with and without FedHyper's rules on non-IID digits (``_schedules_federated.py``).
``batch_size``
    AdAdaGrad's batch-size tests against fixed batch sizes (``_schedules_batch.py``).

Writes ``<out>/schedules.json`` and ``<out>/schedules.png`` and prints markdown tables, which go
into ``benchmarks/README.md`` when writing to the default ``benchmarks/results`` (or to
``--readme``)::

    python benchmarks/schedules.py                 # full size (several minutes on 2 CPU cores)
    python benchmarks/schedules.py --quick         # CI size
    python benchmarks/schedules.py --sections refinement,hypergradient
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]

import _harness as H  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxopt_papers import schedules as S  # noqa: E402
from jaxopt_papers.tour import workloads as W  # noqa: E402

SECTIONS = ("refinement", "hypergradient", "federated", "batch_size")
L2_HD = 1e-3
"""Weight of the squared-weight penalty of the hypergradient section's objective."""
L2_CNN = 5e-4
"""Weight of the squared-weight penalty (weight decay) of the refinement section's CNN."""
MOMENTUM = 0.9
"""Momentum of every SGD run."""
EVAL_EXAMPLES = 2048
"""The final training loss is measured on this many training examples (all of digits' 1437)."""
LM_CHARS = 700_000
"""Characters of the refinement section's language-model corpus: 300 steps of 32 windows of 64
characters see each training character at most once, the paper's regime (one pass over the
data); on a small corpus the model memorises it and the training loss measures memorisation."""


# ------------------------------------------------------------------------------ training loop


def trainer(
    wl: W.Workload,
    num_steps: int,
    make_tx: Callable[[Any], optax.GradientTransformation],
    probe: Callable[[Any], Any] | None = None,
    final: Callable[[Any], Any] | None = None,
) -> Callable:
    """A jitted run ``(params, batch_idx, data, hyper) -> dict``, one compilation for all
    ``hyper`` (a learning-rate table or a scalar learning rate, passed as an array).

    The dict holds the minibatch losses, ``probe(opt_state)`` at every step, ``final(opt_state)``
    at the end, and the final training loss (on the first ``EVAL_EXAMPLES`` training examples:
    the whole split for digits) and test metric.
    """
    grad_fn = jax.value_and_grad(wl.loss)

    def run(params, batch_idx, data, hyper):
        tx = make_tx(hyper)
        x, y = data["x_train"], data["y_train"]

        def step(carry, b):
            p, s = carry
            loss, g = grad_fn(p, (x[b], y[b]))
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), (loss, probe(s) if probe else jnp.zeros(()))

        (p, s), (losses, probes) = jax.lax.scan(step, (params, tx.init(params)), batch_idx)
        return {
            "loss": losses,
            "probe": probes,
            "final": final(s) if final else jnp.zeros(()),
            "final_train_loss": wl.loss(p, (x[:EVAL_EXAMPLES], y[:EVAL_EXAMPLES])),
            "final_metric": wl.metric(p, (data["x_test"], data["y_test"])),
        }

    return jax.jit(run)


def table_schedule(table: jax.Array) -> optax.Schedule:
    """The schedule whose value at step ``t`` is ``table[t]`` (a schedule sampled at integers)."""
    return lambda count: table[jnp.minimum(count, table.shape[0] - 1)]


def sampled(schedule: optax.Schedule, num_steps: int) -> jax.Array:
    return jnp.asarray(schedule(jnp.arange(num_steps)), jnp.float32)


def _smooth(x: np.ndarray, points: int = 50) -> list[float]:
    """Mean of ``x`` over ``points`` equal chunks (a curve for the JSON and the plot)."""
    chunks = np.array_split(np.asarray(x, np.float64), min(points, len(x)))
    return [float(c.mean()) for c in chunks]


# -------------------------------------------------------------------------------- refinement


def _refinement_task(
    wl: W.Workload, optimizer: str, peaks: list[float], seeds: list[int], metric_name: str
) -> dict[str, Any]:
    n = wl.num_steps
    kind = "adam" if optimizer == "adam" else "sgd"

    def make_tx(table):
        sched = table_schedule(table)
        base = optax.adam(sched) if optimizer == "adam" else optax.sgd(sched, momentum=MOMENTUM)
        return optax.chain(S.record_grad_norms(num_steps=n), base)

    run = trainer(wl, n, make_tx, final=lambda s: (s[0].l2, s[0].l1))
    params = {s: W.init_params(wl, s) for s in sorted({0, *seeds})}
    idx = {s: jnp.asarray(W.batch_indices(wl, s, n)) for s in params}
    t0 = time.perf_counter()
    jax.block_until_ready(run.lower(params[0], idx[0], wl.data, jnp.zeros(n)).compile())
    compile_s = time.perf_counter() - t0

    cache: dict[tuple, Any] = {}
    refined_shape: dict[int, np.ndarray] = {}  # per seed, the refined schedule for peak 1

    def table(schedule: str, peak: float, seed: int) -> jax.Array:
        if schedule == "linear decay":
            return sampled(S.linear_decay(peak, n), n)
        if schedule == "cosine":
            return sampled(optax.cosine_decay_schedule(peak, n), n)
        return jnp.asarray(peak * refined_shape[seed], jnp.float32)

    def result(schedule: str, peak: float, seed: int) -> dict[str, Any]:
        key = (schedule, peak, seed)
        if key not in cache:
            cache[key] = jax.device_get(run(params[seed], idx[seed], wl.data,
                                            table(schedule, peak, seed)))  # fmt: skip
        return cache[key]

    def tune(schedule: str) -> tuple[float, dict[float, float]]:
        grid = {p: float(result(schedule, p, 0)["final_train_loss"]) for p in peaks}
        finite = {k: v for k, v in grid.items() if np.isfinite(v)}
        return min(finite, key=finite.get), grid

    def refine(seed: int, peak: float) -> None:
        """Run 1 (linear decay at ``peak``) records the norms; the refined shape follows."""
        first = result("linear decay", peak, seed)
        norms = np.asarray(first["final"][0 if kind == "sgd" else 1], np.float64)
        refined_shape[seed] = np.asarray(sampled(S.refined_schedule(norms, 1.0, kind=kind), n))
        return norms

    peak, grid_linear = tune("linear decay")
    norms = {s: refine(s, peak) for s in seeds}
    if 0 not in norms:
        refine(0, peak)
    peak_cos, grid_cos = tune("cosine")
    peak_ref, grid_ref = tune("refined")
    variants = {
        "linear decay": ("linear decay", peak),
        "cosine": ("cosine", peak),
        "refined": ("refined", peak),
        "cosine (own peak)": ("cosine", peak_cos),
        "refined (own peak)": ("refined", peak_ref),
    }
    summary = {}
    for label, (schedule, p) in variants.items():
        outs = [result(schedule, p, s) for s in seeds]
        losses = [float(o["final_train_loss"]) for o in outs]
        metrics = [float(o["final_metric"]) for o in outs]
        summary[label] = {
            "schedule": schedule,
            "peak": p,
            "final_train_loss": float(np.mean(losses)),
            "final_train_loss_seeds": losses,
            "final_metric": float(np.mean(metrics)),
            "final_metric_seeds": metrics,
            "curve_minibatch_loss": np.mean([_smooth(o["loss"]) for o in outs], 0).tolist(),
        }
    loss = {k: v["final_train_loss"] for k, v in summary.items()}
    ratio = loss["refined"] / min(loss["linear decay"], loss["cosine"])
    ratio_own = loss["refined (own peak)"] / min(loss["linear decay"], loss["cosine (own peak)"])
    shape = np.mean([refined_shape[s] for s in seeds], 0)
    return {
        "description": wl.description,
        "optimizer": "optax.adam" if optimizer == "adam" else f"optax.sgd(momentum={MOMENTUM})",
        "kind": kind,
        "norm": "l2" if kind == "sgd" else "l1",
        "num_steps": n,
        "batch_size": wl.batch_size,
        "seeds": seeds,
        "vocab_size": int(params[0]["embed"].shape[0]) if "embed" in params[0] else None,
        "metric_name": metric_name,
        "peak_grid": {"linear decay": grid_linear, "cosine": grid_cos, "refined": grid_ref},
        "peak": peak,
        "peak_cosine": peak_cos,
        "peak_refined": peak_ref,
        "results": summary,
        "refined_over_best_baseline": ratio,
        "pass": bool(ratio <= 1.0),
        "refined_own_peak_over_best_baseline": ratio_own,
        "pass_own_peak": bool(ratio_own <= 1.0),
        "schedules": {
            "linear decay": _smooth(table("linear decay", peak, seeds[0]), 100),
            "cosine": _smooth(table("cosine", peak, seeds[0]), 100),
            "refined (seed mean)": _smooth(peak * shape, 100),
        },
        "grad_norms_first_run": np.mean([_smooth(norms[s], 100) for s in seeds], 0).tolist(),
        "runs": len(cache),
        "compile_s": compile_s,
    }


def refinement(quick: bool, seeds: list[int]) -> dict[str, Any]:
    from quantized import lm_workload

    seeds = seeds[:1] if quick else seeds
    n_cnn = 20 if quick else 400
    cnn = _regularised(W.digits_cnn(n_cnn), n_cnn, L2_CNN)
    lm = (
        lm_workload(10, seq=32, d=16, layers=1, heads=2)
        if quick
        else lm_workload(300, chars=LM_CHARS)
    )
    tasks = {
        "digits_cnn": (
            cnn,
            "sgd",
            [0.1] if quick else [0.01, 0.03, 0.1, 0.3, 1.0],
            "test_accuracy",
        ),
        "char_transformer": (
            lm,
            "adam",
            [3e-3] if quick else [2e-3, 5e-3, 1e-2],
            "test_loss",
        ),
    }
    out = {}
    for name, (wl, opt, peaks, metric) in tasks.items():
        out[name] = _refinement_task(wl, opt, peaks, seeds, metric)
        r = out[name]["results"]
        print(f"  {name}: peak {out[name]['peak']:g}; final train loss "
              + ", ".join(f"{k} {v['final_train_loss']:.4g}" for k, v in r.items()),
              flush=True)  # fmt: skip
    return out


# ----------------------------------------------------------------------------- hypergradient


def _regularised(wl: W.Workload, num_steps: int, l2: float) -> W.Workload:
    import dataclasses

    base = wl.loss

    def loss(params, batch):
        weights = [x for x in jax.tree.leaves(params) if x.ndim >= 2]
        return base(params, batch) + 0.5 * l2 * sum(jnp.sum(w**2) for w in weights)

    return dataclasses.replace(
        wl, name=f"{wl.name}_l2", loss=loss, num_steps=num_steps,
        description=f"{wl.description}, + {l2:g}/2 |W|^2",
    )  # fmt: skip


HD_FAMILIES = {
    # name: (plain optimizer, HD optimizer, learning-rate grid, hypergradient-lr grid (β);
    # the first β is the one a --quick run uses)
    "adam": (
        lambda lr: optax.adam(lr),
        lambda lr, beta: S.adam_hd(lr, hypergrad_lr=beta),
        [3e-4, 1e-3, 3e-3, 1e-2],
        [1e-6, 1e-5, 1e-4, 1e-3],
    ),
    "sgd": (
        lambda lr: optax.sgd(lr, momentum=MOMENTUM),
        lambda lr, beta: S.sgd_hd(lr, hypergrad_lr=beta, momentum=MOMENTUM),
        [0.01, 0.03, 0.1, 0.3],
        [1e-3, 1e-4, 1e-2, 1e-1],
    ),
}


def hypergradient(quick: bool, seeds: list[int]) -> dict[str, Any]:
    seeds = seeds[:1] if quick else seeds
    n = 60 if quick else 1000
    wl = _regularised(W.digits_mlp(n), n, L2_HD)
    params = {s: W.init_params(wl, s) for s in sorted({0, *seeds})}
    idx = {s: jnp.asarray(W.batch_indices(wl, s, n)) for s in params}
    out: dict[str, Any] = {"description": wl.description, "num_steps": n, "seeds": seeds,
                           "l2": L2_HD, "families": {}}  # fmt: skip
    for fam, (plain, hd, grid, betas) in HD_FAMILIES.items():
        run_plain = trainer(wl, n, plain)
        run_hd = trainer(wl, n, lambda h, hd=hd: hd(h[0], h[1]),
                         probe=lambda s: s[-1].learning_rate)  # fmt: skip
        grid = grid[1:3] if quick else grid
        betas = betas[:1] if quick else betas
        losses = {}
        for lr in grid:
            r = run_plain(params[0], idx[0], wl.data, jnp.float32(lr))
            losses[lr] = float(r["final_train_loss"])
        finite = {k: v for k, v in losses.items() if np.isfinite(v)}
        tuned = min(finite, key=finite.get)
        bad = tuned / 10
        beta_losses = {}
        for b in betas:
            r = run_hd(params[0], idx[0], wl.data, (jnp.float32(bad), jnp.float32(b)))
            beta_losses[b] = float(r["final_train_loss"])
        finite = {k: v for k, v in beta_losses.items() if np.isfinite(v)}
        beta = min(finite, key=finite.get)
        hyper_hd = (jnp.float32(bad), jnp.float32(beta))
        rows: dict[str, dict[str, list]] = {}
        lr_curves = []
        for s in seeds:
            args = (params[s], idx[s], wl.data)
            runs = {
                f"{fam} (tuned lr {tuned:g})": run_plain(*args, jnp.float32(tuned)),
                f"{fam} (bad lr {bad:g})": run_plain(*args, jnp.float32(bad)),
                f"{fam}_hd (from bad lr {bad:g})": run_hd(*args, hyper_hd),
            }
            for k, o in runs.items():
                o = jax.device_get(o)
                rows.setdefault(k, {"final_train_loss": [], "final_metric": [], "curve": []})
                rows[k]["final_train_loss"].append(float(o["final_train_loss"]))
                rows[k]["final_metric"].append(float(o["final_metric"]))
                rows[k]["curve"].append(_smooth(o["loss"]))
                if k.startswith(f"{fam}_hd"):
                    lr_curves.append(np.asarray(o["probe"], np.float64))
        ref = np.mean(rows[f"{fam} (tuned lr {tuned:g})"]["final_train_loss"])
        results = {
            k: {
                "final_train_loss": float(np.mean(v["final_train_loss"])),
                "final_train_loss_seeds": v["final_train_loss"],
                "final_test_accuracy": float(np.mean(v["final_metric"])),
                "ratio_to_tuned": float(np.mean(v["final_train_loss"]) / ref),
                "curve_minibatch_loss": np.mean(v["curve"], 0).tolist(),
            }
            for k, v in rows.items()
        }
        lr_mean = np.mean(lr_curves, 0)
        hd_ratio = results[f"{fam}_hd (from bad lr {bad:g})"]["ratio_to_tuned"]
        out["families"][fam] = {
            "lr_grid": losses, "tuned_lr": tuned, "bad_lr": bad, "hypergrad_lr": beta,
            "hypergrad_lr_grid": beta_losses,
            "results": results, "learned_lr_curve": _smooth(lr_mean, 100),
            "learned_lr_final": float(lr_mean[-1]), "hd_ratio_to_tuned": hd_ratio,
            "pass": bool(hd_ratio <= 1.05),
        }  # fmt: skip
        print(f"  {fam}: tuned lr {tuned:g}; {fam}_hd from {bad:g} ends at lr "
              f"{lr_mean[-1]:.3g}, final loss / tuned = {hd_ratio:.3f}", flush=True)  # fmt: skip
    return out


# ------------------------------------------------------------------------- other sections


def federated(quick: bool, seeds: list[int]) -> dict[str, Any]:
    from _schedules_federated import run

    return run(quick, seeds)


def batch_size(quick: bool, seeds: list[int]) -> dict[str, Any]:
    from _schedules_batch import run

    return run(quick, seeds)


RUNNERS = {"refinement": refinement, "hypergradient": hypergradient, "federated": federated,
           "batch_size": batch_size}  # fmt: skip


# -------------------------------------------------------------------------------- reporting


def _mean_or_none(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if len(vals) == len(values) and vals else None


def tables(res: dict[str, Any]) -> str:
    parts: list[str] = []
    ref = res.get("refinement")
    if ref:
        parts += ["**Refinement** (Defazio et al., arXiv:2310.07831): the refined schedule comes "
                  "from the gradient norms of the linear-decay run of the same seed (same "
                  "length, initialisation and batches). First three rows per task: the same peak "
                  "for every schedule (tuned for linear decay on seed 0); \"own peak\": each "
                  "schedule's peak tuned on the same grid and seed, as the paper re-tunes. "
                  f"Final training loss (first {EVAL_EXAMPLES} training examples: all of "
                  "digits) and test metric, mean over seeds:", ""]  # fmt: skip
        rows = []
        for task, t in ref.items():
            for k, v in t["results"].items():
                rows.append([task, t["optimizer"], f"{t['num_steps']}", f"{v['peak']:g}", k,
                             f"{v['final_train_loss']:.4g}",
                             f"{t['metric_name']} {v['final_metric']:.4g}"])  # fmt: skip
        parts.append(H.markdown_table(
            ["task", "optimizer", "steps", "peak", "schedule", "final train loss", "final test"],
            rows))  # fmt: skip
        parts += [""] + [
            f"- {task}: refined / best baseline final training loss = "
            f"{t['refined_over_best_baseline']:.3f} with the same peak "
            f"({'PASS' if t['pass'] else 'FAIL'}), {t['refined_own_peak_over_best_baseline']:.3f}"
            f" with each schedule's own peak ({'PASS' if t['pass_own_peak'] else 'FAIL'}); "
            f"{len(t['seeds'])} seeds, target ≤ 1."
            for task, t in ref.items()
        ]
    hd = res.get("hypergradient")
    if hd:
        parts += ["", f"**Hypergradient descent** (Baydin et al., ICLR 2018) on the "
                  f"{hd['description']}, {hd['num_steps']} steps, {len(hd['seeds'])} seeds; "
                  "learning rates tuned on a grid (seed 0), HD starts 10x below the tuned one:",
                  ""]  # fmt: skip
        rows = []
        for f in hd["families"].values():
            for k, v in f["results"].items():
                lr = f"{f['learned_lr_final']:.3g}" if "_hd" in k else "—"
                rows.append([k, f"{v['final_train_loss']:.4g}", f"{v['ratio_to_tuned']:.3f}",
                             f"{v['final_test_accuracy']:.3f}", lr])  # fmt: skip
        parts.append(H.markdown_table(
            ["optimizer", "final train loss", "/ tuned", "test accuracy", "learned lr (end)"],
            rows))  # fmt: skip
        parts += [""] + [
            f"- {fam}_hd (β = {f['hypergrad_lr']:g}, best of "
            f"{', '.join(f'{b:g}' for b in f['hypergrad_lr_grid'])} on seed 0) from a learning "
            f"rate 10x too small: final loss {f['hd_ratio_to_tuned']:.3f}x tuned {fam}'s "
            f"(target ≤ 1.05: {'PASS' if f['pass'] else 'FAIL'})."
            for fam, f in hd["families"].items()
        ]
    fed = res.get("federated")
    if fed:
        parts += ["", f"**FedHyper** (non-IID digits; target accuracy {fed['target']:.3f}), "
                  "mean over seeds (— where a seed never reached the target):", ""]  # fmt: skip
        by: dict[str, list] = {}
        for r in fed["rows"]:
            by.setdefault(r["rule"], []).append(r)
        parts.append(H.markdown_table(
            ["rule", "rounds to target", "final accuracy", "seconds"],
            [[k, H.fmt(_mean_or_none([r["rounds_to_target"] for r in v]), ".1f"),
              f"{np.mean([r['final_accuracy'] for r in v]):.3f}",
              f"{np.mean([r['time_s'] for r in v]):.2f}"] for k, v in by.items()]))  # fmt: skip
    bsz = res.get("batch_size")
    if bsz:
        parts += ["", f"**AdAdaGrad** batch-size tests on {bsz['workload']}, mean over seeds "
                  "(— where a seed never reached the target):", ""]  # fmt: skip
        by = {}
        for r in bsz["rows"]:
            by.setdefault((r["optimizer"], r["method"]), []).append(r)
        parts.append(H.markdown_table(
            ["optimizer", "method", "steps to target", "examples to target", "final batch"],
            [[o, m, H.fmt(_mean_or_none([r["steps_to_target"] for r in v]), ".0f"),
              H.fmt(_mean_or_none([r["examples_to_target"] for r in v]), ".0f"),
              f"{np.mean([r['final_batch_size'] for r in v]):.0f}"]
             for (o, m), v in by.items()]))  # fmt: skip
    return "\n".join(parts) + "\n"


def plot(res: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for task, t in res.get("refinement", {}).items():
        panels.append(("schedule", task, t))
        panels.append(("ref_loss", task, t))
    for fam, f in res.get("hypergradient", {}).get("families", {}).items():
        panels.append(("hd_loss", fam, f))
        panels.append(("hd_lr", fam, f))
    if res.get("federated"):
        panels.append(("fed", "federated", res["federated"]))
    if not panels:
        return
    cols = 4
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (kind, name, d) in zip(axes.flat, panels, strict=False):
        if kind == "schedule":
            for k, v in d["schedules"].items():
                ax.plot(np.linspace(0, d["num_steps"], len(v)), v, label=k)
            ax.set_title(f"{name}: schedules (peak {d['peak']:g})", fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel("learning rate")
        elif kind == "ref_loss":
            for k, v in d["results"].items():
                ax.semilogy(np.linspace(0, d["num_steps"], len(v["curve_minibatch_loss"])),
                            v["curve_minibatch_loss"], label=k)  # fmt: skip
            ax.set_title(f"{name}: minibatch loss (seed mean)", fontsize=9)
            ax.set_xlabel("step")
        elif kind == "hd_loss":
            for k, v in d["results"].items():
                c = v["curve_minibatch_loss"]
                ax.semilogy(np.linspace(0, res["hypergradient"]["num_steps"], len(c)), c,
                            label=k)  # fmt: skip
            ax.set_title(f"{name} / {name}_hd: minibatch loss", fontsize=9)
            ax.set_xlabel("step")
        elif kind == "hd_lr":
            c = d["learned_lr_curve"]
            ax.semilogy(np.linspace(0, res["hypergradient"]["num_steps"], len(c)), c,
                        label=f"{name}_hd learned lr")  # fmt: skip
            ax.axhline(d["tuned_lr"], color="k", ls="--", label="tuned lr")
            ax.axhline(d["bad_lr"], color="r", ls=":", label="initial (bad) lr")
            ax.set_title(f"{name}_hd: learned learning rate", fontsize=9)
            ax.set_xlabel("step")
        else:
            for k, cs in d["curves"].items():
                ax.plot(np.mean(cs, 0), label=k)
            ax.axhline(d["target"], color="k", ls="--", label="target")
            ax.set_title("federated: test accuracy", fontsize=9)
            ax.set_xlabel("round")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run (1 seed, tiny runs)")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    ap.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default all)",
    )
    ap.add_argument("--readme", type=pathlib.Path, default=None, help="where the tables go")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        ap.error(f"--sections must be a comma-separated subset of {SECTIONS}, got {unknown}")
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    res: dict[str, Any] = {"environment": H.environment(argv), "quick": args.quick,
                           "sections": sections, "seconds": {}}  # fmt: skip
    for name in sections:
        print(f"{name}:", flush=True)
        t0 = time.perf_counter()
        res[name] = RUNNERS[name](args.quick, seeds)
        res["seconds"][name] = time.perf_counter() - t0
    res["total_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    H.write_json(args.out / "schedules.json", res)
    plot(res, args.out / "schedules.png")
    text = tables(res)
    print(text)
    for readme in H.readme_targets("schedules", args.out, args.readme):
        H.update_readme("schedules", text, readme)
        print(f"tables written to {readme}")
    return res


if __name__ == "__main__":
    main()
