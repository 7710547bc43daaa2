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

Reported per method: products with ``A`` per system (mean), wall time for the whole sequence, the
largest final relative residual, and the ratios the issue asks for (GMRES(40) products / ours,
scipy GMRES time / ours, scipy gcrotmk time / ours). ``--preconditioner jacobi`` applies Jacobi
(right preconditioning in ours, ``M=`` in scipy).

    python benchmarks/linear.py            # Darcy, n = 10⁴, 100 systems, tol 1e-8 and 1e-5
    python benchmarks/linear.py --quick    # CI size: n = 900, 10 systems
"""

from __future__ import annotations

import argparse
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

PROBLEMS = {"darcy": linear.darcy, "poisson": linear.poisson, "helmholtz": linear.helmholtz}


def _jacobi_factory(A: Any):
    d = A.diagonal()
    return lambda r: r / d


def run_ours(seq, method: str, sort: bool, tol: float, precond: bool) -> dict[str, Any]:
    kw = dict(method=method, sort=sort, tol=tol, max_steps=10_000, throw=False,
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
            x, info = spla.gmres(op, b, rtol=tol, atol=0.0, restart=40, maxiter=10_000, M=M)
        else:
            x, info = spla.gcrotmk(op, b, rtol=tol, atol=0.0, m=40, k=20, CU=CU,
                                   discard_C=True, maxiter=10_000, M=M)  # fmt: skip
        failed += info != 0
        residuals.append(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    seconds = time.perf_counter() - t0
    return {"matvecs": count[0] / len(mats), "time_s": seconds, "compile_s": 0.0,
            "max_residual": float(max(residuals)), "failed": int(failed)}  # fmt: skip


def run_lineax(seq, tol: float) -> dict[str, Any]:
    solver = lx.GMRES(rtol=tol, atol=0.0, restart=40, max_steps=10_000)
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


def bench(problem: str, s: int, num: int, tol: float, precond: bool, methods: list[str]) -> dict:
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
    for name in methods:
        if name == METHODS[5] and precond:
            continue
        rows[name] = runners[name]()
        r = rows[name]
        print(f"  {problem} n={seq.rhs.shape[1]} N={num} tol={tol:g} "
              f"{'jacobi' if precond else 'none':6s} {name:34s} {r['matvecs']:8.1f} mv/system "
              f"{r['time_s']:8.2f} s  max res {r['max_residual']:.1e}  failed {r['failed']}",
              flush=True)  # fmt: skip
    return {"problem": problem, "n": int(seq.rhs.shape[1]), "num_systems": num, "tol": tol,
            "preconditioner": "jacobi" if precond else "none", "methods": rows}  # fmt: skip


def _ratio(rows, a, b, key):
    if a in rows and b in rows and rows[b][key]:
        return rows[a][key] / rows[b][key]
    return None


def table(results: list[dict]) -> str:
    headers = ["problem", "n", "systems", "tol", "precond.", "method", "matvecs / system",
               "time s", "max residual", "GMRES(40) mv ÷ this", "scipy gmres time ÷ this",
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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI size: n = 900, 10 systems")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR)
    ap.add_argument("--problems", nargs="*", default=["darcy"], choices=sorted(PROBLEMS))
    ap.add_argument("--s", type=int, default=None, help="grid points per side (n = (s-2)^2)")
    ap.add_argument("--systems", type=int, default=None, help="systems per sequence")
    ap.add_argument("--tols", type=float, nargs="*", default=None)
    ap.add_argument("--preconditioner", nargs="*", default=["none"], choices=["none", "jacobi"])
    ap.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    ap.add_argument("--readme", type=pathlib.Path, default=None)
    args = ap.parse_args(argv)
    s = args.s or (32 if args.quick else 102)
    num = args.systems or (10 if args.quick else 100)
    tols = args.tols or ([1e-8] if args.quick else [1e-8, 1e-5])
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": args.quick}
    results = []
    with threadpool_limits(limits=1, user_api="blas"):  # as in implicit.py and ot.py
        for problem in args.problems:
            for tol in tols:
                for pre in args.preconditioner:
                    results.append(bench(problem, s, num, tol, pre == "jacobi", args.methods))
    payload["results"] = results
    payload["total_s"] = time.perf_counter() - t_start
    content = table(results)
    print("\n### Krylov recycling\n\n" + content)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"wrote {H.write_json(args.out / 'linear.json', payload)}")
    env = payload["environment"]
    header = (f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, {env['backend']} "
              f"({env['cpu_count']} cores); {payload['total_s']:.0f} s in all._\n")  # fmt: skip
    for readme in H.readme_targets("linear", args.out, args.readme):
        H.update_readme("linear", header + "\n" + content, readme)
        print(f"table written to {readme}")
    return payload


if __name__ == "__main__":
    main()
