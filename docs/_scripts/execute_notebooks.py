"""Execute ``notebooks/*.ipynb`` once for the docs site (``make docs`` runs this before building).

Each notebook is executed with the interpreter running this script (a kernelspec of its own is
written to a temporary directory, as ``tests/test_notebooks.py`` does) and written, with its
outputs, to ``build/docs-executed/notebooks/<name>.ipynb`` (or ``$JAXOPT_PAPERS_DOCS_EXECUTED``),
with the SHA-256 of the source notebook in its metadata. ``docs/_scripts/hooks.py`` renders that
copy only while the digest matches the current notebook; a notebook whose copy is up to date is
not executed again.

Usage: ``python docs/_scripts/execute_notebooks.py [--force] [NAME ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

import nbclient
import nbformat

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from hooks import SOURCE_KEY, executed_dir, source_digest

ROOT = pathlib.Path(__file__).resolve().parents[2]
KERNEL = "jaxopt-papers-docs"
CELL_TIMEOUT_S = 600


def execute(path: pathlib.Path, out: pathlib.Path, jupyter_dir: str) -> None:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [jupyter_dir, env.get("JUPYTER_PATH")]))
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]
    client.execute(env=env)
    nb.metadata[SOURCE_KEY] = source_digest(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--force", action="store_true", help="execute even if up to date")
    args = parser.parse_args(argv)
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.names:
        notebooks = [p for p in notebooks if p.stem in args.names or p.name in args.names]
    target = executed_dir(ROOT)
    with tempfile.TemporaryDirectory() as jupyter_dir:
        spec_dir = pathlib.Path(jupyter_dir) / "kernels" / KERNEL
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "jaxopt_papers docs",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        for path in notebooks:
            out = target / path.name
            if not args.force and out.is_file():
                meta = json.loads(out.read_text(encoding="utf-8")).get("metadata", {})
                if meta.get(SOURCE_KEY) == source_digest(path):
                    print(f"{path.name}: up to date")
                    continue
            print(f"{path.name}: executing ...", flush=True)
            execute(path, out, jupyter_dir)
            print(f"{path.name}: written to {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
