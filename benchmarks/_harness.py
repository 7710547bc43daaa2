"""Shared timing and reporting helpers for the benchmark scripts (``benchmarks/<area>.py``).

House rules (see ``DESIGN.md``, Benchmarks): our method and the anchor run in the same process,
**interleaved** repeat by repeat; we report the median and min of the repeats and their ratio;
compile time is measured apart (``jax.jit(f).lower(...).compile()``) and never mixed into step
times; results go to ``benchmarks/results/<area>.json`` (+ ``.png``) and the tables into
``benchmarks/README.md`` between ``<!-- begin:<area> -->`` / ``<!-- end:<area> -->`` markers.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

BENCH_DIR = pathlib.Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"


# ----------------------------------------------------------------------------- compilation


def compile_timed(
    fn: Callable, *args: Any, donate_argnums: int | Sequence[int] = (), **jit_kwargs: Any
) -> tuple[Any, float]:
    """``jax.jit(fn).lower(*args).compile()`` and the seconds it took (tracing included)."""
    start = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=donate_argnums, **jit_kwargs).lower(*args).compile()
    return compiled, time.perf_counter() - start


def jit_compiled(fn: Callable, *args: Any) -> tuple[Callable, float]:
    """``jax.jit(fn)`` compiled ahead for ``args`` and the seconds it took (cf. ``compile_timed``).

    Later calls of the returned jitted function reuse that compilation. The timed calls go
    through ``jax.jit`` rather than through the ``Compiled`` object of ``compile_timed``: an
    executable with a host callback (``eqx.error_if``, i.e. our solvers with ``throw=True``)
    loses JAX's C++ fast dispatch path when called as a ``Compiled`` (about 25 µs more per
    call, ~10% of a 1 ms hypergradient), but not when called through ``jax.jit``.
    """
    jitted = jax.jit(fn)
    start = time.perf_counter()
    jitted.lower(*args).compile()
    return jitted, time.perf_counter() - start


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn()``, wait for its arrays, return ``(result, seconds)``."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


# ---------------------------------------------------------------------------------- timing


def interleaved(
    cases: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time every case once per repeat, alternating the order (ABAB.. then BABA..).

    Each case is a zero-argument callable doing one unit of work; its result is waited for with
    ``jax.block_until_ready``. Returns ``{name: [seconds per repeat]}``; ``warmup`` untimed calls
    of each case come first.
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            jax.block_until_ready(cases[name]())
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(timed(cases[name])[1])
    return times


def summary(seconds: Sequence[float], per: int = 1) -> dict[str, Any]:
    """Median and min of repeats (divided by ``per`` units of work per repeat)."""
    s = [t / per for t in seconds]
    return {"median_s": statistics.median(s), "min_s": min(s), "repeats": len(s)}


def paired_ratio(ours: Sequence[float], anchor: Sequence[float]) -> dict[str, float]:
    """Ratios ours/anchor: the median of per-repeat (paired, interleaved) ratios, and min/min."""
    pairs = [a / b for a, b in zip(ours, anchor, strict=True)]
    return {"ratio_median": statistics.median(pairs), "ratio_min": min(ours) / min(anchor)}


# ------------------------------------------------------------------------------- reporting


def environment(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Where and how a result was produced."""
    import optax

    dev = jax.devices()[0]
    return {
        "command": " ".join(["python", *(sys.argv if argv is None else argv)]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _clean(obj: Any) -> Any:
    """JSON-safe: numpy/jax scalars and arrays to Python, non-finite floats to None."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray | jax.Array):
        return _clean(np.asarray(obj).tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


_NUMBER_LIST = re.compile(r"\[\s*((?:(?:-?[\d.]+(?:[eE][-+]?\d+)?|null),?\s*)+)\]")


def write_json(path: pathlib.Path, payload: Mapping[str, Any]) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(payload), indent=1)
    # one line per list of numbers (curves), not one line per number
    text = _NUMBER_LIST.sub(lambda m: "[" + " ".join(m[1].split()) + "]", text)
    path.write_text(text + "\n")
    return path


def fmt(x: Any, spec: str = ".3g") -> str:
    """A table cell: ``—`` for None/NaN, ``∞`` for inf, else ``format(x, spec)``."""
    if x is None:
        return "—"
    if isinstance(x, float | np.floating):
        if math.isnan(x):
            return "—"
        if math.isinf(x):
            return "∞"
        return format(x, spec)
    return str(x)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def update_readme(section: str, content: str, path: pathlib.Path = README) -> None:
    """Replace the text between ``<!-- begin:section -->`` and ``<!-- end:section -->``.

    Appends the marked block at the end of the file when the markers are missing.
    """
    begin, end = f"<!-- begin:{section} -->", f"<!-- end:{section} -->"
    block = f"{begin}\n{content.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def readme_targets(section: str, out: pathlib.Path, readme: pathlib.Path | None) -> list:
    """Where a benchmark writes its ``section`` table: ``readme`` if given; else, when results go
    to ``benchmarks/results``, ``benchmarks/README.md`` and the project README if it has the
    section's markers; otherwise nowhere."""
    if readme is not None:
        return [readme]
    if out.resolve() != RESULTS_DIR.resolve():
        return []
    targets = [README]
    top = RESULTS_DIR.parents[1] / "README.md"
    if top.exists() and f"<!-- begin:{section} -->" in top.read_text():
        targets.append(top)
    return targets
