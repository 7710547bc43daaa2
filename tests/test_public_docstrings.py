"""Every public name has a docstring written for users, and every docstring example runs.

The public names are the ``__all__`` of ``jaxopt_papers`` and of every subpackage it lists in
its own ``__all__`` (a new subpackage is covered as soon as it is exported). For each name:

* a class whose name ends in ``State``, ``Aux`` or ``Stats`` documents its fields
  (``Attributes:``);
* any other function or class has an ``Args:`` section (when it takes arguments) and an
  ``Example:`` section, and the ``init``/``step``/``run`` methods of a solver class document
  their arguments and what they return.

Then every doctest in every module of the package runs (``ELLIPSIS``, ``NORMALIZE_WHITESPACE``)
and must pass: the examples are part of the test suite, not decoration.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
import sys
import types

import pytest

import jaxopt_papers as jop

_RECORD_SUFFIXES = ("State", "Aux", "Stats")
_SOLVER_METHODS = ("init", "step", "run")
# `python -m jaxopt_papers` runs the tour on import; its code is covered by the tour's tests.
_NOT_IMPORTED = {"jaxopt_papers.__main__"}


def _subpackages() -> list[types.ModuleType]:
    return [obj for name in jop.__all__ if isinstance(obj := getattr(jop, name), types.ModuleType)]


def _public_objects() -> dict[str, object]:
    """``qualified name -> object`` for every non-module name exported by an ``__all__``."""
    found: dict[int, tuple[str, object]] = {}
    for module in [jop, *_subpackages()]:
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType) or id(obj) in found:
                continue
            found[id(obj)] = (f"{module.__name__}.{name}", obj)
    return dict(found.values())


PUBLIC = _public_objects()


def _has_section(doc: str, *titles: str) -> bool:
    return any(re.search(rf"^\s*{title}:\s*$", doc, re.MULTILINE) for title in titles)


def _takes_arguments(obj) -> bool:
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature
        return False
    return any(p.name != "self" for p in parameters)


def test_every_subpackage_declares_all():
    missing = [m.__name__ for m in _subpackages() if not hasattr(m, "__all__")]
    assert not missing, f"subpackages without __all__: {missing}"
    assert len(PUBLIC) > 100, sorted(PUBLIC)  # the enumeration itself found the API


@pytest.mark.parametrize("qualname", sorted(PUBLIC))
def test_public_name_is_documented(qualname):
    obj = PUBLIC[qualname]
    doc = inspect.getdoc(obj) or ""
    short = qualname.rsplit(".", 1)[-1]
    assert doc.strip(), f"{qualname} has no docstring"
    if inspect.isclass(obj) and short.endswith(_RECORD_SUFFIXES):
        assert _has_section(doc, "Attributes"), f"{qualname}: document the fields (Attributes:)"
        return
    problems = []
    if _takes_arguments(obj) and not _has_section(doc, "Args"):
        problems.append("no Args: section")
    if not _has_section(doc, "Example", "Examples"):
        problems.append("no Example: section")
    if inspect.isclass(obj):
        for method in _SOLVER_METHODS:
            fn = getattr(obj, method, None)
            if fn is None or not callable(fn):
                continue
            method_doc = inspect.getdoc(fn) or ""
            if not method_doc.strip():
                problems.append(f"{method}() has no docstring")
                continue
            if _takes_arguments(fn) and not _has_section(method_doc, "Args"):
                problems.append(f"{method}() has no Args: section")
            if not _has_section(method_doc, "Returns"):
                problems.append(f"{method}() has no Returns: section")
    assert not problems, f"{qualname}: " + "; ".join(problems)


def _modules() -> list[str]:
    names = [jop.__name__]
    for info in pkgutil.walk_packages(jop.__path__, prefix=f"{jop.__name__}."):
        if info.name not in _NOT_IMPORTED:
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(module_name):
    importlib.import_module(module_name)
    module = sys.modules[module_name]  # the module, even where a function shadows its name
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags, verbose=False)
    report: list[str] = []
    for test in doctest.DocTestFinder().find(module, module_name):
        if test.examples:
            runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
