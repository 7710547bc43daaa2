"""Counts of the reliability suite's cases by area and expectation."""

from __future__ import annotations

import importlib

AREAS = ("optimizers", "implicit", "proximal", "ot", "linear", "qp", "smooth", "fixed_point",
         "bilevel")  # fmt: skip


def tables() -> dict[str, list]:
    """The case table of every area."""
    return {a: importlib.import_module(f"tests.reliability.test_{a}").CASES for a in AREAS}


def counts() -> dict[str, dict[str, int]]:
    """Per area: cases, and per mode (eager, jit) how many expect an error, a code, a value."""
    out = {}
    for area, cases in tables().items():
        row = {"cases": len(cases)}
        for mode in ("eager", "jit"):
            for kind in ("error", "code", "finite"):
                row[f"{mode}_{kind}"] = 0
            for c in cases:
                expect = c.eager if mode == "eager" else c.jit_expect
                row[f"{mode}_{expect.kind}"] += 1
        out[area] = row
    return out


def table() -> str:
    """The counts as a text table."""
    rows = counts()
    cols = ["cases", "eager_error", "eager_code", "eager_finite", "jit_error", "jit_code",
            "jit_finite"]  # fmt: skip
    lines = [f"{'area':<12}" + "".join(f"{c:>14}" for c in cols)]
    for area, row in rows.items():
        lines.append(f"{area:<12}" + "".join(f"{row[c]:>14}" for c in cols))
    total = {c: sum(r[c] for r in rows.values()) for c in cols}
    lines.append(f"{'total':<12}" + "".join(f"{total[c]:>14}" for c in cols))
    return "\n".join(lines)
