"""Benchmark of L-BFGS: ours against jaxopt, optax, optimistix and scipy.

Problems (float64, the same start for every method):

1. **rosenbrock-2d** from the classic start ``(−1.2, 1)``;
2. **rosenbrock-100d** from zeros;
3. **logistic**: L2-regularised logistic regression on scikit-learn's ``load_breast_cancer``
   (standardised), ``mean log(1 + exp(−y xᵀw)) + (λ/2)‖w‖²``, ``λ = 1e-2``;
4. **mlp**: a 64–32–10 tanh MLP on scikit-learn's ``load_digits`` (first 500 images, pixels
   / 16), softmax cross-entropy + ``(λ/2)‖θ‖²`` with ``λ = 1e-3`` (a pytree of parameters).

Methods: ``jaxopt_papers.smooth.LBFGS`` (zoom line search, history 10), ``jaxopt.LBFGS`` (same
options), ``optax.lbfgs()`` (its zoom line search) iterated in a ``lax.while_loop`` until the
gradient norm reaches ``tol``, ``optimistix.LBFGS`` and ``optimistix.BFGS`` (Armijo
backtracking; they stop on a Cauchy criterion, here ``rtol = atol = tol²``), and scipy's
``L-BFGS-B`` (unbounded, ``gtol = tol`` on the max-norm of the gradient; jax's jitted value and
gradient; timed in Python). Every method but scipy stops when ``‖∇f‖₂ ≤ tol`` or at the step
limit. For each: iterations, function evaluations (where the method reports them), the final
gradient norm recomputed at the returned point, and the time of one whole solve, jitted (compile
time measured apart), the median of interleaved repeats; the ratio to jaxopt is the median of the
per-repeat paired ratios. The **hypergradient** ``d L_val(w*(λ))/dλ`` (logistic: validation
half of the data; mlp: the remaining digits) is timed for ours (implicit, CG on the Hessian) and
jaxopt (implicit, its default normal CG) and optimistix LBFGS (``ImplicitAdjoint``).

Done-when (issue): ours converges on every problem in ≤ 1.2× jaxopt's iterations and ≤ 1.1× its
time. The machine may be shared and loaded: the ratios come from interleaved repeats in one
process, so they are usable even when absolute times are not.

    python benchmarks/smooth.py            # full size
    python benchmarks/smooth.py --quick    # CI size (fewer repeats, mlp on 200 images)
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]  # the harness; the package from a plain checkout

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import _harness as H  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import optimistix as optx  # noqa: E402
import scipy.optimize as so  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402

from jaxopt_papers.smooth import LBFGS  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import jaxopt


# ---------------------------------------------------------------------------------- problems


def rosenbrock(x, _=None):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def logistic(w, lam, X, y):
    return jnp.mean(jnp.logaddexp(0.0, -y * (X @ w))) + 0.5 * lam * jnp.sum(w**2)


def mlp_loss(p, lam, X, y):
    h = jnp.tanh(X @ p["W1"] + p["b1"])
    logits = h @ p["W2"] + p["b2"]
    ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
    return ce + 0.5 * lam * (jnp.sum(p["W1"] ** 2) + jnp.sum(p["W2"] ** 2))


def problems(quick: bool) -> dict[str, dict[str, Any]]:
    Xc, yc = load_breast_cancer(return_X_y=True)
    Xc = (Xc - Xc.mean(0)) / Xc.std(0)
    yc = 2.0 * yc - 1.0
    Xd, yd = load_digits(return_X_y=True)
    n = 200 if quick else 500
    Xd = Xd / 16.0
    rng = np.random.default_rng(0)
    p0 = {
        "W1": jnp.asarray(rng.normal(size=(64, 32)) / 8.0),
        "b1": jnp.zeros(32),
        "W2": jnp.asarray(rng.normal(size=(32, 10)) / np.sqrt(32)),
        "b2": jnp.zeros(10),
    }
    half = len(yc) // 2
    return {
        "rosenbrock-2d": dict(fun=rosenbrock, x0=jnp.array([-1.2, 1.0]), hyper=0.0, data=(),
                              tol=1e-6, max_steps=1000),
        "rosenbrock-100d": dict(fun=rosenbrock, x0=jnp.zeros(100), hyper=0.0, data=(),
                                tol=1e-6, max_steps=3000),
        "logistic": dict(fun=logistic, x0=jnp.zeros(30), hyper=1e-2,
                         data=(jnp.asarray(Xc[:half]), jnp.asarray(yc[:half])),
                         val=(jnp.asarray(Xc[half:]), jnp.asarray(yc[half:])),
                         tol=1e-6, max_steps=1000),
        "mlp": dict(fun=mlp_loss, x0=p0, hyper=1e-3,
                    data=(jnp.asarray(Xd[:n]), jnp.asarray(yd[:n])),
                    val=(jnp.asarray(Xd[n:n + 500]), jnp.asarray(yd[n:n + 500])),
                    tol=1e-5, max_steps=3000),
    }  # fmt: skip


# ----------------------------------------------------------------------------------- methods


def ours(prob: dict) -> Callable:
    solver = LBFGS(prob["fun"], tol=prob["tol"], max_steps=prob["max_steps"], throw=False)

    def run(x0, lam, *data):
        sol = solver.run(x0, lam, *data)
        return sol.params, sol.num_steps, sol.num_fun_evals

    return run


def jaxopt_lbfgs(prob: dict) -> Callable:
    solver = jaxopt.LBFGS(prob["fun"], tol=prob["tol"], maxiter=prob["max_steps"])

    def run(x0, lam, *data):
        params, state = solver.run(x0, lam, *data)
        return params, state.iter_num, state.num_fun_eval

    return run


def optax_lbfgs(prob: dict) -> Callable:
    opt = optax.lbfgs()
    tol, max_steps = prob["tol"], prob["max_steps"]

    def run(x0, lam, *data):
        f = lambda x: prob["fun"](x, lam, *data)
        vg = optax.value_and_grad_from_state(f)

        def body(c):
            x, st, k, evals, _ = c
            v, g = vg(x, state=st)
            u, st = opt.update(g, st, x, value=v, grad=g, value_fn=f)
            x = optax.apply_updates(x, u)
            info = optax.tree.get(st, "info")
            gnorm = optax.tree.norm(optax.tree.get(st, "grad"))
            return x, st, k + 1, evals + info.num_linesearch_steps, gnorm

        def cond(c):
            _, _, k, _, gnorm = c
            return (k < max_steps) & (gnorm > tol)

        g0 = optax.tree.norm(jax.grad(f)(x0))
        init = (x0, opt.init(x0), jnp.asarray(0), jnp.asarray(1), g0)
        x, _, k, evals, _ = jax.lax.while_loop(cond, body, init)
        return x, k, evals

    return run


def optimistix(prob: dict, cls: type) -> Callable:
    tol = prob["tol"]
    solver = cls(rtol=tol**2, atol=tol**2)

    def run(x0, lam, *data):
        fn = lambda x, args: prob["fun"](x, *args)
        sol = optx.minimise(fn, solver, x0, (lam, *data), max_steps=prob["max_steps"], throw=False)
        return sol.value, sol.stats["num_steps"], jnp.asarray(-1)

    return run


METHODS = {
    "ours": ours,
    "jaxopt": jaxopt_lbfgs,
    "optax": optax_lbfgs,
    "optimistix-LBFGS": lambda p: optimistix(p, optx.LBFGS),
    "optimistix-BFGS": lambda p: optimistix(p, optx.BFGS),
}


def scipy_run(prob: dict) -> tuple[Callable, Callable]:
    x0 = prob["x0"]
    flat0, unravel = jax.flatten_util.ravel_pytree(x0)
    vg = jax.jit(
        jax.value_and_grad(lambda v: prob["fun"](unravel(v), prob["hyper"], *prob["data"]))
    )
    jax.block_until_ready(vg(flat0))

    def fg(v):
        value, grad = vg(jnp.asarray(v))
        return float(value), np.asarray(grad, dtype=np.float64)

    def run():
        return so.minimize(fg, np.asarray(flat0), jac=True, method="L-BFGS-B",
                           options={"gtol": prob["tol"], "ftol": 0.0,
                                    "maxiter": prob["max_steps"], "maxfun": 10**6})  # fmt: skip

    return run, unravel


# ------------------------------------------------------------------------------- benchmarking


def grad_norm(prob: dict, x: Any) -> float:
    g = jax.grad(prob["fun"])(x, prob["hyper"], *prob["data"])
    return float(optax.tree.norm(g))


def bench_problem(name: str, prob: dict, repeats: int) -> dict[str, Any]:
    lam, data = jnp.asarray(prob["hyper"]), prob["data"]
    out: dict[str, Any] = {"tol": prob["tol"], "max_steps": prob["max_steps"], "methods": {}}
    fns = {}
    for m, make in METHODS.items():
        fn, compile_s = H.jit_compiled(make(prob), prob["x0"], lam, *data)
        (x, steps, evals), _ = H.timed(lambda fn=fn: fn(prob["x0"], lam, *data))
        gn = grad_norm(prob, x)
        out["methods"][m] = {
            "num_steps": int(steps), "num_fun_evals": int(evals) if int(evals) >= 0 else None,
            "grad_norm": gn, "converged": gn <= prob["tol"] * (1 + 1e-6),
            "value": float(prob["fun"](x, lam, *data)), "compile_s": compile_s,
        }  # fmt: skip
        fns[m] = fn
        print(
            f"  {m:18s} steps {int(steps):5d}  |g| {gn:.2e}  compile {compile_s:.1f}s", flush=True
        )
    srun, unravel = scipy_run(prob)
    res = srun()
    gn = grad_norm(prob, unravel(jnp.asarray(res.x)))
    out["methods"]["scipy"] = {
        "num_steps": int(res.nit), "num_fun_evals": int(res.nfev), "grad_norm": gn,
        "converged": gn <= prob["tol"] * (1 + 1e-6), "value": float(res.fun), "compile_s": None,
    }  # fmt: skip
    cases = {m: (lambda fn=fn: fn(prob["x0"], lam, *data)[0]) for m, fn in fns.items()}
    cases["scipy"] = lambda: jnp.asarray(srun().x)
    t = H.interleaved(cases, repeats=repeats, warmup=1)
    for m in cases:
        out["methods"][m].update(H.summary(t[m]))
        out["methods"][m]["time_over_jaxopt"] = H.paired_ratio(t[m], t["jaxopt"])["ratio_median"]
    if "val" in prob:
        out["hypergradient"] = bench_hypergradient(prob, repeats)
    return out


def bench_hypergradient(prob: dict, repeats: int) -> dict[str, Any]:
    Xv, yv = prob["val"]
    data = prob["data"]
    fun = prob["fun"]

    def val_loss_of(solve):
        def loss(lam):
            x = solve(lam)
            return fun(x, 0.0, Xv, yv)

        return jax.value_and_grad(loss)

    ours_solver = LBFGS(fun, tol=prob["tol"], max_steps=prob["max_steps"], throw=False)
    jx = jaxopt.LBFGS(fun, tol=prob["tol"], maxiter=prob["max_steps"])
    ox = optx.LBFGS(rtol=prob["tol"] ** 2, atol=prob["tol"] ** 2)
    solves = {
        "ours": lambda lam: ours_solver.run(prob["x0"], lam, *data).params,
        "jaxopt": lambda lam: jx.run(prob["x0"], lam, *data).params,
        "optimistix-LBFGS": lambda lam: optx.minimise(
            lambda x, a: fun(x, *a), ox, prob["x0"], (lam, *data),
            max_steps=prob["max_steps"], throw=False,
        ).value,
    }  # fmt: skip
    lam = jnp.asarray(prob["hyper"])
    out, cases = {}, {}
    for m, solve in solves.items():
        fn, compile_s = H.jit_compiled(val_loss_of(solve), lam)
        (value, grad), _ = H.timed(lambda fn=fn: fn(lam))
        out[m] = {"value": float(value), "hypergradient": float(grad), "compile_s": compile_s}
        cases[m] = lambda fn=fn: fn(lam)
    h = 1e-4 * max(float(lam), 1e-3)
    vf = jax.jit(lambda lam: val_loss_of(solves["ours"])(lam)[0])
    fd = (float(vf(lam + h)) - float(vf(lam - h))) / (2 * h)
    t = H.interleaved(cases, repeats=repeats, warmup=1)
    for m in cases:
        out[m].update(H.summary(t[m]))
        out[m]["time_over_jaxopt"] = H.paired_ratio(t[m], t["jaxopt"])["ratio_median"]
        out[m]["rel_err_fd"] = abs(out[m]["hypergradient"] - fd) / abs(fd)
    out["finite_difference"] = fd
    return out


# ----------------------------------------------------------------------------------- report


def table(results: dict[str, Any]) -> str:
    rows = []
    for name, r in results.items():
        for m, v in r["methods"].items():
            rows.append([
                name, m, v["num_steps"], H.fmt(v["num_fun_evals"]), H.fmt(v["grad_norm"], ".1e"),
                "yes" if v["converged"] else "no", H.fmt(v["median_s"] * 1e3, ".3g"),
                H.fmt(v["time_over_jaxopt"], ".2f"), H.fmt(v["compile_s"], ".1f"),
            ])  # fmt: skip
    headers = ["problem", "method", "steps", "f evals", "‖∇f‖", "conv.", "ms (median)",
               "time / jaxopt", "compile s"]  # fmt: skip
    text = H.markdown_table(headers, rows)
    hrows = []
    for name, r in results.items():
        for m, v in r.get("hypergradient", {}).items():
            if isinstance(v, dict):
                hrows.append(
                    [
                        name,
                        m,
                        H.fmt(v["median_s"] * 1e3, ".3g"),
                        H.fmt(v["time_over_jaxopt"], ".2f"),
                        H.fmt(v["rel_err_fd"], ".1e"),
                    ]
                )
    if hrows:
        text += (
            "\n\nHypergradient d L_val / dλ (value_and_grad, jitted, forward solve included):\n\n"
        )
        text += H.markdown_table(["problem", "method", "ms (median)", "time / jaxopt",
                                  "rel. err vs FD"], hrows)  # fmt: skip
    return text


def plot(results: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    methods = list(next(iter(results.values()))["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        xs = np.arange(len(names)) + i * width
        axes[0].bar(xs, [results[n]["methods"][m]["num_steps"] for n in names], width, label=m)
        axes[1].bar(xs, [results[n]["methods"][m]["median_s"] * 1e3 for n in names], width,
                    label=m)  # fmt: skip
    for ax, title in zip(axes, ["iterations", "time per solve (ms, median)"], strict=True):
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
        ax.set_yscale("log")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--repeats", type=int, default=None, help="timing repeats (default 15)")
    ap.add_argument("--problems", nargs="*", default=None,
                    help="rosenbrock-2d rosenbrock-100d logistic mlp")  # fmt: skip
    ap.add_argument(
        "--readme",
        type=pathlib.Path,
        default=None,
        help="markdown file to write the table into (default: none)",
    )
    args = ap.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 15)
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": args.quick}
    probs = problems(args.quick)
    chosen = args.problems or list(probs)
    results = {}
    for name in chosen:
        print(f"\n{name}: {repeats} interleaved repeats", flush=True)
        results[name] = bench_problem(name, probs[name], repeats)
    payload["problems"] = results
    done = {
        name: r["methods"]["ours"]["converged"]
        and r["methods"]["ours"]["num_steps"] <= 1.2 * r["methods"]["jaxopt"]["num_steps"]
        and r["methods"]["ours"]["time_over_jaxopt"] <= 1.1
        for name, r in results.items()
    }
    payload["done_when"] = done
    payload["total_s"] = time.perf_counter() - t_start
    content = table(results)
    print("\n" + content + f"\n\ndone-when per problem: {done}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = H.write_json(args.out / "smooth.json", payload)
    png_path = args.out / "smooth.png"
    plot(results, png_path)
    print(f"\nwrote {json_path} and {png_path}; total {payload['total_s']:.0f} s")
    if args.readme is not None:
        H.update_readme("smooth", content, args.readme)
    return payload


if __name__ == "__main__":
    main()
