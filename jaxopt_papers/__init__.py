"""jaxopt_papers: optimisation methods from recent papers, as jit-compiled JAX building blocks.

Every method is checked against its paper's reference code (a trajectory test where code exists)
and documents each deviation from it. The package has two kinds of building blocks:

* **Optimizers** (:mod:`jaxopt_papers.optimizers`), re-exported flat here (``jop.adan``,
  ``jop.lion_k``, ``jop.scale_by_adamp``, ...): each alias is an optax
  ``GradientTransformationExtraArgs``, so it composes with ``optax.chain``,
  ``optax.inject_hyperparams``, ``optax.MultiSteps`` and ``optax.masked``.
* **Implicitly differentiable solvers**: :mod:`jaxopt_papers.implicit` (``custom_root``,
  ``custom_fixed_point``, optimality conditions, the solver base), :mod:`jaxopt_papers.proximal`
  (proximal and projected gradient, prox operators, projections), :mod:`jaxopt_papers.ot`
  (Sinkhorn and Sinkhorn–Newton–Sparse) and :mod:`jaxopt_papers.linear` (CG, GMRES, GCRO-DR,
  Krylov recycling across sequences of systems, SOR with a learned relaxation). Every solver
  returns one :class:`Solution` and reports its outcome with one :class:`RESULTS` (which extends
  ``lineax.RESULTS``); ``jax.grad`` flows through each solution by the implicit function
  theorem.

  Bilevel problems: :mod:`jaxopt_papers.bilevel` (one problem interface, the implicit
  hypergradient, and the penalty method and BSVRB beside the
  implicit-differentiation baseline).

  Smooth and constrained problems: :mod:`jaxopt_papers.smooth` (L-BFGS, BFGS, L-BFGS-B,
  gradient descent), :mod:`jaxopt_papers.qp` (OSQP and BoxOSQP), :mod:`jaxopt_papers.fixed_point`
  (fixed-point iteration, Anderson acceleration, Broyden) and :mod:`jaxopt_papers.scipy_wrappers`
  (SciPy's solvers inside ``jit``, with implicit gradients); jaxopt's catalogue in
  :mod:`jaxopt_papers.objective`, :mod:`jaxopt_papers.perturbations` and
  :mod:`jaxopt_papers.isotonic`.
* **8-bit optimizer states** (:mod:`jaxopt_papers.quantized`): ``jop.adam8bit``,
  ``jop.lion8bit``, ... and ``jop.quantize_state`` keep moments as block-wise quantised
  ``uint8`` codes.
* **Adaptive step sizes** (:mod:`jaxopt_papers.schedules`, flat as ``jop.<name>``): schedules
  refined from a previous run's gradient norms, hypergradient descent (``jop.sgd_hd``,
  ``jop.adam_hd``) and learning-rate rules for a change of batch size.
* **Zeroth-order gradient estimates** (:mod:`jaxopt_papers.zeroth_order`): MeZO, Sparse MeZO,
  ZO-RankSGD and DeepZero as optax transformations fed by the loss (``value_fn``).
* **Second-order methods** (:mod:`jaxopt_papers.curvature`): MKOR, MKOR-H and M-FAC as optax
  transformations (``jop.mkor``, ``jop.mkor_h``, ``jop.mfac``), with per-layer statistics
  captured in the gradient pass (``curvature.value_grad_and_stats``).
* **Adaptive batch sizes** (:mod:`jaxopt_papers.batch_size`, flat as ``jop.<name>``): AdAdaGrad's
  norm, inner-product and orthogonality tests on per-example gradients, AdaGrad-Norm
  (``jop.adagrad_norm``) and ``jop.grow_batch_training``, a loop that grows the batch.
* **Federated learning** (:mod:`jaxopt_papers.federated`): a jitted simulator (Dirichlet non-IID
  splits, clients on a vmapped axis), FedAvg and FedHyper's learning-rate rules
  (``fedhyper_g``, ``fedhyper_gm``, ``fedhyper_sl``, ``fedhyper_cl``).

:mod:`jaxopt_papers.sharding` derives optimizer-state shardings from parameter shardings.

Differences from jaxopt:
  Solvers are ``equinox.Module`` pytrees with ``init``/``step``/``run``; ``run`` returns a
  :class:`Solution` (answer, result code, statistics) instead of ``(params, state)`` (which it
  still unpacks to), and a failed solve raises with ``throw=True`` instead of returning an
  unconverged answer silently. Implicit differentiation works in forward and reverse mode. The
  first-order optimizers, which jaxopt does not have, are optax transformations.

Example:
  >>> import jax.numpy as jnp, optax
  >>> import jaxopt_papers as jop
  >>> tx = optax.chain(optax.clip_by_global_norm(1.0), jop.lion(1e-3))
  >>> params = {"w": jnp.ones(3)}
  >>> updates, _ = tx.update({"w": jnp.array([0.5, -2.0, 1.0])}, tx.init(params), params)
  >>> [round(u, 6) for u in updates["w"].tolist()]
  [-0.001, 0.001, -0.001]
"""

from typing import Any

from jaxopt_papers import (
    batch_size,
    bilevel,
    curvature,
    federated,
    fixed_point,
    implicit,
    isotonic,
    linear,
    objective,
    optimizers,
    ot,
    perturbations,
    proximal,
    qp,
    quantized,
    schedules,
    scipy_wrappers,
    sharding,
    smooth,
    zeroth_order,
)
from jaxopt_papers._solution import RESULTS, Solution
from jaxopt_papers.batch_size import *  # noqa: F403
from jaxopt_papers.batch_size import __all__ as _batch_size_names
from jaxopt_papers.curvature import mfac, mkor, mkor_h, scale_by_mfac, scale_by_mkor
from jaxopt_papers.optimizers import *  # noqa: F403
from jaxopt_papers.optimizers import __all__ as _optimizer_names
from jaxopt_papers.quantized import (
    Adam8bitState,
    Lion8bitState,
    QuantizedState,
    SGD8bitState,
    adam8bit,
    adamw8bit,
    dequantize_blockwise,
    dynamic_map,
    lion8bit,
    quantize_blockwise,
    quantize_state,
    scale_by_adam8bit,
    scale_by_lion8bit,
    sgd8bit,
)
from jaxopt_papers.schedules import *  # noqa: F403
from jaxopt_papers.schedules import __all__ as _schedule_names

__version__ = "0.1.0"
__all__ = [
    "RESULTS",
    "Adam8bitState",
    "Lion8bitState",
    "QuantizedState",
    "SGD8bitState",
    "Solution",
    "StableEmbedding",  # noqa: F405 (module __getattr__: flax is optional)
    "adam8bit",
    "adamw8bit",
    "dequantize_blockwise",
    "dynamic_map",
    "batch_size",
    "bilevel",
    "curvature",
    "federated",
    "fixed_point",
    "implicit",
    "isotonic",
    "linear",
    "lion8bit",
    "mfac",
    "mkor",
    "mkor_h",
    "objective",
    "optimizers",
    "ot",
    "perturbations",
    "proximal",
    "qp",
    "quantize_blockwise",
    "quantize_state",
    "quantized",
    "scale_by_adam8bit",
    "scale_by_lion8bit",
    "scale_by_mfac",
    "scale_by_mkor",
    "schedules",
    "scipy_wrappers",
    "sgd8bit",
    "sharding",
    "smooth",
    "zeroth_order",
    *_optimizer_names,
    *_schedule_names,
    *_batch_size_names,
]


def __getattr__(name: str) -> Any:
    # flax is optional: the flax layer is imported on first use.
    if name == "StableEmbedding":
        from jaxopt_papers.quantized.embedding import StableEmbedding

        return StableEmbedding
    raise AttributeError(f"module 'jaxopt_papers' has no attribute {name!r}")
