"""Benchmark of the first-order optimizers against the optax built-ins a user would pick instead.

(a) **Update-step time** on a ~10M-parameter float32 pytree (dense kernels ``(in, out)``, conv
    kernels ``(kh, kw, in, out)``, biases): the jitted, donated
    ``(params, grads, state) -> (apply_updates(params, updates), new_state)`` of ours and of the
    anchor, interleaved repeat by repeat in one process; median and min per step, the ratio
    ours/anchor (median of the paired per-repeat ratios) and PASS/FAIL against the issue's
    targets. Compile time is measured apart.
(b) **AlgoPerf-style steps-to-target and time-to-target** on the three workloads of
    :mod:`jaxopt_papers.tour.workloads` (digits MLP, digits CNN, teacher–student regression),
    3 seeds, ours against optax adam/adamw/lion/adan. Time-to-target is ``steps_to_target``
    times the measured time per step of the compiled run (periodic evaluation included); compile
    time is reported in its own column, not added. A missed target counts as ∞. The AlgoPerf score
    integrates the performance profile over τ ∈ [1, 4].

Writes ``<out>/optimizers.json`` and ``<out>/optimizers.png`` and prints markdown tables, which
also go into ``benchmarks/README.md`` when writing to the default ``benchmarks/results``.

    python benchmarks/optimizers.py            # full size (a few minutes on 2 CPU cores)
    python benchmarks/optimizers.py --quick    # CI size (under a minute)
"""

from __future__ import annotations

import argparse
import math
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]  # the harness; the package from a plain checkout

import _harness as H  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxopt_papers as jop  # noqa: E402
from jaxopt_papers.tour import workloads as W  # noqa: E402

# ------------------------------------------------------------------- (a) update-step timing


def model_shapes(scale: float = 1.0) -> dict[str, dict[str, tuple[int, ...]]]:
    """A conv-net-like pytree: ~10.1M float32 parameters at ``scale=1`` (~1.1M at 1/3)."""
    c = [max(1, round(ch * scale)) for ch in (64, 128, 256, 256)]
    d = [max(1, round(w * scale)) for w in (2048, 2048)]
    flat = 9 * c[3]
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    c_in = 3
    for i, ch in enumerate(c):
        shapes[f"conv{i}"] = {"kernel": (3, 3, c_in, ch), "bias": (ch,)}
        c_in = ch
    d_in = flat
    for i, w in enumerate(d):
        shapes[f"dense{i}"] = {"kernel": (d_in, w), "bias": (w,)}
        d_in = w
    shapes["head"] = {"kernel": (d_in, 100), "bias": (100,)}
    return shapes


def random_tree(shapes: dict, seed: int, scale: float) -> dict:
    rng = np.random.default_rng(seed)
    return {
        layer: {
            k: jnp.asarray((scale * rng.standard_normal(s)).astype(np.float32))
            for k, s in leaves.items()
        }
        for layer, leaves in shapes.items()
    }


class Pair:
    """Ours against the optax anchor, with the issue's target ratio (None: no target)."""

    def __init__(self, name, ours, anchor_name, anchor, target):
        self.name, self.ours, self.anchor_name, self.anchor = name, ours, anchor_name, anchor
        self.target = target


def update_pairs() -> list[Pair]:
    """Same hyperparameters on both sides wherever both have them."""
    lr, wd = 1e-3, 1e-2
    spec: list[tuple[str, Callable[[], Any], str, Callable[[], Any], float | None]] = [
        ("lion", lambda: jop.lion(lr, weight_decay=wd), "optax.lion",
         lambda: optax.lion(lr, weight_decay=wd), 1.1),
        ("adan", lambda: jop.adan(lr, weight_decay=wd), "optax.adan",
         lambda: optax.adan(lr, weight_decay=wd), 1.1),
        ("exadam", lambda: jop.exadam(lr), "optax.adam", lambda: optax.adam(lr), 1.3),
        ("diffgrad", lambda: jop.diffgrad(lr), "optax.adam", lambda: optax.adam(lr), 1.3),
        ("spam", lambda: jop.spam(lr), "optax.adam", lambda: optax.adam(lr), 1.3),
        ("stable_spam", lambda: jop.stable_spam(lr), "optax.adam", lambda: optax.adam(lr), None),
        ("adamp", lambda: jop.adamp(lr), "optax.adam", lambda: optax.adam(lr), 1.5),
        ("sgdp", lambda: jop.sgdp(0.1, momentum=0.9, nesterov=True), "optax.sgd",
         lambda: optax.sgd(0.1, momentum=0.9, nesterov=True), 1.5),
        ("lion_k(tanh)", lambda: jop.lion_k(lr, kernel="tanh", weight_decay=wd), "optax.lion",
         lambda: optax.lion(lr, weight_decay=wd), None),
    ]  # fmt: skip
    pairs = []
    for name, ours, anchor_name, anchor, target in spec:
        base = name.split("(")[0]
        if hasattr(jop, base):  # skip a module still being written
            pairs.append(Pair(name, ours, anchor_name, anchor, target))
    return pairs


def _step_fn(tx: optax.GradientTransformation):
    def step(params, grads, state):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


class _Runner:
    """Holds one side's params/state and runs ``inner`` donated steps per call."""

    def __init__(self, tx, params, grads, inner):
        params = jax.tree.map(jnp.copy, params)
        state = jax.jit(tx.init)(params)
        self.step, self.compile_s = H.compile_timed(
            _step_fn(tx), params, grads, state, donate_argnums=(0, 2)
        )
        self.params, self.state, self.grads, self.inner = params, state, grads, inner

    def __call__(self):
        p, s = self.params, self.state
        for _ in range(self.inner):
            p, s = self.step(p, self.grads, s)
        self.params, self.state = p, s
        return p, s


def bench_update_step(
    scale: float, repeats: int, inner: int, names: list[str] | None = None
) -> dict[str, Any]:
    shapes = model_shapes(scale)
    params = random_tree(shapes, 0, 0.05)
    grads = random_tree(shapes, 1, 1e-2)
    n_params = sum(math.prod(s) for leaves in shapes.values() for s in leaves.values())
    rows = []
    pairs = update_pairs()
    if names:
        unknown = set(names) - {p.name for p in pairs}
        if unknown:
            raise ValueError(f"unknown pair(s) {sorted(unknown)}; have {[p.name for p in pairs]}")
        pairs = [p for p in pairs if p.name in names]
    for pair in pairs:
        ours = _Runner(pair.ours(), params, grads, inner)
        anchor = _Runner(pair.anchor(), params, grads, inner)
        t = H.interleaved({"ours": ours, "anchor": anchor}, repeats=repeats, warmup=1)
        so, sa = H.summary(t["ours"], inner), H.summary(t["anchor"], inner)
        ratio = H.paired_ratio(t["ours"], t["anchor"])
        ok = None if pair.target is None else ratio["ratio_median"] <= pair.target
        rows.append({
            "optimizer": pair.name,
            "anchor": pair.anchor_name,
            "ours_median_ms": 1e3 * so["median_s"],
            "ours_min_ms": 1e3 * so["min_s"],
            "anchor_median_ms": 1e3 * sa["median_s"],
            "anchor_min_ms": 1e3 * sa["min_s"],
            **ratio,
            "target": pair.target,
            "pass": ok,
            "ours_compile_s": ours.compile_s,
            "anchor_compile_s": anchor.compile_s,
        })  # fmt: skip
        print(f"  {pair.name:14s} {rows[-1]['ratio_median']:.3f}x {pair.anchor_name}", flush=True)
        del ours, anchor
    return {"num_params": n_params, "repeats": repeats, "steps_per_repeat": inner, "rows": rows}


def update_step_table(res: dict[str, Any]) -> str:
    headers = ["optimizer", "anchor", "ours ms (med/min)", "anchor ms (med/min)", "ratio",
               "ratio min/min", "target", "result", "compile s (ours/anchor)"]  # fmt: skip
    rows = []
    for r in res["rows"]:
        verdict = "—" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        rows.append([
            r["optimizer"], r["anchor"],
            f"{r['ours_median_ms']:.2f} / {r['ours_min_ms']:.2f}",
            f"{r['anchor_median_ms']:.2f} / {r['anchor_min_ms']:.2f}",
            f"{r['ratio_median']:.3f}", f"{r['ratio_min']:.3f}",
            "—" if r["target"] is None else f"≤ {r['target']}", verdict,
            f"{r['ours_compile_s']:.2f} / {r['anchor_compile_s']:.2f}",
        ])  # fmt: skip
    return H.markdown_table(headers, rows)


# -------------------------------------------------------------- (b) AlgoPerf-style workloads


def bench_workloads(
    workloads: list[W.Workload], contenders: list[W.Contender], seeds: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for wl in workloads:
        print(f"  {wl.name}: compiling {len(contenders)} runs", flush=True)
        params = [W.init_params(wl, s) for s in range(seeds)]
        idx = [jnp.asarray(W.batch_indices(wl, s)) for s in range(seeds)]
        compiled = {}
        for c in contenders:
            run = W.make_train(wl, c.make())
            compiled[c.name] = H.compile_timed(run, params[0], idx[0], wl.data)
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
        curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c.name: [] for c in contenders}
        for s in range(seeds):
            order = contenders if s % 2 == 0 else contenders[::-1]
            for c in order:
                fn = compiled[c.name][0]
                res, secs = H.timed(lambda fn=fn, s=s: fn(params[s], idx[s], wl.data))
                res = jax.device_get(res)
                steps = W.steps_to_target(wl, res)
                per_step = secs / wl.num_steps
                runs[c.name].append({
                    "seed": s,
                    "steps_to_target": steps,
                    "time_to_target_s": None if steps is None else steps * per_step,
                    "run_s": secs,
                    "step_ms": 1e3 * per_step,
                    "final_metric": float(res.eval_metric[-1]),
                    "best_metric": float(
                        np.max(res.eval_metric) if wl.higher_is_better else np.min(res.eval_metric)
                    ),
                    "final_train_loss": float(res.eval_train_loss[-1]),
                })  # fmt: skip
                curves[c.name].append((res.eval_train_loss, res.eval_metric))
        out[wl.name] = {
            "description": wl.description,
            "metric": wl.metric_name,
            "target": wl.target,
            "higher_is_better": wl.higher_is_better,
            "num_steps": wl.num_steps,
            "eval_every": wl.eval_every,
            "batch_size": wl.batch_size,
            "num_params": wl.num_params,
            "eval_step": np.arange(wl.num_steps // wl.eval_every + 1) * wl.eval_every,
            "results": {
                c.name: {
                    "source": c.source,
                    "learning_rate": c.learning_rate,
                    "compile_s": compiled[c.name][1],
                    **_aggregate(runs[c.name]),
                    # median over seeds at each evaluation step, 4 significant digits
                    "curve_train_loss": _sig(np.median([x[0] for x in curves[c.name]], axis=0)),
                    "curve_metric": _sig(np.median([x[1] for x in curves[c.name]], axis=0)),
                    "runs": runs[c.name],
                }
                for c in contenders
            },
        }
    out["algoperf_score"] = {
        key: algoperf_scores(out, key) for key in ("steps_to_target", "time_to_target_s")
    }
    return out


def _sig(x: np.ndarray, digits: int = 4) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in np.asarray(x, np.float64)]


def _median_inf(values: list[float | None]) -> float:
    return statistics.median([math.inf if v is None else v for v in values])


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over seeds; a missed target counts as ∞ (AlgoPerf)."""
    return {
        "reached": sum(r["steps_to_target"] is not None for r in runs),
        "seeds": len(runs),
        "steps_to_target": _median_inf([r["steps_to_target"] for r in runs]),
        "time_to_target_s": _median_inf([r["time_to_target_s"] for r in runs]),
        "step_ms": statistics.median(r["step_ms"] for r in runs),
        "final_metric": statistics.median(r["final_metric"] for r in runs),
        "final_train_loss": statistics.median(r["final_train_loss"] for r in runs),
    }


def algoperf_scores(out: dict[str, Any], key: str, r_max: float = 4.0) -> dict[str, float]:
    """AlgoPerf's integrated performance profile per optimizer over the workloads.

    r = t / min_opt t per workload; ρ(τ) = fraction of workloads with r ≤ τ;
    B = 1/(r_max - 1) ∫_1^{r_max} ρ(τ) dτ (1 = fastest everywhere, 0 = never within 4x).
    """
    names = [k for k in out if k != "algoperf_score"]
    opts = list(out[names[0]]["results"])
    ratios = {o: [] for o in opts}
    for wl in names:
        t = {o: out[wl]["results"][o][key] for o in opts}
        best = min(t.values())
        for o in opts:
            ratios[o].append(t[o] / best if math.isfinite(best) and best > 0 else math.inf)
    taus = np.linspace(1.0, r_max, 3001)
    scores = {}
    for o in opts:
        r = np.asarray(ratios[o])
        rho = (r[None, :] <= taus[:, None]).mean(axis=1)
        scores[o] = float(np.trapezoid(rho, taus) / (r_max - 1.0))
    return scores


def workload_tables(res: dict[str, Any]) -> str:
    parts = []
    for wl, d in res.items():
        if wl == "algoperf_score":
            continue
        better = "≥" if d["higher_is_better"] else "≤"
        parts.append(
            f"**{wl}** — {d['description']}, {d['num_params']} params, batch {d['batch_size']}, "
            f"{d['num_steps']} steps, target {d['metric']} {better} {d['target']} "
            f"(medians over {next(iter(d['results'].values()))['seeds']} seeds)"
        )
        parts.append("")
        headers = ["optimizer", "lr", "reached", "steps to target", "time to target s",
                   "compile s", "ms/step", f"final {d['metric']}", "final train loss"]  # fmt: skip
        rows = []
        for name, r in d["results"].items():
            rows.append([
                name, H.fmt(r["learning_rate"], "g"), f"{r['reached']}/{r['seeds']}",
                H.fmt(r["steps_to_target"], ".0f"), H.fmt(r["time_to_target_s"], ".3f"),
                H.fmt(r["compile_s"], ".2f"), H.fmt(r["step_ms"], ".3f"),
                H.fmt(r["final_metric"], ".4f"), H.fmt(r["final_train_loss"], ".4f"),
            ])  # fmt: skip
        parts.append(H.markdown_table(headers, rows) + "\n")
    sc = res["algoperf_score"]
    parts.append(
        "**AlgoPerf-style score** (integrated performance profile, τ ∈ [1, 4]; 1 = fastest "
        "on every workload)"
    )
    parts.append("")
    rows = [
        [o, f"{sc['steps_to_target'][o]:.3f}", f"{sc['time_to_target_s'][o]:.3f}"]
        for o in sc["steps_to_target"]
    ]
    parts.append(H.markdown_table(["optimizer", "by steps", "by time"], rows))
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ plot


def plot(res_wl: dict[str, Any], res_up: dict[str, Any] | None, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in res_wl if k != "algoperf_score"]
    n = len(names)
    rows = 3 if res_up else 2
    fig = plt.figure(figsize=(5 * n, 3.6 * rows), constrained_layout=True)
    grid = fig.add_gridspec(rows, n)
    opts = list(res_wl[names[0]]["results"])
    styles = W.contender_styles(opts)
    for j, wl in enumerate(names):
        d = res_wl[wl]
        steps = np.asarray(d["eval_step"])
        ax_l, ax_m = fig.add_subplot(grid[0, j]), fig.add_subplot(grid[1, j])
        for o, r in d["results"].items():
            ax_l.plot(steps, r["curve_train_loss"], **styles[o], label=o, lw=1.3)
            ax_m.plot(steps, r["curve_metric"], **styles[o], lw=1.3)
        ax_l.set_yscale("log")
        ax_l.set_ylim(bottom=max(ax_l.get_ylim()[0], 1e-6))
        ax_l.set_title(f"{wl}: train loss (median of seeds)")
        ax_m.axhline(d["target"], color="k", lw=0.8, ls=":")
        ax_m.set_title(f"{wl}: {d['metric']} (target dotted)")
        ax_m.set_xlabel("step")
        if d["higher_is_better"]:
            ax_m.set_ylim(max(0.0, d["target"] - 0.15), 1.0)
        else:
            ax_m.set_yscale("log")
        if j == 0:
            ax_l.legend(fontsize=7, ncol=2)
    if res_up:
        ax = fig.add_subplot(grid[2, :])
        rows_ = res_up["rows"]
        x = np.arange(len(rows_))
        ratios = [r["ratio_median"] for r in rows_]
        colors_ = {True: "C2", False: "C3", None: "C7"}
        ax.bar(x, ratios, color=[colors_[r["pass"]] for r in rows_])
        for i, r in enumerate(rows_):
            if r["target"] is not None:
                ax.hlines(r["target"], i - 0.4, i + 0.4, color="k", lw=1.2)
        ax.axhline(1.0, color="gray", lw=0.8, ls=":")
        ax.set_xticks(x, [f"{r['optimizer']}\nvs {r['anchor']}" for r in rows_], fontsize=8)
        ax.set_ylabel("update-step time ratio")
        ax.set_title(
            f"update step on {res_up['num_params'] / 1e6:.1f}M params: ours / optax "
            "(median of paired repeats; black: target)"
        )
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------ main

QUICK_OPTIMIZERS = ["lion", "exadam", "optax.adam", "optax.lion"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run (under a minute)")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per workload (default 3)")
    ap.add_argument("--repeats", type=int, default=None, help="update-step repeats")
    ap.add_argument("--pairs", nargs="*", default=None, help="update-step pairs (default: all)")
    ap.add_argument("--optimizers", nargs="*", default=None, help="workload contenders")
    ap.add_argument("--skip-update-step", action="store_true")
    ap.add_argument("--skip-workloads", action="store_true")
    ap.add_argument("--readme", type=pathlib.Path, default=None,
                    help="markdown file for the tables (default: benchmarks/README.md when "
                         "--out is benchmarks/results, else none)")  # fmt: skip
    args = ap.parse_args(argv)

    quick = args.quick
    seeds = args.seeds or (1 if quick else 3)
    repeats = args.repeats or (5 if quick else 21)
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": quick}
    print(f"jax {jax.__version__} on {jax.default_backend()} ({payload['environment']['device']})")

    res_up = None
    if not args.skip_update_step:
        scale = 1 / 3 if quick else 1.0
        inner = 2 if quick else 5
        print(f"(a) update step, {repeats} interleaved repeats x {inner} steps", flush=True)
        res_up = bench_update_step(scale, repeats, inner, args.pairs)
        payload["update_step"] = res_up
        print(f"\n### Update step ({res_up['num_params'] / 1e6:.2f}M float32 params)\n")
        print(update_step_table(res_up), flush=True)

    res_wl = None
    if not args.skip_workloads:
        if args.optimizers:
            contenders = W.first_order_contenders(args.optimizers)
        elif quick:
            available = {c.name for c in W.first_order_contenders()}
            contenders = W.first_order_contenders([n for n in QUICK_OPTIMIZERS if n in available])
        else:
            contenders = W.first_order_contenders()
        if quick:
            wls = [W.digits_mlp(200), W.digits_cnn(100), W.teacher_student(300)]
        else:
            wls = W.all_workloads()
        print(f"\n(b) workloads, {seeds} seed(s), {len(contenders)} optimizers", flush=True)
        res_wl = bench_workloads(wls, contenders, seeds)
        payload["workloads"] = res_wl
        print("\n### Steps and time to target\n")
        print(workload_tables(res_wl), flush=True)

    payload["total_s"] = time.perf_counter() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = H.write_json(args.out / "optimizers.json", payload)
    png_path = args.out / "optimizers.png"
    if res_wl is not None:
        plot(res_wl, res_up, png_path)
    print(f"\nwrote {json_path}" + (f" and {png_path}" if res_wl is not None else ""))

    readmes = H.readme_targets("optimizers-update-step", args.out, args.readme)
    if readmes:
        env = payload["environment"]
        load = env["load_average"]
        header = (
            f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, optax {env['optax']}, "
            f"{env['backend']} ({env['device']}, {env['cpu_count']} cores, load average "
            f"{H.fmt(load[0] if load else None, '.1f')} at start); "
            f"{payload['total_s']:.0f} s in all._\n"
        )
    for readme in readmes:
        if res_up is not None:
            H.update_readme(
                "optimizers-update-step",
                header
                + f"\nUpdate step on {res_up['num_params'] / 1e6:.2f}M float32 parameters:\n\n"
                + update_step_table(res_up),
                readme,
            )
        if res_wl is not None:
            H.update_readme("optimizers-workloads", header + "\n" + workload_tables(res_wl), readme)
        print(f"tables written to {readme}")
    print(f"total {payload['total_s']:.1f} s")
    return payload


if __name__ == "__main__":
    main()
