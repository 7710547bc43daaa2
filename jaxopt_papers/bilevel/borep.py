"""BO-REP: bilevel optimisation under unbounded smoothness (normalised momentum, periodic LL).

Hao, Gong, Liu, "Bilevel Optimization under Unbounded Smoothness: A New Algorithm and
Convergence Analysis", ICLR 2024 (spotlight), arXiv 2401.09587. Official code:
github.com/MingruiLiu-ML-Lab/Bilevel-Optimization-under-Unbounded-Smoothness (PyTorch; three
scripts, ``data_cleaning/``, ``hyperparam_opt/`` and ``meta_learning/``, each with a
``bo_rep.py`` holding the update and a ``main.py`` holding the defaults).

The problem is ``min_x Φ(x) = f(x, y*(x))`` with ``y*(x) = argmin_y g(x, y)`` (``f`` =
``upper_fn``, ``g`` = ``lower_fn``, strongly convex in ``y``), where ``f`` may be
``(L₀, L₁)``-smooth: its Hessian may grow with its gradient (recurrent networks). The exact
hypergradient is ``∇Φ = ∇ₓf − ∇²ₓᵧg (∇²ᵧᵧg)⁻¹ ∇ᵧf``. One iteration ``t`` (``k = t`` the step
count, from 0), in the order of the scripts' ``Learner.forward``:

0. *Initialisation refinement* (first step only, ``init_steps > 0``): ``init_steps`` SGD steps
   ``y ← y − α ∇ᵧg(x₀, y)`` on the lower level at ``x₀``.
1. *Periodic lower-level update*: if ``t mod I = 0`` (``I = update_interval``), ``N =
   inner_steps`` SGD steps ``y ← y − α ∇ᵧg(x_t, y)`` warm-started from the current ``y``;
   otherwise ``y`` is kept. Call the result ``y_{t+1}``.
2. ``(∇ₓf, ∇ᵧf)`` at ``(x_t, y_{t+1})``.
3. The inverse-Hessian-vector product ``z ≈ (∇²ᵧᵧg)⁻¹∇ᵧf``:

   - ``hypergrad="code"`` (default, the scripts' ``hypergradient``): a persistent ``z`` takes
     one step on ``½zᵀ∇²ᵧᵧg z − zᵀ∇ᵧf`` per iteration (SOBA-style),
     ``z ← z − ν (∇²ᵧᵧg(x_t, y_{t+1}) z − ∇ᵧf)``;
   - ``hypergrad="neumann"`` (the paper's estimator): ``Q = neumann_terms`` terms of the
     Neumann series, ``z = s Σ_{q=0}^{Q−1} Π_{j=1}^{q} (I − s ∇²ᵧᵧg_j) ∇ᵧf`` with
     ``s = neumann_scale`` (``1/L`` for the lower level's smoothness ``L``; each factor
     ``j`` on its own mini-batch in the stochastic mode), so that with exact Hessians the
     relative error is ``‖(I − sH)^Q‖ ≤ (1 − sμ)^Q``.
4. ``ĝ_t = ∇ₓf − ∇²ₓᵧg(x_t, y_{t+1}) z`` (one Jacobian-vector product with the new ``z``).
5. Momentum ``m_t = β m_{t−1} + (1 − β) ĝ_t`` (``m₋₁ = 0``).
6. Normalised step ``x_{t+1} = x_t − η m_t/(‖m_t‖ + ε)`` with ``ε = 1e-10`` (the scripts set
   the SGD learning rate to ``η/(‖m‖ + 1e-10)``); ``normalize=False`` takes ``x − η m``.

``η`` (``outer_lr``), ``α`` (``inner_lr``) and ``ν`` (``z_lr``) are numbers or schedules
(callables of the step count ``t``, e.g. optax schedules; ``α`` is then constant within one
lower-level update). A normalised step with a fixed ``η`` moves ``x`` by exactly ``η`` at every
step, so it cannot converge: it ends in an ``O(η)`` neighbourhood of a stationary point. The
scripts decay ``η`` and ``α`` with ``StepLR(step_size=epoch, gamma=0.2)``
(``data_cleaning/bo_rep.py`` lines 69-70; stepped once per epoch, 25 epochs, so it never fires
in the default run); ``optax.exponential_decay(η, S, 0.2, staircase=True)`` is that rule per
step, and a decaying ``outer_lr`` makes the iterates converge.

Stochastic mode (``batch_size`` and/or ``upper_batch_size``): every oracle call above draws its
own rows with :func:`~jaxopt_papers.bilevel.minibatch` (without replacement) from keys split
off ``state.key``: one batch per lower-level SGD step, one upper batch for ``∇f``, one lower
batch for each Hessian-vector product and one for the Jacobian-vector product. ``run`` then
needs a ``key``.

``error`` is ``‖m_t‖``, the norm of the momentum (the algorithm's hypergradient estimate);
with ``tol`` a run stops once it is at most ``tol``. Per step, ``num_grads`` counts one
gradient of ``f`` (both partials), ``N`` lower-level gradients on update steps and
``init_steps`` on the first step; ``num_hvps`` counts 2 (``∇²ᵧᵧg z`` and ``∇²ₓᵧg z``) with
``hypergrad="code"`` and ``Q`` (``Q − 1`` Hessian-vector products and ``∇²ₓᵧg z``) with
``"neumann"``.

Defaults (the hyper-cleaning script ``data_cleaning/main.py``): ``outer_lr = 5e-2`` and
``inner_lr = 5e-2`` (lines 59-63), ``beta = 0.9`` (line 82), ``z_lr = 1e-2`` (``--nu``, line
85), ``inner_steps = 10`` (``--y_warm_start``, line 89), ``update_interval = 2``
(``--interval``, line 92), normalisation on (``--grad_normalized``, line 74), ``ε = 1e-10``
(``bo_rep.py`` line 120). ``neumann_terms = 5`` is the ``--hessian_q`` default of
``meta_learning/main.py`` (line 69, not used by the BO-REP scripts themselves);
``neumann_scale`` defaults to ``inner_lr``; ``init_steps = 0`` (the scripts have no
refinement phase). The other scripts use ``η = 1e-2, α = 1e-3, I = 2, N = 3`` (hyper-
representation) and ``η = 1e-4, α = 2e-3, I = 3, N = 3`` (hyperparameter optimisation).

Differences from the reference code:

- Order: we follow ``hyperparam_opt/bo_rep.py`` and ``meta_learning/bo_rep.py`` (lower-level
  update first, then ``∇²ᵧᵧg z``, ``∇f`` and ``∇²ₓᵧg z`` all at ``(x_t, y_{t+1})``), which is
  also the paper's order. The hyper-cleaning script computes ``∇²ᵧᵧg z`` at the pre-update
  ``y_t`` and takes one extra lower-level step on update iterations (``N + 1`` in all, the
  first on the Hessian-vector product's batch).
- Lower-level SGD: the scripts never zero the lower-level gradients inside their update loop
  (and not after the previous iteration's ``∇ᵧf``), so each of their steps uses the running
  sum of all gradients since the last reset; we take plain SGD steps, as the paper states.
- ``z`` starts at 0 (the scripts: Xavier-uniform random) and ``m`` at 0 (as the scripts).
- ``∇ₓf`` enters ``ĝ`` (as in ``meta_learning``; the hyper-cleaning and HO upper levels do
  not depend on ``x``).
- Initialisation refinement (the paper's epoch-SGD subroutine, absent from the scripts) is
  ``init_steps`` SGD steps with step ``α`` inside the first ``step`` (``init`` cannot move
  ``y0``).
- Not implemented: the code's ``--grad_clip`` flag (parsed, never used). Added: learning-rate
  schedules, a ``tol`` stopping rule on ``‖m‖`` and the Neumann option.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxopt_papers import _validation as V
from jaxopt_papers.bilevel._base import (
    BilevelSolver,
    BilevelState,
    check_stepsize,
    minibatch,
    tree_norm,
)
from jaxopt_papers.bilevel.problem import BilevelParams, BilevelProblem

__all__ = ["BOREP", "BOREPState"]

_OWNER = "BOREP"
HYPERGRADS = ("code", "neumann")


class BOREPState(BilevelState):
    """State of :class:`BOREP` (beyond :class:`~jaxopt_papers.bilevel.BilevelState`).

    Attributes:
      num_steps: iterations done.
      error: ``‖m‖``, the norm of the momentum after the last step (``inf`` before the first).
      upper_values: ``upper_fn`` after each step.
      num_grads: gradient evaluations of ``upper_fn`` and ``lower_fn`` so far.
      num_hvps: Hessian- and Jacobian-vector products of ``lower_fn`` so far.
      key: the PRNG key (split at every step in the stochastic mode, kept otherwise).
      z: the estimate of ``(∇²ᵧᵧg)⁻¹∇ᵧf`` of the last step (shaped like ``y``; 0 at the start):
        the persistent variable of ``hypergrad="code"``, the last Neumann estimate otherwise.
      momentum: ``m``, the momentum of the hypergradient estimates (shaped like ``x``).
    """

    z: Any
    momentum: Any


def _tree_axpy(a: Any, x: Any, y: Any) -> Any:
    """``a·x + y`` leaf by leaf."""
    return jax.tree.map(lambda u, v: a * u + v, x, y)


class BOREP(BilevelSolver):
    """BO-REP (Hao, Gong, Liu, ICLR 2024): normalised momentum and periodic lower-level updates.

    See :mod:`jaxopt_papers.bilevel.borep` for the iteration, the defaults' sources and the
    differences from the official code.

    Args:
      problem: a :class:`~jaxopt_papers.bilevel.BilevelProblem` without ``constraint_fn``
        (``lower_fn`` strongly convex in ``y``).
      outer_lr: ``η``, the length of the normalised step of ``x`` (``>= 0``; 0 freezes ``x``),
        or a schedule ``t -> η_t`` (e.g. an optax schedule: a decaying one makes ``x``
        converge).
      inner_lr: ``α``, the lower level's SGD step (``> 0``) or a schedule ``t -> α_t``.
      update_interval: ``I``: the lower level is updated at steps ``t`` with ``t mod I = 0``.
      inner_steps: ``N``, SGD steps per lower-level update (at least 1).
      beta: ``β``, the momentum in ``[0, 1)``.
      z_lr: ``ν``, the step of the persistent ``z`` (``hypergrad="code"``), ``> 0`` or a
        schedule.
      hypergrad: ``"code"`` (the official scripts' persistent ``z``) or ``"neumann"`` (the
        paper's truncated Neumann series).
      neumann_terms: ``Q``, the number of Neumann terms (``"neumann"``; at least 1).
      neumann_scale: ``s`` of the Neumann series, about ``1/L`` (``None``: ``inner_lr``).
      init_steps: SGD steps of the initialisation refinement on ``g(x₀, ·)``, taken in the first
        step (0: none, as the scripts).
      normalize: take the normalised step ``η m/(‖m‖ + eps)`` (the code's default) or
        ``η m`` (``False``).
      eps: ``ε`` of the normalisation, ``> 0``.
      batch_size: rows of ``lower_data`` drawn per lower-level oracle call (``None``: all rows,
        deterministic).
      upper_batch_size: rows of ``upper_data`` drawn for ``∇f`` (``None``: all rows).
      tol: stop once ``‖m‖ <= tol`` (``None``: run ``max_steps`` steps).
      max_steps: iterations.
      record_upper: record ``upper_fn`` after each step in ``stats["upper_values"]``.
      implicit_diff: differentiate the solution with respect to the data by the implicit
        function theorem on the joint condition (``False``: through the iterations, where the
        normalisation's derivative is not that of the solution).
      linear_solve: the linear solve of that differentiation (``None``: the default).
      throw: raise a runtime error on failure (``False``: report it in ``result``).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxopt_papers import bilevel
      >>> from jaxopt_papers.bilevel.borep import BOREP
      >>> rp = bilevel.problems.quadratic(dim_x=2, dim_y=3)
      >>> eta = optax.exponential_decay(0.1, transition_steps=30, decay_rate=0.5)  # η_t
      >>> solver = BOREP(rp.problem, outer_lr=eta, inner_lr=0.15, z_lr=0.15, max_steps=500)
      >>> sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)
      >>> error = jnp.linalg.norm(sol.x - rp.solution.x) / jnp.linalg.norm(rp.solution.x)
      >>> bool(error < 1e-3), int(sol.stats["num_grads"]), int(sol.stats["num_hvps"])
      (True, 3000, 1000)
    """

    problem: Any
    outer_lr: Any = 5e-2
    inner_lr: Any = 5e-2
    update_interval: int = eqx.field(static=True, default=2)
    inner_steps: int = eqx.field(static=True, default=10)
    beta: float = 0.9
    z_lr: Any = 1e-2
    hypergrad: str = eqx.field(static=True, default="code")
    neumann_terms: int = eqx.field(static=True, default=5)
    neumann_scale: Any = None
    init_steps: int = eqx.field(static=True, default=0)
    normalize: bool = eqx.field(static=True, default=True)
    eps: float = 1e-10
    batch_size: int | None = eqx.field(static=True, default=None)
    upper_batch_size: int | None = eqx.field(static=True, default=None)
    tol: float | None = None
    max_steps: int = eqx.field(static=True, default=1000)
    record_upper: bool = eqx.field(static=True, default=True)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        **BilevelSolver.messages,
        "max_steps_reached": (
            "BOREP: the momentum's norm ‖m‖ did not reach `tol` within `max_steps` iterations. "
            "A normalised step of fixed length `outer_lr` cannot converge: pass a decaying "
            "schedule as `outer_lr` (e.g. optax.exponential_decay), increase `max_steps`, "
            "loosen `tol`, or pass `tol=None` to run a fixed budget."
        ),
        "nonfinite": (
            "BOREP: the iterates became non-finite (NaN or inf): reduce `inner_lr` (below 2/L "
            "for the lower level's smoothness L), `z_lr` (likewise) or `neumann_scale`, reduce "
            "`outer_lr`, or check the data for NaN/inf."
        ),
    }

    def __check_init__(self) -> None:
        if not isinstance(self.problem, BilevelProblem):
            raise TypeError(
                f"{_OWNER}: `problem` must be a BilevelProblem, got {type(self.problem).__name__}."
            )
        if self.problem.constraint_fn is not None:
            raise ValueError(
                f"{_OWNER}: the lower level must be unconstrained (`constraint_fn=None`); BO-REP "
                f"takes plain SGD steps on it."
            )
        V.check_real(_OWNER, "outer_lr", self.outer_lr, low=0.0, schedule_ok=True)
        for name in ("inner_lr", "z_lr"):
            V.check_real(_OWNER, name, getattr(self, name), low=0.0, low_open=True,
                         schedule_ok=True)  # fmt: skip
        if self.neumann_scale is not None:
            V.check_real(_OWNER, "neumann_scale", self.neumann_scale, low=0.0, low_open=True,
                         schedule_ok=True)  # fmt: skip
        V.check_real(_OWNER, "beta", self.beta, low=0.0, high=1.0, high_open=True)
        check_stepsize(_OWNER, "eps", self.eps)
        V.check_choice(_OWNER, "hypergrad", self.hypergrad, HYPERGRADS)
        V.check_int(_OWNER, "update_interval", self.update_interval, low=1)
        V.check_int(_OWNER, "inner_steps", self.inner_steps, low=1)
        V.check_int(_OWNER, "neumann_terms", self.neumann_terms, low=1)
        V.check_int(_OWNER, "init_steps", self.init_steps, low=0)
        for name in ("batch_size", "upper_batch_size"):
            if getattr(self, name) is not None:
                V.check_int(_OWNER, name, getattr(self, name), low=1)
        V.check_int(_OWNER, "max_steps", self.max_steps, low=1)
        if self.tol is not None:
            check_stepsize(_OWNER, "tol", self.tol, positive=False)

    def _needs_key(self) -> bool:
        return self.batch_size is not None or self.upper_batch_size is not None

    @staticmethod
    def _value(value: Any, k: Any, dtype: Any) -> jax.Array:
        return jnp.asarray(value(k) if callable(value) else value, dtype)

    # -- init / step ---------------------------------------------------------------------------

    def init(
        self, params: BilevelParams, upper_data: Any, lower_data: Any, key: Any = None
    ) -> BOREPState:
        """The state before the first step: ``z = 0`` and ``m = 0``.

        Args:
          params: the starting :class:`~jaxopt_papers.bilevel.BilevelParams` ``(x0, y0)``.
          upper_data: the upper level's data.
          lower_data: the lower level's data.
          key: the PRNG key of the stochastic mode (``run`` passes its ``key``).

        Returns:
          The :class:`BOREPState`. The initialisation refinement (``init_steps``) runs in the
          first ``step``.
        """
        if key is None:
            if self._needs_key():
                raise ValueError(
                    f"{_OWNER}.init: this configuration samples mini-batches (`batch_size` or "
                    f"`upper_batch_size`); pass `key=jax.random.key(seed)`."
                )
            key = jax.random.key(0)
        x, y = params
        return BOREPState(
            **self._bookkeeping(params, key),
            z=jax.tree.map(jnp.zeros_like, y),
            momentum=jax.tree.map(jnp.zeros_like, x),
        )

    def step(
        self, params: BilevelParams, state: BOREPState, upper_data: Any, lower_data: Any,
        key: Any = None,
    ) -> tuple[BilevelParams, BOREPState]:  # fmt: skip
        """One BO-REP iteration: periodic lower update, ``z``, momentum, normalised step.

        Sampling (stochastic mode): ``state.key`` splits into ``(next key, k_init, k_lower,
        k_hvp, k_upper, k_jvp)``; the ``i``-th lower-level SGD step of the update uses the
        ``i``-th key of ``jax.random.split(k_lower, N)`` (``k_init`` likewise for the
        refinement), the ``j``-th Hessian-vector product the ``j``-th key of
        ``jax.random.split(k_hvp, ·)``; ``∇f`` draws with ``k_upper`` and ``∇²ₓᵧg z`` with
        ``k_jvp``. In the deterministic mode nothing is drawn and the key is kept.

        Args:
          params: the current ``(x_t, y_t)``.
          state: the current state.
          upper_data: the upper level's data.
          lower_data: the lower level's data.
          key: unused (the stochastic mode draws from ``state.key``).

        Returns:
          ``(params, state)`` after the step: ``(x_{t+1}, y_{t+1})`` (``y_{t+1}`` the lower
          iterate at which ``ĝ_t`` was taken), ``state.z``, ``state.momentum = m_t`` and
          ``state.error = ‖m_t‖``.
        """
        problem = self.problem
        x, y = params
        k = state.num_steps
        dtype = state.error.dtype
        stochastic = self._needs_key()
        if stochastic:
            next_key, k_init, k_lower, k_hvp, k_upper, k_jvp = jax.random.split(state.key, 6)
        else:
            next_key = k_init = k_lower = k_hvp = k_upper = k_jvp = state.key

        def keys(kk: Any, n: int) -> Any:
            return jax.random.split(kk, n) if stochastic else None

        def lower_batch(kk: Any) -> Any:
            return minibatch(kk, lower_data, self.batch_size) if stochastic else lower_data

        def upper_batch(kk: Any) -> Any:
            return minibatch(kk, upper_data, self.upper_batch_size) if stochastic else upper_data

        grad_g = jax.grad(problem.lower_fn, argnums=1)
        alpha = self._value(self.inner_lr, k, dtype)

        def sgd(kk: Any, n: int) -> Any:
            def one(yk: Any, kj: Any) -> tuple[Any, None]:
                return _tree_axpy(-alpha, grad_g(x, yk, lower_batch(kj)), yk), None

            return lambda y0: jax.lax.scan(one, y0, keys(kk, n), length=n)[0]

        count_dtype = state.num_grads.dtype
        grads = jnp.asarray(1, count_dtype)  # ∇f (both partials in one call)
        if self.init_steps > 0:
            first = k == 0
            y = jax.lax.cond(first, sgd(k_init, self.init_steps), lambda v: v, y)
            grads = grads + jnp.where(first, self.init_steps, 0).astype(count_dtype)
        if self.update_interval == 1:
            y = sgd(k_lower, self.inner_steps)(y)
            grads = grads + self.inner_steps
        else:
            update = jnp.mod(k, self.update_interval) == 0
            y = jax.lax.cond(update, sgd(k_lower, self.inner_steps), lambda v: v, y)
            grads = grads + jnp.where(update, self.inner_steps, 0).astype(count_dtype)

        fx, fy = jax.grad(problem.upper_fn, argnums=(0, 1))(x, y, upper_batch(k_upper))

        def hvp(v: Any, kk: Any) -> Any:
            data = lower_batch(kk)
            return jax.jvp(lambda b: grad_g(x, b, data), (y,), (v,))[1]

        if self.hypergrad == "code":
            nu = self._value(self.z_lr, k, dtype)
            Hz = hvp(state.z, k_hvp)
            z = jax.tree.map(lambda a, h, f: a - nu * (h - f), state.z, Hz, fy)
            hvps = 2
        else:
            s = self._value(self.inner_lr if self.neumann_scale is None else self.neumann_scale,
                            k, dtype)  # fmt: skip

            def term(carry: tuple, kj: Any) -> tuple[tuple, None]:
                v, total = carry
                v = _tree_axpy(-s, hvp(v, kj), v)
                return (v, jax.tree.map(jnp.add, total, v)), None

            q = self.neumann_terms - 1
            (_, total), _ = jax.lax.scan(term, (fy, fy), keys(k_hvp, q), length=q)
            z = jax.tree.map(lambda a: s * a, total)
            hvps = self.neumann_terms

        data_jvp = lower_batch(k_jvp)
        _, pullback = jax.vjp(lambda a: grad_g(a, y, data_jvp), x)
        (cross,) = pullback(z)
        g_hat = jax.tree.map(lambda a, c: a - c, fx, cross)
        beta = jnp.asarray(self.beta, dtype)
        m = jax.tree.map(lambda a, g: beta * a + (1 - beta) * g, state.momentum, g_hat)
        eta = self._value(self.outer_lr, k, dtype)
        norm = tree_norm(m)
        scale = eta / (norm + self.eps) if self.normalize else eta
        new = BilevelParams(_tree_axpy(-scale, m, x), y)
        return new, self._advance(
            state, new, upper_data, error=norm, grads=grads, hvps=hvps, key=next_key,
            z=z, momentum=m,
        )  # fmt: skip
