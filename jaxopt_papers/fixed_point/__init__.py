"""Fixed-point iteration, Anderson acceleration and Broyden root finding, implicitly differentiable.

- :class:`FixedPointIteration`: ``x ← T(x, θ)`` for a contraction ``T``;
- :class:`AndersonAcceleration`: the same fixed point, with Anderson extrapolation over the last
  ``history_size`` iterates;
- :class:`AndersonWrapper`: Anderson extrapolation of any library solver's ``step`` (e.g.
  proximal gradient);
- :class:`Broyden`: limited-memory Broyden root finding ``F(x, θ) = 0``.

All follow the library's solver contract (``init``/``step``/``run``,
:class:`~jaxopt_papers.Solution`, ``RESULTS``, ``throw``) and are differentiable with respect to
their arguments by implicit differentiation of the fixed-point or root condition. Each module
says how it differs from jaxopt 0.8.5.
"""

from jaxopt_papers.fixed_point.anderson import (
    AndersonAcceleration,
    AndersonState,
    AndersonWrapper,
    AndersonWrapperState,
)
from jaxopt_papers.fixed_point.broyden import Broyden, BroydenState
from jaxopt_papers.fixed_point.fixed_point_iteration import FixedPointIteration, FixedPointState

__all__ = [
    "AndersonAcceleration",
    "AndersonState",
    "AndersonWrapper",
    "AndersonWrapperState",
    "Broyden",
    "BroydenState",
    "FixedPointIteration",
    "FixedPointState",
]
