"""Entropic optimal transport: log-domain Sinkhorn and Sinkhorn–Newton–Sparse, differentiable."""

from jaxopt_papers.ot.costs import euclidean, lp_cost, squared_euclidean
from jaxopt_papers.ot.dual import OTResult
from jaxopt_papers.ot.sinkhorn import sinkhorn
from jaxopt_papers.ot.sinkhorn_newton_sparse import sinkhorn_newton_sparse

__all__ = [
    "OTResult",
    "euclidean",
    "lp_cost",
    "sinkhorn",
    "sinkhorn_newton_sparse",
    "squared_euclidean",
]
