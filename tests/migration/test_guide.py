"""docs/migration.md has a row for every public name of jaxopt 0.8.5, and its code runs."""

from __future__ import annotations

import re
import types

import pytest

from tests.conftest import ROOT
from tests.migration._jaxopt import SUBMODULES, jaxopt, module

GUIDE = (ROOT / "docs" / "migration.md").read_text()
ROWS = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w.]+)` \| (.*)$", GUIDE, re.M)}


def _public_names() -> list[str]:
    names = []
    for name in dir(jaxopt):
        obj = getattr(jaxopt, name)
        if name.startswith("_") or isinstance(obj, types.ModuleType) or name == "warnings":
            continue
        names.append(f"jaxopt.{name}")
    for sub in SUBMODULES:
        mod = module(sub)
        for name in getattr(mod, "__all__", None) or dir(mod):
            if not name.startswith("_") and not isinstance(getattr(mod, name), types.ModuleType):
                names.append(f"jaxopt.{sub}.{name}")
    return names


NAMES = _public_names()


def test_enumeration_is_complete():
    # jaxopt 0.8.5 exports 34 solver-level names and 97 in its submodules (read off the
    # import lists of its __init__ files); a change means the enumeration missed something.
    assert sum(n.count(".") == 1 for n in NAMES) == 34
    assert len(NAMES) == 34 + 97


@pytest.mark.parametrize("name", NAMES)
def test_every_jaxopt_name_has_a_row(name):
    assert name in ROWS, f"docs/migration.md has no row for `{name}`"
    replacement = ROWS[name].split("|")[0].strip()
    assert replacement, f"the row for `{name}` names no replacement"
    if replacement == "none":  # "none" needs a reason in the notes column
        assert ROWS[name].split("|")[1].strip(), f"`{name}` maps to none without a reason"


def _replacement_names() -> list[str]:
    out = []
    for name in NAMES:
        first = ROWS.get(name, "").split("|")[0]
        for ref in re.findall(r"`(jaxopt_papers(?:\.\w+)+)", first):
            out.append(ref)
    return sorted(set(out))


@pytest.mark.parametrize("ref", _replacement_names())
def test_every_named_replacement_exists(ref):
    import importlib

    parts = ref.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return
    pytest.fail(f"{ref} cannot be imported")


def test_the_guides_code_runs():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE, re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/migration.md", "exec"), {})
