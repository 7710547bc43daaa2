"""Run documentation code as a reader would: each snippet in a fresh interpreter (no conftest, so
float64 is off unless the snippet turns it on), from an empty directory, with the package
importable from this checkout."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

from tests.conftest import ROOT

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: pathlib.Path) -> list[str]:
    """The ```python blocks of a markdown file, in order."""
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


def run_as_pasted(code: str, cwd: pathlib.Path, what: str) -> str:
    """Run ``code`` in a fresh interpreter; fail with its output if it raises or prints nothing.

    Returns its standard output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{what}: every example prints what it computed"
    return proc.stdout
