"""Benchmark of entropic optimal transport: Sinkhorn–Newton–Sparse and Sinkhorn against ott-jax/POT.

Every method solves the same entropic OT problem ``min ⟨C, P⟩ − ε H(P)`` s.t. ``P1 = a``,
``Pᵀ1 = b`` to the **same error metric and tolerance**: the L1 marginal violation
``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁`` that this script recomputes in float64 numpy from each method's
returned plan, target ``≤ 1e-9`` in float64 (``≤ 1e-6`` in the float32 table). For each method:
the iterations and the wall time to reach the target (jitted, compile time apart), whether it was
reached before the iteration cap, and the error attained. Methods:

- ours ``sinkhorn_newton_sparse`` (SNS) and ours ``sinkhorn`` (``tol`` = the target);
- ott-jax ``Sinkhorn`` plain, with ``acceleration.Momentum`` and with
  ``acceleration.AndersonAcceleration``, ``inner_iterations=10``, ``threshold`` = the target.
  ott's own criterion is one marginal (after its f-update); when it stops with our metric still
  above the target, its threshold is tightened 10× at a time until the metric meets the target or
  the cap is hit (the setting used is reported);
- POT ``ot.sinkhorn(..., method="sinkhorn_log")`` (numpy, the call timed; its criterion is the L2
  norm of one marginal, tightened the same way), only for gauss n ≤ 500 and the assignment and
  digits problems (it is 20–50× slower per iteration).

Problems (float64 unless stated):

1. **gauss**: point clouds ``x ~ N(0, I₂)``, ``y ~ N(1, 0.5² I₂)``, squared-Euclidean cost,
   uniform weights, n ∈ {200, 500, 1000, 2000}, ε ∈ {1e-1, 1e-2, 1e-3} × mean C; and a float32
   table at n = 1000, ε ∈ {1e-1, 1e-2} × mean C (target 1e-6).
2. **assignment**: the SNS paper's random linear assignment, n = 500, C ~ U[0, 1], a = b = 1/n,
   ε = 1/1200 (paper: SNS 20 Sinkhorn + 9 Newton steps, Sinkhorn 56,199 iterations).
3. **digits L2 / L1**: two scikit-learn ``load_digits`` images (the first "3" and the first
   "8"), upsampled 8×8 → 28×28 bilinearly (``scipy.ndimage.zoom(order=1)``), masses clipped at 0,
   normalised, ``1e-6`` added to every pixel (no zero weights) and renormalised; pixel
   coordinates on [0, 1]², squared-Euclidean (L2) or ``lp_cost(p=1)`` (L1) ground cost divided by
   its maximum, ε = 1/1200 (the paper's η = 1200); for L1 the one-stage SNS row (the paper's
   schedule) uses the paper's 700 Sinkhorn steps, the other SNS rows the library defaults.

SNS rows: "ours SNS" (library defaults: the paper's 20 Sinkhorn sweeps, 16 plan entries per row,
the full Hessian when those hold < 99% of the mass, ε-scaling when ε < 0.02·std C), "ours SNS
dense" (``density=1.0``) and, at ε ≤ 1e-2·mean C, "ours SNS one stage" (``epsilon_stages=1``:
Newton at ε itself after the warm start, as the paper).

Iteration caps: every Sinkhorn-type run gets ``max_iterations = min(global cap, budget / time per
iteration)`` with the time per iteration measured by a short probe (jax: per n; POT: per
instance), so that one run takes about the budget at most: ``--budget`` seconds at n = 1000,
scaled by n/1000 within [0.5, 2]× (``--budget-assignment`` for the jax Sinkhorns of problem 2),
but at least ``DECIDE_RATIO`` = 12 times the best SNS time of the instance, so that whether an
anchor is 10× slower than SNS is decided by a run, not cut short by the cap.
SNS first runs with at most 20 Newton steps and, if that is not enough, with as many (≤ 200) as
its time per step allows. Runs that take less than a second are repeated (``--repeats``,
interleaved) and the median reported.

Writes ``<out>/ot.json`` and ``<out>/ot.png`` and prints a markdown table, which also goes into
``benchmarks/README.md`` (and into the top-level ``README.md`` if it has the ``ot`` markers) when
writing to the default ``benchmarks/results``.

    python benchmarks/ot.py            # full size (about 15 minutes on 2 CPU cores)
    python benchmarks/ot.py --quick    # CI size (under a minute): gauss n = 200, ours + ott plain
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]  # the harness; the package from a plain checkout

import _harness as H  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import ott  # noqa: E402
from ott.geometry import geometry  # noqa: E402
from ott.problems.linear import linear_problem  # noqa: E402
from ott.solvers.linear import acceleration  # noqa: E402
from ott.solvers.linear import sinkhorn as ott_sinkhorn  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from jaxopt_papers.ot import (  # noqa: E402
    lp_cost,
    sinkhorn,
    sinkhorn_newton_sparse,
    squared_euclidean,
)


def _import_pot() -> Any:
    """POT's ``ot`` package: this script (``benchmarks/ot.py``) would shadow it on ``sys.path``."""
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]
    try:
        import ot
    finally:
        sys.path[:] = saved
    return ot


pot = _import_pot()

SNS = "ours SNS"
SNS_DENSE = "ours SNS dense"  # density=1.0: dense Newton
SNS_SCALED = "ours SNS one stage"  # epsilon_stages=1: no ε-scaling (the paper's path)
DECIDE_RATIO = 12.0  # anchors may run up to this × the best SNS time (a ≥10× claim is decidable)
SNS_FIRST_CAP = 20  # Newton steps of SNS's first run; more only if needed and the budget allows
SNS_MAX_NEWTON = 200
OURS_SINKHORN = "ours Sinkhorn"
OTT_PLAIN = "ott Sinkhorn"
OTT_MOMENTUM = "ott Sinkhorn + momentum"
OTT_ANDERSON = "ott Sinkhorn + Anderson"
POT = "POT sinkhorn_log"
MOMENTUM_VALUE = 1.5  # ott acceleration.Momentum(value=...): fixed over-relaxation
ANDERSON_MEMORY = 2  # ott acceleration.AndersonAcceleration(memory=...), ott's default
MAX_TIGHTEN = 4  # anchors' threshold tightened at most 10⁴×
POT_MAX_N = 800
POT_MAX_N_GAUSS = 500
F32_METHODS = {"ours SNS", "ours SNS dense", "ours Sinkhorn", "ott Sinkhorn"}
ANDERSON_COST = 1.3  # Anderson's iteration is ~1.3× a plain one (cap accordingly)


# ------------------------------------------------------------------------------- problems


@dataclasses.dataclass
class Instance:
    problem: str  # "gauss", "gauss f32", "assignment", "digits L2", "digits L1"
    cost: np.ndarray
    a: np.ndarray
    b: np.ndarray
    epsilon: float
    rel: float  # ε / mean C
    dtype: Any
    target: float
    budget: float
    methods: list[str]
    # extra keyword arguments of the "ours SNS one stage" row (the paper's schedule)
    one_stage_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    pot_budget: float | None = None  # default: budget

    def __post_init__(self) -> None:
        self.pot_budget = self.budget if self.pot_budget is None else self.pot_budget

    @property
    def n(self) -> int:
        return self.cost.shape[0]

    @property
    def key(self) -> str:
        return f"{self.problem} n={self.n} eps/mean={self.rel:.3g}"


def gauss_cost(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = 1.0 + 0.5 * rng.normal(size=(n, 2))
    return np.asarray(squared_euclidean(jnp.asarray(x), jnp.asarray(y)), np.float64)


def assignment_cost(n: int = 500, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, n))


def digits_histograms(side: int = 28) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two digits images upsampled to ``side × side``: (a, b, pixel coordinates in [0, 1]²)."""
    from scipy import ndimage
    from sklearn import datasets

    digits = datasets.load_digits()
    hists = []
    for label in (3, 8):
        img = digits.images[np.flatnonzero(digits.target == label)[0]]
        big = np.clip(ndimage.zoom(img, side / img.shape[0], order=1), 0.0, None)
        h = big.ravel() / big.sum() + 1e-6
        hists.append(h / h.sum())
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    coords = np.stack([ii.ravel(), jj.ravel()], axis=1) / (side - 1.0)
    return hists[0], hists[1], coords


# -------------------------------------------------------------------------------- methods


def l1_error(plan: Any, a: np.ndarray, b: np.ndarray) -> float:
    """The common metric, float64 numpy: ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁``."""
    P = np.asarray(plan, np.float64)
    return float(np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum())


def _is_sns(name: str) -> bool:
    return name.startswith(SNS)


def _sns_kwargs(inst: Instance, name: str) -> dict[str, Any]:
    """Keyword arguments of ``sinkhorn_newton_sparse`` for an SNS row (defaults + variant)."""
    kw: dict[str, Any] = {}
    if name == SNS_DENSE:
        kw["density"] = 1.0
    elif name == SNS_SCALED:
        kw.update(inst.one_stage_kwargs, epsilon_stages=1)
    return kw


def _ours_fn(name: str, cap: int, inst: Instance) -> Callable:
    """Jittable ``(C, a, b, ε, tol) -> (plan, sweeps, Newton steps)``; ``cap``: the step cap."""
    if _is_sns(name):
        kw = {**_sns_kwargs(inst, name), "max_newton_steps": cap}
        run = lambda C, a, b, eps, tol: sinkhorn_newton_sparse(
            C, a, b, eps, tol=tol, throw=False, **kw
        )
    else:
        run = lambda C, a, b, eps, tol: sinkhorn(C, a, b, eps, tol=tol, max_steps=cap, throw=False)

    def fn(C, a, b, eps, tol):
        r = run(C, a, b, eps, tol)
        return r.plan, r.num_sinkhorn_steps, r.num_newton_steps

    return fn


def _ott_fn(kind: str, cap: int) -> Callable:
    kw: dict[str, Any] = {}
    if kind == OTT_MOMENTUM:
        kw["momentum"] = acceleration.Momentum(value=MOMENTUM_VALUE)
    elif kind == OTT_ANDERSON:
        kw["anderson"] = acceleration.AndersonAcceleration(memory=ANDERSON_MEMORY)

    def fn(C, a, b, eps, threshold):
        solver = ott_sinkhorn.Sinkhorn(
            threshold=threshold, max_iterations=cap, inner_iterations=10, **kw
        )
        geom = geometry.Geometry(cost_matrix=C, epsilon=eps)
        out = solver(linear_problem.LinearProblem(geom, a, b))
        return out.matrix, out.n_iters

    return fn


def _pot_call(inst: Instance, threshold: float, cap: int) -> tuple[np.ndarray, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Sinkhorn did not converge"
        plan, log = pot.sinkhorn(
            inst.a, inst.b, inst.cost, inst.epsilon, method="sinkhorn_log",
            stopThr=threshold, numItermax=cap, log=True,
        )  # fmt: skip
    iters = cap if log["err"][-1] >= threshold else 10 * (len(log["err"]) - 1) + 1
    return plan, iters


def _round10(x: float) -> int:
    return int(10 * max(1, math.floor(x / 10)))


class Probe:
    """Seconds per Sinkhorn iteration (ott plain, jitted) and per POT iteration, per (n, dtype)."""

    def __init__(self) -> None:
        self.jax: dict[tuple, float] = {}
        self.pot: dict[str, float] = {}

    def jax_per_iteration(self, inst: Instance) -> float:
        key = (inst.n, np.dtype(inst.dtype).name)
        if key not in self.jax:
            iters = 200
            fn, _ = H.jit_compiled(_ott_fn(OTT_PLAIN, iters), *_jax_args(inst, -1.0))
            H.timed(lambda: fn(*_jax_args(inst, -1.0)))
            times = [H.timed(lambda: fn(*_jax_args(inst, -1.0)))[1] for _ in range(2)]
            self.jax[key] = min(times) / iters
        return self.jax[key]

    def pot_per_iteration(self, inst: Instance) -> float:
        """Per instance: numpy's ``exp`` slows down on the denormals of small ε."""
        if inst.key not in self.pot:
            iters = 20
            start = time.perf_counter()
            _pot_call(inst, 0.0, iters)
            self.pot[inst.key] = (time.perf_counter() - start) / iters
        return self.pot[inst.key]


def _jax_args(inst: Instance, tol: float) -> tuple:
    dt = inst.dtype
    return (
        jnp.asarray(inst.cost, dt), jnp.asarray(inst.a, dt), jnp.asarray(inst.b, dt),
        jnp.asarray(inst.epsilon, dt), jnp.asarray(tol, dt),
    )  # fmt: skip


def _attempt(inst: Instance, name: str, cap: int, threshold: float) -> dict[str, Any]:
    """Compile (jax) and run once; the common metric from the returned plan."""
    if name == POT:
        call = lambda: _pot_call(inst, threshold, cap)
        compile_s = 0.0
    else:
        maker = _ours_fn(name, cap, inst) if name.startswith("ours") else _ott_fn(name, cap)
        args = _jax_args(inst, threshold)
        fn, compile_s = H.jit_compiled(maker, *args)
        call = lambda: fn(*args)
    out, seconds = H.timed(call)
    out = jax.device_get(out)
    if name == POT or not name.startswith("ours"):
        sweeps, newton = int(out[1]), 0
    else:
        sweeps, newton = int(out[1]), int(out[2])
    err = l1_error(out[0], inst.a, inst.b)
    hit_cap = (newton if _is_sns(name) else sweeps) >= cap
    return {
        "iterations": sweeps + newton,
        "sinkhorn_steps": sweeps,
        "newton_steps": newton,
        "time_s": seconds,
        "first_time_s": seconds,
        "times_s": [seconds],
        "error": err,
        "reached": bool(err <= inst.target),
        "hit_cap": bool(hit_cap),
        "cap": cap,
        "threshold": threshold,
        "tightened": 0,
        "compile_s": compile_s,
        "_call": call,
    }


def run_method(inst: Instance, name: str, probe: Probe, max_iterations: int) -> dict[str, Any]:
    """One method on one instance, capped to about ``inst.budget`` seconds.

    Sinkhorn-type methods: the iteration cap comes from the probe's time per iteration; an
    anchor (ott, POT) that stops on its own criterion above the target gets its threshold
    tightened 10× and is run again. SNS: a first run with at most ``SNS_FIRST_CAP`` Newton steps;
    if that is not enough, a second one with the cap its time per step allows (≤ 200)."""
    if _is_sns(name):
        row = _attempt(inst, name, SNS_FIRST_CAP, inst.target)
        if not row["reached"] and row["hit_cap"]:
            per_step = row["first_time_s"] / max(row["newton_steps"], 1)
            cap = int(min(SNS_MAX_NEWTON, inst.budget / per_step))
            if cap > SNS_FIRST_CAP:
                row = _attempt(inst, name, cap, inst.target)
        return row
    if name == POT:
        cap = _round10(min(max_iterations, inst.pot_budget / probe.pot_per_iteration(inst)))
    else:
        per = probe.jax_per_iteration(inst) * (ANDERSON_COST if name == OTT_ANDERSON else 1.0)
        cap = _round10(min(max_iterations, inst.budget / per))
    row = _attempt(inst, name, cap, inst.target)
    tightened = 0
    anchor = not name.startswith("ours")
    while anchor and not row["reached"] and not row["hit_cap"] and tightened < MAX_TIGHTEN:
        tightened += 1
        row = _attempt(inst, name, cap, inst.target / 10.0**tightened)
        row["tightened"] = tightened
    return row


def bench_instance(
    inst: Instance, probe: Probe, max_iterations: int, repeats: int, fast_s: float = 1.0
) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    calls: dict[str, Callable[[], Any]] = {}
    budget = inst.budget
    for name in inst.methods:
        if name == POT and inst.n > POT_MAX_N:
            continue
        if not _is_sns(name):  # the SNS rows come first: let the others run long enough
            best = [r["first_time_s"] for r in rows.values() if r["reached"]]
            inst.budget = max(budget, DECIDE_RATIO * min(best)) if best else budget
        r = rows[name] = run_method(inst, name, probe, max_iterations)
        calls[name] = r.pop("_call")
        thr = f"  [threshold {r['threshold']:.0e}]" if r["tightened"] else ""
        print(
            f"  {inst.key:36s} {name:26s} iters {r['iterations']:>7d} "
            f"({r['sinkhorn_steps']}+{r['newton_steps']})  {r['time_s']:8.3f} s  "
            f"err {r['error']:.2e}  {'reached' if r['reached'] else 'NOT reached'}"
            f"{thr}",
            flush=True,
        )
    fast = {k: c for k, c in calls.items() if rows[k]["first_time_s"] < fast_s}
    if repeats > 1 and fast:
        times = H.interleaved(fast, repeats=repeats, warmup=0)
        for name, t in times.items():
            rows[name]["times_s"] = [rows[name]["first_time_s"], *t]
            rows[name]["time_s"] = statistics.median(t)
    for r in rows.values():
        r["min_time_s"] = min(r["times_s"])
        r["repeats"] = len(r["times_s"])
    if SNS in rows:
        sns = rows[SNS]
        for r in rows.values():
            r["time_ratio_vs_sns"] = r["time_s"] / sns["time_s"]
    return {
        "problem": inst.problem,
        "n": inst.n,
        "epsilon": inst.epsilon,
        "eps_over_mean_cost": inst.rel,
        "dtype": np.dtype(inst.dtype).name,
        "target": inst.target,
        "budget_s": budget,
        "anchor_budget_s": inst.budget,
        "one_stage_kwargs": inst.one_stage_kwargs,
        "methods": rows,
    }


# ---------------------------------------------------------------------------- instances


def _budget(args: argparse.Namespace, n: int) -> float:
    """Seconds per capped run: ``--budget`` at n = 1000, scaled by n/1000 within [0.5, 2]×."""
    return args.budget * min(2.0, max(0.5, n / 1000))


def make_instances(args: argparse.Namespace) -> list[Instance]:
    quick = args.quick
    jax_methods = [SNS, OURS_SINKHORN, OTT_PLAIN]
    if not quick:
        jax_methods = [SNS, SNS_DENSE, SNS_SCALED, OURS_SINKHORN, OTT_PLAIN, OTT_MOMENTUM,
                       OTT_ANDERSON]  # fmt: skip
    all_methods = jax_methods if quick else [*jax_methods, POT]
    out = []
    if args.methods:
        all_methods = [m for m in all_methods if m in args.methods]
        jax_methods = [m for m in jax_methods if m in args.methods]
    problems = args.problems or (
        ["gauss"] if quick else ["gauss", "float32", "assignment", "digits"]
    )
    sizes = args.sizes or ([200] if quick else [200, 500, 1000, 2000])
    rels = args.epsilons or ([1e-1, 1e-2] if quick else [1e-1, 1e-2, 1e-3])
    for n in sizes if "gauss" in problems else []:
        C = gauss_cost(n)
        u = np.full(n, 1.0 / n)
        for rel in rels:
            methods = [m for m in all_methods if (m != SNS_SCALED or rel <= 1e-2)
                       and (m != POT or n <= POT_MAX_N_GAUSS)]  # fmt: skip
            out.append(Instance("gauss", C, u, u, rel * C.mean(), rel, np.float64, 1e-9,
                                _budget(args, n), methods))  # fmt: skip
    if "float32" in problems:
        n = 1000
        C = gauss_cost(n)
        u = np.full(n, 1.0 / n)
        f32_methods = [m for m in jax_methods if m in F32_METHODS]
        for rel in (1e-1, 1e-2):
            out.append(Instance("gauss f32", C, u, u, rel * C.mean(), rel, np.float32, 1e-6,
                                _budget(args, n), f32_methods))  # fmt: skip
    if "assignment" in problems:
        C = assignment_cost(500)
        u = np.full(500, 1.0 / 500)
        eps = 1 / 1200
        out.append(Instance("assignment", C, u, u, eps, eps / C.mean(), np.float64, 1e-9,
                            args.budget_assignment, all_methods,
                            pot_budget=_budget(args, 500)))  # fmt: skip
    if "digits" not in problems:
        return out
    a, b, coords = digits_histograms()
    x = jnp.asarray(coords)
    for label, cost, one_stage_kwargs in (
        ("digits L2", squared_euclidean(x, x), {}),
        ("digits L1", lp_cost(x, x, 1), {"sinkhorn_steps": 700}),
    ):
        C = np.asarray(cost, np.float64)
        C = C / C.max()
        methods = list(all_methods)
        out.append(Instance(label, C, a, b, 1 / 1200, 1 / 1200 / C.mean(), np.float64, 1e-9,
                            _budget(args, C.shape[0]), methods, one_stage_kwargs))  # fmt: skip
    return out


# ------------------------------------------------------------------------------ reporting


def _ratio_cell(r: dict[str, Any], sns: dict[str, Any] | None) -> str:
    if sns is None or "time_ratio_vs_sns" not in r:
        return "—"
    if not sns["reached"]:
        return f"{r['time_ratio_vs_sns']:.3g} (SNS not reached)"
    prefix = "≥ " if not r["reached"] else ""
    return prefix + f"{r['time_ratio_vs_sns']:.3g}"


def table(results: list[dict[str, Any]]) -> str:
    headers = ["problem", "n", "ε/mean C", "method", "iterations", "time s", "final L1 error",
               "reached", "compile s", "time ratio vs ours SNS"]  # fmt: skip
    rows = []
    for d in results:
        sns = d["methods"].get(SNS)
        for name, r in d["methods"].items():
            its = (
                f"{r['sinkhorn_steps']} + {r['newton_steps']}"
                if _is_sns(name)
                else str(r["iterations"])
            )
            label = name + (f" [threshold {r['threshold']:.0e}]" if r["tightened"] else "")
            if r["reached"]:
                reached = "yes"
            elif r["error"] is None or not math.isfinite(r["error"]):
                reached = "no (non-finite plan)"
            elif r["hit_cap"]:
                reached = f"no (cap {r['cap']})"
            else:  # stopped by its own criterion, above the target by ours (float32 round-off)
                reached = "no (own stop)"
            rows.append([
                d["problem"], d["n"], f"{d['eps_over_mean_cost']:.3g}", label, its,
                H.fmt(r["time_s"], ".3g"), H.fmt(r["error"], ".1e"), reached,
                "—" if name == POT else f"{r['compile_s']:.2f}", _ratio_cell(r, sns),
            ])  # fmt: skip
    return H.markdown_table(headers, rows)


def _speedups(d: dict[str, Any], others: tuple[str, ...]) -> str:
    """One line: each SNS row's time against the others' (others' time / SNS time)."""
    cells = []
    for sns_name in (SNS, SNS_DENSE, SNS_SCALED):
        sns = d["methods"].get(sns_name)
        if sns is None:
            continue
        if not sns["reached"]:
            cells.append(f"{sns_name} not reached (error {sns['error']:.1e} after "
                         f"{sns['time_s']:.3g} s)")  # fmt: skip
            continue
        vs = []
        for name in others:
            r = d["methods"].get(name)
            if r is not None:
                tag = "" if r["reached"] else "≥ "
                vs.append(f"{name} {tag}{r['time_s'] / sns['time_s']:.3g}×")
        cells.append(f"{sns_name} ({sns['time_s']:.3g} s): " + ", ".join(vs))
    return "; ".join(cells)


def headline(results: list[dict[str, Any]]) -> str:
    """SNS speed-ups where they matter: gauss ε ≤ 1e-2·mean C, n ≥ 1000; assignment; digits."""
    ott_names = (OTT_PLAIN, OTT_MOMENTUM, OTT_ANDERSON)
    parts = []
    for d in results:
        rel, problem = d["eps_over_mean_cost"], d["problem"]
        if problem == "gauss" and d["n"] >= 1000 and rel <= 1e-2 * 1.001:
            parts.append(f"gauss n = {d['n']}, ε = {rel:g}·mean C — " + _speedups(d, ott_names))
        elif problem in ("assignment", "digits L2", "digits L1"):
            others = (OURS_SINKHORN, *ott_names, POT)
            parts.append(f"{problem} (n = {d['n']}, ε = 1/1200) — " + _speedups(d, others))
    if not parts:
        return ""
    return (
        "**SNS speed-ups** (time of the other / time of the SNS row; ≥: the other hit its cap "
        "without reaching the target):\n" + "\n".join(f"- {p}" for p in parts)
    )


def plot(results: list[dict[str, Any]], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({d["n"] for d in results if d["problem"] == "gauss"})
    sizes = [n for n in sizes if n >= 1000] or sizes[-1:]
    if not sizes:
        return
    fig, axes = plt.subplots(
        len(sizes), 2, figsize=(12, 4.2 * len(sizes)), constrained_layout=True, squeeze=False
    )
    colors = {SNS: "C0", SNS_DENSE: "C9", SNS_SCALED: "C8", OURS_SINKHORN: "C1", OTT_PLAIN: "C2",
              OTT_MOMENTUM: "C3", OTT_ANDERSON: "C4", POT: "C7"}  # fmt: skip
    for row, n in zip(axes, sizes, strict=True):
        ds = sorted(
            (d for d in results if d["problem"] == "gauss" and d["n"] == n),
            key=lambda d: d["eps_over_mean_cost"],
        )
        names = [m for m in colors if any(m in d["methods"] for d in ds)]
        for name in names:
            pts = [
                (d["eps_over_mean_cost"], d["methods"][name]) for d in ds if name in d["methods"]
            ]
            xs = [p[0] for p in pts]
            for ax, key in zip(row, ("iterations", "time_s"), strict=True):
                ys = [p[1][key] for p in pts]
                ax.plot(xs, ys, "-", color=colors[name], label=name)
                for x, (_, r), y in zip(xs, pts, ys, strict=True):
                    ax.plot(x, y, "o", color=colors[name],
                            mfc=colors[name] if r["reached"] else "white")  # fmt: skip
        for ax, what in zip(
            row, ("iterations", "wall time, s (jitted, compile apart)"), strict=True
        ):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("ε / mean C")
            ax.set_title(f"gauss n = {n}: {what}", fontsize=10)
        row[0].legend(fontsize=8)
    fig.suptitle("hollow markers: target L1 marginal error 1e-9 not reached (iteration cap)",
                 fontsize=10)  # fmt: skip
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------ main


def _git_state() -> str | None:
    """The commit, and whether the library's ``ot`` package differs from it (work in progress)."""
    import subprocess

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=_HERE.parent, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "jaxopt_papers/ot")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + (" + uncommitted changes in jaxopt_papers/ot" if dirty else "")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run (under a minute)")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timing repeats of runs under 1 s (default 5; quick 3)")  # fmt: skip
    ap.add_argument("--budget", type=float, default=None,
                    help="approximate seconds per capped run at n = 1000, scaled by n/1000 within "
                         "[0.5, 2]× (default 10; quick 10: 5 s at n = 200)")  # fmt: skip
    ap.add_argument("--budget-assignment", type=float, default=60.0,
                    help="the same for the random assignment problem (default 60)")  # fmt: skip
    ap.add_argument("--max-iterations", type=int, default=None,
                    help="global Sinkhorn iteration cap (default 100000; quick 20000)")  # fmt: skip
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="gauss sizes n")
    ap.add_argument(
        "--problems",
        nargs="*",
        default=None,
        help="gauss float32 assignment digits (default all; quick: gauss)",
    )
    ap.add_argument("--epsilons", type=float, nargs="*", default=None,
                    help="gauss ε as multiples of mean C (default 0.1 0.01 0.001; quick 0.1 "
                         "0.01)")  # fmt: skip
    ap.add_argument("--methods", nargs="*", default=None,
                    help="a subset of the methods, by name (default all)")  # fmt: skip
    ap.add_argument("--readme", type=pathlib.Path, default=None,
                    help="markdown file for the table (default: benchmarks/README.md when "
                         "--out is benchmarks/results, else none)")  # fmt: skip
    args = ap.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 5)
    args.budget = args.budget or 10.0
    max_iterations = args.max_iterations or (20_000 if quick else 100_000)

    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": quick}
    payload["environment"].update(
        {"ott_jax": ott.__version__, "pot": pot.__version__, "git": _git_state()}
    )
    payload["settings"] = {
        "repeats": repeats, "budget_s": args.budget, "budget_assignment_s": args.budget_assignment,
        "max_iterations": max_iterations, "momentum_value": MOMENTUM_VALUE,
        "anderson_memory": ANDERSON_MEMORY, "inner_iterations": 10,
    }  # fmt: skip
    print(f"jax {jax.__version__} on {jax.default_backend()} ({payload['environment']['device']})")
    # One BLAS thread for numpy/scipy (POT) as in implicit.py: OpenBLAS's spinning threads fight
    # XLA's thread pool on a small machine.
    results = []
    probe = Probe()
    with threadpool_limits(limits=1, user_api="blas"):
        payload["environment"]["blas_threads"] = [
            (d["internal_api"], d["num_threads"]) for d in threadpool_info()
        ]
        for inst in make_instances(args):
            results.append(bench_instance(inst, probe, max_iterations, repeats))
    payload["seconds_per_iteration_probe"] = {
        "jax_ott_plain": {f"n={k[0]} {k[1]}": v for k, v in probe.jax.items()},
        "pot": probe.pot,
    }
    payload["results"] = results
    payload["total_s"] = time.perf_counter() - t_start

    head = headline(results)
    content = table(results) + ("\n\n" + head if head else "")
    print("\n### Optimal transport\n")
    print(content, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = H.write_json(args.out / "ot.json", payload)
    png_path = args.out / "ot.png"
    plot(results, png_path)
    print(f"\nwrote {json_path} and {png_path}")

    readmes = H.readme_targets("ot", args.out, args.readme)
    env = payload["environment"]
    load = env["load_average"]
    header = (
        f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, ott-jax {env['ott_jax']}, "
        f"POT {env['pot']}, {env['backend']} ({env['device']}, {env['cpu_count']} cores, load "
        f"average {H.fmt(load[0] if load else None, '.1f')} at start); target L1 marginal error "
        f"1e-9 (float64) / 1e-6 (float32); budget ≈ {args.budget:g} s per capped run at n = 1000 "
        f"({args.budget_assignment:g} s for assignment); library {env['git']}; "
        f"{payload['total_s']:.0f} s in all._\n"
    )
    for readme in readmes:
        # The project README gets the headline; benchmarks/README.md the full table.
        top = readme.resolve() != H.README.resolve()
        link = "\n\nFull table: [benchmarks/README.md](benchmarks/README.md)."
        body = head + link if top else content
        H.update_readme("ot", header + "\n" + body, readme)
        print(f"table written to {readme}")
    print(f"total {payload['total_s']:.1f} s")
    return payload


if __name__ == "__main__":
    main()
