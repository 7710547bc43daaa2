"""jaxopt_papers: paper-faithful optimisation methods for JAX.

Every optimizer is re-exported flat (``jop.adamp``, ``jop.lion_k``, ``jop.scale_by_adan`` ...)
and is an optax ``GradientTransformationExtraArgs`` that drops into ``optax.chain``. Implicitly
differentiable solvers live in subpackages: ``jop.implicit`` (``custom_root``, optimality
conditions, the solver base), ``jop.proximal`` (``ProximalGradient``, prox operators,
projections), ``jop.ot`` (Sinkhorn, Sinkhorn–Newton–Sparse) and ``jop.linear`` (Krylov solvers,
recycling across sequences of systems, SOR). Every solver returns one :class:`Solution` and
reports through one :class:`RESULTS` (extending ``lineax.RESULTS``).
"""

from jaxopt_papers import implicit, linear, optimizers, ot, proximal, sharding
from jaxopt_papers._solution import RESULTS, Solution
from jaxopt_papers.optimizers import *  # noqa: F403
from jaxopt_papers.optimizers import __all__ as _optimizer_names

__version__ = "0.1.0"
__all__ = [
    "RESULTS",
    "Solution",
    "implicit",
    "linear",
    "optimizers",
    "ot",
    "proximal",
    "sharding",
    *_optimizer_names,
]
