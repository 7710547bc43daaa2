"""Smooth minimisation with implicit differentiation: L-BFGS, BFGS, L-BFGS-B, gradient descent.

The quasi-Newton solvers (:class:`LBFGS`, :class:`BFGS`, :class:`LBFGSB`) and
:class:`GradientDescent` follow the library's solver contract (``init``/``step``/``run``,
``Solution``, ``RESULTS``, ``throw``) with jaxopt 0.8.5's options and defaults; each module's
docstring lists its differences from jaxopt.
"""

from jaxopt_papers.smooth.gradient_descent import GradientDescent
from jaxopt_papers.smooth.lbfgs import BFGS, LBFGS, BFGSState, LBFGSState
from jaxopt_papers.smooth.lbfgsb import LBFGSB, LBFGSBState

__all__ = [
    "BFGS",
    "LBFGS",
    "LBFGSB",
    "BFGSState",
    "GradientDescent",
    "LBFGSBState",
    "LBFGSState",
]
