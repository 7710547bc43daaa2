"""The examples in the quantized package's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import jaxopt_papers.quantized as package
from tests.quantized._ns import jop

MODULES = [package.__name__] + [
    f"{package.__name__}.{m.name}"
    for m in pkgutil.iter_modules(package.__path__)
    if not m.name.startswith("_")
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, globs={"jop": jop}) if t.examples]
    public = [n for n in getattr(module, "__all__", []) if not n.endswith("State")]
    if name != package.__name__:  # each public function shows an example
        documented = {t.name.rsplit(".", 1)[-1] for t in tests}
        assert set(public) <= documented, sorted(set(public) - documented)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        # the examples import jaxopt_papers as jop; keep the namespace with our names
        t.globs["jop"] = jop
        t.examples = [e for e in t.examples if "import jaxopt_papers as jop" not in e.source]
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0
