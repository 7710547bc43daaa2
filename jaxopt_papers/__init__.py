"""jaxopt_papers: paper-faithful optimisation methods for JAX.

Every optimizer is re-exported flat (``jop.adamp``, ``jop.lion_k``, ``jop.scale_by_adan`` ...)
and is an optax ``GradientTransformationExtraArgs`` that drops into ``optax.chain``. Implicitly
differentiable solvers live in subpackages: ``jop.implicit`` (``custom_root``, optimality
conditions, the solver base), ``jop.proximal`` (``ProximalGradient``, prox operators,
projections) and ``jop.ot`` (Sinkhorn, Sinkhorn–Newton–Sparse).
"""

from jaxopt_papers import implicit, optimizers, ot, proximal, sharding
from jaxopt_papers.optimizers import *  # noqa: F403
from jaxopt_papers.optimizers import __all__ as _optimizer_names

__version__ = "0.1.0"
__all__ = ["implicit", "optimizers", "ot", "proximal", "sharding", *_optimizer_names]
