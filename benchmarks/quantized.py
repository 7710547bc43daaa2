"""Benchmark of the 8-bit optimizers against the float32 optax optimizers a user would pick.

(a) **State bytes** of ``adam8bit``/``adamw8bit``/``lion8bit`` against ``optax.adam``/
    ``adamw``/``lion`` on the ~10.1M-parameter conv-net pytree of ``benchmarks/optimizers.py``
    (issue target: ≤ 0.27x Adam's).
(b) **Update-step time** on that pytree: the jitted ``(params, grads, state) ->
    (apply_updates(params, updates), new_state)`` of ours and of the anchor, with params and
    state donated on both sides, interleaved repeat by repeat in one process (the machine may be
    shared: interleaving keeps the ratio usable); median and min per step, the ratio (median of
    paired per-repeat ratios; issue target ≤ 1.5x optax.adam). bitsandbytes' CPU ``Adam8bit``
    and torch's ``Adam`` on the same sizes are timed as an anchor when torch and bitsandbytes
    are installed.
(c) **Final training loss** of ``adam8bit`` against ``optax.adam`` (issue target: within 1%),
    same seeds, initialisations, batches and learning-rate schedule on both sides, the
    difference paired per seed with its standard error and the fp32 seed spread beside it, on
    objectives trained to convergence: the digits MLP and CNN
    (:mod:`jaxopt_papers.tour.workloads`) and a small character-level transformer language
    model on text the environment ships (:func:`corpus`), each with an L2 penalty (the objective
    has a positive minimum, so its final value says where the optimizer ends up). A difference
    more than two standard errors beyond 1% fails; one within two standard errors of the target
    is reported as "within noise" (the seeds cannot tell). Beside each difference,
    ``optax.adam`` at 1.25x the learning rate against ``optax.adam``: how much the final loss
    depends on the step size, near zero when the run has converged. For the record, runs that
    have not converged, where the final loss measures how fast each optimizer moves: the
    unregularised digits networks at a fixed budget (the loss heads to zero on a memorisable
    training split) and a larger transformer on ``LM_CHARS`` characters (less than one pass over
    the data) to the end of a cosine schedule.

Writes ``<out>/quantized.json`` and ``<out>/quantized.png`` and prints markdown tables, which go
into ``benchmarks/README.md`` when writing to the default ``benchmarks/results`` (or to
``--readme``)::

    python benchmarks/quantized.py            # full size (about 27 minutes on 2 CPU cores)
    python benchmarks/quantized.py --quick    # CI size
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
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
from optimizers import _Runner, model_shapes, random_tree  # noqa: E402

import jaxopt_papers.quantized as Q  # noqa: E402
from jaxopt_papers.tour import workloads as W  # noqa: E402

LR = 3e-3
"""Learning rate (peak, for the cosine schedules) of every training comparison."""
L2 = 1e-2
"""Weight of the squared-weight penalty of the converged objectives."""
LR_CHECK = 1.25
"""Factor on the learning rate of the step-size check (``optax.adam`` against itself)."""
LM_CHARS = 1_000_000
"""Characters of the language model's corpus: 400 steps of 32 windows of 64 characters see
each training character at most once (on a small corpus the model memorises it)."""

PAIRS = [
    ("adam8bit", lambda: Q.adam8bit(1e-3), "optax.adam", lambda: optax.adam(1e-3), 1.5),
    ("adamw8bit", lambda: Q.adamw8bit(1e-3), "optax.adamw", lambda: optax.adamw(1e-3), 1.5),
    ("lion8bit", lambda: Q.lion8bit(1e-4), "optax.lion", lambda: optax.lion(1e-4), None),
]


def _bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def state_bytes(scale: float) -> dict[str, Any]:
    shapes = model_shapes(scale)
    abstract = {
        layer: {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in leaves.items()}
        for layer, leaves in shapes.items()
    }
    n = sum(math.prod(s) for leaves in shapes.values() for s in leaves.values())
    rows = []
    for name, ours, anchor_name, anchor, _ in PAIRS:
        b_ours = _bytes(jax.eval_shape(ours().init, abstract))
        b_anchor = _bytes(jax.eval_shape(anchor().init, abstract))
        rows.append({"optimizer": name, "anchor": anchor_name, "ours_bytes": b_ours,
                     "anchor_bytes": b_anchor, "ratio": b_ours / b_anchor,
                     "target": 0.27, "pass": b_ours / b_anchor <= 0.27})  # fmt: skip
    return {"num_params": n, "rows": rows}


def update_step(scale: float, repeats: int, inner: int) -> dict[str, Any]:
    shapes = model_shapes(scale)
    params = random_tree(shapes, 0, 0.05)
    grads = random_tree(shapes, 1, 1e-2)
    rows = []
    for name, ours, anchor_name, anchor, target in PAIRS:
        a, b = _Runner(ours(), params, grads, inner), _Runner(anchor(), params, grads, inner)
        t = H.interleaved({"ours": a, "anchor": b}, repeats=repeats, warmup=1)
        so, sa = H.summary(t["ours"], inner), H.summary(t["anchor"], inner)
        ratio = H.paired_ratio(t["ours"], t["anchor"])
        rows.append({"optimizer": name, "anchor": anchor_name,
                     "ours_median_ms": 1e3 * so["median_s"], "ours_min_ms": 1e3 * so["min_s"],
                     "anchor_median_ms": 1e3 * sa["median_s"], "anchor_min_ms": 1e3 * sa["min_s"],
                     **ratio, "target": target,
                     "pass": None if target is None else ratio["ratio_median"] <= target,
                     "ours_compile_s": a.compile_s, "anchor_compile_s": b.compile_s})  # fmt: skip
        print(f"  {name:10s} {ratio['ratio_median']:.2f}x {anchor_name}", flush=True)
        del a, b
    return {"repeats": repeats, "steps_per_repeat": inner, "rows": rows,
            "bitsandbytes": bnb_anchor(shapes, repeats)}  # fmt: skip


def bnb_anchor(shapes, repeats: int) -> dict[str, Any] | None:
    """bitsandbytes' CPU Adam8bit against torch's Adam (foreach), interleaved; None if absent."""
    try:
        import bitsandbytes as bnb
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    made = {}
    for name in ("bnb.Adam8bit", "torch.Adam"):
        ps = [torch.randn(*s) * 0.05 for leaves in shapes.values() for s in leaves.values()]
        ps = [torch.nn.Parameter(p.permute(*reversed(range(p.ndim))).contiguous()) for p in ps]
        for p in ps:
            p.grad = torch.randn_like(p) * 1e-2
        opt = bnb.optim.Adam8bit(ps, lr=1e-3) if name == "bnb.Adam8bit" else torch.optim.Adam(ps)
        made[name] = opt
    cases = {k: (lambda o=o: o.step()) for k, o in made.items()}
    for c in cases.values():
        c()
    t = {k: [] for k in cases}
    for r in range(repeats):
        for k in list(cases) if r % 2 == 0 else list(cases)[::-1]:
            s = time.perf_counter()
            cases[k]()
            t[k].append(time.perf_counter() - s)
    ratio = H.paired_ratio(t["bnb.Adam8bit"], t["torch.Adam"])
    return {"bnb_median_ms": 1e3 * H.summary(t["bnb.Adam8bit"])["median_s"],
            "torch_median_ms": 1e3 * H.summary(t["torch.Adam"])["median_s"],
            "torch_threads": torch.get_num_threads(), **ratio}  # fmt: skip


# ---------------------------------------------------------------------- char-level transformer


CORPUS_MODULES = (
    "textwrap", "argparse", "unittest.case", "typing", "inspect", "collections", "dataclasses",
    "pathlib", "logging", "subprocess", "http.client", "email.message", "functools", "enum",
    "tarfile", "zipfile", "shutil", "difflib", "pdb", "pydoc", "calendar", "decimal",
    "fractions", "statistics", "random", "csv", "configparser", "ast", "tokenize", "traceback",
    "threading", "socket", "urllib.parse", "urllib.request", "optparse", "gettext", "locale",
)  # fmt: skip
"""Standard-library modules whose source is the text corpus, in this order."""


def corpus(max_chars: int) -> str:
    """Text the environment ships: the source of Python standard-library modules
    (:data:`CORPUS_MODULES` in order, up to about 2.4 million characters)."""
    import importlib

    parts, total = [], 0
    for name in CORPUS_MODULES:
        if total >= max_chars:
            break
        parts.append(inspect.getsource(importlib.import_module(name)))
        total += len(parts[-1])
    return "".join(parts)[:max_chars]


def lm_workload(
    num_steps: int,
    seq: int = 64,
    d: int = 128,
    layers: int = 2,
    heads: int = 4,
    chars: int = 48_000,
):
    """A pre-LN decoder-only transformer on characters (pure JAX), as a :class:`W.Workload`:
    the first ``chars`` characters of :func:`corpus`, 90% for training, the rest for testing."""
    text = corpus(chars)
    vocab = sorted(set(text))
    ids = np.asarray([vocab.index(c) for c in text], np.int32)
    n_win = (ids.size - 1) // seq
    x = ids[: n_win * seq].reshape(n_win, seq)
    y = ids[1 : n_win * seq + 1].reshape(n_win, seq)
    split = int(0.9 * n_win)
    data = {"x_train": jnp.asarray(x[:split]), "y_train": jnp.asarray(y[:split]),
            "x_test": jnp.asarray(x[split:]), "y_test": jnp.asarray(y[split:])}  # fmt: skip
    v = len(vocab)

    def init(key):
        ks = iter(jax.random.split(key, 4 + 4 * layers))
        lim = math.sqrt(6 / (v + d))
        p = {"embed": jax.random.uniform(next(ks), (v, d), minval=-lim, maxval=lim),
             "pos": 0.02 * jax.random.normal(next(ks), (seq, d)),
             "head": jax.random.normal(next(ks), (d, v)) / math.sqrt(d)}  # fmt: skip
        for i in range(layers):
            p[f"attn{i}"] = jax.random.normal(next(ks), (d, 3 * d)) / math.sqrt(d)
            p[f"proj{i}"] = jax.random.normal(next(ks), (d, d)) / math.sqrt(d) / layers
            p[f"up{i}"] = jax.random.normal(next(ks), (d, 4 * d)) / math.sqrt(d)
            p[f"down{i}"] = jax.random.normal(next(ks), (4 * d, d)) / math.sqrt(4 * d) / layers
        return p

    def norm(h):
        return (h - h.mean(-1, keepdims=True)) / jnp.sqrt(h.var(-1, keepdims=True) + 1e-5)

    def apply(p, tokens):
        h = norm(p["embed"][tokens]) + p["pos"]
        mask = jnp.tril(jnp.ones((seq, seq), bool))
        for i in range(layers):
            q, k, val = jnp.split(norm(h) @ p[f"attn{i}"], 3, axis=-1)
            sh = lambda t: t.reshape(*t.shape[:-1], heads, d // heads)
            att = jnp.einsum("bqhd,bkhd->bhqk", sh(q), sh(k)) / math.sqrt(d // heads)
            att = jax.nn.softmax(jnp.where(mask, att, -1e9), axis=-1)
            o = jnp.einsum("bhqk,bkhd->bqhd", att, sh(val)).reshape(h.shape)
            h = h + o @ p[f"proj{i}"]
            h = h + jax.nn.gelu(norm(h) @ p[f"up{i}"]) @ p[f"down{i}"]
        return norm(h) @ p["head"]

    def total(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, x), y).sum()

    def loss(p, batch):
        """Mean cross-entropy; evaluation batches run in chunks of 256 windows (memory)."""
        x, y = batch
        n, chunk = x.shape[0], 256
        if n <= chunk:
            return total(p, x, y) / y.size
        k = n // chunk
        fold = lambda a: a[: k * chunk].reshape(k, chunk, *a.shape[1:])
        s = jax.lax.map(lambda xy: total(p, *xy), (fold(x), fold(y))).sum()
        if n > k * chunk:
            s = s + total(p, x[k * chunk :], y[k * chunk :])
        return s / y.size

    desc = f"char LM, {layers} layers, d={d}, context {seq}, {chars} characters"
    return W.Workload(
        name="char_transformer", description=desc,
        init=init, apply=apply, loss=loss, metric=loss, metric_name="test_loss",
        target=0.0, higher_is_better=False, data=data, batch_size=32, num_steps=num_steps,
        eval_every=num_steps // 4,
    )  # fmt: skip


def regularised(wl: W.Workload, num_steps: int, l2: float = L2) -> W.Workload:
    """``wl`` with ``l2 / 2 * sum of squared weights`` (kernels, not biases) added to its loss.

    The objective then has a positive minimum that a converged run reaches whatever the
    optimizer: its final value measures where the optimizer ends up, not how fast it moves
    towards zero loss on a training split the network can memorise.
    """
    base = wl.loss

    def loss(params, batch):
        weights = [x for x in jax.tree.leaves(params) if x.ndim >= 2]
        return base(params, batch) + 0.5 * l2 * sum(jnp.sum(w**2) for w in weights)

    return dataclasses.replace(
        wl, name=f"{wl.name}_l2", loss=loss, num_steps=num_steps, eval_every=num_steps // 10,
        description=f"{wl.description}, + {l2:g}/2 |W|^2, to convergence",
    )  # fmt: skip


def _paired(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float | None]:
    """Mean over seeds of the per-seed ratio − 1, and its standard error."""
    d = ours / ref - 1
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else None


def _compare(wl: W.Workload, seeds: int, make_schedule) -> dict[str, Any]:
    """adam8bit against optax.adam, same seeds, batches and schedule; paired statistics.

    Also ``optax.adam`` at ``LR_CHECK`` times the schedule against ``optax.adam``, paired the
    same way (``step_size_sensitivity``).
    """
    sched = make_schedule(wl.num_steps)
    faster = (lambda t: LR_CHECK * sched(t)) if callable(sched) else LR_CHECK * sched
    contenders = {
        "optax.adam": optax.adam(sched),
        "adam8bit": Q.adam8bit(sched),
        "optax.adam_lr_check": optax.adam(faster),
    }
    params = [W.init_params(wl, s) for s in range(seeds)]
    idx = [jnp.asarray(W.batch_indices(wl, s)) for s in range(seeds)]
    runs = {k: [] for k in contenders}
    compiled = {
        k: H.compile_timed(W.make_train(wl, tx), params[0], idx[0], wl.data)
        for k, tx in contenders.items()
    }
    for s in range(seeds):
        for k in contenders:
            runs[k].append(jax.device_get(compiled[k][0](params[s], idx[s], wl.data)))
    res = {}
    for k in contenders:
        final = [float(r.eval_train_loss[-1]) for r in runs[k]]
        res[k] = {
            "final_train_loss": float(np.mean(final)),
            "final_train_loss_seeds": final,
            "final_test_metric": float(np.mean([r.eval_metric[-1] for r in runs[k]])),
            "curve_train_loss": np.mean([r.eval_train_loss for r in runs[k]], 0).tolist(),
            "eval_step": np.asarray(runs[k][0].eval_step).tolist(),
            "compile_s": compiled[k][1],
        }
    seeds_of = lambda k: np.asarray(res[k]["final_train_loss_seeds"])
    ours, ref = seeds_of("adam8bit"), seeds_of("optax.adam")
    diff, se = _paired(ours, ref)
    check, check_se = _paired(seeds_of("optax.adam_lr_check"), ref)
    return {
        "description": wl.description, "num_params": wl.num_params, "num_steps": wl.num_steps,
        "seeds": seeds,
        "eight_bit_params": int(sum(x.size for x in jax.tree.leaves(params[0]) if x.size >= 4096)),
        "results": res,
        "relative_difference": float(ours.mean() / ref.mean() - 1),
        "paired_difference": diff,
        "paired_difference_se": se,
        "step_size_sensitivity": {"lr_factor": LR_CHECK, "paired_difference": check,
                                  "paired_difference_se": check_se},
        "fp32_seed_spread": float((ref.max() - ref.min()) / ref.mean()) if seeds > 1 else None,
    }  # fmt: skip


def verdict(diff: float, se: float | None, target: float) -> dict[str, Any]:
    """PASS within the target; FAIL if more than two standard errors beyond it; else the seeds
    cannot tell (the difference is within noise of the target)."""
    if abs(diff) <= target:
        return {"pass": True, "verdict": "PASS"}
    if se is None or abs(diff) - 2 * se > target:
        return {"pass": False, "verdict": "FAIL"}
    return {"pass": None, "verdict": "within noise"}


def training(quick: bool, seeds: int) -> dict[str, Any]:
    """The final-loss criterion on converged objectives, and runs that have not converged."""
    cosine = lambda n: optax.cosine_decay_schedule(LR, n)
    constant = lambda n: LR
    lm_seeds = min(seeds, 4)
    final = [
        (regularised(W.digits_mlp(), 200 if quick else 4000), cosine, seeds),
        (regularised(W.digits_cnn(), 100 if quick else 4000), cosine, seeds),
        (regularised(lm_workload(100 if quick else 1000, d=64), 100 if quick else 1000), cosine,
         lm_seeds),
    ]  # fmt: skip
    unconverged = [
        (W.digits_mlp(100 if quick else 400), constant, seeds),
        (W.digits_cnn(100 if quick else 400), constant, seeds),
        (lm_workload(60) if quick else lm_workload(400, chars=LM_CHARS), cosine, lm_seeds),
    ]
    out: dict[str, Any] = {"final": {}, "unconverged": {}}
    for wl, sched, n in final:
        r = _compare(wl, n, sched)
        r.update(target=0.01, **verdict(r["paired_difference"], r["paired_difference_se"], 0.01))
        out["final"][wl.name] = r
        print(f"  {wl.name}: adam8bit/adam final train loss "
              f"{r['results']['adam8bit']['final_train_loss']:.5g}/"
              f"{r['results']['optax.adam']['final_train_loss']:.5g}", flush=True)  # fmt: skip
    for wl, sched, n in unconverged:
        r = _compare(wl, n, sched)
        out["unconverged"][wl.name] = r
        print(f"  {wl.name} (not converged): {100 * r['paired_difference']:+.2f}%", flush=True)
    return out


# -------------------------------------------------------------------------------- reporting


def tables(res: dict[str, Any]) -> str:
    sb = res["state_bytes"]
    parts = [f"State bytes on a {sb['num_params'] / 1e6:.1f}M-parameter float32 pytree:", ""]
    parts.append(H.markdown_table(
        ["optimizer", "anchor", "ours MB", "anchor MB", "ratio", "target", "result"],
        [[r["optimizer"], r["anchor"], f"{r['ours_bytes'] / 1e6:.2f}",
          f"{r['anchor_bytes'] / 1e6:.2f}", f"{r['ratio']:.4f}", "≤ 0.27",
          "PASS" if r["pass"] else "FAIL"] for r in sb["rows"]]))  # fmt: skip
    us = res.get("update_step")
    if us:
        parts += ["", f"Update step (donated, interleaved, {us['repeats']} repeats x "
                  f"{us['steps_per_repeat']} steps; the CPU was shared):", ""]  # fmt: skip
        parts.append(H.markdown_table(
            ["optimizer", "anchor", "ours ms (med/min)", "anchor ms (med/min)", "ratio",
             "target", "result", "compile s (ours/anchor)"],
            [[r["optimizer"], r["anchor"], f"{r['ours_median_ms']:.1f} / {r['ours_min_ms']:.1f}",
              f"{r['anchor_median_ms']:.1f} / {r['anchor_min_ms']:.1f}",
              f"{r['ratio_median']:.2f}", "—" if r["target"] is None else f"≤ {r['target']}",
              "—" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL"),
              f"{r['ours_compile_s']:.2f} / {r['anchor_compile_s']:.2f}"]
             for r in us["rows"]]))  # fmt: skip
        bn = us.get("bitsandbytes")
        if bn:
            parts += ["", f"Anchor: bitsandbytes CPU Adam8bit {bn['bnb_median_ms']:.0f} ms vs "
                      f"torch Adam {bn['torch_median_ms']:.0f} ms per step "
                      f"(ratio {bn['ratio_median']:.2f}x)."]  # fmt: skip
    tr = res.get("training")
    if tr:

        def pm(v):
            se = v["paired_difference_se"]
            return f"{100 * v['paired_difference']:+.2f}%" + (
                "" if se is None else f" ± {100 * se:.2f}"
            )

        def spread(v):
            return "—" if v["fp32_seed_spread"] is None else f"{100 * v['fp32_seed_spread']:.2f}%"

        check = f"Adam at {LR_CHECK:g}x LR"
        parts += ["", f"Final training loss (whole training split; peak learning rate {LR:g}; "
                  "same seeds, batches and schedule for both; difference: mean over seeds of "
                  "the per-seed ratio − 1, ± its standard error; last column: optax.adam at "
                  f"{LR_CHECK:g}x the learning rate against optax.adam, the same way):",
                  ""]  # fmt: skip
        parts.append(H.markdown_table(
            ["workload", "params (8-bit)", "steps", "seeds", "optax.adam", "adam8bit",
             "difference", "fp32 seed spread", "target", "result", check],
            [[k, f"{v['num_params']} ({v['eight_bit_params']})", v["num_steps"], v["seeds"],
              f"{v['results']['optax.adam']['final_train_loss']:.5g}",
              f"{v['results']['adam8bit']['final_train_loss']:.5g}", pm(v), spread(v),
              "≤ 1%", v["verdict"], pm(v["step_size_sensitivity"])]
             for k, v in tr["final"].items()]))  # fmt: skip
        parts += ["", "Runs that have not converged (no regulariser: the digits networks at a "
                  "constant learning rate on a memorisable training split, the transformer to "
                  "the end of a cosine schedule in less than one pass over its corpus); their "
                  "final loss measures how fast each optimizer moves, not a final-loss test:",
                  ""]  # fmt: skip
        parts.append(H.markdown_table(
            ["workload", "params (8-bit)", "steps", "seeds", "optax.adam", "adam8bit",
             "difference", "fp32 seed spread", check],
            [[k, f"{v['num_params']} ({v['eight_bit_params']})", v["num_steps"], v["seeds"],
              f"{v['results']['optax.adam']['final_train_loss']:.4g}",
              f"{v['results']['adam8bit']['final_train_loss']:.4g}", pm(v), spread(v),
              pm(v["step_size_sensitivity"])]
             for k, v in tr["unconverged"].items()]))  # fmt: skip
    return "\n".join(parts) + "\n"


def plot(res: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = {
        **res.get("training", {}).get("final", {}),
        **{
            f"{k} (not converged)": v
            for k, v in res.get("training", {}).get("unconverged", {}).items()
        },
    }
    cols = min(3, max(1, len(tr)))
    rows = max(1, math.ceil(len(tr) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(tr) :]:
        ax.set_visible(False)
    styles = (("optax.adam", "k--", "optax.adam"), ("adam8bit", "C0-", "adam8bit"),
              ("optax.adam_lr_check", "C1:", f"optax.adam, {LR_CHECK:g}x LR"))  # fmt: skip
    for ax, (name, d) in zip(axes.flat, tr.items(), strict=False):
        for opt, style, label in styles:
            r = d["results"][opt]
            ax.semilogy(r["eval_step"], r["curve_train_loss"], style, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (mean over seeds)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per digits workload (default 5; the transformers use at most 4)",
    )
    ap.add_argument("--repeats", type=int, default=None, help="update-step repeats")
    ap.add_argument("--skip-update-step", action="store_true")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--readme", type=pathlib.Path, default=None, help="where the tables go")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    scale = 1 / 3 if args.quick else 1.0
    res: dict[str, Any] = {"environment": H.environment(argv), "quick": args.quick}
    res["state_bytes"] = state_bytes(1.0)
    if not args.skip_update_step:
        print("update step:", flush=True)
        repeats = args.repeats or (5 if args.quick else 15)
        res["update_step"] = update_step(scale, repeats, 1 if args.quick else 2)
    if not args.skip_training:
        print("training:", flush=True)
        res["training"] = training(args.quick, args.seeds or (2 if args.quick else 5))
    res["total_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    H.write_json(args.out / "quantized.json", res)
    if res.get("training"):
        plot(res, args.out / "quantized.png")
    text = tables(res)
    print(text)
    for readme in H.readme_targets("quantized", args.out, args.readme):
        H.update_readme("quantized", text, readme)
        print(f"tables written to {readme}")
    return res


if __name__ == "__main__":
    main()
