"""Implicit differentiation: ``custom_root``/``custom_fixed_point``, optimality conditions, solvers.

See :mod:`jaxopt_papers.implicit.implicit_diff` for the maths and the calling convention.
"""

from jaxopt_papers.implicit.implicit_diff import (
    custom_fixed_point,
    custom_root,
    root_jvp,
    root_vjp,
)
from jaxopt_papers.implicit.linear_solve import LinearSolve
from jaxopt_papers.implicit.optimality import (
    equality_qp_kkt,
    fixed_point_optimality,
    gradient_optimality,
    kkt_optimality,
    kl_simplex_step,
    mirror_descent_optimality,
    projected_gradient_optimality,
    prox_gradient_optimality,
)
from jaxopt_papers.implicit.solver import RESULTS, IterativeSolver, Solution

__all__ = [
    "RESULTS",
    "IterativeSolver",
    "LinearSolve",
    "Solution",
    "custom_fixed_point",
    "custom_root",
    "equality_qp_kkt",
    "fixed_point_optimality",
    "gradient_optimality",
    "kkt_optimality",
    "kl_simplex_step",
    "mirror_descent_optimality",
    "projected_gradient_optimality",
    "prox_gradient_optimality",
    "root_jvp",
    "root_vjp",
]
