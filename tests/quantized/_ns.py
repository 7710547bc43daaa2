"""``jop``: the package namespace plus the quantized names (flat, as ``jaxopt_papers`` exports
them once they are registered there)."""

from __future__ import annotations

import types

import jaxopt_papers
import jaxopt_papers.quantized as quantized

jop = types.SimpleNamespace(**{k: getattr(jaxopt_papers, k) for k in dir(jaxopt_papers)})
for _name in quantized.__all__:
    setattr(jop, _name, getattr(quantized, _name))
