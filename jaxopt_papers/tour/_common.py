"""What every tour section shares: the run context and a plain-text table."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence


@dataclasses.dataclass
class Tour:
    """What every section receives: where to write and how big to run."""

    out: pathlib.Path
    quick: bool = False
    steps: int | None = None
    written: list[pathlib.Path] = dataclasses.field(default_factory=list)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows under headers, the first column left-aligned and the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                               enumerate(zip(r, widths, strict=True)))  # fmt: skip
    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])
