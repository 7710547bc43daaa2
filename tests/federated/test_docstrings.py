"""The examples in the docstrings of ``jaxopt_papers.federated`` run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "jaxopt_papers.federated",
    "jaxopt_papers.federated.fedhyper",
    "jaxopt_papers.federated.simulator",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_names_are_documented():
    federated = importlib.import_module("jaxopt_papers.federated")
    for name in federated.__all__:
        doc = getattr(federated, name).__doc__
        assert "Example:" in doc, name
        if name.endswith(("State", "Data", "Setup")):
            assert "Attributes:" in doc, name
        else:
            assert "Args:" in doc and "Returns:" in doc, name
