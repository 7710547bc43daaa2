"""Benchmark of the bilevel solvers: every algorithm on every ready problem, and the anchor.

Two parts, float64, one process:

1. **Hypergradient** on ridge selection for logistic regression (``problems.logistic_l2`` with
   one ridge strength per feature: 30 hyperparameters, 31 weights): the time of one
   hypergradient ``∇F(x)`` with the lower level solved from zero to the same gradient-norm
   tolerance, ours (the library's L-BFGS, then :func:`bilevel.hypergradient`, as
   :class:`bilevel.ImplicitBilevel` does at each outer step) against **jaxopt-style AID**
   (``jax.grad`` of the upper objective through ``jaxopt.LBFGS`` with its default implicit
   differentiation: ``custom_root`` with normal-equation CG), interleaved repeat by repeat;
   errors against the exact hypergradient (lower level solved to 1e-12, dense backward solve).
2. **Algorithms** (implicit AID and unrolled ITD, penalty, BO-REP, LV-HBA, BSVRB v1/v2) on
   the ready problems they apply to (``quadratic``, ``multi_block_quadratic``,
   ``logistic_l2``, ``hyper_cleaning`` with 50% corrupted labels, ``multi_task_logistic``,
   LV-HBA's constrained ``lvhba_toy`` and ``linear_svm``), 3 seeds (the data split and, for
   stochastic methods, the key): the final upper objective, the test accuracy (learning
   problems) or the relative error to the known solution, wall time of the compiled
   run (compile time apart), gradient and Hessian-vector product counts; the upper objective
   against time and against oracle calls in the plot. On hyper-cleaning the jaxopt-style AID
   loop (``jaxopt.LBFGS`` + ``jax.grad`` + the same optax update, in a ``lax.scan``) is the
   anchor for the implicit baseline's time, and plain training on the corrupted labels and on
   the clean subset are the accuracy baselines.

Writes ``<out>/bilevel.json`` and ``<out>/bilevel.png`` and prints markdown tables (also put in
``benchmarks/README.md`` when writing to ``benchmarks/results``).

    python benchmarks/bilevel.py            # full size (a few minutes on 2 CPU cores)
    python benchmarks/bilevel.py --quick    # CI size (1 seed, short runs, four problems)
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]  # the harness; the package from a plain checkout

import _harness as H  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jaxopt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from jaxopt_papers import RESULTS, bilevel  # noqa: E402
from jaxopt_papers.smooth import LBFGS  # noqa: E402

# ------------------------------------------------------------------------- 1. hypergradient


def _swap(fn: Callable) -> Callable:
    return lambda y, x, data: fn(x, y, data)


def bench_hypergradient(repeats: int, tol: float, quick: bool) -> dict[str, Any]:
    rp = bilevel.problems.logistic_l2(per_feature=True)
    problem, ud, ld = rp.problem, rp.upper_data, rp.lower_data
    lower = _swap(problem.lower_fn)
    w0 = rp.y0
    points = [jnp.full(30, v) for v in ((-3.0,) if quick else (-4.0, -2.0, 0.0))]

    def ours(x):
        w = LBFGS(lower, tol=tol, max_steps=1000).run(w0, x, ld).value
        return bilevel.hypergradient(problem, x, w, ud, ld, lower_tol=1e-2)

    def theirs(x):
        solver = jaxopt.LBFGS(fun=lower, tol=tol, maxiter=1000, implicit_diff=True)
        return jax.grad(lambda x: problem.upper_fn(x, solver.run(w0, x, ld).params, ud))(x)

    def exact(x):
        w = LBFGS(lower, tol=1e-12, max_steps=5000).run(w0, x, ld).value
        return bilevel.hypergradient(problem, x, w, ud, ld, solve="lu")

    out: dict[str, Any] = {"tol": tol, "points": {}}
    for x in points:
        ref = np.asarray(jax.jit(exact)(x))
        fns, res = {}, {}
        for name, fn in (("ours", ours), ("jaxopt", theirs)):
            jitted, compile_s = H.jit_compiled(fn, x)
            g = np.asarray(jax.block_until_ready(jitted(x)))
            err = float(np.linalg.norm(g - ref) / np.linalg.norm(ref))
            res[name] = {"compile_s": compile_s, "rel_error": err}
            fns[name] = lambda jitted=jitted: jitted(x)
        times = H.interleaved(fns, repeats)
        for name, ts in times.items():
            s = H.summary(ts)
            res[name] |= {"median_ms": 1e3 * s["median_s"], "min_ms": 1e3 * s["min_s"]}
            res[name] |= H.paired_ratio(ts, times["jaxopt"])
        key = f"log λ = {float(x[0]):g}"
        out["points"][key] = res
        print(f"  {key}: ours {res['ours']['median_ms']:.3g} ms (error "
              f"{res['ours']['rel_error']:.1e}), jaxopt {res['jaxopt']['median_ms']:.3g} ms "
              f"(error {res['jaxopt']['rel_error']:.1e})", flush=True)  # fmt: skip
    out["loop"] = bench_loop(rp, repeats, tol, 20 if quick else 50)
    return out


def bench_loop(rp: Any, repeats: int, tol: float, steps: int) -> dict[str, Any]:
    """Outer steps of the AID loop (warm-started inner solves): ours against jaxopt-style."""
    outer = optax.adam(0.1)
    x0 = jnp.full(30, -2.0)
    args = (x0, rp.y0, rp.upper_data, rp.lower_data)
    ours = bilevel.ImplicitBilevel(rp.problem, outer=outer, inner_tol=tol, inner_steps=1000,
                                   max_steps=steps, record_upper=False)  # fmt: skip
    ours_fn, ours_c = H.jit_compiled(lambda *a: ours.run(*a).x, *args)
    anchor_fn, anchor_c = H.jit_compiled(_jaxopt_aid(rp, steps, outer, tol, 1000), *args)
    times = H.interleaved({"ours": lambda: ours_fn(*args), "jaxopt": lambda: anchor_fn(*args)},
                          repeats)  # fmt: skip
    gap = float(jnp.max(jnp.abs(ours_fn(*args) - anchor_fn(*args)[0])))
    res = {"steps": steps, "max_abs_x_difference": gap}
    for name, ts, c in (("ours", times["ours"], ours_c), ("jaxopt", times["jaxopt"], anchor_c)):
        s = H.summary(ts, per=steps)
        res[name] = {"median_ms_per_step": 1e3 * s["median_s"], "min_ms_per_step": 1e3 * s["min_s"],
                     "compile_s": c, **H.paired_ratio(ts, times["jaxopt"])}  # fmt: skip
    ours_ms, anchor_ms = res["ours"]["median_ms_per_step"], res["jaxopt"]["median_ms_per_step"]
    print(f"  AID loop, {steps} outer steps: ours {ours_ms:.3g} ms/step, jaxopt {anchor_ms:.3g} "
          f"ms/step, ratio {res['ours']['ratio_median']:.2f}; max |x_ours − x_jaxopt| {gap:.1e}",
          flush=True)  # fmt: skip
    return res


# ------------------------------------------------------------------------- 2. algorithms


def _jaxopt_aid(rp: bilevel.problems.ReadyProblem, steps: int, outer, inner_tol: float,
                inner_steps: int) -> Callable:  # fmt: skip
    """The loop a jaxopt user writes: jaxopt.LBFGS + jax.grad through it + an optax update."""
    problem = rp.problem
    lower = _swap(problem.lower_fn)
    solver = jaxopt.LBFGS(fun=lower, tol=inner_tol, maxiter=inner_steps, implicit_diff=True)

    def run(x0, y0, ud, ld):
        def upper(x, y_warm):
            y = solver.run(y_warm, x, ld).params
            return problem.upper_fn(x, y, ud), y

        def body(carry, _):
            x, y, s = carry
            (value, y), g = jax.value_and_grad(upper, has_aux=True)(x, y)
            updates, s = outer.update(g, s, x)
            return (optax.apply_updates(x, updates), y, s), value

        (x, y, _), values = jax.lax.scan(body, (x0, y0, outer.init(x0)), None, length=steps)
        return x, y, values

    return run


def _configs(name: str, rp: Any, quick: bool) -> dict[str, Any]:
    """Algorithm name -> solver, for the problem ``name`` (the algorithms that apply to it:
    BSVRB needs a multi-block problem, BO-REP and the penalty method an unconstrained lower
    level, and the constrained problems are LV-HBA's)."""
    p = rp.problem
    steps = lambda full, short: short if quick else full
    decay = lambda lr, every: optax.exponential_decay(lr, every, 0.5, staircase=True)
    if name == "quadratic":
        return {
            "implicit (AID)": bilevel.ImplicitBilevel(p, outer_lr=0.5, max_steps=steps(300, 100)),
            "penalty": bilevel.PenaltyBilevel(
                p, sigma_decay=2.0, sigma_min=1e-5, alpha=1.0, beta=0.1, max_steps=steps(400, 100)
            ),
            "unrolled (ITD)": bilevel.ImplicitBilevel(
                p, outer_lr=0.5, mode="unrolled", inner=optax.sgd(0.05), inner_steps=200,
                max_steps=steps(300, 100),
            ),
            # a staircase decay of the normalised step; lower-level and z steps of 0.15 (the
            # lower level's curvature is in [1, 10]; the script's z step 1e-2 leaves z, and so
            # the hypergradient estimate, behind while the step decays on ill-conditioned seeds)
            "BO-REP": bilevel.BOREP(p, outer_lr=decay(0.1, 50), inner_lr=0.15, z_lr=0.15,
                                    max_steps=steps(1000, 300)),
            # c_k = 0.1 (k + 1)^0.8: the answer is O(1/c_k) from x*, so many cheap steps
            "LV-HBA": bilevel.LVHBA(
                p, alpha=0.15, eta=0.15, gamma1=10.0, c_lower=0.1, p=0.8, record_upper=False,
                max_steps=steps(620_000, 50_000),
            ),
        }  # fmt: skip
    if name == "multi_block_quadratic":
        return {
            "implicit (AID)": bilevel.ImplicitBilevel(p, outer_lr=0.5, max_steps=steps(300, 100)),
            "penalty": bilevel.PenaltyBilevel(
                p, sigma_decay=2.0, sigma_min=1e-5, alpha=1.0, beta=0.1, max_steps=steps(400, 100)
            ),
            "BSVRB v1": bilevel.BSVRB(p, version="v1", lr=3.0, max_steps=steps(100, 60)),
            "BSVRB v2": bilevel.BSVRB(p, version="v2", lr=0.5, tau=0.3, max_steps=steps(300, 150)),
        }
    if name == "logistic_l2":
        return {
            "implicit (AID)": bilevel.ImplicitBilevel(
                p, outer=optax.adam(0.1), inner_tol=1e-9, inner_steps=500, max_steps=steps(100, 20)
            ),
            "penalty": bilevel.PenaltyBilevel(p, max_steps=steps(1000, 200)),
            "BO-REP": bilevel.BOREP(p, max_steps=steps(300, 100)),
            "LV-HBA": bilevel.LVHBA(p, max_steps=steps(3000, 500)),
        }
    if name == "hyper_cleaning":
        return {
            "implicit (AID)": bilevel.ImplicitBilevel(
                p, outer=optax.adam(0.1), inner_tol=1e-5, inner_steps=200, backward="cg",
                max_steps=steps(100, 20),
            ),
            "penalty": bilevel.PenaltyBilevel(p, alpha=30.0, beta=1.0, max_steps=steps(1000, 200)),
            "BO-REP": bilevel.BOREP(p, outer_lr=0.5, max_steps=steps(1000, 200)),
            "LV-HBA": bilevel.LVHBA(p, **LVHBA_CLEANING, max_steps=steps(3000, 500)),
        }  # fmt: skip
    if name == "multi_task_logistic":
        return {
            "implicit (AID)": bilevel.ImplicitBilevel(
                p, outer=optax.adam(0.1), inner_tol=1e-9, inner_steps=500, max_steps=steps(100, 20)
            ),
            "penalty": bilevel.PenaltyBilevel(p, max_steps=steps(1000, 200)),
            "BSVRB v1": bilevel.BSVRB(p, version="v1", max_steps=steps(300, 50)),
            "BSVRB v2": bilevel.BSVRB(p, version="v2", max_steps=steps(300, 50)),
        }
    if name == "lvhba_toy":
        proj = rp.extras["projection"]
        return {
            # the official script as published (its multipliers take either sign)
            "LV-HBA (official settings)": bilevel.LVHBA(
                p, projection=proj, multiplier_bounds="symmetric", max_steps=1500
            ),
            "LV-HBA (tuned)": bilevel.LVHBA(
                p, projection=proj, alpha=0.07, beta=0.01, eta=0.07, gamma1=2.0, gamma2=0.02,
                c_lower=10.0, max_steps=1500,
            ),
        }  # fmt: skip
    if name == "linear_svm":
        return {
            "LV-HBA": bilevel.LVHBA(p, projection=rp.extras["projection"],
                                    max_steps=steps(400, 80), **rp.extras["settings"]),
        }  # fmt: skip
    raise ValueError(name)


PROBLEMS = ["quadratic", "multi_block_quadratic", "logistic_l2", "hyper_cleaning",
            "multi_task_logistic", "lvhba_toy", "linear_svm"]  # fmt: skip
QUICK_PROBLEMS = ["quadratic", "multi_block_quadratic", "hyper_cleaning", "lvhba_toy"]
# LV-HBA on hyper-cleaning (unconstrained lower level): the step sizes of a small search
LVHBA_CLEANING = dict(alpha=0.5, eta=0.5, gamma1=1.0, c_lower=0.01, p=0.3)


def _problem(name: str, seed: int, quick: bool) -> Any:
    P = bilevel.problems
    if name == "quadratic":
        return P.quadratic(seed=seed)
    if name == "multi_block_quadratic":
        return P.multi_block_quadratic(seed=seed)
    if name == "logistic_l2":
        return P.logistic_l2(seed=seed)  # one ridge strength (part 1 times 30 of them)
    if name == "hyper_cleaning":
        return P.hyper_cleaning(0.5, seed=seed)
    if name == "multi_task_logistic":
        return P.multi_task_logistic(num_blocks=4 if quick else 10, seed=seed)
    if name == "lvhba_toy":
        return P.lvhba_toy()  # deterministic: the seeds repeat the run
    if name == "linear_svm":
        return P.linear_svm(seed=seed)
    raise ValueError(name)


def _test_metric(name: str, rp: Any, x: Any, y: Any) -> float | None:
    """Test accuracy of the lower-level model (re-solved at ``x`` to 1e-8), or the relative
    error to the closed form ``x*`` (quadratic)."""
    if rp.solution is not None:
        return float(jnp.linalg.norm(x - rp.solution.x) / jnp.linalg.norm(rp.solution.x))
    ex = rp.extras
    if "projection" in ex:  # linear_svm: the iterate's classifier (feasible by projection)
        w, b, _ = y
        pred = jnp.where(ex["X_test"] @ w + b >= 0, 1, -1)
        return float(jnp.mean(pred == ex["labels_test"]))
    if isinstance(rp.problem, bilevel.MultiBlockProblem):
        # each task's model; accuracy averaged over the tasks (temperatures do not move signs)
        accs = [bilevel.problems.accuracy(y[i], ex["X_test"], ex["labels_test"])
                for i in range(y.shape[0])]  # fmt: skip
        return float(np.mean(accs))
    w = _refit(rp)(y, x, rp.lower_data)
    return float(bilevel.problems.accuracy(w, ex["X_test"], ex["labels_test"]))


_REFITS: dict[int, tuple[Any, Callable]] = {}


def _refit(rp: Any) -> Callable:
    """The lower-level solve to 1e-8 from ``y`` at ``x``, jitted once per problem (``(y, x,
    lower_data) -> w``)."""
    if id(rp) not in _REFITS:  # the problem is kept alive with its function, so ids stay unique
        lower = _swap(rp.problem.lower_fn)
        solve = LBFGS(lower, tol=1e-8, max_steps=2000, throw=False)
        _REFITS[id(rp)] = (rp, jax.jit(lambda y, x, ld: solve.run(y, x, ld).value))
    return _REFITS[id(rp)][1]


def _final_upper(rp: Any, sol: Any, values: np.ndarray) -> float:
    """The last recorded upper objective (a run with ``record_upper=False``: evaluated)."""
    finite = values[~np.isnan(values)]
    if finite.size:
        return float(finite[-1])
    return float(rp.problem.upper_fn(sol.x, sol.y, rp.upper_data))


def bench_algorithms(quick: bool, seeds: list[int]) -> dict[str, Any]:
    names = QUICK_PROBLEMS if quick else PROBLEMS
    out: dict[str, Any] = {}
    for pname in names:
        out[pname] = {"runs": {}}
        for seed in seeds:
            rp = _problem(pname, seed, quick)
            args = (rp.x0, rp.y0, rp.upper_data, rp.lower_data)
            for alg, solver in _configs(pname, rp, quick).items():
                solver = dataclasses.replace(solver, throw=False)  # failures go in the table
                key = jax.random.key(seed)
                run = lambda *a, solver=solver, key=key: solver.run(*a, key=key)
                jitted, compile_s = H.jit_compiled(run, *args)
                sol, seconds = H.timed(lambda jitted=jitted: jitted(*args))
                values = np.asarray(sol.stats["upper_values"])
                entry = {
                    "seconds": seconds, "compile_s": compile_s,
                    "num_steps": int(sol.stats["num_steps"]),
                    "num_grads": int(sol.stats["num_grads"]),
                    "num_hvps": int(sol.stats["num_hvps"]),
                    "upper": _final_upper(rp, sol, values),
                    "metric": _test_metric(pname, rp, sol.x, sol.y), "curve": values,
                    "successful": bool(sol.result == RESULTS.successful),
                }  # fmt: skip
                out[pname]["runs"].setdefault(alg, []).append(entry)
                print(f"  {pname} seed {seed} {alg}: upper {entry['upper']:.4g}, metric "
                      f"{H.fmt(entry['metric'], '.4g')}, {seconds:.2f} s (+{compile_s:.1f} s "
                      f"compile), {entry['num_grads']} grads, {entry['num_hvps']} HVPs",
                      flush=True)  # fmt: skip
            if pname == "hyper_cleaning":
                out[pname].setdefault("baselines", []).append(_cleaning_baselines(rp, quick))
    return out


def _cleaning_baselines(rp: Any, quick: bool) -> dict[str, Any]:
    """Plain training on the corrupted labels and on the clean subset; the jaxopt AID loop."""
    ex = rp.extras

    def acc(x):
        w = _refit(rp)(rp.y0, x, rp.lower_data)
        return float(bilevel.problems.accuracy(w, ex["X_test"], ex["labels_test"]))

    steps = 20 if quick else 100
    ours = _configs("hyper_cleaning", rp, quick)["implicit (AID)"]
    anchor = _jaxopt_aid(rp, steps, optax.adam(0.1), 1e-5, 200)
    args = (rp.x0, rp.y0, rp.upper_data, rp.lower_data)
    ours_fn, ours_c = H.jit_compiled(lambda *a: ours.run(*a).x, *args)
    anchor_fn, anchor_c = H.jit_compiled(anchor, *args)
    # one warm-up call of each, the anchor's giving its answer
    x_anchor, _ = anchor_fn(*args)[0], jax.block_until_ready(ours_fn(*args))
    times = H.interleaved({"ours": lambda: ours_fn(*args), "jaxopt": lambda: anchor_fn(*args)},
                          1 if quick else 3, warmup=0)  # fmt: skip
    return {
        "corrupted_accuracy": acc(jnp.full_like(rp.x0, 30.0)),
        "clean_accuracy": acc(jnp.where(ex["corrupted"], -30.0, 30.0)),
        "jaxopt_aid": {
            "accuracy": acc(x_anchor),
            "compile_s": anchor_c,
            **H.summary(times["jaxopt"]),
        },
        "ours_aid": {"compile_s": ours_c, **H.summary(times["ours"])},
        **H.paired_ratio(times["ours"], times["jaxopt"]),
    }


# ------------------------------------------------------------------------------ report


def table(hg: dict[str, Any], algs: dict[str, Any]) -> str:
    rows = []
    for point, res in hg["points"].items():
        for name in ("ours", "jaxopt"):
            r = res[name]
            rows.append([point, name, H.fmt(r["median_ms"]), H.fmt(r["min_ms"]),
                         H.fmt(r["ratio_median"], ".2f"), H.fmt(r["compile_s"], ".2f"),
                         H.fmt(r["rel_error"], ".1e")])  # fmt: skip
    part1 = H.markdown_table(
        ["point", "method", "median ms", "min ms", "ratio vs jaxopt", "compile s",
         "rel. error vs exact"], rows,
    )  # fmt: skip
    rows = []
    for pname, d in algs.items():
        metric = "rel. error x" if pname in ("quadratic", "multi_block_quadratic",
                                             "lvhba_toy") else "test accuracy"  # fmt: skip
        for alg, runs in d["runs"].items():
            med = lambda k, runs=runs: float(np.median([r[k] for r in runs]))
            rows.append([pname, alg, len(runs), H.fmt(med("upper"), ".4g"),
                         f"{metric}: {H.fmt(med('metric'), '.3g')}", H.fmt(med("seconds"), ".2f"),
                         H.fmt(med("compile_s"), ".1f"), int(med("num_grads")),
                         int(med("num_hvps")),
                         f"{sum(r['successful'] for r in runs)}/{len(runs)}"])  # fmt: skip
    part2 = H.markdown_table(
        ["problem", "algorithm", "seeds", "upper objective", "test metric", "run s",
         "compile s", "gradients", "HVPs", "successful"], rows,
    )  # fmt: skip
    loop = hg.get("loop")
    loop_text = ""
    if loop:
        loop_text = (
            f"\n\nThe AID loop ({loop['steps']} outer Adam steps, warm-started inner solves): ours "
            f"{loop['ours']['median_ms_per_step']:.3g} ms per step, jaxopt-style "
            f"{loop['jaxopt']['median_ms_per_step']:.3g} ms, ratio "
            f"{loop['ours']['ratio_median']:.2f}."
        )
    text = (
        f"**Hypergradient** on `logistic_l2` (30 ridge strengths), lower level solved from zero "
        f"to gradient norm {hg['tol']:g}, then the backward solve (ours: dense LU; jaxopt: its "
        f"default normal-equation CG); error against the exact hypergradient:\n\n{part1}"
        f"{loop_text}\n\n"
        f"**Algorithms** (medians over seeds):\n\n{part2}"
    )
    base = algs.get("hyper_cleaning", {}).get("baselines")
    if base:
        m = lambda k: float(np.median([b[k] for b in base]))
        ja = lambda k: float(np.median([b["jaxopt_aid"][k] for b in base]))
        text += (
            f"\n\nHyper-cleaning baselines (medians): training on the corrupted labels "
            f"{m('corrupted_accuracy'):.3f}, on the clean subset only {m('clean_accuracy'):.3f}; "
            f"the jaxopt-style AID loop (same outer steps, inner tolerance and optax update) "
            f"reaches {ja('accuracy'):.3f} in {ja('median_s'):.2f} s; ours/jaxopt time "
            f"{m('ratio_median'):.2f} (interleaved)."
        )
    return text


def plot(algs: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(algs)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    for j, pname in enumerate(names):
        for i, (alg, runs) in enumerate(algs[pname]["runs"].items()):
            r = runs[0]
            curve = np.asarray(r["curve"], float)
            k = np.arange(1, len(curve) + 1)
            frac = k / max(r["num_steps"], 1)
            axes[0, j].plot(frac * r["seconds"], curve, color=f"C{i}", label=alg)
            axes[1, j].plot(frac * (r["num_grads"] + r["num_hvps"]), curve, color=f"C{i}")
        axes[0, j].set_title(pname, fontsize=10)
        axes[0, j].set_xlabel("seconds (compiled run)", fontsize=8)
        axes[1, j].set_xlabel("gradients + HVPs", fontsize=8)
        for ax in axes[:, j]:
            ax.set_xscale("log")
            ax.set_ylabel("upper objective", fontsize=8)
        axes[0, j].legend(fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--repeats", type=int, default=None, help="timing repeats (default 7)")
    ap.add_argument("--tol", type=float, default=1e-6, help="inner tolerance of part 1")
    ap.add_argument("--readme", type=pathlib.Path, default=None,
                    help="markdown file for the table (default: benchmarks/README.md when "
                         "--out is benchmarks/results, else none)")  # fmt: skip
    args = ap.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    seeds = [0] if quick else [0, 1, 2]
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": quick}
    print(f"jax {jax.__version__} on {jax.default_backend()} ({payload['environment']['device']})")
    with threadpool_limits(limits=1, user_api="blas"):
        print("\nhypergradient (logistic_l2, 30 hyperparameters)", flush=True)
        payload["hypergradient"] = bench_hypergradient(repeats, args.tol, quick)
        print("\nalgorithms", flush=True)
        payload["algorithms"] = bench_algorithms(quick, seeds)
    payload["total_s"] = time.perf_counter() - t_start
    content = table(payload["hypergradient"], payload["algorithms"])
    print("\n" + content, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = H.write_json(args.out / "bilevel.json", payload)
    png_path = args.out / "bilevel.png"
    plot(payload["algorithms"], png_path)
    print(f"\nwrote {json_path} and {png_path}")
    env = payload["environment"]
    load = env["load_average"]
    header = (
        f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, {env['backend']} "
        f"({env['device']}, {env['cpu_count']} cores, load average "
        f"{H.fmt(load[0] if load else None, '.1f')} at start); float64; {payload['total_s']:.0f} "
        f"s in all._\n"
    )
    for readme in H.readme_targets("bilevel", args.out, args.readme):
        H.update_readme("bilevel", header + "\n" + content, readme)
        print(f"table written to {readme}")
    print(f"total {payload['total_s']:.1f} s")
    return payload


if __name__ == "__main__":
    main()
