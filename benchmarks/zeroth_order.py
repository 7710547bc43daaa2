"""Benchmark of the zeroth-order estimators: the memory of a MeZO step.

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

Writes ``<out>/zeroth_order.json`` and ``<out>/zeroth_order.png`` and prints a markdown table,
which goes into ``benchmarks/README.md`` when writing to the default ``benchmarks/results`` (or
to ``--readme``)::

    python benchmarks/zeroth_order.py            # full size (about a minute: compilation only)
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
import optax  # noqa: E402
from quantized import lm_workload  # noqa: E402

from jaxopt_papers import zeroth_order as zo  # noqa: E402
from jaxopt_papers.tour import workloads as W  # noqa: E402

SIZES = ((128, 2), (256, 4), (512, 4), (768, 6))
"""(width d, layers) of the transformers; 4 heads, context 64, batch 32."""
QUICK_SIZES = ((32, 1), (64, 2))
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
    return "\n".join([
        f"**Memory of a MeZO step** (compiled peak, MiB; character transformer, batch "
        f"{mem['batch']} x {mem['context']}; params and optimizer state donated; in brackets: "
        "over the forward pass):",
        "",
        H.markdown_table(["model", "params MiB", "forward", "mezo_step", "mezo (transformation)",
                          "adam (backprop)", "mezo_step / adam"], rows),
        "",
        f"- Largest model ({big['num_params'] / 1e6:.1f}M parameters): `mezo_step` "
        f"{big['over_forward']:.2f}x the forward pass (target ≤ 1.2: "
        f"{verdict(big['pass_forward'])}), {big['over_adam']:.2f}x the backprop Adam step "
        f"(target ≤ 0.5: {verdict(big['pass_adam'])}).",
        "- `mezo_step` shifts the donated params in place and regenerates the noise leaf after "
        "leaf: the forward pass plus about two leaves; the transformation chain returns an update "
        "the size of the params, perturbs temporaries beside them and keeps JAX's default "
        "generator's four buffers of random bits per leaf.",
    ])  # fmt: skip


def plot(res: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["memory"]["rows"]
    n = [r["num_params"] / 1e6 for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("forward", "mezo_step", "mezo (transformation)", "adam (backprop)"):
        ax.plot(n, [r[name]["peak_bytes"] / 2**20 for r in rows], "o-", label=name)
    ax.set(xscale="log", yscale="log", xlabel="parameters (millions)",
           ylabel="compiled peak memory (MiB)", title="memory of one step")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--readme", type=pathlib.Path, default=None, help="where the table goes")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": args.quick}
    print("memory", flush=True)
    payload["memory"] = memory(args.quick)
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
