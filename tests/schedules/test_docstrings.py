"""The examples in the docstrings of ``jaxopt_papers.schedules`` run and print what they say.

(``tests/test_public_docstrings.py`` runs them too once the subpackage is exported from
``jaxopt_papers``; this keeps them checked with the subpackage's own tests.)
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "jaxopt_papers.schedules",
    "jaxopt_papers.schedules.batch_scaling",
    "jaxopt_papers.schedules.hypergradient_descent",
    "jaxopt_papers.schedules.refinement",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_names_are_documented():
    schedules = importlib.import_module("jaxopt_papers.schedules")
    for name in schedules.__all__:
        doc = getattr(schedules, name).__doc__
        assert "Example:" in doc, name
        if name.endswith("State"):
            assert "Attributes:" in doc, name
        else:
            assert "Args:" in doc and "Returns:" in doc, name
