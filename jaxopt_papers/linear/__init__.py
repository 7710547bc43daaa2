"""Krylov solvers, recycling across sequences of systems (SKR), and PDE problem generators.

See :mod:`jaxopt_papers.linear.krylov` (CG, GMRES, GCRO-DR), :mod:`~.sequence` (SKR's sorted,
recycled solve of a sequence), :mod:`~.recycling_solve` (recycling as the backward solver of
implicit differentiation), :mod:`~.dia` (banded matrices) and :mod:`~.problems` (Darcy, Poisson,
Helmholtz).
"""

from jaxopt_papers.linear._operators import Operator, as_operator
from jaxopt_papers.linear.dia import DiaMatrix
from jaxopt_papers.linear.krylov import KrylovResult, RecycleState, cg, gcrodr, gmres
from jaxopt_papers.linear.problems import (
    SystemSequence,
    darcy,
    gaussian_random_field,
    helmholtz,
    poisson,
)
from jaxopt_papers.linear.recycling_solve import RecyclingSolve
from jaxopt_papers.linear.sequence import SequenceResult, greedy_order, solve_sequence

__all__ = [
    "DiaMatrix",
    "KrylovResult",
    "Operator",
    "RecycleState",
    "RecyclingSolve",
    "SequenceResult",
    "SystemSequence",
    "as_operator",
    "cg",
    "darcy",
    "gaussian_random_field",
    "gcrodr",
    "gmres",
    "greedy_order",
    "helmholtz",
    "poisson",
    "solve_sequence",
]
