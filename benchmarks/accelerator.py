"""The measurements a CPU cannot settle, in one run on one GPU or TPU (under 8 minutes).

XLA:CPU has no multi-output fusion, so optimizers whose update reads a tensor twice (AdamP and
SGDP's projections, diffGrad's friction, Stable-SPAM's norms) are memory-bound there in a way
an accelerator's compiler can fuse away; and the OT and Krylov solvers trade floating-point work
for fewer sequential steps, which pays differently on a device with thousands of lanes. This
script reruns, on whatever ``jax.devices()[0]`` is, three comparisons from the per-area
benchmarks, calling their functions (nothing is re-implemented here):

1. **Update step** of every optimizer of :mod:`jaxopt_papers.optimizers` against its optax anchor
   (``benchmarks/optimizers.py``: ``update_pairs``, ``bench_update_step``): the same jitted,
   donated ``(params, grads, state) -> (params, state)`` step, ours and the anchor interleaved
   repeat by repeat in one process; median and min per step, the median of paired ratios,
   compile time apart. Default size ~90M float32 parameters (``--scale 3``: the conv-net-shaped
   pytree of ``optimizers.py`` with 3× the channels), large enough that a step is not
   dispatch-bound on an accelerator.
2. **Sinkhorn–Newton–Sparse against ott-jax's Sinkhorn** (``benchmarks/ot.py``: ``Instance``,
   ``bench_instance``): Gaussian clouds at n = 1000 and 4000, ε ∈ {1e-1, 1e-2} × mean C, target
   L1 marginal error 1e-9 in float64 (and 1e-6 in float32), and the SNS paper's random
   assignment problem (n = 500, ε = 1/1200); every method's error recomputed from its plan.
3. **GCRO-DR / solve_sequence against lineax's GMRES** (``benchmarks/linear.py``: ``bench``):
   sequences of Darcy-flow systems, SKR (sorted, recycled GCRO-DR(40, 20)), unsorted GCRO-DR,
   our GMRES(40) and lineax's GMRES(40), each system to ``tol`` on the true residual.

On a TPU float64 is emulated in software and slow, so there (or with ``--float32``) the OT
section runs its float32 instances only and the Krylov section runs in float32 to 1e-5.

A wall-clock guard (``--time-limit``, default 450 s) skips whatever would start after the limit;
the JSON records what was skipped. Writes ``<out>/accelerator_<backend>.json`` (with
``device_kind`` and the jax version at the top) and prints markdown tables, which also go into
``benchmarks/README.md`` (between the ``accelerator`` markers) when writing to the default
``benchmarks/results``.

    python benchmarks/accelerator.py             # on a GPU or TPU, about 5-8 minutes
    python benchmarks/accelerator.py --tiny      # CPU-sized smoke run (tests/test_accelerator.py)
    python benchmarks/accelerator.py --sections optimizers ot
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time
from types import ModuleType
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]  # the harness; the package from a plain checkout

import _harness as H  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

SECTIONS = ("optimizers", "ot", "linear")

# Sizes: (full run on an accelerator, --tiny run on a CPU).
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "scale": 3.0, "repeats": 21, "inner": 10,
        "ot_sizes": [1000, 4000], "ot_f32_sizes": [4000], "ot_rels": [1e-1, 1e-2],
        "ot_budget": 5.0,
        "ot_assignment": 500, "ot_budget_assignment": 20.0, "ot_max_iterations": 200_000,
        "ot_repeats": 5,
        "linear": [("darcy", 102, 100), ("darcy", 202, 30)], "linear_repeats": 3,
    },
    "tiny": {
        "scale": 0.05, "repeats": 3, "inner": 2,
        "ot_sizes": [100], "ot_f32_sizes": [], "ot_rels": [1e-1], "ot_budget": 1.0,
        "ot_assignment": None, "ot_budget_assignment": 1.0, "ot_max_iterations": 5_000,
        "ot_repeats": 2,
        "linear": [("darcy", 18, 4)], "linear_repeats": 1,
    },
}  # fmt: skip


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module named ``_bench_<name>``.

    Loaded by path under a private name: ``benchmarks/ot.py`` must not shadow POT's ``ot``.
    """
    key = f"_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, _HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


class Deadline:
    """Skips work that would start after ``limit_s`` seconds (from construction)."""

    def __init__(self, limit_s: float) -> None:
        self.start, self.limit_s = time.perf_counter(), limit_s
        self.skipped: list[str] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def allows(self, what: str) -> bool:
        if self.elapsed() < self.limit_s:
            return True
        self.skipped.append(what)
        print(f"  skipped (time limit {self.limit_s:g} s): {what}", flush=True)
        return False


# ---------------------------------------------------------------------------------- sections


def optimizer_section(size: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
    """Every optimizer's update step against its optax anchor, one pair at a time."""
    opt = load_benchmark("optimizers")
    names = [pair.name for pair in opt.update_pairs()]
    rows, num_params = [], None
    for name in names:
        if not deadline.allows(f"optimizers: {name}"):
            continue
        res = opt.bench_update_step(size["scale"], size["repeats"], size["inner"], [name])
        rows.extend(res["rows"])
        num_params = res["num_params"]
    result = {"num_params": num_params, "repeats": size["repeats"],
              "steps_per_repeat": size["inner"], "rows": rows}  # fmt: skip
    table = opt.update_step_table(result) if rows else "(nothing ran)"
    params = f"{num_params / 1e6:.1f}M" if num_params else "?"
    return {"result": result, "markdown": f"**Update step** ({params} float32 params)\n\n{table}"}


def ot_instances(size: dict[str, Any], float32_only: bool) -> list[Any]:
    """The assignment problem, then Gaussian clouds in float64, then in float32."""
    ot = load_benchmark("ot")
    methods = [ot.SNS, ot.OURS_SINKHORN, ot.OTT_PLAIN]
    out = []
    m = size["ot_assignment"]
    if m and not float32_only:
        C = ot.assignment_cost(m)
        u = np.full(m, 1.0 / m)
        eps = 1 / 1200
        out.append(ot.Instance("assignment", C, u, u, eps, eps / C.mean(), np.float64, 1e-9,
                               size["ot_budget_assignment"], list(methods)))  # fmt: skip
    runs = [] if float32_only else [(n, np.float64) for n in size["ot_sizes"]]
    runs += [(n, np.float32) for n in size["ot_f32_sizes"]]
    for n, dtype in runs:
        C = ot.gauss_cost(n)
        u = np.full(n, 1.0 / n)
        budget = size["ot_budget"] * min(2.0, max(0.5, n / 1000))
        f64 = dtype == np.float64
        for rel in size["ot_rels"]:
            problem, target = ("gauss", 1e-9) if f64 else ("gauss f32", 1e-6)
            out.append(ot.Instance(problem, C, u, u, rel * C.mean(), rel, dtype, target, budget,
                                   list(methods)))  # fmt: skip
    return out


def ot_section(size: dict[str, Any], deadline: Deadline, float32_only: bool) -> dict[str, Any]:
    """SNS against ott-jax's Sinkhorn (and ours), same metric, same target."""
    ot = load_benchmark("ot")
    probe = ot.Probe()
    results = []
    for inst in ot_instances(size, float32_only):
        if not deadline.allows(f"ot: {inst.key} ({np.dtype(inst.dtype).name})"):
            continue
        results.append(
            ot.bench_instance(inst, probe, size["ot_max_iterations"], size["ot_repeats"])
        )
    table = ot.table(results) if results else "(nothing ran)"
    head = ot.headline(results)
    return {
        "results": results,
        "seconds_per_iteration_probe": {f"n={k[0]} {k[1]}": v for k, v in probe.jax.items()},
        "markdown": "**Optimal transport**\n\n" + table + ("\n\n" + head if head else ""),
    }


def linear_section(size: dict[str, Any], deadline: Deadline, float32_only: bool) -> dict:
    """Recycled Krylov solves of Darcy sequences against lineax's GMRES."""
    lin = load_benchmark("linear")
    if float32_only:
        jax.config.update("jax_enable_x64", False)  # linear.py turns it on when imported
    tol = 1e-5 if float32_only else 1e-8
    methods = [lin.METHODS[0], lin.METHODS[1], lin.METHODS[2], lin.METHODS[5]]
    results = []
    for problem, s, num in size["linear"]:
        if not deadline.allows(f"linear: {problem} s={s} systems={num}"):
            continue
        results.append(lin.bench(problem, s, num, tol, False, methods, size["linear_repeats"]))
    table = lin.table(results) if results else "(nothing ran)"
    dtype = "float32" if float32_only else "float64"
    return {"tol": tol, "dtype": dtype, "results": results,
            "markdown": f"**Krylov recycling** ({dtype}, tol {tol:g})\n\n{table}"}  # fmt: skip


# -------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU-sized smoke run (under a minute)")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--time-limit", type=float, default=450.0,
                    help="seconds after which no further case starts (default 450)")  # fmt: skip
    ap.add_argument("--scale", type=float, default=None,
                    help="update-step model scale (default 3: ~90M params; tiny 0.05)")  # fmt: skip
    ap.add_argument("--float32", action="store_true",
                    help="OT and Krylov sections in float32 only (the default on TPU)")  # fmt: skip
    ap.add_argument("--readme", type=pathlib.Path, default=None,
                    help="markdown file for the tables (default: benchmarks/README.md when "
                         "--out is benchmarks/results, else none)")  # fmt: skip
    args = ap.parse_args(argv)

    size = dict(SIZES["tiny" if args.tiny else "full"])
    if args.scale is not None:
        size["scale"] = args.scale
    deadline = Deadline(args.time_limit)
    device = jax.devices()[0]
    backend = jax.default_backend()
    float32_only = args.float32 or backend == "tpu"
    payload: dict[str, Any] = {
        "device_kind": device.device_kind,
        "jax_version": jax.__version__,
        "backend": backend,
        "tiny": args.tiny,
        "float32_only": float32_only,
        "time_limit_s": args.time_limit,
        "environment": H.environment(argv),
        "sizes": size,
    }
    print(f"jax {jax.__version__} on {backend} ({device.device_kind})", flush=True)

    markdown = []
    # The optimizers first, in float32 without x64 (as benchmarks/optimizers.py runs them):
    # loading ot.py and linear.py turns jax_enable_x64 on.
    for section in SECTIONS:
        if section not in args.sections:
            continue
        if not deadline.allows(f"section {section}"):
            continue
        print(f"\n== {section} ({deadline.elapsed():.0f} s so far)", flush=True)
        t0 = time.perf_counter()
        if section == "optimizers":
            out = optimizer_section(size, deadline)
        elif section == "ot":
            out = ot_section(size, deadline, float32_only)
        else:
            out = linear_section(size, deadline, float32_only)
        out["seconds"] = time.perf_counter() - t0
        markdown.append(out.pop("markdown"))
        payload[section] = out
        print("\n" + markdown[-1], flush=True)

    payload["skipped"] = deadline.skipped
    payload["total_s"] = deadline.elapsed()
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = H.write_json(args.out / f"accelerator_{backend}.json", payload)
    print(f"\nwrote {json_path}; total {payload['total_s']:.0f} s")

    env = payload["environment"]
    header = (
        f"_`{env['command']}` — {env['date_utc']}, jax {payload['jax_version']}, "
        f"{backend} ({payload['device_kind']}, {env['device_count']} device(s)); "
        f"{'float32 only; ' if float32_only else ''}{payload['total_s']:.0f} s in all"
        + (f"; skipped: {', '.join(deadline.skipped)}" if deadline.skipped else "")
        + "._\n"
    )
    for readme in H.readme_targets("accelerator", args.out, args.readme):
        H.update_readme("accelerator", header + "\n" + "\n\n".join(markdown), readme)
        print(f"tables written to {readme}")
    return payload


if __name__ == "__main__":
    main()
