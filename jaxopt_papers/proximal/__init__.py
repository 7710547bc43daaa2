"""Proximal operators, projections and proximal-gradient solvers with implicit differentiation.

The operators keep jaxopt's signatures (``prox(x, hyperparams, scaling)``,
``projection(x, hyperparams)``), so code migrates by changing the import.

Differences from the reference code (jaxopt 0.8.5): listed in each module
(:mod:`~jaxopt_papers.proximal.prox`, :mod:`~jaxopt_papers.proximal.projection`,
:mod:`~jaxopt_papers.proximal.proximal_gradient`).
"""

from jaxopt_papers.proximal.projection import *  # noqa: F403
from jaxopt_papers.proximal.projection import __all__ as _projection_names
from jaxopt_papers.proximal.prox import *  # noqa: F403
from jaxopt_papers.proximal.prox import __all__ as _prox_names
from jaxopt_papers.proximal.proximal_gradient import (
    ProjectedGradient,
    ProxGradState,
    ProximalGradient,
)

__all__ = [
    "ProjectedGradient",
    "ProxGradState",
    "ProximalGradient",
    *_prox_names,
    *_projection_names,
]
