"""The examples in the docstrings of ``jaxopt_papers.batch_size`` run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "jaxopt_papers.batch_size",
    "jaxopt_papers.batch_size.adadagrad",
    "jaxopt_papers.batch_size.adagrad_norm",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_names_are_documented():
    package = importlib.import_module("jaxopt_papers.batch_size")
    for name in package.__all__:
        doc = getattr(package, name).__doc__
        assert "Example:" in doc, name
        if name.endswith(("State", "Result")):
            assert "Attributes:" in doc, name
        else:
            assert "Args:" in doc and "Returns:" in doc, name
