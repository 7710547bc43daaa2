"""Implicit differentiation: ``custom_root``/``custom_fixed_point``, optimality conditions, solvers.

See :mod:`jaxopt_papers.implicit.implicit_diff` for the maths and the calling convention.

Differences from the reference code (jaxopt 0.8.5's ``implicit_diff``): forward and reverse mode,
a checked backward solve (:class:`LinearSolve`) and a checked root; each module lists its own.
"""

from jaxopt_papers.implicit.implicit_diff import (
    custom_fixed_point,
    custom_root,
    root_jvp,
    root_vjp,
)
from jaxopt_papers.implicit.linear_solve import LinearSolve
from jaxopt_papers.implicit.optimality import (
    box_kkt_optimality,
    box_qp_optimality,
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
    "box_kkt_optimality",
    "box_qp_optimality",
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
