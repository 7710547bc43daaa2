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

A third part, "sparse input", is about the matrices users already have (``--parts sparse``):

- **operator products**: one product ``A @ x`` with a scipy ``csr_array`` (numpy), against
  ``jax.experimental.sparse`` ``BCOO`` and ``BCSR``, our ``EllMatrix`` (padded rows + a coordinate
  tail) and our ``DiaMatrix`` (banded only), for a 5-point stencil with random coefficients and a
  random matrix with about 10 non-zeros per row (+ the diagonal), ``n = 10⁴`` and ``10⁵``. The
  JAX products run ``R`` times inside one jitted ``fori_loop`` (``v ← x + c·Av``, the operator a
  traced argument, as in a Krylov solver), scipy's ``R`` times in Python; µs per product,
  interleaved repeats, ratio to scipy (median of paired ratios);
- **scipy input**: ``solve_sequence`` (SKR, GCRO-DR(40, 20)) given a Python list of the Darcy
  sequence's scipy ``csr_array`` matrices (converted by ``as_operator``: banded, so
  ``DiaMatrix``), against scipy ``gcrotmk(m=40, k=20)`` with a shared ``CU`` on the same matrices,
  interleaved repeat by repeat (conversion included in our time; our compile time apart); also
  ``solve_sequence`` on the sequence's own stacked ``DiaMatrix`` (no conversion).

    python benchmarks/linear.py            # Darcy, Helmholtz, Poisson; n = 10⁴; 100 systems;
                                           # tol 1e-8 and 1e-5; no preconditioner and Jacobi
                                           # (not on Helmholtz)
    python benchmarks/linear.py --quick    # CI size: n = 900, 10 systems
    python benchmarks/linear.py --parts sparse --systems 100   # the sparse-input part only
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
import scipy.sparse as sp  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402
from jax.experimental import sparse as jsparse  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from jaxopt_papers import linear  # noqa: E402
from jaxopt_papers.linear import relax  # noqa: E402
from jaxopt_papers.linear.dia import DiaMatrix  # noqa: E402
from jaxopt_papers.linear.sparse import EllMatrix  # noqa: E402

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
            "failed": int(jnp.sum(res.results != linear.krylov.RESULTS.successful))}  # fmt: skip


def run_scipy(seq, method: str, tol: float, precond: bool, mats=None) -> dict[str, Any]:
    mats = [seq.to_scipy(i) for i in range(len(seq))] if mats is None else mats
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


# ------------------------------------------------------------------------- sparse input


def stencil_matrix(m: int, seed: int = 0) -> sp.csr_array:
    """A 5-point stencil on an ``m × m`` grid with random coefficients in [1, 2]."""
    rng = np.random.default_rng(seed)
    n = m * m
    i = np.arange(n)
    rows, cols = [i], [i]
    for o, ok in ((1, i % m != m - 1), (-1, i % m != 0), (m, i < n - m), (-m, i >= m)):
        rows.append(i[ok])
        cols.append(i[ok] + o)
    r, c = np.concatenate(rows), np.concatenate(cols)
    vals = np.where(r == c, 4.0, -1.0) * rng.uniform(1.0, 2.0, r.size)
    return sp.csr_array((vals, (r, c)), shape=(n, n))


def random_matrix(n: int, seed: int = 0) -> sp.csr_array:
    """About 10 non-zeros per row at uniformly random columns, plus the diagonal."""
    A = sp.random_array((n, n), density=10 / n, rng=np.random.default_rng(seed), format="csr")
    return sp.csr_array(A + 5.0 * sp.eye_array(n))


def _product_loop(A: sp.csr_array, ops: dict[str, Any], repeats: int) -> dict[str, Any]:
    """µs per product of each operator in ``ops`` (and scipy's ``A @ x``), interleaved."""
    n = A.shape[0]
    R = max(10, 10**6 // n)  # products per timed call
    x = np.random.default_rng(1).normal(size=n)
    c = 0.5 / float(abs(A).sum(axis=1).max())  # ‖cA‖∞ ≤ 1/2: v stays O(‖x‖)

    @jax.jit
    def loop(op, x):
        return jax.lax.fori_loop(0, R, lambda i, v: x + c * (op @ v), x)

    xj = jnp.asarray(x)
    ref = x
    for _ in range(R):
        ref = x + c * (A @ ref)
    compile_s = {}
    for name, op in ops.items():
        t0 = time.perf_counter()
        out = jax.block_until_ready(loop(op, xj))
        compile_s[name] = time.perf_counter() - t0
        np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-9, atol=1e-12)

    def scipy_products():
        for _ in range(R):
            y = A @ x
        return y

    cases = {"scipy csr_array": scipy_products}
    cases.update({name: (lambda op=op: loop(op, xj)) for name, op in ops.items()})
    times = H.interleaved(cases, repeats, warmup=0)
    return {"products_per_call": R, "compile_s": compile_s, "times": times}


def products_bench(kind: str, m: int, repeats: int) -> dict[str, Any]:
    A = stencil_matrix(m) if kind == "5-point stencil" else random_matrix(m * m)
    n = A.shape[0]
    ops = {
        "BCOO": jsparse.BCOO.from_scipy_sparse(A),
        "BCSR": jsparse.BCSR.from_scipy_sparse(A),
        "EllMatrix": EllMatrix.from_scipy(A),
    }
    if kind == "5-point stencil":
        ops["DiaMatrix"] = DiaMatrix.from_scipy(A)
    chosen = type(linear.as_operator(A).source).__name__
    run = _product_loop(A, ops, repeats)
    times = run.pop("times")
    rows = {}
    for name, ts in times.items():
        r = H.summary(ts, per=run["products_per_call"])
        r.update(H.paired_ratio(ts, times["scipy csr_array"]))
        rows[name] = r
        us, us_min = 1e6 * r["median_s"], 1e6 * r["min_s"]
        print(f"  products {kind:16s} n={n:6d} {name:16s} {us:9.1f} µs (min {us_min:.1f})  "
              f"÷ scipy {r['ratio_median']:.2f}", flush=True)  # fmt: skip
    return {"matrix": kind, "n": n, "nnz": int(A.nnz), "as_operator_chooses": chosen, **run,
            "formats": rows}  # fmt: skip


def banded_matrix(n: int, diagonals: int, fill: float, seed: int = 0) -> sp.csr_array:
    """Offset 0 and ``diagonals − 1`` random offsets, each entry kept with probability ``fill``
    (the whole main diagonal kept)."""
    rng = np.random.default_rng(seed)
    far = rng.choice(np.arange(1, 4 * diagonals), diagonals - 1, replace=False)
    offsets = np.concatenate([[0], far * rng.choice([-1, 1], diagonals - 1)])
    rows, cols = [], []
    for o in offsets:
        i = np.arange(max(0, -o), min(n, n - o))
        i = i if o == 0 else i[rng.random(i.size) < fill]
        rows.append(i)
        cols.append(i + o)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_array((rng.uniform(-1.0, 1.0, r.size), (r, c)), shape=(n, n))


def threshold_bench(n: int, diagonals: int, fill: float, repeats: int) -> dict[str, Any]:
    """``DiaMatrix`` against ``EllMatrix`` products on one banded matrix."""
    A = banded_matrix(n, diagonals, fill)
    D, E = DiaMatrix.from_scipy(A), EllMatrix.from_scipy(A)
    times = _product_loop(A, {"DiaMatrix": D, "EllMatrix": E}, repeats)["times"]
    paired = H.paired_ratio(times["DiaMatrix"], times["EllMatrix"])
    ratio = paired["ratio_min"]  # min ÷ min: the load of a shared machine only adds time
    stored_fill = A.nnz / (len(D.offsets) * n)
    chosen = type(linear.as_operator(A).source).__name__
    print(f"  threshold n={n:6d} diagonals={diagonals:3d} fill={fill:.2f} (stored "
          f"{stored_fill:.2f}) DiaMatrix ÷ EllMatrix {ratio:.2f}  (as_operator: {chosen})",
          flush=True)  # fmt: skip
    return {"n": n, "diagonals": diagonals, "fill": fill, "stored_fill": stored_fill,
            "dia_over_ell": ratio, "dia_over_ell_paired_median": paired["ratio_median"],
            "as_operator_chooses": chosen}  # fmt: skip


def threshold_table(results: list[dict]) -> str:
    fills = sorted({round(d["fill"], 1) for d in results}, reverse=True)
    keys = sorted({(d["n"], d["diagonals"]) for d in results})
    out = []
    for n, k in keys:
        cells = [n, k]
        for f in fills:
            d = next((d for d in results if (d["n"], d["diagonals"], round(d["fill"], 1))
                      == (n, k, f)), None)  # fmt: skip
            mark = "" if d is None or d["as_operator_chooses"] != "DiaMatrix" else " ←"
            cells.append("—" if d is None else f"{d['dia_over_ell']:.2f}{mark}")
        out.append(cells)
    return H.markdown_table(["n", "diagonals", *[f"fill {f:g}" for f in fills]], out)


def products_table(results: list[dict]) -> str:
    headers = ["matrix", "n", "nnz", "format", "µs / product (median)", "min",
               "÷ scipy CSR (median of paired)"]  # fmt: skip
    out = []
    for d in results:
        for name, r in d["formats"].items():
            label = name + (" ← as_operator" if name == d["as_operator_chooses"] else "")
            out.append([d["matrix"], d["n"], d["nnz"], label, f"{1e6 * r['median_s']:.1f}",
                        f"{1e6 * r['min_s']:.1f}", f"{r['ratio_median']:.2f}"])  # fmt: skip
    return H.markdown_table(headers, out)


SCIPY_INPUT = ["ours SKR, list of scipy CSR", "scipy gcrotmk(40, 20) shared CU",
               "ours SKR, stacked DiaMatrix"]  # fmt: skip


def scipy_input_bench(s: int, num: int, tol: float, repeats: int) -> dict[str, Any]:
    """``solve_sequence`` on a list of scipy CSR matrices against scipy ``gcrotmk``."""
    seq = linear.darcy(jax.random.PRNGKey(0), num, s=s)
    mats = [seq.to_scipy(i) for i in range(num)]  # what a user has
    rhs, params = np.asarray(seq.rhs), np.asarray(seq.params)

    stats: dict[str, Any] = {}

    def ours(name, operators):
        def run():
            res = linear.solve_sequence(operators, rhs, params, method="gcrodr", tol=tol,
                                        max_steps=MAX_PRODUCTS, throw=False)  # fmt: skip
            res = jax.block_until_ready(res)
            stats[name] = {
                "matvecs": float(np.mean(res.num_matvecs)),
                "max_residual": float(np.max(res.residual)),
                "failed": int(jnp.sum(res.results != linear.krylov.RESULTS.successful)),
            }
            return res.x

        return run

    def scipy_timed():
        stats[SCIPY_INPUT[1]] = run_scipy(seq, "gcrotmk", tol, False, mats=mats)
        return None

    cases = {SCIPY_INPUT[0]: ours(SCIPY_INPUT[0], mats), SCIPY_INPUT[1]: scipy_timed,
             SCIPY_INPUT[2]: ours(SCIPY_INPUT[2], seq.operators)}  # fmt: skip
    first = {name: H.timed(cases[name])[1] for name in (SCIPY_INPUT[0], SCIPY_INPUT[2])}
    times = H.interleaved(cases, repeats, warmup=0)
    rows = {}
    for name in SCIPY_INPUT:
        r = H.summary(times[name])
        r.update(H.paired_ratio(times[name], times[SCIPY_INPUT[1]]))
        r.update({k: stats[name][k] for k in ("matvecs", "max_residual", "failed")})
        if name in first:
            r["compile_s"] = max(first[name] - r["min_s"], 0.0)
        rows[name] = r
    for name, r in rows.items():
        print(f"  scipy input darcy n={seq.rhs.shape[1]} N={num} tol={tol:g} {name:32s} "
              f"{r['matvecs']:7.1f} mv/system {r['median_s']:7.2f} s (min {r['min_s']:.2f} of "
              f"{r['repeats']})  ÷ gcrotmk {r['ratio_median']:.3f}  max res "
              f"{r['max_residual']:.1e}  failed {r['failed']}", flush=True)  # fmt: skip
    return {"problem": "darcy", "n": int(seq.rhs.shape[1]), "num_systems": num, "tol": tol,
            "preconditioner": "none", "methods": rows}  # fmt: skip


def scipy_input_table(results: list[dict]) -> str:
    headers = ["problem", "n", "systems", "tol", "method", "matvecs / system", "time s (median)",
               "max residual", "time ÷ gcrotmk's (median of paired)"]  # fmt: skip
    out = []
    for d in results:
        for name, r in d["methods"].items():
            out.append([d["problem"], d["n"], d["num_systems"], f"{d['tol']:g}", name,
                        f"{r['matvecs']:.1f}", H.fmt(r["median_s"]), f"{r['max_residual']:.1e}",
                        f"{r['ratio_median']:.3f}"])  # fmt: skip
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
    ap.add_argument(
        "--parts", nargs="*", default=PARTS, choices=PARTS,
        help="krylov: sequences and Learning to Relax; sparse: products and scipy input",
    )  # fmt: skip
    args = ap.parse_args(argv)
    payload: dict[str, Any] = {}
    with threadpool_limits(limits=1, user_api="blas"):  # as in implicit.py and ot.py
        if "sparse" in args.parts:
            payload["sparse"] = sparse_main(args, argv)
        if "krylov" in args.parts:
            payload.update(krylov_main(args, argv))
    return payload


PARTS = ["krylov", "sparse"]


def sparse_main(args: argparse.Namespace, argv: list[str] | None) -> dict:
    """Operator products and the scipy-input comparison: ``linear.sparse.json`` and its table."""
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": args.quick}
    grids = [30] if args.quick else [100, 316]
    reps = 3 if args.quick else 9
    payload["products"] = [
        products_bench(kind, m, reps) for m in grids for kind in ("5-point stencil", "random")
    ]
    sizes, diagonals = ([900], [5]) if args.quick else ([10**4, 10**5], [5, 17, 65])
    fills = (1.0,) if args.quick else (1.0, 0.7, 0.5)
    payload["threshold"] = [
        threshold_bench(n, k, fill, reps) for n in sizes for k in diagonals for fill in fills
    ]
    s = args.s or (32 if args.quick else 102)
    num = args.systems or (10 if args.quick else 100)
    tol = (args.tols or [1e-8])[0]
    repeats = args.repeats or (1 if args.quick else 3)
    payload["scipy_input"] = [scipy_input_bench(s, num, tol, repeats)]
    payload["total_s"] = time.perf_counter() - t_start
    content = (
        "**Operator products** (one `A @ x`, float64):\n\n" + products_table(payload["products"])
        + "\n\n**Banded threshold**: `DiaMatrix` product time ÷ `EllMatrix`'s (fastest of "
        "the repeats each) on matrices with the main diagonal and random offsets, each entry of "
        "the other diagonals kept with probability *fill*; ← where `as_operator` picks "
        "`DiaMatrix` (its test counts all stored diagonals, the main one full):\n\n"
        + threshold_table(payload["threshold"])
        + "\n\n**scipy input**: `solve_sequence` on a Python list of scipy CSR matrices against "
        "scipy `gcrotmk` (no preconditioner):\n\n" + scipy_input_table(payload["scipy_input"])
    )  # fmt: skip
    print("\n### Sparse input\n\n" + content)
    print(f"wrote {H.write_json(args.out / 'linear.sparse.json', payload)}")
    env = payload["environment"]
    header = (
        f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, {env['backend']} "
        f"({env['cpu_count']} cores, load average {env['load_average'][0]:.1f}); "
        f"{payload['total_s']:.0f} s in all._\n"
    )
    for readme in H.readme_targets("linear-sparse", args.out, args.readme):
        H.update_readme("linear-sparse", header + "\n" + content, readme)
        print(f"table written to {readme}")
    return payload


def krylov_main(args: argparse.Namespace, argv: list[str] | None) -> dict:
    """The sequences and Learning to Relax: ``linear.json``, ``linear.png`` and their tables."""
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
    for problem in problems:
        for tol in tols:
            for pre in preconds:
                if problem == "helmholtz" and pre == "jacobi" and not args.preconditioner:
                    continue  # its diagonal 4/h² − k² is a scalar to < 0.2%: same iterates
                if (problem, (s - 2) ** 2, num, tol, pre) in done:
                    print(f"  {problem} tol={tol:g} {pre}: kept from {partial}", flush=True)
                    continue
                results.append(bench(problem, s, num, tol, pre == "jacobi", args.methods, repeats))
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
