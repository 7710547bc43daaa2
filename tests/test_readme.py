"""The README: short, its examples run as pasted, its links point at files that exist.

Each ```python block runs alone in a fresh interpreter (no conftest, so float64 is off unless
the block turns it on, as for a reader), from an empty directory, with the package importable
from this checkout. A block that raises fails the test with its output.
"""

from __future__ import annotations

import re

import pytest

from tests._snippets import python_blocks, run_as_pasted
from tests.conftest import ROOT

README = ROOT / "README.md"
MAX_BYTES = 10_000
BLOCKS = python_blocks(README)


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= MAX_BYTES, f"README.md is {size} bytes; keep it at most {MAX_BYTES}"


def test_readme_has_one_example_per_area():
    assert len(BLOCKS) >= 4
    used = "\n".join(BLOCKS)
    for module in ("jaxopt_papers.implicit", "jaxopt_papers.proximal", "jaxopt_papers.ot"):
        assert f"from {module} import" in used, module
    assert "import jaxopt_papers as jop" in used and "from jaxopt_papers import linear" in used


def test_readme_keeps_the_two_commands():
    # .ci/run calls `make test`; the README documents exactly these two entry points.
    text = README.read_text()
    assert re.search(r"(?m)^make tour\b", text) and re.search(r"(?m)^make test\b", text)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"(?m)^tour:", makefile) and re.search(r"(?m)^test:", makefile)


def test_readme_relative_links_exist():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "expected links to benchmarks/README.md, CONTRIBUTING.md, ..."
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


@pytest.mark.slow  # each block compiles its own solvers: 3-17 s of CPU
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i}")
def test_readme_example_runs_as_pasted(index, tmp_path):
    run_as_pasted(BLOCKS[index], tmp_path, f"README block {index}")
