"""Proximal operators, projections and proximal-gradient solvers with implicit differentiation."""

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
