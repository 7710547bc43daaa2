"""Release readiness: the sdist and wheel build, pass ``twine check`` and hold what users need.

The build runs without isolation (``python -m build --no-isolation``, hatchling from the ``test``
extra), so it needs no network and takes about a second. The expectations come from the source
tree (the subpackages on disk, the LICENSE file, ``jaxopt_papers.__version__``), not from the
build backend's own listing.
"""

from __future__ import annotations

import email.parser
import importlib
import pathlib
import pkgutil
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

import jaxopt_papers
from tests.conftest import ROOT

PACKAGE = ROOT / "jaxopt_papers"
SUBPACKAGES = sorted(
    p.parent.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("__init__.py")
)  # jaxopt_papers, jaxopt_papers/implicit, ...
# The tour is a program (``python -m jaxopt_papers``), not library API: not re-exported.
NOT_REEXPORTED = {"tour"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def _metadata(wheel: pathlib.Path):
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_twine_check_passes(dist):
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_wheel_ships_license_typing_marker_and_every_subpackage(dist):
    wheel, _ = dist
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert zf.read(license_name) == (ROOT / "LICENSE").read_bytes()
    assert "jaxopt_papers/py.typed" in names
    for sub in SUBPACKAGES:
        assert f"{sub}/__init__.py" in names, sub
    # every module of the source tree is in the wheel, and nothing else of the repository
    modules = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    # and the C++ sources built on first use (the 8-bit Adam CPU kernel)
    sources = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.cc")}
    assert sources and sources <= names, sorted(sources - names)
    assert not any(n.startswith(("tests/", "benchmarks/", "notebooks/")) for n in names)


def test_license_text_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert len(text) > 10_000  # the full text, not a pointer to it


def test_version_has_one_source(dist):
    wheel, sdist = dist
    meta = _metadata(wheel)
    assert meta["Version"] == jaxopt_papers.__version__
    assert wheel.name.startswith(f"jaxopt_papers-{jaxopt_papers.__version__}-")
    assert sdist.name == f"jaxopt_papers-{jaxopt_papers.__version__}.tar.gz"
    # pyproject.toml declares the version dynamic instead of repeating it, and hatch reads it
    # from the package
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'(?m)^dynamic = \["version"\]', pyproject)
    assert not re.search(r"(?m)^version\s*=", pyproject)
    assert re.search(r'(?m)^path = "jaxopt_papers/__init__.py"$', pyproject)


def test_wheel_metadata_for_the_index(dist):
    meta = _metadata(dist[0])
    assert meta["Name"] == "jaxopt-papers"
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.10"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Issues"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Programming Language :: Python :: 3.1") for c in classifiers)
    assert "jax" in meta["Keywords"].split(",")
    # The long description is the README, as Markdown.
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().strip() == (ROOT / "README.md").read_text().strip()


def test_sdist_holds_the_sources_tests_and_license(dist):
    _, sdist = dist
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for required in ("LICENSE", "README.md", "pyproject.toml", "CITATION.cff", "CONTRIBUTING.md"):
        assert required in names, required
    assert "jaxopt_papers/py.typed" in names and "tests/conftest.py" in names
    assert not any(n.startswith((".venv/", "benchmarks/results/")) for n in names)


@pytest.mark.parametrize("module_name", [s.replace("/", ".") for s in SUBPACKAGES])
def test_every_subpackage_has_all_and_its_names_resolve(module_name):
    module = importlib.import_module(module_name)
    names = module.__dict__.get("__all__")
    assert isinstance(names, list | tuple) and names, f"{module_name} has no __all__"
    assert len(set(names)) == len(names), f"{module_name}.__all__ has duplicates"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{module_name}.__all__ names that do not resolve: {missing}"
    # a star import gives exactly __all__
    namespace: dict = {}
    exec(f"from {module_name} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(names)


def test_public_top_level_modules_have_all():
    for info in pkgutil.iter_modules(jaxopt_papers.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"jaxopt_papers.{info.name}")
        names = module.__dict__.get("__all__")
        assert names, f"jaxopt_papers.{info.name} has no __all__"
        assert all(hasattr(module, n) for n in names), info.name


def test_top_level_exposes_every_subpackage():
    import jaxopt_papers as jop

    on_disk = {s.split("/")[1] for s in SUBPACKAGES if s.count("/") == 1}
    assert on_disk >= {"implicit", "linear", "optimizers", "ot", "proximal"}
    for name in sorted(on_disk - NOT_REEXPORTED):
        assert name in jop.__all__, name
        assert getattr(jop, name) is importlib.import_module(f"jaxopt_papers.{name}")
    # and every optimizer, flat
    assert set(jop.optimizers.__all__) <= set(jop.__all__)


def test_citation_cff_names_the_format_and_no_second_version():
    text = (ROOT / "CITATION.cff").read_text()
    keys = {line.split(":", 1)[0] for line in text.splitlines() if re.match(r"^[a-z-]+:", line)}
    assert re.search(r'(?m)^cff-version: "?1\.2\.0"?$', text)
    assert {"cff-version", "message", "title", "authors"} <= keys  # required by CFF 1.2.0
    assert "version" not in keys  # the version lives in jaxopt_papers/__init__.py only
