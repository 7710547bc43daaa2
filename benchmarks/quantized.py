"""Benchmark of the 8-bit optimizers against the float32 optax optimizers a user would pick.

(a) **State bytes** of ``adam8bit``/``adamw8bit``/``lion8bit`` against ``optax.adam``/
    ``adamw``/``lion`` on the ~10.1M-parameter conv-net pytree of ``benchmarks/optimizers.py``
    (issue target: ≤ 0.27x Adam's).
(b) **Update-step time** on that pytree: the jitted, donated
    ``(params, grads, state) -> (apply_updates(params, updates), new_state)`` of ours and of the
    anchor, interleaved repeat by repeat in one process (the machine may be shared: interleaving
    keeps the ratio usable); median and min per step, the ratio (median of paired per-repeat
    ratios; issue target ≤ 1.5x optax.adam). bitsandbytes' CPU ``Adam8bit`` and torch's ``Adam``
    on the same sizes are timed as an anchor when torch and bitsandbytes are installed.
(c) **Training curves** with the same batches, seeds and learning rate: the digits MLP and CNN
    (:mod:`jaxopt_papers.tour.workloads`) and a small character-level transformer language model
    on text the environment ships (the source of Python standard-library modules); final
    training loss of ``adam8bit`` against ``optax.adam`` (issue target: within 1%).

Writes ``<out>/quantized.json`` and ``<out>/quantized.png`` and prints markdown tables, which go
into ``benchmarks/README.md`` when writing to the default ``benchmarks/results`` (or to
``--readme``)::

    python benchmarks/quantized.py            # full size (a few minutes on 2 CPU cores)
    python benchmarks/quantized.py --quick    # CI size
"""

from __future__ import annotations

import argparse
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


def corpus(max_chars: int) -> str:
    """Text the environment ships: the source of some Python standard-library modules."""
    import argparse as m1
    import textwrap as m2
    import unittest.case as m3

    text = "".join(inspect.getsource(m) for m in (m2, m1, m3))
    return text[:max_chars]


def lm_workload(num_steps: int, seq: int = 64, d: int = 128, layers: int = 2, heads: int = 4):
    """A pre-LN decoder-only transformer on characters (pure JAX), as a :class:`W.Workload`."""
    text = corpus(48_000)
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

    def loss(p, batch):
        logits = apply(p, batch[0])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

    return W.Workload(
        name="char_transformer", description=f"char LM, {layers} layers, d={d}, context {seq}",
        init=init, apply=apply, loss=loss, metric=loss, metric_name="test_loss",
        target=0.0, higher_is_better=False, data=data, batch_size=32, num_steps=num_steps,
        eval_every=num_steps // 4,
    )  # fmt: skip


def training(quick: bool, seeds: int) -> dict[str, Any]:
    wls = [W.digits_mlp(200 if quick else 1000), W.digits_cnn(100 if quick else 400),
           lm_workload(60 if quick else 400)]  # fmt: skip
    contenders = {"optax.adam": lambda: optax.adam(3e-3), "adam8bit": lambda: Q.adam8bit(3e-3)}
    out = {}
    for wl in wls:
        runs = {k: [] for k in contenders}
        compiled = {}
        params = [W.init_params(wl, s) for s in range(seeds)]
        idx = [jnp.asarray(W.batch_indices(wl, s)) for s in range(seeds)]
        for name, make in contenders.items():
            compiled[name] = H.compile_timed(W.make_train(wl, make()), params[0], idx[0], wl.data)
        for s in range(seeds):
            for name in contenders:
                res = jax.device_get(compiled[name][0](params[s], idx[s], wl.data))
                runs[name].append(res)
        res_wl = {}
        for name in contenders:
            final = [float(r.eval_train_loss[-1]) for r in runs[name]]
            res_wl[name] = {
                "final_train_loss": float(np.mean(final)),
                "final_train_loss_seeds": final,
                "final_test_metric": float(np.mean([r.eval_metric[-1] for r in runs[name]])),
                "curve_train_loss": np.mean([r.eval_train_loss for r in runs[name]], 0).tolist(),
                "eval_step": np.asarray(runs[name][0].eval_step).tolist(),
                "compile_s": compiled[name][1],
            }
        a, b = res_wl["adam8bit"]["final_train_loss"], res_wl["optax.adam"]["final_train_loss"]
        seeds_a = res_wl["optax.adam"]["final_train_loss_seeds"]
        out[wl.name] = {
            "description": wl.description, "num_params": wl.num_params, "num_steps": wl.num_steps,
            "eight_bit_params": int(
                sum(x.size for x in jax.tree.leaves(params[0]) if x.size >= 4096)
            ),
            "results": res_wl, "relative_difference": a / b - 1,
            "fp32_seed_spread": (max(seeds_a) - min(seeds_a)) / b if seeds > 1 else None,
            "target": 0.01, "pass": abs(a / b - 1) <= 0.01,
        }  # fmt: skip
        print(f"  {wl.name}: adam8bit/adam final train loss {a:.5g}/{b:.5g}", flush=True)
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
        parts += ["", "Final training loss (whole training split, mean over seeds, same batches "
                  "and learning rate 3e-3):", ""]  # fmt: skip
        parts.append(H.markdown_table(
            ["workload", "params (8-bit)", "steps", "optax.adam", "adam8bit", "difference",
             "fp32 seed spread", "target", "result"],
            [[k, f"{v['num_params']} ({v['eight_bit_params']})", v["num_steps"],
              f"{v['results']['optax.adam']['final_train_loss']:.5g}",
              f"{v['results']['adam8bit']['final_train_loss']:.5g}",
              f"{100 * v['relative_difference']:+.2f}%",
              "—" if v["fp32_seed_spread"] is None else f"{100 * v['fp32_seed_spread']:.2f}%",
              "≤ 1%", "PASS" if v["pass"] else "FAIL"] for k, v in tr.items()]))  # fmt: skip
    return "\n".join(parts) + "\n"


def plot(res: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = res.get("training", {})
    fig, axes = plt.subplots(1, max(1, len(tr)), figsize=(4.5 * max(1, len(tr)), 3.6))
    for ax, (name, d) in zip(np.atleast_1d(axes), tr.items(), strict=False):
        for opt, style in (("optax.adam", "k--"), ("adam8bit", "C0-")):
            r = d["results"][opt]
            ax.semilogy(r["eval_step"], r["curve_train_loss"], style, label=opt)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per workload (default 2)")
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
        res["training"] = training(args.quick, args.seeds or (1 if args.quick else 2))
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
