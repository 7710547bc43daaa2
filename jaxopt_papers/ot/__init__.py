"""Entropic optimal transport: log-domain Sinkhorn and Sinkhorn–Newton–Sparse, differentiable.

:class:`OTProblem` holds the problem; :class:`Sinkhorn` and :class:`SinkhornNewtonSparse` solve
it (``init``/``step``/``run``) and return the library's :class:`~jaxopt_papers.Solution` with
:class:`Potentials` as ``value`` and :class:`OTOutputs` (plan and costs) as ``aux``;
:func:`sinkhorn` and :func:`sinkhorn_newton_sparse` are one-call wrappers.

Differences from the reference code (ott-jax 0.6.0, the SNS paper): listed in each module.
"""

from jaxopt_papers.ot.costs import euclidean, lp_cost, squared_euclidean
from jaxopt_papers.ot.dual import OTOutputs, OTProblem, Potentials
from jaxopt_papers.ot.sinkhorn import Sinkhorn, SinkhornState, sinkhorn
from jaxopt_papers.ot.sinkhorn_newton_sparse import (
    SinkhornNewtonSparse,
    SNSState,
    sinkhorn_newton_sparse,
)

__all__ = [
    "OTOutputs",
    "OTProblem",
    "Potentials",
    "SNSState",
    "Sinkhorn",
    "SinkhornNewtonSparse",
    "SinkhornState",
    "euclidean",
    "lp_cost",
    "sinkhorn",
    "sinkhorn_newton_sparse",
    "squared_euclidean",
]
