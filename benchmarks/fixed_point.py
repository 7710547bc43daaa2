"""Benchmark of fixed-point solvers: Anderson acceleration against plain iteration and jaxopt.

Two contractive problems in float64 with ``x* = T(x*)``:

1. **affine**: ``T(x) = Mx + b`` with a random symmetric ``M`` whose eigenvalues are spread
   uniformly over ``[0, 0.99]`` (a slow contraction: plain iteration needs about
   ``log(tol)/log(0.99)`` steps; ``x*`` is ``(I − M)⁻¹b``);
2. **tanh**: ``T(x) = tanh(Mx) + b`` with the same ``M`` (Lipschitz constant ≤ 0.99).

Methods, all with ``tol`` on ``‖T(x) − x‖₂`` and the same ``max_steps``: our
``FixedPointIteration``; our ``AndersonAcceleration`` with jaxopt's defaults (``history_size=5``,
``ridge=1e-5``) and with ``ridge=1e-10``; jaxopt 0.8.5's ``AndersonAcceleration`` with the same
two settings (the anchor). Reported: iterations, final residual, the error against the exact
fixed point (affine: a dense solve; tanh: plain iteration to 1e-13), plus ours with
``relative_ridge=True`` (no jaxopt counterpart), the time of one jitted
``run`` (median and min of interleaved repeats, compile time apart) and the paired time ratio
ours / jaxopt for the same settings.

Writes ``<out>/fixed_point.json`` and ``<out>/fixed_point.png`` (residual against iteration) and
prints a markdown table, which also goes into ``benchmarks/README.md`` when writing to the
default ``benchmarks/results``.

    python benchmarks/fixed_point.py            # n = 500 (about a minute on 2 CPU cores)
    python benchmarks/fixed_point.py --quick    # n = 100 (CI size, about 20 s)
"""

from __future__ import annotations

import argparse
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

from jaxopt_papers.fixed_point import AndersonAcceleration, FixedPointIteration  # noqa: E402

SECTION = "fixed_point"


def affine(x: jax.Array, M: jax.Array, b: jax.Array) -> jax.Array:
    return M @ x + b


def tanh_map(x: jax.Array, M: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.tanh(M @ x) + b


def problem(n: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    m = (q * np.linspace(0.0, 0.99, n)) @ q.T
    return jnp.asarray(m), jnp.asarray(rng.normal(size=n))


def methods(tol: float, max_steps: int) -> dict[str, tuple[str, Callable, Callable]]:
    """name -> (family, make(fun) -> run(x0, M, b) -> (x, num_steps, error), trace(fun))."""

    def ours(cls: Any, **kw: Any) -> Callable:
        def make(fun: Callable) -> Callable:
            solver = cls(fun, tol=tol, max_steps=max_steps, throw=False, **kw)
            return lambda x0, M, b: _out(solver.run(x0, M, b))

        return make

    def ref(**kw: Any) -> Callable:
        def make(fun: Callable) -> Callable:
            solver = jaxopt.AndersonAcceleration(fun, tol=tol, maxiter=max_steps, **kw)

            def run(x0: jax.Array, M: jax.Array, b: jax.Array) -> tuple:
                p, s = solver.run(x0, M, b)
                return p, s.iter_num, s.error

            return run

        return make

    return {
        "ours FixedPointIteration": ("fpi", ours(FixedPointIteration)),
        "ours Anderson (ridge 1e-5)": ("aa-1e-5", ours(AndersonAcceleration)),
        "jaxopt Anderson (ridge 1e-5)": ("aa-1e-5", ref()),
        "ours Anderson (ridge 1e-10)": ("aa-1e-10", ours(AndersonAcceleration, ridge=1e-10)),
        "jaxopt Anderson (ridge 1e-10)": ("aa-1e-10", ref(ridge=1e-10)),
        "ours Anderson (relative ridge 1e-10)": (
            "aa-rel",
            ours(AndersonAcceleration, ridge=1e-10, relative_ridge=True),
        ),
    }


def _out(sol: Any) -> tuple:
    return sol.value, sol.stats["num_steps"], sol.stats["error"]


def residual_curve(fun: Callable, M: jax.Array, b: jax.Array, kind: str, steps: int) -> list:
    """``‖T(x_k) − x_k‖`` for k = 1..steps by manual stepping of our solver."""
    if kind == "fpi":
        solver = FixedPointIteration(fun, tol=0.0, max_steps=steps)
    else:
        solver = AndersonAcceleration(fun, tol=0.0, max_steps=steps,
                                      ridge=1e-5 if kind == "aa-1e-5" else 1e-10,
                                      relative_ridge=kind == "aa-rel")  # fmt: skip
    x0 = jnp.zeros_like(b)
    step = jax.jit(lambda p, s: solver.step(p, s, M, b))
    p, s = x0, solver.init(x0, M, b)
    out = []
    for _ in range(steps):
        p, s = step(p, s)
        out.append(float(s.error))
    return out


def bench_problem(name: str, fun: Callable, n: int, tol: float, max_steps: int,
                  repeats: int) -> dict:  # fmt: skip
    M, b = problem(n)
    x0 = jnp.zeros(n)
    if name == "affine":
        exact = np.linalg.solve(np.eye(n) - np.asarray(M), np.asarray(b))
    else:
        ref = FixedPointIteration(fun, tol=1e-13, max_steps=50000).run(x0, M, b)
        exact = np.asarray(ref.value)
    rows, fns = [], {}
    for label, (family, make) in methods(tol, max_steps).items():
        run = make(fun)
        jitted, compile_s = H.jit_compiled(run, x0, M, b)
        x, steps, err = jax.block_until_ready(jitted(x0, M, b))
        fns[label] = lambda j=jitted: j(x0, M, b)
        rows.append({
            "method": label, "family": family, "num_steps": int(steps),
            "residual": float(err), "error_vs_exact": float(np.max(np.abs(np.asarray(x) - exact))),
            "compile_s": compile_s,
        })  # fmt: skip
    times = H.interleaved(fns, repeats)
    for row in rows:
        row.update(H.summary(times[row["method"]]))
    for row in rows:
        if row["method"].startswith("ours"):  # against jaxopt with the same settings, else
            anchor = row["method"].replace("ours", "jaxopt")  # against jaxopt's defaults
            anchor = anchor if anchor in times else "jaxopt Anderson (ridge 1e-5)"
            row.update(H.paired_ratio(times[row["method"]], times[anchor]))
            row["anchor"] = anchor
    curves = {
        fam: residual_curve(fun, M, b, fam, min(max_steps, 300))
        for fam in ("fpi", "aa-1e-5", "aa-1e-10", "aa-rel")
    }
    return {"problem": name, "n": n, "tol": tol, "max_steps": max_steps, "rows": rows,
            "curves": curves}  # fmt: skip


def table(results: list[dict]) -> str:
    headers = ["problem", "n", "method", "steps", "residual", "max |x − x*|", "time (ms)",
               "min (ms)", "ratio vs jaxopt"]  # fmt: skip
    body = []
    for res in results:
        for r in res["rows"]:
            body.append([
                res["problem"], res["n"], r["method"], r["num_steps"], H.fmt(r["residual"]),
                H.fmt(r["error_vs_exact"]), H.fmt(1e3 * r["median_s"]), H.fmt(1e3 * r["min_s"]),
                H.fmt(r.get("ratio_median")),
            ])  # fmt: skip
    return H.markdown_table(headers, body)


def plot(results: list[dict], path: pathlib.Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot is optional
        return
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.5), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for fam, curve in res["curves"].items():
            ax.semilogy(np.arange(1, len(curve) + 1), np.maximum(curve, 1e-300), label=fam)
        ax.axhline(res["tol"], color="gray", lw=0.5, ls="--")
        ax.set(title=f"{res['problem']} (n = {res['n']})", xlabel="iteration",
               ylabel="‖T(x) − x‖")  # fmt: skip
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI size: n = 100, 3 repeats")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR)
    ap.add_argument("--readme", type=pathlib.Path, default=None)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    n = args.n or (100 if args.quick else 500)
    repeats = args.repeats or (3 if args.quick else 9)
    t0 = time.perf_counter()
    results = [
        bench_problem("affine", affine, n, 1e-8, 5000, repeats),
        bench_problem("tanh", tanh_map, n, 1e-8, 5000, repeats),
    ]
    payload = {"environment": H.environment(argv), "quick": args.quick, "results": results,
               "total_s": time.perf_counter() - t0}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    H.write_json(args.out / f"{SECTION}.json", payload)
    plot(results, args.out / f"{SECTION}.png")
    content = (
        f"Fixed point `x = T(x)`, float64, tol 1e-8 on ‖T(x) − x‖₂, {repeats} interleaved "
        "repeats; time of one jitted `run` (compile apart); ratio = ours / jaxopt's Anderson with "
        "the same settings (for plain iteration and the relative ridge: with jaxopt's defaults), "
        "median of paired repeats.\n\n" + table(results)
    )
    print(content)
    for target in H.readme_targets(SECTION, args.out, args.readme):
        H.update_readme(SECTION, content, target)
    return payload


if __name__ == "__main__":
    main()
