"""Benchmark of the second-order optimisers (MKOR, MKOR-H, M-FAC) against Adam, LAMB and kfac-jax.

Two workloads from :mod:`jaxopt_papers.tour.workloads`, float32, minibatches drawn on the host
(the same batches for every optimiser at a seed):

* ``autoencoder``: :func:`~jaxopt_papers.tour.workloads.digits_autoencoder`, the classic deep
  autoencoder (Hinton & Salakhutdinov 2006, the K-FAC and MKOR benchmark) scaled to the 8x8
  digits: 64-256-128-64-16-64-128-256-64, tanh hidden layers, linear code, sigmoid
  cross-entropy summed over the pixels, batch 256. Metric: test loss. Target: the largest test
  loss of the tuned ``optax.adam`` over the seeds at 80% of the step budget (so Adam reaches it
  by 80% of the budget on every seed).
* ``mlp``: the digits MLP 64-128-10 (ReLU) of :func:`~jaxopt_papers.tour.workloads.digits_mlp`
  (its data, initialisation and loss; the dense layers written so that
  :func:`~jaxopt_papers.curvature.value_grad_and_stats` captures them), batch 128. Metric: test
  accuracy; target 0.97 (the workload's).

Contenders: ``optax.adam``, ``optax.lamb``, ``mkor`` with inner SGD (momentum 0.9) and with inner
Adam, ``mkor_h`` (inner Adam), ``mfac`` (window ``num_grads=32``) and kfac-jax's ``Optimizer``
through its own API, configured as its MNIST autoencoder example (adaptive learning rate,
momentum and damping; ``l2_reg=1e-5``, ``inverse_update_period=5``,
``damping_adaptation_interval=5``, ``num_burnin_steps=5``, ``curvature_ema=0.95``,
``damping_adaptation_decay=0.95``, ``min_damping=1e-5``, ``max_damping=1000``; the loss
registered with ``register_sigmoid_cross_entropy_loss`` / ``register_softmax_cross_entropy_loss``).
Every contender gets a grid of three values of its one tuned knob at seed 0 (the learning rate;
kfac-jax, whose learning rate is adaptive, ``initial_damping``), the value with the best final
test metric is kept, then seeds 0, 1, 2 run at it. kfac-jax's burn-in batches (5, curvature
estimation only) count as steps. kfac-jax is skipped, with a note in the JSON, when it is not
installed.

**How time is measured.** The training runs of the optax-style contenders are one jitted
``lax.scan`` each (the learning rate is an argument: one compilation per contender and
workload); kfac-jax's stateful ``Optimizer.step`` runs from a Python loop. Wall-clock time of
those runs is not compared (a scan has no per-step dispatch). Instead the **per-step time** of
every contender is measured the same way: ``jax.jit`` of one step (forward, backward, statistics
capture, update; kfac-jax: its own jitted ``step``) called from Python 10 steps in a row, the
contenders interleaved repeat by repeat (``_harness.interleaved``), median over repeats; the
ratio to Adam is the median of paired per-repeat ratios. **Time-to-target** = steps-to-target
x that per-step time (compile time apart, reported separately: the first call of the jitted
step). Evaluations are not counted.

Writes ``<out>/second_order.json`` and ``<out>/second_order.png`` and prints markdown tables,
which go into ``benchmarks/README.md`` when writing to the default ``benchmarks/results``::

    python benchmarks/second_order.py            # full size (about 10 minutes on 2 CPU cores)
    python benchmarks/second_order.py --quick    # CI size

``--quick`` runs the autoencoder only, narrowed to 64-32-16-8-16-32-64, 30 steps, one seed, the
middle value of each grid, without ``mkor(adam)`` (the code path of ``mkor(sgd)``) and without
kfac-jax (``--kfac`` adds it back).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import pathlib
import statistics
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

from jaxopt_papers import curvature  # noqa: E402
from jaxopt_papers.tour import workloads as W  # noqa: E402

SEEDS = (0, 1, 2)
TARGET_FRACTION = 0.8
KFAC_BURNIN = 5
TIMING_STEPS = 10


# ------------------------------------------------------------------------------ workloads


def classifier(num_steps: int) -> W.Workload:
    """The digits MLP with ``{"kernel", "bias"}`` layers (same init, data and loss)."""
    base = W.digits_mlp(num_steps)
    W._register_kernel_dense()  # the tour's kernel/bias dense layer, known to the capture

    def init(key):
        p = base.init(key)
        return {k: {"kernel": v["w"], "bias": v["b"]} for k, v in p.items()}

    def apply(params, x):
        x = jax.nn.relu(W._KernelDense(params["dense0"])(x))
        return W._KernelDense(params["dense1"])(x)

    def loss(p, batch):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, batch[0]), batch[1]).mean()

    def metric(p, batch):
        return (jnp.argmax(apply(p, batch[0]), -1) == batch[1]).astype(jnp.float32).mean()

    return dataclasses.replace(base, name="mlp", init=init, apply=apply, loss=loss, metric=metric)


def make_workloads(quick: bool) -> dict[str, W.Workload]:
    if quick:  # the autoencoder only, narrower (and no mkor(adam): see bench_workload)
        ae = W.digits_autoencoder(30, widths=(32, 16, 8))
        return {"autoencoder": dataclasses.replace(ae, eval_every=10)}
    return {"autoencoder": W.digits_autoencoder(1000), "mlp": classifier(600)}


# ----------------------------------------------------------------------------- contenders


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    grid: tuple[float, ...]
    build: Callable[[Any], optax.GradientTransformation] | None = None
    kind: str = "plain"  # "plain" (gradients), "stats" (layer_stats), "stats_value" (+ value)
    knob: str = "learning_rate"


def contenders() -> list[Contender]:
    return [
        Contender("optax.adam", (1e-3, 3e-3, 1e-2), lambda lr: optax.adam(lr)),
        Contender("optax.lamb", (1e-3, 3e-3, 1e-2), lambda lr: optax.lamb(lr)),
        Contender(
            "mkor(sgd)",
            (0.01, 0.03, 0.1),
            lambda lr: curvature.mkor(lr, inner="sgd", momentum=0.9),
            "stats",
        ),
        Contender(
            "mkor(adam)", (1e-3, 3e-3, 1e-2), lambda lr: curvature.mkor(lr, inner="adam"), "stats"
        ),
        Contender(
            "mkor_h(adam)",
            (1e-3, 3e-3, 1e-2),
            lambda lr: curvature.mkor_h(lr, inner="adam"),
            "stats_value",
        ),
        Contender(
            "mfac(m=32)", (1e-3, 1e-2, 1e-1), lambda lr: curvature.mfac(lr, num_grads=32), "plain"
        ),
        Contender("kfac_jax", (1.0, 10.0, 150.0), None, "kfac", knob="initial_damping"),
    ]


def make_step(wl: W.Workload, c: Contender, lr):
    """``step(params, state, batch) -> (params, state, loss)`` and the transformation."""
    tx = c.build(lr)

    def step(p, s, batch):
        if c.kind == "plain":
            v, g = jax.value_and_grad(wl.loss)(p, batch)
            u, s = tx.update(g, s, p)
        else:
            v, g, st = curvature.value_grad_and_stats(wl.loss, p, batch)
            extra = {"value": v} if c.kind == "stats_value" else {}
            u, s = tx.update(g, s, p, layer_stats=st, **extra)
        return optax.apply_updates(p, u), s, v

    return step, tx


def make_train_step(wl: W.Workload, c: Contender):
    """``jax.jit`` of ``(params, state, x, y, batch_rows, lr) -> (params, state, loss)`` and the
    state's ``init`` (the learning rate is an argument: one compilation serves the grid)."""

    def step(p, s, x, y, rows, lr):
        return make_step(wl, c, lr)[0](p, s, (x[rows], y[rows]))

    return jax.jit(step), make_step(wl, c, 1.0)[1].init


def train_loop(wl: W.Workload, step, state, params, idx, num_steps, first=0):
    """Run ``step(params, state, batch_rows)`` from Python; (losses, metrics every eval_every)."""
    test = (wl.data["x_test"], wl.data["y_test"])
    metric = _jitted_metric(wl)
    losses, metrics = [], [metric(params, test)]
    for k in range(first, num_steps):
        params, state, v = step(params, state, idx[k])
        losses.append(v)
        if (k + 1) % wl.eval_every == 0:
            metrics.append(metric(params, test))
    losses = [np.nan] * first + [float(v) for v in jax.device_get(losses)]
    return np.asarray(losses), np.asarray([float(m) for m in jax.device_get(metrics)])


@functools.lru_cache(maxsize=8)
def _jitted_metric(wl):
    return jax.jit(wl.metric)


# ---------------------------------------------------------------------------------- kfac-jax


def kfac_available() -> str | None:
    try:
        import kfac_jax  # noqa: F401
    except Exception as err:  # pragma: no cover - depends on the environment
        return f"not importable ({type(err).__name__}: {err}); contender skipped"
    return None


def _patch_kfac_for_new_jax() -> bool:
    """kfac-jax 0.0.8 unpacks ``Primitive.get_bind_params`` as ``(subfuns, params)``; since
    jax 0.8 it returns the params alone (``subfuns`` inside). Wrap its one call site."""
    from kfac_jax._src import tag_graph_matcher as tgm

    if getattr(tgm.eval_jaxpr_eqn, "_second_order_shim", False):
        return True
    import jax.extend as jex

    context = jex.source_info_util.user_context

    def eval_jaxpr_eqn(eqn, in_values):
        params = eqn.primitive.get_bind_params(eqn.params)
        subfuns = ()
        if isinstance(params, tuple):  # the jax API kfac-jax 0.0.8 was written for
            subfuns, params = params
        with context(eqn.source_info.traceback):
            out = eqn.primitive.bind(*subfuns, *in_values, **params)
        return out if isinstance(out, list) else [out]

    eval_jaxpr_eqn._second_order_shim = True
    tgm.eval_jaxpr_eqn = eval_jaxpr_eqn
    return True


@functools.lru_cache(maxsize=16)
def kfac_optimizer(wl: W.Workload, initial_damping: float):
    import kfac_jax

    _patch_kfac_for_new_jax()

    def loss(p, batch):
        out = wl.apply(p, batch[0])
        if wl.name == "mlp":
            kfac_jax.register_softmax_cross_entropy_loss(out, batch[1])
        else:
            kfac_jax.register_sigmoid_cross_entropy_loss(out, batch[1])
        return wl.loss(p, batch)

    return kfac_jax.Optimizer(
        value_and_grad_func=jax.value_and_grad(loss),
        l2_reg=1e-5,
        use_adaptive_learning_rate=True,
        use_adaptive_momentum=True,
        use_adaptive_damping=True,
        initial_damping=initial_damping,
        min_damping=1e-5,
        max_damping=1000.0,
        inverse_update_period=5,
        damping_adaptation_interval=5,
        damping_adaptation_decay=0.95,
        num_burnin_steps=KFAC_BURNIN,
        curvature_ema=0.95,
        multi_device=False,
    )


_KFAC_FIRST_CALL: dict[int, float] = {}


class KfacRunner:
    """kfac-jax's stateful optimizer as ``step(batch)``; the burn-in on the first call."""

    def __init__(self, wl, initial_damping, params, seed, burnin_batches):
        self.opt = kfac_optimizer(wl, initial_damping)
        self.rng = jax.random.key(seed)
        self.params = params
        self.state = self.opt.init(params, self.rng, burnin_batches[0])
        self.burnin = list(burnin_batches)
        self.k = 0

    def step(self, batch):
        self.rng, rng = jax.random.split(self.rng)
        if self.k == 0:
            it = iter([*self.burnin, batch])
            start = time.perf_counter()
            out = self.opt.step(self.params, self.state, rng, data_iterator=it, global_step_int=0)
            # the first call of an optimizer instance: burn-in, compilations and one step
            _KFAC_FIRST_CALL.setdefault(id(self.opt), time.perf_counter() - start)
        else:
            out = self.opt.step(self.params, self.state, rng, batch=batch, global_step_int=self.k)
        self.params, self.state, stats = out
        self.k += 1
        return stats["loss"]


def kfac_run(wl: W.Workload, damping: float, seed: int, num_steps: int):
    """Train with kfac-jax; (losses, metrics) like ``train_loop`` (burn-in batches count)."""
    x, y = wl.data["x_train"], wl.data["y_train"]
    idx = W.batch_indices(wl, seed, num_steps)
    params = W.init_params(wl, seed)
    burnin = [(x[idx[i]], y[idx[i]]) for i in range(KFAC_BURNIN)]
    runner = KfacRunner(wl, damping, params, seed, burnin)

    def step(p, s, rows):
        v = runner.step((x[rows], y[rows]))
        return runner.params, s, v

    return train_loop(wl, step, None, params, idx, num_steps, first=KFAC_BURNIN)


# ---------------------------------------------------------------------------------- running


def reached(wl: W.Workload, metric, target):
    metric = np.asarray(metric)
    with np.errstate(invalid="ignore"):
        return metric >= target if wl.higher_is_better else metric <= target


def steps_to(wl, metrics, target):
    hit = reached(wl, metrics, target)
    return int(np.argmax(hit)) * wl.eval_every if hit.any() else None


def better(wl, a, b):
    """Whether final metric ``a`` beats ``b`` (NaN loses)."""
    if not math.isfinite(b):
        return math.isfinite(a)
    if not math.isfinite(a):
        return False
    return a > b if wl.higher_is_better else a < b


def train_contender(wl, c, num_steps, seeds, kfac_note, log):
    """Grid at seed 0, then the seeds at the chosen value."""
    data, t0 = wl.data, time.perf_counter()
    runs: dict[float, dict[int, tuple]] = {}
    if c.kind == "kfac":
        if kfac_note:
            return None

        def one(value, seed):
            return kfac_run(wl, value, seed, num_steps)

        compile_s = None
    else:
        jitted, init = make_train_step(wl, c)
        x, y = data["x_train"], data["y_train"]
        p0, i0 = W.init_params(wl, 0), W.batch_indices(wl, 0, num_steps)
        start = time.perf_counter()  # compilation + one step
        jax.block_until_ready(jitted(p0, init(p0), x, y, i0[0], jnp.float32(c.grid[0])))
        compile_s = time.perf_counter() - start

        def one(value, seed):
            params, idx = W.init_params(wl, seed), W.batch_indices(wl, seed, num_steps)
            lr = jnp.float32(value)
            step = lambda p, s, rows: jitted(p, s, x, y, rows, lr)
            return train_loop(wl, step, init(params), params, idx, num_steps)

    grid = {}
    for value in c.grid:
        runs[value] = {0: one(value, 0)}
        grid[value] = float(runs[value][0][1][-1])
    chosen = c.grid[0]
    for value in c.grid[1:]:
        if better(wl, grid[value], grid[chosen]):
            chosen = value
    for seed in seeds:
        if seed not in runs[chosen]:
            runs[chosen][seed] = one(chosen, seed)
    log(f"  {c.name:14s} grid {grid} -> {c.knob}={chosen} ({time.perf_counter() - t0:.1f} s)")
    return {"grid": grid, "chosen": chosen, "runs": runs[chosen], "compile_s": compile_s,
            "jitted": None if c.kind == "kfac" else (jitted, init)}  # fmt: skip


def time_steps(wl, cs, trained, repeats):
    """Interleaved per-step times (``TIMING_STEPS`` jitted steps from Python per repeat), with
    the training runs' compiled steps."""
    x, y = wl.data["x_train"], wl.data["y_train"]
    idx = W.batch_indices(wl, 0, TIMING_STEPS + KFAC_BURNIN)
    fresh = lambda: W.init_params(wl, 0)  # kfac-jax donates its params: one copy per case
    cases, first_call = {}, {}
    for c in cs:
        if c.name not in trained:
            continue
        r = trained[c.name]
        if c.kind == "kfac":
            burnin = [(x[i], y[i]) for i in idx[:KFAC_BURNIN]]
            runner = KfacRunner(wl, r["chosen"], fresh(), 0, burnin)
            jax.block_until_ready(runner.step((x[idx[KFAC_BURNIN]], y[idx[KFAC_BURNIN]])))
            first_call[c.name] = _KFAC_FIRST_CALL[id(runner.opt)]  # from its first training run

            def case(runner=runner):
                for rows in idx[KFAC_BURNIN:]:
                    out = runner.step((x[rows], y[rows]))
                return out
        else:
            jitted, init = r["jitted"]
            lr = jnp.float32(r["chosen"])
            params = fresh()
            holder = {"p": params, "s": init(params)}
            first_call[c.name] = r["compile_s"]

            def case(jitted=jitted, holder=holder, lr=lr):
                p, s = holder["p"], holder["s"]
                for rows in idx[KFAC_BURNIN:]:
                    p, s, v = jitted(p, s, x, y, rows, lr)
                holder["p"], holder["s"] = p, s
                return v

        cases[c.name] = case
    times = H.interleaved(cases, repeats=repeats, warmup=1)
    out = {}
    for name, t in times.items():
        out[name] = {
            **H.summary(t, per=TIMING_STEPS),
            **H.paired_ratio(t, times["optax.adam"]),
            "first_call_s": first_call[name],
        }
    return out


def bench_workload(wl, num_steps, seeds, quick, repeats, kfac_note, log):
    log(f"{wl.name}: {wl.description}, {num_steps} steps, batch {wl.batch_size}")
    cs = contenders()
    if quick:
        mid = lambda g: (g[1],)
        cs = [dataclasses.replace(c, grid=mid(c.grid)) for c in cs if c.name != "mkor(adam)"]
    trained = {}
    for c in cs:
        r = train_contender(wl, c, num_steps, seeds, kfac_note, log)
        if r is not None:
            trained[c.name] = r
    # the target
    if not wl.higher_is_better:
        k = round(TARGET_FRACTION * num_steps / wl.eval_every)
        adam = trained["optax.adam"]["runs"]
        target = max(float(adam[s][1][k]) for s in seeds)
        rule = f"max over seeds of tuned optax.adam's test loss at step {k * wl.eval_every}"
    else:
        target, rule = wl.target, "the workload's target test accuracy"
    timing = time_steps(wl, cs, trained, repeats)
    results = {}
    for c in cs:
        if c.name not in trained:
            continue
        r = trained[c.name]
        runs = [r["runs"][s] for s in seeds]
        finals = [float(m[-1]) for _, m in runs]
        stt = [steps_to(wl, m, target) for _, m in runs]
        per_step = timing[c.name]["median_s"]
        finite = [s if s is not None else math.inf for s in stt]
        med = statistics.median(finite)
        results[c.name] = {
            "knob": c.knob,
            "grid_final_metric": {str(v): f for v, f in r["grid"].items()},
            "chosen": r["chosen"],
            "steps_to_target_seeds": stt,
            "steps_to_target": med,
            "time_to_target_s": med * per_step,
            "final_metric_seeds": finals,
            "final_metric": float(np.mean(finals)),
            "initial_metric": float(runs[0][1][0]),
            "first_train_loss": float(np.nanmean([ls[~np.isnan(ls)][0] for ls, _ in runs])),
            "last_train_loss": float(np.mean([np.mean(ls[-wl.eval_every :]) for ls, _ in runs])),
            "curve": np.mean([m for _, m in runs], axis=0),
            "run_compile_s": r["compile_s"],
            "step_time": timing[c.name],
        }
    return {
        "description": wl.description,
        "num_steps": num_steps,
        "eval_every": wl.eval_every,
        "batch_size": wl.batch_size,
        "num_params": wl.num_params,
        "metric": wl.metric_name,
        "higher_is_better": wl.higher_is_better,
        "target": target,
        "target_rule": rule,
        "results": results,
    }


# ---------------------------------------------------------------------------------- reporting


def tables(payload) -> str:
    parts = []
    for name, w in payload["workloads"].items():
        parts.append(
            f"**{name}**: {w['description']}, {w['num_steps']} steps, batch {w['batch_size']}; "
            f"{w['metric']} target {w['target']:.4g} ({w['target_rule']}); "
            f"{len(payload['seeds'])} seed(s).\n"
        )
        rows = []
        for label, r in w["results"].items():
            st = r["step_time"]
            stt = ["∞" if s is None else str(s) for s in r["steps_to_target_seeds"]]
            rows.append(
                [
                    label,
                    f"{r['knob'].replace('learning_rate', 'lr')}={r['chosen']:g}",
                    f"{H.fmt(float(r['steps_to_target']), '.0f')} ({', '.join(stt)})",
                    H.fmt(float(r["time_to_target_s"]), ".2f"),
                    H.fmt(r["final_metric"], ".4g"),
                    H.fmt(st["median_s"] * 1e3, ".2f"),
                    H.fmt(st["ratio_median"], ".2f"),
                    H.fmt(st["first_call_s"], ".1f"),
                ]
            )
        headers = ["optimizer", "tuned", "steps to target (seeds)", "time to target (s)",
                   f"final {w['metric']}", "ms/step", "× Adam", "compile (s)"]  # fmt: skip
        parts.append(H.markdown_table(headers, rows) + "\n")
    for note in payload["notes"]:
        parts.append(f"- {note}")
    return "\n".join(parts)


def plot(payload, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(payload["workloads"])
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(5 * (len(names) + 1), 4))
    for ax, name in zip(axes, names, strict=False):
        w = payload["workloads"][name]
        for label, r in w["results"].items():
            steps = np.arange(len(r["curve"])) * w["eval_every"]
            ax.plot(steps, r["curve"], label=label)
        ax.axhline(w["target"], color="k", ls=":", lw=1, label="target")
        ax.set_xlabel("step")
        ax.set_ylabel(f"{w['metric']} (seed mean)")
        ax.set_title(w["description"], fontsize=9)
        if not w["higher_is_better"]:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0.8, 1.0)
        ax.legend(fontsize=7)
    ax = axes[-1]
    width = 0.8 / len(names)
    labels = list(payload["workloads"][names[0]]["results"])
    for j, name in enumerate(names):
        res = payload["workloads"][name]["results"]
        vals = [res[lb]["step_time"]["ratio_median"] if lb in res else np.nan for lb in labels]
        ax.bar(np.arange(len(labels)) + j * width, vals, width, label=name)
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xticks(np.arange(len(labels)) + width * (len(names) - 1) / 2)
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("time per step / Adam's")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def done_when(payload) -> dict[str, Any]:
    res = payload["workloads"].get("autoencoder", {}).get("results", {})
    if "mkor(sgd)" not in res or "optax.adam" not in res:
        return {}
    out = {}
    for label in ("mkor(sgd)", "mkor(adam)"):
        if label not in res:
            continue
        m, a = res[label], res["optax.adam"]
        k = res.get("kfac_jax")
        out[label] = {
            "step_time_vs_adam": m["step_time"]["ratio_median"],
            "step_time_ok(<=1.5)": m["step_time"]["ratio_median"] <= 1.5,
            "time_to_target_s": m["time_to_target_s"],
            "adam_time_to_target_s": a["time_to_target_s"],
            "kfac_time_to_target_s": None if k is None else k["time_to_target_s"],
            "beats_adam": m["time_to_target_s"] < a["time_to_target_s"],
            "beats_kfac": None if k is None else m["time_to_target_s"] < k["time_to_target_s"],
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--repeats", type=int, default=None, help="timing repeats (default 9)")
    ap.add_argument("--readme", type=pathlib.Path, default=None,
                    help="markdown file whose second_order block to update")  # fmt: skip
    ap.add_argument("--kfac", action="store_true", help="run kfac-jax in --quick too")
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 9)
    seeds = (0,) if args.quick else SEEDS
    log = functools.partial(print, flush=True)
    kfac_note = kfac_available()
    if args.quick and not args.kfac and not kfac_note:
        kfac_note = "skipped in --quick (its compilations alone take ~25 s); --kfac runs it"
    t0 = time.perf_counter()
    payload: dict[str, Any] = {
        "quick": args.quick,
        "seeds": list(seeds),
        "environment": H.environment(argv and ["benchmarks/second_order.py", *argv]),
        "skipped": {"kfac_jax": kfac_note} if kfac_note else {},
        "timing": (
            f"per-step time: median over {repeats} interleaved repeats of {TIMING_STEPS} jitted "
            "steps called from Python (kfac-jax: its own jitted step); time to target = "
            "steps to target x that time; compile time apart"
        ),
        "workloads": {},
    }
    for name, wl in make_workloads(args.quick).items():
        payload["workloads"][name] = bench_workload(
            wl, wl.num_steps, seeds, args.quick, repeats, kfac_note, log
        )
    payload["done_when"] = done_when(payload)
    payload["wall_s"] = time.perf_counter() - t0
    payload["notes"] = [
        payload["timing"] + ".",
        "Steps to target: median over seeds of the first evaluated step at which the test "
        "metric meets the target (∞: not reached within the budget); kfac-jax's "
        f"{KFAC_BURNIN} burn-in batches count as steps.",
        "Tuned: the best final test metric at seed 0 over a 3-value grid of the knob (lr; "
        "kfac-jax: initial_damping, its learning rate and momentum being adaptive).",
        *([f"kfac_jax: {kfac_note}"] if kfac_note else []),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    H.write_json(args.out / "second_order.json", payload)
    plot(payload, args.out / "second_order.png")
    content = tables(payload)
    print(content)
    header = (
        "Command: `python benchmarks/second_order.py` "
        f"({payload['environment']['device']}, {payload['wall_s']:.0f} s wall).\n"
    )
    for readme in H.readme_targets("second_order", args.out, args.readme):
        H.update_readme("second_order", header + "\n" + content, readme)
    return payload


if __name__ == "__main__":
    main()
