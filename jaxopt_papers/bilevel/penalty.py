"""The penalty method for bilevel optimisation: fully first order, no Hessians at all.

Kwon, Kwon, Wright, Nowak, "On Penalty Methods for Nonconvex Bilevel Optimization and
First-Order Stochastic Approximation", ICLR 2024 (arXiv 2309.01753).

For ``min_x F(x) = f(x, y*(x))`` with ``y*(x) ∈ argmin_{y∈Y} g(x, y)`` (``f`` = ``upper_fn``,
``g`` = ``lower_fn``, ``Y`` closed and convex, given by its projection), the paper replaces
``F`` by the penalty function

    ψ_σ(x) = min_{y∈Y} { f(x, y) + (g(x, y) − v(x))/σ },      v(x) = min_{z∈Y} g(x, z),

which is ``O(σ)``-close to ``F`` in value and gradient under a proximal error bound on the
perturbed lower level ``σf + g``, and whose gradient needs gradients only:

    ∇ψ_σ(x) = ∇ₓf(x, y_σ*) + (∇ₓg(x, y_σ*) − ∇ₓg(x, z*))/σ,
    y_σ* ∈ argmin_{y∈Y} (σf + g)(x, ·),   z* ∈ argmin_{z∈Y} g(x, ·)

(:func:`penalty_gradient`). :class:`PenaltyBilevel` is the paper's double-loop algorithm,
iteration ``k`` (``σ_k`` and ``α_k`` below):

1. ``y ← Proj_Y(y − β (σ_k ∇ᵧf(x_k, y) + ∇ᵧg(x_k, y)))``, ``inner_steps`` times, from the
   previous ``y`` (warm start);
2. ``z ← Proj_Y(z − β ∇ᵧg(x_k, z))``, ``inner_steps_z`` times, from the previous ``z``;
3. ``G_k = ∇ₓf(x_k, y) + (∇ₓg(x_k, y) − ∇ₓg(x_k, z))/σ_k`` and
   ``x_{k+1} = Proj_X(x_k − α_k G_k)``.

``f``'s own ``x``-gradient enters ``G_k`` directly (``f`` is the whole ``upper_fn``). The
solution's ``y`` (``params.y``) is ``z``, the lower level's iterate (``≈ y*(x)``); the penalised
iterate ``y`` is ``state.y_sigma``. Both start at ``y0``.
Stochastic mode (``batch_size``/``upper_batch_size``): every gradient above is taken on its
own mini-batch of data rows, drawn without replacement by
:func:`~jaxopt_papers.bilevel.minibatch` with keys split from ``state.key`` (as F2SA draws an
independent batch for each oracle call).

Schedules (defaults in brackets):

- ``σ_k = max(min(sigma_min, sigma), sigma · (k + 1)^(−sigma_decay))`` [``sigma = 1``,
  ``sigma_decay = 6/7``, ``sigma_min = 1e-4``], or ``σ_k = sigma_schedule(k)`` (any callable of
  the step count, e.g. an optax schedule). ``sigma_decay = 0`` keeps ``σ = sigma`` fixed, the
  paper's theoretical setting (``σ = Θ(ε)``).
- ``α_k = alpha_k · (σ_k/σ_0)^alpha_power`` [``alpha = 0.1``], ``alpha_k`` a number or a
  schedule of ``k``. The paper's analysis takes ``α ≲ σ/L`` because ``1/σ`` amplifies the
  inner-loop errors in ``G``; ``alpha_power = 1`` is that rule literally, ``0`` a constant
  step. Default (``alpha_power=None``): ``0`` in the deterministic mode, where the ``y`` and
  ``z`` loops start together and share ``β``, so their errors cancel in ``(y − z)/σ``
  (``y − z`` obeys a contraction forced by ``βσ∇ᵧf``, hence stays ``O(σ)``), and ``2/3`` in
  the stochastic mode, where independent batches do not cancel: with the default σ schedule
  the outer step then decays like ``k^(−4/7)`` while ``λ = 1/σ`` grows like ``k^(6/7)``, as in
  F2SA.
- ``β`` [``0.1``]: a number or a schedule of ``k``, the same for ``y`` and ``z``; it must be
  below ``2/L`` for the lower level's gradient Lipschitz constant ``L`` (``σf + g`` has
  about the same constant as ``g`` when ``σ ≤ 1``).

``error`` is ``‖G_k‖`` (computed at ``x_k``, before the update). With a ``tol`` the run stops
once ``‖G_k‖ ≤ tol`` *and* the σ schedule has settled (``σ_{k+1} ≥ σ_k``: the default reaches
``sigma_min``), so that a run does not stop on a stationary point of a too coarse ``ψ_σ``.
``num_grads`` counts ``2·inner_steps + inner_steps_z + 3`` gradient evaluations per step
(``∇f`` and ``∇g`` at ``y``, ``∇g`` at ``z``, and the three ``x``-gradients; times the number of
blocks of a :class:`~jaxopt_papers.bilevel.MultiBlockProblem`); ``num_hvps`` stays 0.

Which code the defaults are based on: no code of the ICLR 2024 paper was found. The defaults of
the σ schedule and of the step decay follow the implementation of its ICML 2023 predecessor
F2SA (Kwon, Kwon, Wright, Nowak, "A Fully First-Order Method for Stochastic Bilevel
Optimization") in the benchopt bilevel benchmark (``benchopt/benchmark_bilevel``,
``solvers/f2sa.py`` at ``3ad65dc``: ``lmbda0 = 1`` and ``delta_lmbda = 0.1``, lines 26-27;
exponents ``(5/7, 4/7, 4/7, 1/7)`` of the inner, ``z``, outer and ``λ``-increment steps, lines
45-46; ``λ ← λ + Δλ_k``, line 113; ``n_inner_steps = 10``, line 28), a third-party
implementation, not the authors'.

Differences from the reference code: there is no reference code of this paper. Where we follow
the paper: the σ-form (steps on ``σf + g`` and ``g`` with one step ``β``, the ``1/σ`` factor in
``G``), projections onto ``X`` and ``Y``, ``T`` inner steps warm-started from the previous
iterate, and a fixed ``σ`` available (``sigma_decay = 0``). Where we follow F2SA's benchopt
implementation: ``σ_0 = 1`` and the growth exponent ``6/7`` of ``λ = 1/σ`` (there
``λ_k = 1 + 0.1 Σᵢ i^(−1/7) ≈ 1 + 0.12 k^(6/7)``; here ``λ_k = (k+1)^(6/7)``, faster at first),
the outer step's decay ``k^(−4/7)`` in the stochastic mode (through ``alpha_power = 2/3``),
10 inner steps, and independent mini-batches for every oracle call. Ours: the floor
``sigma_min`` (F2SA grows ``λ`` without bound), a constant ``β`` by default (F2SA decays its
inner steps as ``k^(−5/7)`` and ``k^(−4/7)``; pass schedules to do so), a constant outer step
in the deterministic mode, ``alpha = beta = 0.1`` (F2SA's benchmark: 0.01), returning ``z``
(not the penalised ``y``) as the solution's ``y``, and the stopping rule with ``tol``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS
from jaxopt_papers.bilevel._base import (
    BilevelSolver,
    BilevelState,
    check_stepsize,
    minibatch,
    tree_norm,
)
from jaxopt_papers.bilevel.problem import BilevelParams, BilevelProblem, MultiBlockProblem

__all__ = ["PenaltyBilevel", "PenaltyBilevelState", "penalty_gradient"]

_OWNER = "PenaltyBilevel"


# -- first-order oracles (one problem or m blocks) ------------------------------------------------


def _grad_y(problem: Any, fn: Callable, x: Any, y: Any, data: Any) -> Any:
    """``∇ᵧ fn(x, y, data)``; for m blocks, each block's gradient in its own ``yᵢ``."""
    grad = jax.grad(fn, argnums=1)
    if isinstance(problem, MultiBlockProblem):
        return jax.vmap(grad, in_axes=(None, 0, 0))(x, y, data)
    return grad(x, y, data)


def _grad_x(problem: Any, fn: Callable, x: Any, y: Any, data: Any) -> Any:
    """``∇ₓ fn(x, y, data)``; for m blocks, the gradient of the blocks' mean."""
    grad = jax.grad(fn, argnums=0)
    if isinstance(problem, MultiBlockProblem):
        grads = jax.vmap(grad, in_axes=(None, 0, 0))(x, y, data)
        return jax.tree.map(lambda v: jnp.mean(v, axis=0), grads)
    return grad(x, y, data)


def _batch(problem: Any, key: jax.Array, data: Any, size: int | None) -> Any:
    """A mini-batch of rows (of every block's rows, the same indices in all blocks)."""
    if size is None:
        return data
    if isinstance(problem, MultiBlockProblem):
        return jax.vmap(lambda d: minibatch(key, d, size))(data)
    return minibatch(key, data, size)


def _combine(gf: Any, ga: Any, gb: Any, sigma: Any) -> Any:
    """``gf + (ga − gb)/σ`` leaf by leaf."""
    return jax.tree.map(lambda f, a, b: f + (a - b) / sigma, gf, ga, gb)


def penalty_gradient(
    problem: Any, x: Any, y_sigma: Any, z: Any, upper_data: Any, lower_data: Any, sigma: Any
) -> Any:
    """``∇ψ_σ``'s estimate ``G = ∇ₓf(x, y_σ) + (∇ₓg(x, y_σ) − ∇ₓg(x, z))/σ``.

    At ``y_σ = argmin_y (σf + g)(x, ·)`` and ``z = argmin_z g(x, ·)`` it is the gradient of the
    penalty function ``ψ_σ`` of Kwon et al. (ICLR 2024), which differs from the hypergradient
    ``∇F(x)`` by ``O(σ)``; it uses three gradients and no Hessian. ``f`` = ``upper_fn`` and
    ``g`` = ``lower_fn``; for a :class:`~jaxopt_papers.bilevel.MultiBlockProblem` the
    ``x``-gradients are averaged over the blocks.

    Args:
      problem: a :class:`~jaxopt_papers.bilevel.BilevelProblem` or
        :class:`~jaxopt_papers.bilevel.MultiBlockProblem`.
      x: the upper-level variable.
      y_sigma: (an estimate of) the minimiser of ``σ·upper_fn + lower_fn`` over ``y``.
      z: (an estimate of) the minimiser of ``lower_fn`` over ``y``.
      upper_data: the upper level's data.
      lower_data: the lower level's data.
      sigma: the penalty parameter ``σ > 0``.

    Returns:
      ``G``, shaped like ``x``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> from jaxopt_papers.bilevel.penalty import penalty_gradient
      >>> rp = bilevel.problems.quadratic(dim_x=2, dim_y=3)
      >>> (t, rho), (H, B, c) = rp.upper_data, rp.lower_data
      >>> x, sigma = jnp.ones(2), 1e-3
      >>> y_sigma = jnp.linalg.solve(H + sigma * jnp.eye(3), B @ x + c + sigma * t)
      >>> z = jnp.linalg.solve(H, B @ x + c)
      >>> G = penalty_gradient(rp.problem, x, y_sigma, z, rp.upper_data, rp.lower_data, sigma)
      >>> exact = bilevel.hypergradient(rp.problem, x, z, rp.upper_data, rp.lower_data)
      >>> bool(jnp.linalg.norm(G - exact) < 1e-2 * jnp.linalg.norm(exact))
      True
    """
    gf = _grad_x(problem, problem.upper_fn, x, y_sigma, upper_data)
    ga = _grad_x(problem, problem.lower_fn, x, y_sigma, lower_data)
    gb = _grad_x(problem, problem.lower_fn, x, z, lower_data)
    return _combine(gf, ga, gb, sigma)


# -- the solver ------------------------------------------------------------------------------------


class PenaltyBilevelState(BilevelState):
    """State of :class:`PenaltyBilevel` (beyond :class:`~jaxopt_papers.bilevel.BilevelState`).

    Attributes:
      num_steps: outer iterations done.
      error: ``‖G_k‖``, the norm of the last penalty-gradient estimate (taken at ``x_k``).
      upper_values: ``upper_fn(x, z)`` after each step (an estimate of ``F(x)``).
      num_grads: gradient evaluations of ``upper_fn`` and ``lower_fn`` so far.
      num_hvps: always 0 (the method is fully first order).
      key: the PRNG key of the stochastic mode (split at every step).
      y_sigma: the penalised iterate ``y ≈ argmin_y (σ·upper_fn + lower_fn)(x, ·)`` (``params.y``
        is the lower level's iterate ``z ≈ argmin_y lower_fn(x, ·)``).
      sigma: the ``σ_k`` of the last step (``σ_0`` before the first).
      settled: whether the σ schedule has stopped decreasing (``σ_{k+1} ≥ σ_k``); a run with a
        ``tol`` succeeds only then.
    """

    y_sigma: Any
    sigma: jax.Array
    settled: jax.Array


class PenaltyBilevel(BilevelSolver):
    """The fully first-order penalty method of Kwon et al. (ICLR 2024) for bilevel problems.

    See :mod:`jaxopt_papers.bilevel.penalty` for the iteration, the schedules and what the
    defaults are based on.

    Args:
      problem: a :class:`~jaxopt_papers.bilevel.BilevelProblem` (with a ``constraint_fn``,
        pass ``projection_y``: the lower level's set is handled by projection) or a
        :class:`~jaxopt_papers.bilevel.MultiBlockProblem` (every block's ``yᵢ`` and ``zᵢ`` take
        their own gradient steps; ``G`` averages the blocks).
      sigma: ``σ_0`` of the default schedule, ``> 0`` (the penalty weight is ``1/σ``).
      sigma_decay: the exponent ``q`` of ``σ_k = max(sigma_min, sigma·(k+1)^(−q))``, ``>= 0``
        (``0``: ``σ`` fixed at ``sigma``).
      sigma_min: the floor of the default schedule, ``> 0`` (a ``sigma`` below it is kept);
        the answer is ``O(σ)`` from the bilevel solution.
      sigma_schedule: ``None`` (the default schedule above) or a callable ``k -> σ_k`` (e.g. an
        optax schedule), which then replaces ``sigma``, ``sigma_decay`` and ``sigma_min``.
      alpha: the outer step's base, ``> 0``, or a schedule ``k -> alpha_k``.
      alpha_power: ``p`` in ``α_k = alpha_k·(σ_k/σ_0)^p``, ``>= 0`` (``None``: 0 in the
        deterministic mode, 2/3 in the stochastic mode).
      beta: the lower-level step of ``y`` and ``z``, ``> 0``, or a schedule ``k -> beta_k``.
      inner_steps: gradient steps on ``y`` per outer step (``T``, at least 1).
      inner_steps_z: gradient steps on ``z`` per outer step (``None``: ``inner_steps``).
      batch_size: rows of ``lower_data`` per gradient (``None``: all, deterministic).
      upper_batch_size: rows of ``upper_data`` per gradient (``None``: all).
      projection_x: ``None`` or a callable ``x -> Proj_X(x)`` (a module-level function or a
        closure over constants).
      projection_y: ``None`` or a callable ``y -> Proj_Y(y)``, applied to ``y`` and ``z``.
      tol: stop when ``‖G_k‖ <= tol`` and the σ schedule has settled (``None``: run
        ``max_steps`` steps).
      max_steps: outer iterations.
      record_upper: record ``upper_fn`` after each step in ``stats["upper_values"]``.
      implicit_diff: differentiate the solution with respect to the data by the implicit
        function theorem on the bilevel problem's joint condition (``False``: through the
        iterations).
      linear_solve: the linear solve of that differentiation (``None``: the default).
      throw: raise a runtime error on failure (``False``: report it in ``result``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> from jaxopt_papers.bilevel.penalty import PenaltyBilevel
      >>> rp = bilevel.problems.quadratic(dim_x=2, dim_y=3)
      >>> solver = PenaltyBilevel(rp.problem, sigma_decay=2.0, sigma_min=1e-3, alpha=1.0,
      ...                         max_steps=300)     # σ_k = max(1e-3, 1/(k+1)²)
      >>> sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
      >>> error = jnp.linalg.norm(sol.x - rp.solution.x) / jnp.linalg.norm(rp.solution.x)
      >>> bool(error < 1e-3), int(sol.stats["num_grads"]), int(sol.stats["num_hvps"])
      (True, 9900, 0)
    """

    problem: Any
    sigma: float = 1.0
    sigma_decay: float = 6.0 / 7.0
    sigma_min: float = 1e-4
    sigma_schedule: Any = eqx.field(static=True, default=None)
    alpha: Any = 0.1
    alpha_power: float | None = None
    beta: Any = 0.1
    inner_steps: int = eqx.field(static=True, default=10)
    inner_steps_z: int | None = eqx.field(static=True, default=None)
    batch_size: int | None = eqx.field(static=True, default=None)
    upper_batch_size: int | None = eqx.field(static=True, default=None)
    projection_x: Any = eqx.field(static=True, default=None)
    projection_y: Any = eqx.field(static=True, default=None)
    tol: float | None = None
    max_steps: int = eqx.field(static=True, default=1000)
    record_upper: bool = eqx.field(static=True, default=True)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        **BilevelSolver.messages,
        "max_steps_reached": (
            "PenaltyBilevel: ‖G‖ did not reach `tol` with a settled σ schedule within "
            "`max_steps` outer steps. Increase `max_steps`, let σ reach `sigma_min` sooner "
            "(a larger `sigma_decay`), increase `alpha` or `inner_steps`, or pass `tol=None` to "
            "run a fixed budget."
        ),
        "nonfinite": (
            "PenaltyBilevel: the iterates became non-finite (NaN or inf). Reduce `beta` (it "
            "must be below 2/L for the lower level's smoothness L) or `alpha` (the 1/σ factor "
            "amplifies inner errors: raise `alpha_power` towards 1, add `inner_steps`, or raise "
            "`sigma_min`), or check the data for NaN/inf."
        ),
    }

    def __check_init__(self) -> None:
        if not isinstance(self.problem, (BilevelProblem, MultiBlockProblem)):
            raise TypeError(
                f"{_OWNER}: `problem` must be a BilevelProblem or a MultiBlockProblem, got "
                f"{type(self.problem).__name__}."
            )
        check_stepsize(_OWNER, "sigma", self.sigma)
        check_stepsize(_OWNER, "sigma_decay", self.sigma_decay, positive=False)
        check_stepsize(_OWNER, "sigma_min", self.sigma_min)
        if self.alpha_power is not None:
            check_stepsize(_OWNER, "alpha_power", self.alpha_power, positive=False)
        for name in ("alpha", "beta"):
            V.check_real(_OWNER, name, getattr(self, name), low=0.0, low_open=True,
                         schedule_ok=True)  # fmt: skip
        for name in ("sigma_schedule", "projection_x", "projection_y"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(
                    f"{_OWNER}: `{name}` must be None or a callable, got {type(value).__name__}."
                )
        V.check_int(_OWNER, "inner_steps", self.inner_steps, low=1)
        if self.inner_steps_z is not None:
            V.check_int(_OWNER, "inner_steps_z", self.inner_steps_z, low=1)
        for name in ("batch_size", "upper_batch_size"):
            if getattr(self, name) is not None:
                V.check_int(_OWNER, name, getattr(self, name), low=1)
        V.check_int(_OWNER, "max_steps", self.max_steps, low=1)
        if self.tol is not None:
            check_stepsize(_OWNER, "tol", self.tol, positive=False)
        if self.problem.constraint_fn is not None and self.projection_y is None:
            raise ValueError(
                f"{_OWNER}: the problem has a `constraint_fn`; the penalty method handles a "
                f"lower-level set Y (independent of x) by projection: pass `projection_y`, a "
                f"callable y -> Proj_Y(y). `constraint_fn` itself is not used by the iterations."
            )

    def _needs_key(self) -> bool:
        return self.batch_size is not None or self.upper_batch_size is not None

    # -- schedules ----------------------------------------------------------------------------

    def _sigma(self, k: Any, dtype: Any) -> jax.Array:
        if self.sigma_schedule is not None:
            return jnp.asarray(self.sigma_schedule(k), dtype)
        kk = jnp.asarray(k, dtype) + 1
        sigma = jnp.asarray(self.sigma, dtype)
        floor = jnp.minimum(jnp.asarray(self.sigma_min, dtype), sigma)
        return jnp.maximum(floor, sigma * kk ** (-jnp.asarray(self.sigma_decay, dtype)))

    @staticmethod
    def _value(value: Any, k: Any, dtype: Any) -> jax.Array:
        return jnp.asarray(value(k) if callable(value) else value, dtype)

    def _alpha_power(self) -> Any:
        if self.alpha_power is not None:
            return self.alpha_power
        return 2.0 / 3.0 if self._needs_key() else 0.0

    def _alpha(self, k: Any, sigma: jax.Array, dtype: Any) -> jax.Array:
        ratio = sigma / self._sigma(0, dtype)
        return self._value(self.alpha, k, dtype) * ratio ** jnp.asarray(self._alpha_power(), dtype)

    def _project(self, projection: Any, tree: Any) -> Any:
        return tree if projection is None else projection(tree)

    # -- init / step ----------------------------------------------------------------------------

    def init(
        self, params: BilevelParams, upper_data: Any, lower_data: Any, key: Any = None
    ) -> PenaltyBilevelState:
        """The state before the first outer step: ``y`` and ``z`` both start at ``y0``.

        Args:
          params: the starting :class:`~jaxopt_papers.bilevel.BilevelParams` ``(x0, y0)``.
          upper_data: the upper level's data.
          lower_data: the lower level's data.
          key: the PRNG key of the stochastic mode (``run`` passes its ``key``).

        Returns:
          The :class:`PenaltyBilevelState`.
        """
        if key is None:
            key = jax.random.key(0)
        dtype = jnp.result_type(*jax.tree.leaves(params))
        sigma0 = self._sigma(0, dtype)
        return PenaltyBilevelState(
            **self._bookkeeping(params, key),
            y_sigma=params.y,
            sigma=sigma0,
            settled=self._sigma(1, dtype) >= sigma0,
        )

    def step(
        self, params: BilevelParams, state: PenaltyBilevelState, upper_data: Any,
        lower_data: Any, key: Any = None,
    ) -> tuple[BilevelParams, PenaltyBilevelState]:  # fmt: skip
        """One outer step: ``y`` and ``z`` inner loops, then ``x ← Proj_X(x − α_k G_k)``.

        Args:
          params: the current ``(x, z)`` (``z`` the lower level's iterate).
          state: the current state (``state.y_sigma``: the penalised iterate ``y``).
          upper_data: the upper level's data.
          lower_data: the lower level's data.
          key: unused (the stochastic mode draws from ``state.key``).

        Returns:
          ``(params, state)`` after the step: ``x_{k+1}`` and the new ``z`` (computed at
          ``x_k``) in ``params``, the new ``y`` in ``state.y_sigma`` (both the next step's warm
          starts) and ``state.error = ‖G_k‖``.
        """
        problem = self.problem
        x, z = params
        y = state.y_sigma
        dtype = state.error.dtype
        k = state.num_steps
        sigma = self._sigma(k, dtype)
        beta = self._value(self.beta, k, dtype)
        steps_z = self.inner_steps if self.inner_steps_z is None else self.inner_steps_z
        stochastic = self._needs_key()
        new_key, sub = jax.random.split(state.key)
        keys_y, keys_z, keys_g = jax.random.split(sub, 3)
        upper_b = lambda kk: _batch(problem, kk, upper_data, self.upper_batch_size)
        lower_b = lambda kk: _batch(problem, kk, lower_data, self.batch_size)

        def y_step(yk: Any, kk: Any) -> tuple[Any, None]:
            ku, kl = jax.random.split(kk) if stochastic else (kk, kk)
            gf = _grad_y(problem, problem.upper_fn, x, yk, upper_b(ku))
            gg = _grad_y(problem, problem.lower_fn, x, yk, lower_b(kl))
            yk = jax.tree.map(lambda v, a, b: v - beta * (sigma * a + b), yk, gf, gg)
            return self._project(self.projection_y, yk), None

        def z_step(zk: Any, kk: Any) -> tuple[Any, None]:
            gg = _grad_y(problem, problem.lower_fn, x, zk, lower_b(kk))
            zk = jax.tree.map(lambda v, b: v - beta * b, zk, gg)
            return self._project(self.projection_y, zk), None

        y, _ = jax.lax.scan(y_step, y, jax.random.split(keys_y, self.inner_steps))
        z, _ = jax.lax.scan(z_step, z, jax.random.split(keys_z, steps_z))
        ku, ka, kb = jax.random.split(keys_g, 3)
        gf = _grad_x(problem, problem.upper_fn, x, y, upper_b(ku))
        ga = _grad_x(problem, problem.lower_fn, x, y, lower_b(ka))
        gb = _grad_x(problem, problem.lower_fn, x, z, lower_b(kb))
        G = _combine(gf, ga, gb, sigma)
        alpha = self._alpha(k, sigma, dtype)
        x = self._project(self.projection_x, jax.tree.map(lambda v, g: v - alpha * g, x, G))
        blocks = 1
        if isinstance(problem, MultiBlockProblem):
            blocks = jax.tree.leaves(y)[0].shape[0]
        grads = blocks * (2 * self.inner_steps + steps_z + 3)
        new = BilevelParams(x, z)
        return new, self._advance(
            state, new, upper_data, error=tree_norm(G), grads=grads, hvps=0, key=new_key,
            y_sigma=y, sigma=sigma, settled=self._sigma(k + 1, dtype) >= sigma,
        )  # fmt: skip

    # -- results --------------------------------------------------------------------------------

    def _continue(self, state: Any) -> jax.Array:
        go = (state.num_steps < self.max_steps) & ~jnp.isnan(state.error)
        if self.tol is not None:
            go = go & ((state.error > self.tol) | ~state.settled)
        return go

    def _result(self, params: Any, state: Any) -> RESULTS:
        finite = ~jnp.isnan(state.error) & V.all_finite(params) & V.all_finite(state.y_sigma)
        if self.tol is None:
            result = RESULTS.successful
        else:
            done = (state.error <= self.tol) & state.settled
            result = RESULTS.where(done, RESULTS.successful, RESULTS.max_steps_reached)
        return RESULTS.where(finite, result, RESULTS.nonfinite)
