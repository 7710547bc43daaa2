"""BSVRB: blockwise stochastic variance-reduced bilevel optimisation over many lower levels.

Hu, Qiu, Guo, Zhang, Yang, "Blockwise Stochastic Variance-Reduced Methods with Parallel Speedup
for Multi-Block Bilevel Optimization", ICML 2023 (arXiv 2305.18730). Official code:
github.com/quanqihu/BSVRB_ICML2023, ``Hyperparameter_Optimization/HO/main.py``.

The problem (a :class:`~jaxopt_papers.bilevel.MultiBlockProblem`) is

    min_x F(x) = (1/m) Σᵢ fᵢ(x, yᵢ*(x)),   yᵢ*(x) = argmin_y gᵢ(x, y),

``fᵢ = upper_fn(·, ·, upper_dataᵢ)`` and ``gᵢ = lower_fn(·, ·, lower_dataᵢ)`` strongly convex
in ``y``, with ``∇F = (1/m) Σᵢ [∇ₓfᵢ − ∇²ₓᵧgᵢ (∇²ᵧᵧgᵢ)⁻¹ ∇ᵧfᵢ]``. Each iteration ``t`` draws a
set ``I_t`` of ``num_sampled_blocks`` blocks (without replacement) and, inside each sampled
block, ``batch_size`` rows of that block's upper and lower data (its sample axis, the axis after
the block axis); every quantity of block ``i`` below is evaluated on those rows, at the new
point ``(x_t, yᵢ,t)`` and at the old point ``(x_{t−1}, yᵢ,t−1)`` on the *same* rows.

MSVR (multi-block single-probe variance reduction), for a block quantity ``hᵢ`` tracked by
``eᵢ`` (:func:`msvr_update`)::

    eᵢ ← (1 − α) eᵢ + (α + γ) hᵢ(x_t, yᵢ,t) − γ hᵢ(x_{t−1}, yᵢ,t−1)    for i ∈ I_t,

other blocks keep ``eᵢ``. One iteration of **BSVRBv1** (``version="v1"``), in the code's order:

1. for i ∈ I_t: ``sᵢ`` tracks ``∇ᵧgᵢ`` (MSVR); ``Hᵢ`` tracks the dense ``∇²ᵧᵧgᵢ`` (MSVR, then
   ``Hᵢ ← (b/‖Hᵢ‖_F) Hᵢ`` when ``‖Hᵢ‖_F < b = hessian_bound``);
2. the block terms ``Gᵢ(x, y, H) = ∇ₓfᵢ − ∇²ₓᵧgᵢ Hᵢ⁻¹ ∇ᵧfᵢ`` at the new point with the
   current ``Hᵢ,t`` and at the old point with ``Hᵢ,t−1`` (both before step 1's update);
   ``G_new``, ``G_old`` are their means over ``I_t``;
3. STORM: ``z_t = (1 − β)(z_{t−1} − G_old) + G_new``; ``x_{t+1} = x_t − η z_t``;
4. every block (sampled or not): ``yᵢ ← yᵢ − τ sᵢ``.

**BSVRBv2** (``version="v2"``, Hessian-inverse free) replaces ``Hᵢ⁻¹∇ᵧfᵢ`` by a variable
``vᵢ``:

1. for i ∈ I_t: ``sᵢ`` tracks ``∇ᵧgᵢ`` and ``uᵢ`` tracks ``∇²ᵧᵧgᵢ vᵢ − ∇ᵧfᵢ`` (the gradient of
   ``½vᵀ∇²ᵧᵧgᵢv − vᵀ∇ᵧfᵢ``; at the old point with the old ``vᵢ,t−1``), both by MSVR;
2. ``Gᵢ = ∇ₓfᵢ − ∇²ₓᵧgᵢ vᵢ`` at the new point with ``vᵢ,t`` and at the old point with
   ``vᵢ,t−1``;
3. STORM on ``x`` as in v1;
4. sampled blocks only, with the delay compensation ``dcᵢ`` (one plus the number of iterations
   since block ``i`` was last sampled): ``yᵢ ← yᵢ − τ dcᵢ sᵢ`` and
   ``vᵢ ← Proj_{‖v‖≤v_bound}(vᵢ − τ_v dcᵢ uᵢ)``.

Defaults (official ``main.py`` arguments and ``run_BSVRBv*.sh``): ``lr`` (η) ``= 1e-3``,
``alpha = 0.9``, ``gamma = 1``, ``beta = 0.9``, ``hessian_bound = 10``, ``v_bound = 10``;
``tau = 0.5`` for v1 and ``tau = tau_v = 1`` for v2 (``tau_v`` defaults to ``tau``). The
official runs sample 10 of 100 blocks and 32 rows per block (here: all blocks and full batches
unless ``num_sampled_blocks``/``batch_size`` say otherwise).

``error`` is ``‖z_t‖``, the STORM estimate of ``∇F(x_t)`` (with ``tol`` a run stops once it is
at most ``tol``). Per sampled block and step, ``num_grads`` counts 4 (``∇ᵧg`` and ``∇f`` at the
new and the old point) and ``num_hvps`` counts the two ``∇²ₓᵧg`` products plus, in v1, the two
dense Hessians (``d`` Hessian-vector products each, ``d`` the size of one block's ``y``) or, in
v2, the two ``∇²ᵧᵧg vᵢ`` products.

Differences from the reference code:

- Sampling: each step draws its blocks afresh without replacement, and each sampled block its
  own ``batch_size`` rows from its own data (the code shuffles the task list once per pass and
  takes consecutive slices, and splits one shuffled pass over the training rows, shared by all
  tasks, among the sampled tasks).
- Initialisation: the code draws every state array uniformly in ``[0, 1)`` (two different
  random points for the old and the new iterate). Here the old point is the starting point
  (``x_prev = x0``, ``y_prev = y0``), ``s = u = 0``, ``z = 0``,
  ``H = H_prev = (hessian_bound/√d)·I`` (on the projection's boundary; ``I`` when
  ``hessian_bound = 0``) and ``v = v_prev = Proj(τ_v ∇ᵧfᵢ(x0, yᵢ,0))`` on the full data (one
  v-step from ``v = 0``; ``m`` gradients, counted in ``num_grads``): with ``v = 0`` the first
  estimate ``z`` would be zero and a run with a ``tol`` would stop at once.
- The block term includes ``∇ₓfᵢ`` (the code's upper level does not depend on ``x``); ``Hᵢ⁻¹``
  is applied by a linear solve rather than an explicit inverse.
- ``hessian_bound = 0`` switches the ``H`` projection off (the code always applies it).
- Not implemented: the code's optional stage-wise decay of ``η`` and ``τ`` (``--stag_decay``,
  off by default) and the RSVRB baseline; a ``tol`` stopping rule is added (the code runs a
  fixed number of epochs).
- ``y`` may be any pytree (with the block axis first); the per-block arrays of the state work
  on each block's flattened ``y``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_papers import _validation as V
from jaxopt_papers.bilevel._base import (
    BilevelSolver,
    BilevelState,
    check_stepsize,
    minibatch,
    tree_norm,
)
from jaxopt_papers.bilevel.problem import BilevelParams, MultiBlockProblem

__all__ = ["BSVRB", "BSVRBState", "msvr_update"]

VERSIONS = ("v1", "v2")
_OWNER = "BSVRB"


def msvr_update(
    estimate: Any, idx: Any, new: Any, old: Any, alpha: Any, gamma: Any,
    project: Callable[[Any], Any] | None = None,
) -> Any:  # fmt: skip
    """The MSVR estimator's update of the sampled blocks ``idx`` (the others are kept).

    ``eᵢ ← project((1 − α) eᵢ + (α + γ) newᵢ − γ oldᵢ)`` for ``i ∈ idx``, with ``new``/``old``
    the block quantity at the current and the previous iterate on the same samples.

    Args:
      estimate: the tracked estimates, the block axis first (an array or a pytree of them).
      idx: the sampled blocks' indices, shape ``(I,)`` (distinct).
      new: the sampled blocks' fresh values, leading axis ``I`` (structured like
        ``estimate``).
      old: the same quantities at the previous iterate, on the same samples.
      alpha: ``α`` (``1 − α`` weights the previous estimate).
      gamma: ``γ``, the weight of the correction ``new − old``.
      project: applied to the updated rows (``None``: none), e.g. BSVRBv1's Hessian bound.

    Returns:
      The estimates with the rows ``idx`` updated.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.bilevel.bsvrb import msvr_update
      >>> e = msvr_update(jnp.ones((3, 2)), jnp.array([2]), jnp.full((1, 2), 2.0),
      ...                 jnp.zeros((1, 2)), alpha=0.5, gamma=1.0)
      >>> e.tolist()   # row 2: 0.5 * 1 + 1.5 * 2 - 1.0 * 0
      [[1.0, 1.0], [1.0, 1.0], [3.5, 3.5]]
    """
    project = (lambda rows: rows) if project is None else project

    def one(e: jax.Array, n: jax.Array, o: jax.Array) -> jax.Array:
        rows = (1 - alpha) * e[idx] + (alpha + gamma) * n - gamma * o
        return e.at[idx].set(project(rows).astype(e.dtype))

    return jax.tree.map(one, estimate, new, old)


def _project_frobenius_below(H: jax.Array, bound: Any) -> jax.Array:
    """Rescale each ``(d, d)`` matrix whose Frobenius norm is below ``bound`` up to ``bound``."""
    norm = jnp.sqrt(jnp.sum(H**2, axis=(-2, -1), keepdims=True))
    scale = jnp.where(norm < bound, bound / jnp.where(norm > 0, norm, 1.0), 1.0)
    return H * scale


def _project_ball(v: jax.Array, bound: Any) -> jax.Array:
    """Project each row onto the Euclidean ball of radius ``bound``."""
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    return v * jnp.where(norm > bound, bound / jnp.where(norm > 0, norm, 1.0), 1.0)


def _flatten_blocks(y: Any) -> tuple[jax.Array, Callable[[jax.Array], Any]]:
    """``y`` (block axis first) as an ``(m, d)`` array, and the unflattening of one block."""
    _, unravel = ravel_pytree(jax.tree.map(lambda v: v[0], y))
    flat = jax.vmap(lambda yi: ravel_pytree(yi)[0])(y)
    return flat, unravel


class BSVRBState(BilevelState):
    """State of :class:`BSVRB` (beyond :class:`~jaxopt_papers.bilevel.BilevelState`).

    The per-block arrays carry the block axis first and work on each block's flattened ``y``
    (``d`` entries).

    Attributes:
      num_steps: iterations done.
      error: ``‖z‖``, the norm of the STORM estimate after the last step.
      upper_values: the mean ``upper_fn`` over all blocks (full data) after each step.
      num_grads: gradient evaluations so far (4 per sampled block and step).
      num_hvps: Hessian- and Jacobian-vector products so far.
      key: the PRNG key (split at every step when the solver samples).
      x_prev: the previous upper-level iterate ``x_{t−1}`` (``x0`` at the start).
      y_prev: the previous lower-level iterates, flattened, shape ``(m, d)``.
      z: the STORM estimate of the hypergradient, shaped like ``x``.
      s: the MSVR estimates of ``∇ᵧgᵢ``, shape ``(m, d)``.
      H: v1: the MSVR estimates of ``∇²ᵧᵧgᵢ``, shape ``(m, d, d)``; v2: ``None``.
      H_prev: v1: ``H`` before the last step; v2: ``None``.
      v: v2: the estimates of ``(∇²ᵧᵧgᵢ)⁻¹∇ᵧfᵢ``, shape ``(m, d)``; v1: ``None``.
      v_prev: v2: ``v`` before the last step; v1: ``None``.
      u: v2: the MSVR estimates of ``∇²ᵧᵧgᵢ vᵢ − ∇ᵧfᵢ``, shape ``(m, d)``; v1: ``None``.
      delay: v2: for each block, the number of iterations since it was last sampled (int,
        shape ``(m,)``; the delay compensation is ``delay + 1``); v1: ``None``.
    """

    x_prev: Any
    y_prev: jax.Array
    z: Any
    s: jax.Array
    H: jax.Array | None
    H_prev: jax.Array | None
    v: jax.Array | None
    v_prev: jax.Array | None
    u: jax.Array | None
    delay: jax.Array | None


class BSVRB(BilevelSolver):
    """BSVRBv1/v2 (Hu et al., ICML 2023): many lower-level blocks, variance-reduced estimates.

    Each step samples ``num_sampled_blocks`` blocks and ``batch_size`` rows per block, updates
    the blockwise MSVR estimates of those blocks, moves the lower-level variables and takes a
    STORM step on ``x`` (the equations are in :mod:`jaxopt_papers.bilevel.bsvrb`).

    Args:
      problem: a :class:`~jaxopt_papers.bilevel.MultiBlockProblem` (``y`` and the data carry
        the block axis first, then, inside a block, the sample axis).
      version: ``"v1"`` (blockwise Hessian estimates, dense ``d × d`` per block) or ``"v2"``
        (Hessian-inverse free: per-block ``vᵢ`` with delay compensation).
      lr: ``η``, the step size of ``x`` (official default ``1e-3``).
      tau: ``τ``, the step size of the lower-level variables (``None``: 0.5 for v1, 1 for v2).
      tau_v: ``τ_v``, v2's step size of ``vᵢ`` (``None``: ``tau``).
      alpha: MSVR's ``α`` in ``(0, 1]``.
      gamma: MSVR's ``γ >= 0`` (the paper's theory takes about ``(m − I)/(I(1 − α)) + 1 − α``;
        the code uses 1).
      beta: STORM's ``β`` in ``(0, 1]`` (1: no momentum).
      hessian_bound: v1 rescales an estimate ``Hᵢ`` with Frobenius norm below it up to it
        (0: no rescaling).
      v_bound: v2 projects ``vᵢ`` onto the ball of this radius.
      num_sampled_blocks: blocks drawn per step, without replacement (``None``: all ``m``);
        at most ``m`` (checked when the data are seen).
      batch_size: rows drawn per sampled block from its upper and its lower data, without
        replacement (``None``: the full data).
      tol: stop once ``‖z‖ <= tol`` (``None``: run ``max_steps`` steps).
      max_steps: iterations.
      record_upper: record the mean ``upper_fn`` after each step in ``stats["upper_values"]``.
      implicit_diff: differentiate the solution with respect to the data by the implicit
        function theorem (``False``: through the iterations).
      linear_solve: the linear solve of that differentiation (``None``: the default).
      throw: raise a runtime error on failure (``False``: report it in ``result``).

    ``run`` needs a ``key`` when the configuration samples (``num_sampled_blocks < m`` or a
    ``batch_size``); the same key gives the same run.

    Step sizes: with the code's ``γ = 1`` the MSVR-tracked lower-level step is stable only for
    ``τ·L`` below about 0.75 (``L`` the largest curvature of ``gᵢ`` in ``y``; plain gradient
    descent allows 2), and with sampled blocks v1 also moves the unsampled blocks along their
    stale ``sᵢ``, so ``τ`` must be smaller still. The defaults (``τ = 0.5`` or 1) suit the
    paper's weighted logistic losses, whose curvature is small; scale ``τ`` to ``1/L``
    otherwise. v1's Hessian bound rescales small Hessian estimates up, which shrinks its
    hypergradient (an ``lr`` larger by ``hessian_bound/‖∇²ᵧᵧgᵢ‖_F`` compensates).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> from jaxopt_papers.bilevel.bsvrb import BSVRB
      >>> rp = bilevel.problems.multi_block_quadratic(num_blocks=4, dim_x=2, dim_y=3)
      >>> solver = BSVRB(rp.problem, version="v2", lr=0.5, tau=0.3, max_steps=200)
      >>> sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
      >>> bool(jnp.linalg.norm(sol.x - rp.solution.x) < 1e-4 * jnp.linalg.norm(rp.solution.x))
      True
      >>> sampled = BSVRB(rp.problem, lr=0.05, tau=0.1, num_sampled_blocks=2, max_steps=50)
      >>> sol = sampled.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data, key=jax.random.key(0))
      >>> int(sol.stats["num_grads"])   # 4 gradients per sampled block and step
      400
    """

    problem: Any
    version: str = eqx.field(static=True, default="v1")
    lr: float = 1e-3
    tau: float | None = None
    tau_v: float | None = None
    alpha: float = 0.9
    gamma: float = 1.0
    beta: float = 0.9
    hessian_bound: float = 10.0
    v_bound: float = 10.0
    num_sampled_blocks: int | None = eqx.field(static=True, default=None)
    batch_size: int | None = eqx.field(static=True, default=None)
    tol: float | None = None
    max_steps: int = eqx.field(static=True, default=1000)
    record_upper: bool = eqx.field(static=True, default=True)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        **BilevelSolver.messages,
        "max_steps_reached": (
            "BSVRB: the STORM estimate's norm ‖z‖ did not reach `tol` within `max_steps` "
            "iterations. Increase `max_steps` or `lr`, loosen `tol` (sampled blocks and "
            "mini-batches leave noise in z), or pass `tol=None` to run a fixed budget."
        ),
        "nonfinite": (
            "BSVRB: the iterates became non-finite (NaN or inf): reduce `lr`, `tau` (or "
            "`tau_v` for version='v2'), or check the data for NaN/inf. With version='v1' a "
            "singular Hessian estimate (`hessian_bound=0` and a Hessian estimate that is not "
            "positive definite) also gives NaN."
        ),
    }

    def __check_init__(self) -> None:
        if not isinstance(self.problem, MultiBlockProblem):
            raise TypeError(
                "BSVRB needs a MultiBlockProblem (m lower-level blocks sharing x, the block axis "
                f"first in y and the data), got {type(self.problem).__name__}. A single "
                "BilevelProblem is the multi-block problem with one block: wrap its functions in "
                "MultiBlockProblem and add a leading axis of size 1 to y and the data."
            )
        V.check_choice(_OWNER, "version", self.version, VERSIONS)
        check_stepsize(_OWNER, "lr", self.lr)
        for name in ("tau", "tau_v"):
            if getattr(self, name) is not None:
                check_stepsize(_OWNER, name, getattr(self, name))
        V.check_real(_OWNER, "alpha", self.alpha, low=0.0, high=1.0, low_open=True)
        V.check_real(_OWNER, "gamma", self.gamma, low=0.0)
        V.check_real(_OWNER, "beta", self.beta, low=0.0, high=1.0, low_open=True)
        V.check_real(_OWNER, "hessian_bound", self.hessian_bound, low=0.0)
        check_stepsize(_OWNER, "v_bound", self.v_bound)
        for name in ("num_sampled_blocks", "batch_size"):
            if getattr(self, name) is not None:
                V.check_int(_OWNER, name, getattr(self, name), low=1)
        V.check_int(_OWNER, "max_steps", self.max_steps, low=1)
        if self.tol is not None:
            check_stepsize(_OWNER, "tol", self.tol, positive=False)

    # -- configuration -------------------------------------------------------------------------

    def _tau(self) -> Any:
        if self.tau is not None:
            return self.tau
        return 0.5 if self.version == "v1" else 1.0

    def _tau_v(self) -> Any:
        return self._tau() if self.tau_v is None else self.tau_v

    def _needs_key(self, num_blocks: int | None = None) -> bool:
        """Whether the configuration samples (blocks or rows), so that ``run`` needs a key."""
        if self.batch_size is not None:
            return True
        if self.num_sampled_blocks is None:
            return False
        return num_blocks is None or self.num_sampled_blocks < num_blocks

    def _num_blocks(self, y: Any, upper_data: Any, lower_data: Any) -> int:
        m = self.problem.num_blocks_of(_OWNER, y, upper_data, lower_data)
        if self.num_sampled_blocks is not None and self.num_sampled_blocks > m:
            raise ValueError(
                f"BSVRB: `num_sampled_blocks` ({self.num_sampled_blocks}) exceeds the number of "
                f"blocks m = {m} of `y` and the data; pass at most {m} (or None for all)."
            )
        return m

    def run(  # type: ignore[override]
        self, x0: Any, y0: Any, upper_data: Any = None, lower_data: Any = None, key: Any = None
    ) -> Any:
        """Solve the multi-block problem from ``(x0, y0)``.

        Args:
          x0: the initial upper-level variable (any pytree of floating-point arrays).
          y0: the initial lower-level variables, the block axis first.
          upper_data: the upper levels' data (block axis first, then samples).
          lower_data: the lower levels' data (block axis first, then samples).
          key: a PRNG key (``jax.random.key``), needed when the configuration samples
            (``num_sampled_blocks < m`` or a ``batch_size``); the same key gives the same run.

        Returns:
          The :class:`~jaxopt_papers.Solution`: ``sol.x``, ``sol.y``, ``sol.result``,
          ``sol.stats`` (``num_steps``, ``error`` = ``‖z‖``, ``upper_values``, ``num_grads``,
          ``num_hvps``) and the final :class:`BSVRBState` in ``sol.state``.
        """
        m = self._num_blocks(y0, upper_data, lower_data)
        if key is None:
            if self._needs_key(m):
                raise ValueError(
                    "BSVRB.run: this configuration samples blocks or rows at random "
                    "(`num_sampled_blocks` < m or a `batch_size`); pass "
                    "`key=jax.random.key(seed)` (the same key reproduces the run)."
                )
            key = jax.random.key(0)
        return super().run(x0, y0, upper_data, lower_data, key=key)

    # -- init / step ---------------------------------------------------------------------------

    def init(
        self, params: BilevelParams, upper_data: Any, lower_data: Any, key: Any = None
    ) -> BSVRBState:
        """The state before the first step.

        Args:
          params: the starting :class:`~jaxopt_papers.bilevel.BilevelParams` ``(x0, y0)``
            (``y0`` with the block axis first).
          upper_data: the upper levels' data.
          lower_data: the lower levels' data.
          key: the PRNG key of a sampling configuration (``None`` allowed otherwise).

        Returns:
          The :class:`BSVRBState`: the previous point is the starting point, ``z``, ``s``
          and ``u`` are zero, ``H = H_prev = (hessian_bound/√d)·I`` (v1) and
          ``v = v_prev = Proj(τ_v ∇ᵧfᵢ(x0, yᵢ,0))`` on the full data (v2).
        """
        x, y = params
        m = self._num_blocks(y, upper_data, lower_data)
        if key is None:
            if self._needs_key(m):
                raise ValueError("BSVRB.init: this configuration samples at random; pass `key`.")
            key = jax.random.key(0)
        y_flat, unravel = _flatten_blocks(y)
        d = y_flat.shape[1]
        zeros = jnp.zeros_like(y_flat)
        bookkeeping = self._bookkeeping(params, key)
        H = v = u = delay = None
        if self.version == "v1":
            bound = jnp.asarray(self.hessian_bound, y_flat.dtype)
            scale = jnp.where(bound > 0, bound / math.sqrt(d), 1.0)
            H = jnp.broadcast_to(scale * jnp.eye(d, dtype=y_flat.dtype), (m, d, d))
        else:
            # One v-step from v = 0 with the full-data gradient (so that the first hypergradient
            # estimate is not zero): v = Proj(τ_v ∇ᵧf(x0, y0)), m gradient evaluations.
            fy = jax.vmap(
                jax.grad(lambda yv, ud: self.problem.upper_fn(x, unravel(yv), ud)), in_axes=(0, 0)
            )(y_flat, upper_data)
            v = _project_ball((self._tau_v() * fy).astype(y_flat.dtype), self.v_bound)
            u, delay = zeros, jnp.zeros((m,), jnp.int32)
            bookkeeping["num_grads"] = jnp.asarray(m)
        return BSVRBState(
            **bookkeeping,
            x_prev=x, y_prev=y_flat, z=jax.tree.map(jnp.zeros_like, x), s=zeros,
            H=H, H_prev=H, v=v, v_prev=v, u=u, delay=delay,
        )  # fmt: skip

    def _draw(
        self, key: Any, m: int, upper_data: Any, lower_data: Any
    ) -> tuple[Any, jax.Array, Any, Any]:
        """``(next key, sampled block indices, their upper data, their lower data)``."""
        sampled = m if self.num_sampled_blocks is None else self.num_sampled_blocks
        if not self._needs_key(m):
            return key, jnp.arange(m), upper_data, lower_data
        key, k_blocks, k_upper, k_lower = jax.random.split(key, 4)
        if sampled < m:
            idx = jax.random.choice(k_blocks, m, (sampled,), replace=False)
        else:
            idx = jnp.arange(m)
        take = lambda tree: jax.tree.map(lambda v: v[idx], tree)
        upper, lower = take(upper_data), take(lower_data)
        if self.batch_size is not None:
            rows = lambda k, data: jax.vmap(lambda kk, dd: minibatch(kk, dd, self.batch_size))(
                jax.random.split(k, sampled), data
            )
            upper, lower = rows(k_upper, upper), rows(k_lower, lower)
        return key, idx, upper, lower

    def step(
        self, params: BilevelParams, state: BSVRBState, upper_data: Any, lower_data: Any,
        key: Any = None,
    ) -> tuple[BilevelParams, BSVRBState]:  # fmt: skip
        """One BSVRB iteration (MSVR estimates, STORM step on ``x``, lower-level step).

        Sampling: ``state.key`` splits into ``(next key, k_blocks, k_upper, k_lower)``; the
        blocks are ``jax.random.choice(k_blocks, m, (I,), replace=False)`` (all blocks, in
        order, when ``I = m``) and the ``j``-th sampled block takes
        :func:`~jaxopt_papers.bilevel.minibatch` of its data with the ``j``-th key of
        ``jax.random.split(k_upper, I)`` (``k_lower`` for the lower data). Nothing is drawn
        (the key is kept) when the configuration does not sample.

        Args:
          params: the current ``(x, y)``.
          state: the current state.
          upper_data: the upper levels' data.
          lower_data: the lower levels' data.
          key: unused (the state carries the key).

        Returns:
          ``(params, state)`` after the step.
        """
        x, y = params
        m = self._num_blocks(y, upper_data, lower_data)
        y_flat, unravel = _flatten_blocks(y)
        d = y_flat.shape[1]
        next_key, idx, upper, lower = self._draw(state.key, m, upper_data, lower_data)
        sampled = idx.shape[0]
        upper_fn, lower_fn = self.problem.upper_fn, self.problem.lower_fn
        f = lambda xx, yv, data: upper_fn(xx, unravel(yv), data)
        gy = jax.grad(lambda xx, yv, data: lower_fn(xx, unravel(yv), data), argnums=1)
        v1 = self.version == "v1"

        def first(xx: Any, yv: jax.Array, ud: Any, ld: Any, curv: jax.Array) -> tuple:
            """``∇ₓf``, ``∇ᵧf`` and v1's Hessian (v2: ``∇²ᵧᵧg v − ∇ᵧf``) at one point;
            ``curv`` is ``Hᵢ`` (v1) or ``vᵢ`` (v2)."""
            fx, fy = jax.grad(f, argnums=(0, 1))(xx, yv, ud)
            if v1:
                extra = jax.jacfwd(lambda b: gy(xx, b, ld))(yv)
            else:
                extra = jax.jvp(lambda b: gy(xx, b, ld), (yv,), (curv,))[1] - fy
            return fx, fy, extra

        def second(xx: Any, yv: jax.Array, ld: Any, fx: Any, q: jax.Array) -> tuple:
            """``∇ᵧg`` and the block term ``G = ∇ₓf − ∇²ₓᵧg q`` at one point."""
            grad_y, pullback = jax.vjp(lambda a: gy(a, yv, ld), xx)
            (cross,) = pullback(q.astype(grad_y.dtype))
            return grad_y, jax.tree.map(lambda a, c: a - c, fx, cross)

        def batched(xx: Any, yv: jax.Array, ud: Any, ld: Any, curv: jax.Array) -> tuple:
            """The sampled blocks' ``(∇ᵧg, G, extra)`` at one point (block axis first)."""
            fx, fy, extra = jax.vmap(first, in_axes=(None, 0, 0, 0, 0))(xx, yv, ud, ld, curv)
            # v1: q = Hᵢ⁻¹∇ᵧfᵢ one block at a time (lax.map, not a batched solve; the same LAPACK
            # calls, the same numbers). jaxlib's batched LU splits a large enough batch over
            # XLA:CPU's intra-op pool and blocks its worker thread until the chunks are done: the
            # two solves of a step (new and old point), run concurrently inside the compiled
            # loop, held both workers of a 2-thread pool and the run deadlocked (jaxlib 0.10.2).
            q = jax.lax.map(lambda a: jnp.linalg.solve(*a), (curv, fy)) if v1 else curv
            grad_y, block = jax.vmap(second, in_axes=(None, 0, 0, 0, 0))(xx, yv, ld, fx, q)
            return grad_y, block, extra

        curv_new = state.H[idx] if v1 else state.v[idx]
        curv_old = state.H_prev[idx] if v1 else state.v_prev[idx]
        gy_new, g_new, e_new = batched(x, y_flat[idx], upper, lower, curv_new)
        gy_old, g_old, e_old = batched(state.x_prev, state.y_prev[idx], upper, lower, curv_old)
        alpha, gamma = self.alpha, self.gamma
        s = msvr_update(state.s, idx, gy_new, gy_old, alpha, gamma)

        mean = lambda tree: jax.tree.map(lambda a: jnp.mean(a, axis=0), tree)
        g_new, g_old = mean(g_new), mean(g_old)
        z = jax.tree.map(lambda zz, gn, go: (1 - self.beta) * (zz - go) + gn, state.z, g_new, g_old)
        x_new = jax.tree.map(lambda a, zz: a - self.lr * zz, x, z)

        if v1:
            H = msvr_update(
                state.H, idx, e_new, e_old, alpha, gamma,
                project=lambda rows: _project_frobenius_below(rows, self.hessian_bound),
            )  # fmt: skip
            y_new = y_flat - self._tau() * s
            fields = dict(H=H, H_prev=state.H)
            hvps = sampled * (2 + 2 * d)
        else:
            u = msvr_update(state.u, idx, e_new, e_old, alpha, gamma)
            dc = (state.delay[idx] + 1).astype(y_flat.dtype)[:, None]
            y_new = y_flat.at[idx].add(-self._tau() * dc * s[idx])
            v_rows = _project_ball(state.v[idx] - self._tau_v() * dc * u[idx], self.v_bound)
            v = state.v.at[idx].set(v_rows)
            delay = (state.delay + 1).at[idx].set(0)
            fields = dict(v=v, v_prev=state.v, u=u, delay=delay)
            hvps = sampled * 4

        new = BilevelParams(x_new, jax.vmap(unravel)(y_new))
        return new, self._advance(
            state, new, upper_data, error=tree_norm(z), grads=sampled * 4, hvps=hvps,
            key=next_key, x_prev=x, y_prev=y_flat, z=z, s=s, **fields,
        )  # fmt: skip
