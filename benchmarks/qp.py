"""Benchmark of the QP solvers: BoxOSQP against jaxopt's BoxOSQP and scipy's trust-constr.

Problems (float64), all in BoxOSQP's form ``min ½xᵀQx + cᵀx`` s.t. ``l ≤ Ax ≤ u``:

1. **random QPs** of ``n`` variables and ``m = 2n`` two-sided/one-sided rows (``Q = MMᵀ/n +
   0.1I``, ``A`` Gaussian, bounds drawn so that about a third of the rows are active);
2. a **Markowitz portfolio**: ``min ½γ xᵀΣx − μᵀx`` s.t. ``1ᵀx = 1``, ``x ≥ 0`` (long only,
   fully invested), with ``Σ = BBᵀ + D`` and ``μ = Bf + α`` from a generated 5-factor model
   (``A = [1ᵀ; I]``, ``l = [1; 0]``, ``u = [1; inf]``).

The **reference** is exact: our BoxOSQP at ``tol=1e-12`` gives the active set, and the
equality-constrained KKT system on that set is solved densely with NumPy (its primal
feasibility and multiplier signs are checked). Every method then runs at ``tol`` (default
1e-6, the same absolute residual tolerance for ours and jaxopt's; scipy's ``gtol``/``xtol``):

- ``ours``: ``BoxOSQP(tol=tol)`` (dense Cholesky of ``Q + σI + ρAᵀA``, refactorised when ``ρ``
  changes), ``ours-cg``: ``eq_qp_solve="cg"``;
- ``jaxopt``: ``jaxopt.BoxOSQP(tol=tol)`` (its default CG) and ``jaxopt-lu``
  (``eq_qp_solve="lu"``), jitted in the same way;
- ``scipy``: ``scipy.optimize.minimize(method="trust-constr")`` with a ``LinearConstraint``,
  exact gradient and Hessian (Python, not jitted).

Reported: the forward time (all methods interleaved repeat by repeat in one process, median
and min, ratio to jaxopt's default), compile time apart, ADMM iterations, the error
``‖x − x_ref‖∞``; and the **hypergradient** ``∇_c ½‖x*(c) − x_t‖²`` (jitted ``value_and_grad``,
forward solve included) of ours and jaxopt's (implicit differentiation, its default
normal-CG backward solve): time and relative error against the exact dense implicit-function
gradient ``−p`` with ``K[p; q] = [x* − x_t; 0]`` on the active set.

The machine may be shared: timing ratios come from interleaved repeats in one process.

    python benchmarks/qp.py            # sizes 20, 50, 100 and a 100-asset portfolio
    python benchmarks/qp.py --quick    # CI size: n = 20 and a 30-asset portfolio
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]  # the harness; the package from a plain checkout

import _harness as H  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jaxopt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from jaxopt_papers.qp import BoxOSQP  # noqa: E402


@dataclasses.dataclass
class Problem:
    name: str
    Q: np.ndarray
    c: np.ndarray
    A: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def random_qp(n: int, seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    Q = M @ M.T / n + 0.1 * np.eye(n)
    m = 2 * n
    A = rng.normal(size=(m, n))
    x_free = np.linalg.solve(Q, -(c := rng.normal(size=n)))
    z_free = A @ x_free
    width = rng.uniform(0.2, 1.0, size=m) * np.abs(z_free).mean()
    lower, upper = -width, width
    lower[: m // 4] = -np.inf  # one-sided rows
    return Problem(f"random n={n}", Q, c, A, lower, upper)


def portfolio(n: int, seed: int = 0, factors: int = 5, gamma: float = 5.0) -> Problem:
    rng = np.random.default_rng(seed)
    B = 0.3 * rng.normal(size=(n, factors))
    Sigma = B @ B.T + np.diag(rng.uniform(0.01, 0.1, size=n))
    mu = B @ (0.05 * rng.normal(size=factors)) + 0.02 * rng.normal(size=n)
    A = np.concatenate([np.ones((1, n)), np.eye(n)])
    lower = np.concatenate([[1.0], np.zeros(n)])
    upper = np.concatenate([[1.0], np.full(n, np.inf)])
    return Problem(f"portfolio n={n}", gamma * Sigma, -mu, A, lower, upper)


# ------------------------------------------------------------------------------ reference


def reference(p: Problem) -> dict[str, Any]:
    """The exact solution on the active set of a tol=1e-12 solve, checked."""
    sol = BoxOSQP(tol=1e-12, max_steps=100_000).run(
        None, (jnp.asarray(p.Q), jnp.asarray(p.c)), jnp.asarray(p.A),
        (jnp.asarray(p.lower), jnp.asarray(p.upper)),
    )  # fmt: skip
    z, y = np.asarray(sol.params.primal[1]), np.asarray(sol.params.dual_eq)
    at_lower = np.isclose(z, p.lower, atol=1e-9, rtol=0) & (y < 0)
    at_upper = np.isclose(z, p.upper, atol=1e-9, rtol=0) & (y > 0)
    equality = p.lower == p.upper
    act = np.flatnonzero(at_lower | at_upper | equality)
    bound = np.where(at_upper | equality, p.upper, p.lower)[act]
    n, k = len(p.c), len(act)
    K = np.block([[p.Q, p.A[act].T], [p.A[act], np.zeros((k, k))]])
    sol_kkt = np.linalg.solve(K, np.concatenate([-p.c, bound]))
    x = sol_kkt[:n]
    y_full = np.zeros(len(p.lower))
    y_full[act] = sol_kkt[n:]
    Ax = p.A @ x
    infeas = max(np.max(p.lower - Ax), np.max(Ax - p.upper), 0.0)
    sign = max(np.max(y_full[at_lower], initial=0.0), -np.min(y_full[at_upper], initial=0.0))
    assert infeas < 1e-9 and sign < 1e-9, (p.name, infeas, sign)
    return {"x": x, "y": y_full, "K": K, "n": n, "active": k, "feasibility": infeas}


# --------------------------------------------------------------------------------- methods


def _args(p: Problem) -> tuple:
    return tuple(jnp.asarray(v) for v in (p.Q, p.c, p.A, p.lower, p.upper))


def ours(tol: float, **kw: Any):
    solver = BoxOSQP(tol=tol, max_steps=20_000, throw=False, **kw)

    def solve(Q, c, A, lower, upper):
        sol = solver.run(None, (Q, c), A, (lower, upper))
        return sol.params.primal[0], sol.stats["num_steps"]

    return solve


def theirs(tol: float, **kw: Any):
    solver = jaxopt.BoxOSQP(tol=tol, maxiter=20_000, **kw)

    def solve(Q, c, A, lower, upper):
        sol = solver.run(None, (Q, c), A, (lower, upper))
        return sol.params.primal[0], sol.state.iter_num

    return solve


def scipy_trust_constr(p: Problem, tol: float) -> tuple[np.ndarray, int]:
    res = scipy.optimize.minimize(
        lambda x: 0.5 * x @ p.Q @ x + p.c @ x, np.zeros(len(p.c)), jac=lambda x: p.Q @ x + p.c,
        hess=lambda x: p.Q, method="trust-constr",
        constraints=[scipy.optimize.LinearConstraint(p.A, p.lower, p.upper)],
        options={"gtol": tol, "xtol": tol, "maxiter": 5000},
    )  # fmt: skip
    return res.x, res.nit


def bench_problem(p: Problem, tol: float, repeats: int) -> dict[str, Any]:
    ref = reference(p)
    args = _args(p)
    out: dict[str, Any] = {"n": ref["n"], "m": len(p.lower), "active": ref["active"], "methods": {}}
    jax_methods = {
        "ours": ours(tol),
        "ours-cg": ours(tol, eq_qp_solve="cg"),
        "jaxopt": theirs(tol),
        "jaxopt-lu": theirs(tol, eq_qp_solve="lu"),
    }
    calls = {}
    for name, fn in jax_methods.items():
        jitted, compile_s = H.jit_compiled(fn, *args)
        x, steps = jax.block_until_ready(jitted(*args))
        calls[name] = lambda jitted=jitted: jitted(*args)
        out["methods"][name] = {
            "compile_s": compile_s,
            "iterations": int(steps),
            "error_inf": float(np.max(np.abs(np.asarray(x) - ref["x"]))),
        }
    x, nit = scipy_trust_constr(p, tol)
    out["methods"]["scipy"] = {
        "compile_s": 0.0, "iterations": int(nit), "error_inf": float(np.max(np.abs(x - ref["x"]))),
    }  # fmt: skip
    calls["scipy"] = lambda: scipy_trust_constr(p, tol)
    times = H.interleaved(calls, repeats)
    for name, ts in times.items():
        s = H.summary(ts)
        out["methods"][name] |= {"median_ms": 1e3 * s["median_s"], "min_ms": 1e3 * s["min_s"]}
        out["methods"][name] |= H.paired_ratio(ts, times["jaxopt"])
    out["hypergradient"] = bench_hypergradient(p, ref, tol, repeats)
    return out


def bench_hypergradient(p: Problem, ref: dict, tol: float, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    target = jnp.asarray(ref["x"] + 0.1 * rng.normal(size=ref["n"]))
    Q, c, A, lower, upper = _args(p)
    # Exact: K [p; q] = [x* − x_t; 0] on the active set, ∇_c = −p.
    rhs = np.concatenate([ref["x"] - np.asarray(target), np.zeros(ref["active"])])
    exact = -np.linalg.solve(ref["K"], rhs)[: ref["n"]]

    def make(solve):
        def loss(c):
            x, _ = solve(Q, c, A, lower, upper)
            return 0.5 * jnp.sum((x - target) ** 2)

        return jax.value_and_grad(loss)

    methods = {"ours": make(ours(tol)), "jaxopt": make(theirs(tol))}
    out: dict[str, Any] = {}
    calls = {}
    for name, fn in methods.items():
        jitted, compile_s = H.jit_compiled(fn, c)
        _, g = jax.block_until_ready(jitted(c))
        err = float(np.linalg.norm(np.asarray(g) - exact) / np.linalg.norm(exact))
        out[name] = {"compile_s": compile_s, "rel_error": err}
        calls[name] = lambda jitted=jitted: jitted(c)
    times = H.interleaved(calls, repeats)
    for name, ts in times.items():
        s = H.summary(ts)
        out[name] |= {"median_ms": 1e3 * s["median_s"], "min_ms": 1e3 * s["min_s"]}
        out[name] |= H.paired_ratio(ts, times["jaxopt"])
    return out


# -------------------------------------------------------------------------------- report


def table(results: dict[str, Any], tol: float) -> str:
    rows = []
    for pname, d in results.items():
        for name, r in d["methods"].items():
            rows.append([
                pname, name, H.fmt(r["median_ms"], ".3g"), H.fmt(r["min_ms"], ".3g"),
                H.fmt(r["ratio_median"], ".2f"), H.fmt(r["compile_s"], ".2f"), r["iterations"],
                H.fmt(r["error_inf"], ".1e"),
            ])  # fmt: skip
    forward = H.markdown_table(
        ["problem", "method", "median ms", "min ms", "ratio vs jaxopt", "compile s",
         "iterations", "‖x − x_ref‖∞"], rows,
    )  # fmt: skip
    rows = []
    for pname, d in results.items():
        for name, r in d["hypergradient"].items():
            rows.append([
                pname, name, H.fmt(r["median_ms"], ".3g"), H.fmt(r["min_ms"], ".3g"),
                H.fmt(r["ratio_median"], ".2f"), H.fmt(r["compile_s"], ".2f"),
                H.fmt(r["rel_error"], ".1e"),
            ])  # fmt: skip
    grads = H.markdown_table(
        ["problem", "method", "median ms", "min ms", "ratio vs jaxopt", "compile s",
         "rel. error vs exact"], rows,
    )  # fmt: skip
    return (
        f"**Forward solve** at `tol={tol:g}` (ADMM: absolute max-norm residuals; scipy: "
        f"`gtol=xtol={tol:g}`), error against the exact active-set KKT solution:\n\n{forward}\n\n"
        f"**Hypergradient** `∇_c ½‖x*(c) − x_t‖²` (jitted `value_and_grad`, forward solve "
        f"included), error against the exact dense implicit-function gradient:\n\n{grads}"
    )


def plot(results: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    methods = list(next(iter(results.values()))["methods"])
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        xs = np.arange(len(names)) + (j - len(methods) / 2 + 0.5) * width
        axes[0].bar(xs, [results[p]["methods"][method]["median_ms"] for p in names], width,
                    label=method, color=f"C{j}")  # fmt: skip
        axes[1].bar(xs, [max(results[p]["methods"][method]["error_inf"], 1e-16) for p in names],
                    width, color=f"C{j}")  # fmt: skip
    for j, method in enumerate(["ours", "jaxopt"]):
        xs = np.arange(len(names)) + (j - 0.5) * 0.4
        axes[2].bar(xs, [results[p]["hypergradient"][method]["median_ms"] for p in names], 0.4,
                    color=f"C{methods.index(method)}", label=method)  # fmt: skip
    titles = ["forward solve: median ms", "‖x − x_ref‖∞", "hypergradient: median ms"]
    for ax, title in zip(axes, titles, strict=True):
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--repeats", type=int, default=None, help="timing repeats (default 7)")
    ap.add_argument("--tol", type=float, default=1e-6, help="solver tolerance (default 1e-6)")
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="random QP sizes n")
    ap.add_argument("--assets", type=int, default=None, help="portfolio size (default 100)")
    ap.add_argument("--readme", type=pathlib.Path, default=None,
                    help="markdown file for the table (default: benchmarks/README.md when "
                         "--out is benchmarks/results, else none)")  # fmt: skip
    args = ap.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    sizes = args.sizes or ([20] if quick else [20, 50, 100])
    assets = args.assets or (30 if quick else 100)
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": quick, "tol": args.tol}
    print(f"jax {jax.__version__} on {jax.default_backend()} ({payload['environment']['device']})")
    problems = [random_qp(n) for n in sizes] + [portfolio(assets)]
    results = {}
    with threadpool_limits(limits=1, user_api="blas"):  # as benchmarks/implicit.py
        for p in problems:
            print(f"\n{p.name}: {repeats} interleaved repeats", flush=True)
            results[p.name] = bench_problem(p, args.tol, repeats)
    payload["problems"] = results
    payload["total_s"] = time.perf_counter() - t_start
    content = table(results, args.tol)
    print("\n" + content, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = H.write_json(args.out / "qp.json", payload)
    png_path = args.out / "qp.png"
    plot(results, png_path)
    print(f"\nwrote {json_path} and {png_path}")
    env = payload["environment"]
    load = env["load_average"]
    header = (
        f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, {env['backend']} "
        f"({env['device']}, {env['cpu_count']} cores, load average "
        f"{H.fmt(load[0] if load else None, '.1f')} at start); float64; timings interleaved in "
        f"one process on a shared machine; {payload['total_s']:.0f} s in all._\n"
    )
    for readme in H.readme_targets("qp", args.out, args.readme):
        H.update_readme("qp", header + "\n" + content, readme)
        print(f"table written to {readme}")
    print(f"total {payload['total_s']:.1f} s")
    return payload


if __name__ == "__main__":
    main()
