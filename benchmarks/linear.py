"""Benchmark of recycled Krylov solves of PDE sequences (SKR) against GMRES, scipy and lineax.

For each sequence of systems (``jaxopt_papers.linear.problems``: Darcy flow ``−∇·(a∇u) = 1`` with
``a = exp(GRF(2.5, 7))``, Poisson, Helmholtz; 5-point differences, ``n = (s − 2)²``), every method
solves every system to the relative residual ``‖b − Ax‖₂ ≤ tol·‖b‖₂`` from ``x₀ = 0``, in the same
process, one method after the other over the whole sequence (compile time apart, excluded):

- ours ``solve_sequence(method="gcrodr")`` (GCRO-DR(40, 20), the SKR paper's PETSc settings),
  sorted by SKR's greedy nearest-neighbour chain and unsorted;
- ours ``solve_sequence(method="gmres")`` (GMRES(40), each system from scratch);
- scipy ``gmres(restart=40)`` and scipy ``gcrotmk(m=40, k=20)`` sharing one ``CU`` list across the
  sequence (``discard_C=True``), each on a ``scipy.sparse.csr_array``, products counted by a
  ``LinearOperator`` wrapper;
- lineax ``GMRES(restart=40)`` (jitted once, one call per system; its products are its restart
  cycles × 40, as lineax reports cycles and runs each to its end).

Runs shorter than 20 s (the recycling solvers) are timed ``--repeats`` times (3), round-robin
after the first round, and the median is reported (min in the JSON).

Reported per method: products with ``A`` per system (mean), wall time for the whole sequence, the
largest final relative residual, and the ratios the issue asks for (GMRES(40) products / ours,
scipy GMRES time / ours, scipy gcrotmk time / ours). ``--preconditioner jacobi`` applies Jacobi
(right preconditioning in ours, ``M=`` in scipy); the default run skips it on Helmholtz, whose
diagonal ``4/h² − k²`` is constant to < 0.2% (Jacobi is nearly a scalar there: the same
iterates). Every method stops at ``MAX_PRODUCTS`` = 4000 products per system (scipy and
lineax: 100 restart cycles of 40); a system not solved by then counts as failed.

A second part runs "Learning to Relax" on the reference's stream (``A_t = A + c_tI``, ``A`` the
10×10 5-point Laplacian, SOR to ``1e-8``): every instance is solved at every ``ω`` of the grid
``linspace(1, 1.95, 20)`` (the table the best fixed ``ω`` in hindsight comes from, and the costs
the learners are charged: their ``ω`` are grid points), then Tsallis-INF, Tsallis-INF-CB and ChebCB
play the stream (several seeds); also Young's ``ω*(A_t)`` per instance. Reported: mean iterations
per instance and the ratio to the best fixed ``ω``, and the regret curves (PNG).

Also printed: the SKR paper's Table 1 layout (speed-up of SKR over GMRES(40), time / products).

    python benchmarks/linear.py            # Darcy, Helmholtz, Poisson; n = 10⁴; 100 systems;
                                           # tol 1e-8 and 1e-5; no preconditioner and Jacobi
                                           # (not on Helmholtz)
    python benchmarks/linear.py --quick    # CI size: n = 900, 10 systems
"""

from __future__ import annotations

import argparse
import json
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
import lineax as lx  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from jaxopt_papers import linear  # noqa: E402
from jaxopt_papers.linear import relax  # noqa: E402

PROBLEMS = {"darcy": linear.darcy, "poisson": linear.poisson, "helmholtz": linear.helmholtz}


def _jacobi_factory(A: Any):
    d = A.diagonal()
    return lambda r: r / d


MAX_PRODUCTS = 4000  # per system, every method (scipy and lineax count restart cycles of 40)


def run_ours(seq, method: str, sort: bool, tol: float, precond: bool) -> dict[str, Any]:
    kw = dict(method=method, sort=sort, tol=tol, max_steps=MAX_PRODUCTS, throw=False,
              preconditioner=_jacobi_factory if precond else None)  # fmt: skip
    call = lambda: linear.solve_sequence(seq.operators, seq.rhs, seq.params, **kw)
    t0 = time.perf_counter()
    jax.block_until_ready(call().x)
    first = time.perf_counter() - t0
    res, seconds = H.timed(lambda: jax.block_until_ready(call()))
    return {"matvecs": float(res.num_matvecs.mean()), "time_s": seconds,
            "compile_s": max(first - seconds, 0.0), "max_residual": float(res.residual.max()),
            "failed": int(jnp.sum(res.result != linear.krylov.RESULTS.successful))}  # fmt: skip


def run_scipy(seq, method: str, tol: float, precond: bool) -> dict[str, Any]:
    mats = [seq.to_scipy(i) for i in range(len(seq))]
    rhs = np.asarray(seq.rhs)
    count = [0]
    CU: list = []
    residuals, failed = [], 0
    t0 = time.perf_counter()
    for A, b in zip(mats, rhs, strict=True):

        def mv(x, A=A):
            count[0] += 1
            return A @ x

        op = spla.LinearOperator(A.shape, matvec=mv, dtype=A.dtype)
        M = None
        if precond:
            d = A.diagonal()
            M = spla.LinearOperator(A.shape, matvec=lambda r, d=d: r / d, dtype=A.dtype)
        if method == "gmres":
            x, info = spla.gmres(
                op, b, rtol=tol, atol=0.0, restart=40, maxiter=MAX_PRODUCTS // 40, M=M
            )
        else:
            x, info = spla.gcrotmk(op, b, rtol=tol, atol=0.0, m=40, k=20, CU=CU,
                                   discard_C=True, maxiter=MAX_PRODUCTS // 40, M=M)  # fmt: skip
        failed += info != 0
        residuals.append(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    seconds = time.perf_counter() - t0
    return {"matvecs": count[0] / len(mats), "time_s": seconds, "compile_s": 0.0,
            "max_residual": float(max(residuals)), "failed": int(failed)}  # fmt: skip


def run_lineax(seq, tol: float) -> dict[str, Any]:
    solver = lx.GMRES(rtol=tol, atol=0.0, restart=40, max_steps=MAX_PRODUCTS // 40)
    n = seq.rhs.shape[1]
    struct = jax.ShapeDtypeStruct((n,), seq.rhs.dtype)

    @jax.jit
    def solve(data, b):
        A = linear.DiaMatrix(data, seq.operators.offsets)
        op = lx.FunctionLinearOperator(A.mv, struct)
        sol = lx.linear_solve(op, b, solver, throw=False)
        return sol.value, sol.stats["num_steps"]

    jax.block_until_ready(solve(seq.operators.data[0], seq.rhs[0]))
    steps, residuals = [], []
    t0 = time.perf_counter()
    for i in range(len(seq)):
        x, k = jax.block_until_ready(solve(seq.operators.data[i], seq.rhs[i]))
        steps.append(int(k))
        A = seq.operators[i]
        residuals.append(float(jnp.linalg.norm(seq.rhs[i] - A.mv(x)) / jnp.linalg.norm(seq.rhs[i])))
    seconds = time.perf_counter() - t0
    # lineax's num_steps counts restart cycles, each of `restart` Arnoldi steps.
    return {"matvecs": 40.0 * float(np.mean(steps)), "time_s": seconds, "compile_s": None,
            "max_residual": max(residuals), "failed": int(sum(r > tol * 1.01 for r in residuals)),
            "note": "lineax: restart cycles × 40 Arnoldi steps"}  # fmt: skip


METHODS = ["ours SKR (GCRO-DR, sorted)", "ours GCRO-DR (unsorted)", "ours GMRES(40)",
           "scipy gmres(40)", "scipy gcrotmk(40, 20) shared CU", "lineax GMRES(40)"]  # fmt: skip


REPEAT_BELOW_S = 20.0  # runs shorter than this are repeated, interleaved with the others


def bench(
    problem: str, s: int, num: int, tol: float, precond: bool, methods: list[str], repeats: int
) -> dict:
    seq = PROBLEMS[problem](jax.random.PRNGKey(0), num, s=s)
    rows: dict[str, dict[str, Any]] = {}
    runners = {
        METHODS[0]: lambda: run_ours(seq, "gcrodr", True, tol, precond),
        METHODS[1]: lambda: run_ours(seq, "gcrodr", False, tol, precond),
        METHODS[2]: lambda: run_ours(seq, "gmres", False, tol, precond),
        METHODS[3]: lambda: run_scipy(seq, "gmres", tol, precond),
        METHODS[4]: lambda: run_scipy(seq, "gcrotmk", tol, precond),
        METHODS[5]: lambda: run_lineax(seq, tol),
    }
    names = [m for m in methods if not (m == METHODS[5] and precond)]  # lineax: no Jacobi here
    for name in names:
        rows[name] = runners[name]()
        rows[name]["times_s"] = [rows[name]["time_s"]]
    # The fast rows (the recycling solvers, whose ratios are close) again, round-robin.
    fast = [m for m in names if rows[m]["time_s"] < REPEAT_BELOW_S]
    for _ in range(repeats - 1):
        for name in fast:
            rows[name]["times_s"].append(runners[name]()["time_s"])
    for name in names:
        r = rows[name]
        r["time_s"] = float(np.median(r["times_s"]))
        r["time_min_s"] = float(np.min(r["times_s"]))
        print(f"  {problem} n={seq.rhs.shape[1]} N={num} tol={tol:g} "
              f"{'jacobi' if precond else 'none':6s} {name:34s} {r['matvecs']:8.1f} mv/system "
              f"{r['time_s']:8.2f} s (min {r['time_min_s']:.2f} of {len(r['times_s'])})  "
              f"max res {r['max_residual']:.1e}  failed {r['failed']}", flush=True)  # fmt: skip
    return {"problem": problem, "n": int(seq.rhs.shape[1]), "num_systems": num, "tol": tol,
            "preconditioner": "jacobi" if precond else "none", "methods": rows}  # fmt: skip


def _ratio(rows, a, b, key):
    if a in rows and b in rows and rows[b][key]:
        return rows[a][key] / rows[b][key]
    return None


def table(results: list[dict]) -> str:
    headers = ["problem", "n", "systems", "tol", "precond.", "method", "matvecs / system",
               "time s (median)", "max residual", "GMRES(40) mv ÷ this", "scipy gmres time ÷ this",
               "gcrotmk time ÷ this"]  # fmt: skip
    out = []
    for d in results:
        rows = d["methods"]
        for name, r in rows.items():
            out.append([
                d["problem"], d["n"], d["num_systems"], f"{d['tol']:g}", d["preconditioner"],
                name, f"{r['matvecs']:.1f}", H.fmt(r["time_s"]), f"{r['max_residual']:.1e}",
                H.fmt(_ratio(rows, METHODS[2], name, "matvecs")),
                H.fmt(_ratio(rows, METHODS[3], name, "time_s")),
                H.fmt(_ratio(rows, METHODS[4], name, "time_s")),
            ])  # fmt: skip
    return H.markdown_table(headers, out)


# ------------------------------------------------------------------------- Learning to Relax

GRID = np.linspace(1.0, 1.95, 20)


def relax_bench(variance: str, num: int, seeds: int) -> dict[str, Any]:
    A, c, B = relax.shifted_laplacian_stream(jax.random.PRNGKey(0), num, variance=variance)
    n = A.shape[0]
    grid = jnp.asarray(GRID)

    @jax.jit
    def row(ct, b):
        At = A + ct * jnp.eye(n)
        return jax.vmap(lambda w: relax.sor(At, b, w).num_steps)(grid)

    t0 = time.perf_counter()
    table = np.stack([np.asarray(row(c[t], B[t])) for t in range(num)]).astype(float)
    table_s = time.perf_counter() - t0
    young = np.array(
        [
            float(
                relax.sor(
                    A + c[t] * jnp.eye(n), B[t], float(relax.optimal_omega(A + c[t] * jnp.eye(n)))
                ).num_steps
            )
            for t in range(num)
        ]
    )
    cs = np.asarray(c)

    def play(make, contextual):
        runs = []
        for seed in range(seeds):
            learner, costs = make(seed), []
            for t in range(num):
                w = learner.propose(cs[t]) if contextual else learner.propose()
                cost = table[t, int(np.argmin(np.abs(GRID - w)))]
                learner.update(cost)
                costs.append(cost)
            runs.append(costs)
        return np.asarray(runs)

    learners = {
        "Tsallis-INF": play(lambda s: relax.TsallisINF(seed=s), False),
        "Tsallis-INF-CB (5 bins)": play(lambda s: relax.TsallisINFCB(-0.15, 0.65, seed=s), True),
        "ChebCB": play(lambda s: relax.ChebCB(-0.15, 0.65, seed=s), True),
    }
    best_i = int(np.argmin(table.mean(0)))
    rows = {f"best fixed ω = {GRID[best_i]:.2f} (hindsight)": table[:, best_i][None]}
    rows["ω = 1.8 (the reference's)"] = table[:, int(np.argmin(np.abs(GRID - 1.8)))][None]
    rows.update(learners)
    rows["instance-optimal ω of the grid"] = table.min(1)[None]
    rows["Young's ω*(A_t) per instance"] = young[None]
    best = table[:, best_i].mean()
    out = {}
    for name, runs in rows.items():
        per_run = runs.mean(1)
        out[name] = {
            "mean_iterations": float(per_run.mean()),
            "ratio_to_best_fixed": float(per_run.mean() / best),
            "ratio_range": [float(per_run.min() / best), float(per_run.max() / best)],
            "curve": (np.cumsum(runs.mean(0)) / np.cumsum(table[:, best_i])).tolist(),
        }
        r = out[name]
        print(
            f"  relax {variance:4s} T={num} {name:34s} {r['mean_iterations']:8.1f} it/instance "
            f"{r['ratio_to_best_fixed']:.3f}× best fixed",
            flush=True,
        )
    return {
        "variance": variance,
        "instances": num,
        "seeds": seeds,
        "table_s": table_s,
        "mean_by_omega": dict(zip([f"{g:.2f}" for g in GRID], table.mean(0).tolist(), strict=True)),
        "methods": out,
    }


def relax_table(results: list[dict]) -> str:
    headers = [
        "offsets",
        "instances × seeds",
        "method",
        "mean SOR iterations / instance",
        "÷ best fixed ω (seed range)",
    ]
    out = []
    for d in results:
        for name, r in d["methods"].items():
            lo, hi = r["ratio_range"]
            rng = f" ({lo:.2f}–{hi:.2f})" if hi > lo else ""
            out.append(
                [
                    d["variance"],
                    f"{d['instances']} × {d['seeds']}",
                    name,
                    f"{r['mean_iterations']:.1f}",
                    f"{r['ratio_to_best_fixed']:.3f}{rng}",
                ]
            )
    return H.markdown_table(headers, out)


def table1(results: list[dict]) -> str:
    """The SKR paper's Table 1 layout: speed-up of SKR (sorted) over GMRES(40), time / products."""
    pres = sorted({d["preconditioner"] for d in results}, key=["none", "jacobi"].index)
    keys = sorted({(d["problem"], d["n"], d["tol"]) for d in results})
    out = []
    for prob, n, tol in keys:
        cells = [f"{prob} {n}", f"{tol:g}"]
        for pre in pres:
            d = next(
                (
                    d
                    for d in results
                    if (d["problem"], d["n"], d["tol"], d["preconditioner"]) == (prob, n, tol, pre)
                ),
                None,
            )
            rows = d["methods"] if d else {}
            t, m = (
                _ratio(rows, METHODS[2], METHODS[0], "time_s"),
                _ratio(rows, METHODS[2], METHODS[0], "matvecs"),
            )
            cells.append(f"{H.fmt(t)} / {H.fmt(m)}")
        out.append(cells)
    return H.markdown_table(["dataset (n)", "tol", *pres], out)


def plot(results: list[dict], relax_results: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1,
        1 + len(relax_results),
        figsize=(6 * (1 + len(relax_results)), 4.2),
        constrained_layout=True,
        squeeze=False,
    )
    ax = axes[0, 0]
    labels = [f"{d['problem'][:5]} {d['tol']:g}\n{d['preconditioner']}" for d in results]
    width = 0.8 / max(len(METHODS), 1)
    for j, name in enumerate(METHODS):
        ys = [d["methods"].get(name, {}).get("matvecs", np.nan) for d in results]
        ax.bar(np.arange(len(results)) + j * width, ys, width, label=name)
    ax.set_xticks(np.arange(len(results)) + 0.4 - width / 2, labels, fontsize=6, rotation=45)
    ax.set_xlabel(f"problem (n = {results[0]['n'] if results else '—'}), tol, preconditioner")
    ax.set_yscale("log")
    ax.set_ylabel("products with A per system")
    ax.set_title("Krylov: products per system (lower is better)", fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    for ax, d in zip(axes[0, 1:], relax_results, strict=True):
        for name, r in d["methods"].items():
            ax.plot(np.arange(1, d["instances"] + 1), r["curve"], label=name)
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_xscale("log")
        ax.set_ylim(0.4, 3.0)
        ax.set_xlabel("instances seen")
        ax.set_ylabel("cumulative iterations ÷ best fixed ω's")
        ax.set_title(f"Learning to Relax, {d['variance']}-variance offsets", fontsize=10)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI size: n = 900, 10 systems")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR)
    ap.add_argument("--problems", nargs="*", default=None, choices=sorted(PROBLEMS))
    ap.add_argument("--s", type=int, default=None, help="grid points per side (n = (s-2)^2)")
    ap.add_argument("--systems", type=int, default=None, help="systems per sequence")
    ap.add_argument("--tols", type=float, nargs="*", default=None)
    ap.add_argument("--preconditioner", nargs="*", default=None, choices=["none", "jacobi"])
    ap.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    ap.add_argument("--readme", type=pathlib.Path, default=None)
    ap.add_argument("--repeats", type=int, default=None, help="timed runs of runs < 20 s")
    ap.add_argument("--relax-instances", type=int, default=None, help="SOR stream length")
    ap.add_argument("--relax-seeds", type=int, default=None)
    ap.add_argument("--relax-variances", nargs="*", default=None, choices=["high", "low"])
    ap.add_argument(
        "--resume", action="store_true", help="keep the sequences already in linear.partial.json"
    )
    args = ap.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    s = args.s or (32 if args.quick else 102)
    num = args.systems or (10 if args.quick else 100)
    tols = args.tols or ([1e-8] if args.quick else [1e-8, 1e-5])
    problems = args.problems or (["darcy"] if args.quick else ["darcy", "helmholtz", "poisson"])
    preconds = args.preconditioner or (["none"] if args.quick else ["none", "jacobi"])
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": args.quick}
    # Each finished sequence is saved at once, so that a run cut off can go on with --resume.
    partial = args.out / "linear.partial.json"
    results = json.loads(partial.read_text())["results"] if args.resume and partial.exists() else []
    keys = ("problem", "n", "num_systems", "tol", "preconditioner")
    done = {tuple(r[k] for k in keys) for r in results}
    payload["kept_from_partial"] = len(results)  # their time is not in total_s
    args.out.mkdir(parents=True, exist_ok=True)
    with threadpool_limits(limits=1, user_api="blas"):  # as in implicit.py and ot.py
        for problem in problems:
            for tol in tols:
                for pre in preconds:
                    if problem == "helmholtz" and pre == "jacobi" and not args.preconditioner:
                        continue  # its diagonal 4/h² − k² is a scalar to < 0.2%: same iterates
                    if (problem, (s - 2) ** 2, num, tol, pre) in done:
                        print(f"  {problem} tol={tol:g} {pre}: kept from {partial}", flush=True)
                        continue
                    results.append(
                        bench(problem, s, num, tol, pre == "jacobi", args.methods, repeats)
                    )
                    H.write_json(partial, {"results": results})
    payload["results"] = results
    num = args.relax_instances or (60 if args.quick else 1000)
    seeds = args.relax_seeds or (1 if args.quick else 3)
    variances = (
        args.relax_variances
        if args.relax_variances is not None
        else (["high"] if args.quick else ["high", "low"])
    )
    payload["relax"] = [relax_bench(v, num, seeds) for v in variances]
    payload["total_s"] = time.perf_counter() - t_start
    content = (
        table(results) + "\n\nThe SKR paper's Table 1 layout: SKR (sorted) over our "
        "GMRES(40), time speed-up / product speed-up.\n\n" + table1(results)
    )
    if payload["relax"]:
        content += (
            "\n\n**Learning to Relax** (SOR to 1e-8 on the reference's stream, n = 100; "
            "ω on the grid linspace(1, 1.95, 20)):\n\n" + relax_table(payload["relax"])
        )
    print("\n### Krylov recycling\n\n" + content)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"wrote {H.write_json(args.out / 'linear.json', payload)}")
    plot(results, payload["relax"], args.out / "linear.png")
    print(f"wrote {args.out / 'linear.png'}")
    env = payload["environment"]
    header = (
        f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, {env['backend']} "
        f"({env['cpu_count']} cores); {payload['total_s']:.0f} s in all._\n"
    )
    for readme in H.readme_targets("linear", args.out, args.readme):
        H.update_readme("linear", header + "\n" + content, readme)
        print(f"table written to {readme}")
    return payload


if __name__ == "__main__":
    main()
