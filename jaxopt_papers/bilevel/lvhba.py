"""LV-HBA: constrained bilevel optimisation by a proximal Lagrangian value function, Hessian-free.

Yao, Yu, Zeng, Zhang, "Constrained Bi-Level Optimization: Proximal Lagrangian Value Function
Approach and Hessian-free Algorithm", ICLR 2024 (arXiv 2401.16164). Official code:
github.com/SUSTech-Optimization/LV-HBA (``Toy-example/LLC/LV-HBA.py``, the linear-SVM scripts
``Hyperparameter optimization/Linear SVM/*/LV-HBA*.py``).

The problem is ``min_{(x, y) ∈ C} F(x, y)`` subject to
``y ∈ argmin_{θ ∈ Y} { f(x, θ) : g(x, θ) ≤ 0 }`` (``F`` = ``upper_fn``, ``f`` = ``lower_fn``,
``g`` = ``constraint_fn``, which may couple ``x`` and ``y``; ``f`` convex in ``y``, not
necessarily strongly), with ``C = {(x, y) ∈ X × Y : g(x, y) ≤ 0}``. The paper's proximal
Lagrangian value function (``γ₁, γ₂ > 0``)

    v_γ(x, y, z) = min_{θ ∈ Y} max_{λ ≥ 0} f(x, θ) + λᵀg(x, θ) + ‖θ − y‖²/(2γ₁) − ‖λ − z‖²/(2γ₂)

is smooth; on ``C`` it satisfies ``f(x, y) − v_γ(x, y, z) ≥ 0`` for every ``z ≥ 0``, with
equality for some ``z ∈ Z = [0, r]^l`` exactly when ``y`` solves the lower level. The bilevel
problem becomes a single-level problem with the smooth constraint ``f − v_γ ≤ 0``, which LV-HBA
penalises: it descends ``F/c_k + f − v_γ`` with a growing weight ``c_k``. Iteration ``k``
(``c_k = c_lower · (k + 1)^p``):

1. one gradient descent–ascent step on the saddle problem inside ``v_γ`` (``η``):
   ``d_θ = ∇ᵧf(x, θ) + ∇ᵧg(x, θ)ᵀλ + (θ − y)/γ₁``, ``d_λ = −g(x, θ) + (λ − z)/γ₂``,
   ``θ ← Proj_Y(θ − η d_θ)``, ``λ ← Proj_[0, U](λ − η d_λ)``;
2. a projected gradient step on ``F/c_k + f − v_γ`` in ``(x, y)`` (``α``) and on ``−v_γ`` in
   ``z`` (``β``), the gradient of ``v_γ`` taken by Danskin's theorem at the new ``(θ, λ)``:
   ``d_x = ∇ₓF(x, y)/c_k + ∇ₓf(x, y) − ∇ₓf(x, θ) − ∇ₓg(x, θ)ᵀλ``,
   ``d_y = ∇ᵧF(x, y)/c_k + ∇ᵧf(x, y) − (y − θ)/γ₁``, ``d_z = −(λ − z)/γ₂``,
   ``(x, y) ← Proj_C((x, y) − α (d_x, d_y))``, ``z ← Proj_[0, r](z − β d_z)``.

Without a ``constraint_fn`` there are no ``λ`` and ``z`` (``state.lam`` and ``state.z`` are
``None``) and ``v_γ`` is the Moreau envelope of ``f(x, ·)``. ``projection`` is
``Proj_C`` (a callable ``(x, y, lower_data) -> (x, y)``, e.g. :func:`halfspace_projection`);
without one (``None``) the constraint ``(x, y) ∈ C`` is not enforced on the iterates, only
through the value-function penalty (the lower level's solutions are feasible, so the limit
is, but the iterates need not be). ``projection_y`` (``y -> Proj_Y(y)``) is applied to ``θ``.
``θ`` starts at ``y0`` and ``λ``, ``z`` at ``lambda0``, ``z0`` (projected onto their sets).

Defaults: the official toy script's (``Toy-example/LLC/LV-HBA.py``): ``α = 0.008``,
``β = 0.02``, ``η = 0.01``, ``γ₁ = γ₂ = 10``, ``U = 1000``, ``c_k = 0.025 (k + 1)^0.3``
(``fun``'s keyword defaults, line 61, and line 94), 1500 iterations (line 162), ``θ`` starting
at ``y0`` (there ``θ₀`` is computed equal to ``y₀``, lines 73-76). ``r = U = 1000`` and
``λ₀ = z₀ = 1`` come from the SVM scripts (``u``, ``lamda``, ``z``), where ``λ`` and ``z``
are clipped to ``[0, u]`` (``LV-HBA(1).py``). The SVM scripts' reciprocal parameterisation
(``gama = 1/γ`` multiplying the proximal terms, ``ck = 1/√(k + 1)`` multiplying ``∇F``) is
the same algorithm with ``gamma1 = 1/gama1``, ``gamma2 = 1/gama2``, ``c_lower = 1``,
``p = 0.5``: the SVM settings ``α = 0.01``, ``β = 0.1``, ``η = 0.01``, ``gama = 0.1`` are
``LVHBA(alpha=0.01, beta=0.1, eta=0.01, gamma1=10, gamma2=10, c_lower=1, p=0.5)``.

These defaults do not solve the toy they come from: run as published, the official script
ends 1500 iterations at a relative error of 118 in ``x`` (we ran it; this class reproduces
its trajectory to about 1e-12 with ``multiplier_bounds="symmetric"``). Two reasons: ``c_k``
stays below 0.23, and the penalised problem's solution is then about 45% away from ``x*``;
and the simultaneous inner step is unstable there (spectral radius 1.012 of the linearised
iteration at ``c = 0.2``; the coupling ``∇ᵧg`` has norm ``√(2n)``). Settings found by
minimising that spectral radius, ``alpha=0.07, beta=0.01, eta=0.07, gamma1=2,
gamma2=0.02, c_lower=10``, reach a relative error of 5.4e-3 (``x``) and 3.8e-3 (``y``) in
1500 iterations at ``n = 100``; ``alpha=eta=0.04, beta=0.01, gamma1=2, gamma2=0.025,
c_lower=10`` are stable for ``n`` from 3 to 300 and reach about 4e-3 in 3000.

``error`` is the norm of the projected step mapping of all five blocks,
``‖((x, y) − (x, y)⁺)/α, (θ − θ⁺)/η, (λ − λ⁺)/η, (z − z⁺)/β‖`` (zero exactly at a fixed point
of the iteration; without projections ``‖(d_x, d_y, d_θ, d_λ, d_z)‖``). Every step costs four
gradients of ``upper_fn``/``lower_fn`` (``∇ᵧf(x, θ)``, ``∇F(x, y)`` and ``∇f(x, y)`` in both
arguments, ``∇ₓf(x, θ⁺)``) plus, with a ``constraint_fn``, two vector–Jacobian products of it
(``∇ᵧg(x, θ)ᵀλ`` and ``∇ₓg(x, θ⁺)ᵀλ⁺``), all counted in ``num_grads`` (6 per step);
``num_hvps`` stays 0: the method is Hessian-free.

The penalty weight ``c_k`` grows, and the iterates approach the bilevel solution only as
``c_k → ∞``: for a fixed ``c`` the iteration's fixed point is ``O(1/c)`` away from it, and the
iterates move along the lower level's solutions at a speed ``∝ α/c_k``, so a small error needs
a large ``c_k`` and many (cheap) steps. On ``bilevel.problems.quadratic()`` (5 + 10 variables)
``alpha=eta=0.15, gamma1=10, c_lower=0.1, p=0.8`` reach a relative error of 1e-4 in ``x``
after 611,859 steps (about one second on a CPU); ``y`` stays ``O(1/c_k)`` from ``y*(x)``.

Differences from the reference code:

- The multipliers: the toy script clips ``λ`` and ``z`` to ``[−U, U]`` (it writes the toy's
  constraint ``1ᵀx + 1ᵀy ≥ 0`` as ``g = 1ᵀx + 1ᵀy`` and lets the multiplier take either sign,
  i.e. treats it as the equality ``1ᵀx + 1ᵀy = 0``); the paper and the SVM scripts keep
  ``λ ∈ [0, U]``, ``z ∈ [0, r]``, our default. ``multiplier_bounds="symmetric"`` reproduces
  the toy script (``λ ∈ [−U, U]``, ``z ∈ [−r, r]``), trajectory for trajectory (tested).
- The SVM scripts are not followed where they are broken: the hyperparameter update
  ``model.C.data.add(...)`` is not in place, so ``C`` never changes there; ``LV-HBA.py`` never
  updates ``z``, and ``LV-HBA(1).py`` updates it with ``C``'s direction ``d1`` instead of
  ``d3``; here ``x`` and ``z`` take the paper's steps.
- ``Proj_C`` is the user's callable (the toy script subtracts the mean of ``(x, y)``, which
  :func:`halfspace_projection` with ``equality=True`` computes; the SVM scripts call cvxpy and
  ECOS). Schedules ``alpha``, ``beta``, ``eta`` (callables of ``k``) are accepted; a ``tol``
  stopping rule is added (the scripts run a fixed number of iterations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers.bilevel._base import BilevelSolver, BilevelState, check_stepsize, tree_norm
from jaxopt_papers.bilevel.problem import BilevelParams, BilevelProblem

__all__ = ["LVHBA", "LVHBAState", "halfspace_projection"]

_OWNER = "LVHBA"


def _tree_dot(a: Any, b: Any) -> jax.Array:
    return sum(jnp.sum(u * v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _coefficients(name: str, a: Any, tree: Any) -> Any:
    """``a`` as a pytree shaped like ``tree`` (a scalar ``a`` is used for every entry)."""
    if np.ndim(a) == 0 and not isinstance(a, (list, tuple, dict)):
        return jax.tree.map(lambda v: jnp.full(jnp.shape(v), a, jnp.result_type(v)), tree)
    if jax.tree.structure(a) != jax.tree.structure(tree):
        raise ValueError(
            f"halfspace_projection: `{name}` must be a scalar or have the structure of the "
            f"variable, got {jax.tree.structure(a)} for {jax.tree.structure(tree)}."
        )
    for c, v in zip(jax.tree.leaves(a), jax.tree.leaves(tree), strict=True):
        if np.shape(c) != np.shape(v):
            raise ValueError(
                f"halfspace_projection: `{name}` must be a scalar or shaped like the variable, "
                f"got shape {np.shape(c)} for a variable of shape {np.shape(v)}."
            )
    return jax.tree.map(lambda c, v: jnp.asarray(c, v.dtype), a, tree)


def halfspace_projection(a_x: Any, a_y: Any, b: float = 0.0, *, equality: bool = False) -> Callable:
    """The Euclidean projection onto ``{(x, y) : ⟨a_x, x⟩ + ⟨a_y, y⟩ ≤ b}`` (or ``= b``).

    For :class:`LVHBA`'s ``projection`` argument when the set ``C`` is a half-space (one linear
    constraint coupling ``x`` and ``y``) or, with ``equality=True``, a hyperplane, as in the
    official toy script (which subtracts the mean of ``(x, y)``: ``a_x = a_y = ±1``, ``b = 0``).
    The point moves along ``(a_x, a_y)`` by ``max(0, ⟨a, w⟩ − b)/‖a‖²`` (without the ``max``
    for a hyperplane).

    Args:
      a_x: the coefficients of ``x``: a scalar (the same for every entry) or a pytree shaped
        like ``x``.
      a_y: the coefficients of ``y``, likewise.
      b: the right-hand side.
      equality: project onto the hyperplane ``⟨a_x, x⟩ + ⟨a_y, y⟩ = b`` instead.

    Returns:
      ``projection(x, y, lower_data) -> (x, y)`` (``lower_data`` is ignored).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.bilevel.lvhba import halfspace_projection
      >>> proj = halfspace_projection(1.0, 1.0, 1.0)           # x₁ + x₂ + y ≤ 1
      >>> x, y = proj(jnp.array([1.0, 1.0]), jnp.array([2.0]), None)
      >>> x.tolist(), y.tolist()
      ([0.0, 0.0], [1.0])
    """
    if not isinstance(equality, bool):
        raise TypeError(f"halfspace_projection: `equality` must be a bool, got {equality!r}.")
    V.check_real("halfspace_projection", "b", b)

    def projection(x: Any, y: Any, lower_data: Any = None) -> tuple[Any, Any]:
        cx, cy = _coefficients("a_x", a_x, x), _coefficients("a_y", a_y, y)
        excess = _tree_dot(cx, x) + _tree_dot(cy, y) - b
        if not equality:
            excess = jnp.maximum(excess, 0.0)
        norm2 = _tree_dot(cx, cx) + _tree_dot(cy, cy)
        t = excess / norm2
        move = lambda c, v: v - (t * c).astype(v.dtype)
        return jax.tree.map(move, cx, x), jax.tree.map(move, cy, y)

    return projection


class LVHBAState(BilevelState):
    """State of :class:`LVHBA` (beyond :class:`~jaxopt_papers.bilevel.BilevelState`).

    Attributes:
      num_steps: iterations done.
      error: the norm of the last step's projected step mapping (see
        :mod:`jaxopt_papers.bilevel.lvhba`).
      upper_values: ``upper_fn(x, y)`` after each step.
      num_grads: gradients of ``upper_fn``/``lower_fn`` and vector–Jacobian products of
        ``constraint_fn`` so far.
      num_hvps: always 0 (Hessian-free).
      key: unused (the method is deterministic).
      theta: the proximal point ``θ`` (shaped like ``y``).
      lam: the multipliers ``λ`` (shaped like ``constraint_fn``'s output; ``None`` without
        constraints).
      z: the proximal centre ``z`` of the multipliers (shaped like ``lam``; ``None`` without
        constraints).
      c: the penalty weight ``c_k`` of the last step.
    """

    theta: Any
    lam: Any
    z: Any
    c: jax.Array


class LVHBA(BilevelSolver):
    """LV-HBA (Yao, Yu, Zeng, Zhang, ICLR 2024): single-loop, Hessian-free, LL constraints.

    See :mod:`jaxopt_papers.bilevel.lvhba` for the iteration, the defaults (the official toy
    script's) and the differences from the official code.

    Args:
      problem: a :class:`~jaxopt_papers.bilevel.BilevelProblem`, with or without a
        ``constraint_fn`` (lower-level constraints ``g(x, y) ≤ 0``, which may couple ``x`` and
        ``y``); the lower level must be convex in ``y``.
      alpha: the step ``α`` of ``(x, y)``, ``> 0`` (or a schedule ``k -> α_k``).
      beta: the step ``β`` of ``z``, ``> 0`` (or a schedule).
      eta: the step ``η`` of the inner pair ``(θ, λ)``, ``> 0`` (or a schedule).
      gamma1: ``γ₁ > 0``, the proximal parameter of ``θ`` (the SVM scripts' ``1/gama1``).
      gamma2: ``γ₂ > 0``, the proximal parameter of ``λ`` (the SVM scripts' ``1/gama2``).
      c_lower: ``c̲ > 0`` in the penalty weight ``c_k = c̲ (k + 1)^p`` dividing ``∇F``.
      p: the exponent ``p >= 0`` of ``c_k`` (the theory takes ``p ∈ (0, 1/2)``; ``0`` keeps
        the weight fixed).
      r: the bound of ``z ∈ [0, r]``, ``> 0``.
      clip_multiplier: ``U > 0``, the bound of ``λ ∈ [0, U]``.
      lambda0: the initial ``λ`` (every entry).
      z0: the initial ``z`` (every entry).
      multiplier_bounds: ``"nonnegative"`` (the paper: ``λ ∈ [0, U]``, ``z ∈ [0, r]``) or
        ``"symmetric"`` (the toy script: ``λ ∈ [−U, U]``, ``z ∈ [−r, r]``, which treats the
        constraints as equalities ``g = 0``).
      projection: ``Proj_C``, a callable ``(x, y, lower_data) -> (x, y)`` onto
        ``{(x, y) : g(x, y) ≤ 0}`` (and any sets ``X``, ``Y``), e.g.
        :func:`halfspace_projection`; ``None``: no projection (``C`` is then enforced only
        through the value-function penalty).
      projection_y: ``Proj_Y``, a callable ``y -> y`` applied to ``θ``; ``None``: ``Y`` is the
        whole space.
      tol: stop once ``error <= tol`` (``None``: run ``max_steps`` steps).
      max_steps: iterations (the toy script's 1500).
      record_upper: record ``upper_fn`` after each step in ``stats["upper_values"]``.
      implicit_diff: differentiate the solution with respect to the data by the implicit
        function theorem on the bilevel problem's joint condition (unconstrained lower levels;
        ``False``: through the iterations).
      linear_solve: the linear solve of that differentiation (``None``: the default).
      throw: raise a runtime error on failure (``False``: report it in ``result``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.bilevel.lvhba import LVHBA
      >>> from jaxopt_papers.bilevel._lvhba_problems import lvhba_toy
      >>> rp = lvhba_toy()         # the paper's toy: n = 100, a constraint coupling x and y
      >>> solver = LVHBA(rp.problem, alpha=0.07, beta=0.01, eta=0.07, gamma1=2.0,
      ...                gamma2=0.02, c_lower=10.0, projection=rp.extras["projection"])
      >>> sol = solver.run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)   # 1500 steps
      >>> error = jnp.linalg.norm(sol.x - rp.solution.x) / jnp.linalg.norm(rp.solution.x)
      >>> bool(error < 1e-2), int(sol.stats["num_grads"]), int(sol.stats["num_hvps"])
      (True, 9000, 0)
      >>> round(float(sol.state.lam[0]), 2)        # the constraint's multiplier: 1
      1.0
    """

    problem: Any
    alpha: Any = 0.008
    beta: Any = 0.02
    eta: Any = 0.01
    gamma1: float = 10.0
    gamma2: float = 10.0
    c_lower: float = 0.025
    p: float = 0.3
    r: float = 1000.0
    clip_multiplier: float = 1000.0
    lambda0: float = 1.0
    z0: float = 1.0
    multiplier_bounds: str = eqx.field(static=True, default="nonnegative")
    projection: Any = eqx.field(static=True, default=None)
    projection_y: Any = eqx.field(static=True, default=None)
    tol: float | None = None
    max_steps: int = eqx.field(static=True, default=1500)
    record_upper: bool = eqx.field(static=True, default=True)
    implicit_diff: bool = eqx.field(static=True, default=True)
    linear_solve: Any = None
    throw: bool = eqx.field(static=True, default=True)

    messages: ClassVar[dict[str, str]] = {
        **BilevelSolver.messages,
        "max_steps_reached": (
            "LVHBA: the step mapping's norm did not reach `tol` within `max_steps` iterations. "
            "Increase `max_steps` (the penalty weight c_k = c_lower·(k+1)^p grows slowly: the "
            "iterates drift with it), loosen `tol`, or pass `tol=None` to run a fixed budget."
        ),
        "nonfinite": (
            "LVHBA: the iterates became non-finite (NaN or inf). Reduce `alpha` (the step of "
            "(x, y): with a small `c_lower` the upper level's gradient is multiplied by "
            "1/c_k), `eta` (the inner step, below about γ₁/(1 + γ₁L) for the lower level's "
            "smoothness L) or `beta`, or check the data for NaN/inf."
        ),
    }

    def __check_init__(self) -> None:
        if not isinstance(self.problem, BilevelProblem):
            raise TypeError(
                f"{_OWNER}: `problem` must be a BilevelProblem (one lower level, with or without "
                f"a `constraint_fn`), got {type(self.problem).__name__}."
            )
        for name in ("alpha", "beta", "eta"):
            V.check_real(_OWNER, name, getattr(self, name), low=0.0, low_open=True,
                         schedule_ok=True)  # fmt: skip
        for name in ("gamma1", "gamma2", "c_lower", "r", "clip_multiplier"):
            check_stepsize(_OWNER, name, getattr(self, name))
        check_stepsize(_OWNER, "p", self.p, positive=False)
        V.check_real(_OWNER, "lambda0", self.lambda0)
        V.check_real(_OWNER, "z0", self.z0)
        V.check_choice(_OWNER, "multiplier_bounds", self.multiplier_bounds,
                       ("nonnegative", "symmetric"))  # fmt: skip
        for name in ("projection", "projection_y"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(
                    f"{_OWNER}: `{name}` must be None or a callable, got {type(value).__name__}."
                )
        V.check_int(_OWNER, "max_steps", self.max_steps, low=1)
        if self.tol is not None:
            check_stepsize(_OWNER, "tol", self.tol, positive=False)

    # -- pieces ---------------------------------------------------------------------------------

    @staticmethod
    def _value(value: Any, k: Any, dtype: Any) -> jax.Array:
        return jnp.asarray(value(k) if callable(value) else value, dtype)

    def _bounds(self, dtype: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        U = jnp.asarray(self.clip_multiplier, dtype)
        r = jnp.asarray(self.r, dtype)
        if self.multiplier_bounds == "symmetric":
            return (-U, U), (-r, r)
        zero = jnp.zeros((), dtype)
        return (zero, U), (zero, r)

    def _penalty(self, k: Any, dtype: Any) -> jax.Array:
        kk = jnp.asarray(k, dtype) + 1
        return jnp.asarray(self.c_lower, dtype) * kk ** jnp.asarray(self.p, dtype)

    def _project_xy(self, x: Any, y: Any, lower_data: Any) -> tuple[Any, Any]:
        if self.projection is None:
            return x, y
        return self.projection(x, y, lower_data)

    # -- init / step ----------------------------------------------------------------------------

    def init(
        self, params: BilevelParams, upper_data: Any, lower_data: Any, key: Any = None
    ) -> LVHBAState:
        """The state before the first step: ``θ = y0``, ``λ = lambda0``, ``z = z0`` (projected).

        Args:
          params: the starting :class:`~jaxopt_papers.bilevel.BilevelParams` ``(x0, y0)``.
          upper_data: the upper level's data.
          lower_data: the lower level's data (``λ`` and ``z`` take the shape of
            ``constraint_fn(x0, y0, lower_data)``).
          key: unused (``run`` passes a fixed key).

        Returns:
          The :class:`LVHBAState`.
        """
        if key is None:
            key = jax.random.key(0)
        dtype = jnp.result_type(*jax.tree.leaves(params))
        lam = z = None
        if self.problem.constraint_fn is not None:
            shape = jax.eval_shape(self.problem.constraint_fn, params.x, params.y, lower_data)
            (lam_lo, lam_hi), (z_lo, z_hi) = self._bounds(dtype)
            lam = jnp.clip(jnp.full(shape.shape, self.lambda0, dtype), lam_lo, lam_hi)
            z = jnp.clip(jnp.full(shape.shape, self.z0, dtype), z_lo, z_hi)
        return LVHBAState(
            **self._bookkeeping(params, key),
            theta=params.y,
            lam=lam,
            z=z,
            c=self._penalty(0, dtype),
        )

    def step(
        self, params: BilevelParams, state: LVHBAState, upper_data: Any, lower_data: Any,
        key: Any = None,
    ) -> tuple[BilevelParams, LVHBAState]:  # fmt: skip
        """One LV-HBA iteration: the inner ``(θ, λ)`` step, then ``(x, y)`` and ``z``.

        Args:
          params: the current ``(x, y)``.
          state: the current state (``θ``, ``λ``, ``z`` and the bookkeeping).
          upper_data: the upper level's data.
          lower_data: the lower level's data.
          key: unused (the method is deterministic).

        Returns:
          ``(params, state)`` after the step, ``state.error`` the norm of its projected step
          mapping.
        """
        problem = self.problem
        F, f, g = problem.upper_fn, problem.lower_fn, problem.constraint_fn
        x, y = params
        theta, lam, z = state.theta, state.lam, state.z
        dtype = state.error.dtype
        k = state.num_steps
        alpha = self._value(self.alpha, k, dtype)
        beta = self._value(self.beta, k, dtype)
        eta = self._value(self.eta, k, dtype)
        gamma1 = jnp.asarray(self.gamma1, dtype)
        gamma2 = jnp.asarray(self.gamma2, dtype)
        c = self._penalty(k, dtype)
        sub = lambda a, b: jax.tree.map(jnp.subtract, a, b)
        axpy = lambda s, a, b: jax.tree.map(lambda u, v: (u + s * v).astype(u.dtype), b, a)

        # 1. the inner descent-ascent step on (θ, λ), both directions at the old pair.
        d_theta = jax.grad(f, argnums=1)(x, theta, lower_data)
        if g is not None:
            g_theta, g_vjp = jax.vjp(lambda v: g(x, v, lower_data), theta)
            d_theta = jax.tree.map(jnp.add, d_theta, g_vjp(lam)[0])
            d_lam = -g_theta + (lam - z) / gamma2
        d_theta = axpy(1.0 / gamma1, sub(theta, y), d_theta)
        theta_new = axpy(-eta, d_theta, theta)
        if self.projection_y is not None:
            theta_new = self.projection_y(theta_new)
        lam_new = z_new = None
        (lam_lo, lam_hi), (z_lo, z_hi) = self._bounds(dtype)
        if g is not None:
            lam_new = jnp.clip(lam - eta * d_lam, lam_lo, lam_hi)

        # 2. the outer step on F/c + f − v_γ: Danskin's gradient of v_γ at the new (θ, λ).
        gFx, gFy = jax.grad(F, argnums=(0, 1))(x, y, upper_data)
        gfx, gfy = jax.grad(f, argnums=(0, 1))(x, y, lower_data)

        def lagrangian(u: Any) -> jax.Array:
            value = f(u, theta_new, lower_data)
            if g is not None:
                value = value + jnp.sum(lam_new * g(u, theta_new, lower_data))
            return value

        hx = jax.grad(lagrangian)(x)
        d_x = jax.tree.map(lambda a, b, h: a / c + b - h, gFx, gfx, hx)
        d_y = jax.tree.map(lambda a, b, u, t: a / c + b - (u - t) / gamma1, gFy, gfy, y, theta_new)
        x_new, y_new = self._project_xy(axpy(-alpha, d_x, x), axpy(-alpha, d_y, y), lower_data)
        if g is not None:
            z_new = jnp.clip(z + beta * (lam_new - z) / gamma2, z_lo, z_hi)

        # the projected step mapping of all blocks: zero exactly at a fixed point.
        parts = [tree_norm(sub(x, x_new)) / alpha, tree_norm(sub(y, y_new)) / alpha,
                 tree_norm(sub(theta, theta_new)) / eta]  # fmt: skip
        if g is not None:
            parts += [jnp.linalg.norm(lam - lam_new) / eta, jnp.linalg.norm(z - z_new) / beta]
        error = jnp.sqrt(sum(v**2 for v in parts))
        new = BilevelParams(x_new, y_new)
        grads = 4 + (2 if g is not None else 0)
        return new, self._advance(
            state, new, upper_data, error=error, grads=grads, hvps=0, key=state.key,
            theta=theta_new, lam=lam_new, z=z_new, c=c,
        )  # fmt: skip
