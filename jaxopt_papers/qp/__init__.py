"""Quadratic programs: OSQP's ADMM (``BoxOSQP``, ``OSQP``), implicitly differentiable.

:class:`BoxOSQP` solves ``min ½xᵀQx + cᵀx`` s.t. ``Ax = z``, ``l ≤ z ≤ u``; :class:`OSQP` the
form ``Ax = b``, ``Gx ≤ h``. Both return the library's :class:`~jaxopt_papers.Solution` (a
:class:`KKTSolution` of primal and dual variables), report infeasibility with
``RESULTS.primal_infeasible``/``RESULTS.dual_infeasible``, and are differentiable with respect to
every array of the problem through :func:`~jaxopt_papers.implicit.box_qp_optimality`.
Reference code: jaxopt 0.8.5's ``BoxOSQP`` and ``OSQP``; see :mod:`jaxopt_papers.qp.box_osqp`
for the equations, the defaults and the differences from jaxopt.
"""

from jaxopt_papers.qp.box_osqp import BoxOSQP, BoxOSQPState, KKTSolution
from jaxopt_papers.qp.osqp import OSQP

__all__ = ["OSQP", "BoxOSQP", "BoxOSQPState", "KKTSolution"]
