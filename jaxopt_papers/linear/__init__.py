"""Krylov solvers, recycling across sequences of systems (SKR), and PDE problem generators.

See :mod:`jaxopt_papers.linear.krylov` (CG, GMRES, GCRO-DR), :mod:`~.sequence` (SKR's sorted,
recycled solve of a sequence), :mod:`~.recycling_solve` (recycling as the backward solver of
implicit differentiation), :mod:`~.preconditioners` (Jacobi, block Jacobi, SOR, SSOR),
:mod:`~.relax` (SOR and "Learning to Relax": choosing ω online), :mod:`~.dia` (banded matrices)
and :mod:`~.problems` (Darcy, Poisson, Helmholtz).
"""

from jaxopt_papers.linear._operators import Operator, as_operator
from jaxopt_papers.linear.dia import DiaMatrix
from jaxopt_papers.linear.krylov import KrylovResult, RecycleState, cg, gcrodr, gmres
from jaxopt_papers.linear.preconditioners import (
    SOR,
    SSOR,
    BlockJacobi,
    Jacobi,
    block_jacobi,
    jacobi,
    sor_sweep,
    ssor,
)
from jaxopt_papers.linear.problems import (
    SystemSequence,
    darcy,
    gaussian_random_field,
    helmholtz,
    poisson,
)
from jaxopt_papers.linear.recycling_solve import RecyclingSolve
from jaxopt_papers.linear.relax import (
    ChebCB,
    SORResult,
    TsallisINF,
    TsallisINFCB,
    optimal_omega,
    shifted_laplacian_stream,
    sor,
    ssor_pcg,
)
from jaxopt_papers.linear.sequence import SequenceResult, greedy_order, solve_sequence

__all__ = [
    "SOR",
    "SSOR",
    "BlockJacobi",
    "ChebCB",
    "DiaMatrix",
    "Jacobi",
    "KrylovResult",
    "Operator",
    "RecycleState",
    "RecyclingSolve",
    "SORResult",
    "SequenceResult",
    "SystemSequence",
    "TsallisINF",
    "TsallisINFCB",
    "as_operator",
    "block_jacobi",
    "cg",
    "darcy",
    "gaussian_random_field",
    "gcrodr",
    "gmres",
    "greedy_order",
    "helmholtz",
    "jacobi",
    "optimal_omega",
    "poisson",
    "shifted_laplacian_stream",
    "solve_sequence",
    "sor",
    "sor_sweep",
    "ssor",
    "ssor_pcg",
]
