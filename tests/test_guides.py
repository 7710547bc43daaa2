"""The guides' examples run as pasted: the ```python blocks of each ``docs/guides/*.md`` page, in
order, in one fresh interpreter (later blocks use names the earlier ones define)."""

from __future__ import annotations

import pytest

from tests._snippets import python_blocks, run_as_pasted
from tests.conftest import ROOT

GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))


def test_every_guide_has_examples():
    assert len(GUIDES) >= 6
    for guide in GUIDES:
        assert python_blocks(guide), f"{guide.name} has no ```python example"


@pytest.mark.slow  # each guide compiles its own solvers
@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_guide_examples_run_as_pasted(guide, tmp_path):
    code = "\n\n".join(python_blocks(guide))
    run_as_pasted(code, tmp_path, f"docs/guides/{guide.name}")
