"""Benchmark of the zeroth-order estimators: MeZO's memory, Sparse MeZO, DeepZero.

**Memory** (MeZO's claim: fine-tuning at the memory of inference). For the character-level
transformer of ``benchmarks/quantized.py`` (``lm_workload``) at several widths and depths, a
batch of 32 windows of 64 characters, XLA's compiled memory analysis of four jitted programs:

* the forward pass (the loss), the reference point;
* :func:`jaxopt_papers.zeroth_order.mezo_step`, params and state donated (the reference
  trainer's in-place arithmetic);
* the transformation chain ``zo.mezo(lr)`` + ``optax.apply_updates``, params and state donated;
* a backprop Adam step (``jax.grad`` + ``optax.adam`` + ``apply_updates``), params and state
  donated.

Peak bytes = arguments + outputs - aliased (donated) bytes + temporaries, as XLA reports them
(compilation only; nothing runs). Issue targets on the largest model: a MeZO step ≤ 1.2x the
forward pass and ≤ 0.5x the backprop Adam step.

**Fine-tuning** (Sparse MeZO's claim: it reaches MeZO's accuracy in fewer steps). The digits
MLP (64-128-10, :func:`jaxopt_papers.tour.workloads.digits_mlp`) is pretrained here by Adam
(100 steps of 64 on the first quarter of the training split), then fine-tuned on the whole
training split, minibatches of 64, by MeZO-SGD (:func:`~jaxopt_papers.zeroth_order.mezo`),
Sparse MeZO (:func:`~jaxopt_papers.zeroth_order.sparse_mezo`, sparsity 0.75), MeZO-Adam
(``optax.chain(scale_by_spsa(), optax.adam(lr))``), and backprop SGD and Adam for reference.
Each method's learning rate is the best of a grid on seed 0 (final test
accuracy); then 3 seeds. Test accuracy after every step, smoothed by a moving average of 10% of
the run; reported: final accuracy (mean of the last 10%), and the steps each method needs to
reach MeZO's final accuracy of the same seed (same pretrained model and batches) on the
smoothed curve (MeZO itself reaches it by the end, by definition), and the seconds to it: the
run's seconds (the compiled scan, compilation apart, the test accuracy after every step
included) pro rata.

**DeepZero** (training from scratch by coordinate-wise estimates). The digits CNN
(:func:`jaxopt_papers.tour.workloads.digits_cnn`, 9930 parameters) trained from its random
initialisation by :func:`~jaxopt_papers.zeroth_order.deepzero` (forward differences on a random
10% of the coordinates, uniform over the layers, refreshed every 50 steps; SGD with momentum 0.9,
learning rate 0.1 with a 5% warm-up and cosine decay, weight decay 5e-4) and by backprop SGD with
the same schedule, batches and steps; test accuracy, wall time and forward evaluations. Issue
target: ≥ 90% test accuracy.

**Ranking oracle** (ZO-RankSGD's setting). A black box in 20 dimensions, an ill-conditioned
quadratic plus an ℓ1 term, ``f(x) = Σ c_i (x_i - 1)² + Σ |x_i - 1|`` with ``c`` from 1 to 10
(minimum 0 at ``x = 1``), from ``x = 0``: :func:`~jaxopt_papers.zeroth_order.zo_rank_sgd` with
10 queries per step and an oracle that only ranks them, against SPSA with function values
(``scale_by_spsa(num_directions=5)`` + SGD: also 10 evaluations per step), each with its best
learning rate of a grid (cosine decay; seed 0), then 3 seeds; the value against the number of
function queries.

The PNG: memory against model size; test accuracy against steps and against seconds
(fine-tuning, mean of the seeds); the black box's value against function queries.

Writes ``<out>/zeroth_order.json`` and ``<out>/zeroth_order.png`` and prints a markdown table,
which goes into ``benchmarks/README.md`` when writing to the default ``benchmarks/results`` (or
to ``--readme``)::

    python benchmarks/zeroth_order.py            # full size (a few minutes on 2 CPU cores)
    python benchmarks/zeroth_order.py --quick    # CI size
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]

import _harness as H  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from quantized import lm_workload  # noqa: E402

from jaxopt_papers import zeroth_order as zo  # noqa: E402
from jaxopt_papers.tour import workloads as W  # noqa: E402

SIZES = ((128, 2), (256, 4), (512, 4), (768, 6))
"""(width d, layers) of the transformers; 4 heads, context 64, batch 32."""
QUICK_SIZES = ((32, 1),)
"""One tiny model in ``--quick``: each size compiles four programs."""
SECTIONS = ("memory", "finetuning", "deepzero", "ranking")
BATCH, CONTEXT = 32, 64


def peak_bytes(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
               + m.temp_size_in_bytes)  # fmt: skip


def memory_row(d: int, layers: int) -> dict[str, Any]:
    wl = lm_workload(10, seq=CONTEXT, d=d, layers=layers, heads=4)
    params = jax.eval_shape(lambda: W.init_params(wl, 0))
    tokens = jax.ShapeDtypeStruct((BATCH, CONTEXT), jnp.int32)
    loss = lambda p, x, y: wl.loss(p, (x, y))

    def lean(p, s, x, y):
        return zo.mezo_step(lambda q: loss(q, x, y), p, s, 1e-6)

    tx = zo.mezo(1e-6)

    def chained(p, s, x, y):
        u, s = tx.update(None, s, p, value_fn=lambda q: loss(q, x, y))
        return optax.apply_updates(p, u), s

    adam = optax.adam(1e-3)

    def backprop(p, s, x, y):
        u, s = adam.update(jax.grad(loss)(p, x, y), s, p)
        return optax.apply_updates(p, u), s

    programs = {
        "forward": (loss, (params, tokens, tokens), ()),
        "mezo_step": (lean, (params, jax.eval_shape(zo.scale_by_spsa().init, params),
                             tokens, tokens), (0, 1)),
        "mezo (transformation)": (chained, (params, jax.eval_shape(tx.init, params),
                                            tokens, tokens), (0, 1)),
        "adam (backprop)": (backprop, (params, jax.eval_shape(adam.init, params),
                                       tokens, tokens), (0, 1)),
    }  # fmt: skip
    row: dict[str, Any] = {
        "d": d,
        "layers": layers,
        "num_params": int(sum(x.size for x in jax.tree.leaves(params))),
    }
    row["param_bytes"] = 4 * row["num_params"]
    for name, (fn, args, donate) in programs.items():
        t0 = time.perf_counter()
        compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
        row[name] = {"peak_bytes": peak_bytes(compiled), "compile_s": time.perf_counter() - t0}
    fwd = row["forward"]["peak_bytes"]
    for name in ("mezo_step", "mezo (transformation)", "adam (backprop)"):
        row[name]["over_forward"] = row[name]["peak_bytes"] / fwd
        row[name]["over_adam"] = row[name]["peak_bytes"] / row["adam (backprop)"]["peak_bytes"]
    return row


def memory(quick: bool) -> dict[str, Any]:
    rows = []
    for d, layers in QUICK_SIZES if quick else SIZES:
        rows.append(memory_row(d, layers))
        r = rows[-1]
        print(f"  d={d} layers={layers} ({r['num_params'] / 1e6:.2f}M params): mezo_step "
              f"{r['mezo_step']['over_forward']:.2f}x forward, "
              f"{r['mezo_step']['over_adam']:.2f}x adam", flush=True)  # fmt: skip
    largest = rows[-1]["mezo_step"]
    return {
        "batch": BATCH,
        "context": CONTEXT,
        "rows": rows,
        "largest": {
            "num_params": rows[-1]["num_params"],
            "over_forward": largest["over_forward"],
            "over_adam": largest["over_adam"],
            "pass_forward": bool(largest["over_forward"] <= 1.2),
            "pass_adam": bool(largest["over_adam"] <= 0.5),
        },
    }


def _scan_training(tx, zeroth: bool, batch_loss, probe=None):
    """``run(params, batch_idx) -> (final params, probe(params) after each step)``: one
    ``lax.scan``; ``zeroth`` methods get the loss as ``value_fn``, the others its gradient."""

    def run(p, idx):
        def step(carry, b):
            p, s = carry
            f = lambda q: batch_loss(q, b)
            if zeroth:
                u, s = tx.update(None, s, p, value_fn=f)
            else:
                u, s = tx.update(jax.grad(f)(p), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), (probe(p) if probe is not None else None)

        (p, _), probes = jax.lax.scan(step, (p, tx.init(p)), idx)
        return p, probes

    return run


# ------------------------------------------------------------------------------ fine-tuning


def _digits_setup():
    wl = W.digits_mlp()
    return wl, wl.data["x_train"], wl.data["y_train"], wl.data["x_test"], wl.data["y_test"]


def _pretrained(wl, x, y, seed: int):
    quarter = x.shape[0] // 4
    adam = optax.adam(1e-3)
    params = W.init_params(wl, seed)

    @jax.jit
    def run(p, key):
        def step(carry, k):
            p, s = carry
            b = jax.random.randint(k, (64,), 0, quarter)
            u, s = adam.update(jax.grad(wl.loss)(p, (x[b], y[b])), s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (p, adam.init(p)), jax.random.split(key, 100))[0][0]

    return run(params, jax.random.key(seed))


def _smoothed(curve: np.ndarray, width: int) -> np.ndarray:
    c = np.cumsum(np.insert(np.asarray(curve, np.float64), 0, 0.0))
    return (c[width:] - c[:-width]) / width  # entry i: the mean of steps i .. i + width - 1


def finetuning(quick: bool, seeds: list[int]) -> dict[str, Any]:
    wl, x, y, xt, yt = _digits_setup()
    steps = 40 if quick else 4000
    grids = {
        "MeZO": [1e-3] if quick else [1e-3, 3e-3, 1e-2, 3e-2],
        "Sparse MeZO": [1e-2] if quick else [1e-3, 3e-3, 1e-2, 3e-2],
        "MeZO-Adam": [1e-3] if quick else [1e-4, 3e-4, 1e-3, 3e-3],
        "SGD (backprop)": [0.03] if quick else [0.01, 0.03, 0.1, 0.3],
        "Adam (backprop)": [1e-3] if quick else [3e-4, 1e-3, 3e-3],
    }
    makers = {
        "MeZO": lambda lr: zo.mezo(lr),
        "Sparse MeZO": lambda lr: zo.sparse_mezo(lr, sparsity=0.75),
        "MeZO-Adam": lambda lr: optax.chain(zo.scale_by_spsa(), optax.adam(lr)),
        "SGD (backprop)": lambda lr: optax.sgd(lr),
        "Adam (backprop)": lambda lr: optax.adam(lr),
    }
    acc = lambda p: wl.metric(p, (xt, yt))

    cache: dict[tuple, Any] = {}
    pretrained: dict[int, Any] = {}

    def run(name, lr, seed):
        if (name, lr, seed) not in cache:
            cache[name, lr, seed] = _run(name, lr, seed)
        return cache[name, lr, seed]

    def _run(name, lr, seed):
        tx = makers[name](lr)
        zeroth = name in ("MeZO", "Sparse MeZO", "MeZO-Adam")
        idx = jnp.asarray(np.random.default_rng(seed).integers(0, x.shape[0], (steps, 64)))
        if seed not in pretrained:
            pretrained[seed] = _pretrained(wl, x, y, seed)
        p0 = pretrained[seed]

        go = jax.jit(_scan_training(tx, zeroth, lambda q, b: wl.loss(q, (x[b], y[b])), acc))
        compiled = go.lower(p0, idx).compile()  # compilation apart from the timed run
        t0 = time.perf_counter()
        curve = np.asarray(jax.block_until_ready(compiled(p0, idx)[1]))
        return curve, time.perf_counter() - t0, float(acc(p0))

    tail = max(1, steps // 10)
    out: dict[str, Any] = {"steps": steps, "batch": 64, "methods": {}}
    for name, grid in grids.items():
        finals = {lr: float(run(name, lr, seeds[0])[0][-tail:].mean()) for lr in grid}
        finite = {k: v for k, v in finals.items() if np.isfinite(v)}
        lr = max(finite, key=finite.get)
        runs = [run(name, lr, s) for s in seeds]
        out["methods"][name] = {
            "lr_grid": finals,
            "lr": lr,
            "curves": [r[0].tolist() for r in runs],
            "seconds": [r[1] for r in runs],
            "pretrained_accuracy": [r[2] for r in runs],
            "final_accuracy": [float(r[0][-tail:].mean()) for r in runs],
        }
        print(f"  {name}: lr {lr:g}, final accuracy "
              f"{np.mean(out['methods'][name]['final_accuracy']):.4f}", flush=True)  # fmt: skip
    # per seed, the target is MeZO's final accuracy on that seed (its pretrained model and
    # batches); the smoothed curve reaches it at step h (the window ending at step h)
    targets = out["methods"]["MeZO"]["final_accuracy"]
    out["targets"] = targets
    out["target"] = float(np.mean(targets))
    for m in out["methods"].values():
        hits = []
        for c, target in zip(m["curves"], targets, strict=True):
            above = np.flatnonzero(_smoothed(np.asarray(c), tail) >= target - 1e-9)
            hits.append(int(above[0]) + tail if above.size else None)
        m["steps_to_mezo_final"] = hits
        # the scan's seconds (compilation apart, the per-step test accuracy included) pro rata
        m["seconds_to_mezo_final"] = [
            None if h is None else h * sec / steps
            for h, sec in zip(hits, m["seconds"], strict=True)
        ]
    sparse = out["methods"]["Sparse MeZO"]["steps_to_mezo_final"]
    mezo = out["methods"]["MeZO"]["steps_to_mezo_final"]
    reached = all(s is not None for s in sparse)
    out["sparse_reaches_mezo_final"] = reached
    out["sparse_fewer_steps"] = bool(reached and np.mean(sparse) < np.mean(mezo))
    return out


# -------------------------------------------------------------------------------- DeepZero


def deepzero_section(quick: bool, seeds: list[int]) -> dict[str, Any]:
    steps = 4 if quick else 200
    wl = W.digits_cnn(steps)
    x, y = wl.data["x_train"], wl.data["y_train"]
    sparsity = 0.99 if quick else 0.9
    sched = optax.warmup_cosine_decay_schedule(0.0, 0.1, max(1, steps // 20), steps)
    methods = {
        "DeepZero": zo.deepzero(sched, sparsity=sparsity, chunk_size=256,
                                mask_refresh_interval=50),
        "SGD (backprop)": optax.chain(optax.add_decayed_weights(5e-4),
                                      optax.sgd(sched, momentum=0.9)),
    }  # fmt: skip
    n_params = int(sum(v.size for v in jax.tree.leaves(W.init_params(wl, 0))))
    out: dict[str, Any] = {"steps": steps, "batch": wl.batch_size, "sparsity": sparsity,
                           "num_params": n_params, "methods": {}}  # fmt: skip
    for name, tx in methods.items():
        zeroth = name == "DeepZero"

        go = jax.jit(_scan_training(tx, zeroth, lambda q, b: wl.loss(q, (x[b], y[b]))))

        accs, secs = [], []
        for seed in seeds:
            p0 = W.init_params(wl, seed)
            idx = jnp.asarray(W.batch_indices(wl, seed, steps))
            compiled = go.lower(p0, idx).compile()
            t0 = time.perf_counter()
            p = jax.block_until_ready(compiled(p0, idx)[0])
            secs.append(time.perf_counter() - t0)
            accs.append(float(wl.metric(p, (wl.data["x_test"], wl.data["y_test"]))))
        # torch's rule, as the estimator: n - round(sparsity n) coordinates per leaf
        kept = sum(v.size - round(sparsity * v.size) for v in jax.tree.leaves(W.init_params(wl, 0)))
        out["methods"][name] = {
            "test_accuracy": accs,
            "seconds": secs,
            "forward_evaluations_per_step": kept + 1 if zeroth else None,
        }
        print(f"  {name}: test accuracy {np.mean(accs):.4f} ({np.mean(secs):.1f} s)", flush=True)
    out["pass"] = bool(np.mean(out["methods"]["DeepZero"]["test_accuracy"]) >= 0.9)
    return out


# ------------------------------------------------------------------------------- ranking


def _black_box(x: jax.Array) -> jax.Array:
    c = jnp.linspace(1.0, 10.0, x.shape[-1])
    return jnp.sum(c * (x - 1.0) ** 2) + jnp.sum(jnp.abs(x - 1.0))


def ranking_section(quick: bool, seeds: list[int]) -> dict[str, Any]:
    steps, dim, queries = (100 if quick else 1500), 20, 10
    oracle = lambda q: jnp.argsort(jax.vmap(_black_box)(q))  # best first; values never leave
    grids = {
        "ZO-RankSGD (ranking)": [0.05] if quick else [0.01, 0.02, 0.05, 0.1, 0.3],
        "SPSA + SGD (values)": [0.01] if quick else [0.001, 0.003, 0.01, 0.03, 0.1],
    }

    def make(name, lr, seed):
        sched = optax.cosine_decay_schedule(lr, steps)
        if name.startswith("ZO-RankSGD"):
            return zo.zo_rank_sgd(sched, num_queries=queries, mu=0.01, ranking_fn=oracle,
                                  seed=seed)  # fmt: skip
        return optax.chain(zo.scale_by_spsa(eps=1e-3, num_directions=queries // 2, seed=seed),
                           optax.sgd(sched))  # fmt: skip

    cache: dict[tuple, np.ndarray] = {}

    def run(name, lr, seed):
        if (name, lr, seed) not in cache:
            cache[name, lr, seed] = _run(name, lr, seed)
        return cache[name, lr, seed]

    def _run(name, lr, seed):
        tx = make(name, lr, seed)
        x0 = jnp.zeros(dim)

        @jax.jit
        def go(x, s):
            def step(carry, _):
                x, s = carry
                u, s = tx.update(None, s, x, value_fn=_black_box)
                x = optax.apply_updates(x, u)
                return (x, s), _black_box(x)

            return jax.lax.scan(step, (x, s), None, length=steps)[1]

        return np.asarray(go(x0, tx.init(x0)), np.float64)

    start = float(_black_box(jnp.zeros(dim)))
    out: dict[str, Any] = {"steps": steps, "dim": dim, "queries_per_step": queries,
                           "initial_value": start, "methods": {}}  # fmt: skip
    for name, grid in grids.items():
        finals = {lr: float(run(name, lr, seeds[0])[-1]) for lr in grid}
        finite = {k: v for k, v in finals.items() if np.isfinite(v)}
        lr = min(finite, key=finite.get)
        curves = [run(name, lr, s) for s in seeds]
        out["methods"][name] = {
            "lr_grid": finals,
            "lr": lr,
            "final_value": [float(c[-1]) for c in curves],
            "curve": np.mean(curves, 0)[:: max(1, steps // 100)].tolist(),
        }
        print(f"  {name}: lr {lr:g}, final value {np.mean([c[-1] for c in curves]):.3g}",
              flush=True)  # fmt: skip
    return out


def table(res: dict[str, Any]) -> str:
    mem = res["memory"]
    mib = lambda b: f"{b / 2**20:.1f}"
    rows = []
    for r in mem["rows"]:
        rows.append([f"{r['num_params'] / 1e6:.2f}M (d={r['d']}, {r['layers']} layers)",
                     mib(r["param_bytes"]), mib(r["forward"]["peak_bytes"]),
                     f"{mib(r['mezo_step']['peak_bytes'])} ({r['mezo_step']['over_forward']:.2f}x)",
                     f"{mib(r['mezo (transformation)']['peak_bytes'])} "
                     f"({r['mezo (transformation)']['over_forward']:.2f}x)",
                     f"{mib(r['adam (backprop)']['peak_bytes'])} "
                     f"({r['adam (backprop)']['over_forward']:.2f}x)",
                     f"{r['mezo_step']['over_adam']:.2f}"])  # fmt: skip
    big = mem["largest"]
    verdict = lambda ok: "PASS" if ok else "FAIL"
    lines = [
        f"**Memory of a MeZO step** (compiled peak, MiB; character transformer, batch "
        f"{mem['batch']} x {mem['context']}; params and optimizer state donated; in brackets: "
        "over the forward pass):",
        "",
        H.markdown_table(
            [
                "model",
                "params MiB",
                "forward",
                "mezo_step",
                "mezo (transformation)",
                "adam (backprop)",
                "mezo_step / adam",
            ],
            rows,
        ),
        "",
        f"- Largest model ({big['num_params'] / 1e6:.1f}M parameters): `mezo_step` "
        f"{big['over_forward']:.2f}x the forward pass (target ≤ 1.2: "
        f"{verdict(big['pass_forward'])}), {big['over_adam']:.2f}x the backprop Adam step "
        f"(target ≤ 0.5: {verdict(big['pass_adam'])}).",
        "- `mezo_step` shifts the donated params in place and regenerates the noise leaf after "
        "leaf: the forward pass plus about two leaves; the transformation chain returns an update "
        "the size of the params, perturbs temporaries beside them and keeps JAX's default "
        "generator's four buffers of random bits per leaf.",
    ]
    ft = res.get("finetuning")
    if ft:
        seconds = {name: np.mean(m["seconds"]) for name, m in ft["methods"].items()}
        avg = res.get("environment", {}).get("load_average")
        load = f" Load average at the start of the run: {avg[0]:.1f}." if avg else ""
        frows = []
        for name, m in ft["methods"].items():
            hits = m["steps_to_mezo_final"]
            shown = [str(h) if h is not None else "—" for h in hits]
            secs = [f"{t:.2f}" if t is not None else "—" for t in m["seconds_to_mezo_final"]]
            frows.append([name, f"{m['lr']:g}", f"{np.mean(m['pretrained_accuracy']):.4f}",
                          f"{np.mean(m['final_accuracy']):.4f}", ", ".join(shown),
                          ", ".join(secs), f"{np.mean(m['seconds']):.1f}"])  # fmt: skip
        lines += [
            "",
            f"**Fine-tuning** the digits MLP pretrained here (Adam on a quarter of the training "
            f"split), {ft['steps']} steps of {ft['batch']}, learning rates tuned on seed 0, "
            f"{len(ft['methods']['MeZO']['final_accuracy'])} seeds; the target of each seed is "
            f"MeZO's final test accuracy on that seed (mean {ft['target']:.4f}):",
            "",
            H.markdown_table(["method", "lr", "pretrained", "final test accuracy",
                              "steps to MeZO's final (per seed)", "seconds to it",
                              "seconds"], frows),
            "",
            f"- Sparse MeZO reaches MeZO's final accuracy on every seed: "
            f"{'yes' if ft['sparse_reaches_mezo_final'] else 'no'}; in fewer steps on average: "
            f"{verdict(ft['sparse_fewer_steps'])}. A curve is smoothed over "
            f"{max(1, ft['steps'] // 10)} steps, the fewest steps any method can show.",
            f"- Seconds: the whole run's (compilation apart; the test accuracy after every step "
            f"included) and, pro rata, to MeZO's final. A Sparse MeZO step costs "
            f"{seconds['Sparse MeZO'] / seconds['MeZO']:.1f}x "
            f"a MeZO step here (its mask sorts every leaf's magnitudes at every step).{load}",
        ]  # fmt: skip
    dz = res.get("deepzero")
    if dz:
        drows = []
        for name, m in dz["methods"].items():
            evals = m["forward_evaluations_per_step"]
            drows.append([name, f"{np.mean(m['test_accuracy']):.4f}",
                          ", ".join(f"{a:.3f}" for a in m["test_accuracy"]),
                          f"{np.mean(m['seconds']):.1f}", "backprop" if evals is None
                          else str(evals)])  # fmt: skip
        lines += [
            "",
            f"**DeepZero** training the digits CNN ({dz['num_params']} parameters) from scratch, "
            f"{dz['steps']} steps of {dz['batch']}, {round(100 * (1 - dz['sparsity']))}% of the "
            "coordinates per step:",
            "",
            H.markdown_table(["method", "test accuracy (mean)", "per seed", "seconds",
                              "forward evaluations per step"], drows),
            "",
            f"- DeepZero's test accuracy ≥ 90%: {verdict(dz['pass'])}.",
        ]  # fmt: skip
    rk = res.get("ranking")
    if rk:
        rrows = [[name, f"{m['lr']:g}", f"{np.mean(m['final_value']):.3g}",
                  ", ".join(f"{v:.3g}" for v in m["final_value"])]
                 for name, m in rk["methods"].items()]  # fmt: skip
        lines += [
            "",
            f"**Ranking oracle**: a {rk['dim']}-dimensional black box (minimum 0, value "
            f"{rk['initial_value']:.0f} at the start), {rk['steps']} steps of "
            f"{rk['queries_per_step']} function queries:",
            "",
            H.markdown_table(["method", "lr", "final value (mean)", "per seed"], rrows),
        ]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["memory"]["rows"]
    n = [r["num_params"] / 1e6 for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    axes = axes.ravel()
    ax = axes[0]
    for name in ("forward", "mezo_step", "mezo (transformation)", "adam (backprop)"):
        ax.plot(n, [r[name]["peak_bytes"] / 2**20 for r in rows], "o-", label=name)
    ax.set(xscale="log", yscale="log", xlabel="parameters (millions)",
           ylabel="compiled peak memory (MiB)", title="memory of one step")  # fmt: skip
    ax.legend()
    ax = axes[1]
    ft = res.get("finetuning")
    if ft:
        width = max(1, ft["steps"] // 10)
        for name, m in ft["methods"].items():
            curve = np.mean([_smoothed(np.asarray(c), width) for c in m["curves"]], 0)
            ax.plot(np.arange(width, width + curve.size), curve, label=name)
        ax.axhline(ft["target"], color="gray", ls=":", label="MeZO's final")
        ax.set(xlabel="step", ylabel="test accuracy (moving average)",
               title="fine-tuning the digits MLP")  # fmt: skip
        ax.legend()
        ax = axes[2]
        for name, m in ft["methods"].items():
            curve = np.mean([_smoothed(np.asarray(c), width) for c in m["curves"]], 0)
            per_step = np.mean(m["seconds"]) / ft["steps"]
            ax.plot(per_step * np.arange(width, width + curve.size), curve, label=name)
        ax.axhline(ft["target"], color="gray", ls=":", label="MeZO's final")
        ax.set(xscale="log", xlabel="seconds (compilation apart)", title="fine-tuning, time",
               ylabel="test accuracy (moving average)")  # fmt: skip
        ax.legend(fontsize=8)
    else:
        axes[1].set_axis_off()
        axes[2].set_axis_off()
    rk = res.get("ranking")
    ax = axes[3]
    if rk:
        every = max(1, rk["steps"] // 100)
        for name, m in rk["methods"].items():
            # entry i: the value after step i * every + 1
            q = rk["queries_per_step"] * (every * np.arange(len(m["curve"])) + 1)
            ax.plot(q, m["curve"], label=name)
        ax.set(yscale="log", xlabel="function queries", ylabel="black-box value (mean of seeds)",
               title=f"ranking oracle, {rk['dim']} dimensions")  # fmt: skip
        ax.legend(fontsize=8)
    else:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--readme", type=pathlib.Path, default=None, help="where the table goes")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    args = ap.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown or "memory" not in sections:
        ap.error(f"--sections: choose among {SECTIONS} (memory included); got {args.sections!r}")
    seeds = [0] if args.quick else [0, 1, 2]
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": args.quick,
                               "sections": sections}  # fmt: skip
    print("memory", flush=True)
    payload["memory"] = memory(args.quick)
    if "finetuning" in sections:
        print("finetuning", flush=True)
        payload["finetuning"] = finetuning(args.quick, seeds)
    if "deepzero" in sections:
        print("deepzero", flush=True)
        payload["deepzero"] = deepzero_section(args.quick, seeds)
    if "ranking" in sections:
        print("ranking", flush=True)
        payload["ranking"] = ranking_section(args.quick, seeds)
    payload["total_s"] = time.perf_counter() - t_start
    content = table(payload)
    print("\n" + content, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = H.write_json(args.out / "zeroth_order.json", payload)
    png_path = args.out / "zeroth_order.png"
    plot(payload, png_path)
    print(f"\nwrote {json_path} and {png_path}")
    env = payload["environment"]
    header = (f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, {env['backend']} "
              f"({env['device']}); {payload['total_s']:.0f} s in all._\n")  # fmt: skip
    for readme in H.readme_targets("zeroth_order", args.out, args.readme):
        H.update_readme("zeroth_order", header + "\n" + content, readme)
        print(f"table written to {readme}")
    return payload


if __name__ == "__main__":
    main()
