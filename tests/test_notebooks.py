"""Execute every ``notebooks/*.ipynb``; each notebook asserts its own claims in its cells.

The kernel must run the interpreter running pytest (the one with ``jaxopt_papers`` installed),
not whatever ``python3`` kernelspec a user or system directory provides. So the test writes a
kernelspec of its own, with an absolute ``sys.executable``, to a temporary directory put first
on ``JUPYTER_PATH``, under a name nothing else uses, and checks the kernel's ``sys.prefix``.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "jaxopt-papers-tests"
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "jaxopt_papers tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    with pytest.MonkeyPatch.context() as mp:
        search = [str(jupyter_dir), os.environ.get("JUPYTER_PATH")]
        mp.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, search)))
        yield KERNEL_NAME


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


COLAB = "https://colab.research.google.com/github/jaxopt-papers/jaxopt-papers/blob/main/notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_opens_on_colab(path):
    """A Colab badge first, then an install cell that acts only on Colab, and a word on float64."""
    cells = nbformat.read(path, as_version=4).cells
    first = cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith("[![Open In Colab]"), "the badge comes first"
    assert f"({COLAB}{path.name})" in first.source.splitlines()[0], "the badge opens this notebook"
    code = [c for c in cells if c.cell_type == "code"]
    install = code[0].source
    assert 'if "google.colab" in sys.modules:' in install and "pip" in install
    # the install happens only under the Colab test: nothing at module level calls pip
    top_level = [ln for ln in install.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert not any("subprocess.run" in ln or "pip" in ln for ln in top_level)
    # how to install before the first release, in prose before the install cell
    before = "\n".join(c.source for c in cells[: cells.index(code[0])] if c.cell_type == "markdown")
    assert "clone" in before and "wheel" in before
    # float64: wherever it is switched on, a markdown cell just before says why and what it
    # costs on TPU
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and "jax_enable_x64" in cell.source:
            note = cells[i - 1]
            assert note.cell_type == "markdown" and "float64" in note.source, i
            assert "TPU" in note.source and "emulated" in note.source, i
    assert not any("test suite" in c.source for c in cells), "write for readers, not for tests"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_name):
    nb = nbformat.read(path, as_version=4)
    # Fail loudly if the kernel is not this interpreter (e.g. a stray kernelspec won).
    nb.cells.append(
        nbformat.v4.new_code_cell(f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix")
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)  # raises CellExecutionError, with the traceback, on any failing cell
