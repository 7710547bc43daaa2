"""Krylov solvers, recycling across sequences of systems (SKR), and PDE problem generators.

Every solver (:class:`CG`, :class:`GMRES`, :class:`GCRODR`, :class:`SOR`, :class:`SolveSequence`,
and the functions ``cg``, ``gmres``, ``gcrodr``, ``sor``, ``ssor_pcg``, ``solve_sequence`` that wrap
them) returns the library's one :class:`~jaxopt_papers.Solution`.

See :mod:`jaxopt_papers.linear.krylov` (CG, GMRES, GCRO-DR), :mod:`~.sequence` (SKR's sorted,
recycled solve of a sequence), :mod:`~.recycling_solve` (recycling as the backward solver of
implicit differentiation), :mod:`~.preconditioners` (Jacobi, block Jacobi, SOR, SSOR),
:mod:`~.relax` (SOR and "Learning to Relax": choosing ω online), :mod:`~.dia` (banded matrices)
and :mod:`~.problems` (Darcy, Poisson, Helmholtz).

Differences from the reference code (PETSc/HPDDM, the SKR and "Learning to Relax" code): listed
in each module.
"""

from jaxopt_papers.linear._operators import Operator, as_operator
from jaxopt_papers.linear.dia import DiaMatrix
from jaxopt_papers.linear.krylov import (
    CG,
    GCRODR,
    GMRES,
    CGState,
    GCRODRState,
    GMRESState,
    RecycleState,
    cg,
    default_tol,
    gcrodr,
    gmres,
)
from jaxopt_papers.linear.preconditioners import (
    SSOR,
    BlockJacobi,
    Jacobi,
    SORSweep,
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
    SOR,
    ChebCB,
    SORState,
    TsallisINF,
    TsallisINFCB,
    optimal_omega,
    shifted_laplacian_stream,
    sor,
    ssor_pcg,
)
from jaxopt_papers.linear.sequence import (
    SequenceAux,
    SequenceState,
    SolveSequence,
    greedy_order,
    solve_sequence,
)

__all__ = [
    "CG",
    "GCRODR",
    "GMRES",
    "SOR",
    "SSOR",
    "BlockJacobi",
    "CGState",
    "ChebCB",
    "DiaMatrix",
    "GCRODRState",
    "GMRESState",
    "Jacobi",
    "Operator",
    "RecycleState",
    "RecyclingSolve",
    "SORState",
    "SORSweep",
    "SequenceAux",
    "SequenceState",
    "SolveSequence",
    "SystemSequence",
    "TsallisINF",
    "TsallisINFCB",
    "as_operator",
    "block_jacobi",
    "cg",
    "darcy",
    "default_tol",
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
