"""The examples in the fixed-point solvers' docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "jaxopt_papers.fixed_point.fixed_point_iteration",
    "jaxopt_papers.fixed_point.anderson",
    "jaxopt_papers.fixed_point.broyden",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    public = [n for n in module.__all__ if not n.endswith("State")]
    documented = {t.name.rsplit(".", 1)[-1] for t in tests}
    assert set(public) <= documented, sorted(set(public) - documented)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0
