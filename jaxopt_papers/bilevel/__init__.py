"""Bilevel optimisation: one problem interface, the implicit hypergradient, the papers' solvers.

``min_x upper_fn(x, y*(x), upper_data)`` with ``y*(x)`` minimising ``lower_fn(x, ·, lower_data)``
(optionally subject to ``constraint_fn(x, y, lower_data) ≤ 0``), for hyperparameter selection,
data re-weighting, meta-learning and robust training:

- :class:`BilevelProblem`, :class:`MultiBlockProblem` (``m`` lower levels sharing ``x``) and
  :class:`BilevelParams` (the pair ``(x, y)``);
- :func:`hypergradient`: ``∇F(x)`` at a lower-level solution by implicit differentiation (the
  gradient condition or the KKT conditions of a constrained lower level);
- solvers: :class:`ImplicitBilevel` (the implicit-differentiation baseline, AID, and its
  unrolled counterpart, ITD), :class:`PenaltyBilevel` (fully first-order, ICLR 2024),
  :class:`LVHBA` (constrained lower levels, Hessian-free, ICLR 2024), :class:`BOREP` (upper
  levels with unbounded smoothness, ICLR 2024) and :class:`BSVRB` (many lower-level blocks
  with variance reduction, ICML 2023);
- ready problems, also as ``bilevel.problems.<name>`` (closed-form quadratics, ridge selection
  on breast cancer, hyper-cleaning on digits, multi-task logistic, LV-HBA's constrained toy and
  its linear-SVM hyperparameter problem).

Every solver returns the one :class:`~jaxopt_papers.Solution` (``sol.x``, ``sol.y``,
``sol.result``, ``sol.stats``).

Example:
  >>> import jax.numpy as jnp
  >>> from jaxopt_papers import bilevel
  >>> rp = bilevel.problems.quadratic(dim_x=3, dim_y=4)
  >>> g = bilevel.hypergradient(rp.problem, rp.solution.x, rp.solution.y,
  ...                           rp.upper_data, rp.lower_data)
  >>> bool(jnp.linalg.norm(g) < 1e-4)                 # x* is stationary
  True
"""

from jaxopt_papers.bilevel import problems  # noqa: F401 (bilevel.problems.<name> also works)
from jaxopt_papers.bilevel._base import BilevelSolver, BilevelState, minibatch
from jaxopt_papers.bilevel._lvhba_problems import linear_svm, lvhba_toy
from jaxopt_papers.bilevel.borep import BOREP, BOREPState
from jaxopt_papers.bilevel.bsvrb import BSVRB, BSVRBState, msvr_update
from jaxopt_papers.bilevel.hypergradient import (
    estimate_multipliers,
    hypergradient,
    lower_residual,
)
from jaxopt_papers.bilevel.implicit_bilevel import ImplicitBilevel, ImplicitBilevelState
from jaxopt_papers.bilevel.lvhba import LVHBA, LVHBAState, halfspace_projection
from jaxopt_papers.bilevel.penalty import PenaltyBilevel, PenaltyBilevelState, penalty_gradient
from jaxopt_papers.bilevel.problem import BilevelParams, BilevelProblem, MultiBlockProblem
from jaxopt_papers.bilevel.problems import (
    ReadyProblem,
    accuracy,
    hyper_cleaning,
    logistic_l2,
    multi_block_quadratic,
    multi_task_logistic,
    quadratic,
)

__all__ = [
    "BOREP",
    "BSVRB",
    "LVHBA",
    "BOREPState",
    "BSVRBState",
    "BilevelParams",
    "BilevelProblem",
    "BilevelSolver",
    "BilevelState",
    "ImplicitBilevel",
    "ImplicitBilevelState",
    "LVHBAState",
    "MultiBlockProblem",
    "PenaltyBilevel",
    "PenaltyBilevelState",
    "ReadyProblem",
    "accuracy",
    "estimate_multipliers",
    "halfspace_projection",
    "hyper_cleaning",
    "hypergradient",
    "linear_svm",
    "logistic_l2",
    "lower_residual",
    "lvhba_toy",
    "minibatch",
    "msvr_update",
    "multi_block_quadratic",
    "multi_task_logistic",
    "penalty_gradient",
    "quadratic",
]
