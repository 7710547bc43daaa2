"""The examples in the optimizers' docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import jaxopt_papers.optimizers as package

MODULES = [package.__name__] + [
    f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    public = [n for n in getattr(module, "__all__", []) if not n.endswith("State")]
    if name != package.__name__:  # each public function shows an example
        documented = {t.name.rsplit(".", 1)[-1] for t in tests}
        assert set(public) <= documented, sorted(set(public) - documented)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0
