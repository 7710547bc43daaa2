"""Ready problems of LV-HBA's experiments: the constrained toy and linear-SVM selection.

Yao, Yu, Zeng, Zhang, "Constrained Bi-Level Optimization: Proximal Lagrangian Value Function
Approach and Hessian-free Algorithm", ICLR 2024; official code
github.com/SUSTech-Optimization/LV-HBA. Both return a
:class:`~jaxopt_papers.bilevel.problems.ReadyProblem` whose lower level has a ``constraint_fn``
coupling ``x`` and ``y``, and whose ``extras["projection"]`` is the projection onto
``C = {(x, y) : constraint_fn(x, y) ≤ 0}`` for :class:`~jaxopt_papers.bilevel.lvhba.LVHBA`.

Differences from the reference code: see each function (the toy's constraint sign and
starting point; the SVM's data set, split and projection).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers.bilevel.lvhba import halfspace_projection
from jaxopt_papers.bilevel.problem import BilevelParams, BilevelProblem
from jaxopt_papers.bilevel.problems import ReadyProblem, _float, _sklearn, _standardise

__all__ = ["linear_svm", "lvhba_toy"]


# -- the toy with a coupled lower-level constraint -------------------------------------------------


def _toy_upper(x: Any, y: Any, data: Any) -> jax.Array:
    n = x.shape[0]
    return 0.5 * jnp.sum((x - y[n:]) ** 2) + 0.5 * jnp.sum((y[:n] - 1.0) ** 2)


def _toy_lower(x: Any, y: Any, data: Any) -> jax.Array:
    n = x.shape[0]
    return 0.5 * jnp.sum(y[:n] ** 2) - x @ y[:n] + jnp.sum(y[n:])


def _toy_constraint(x: Any, y: Any, data: Any) -> jax.Array:
    return -(jnp.sum(x) + jnp.sum(y))[None]


def lvhba_toy(n: int = 100) -> ReadyProblem:
    """LV-HBA's toy with a lower-level constraint coupling ``x`` and ``y`` (known solution).

    ``x ∈ ℝⁿ``, ``y = (y₁, y₂) ∈ ℝ²ⁿ`` (one vector, ``y₁ = y[:n]``):

        min_{x, y} ½‖x − y₂‖² + ½‖y₁ − 1‖²
        s.t. y ∈ argmin_{y'} { ½‖y₁'‖² − xᵀy₁' + 1ᵀy₂' : 1ᵀx + 1ᵀy' ≥ 0 },

    ``constraint_fn(x, y) = −(1ᵀx + 1ᵀy)`` (one entry, ``≤ 0``). The lower level's solutions
    are ``y₁ = x + 1`` and any ``y₂`` with ``1ᵀy₂ = −2·1ᵀx − n`` (the constraint is active,
    multiplier 1): a set, not a point. The (optimistic) bilevel solution is
    ``x* = −0.3·1``, ``y₁* = 0.7·1``, ``y₂* = −0.4·1``. Start: ``x0 = −20·1``, ``y0 = 10·1``
    (the official script's start ``10·1`` after its two projections). No data (``None``).
    ``extras``: ``projection`` (onto the hyperplane ``1ᵀx + 1ᵀy = 0``, as the script does,
    via :func:`~jaxopt_papers.bilevel.lvhba.halfspace_projection`), ``halfspace_projection``
    (onto ``C = {1ᵀx + 1ᵀy ≥ 0}`` itself) and ``multiplier`` (1.0).

    Args:
      n: the dimension of ``x`` (the script's 100).

    Returns:
      The :class:`~jaxopt_papers.bilevel.problems.ReadyProblem`, with ``solution``.

    Example:
      >>> from jaxopt_papers.bilevel._lvhba_problems import lvhba_toy
      >>> rp = lvhba_toy(n=3)
      >>> rp.x0.tolist(), [round(v, 2) for v in rp.solution.y.tolist()]
      ([-20.0, -20.0, -20.0], [0.7, 0.7, 0.7, -0.4, -0.4, -0.4])
      >>> g = rp.problem.constraint_fn(rp.solution.x, rp.solution.y, None)   # active at y*
      >>> g.shape, round(float(g[0]), 6) == 0
      ((1,), True)

    Differences from the reference code (``Toy-example/LLC/LV-HBA.py``): the script writes the
    constraint as ``g = 1ᵀx + 1ᵀy`` with a multiplier of either sign (``λ``, ``z`` start at
    ``1`` and ``−1`` and are clipped to ``[−1000, 1000]``); as a constraint ``g ≤ 0`` that would
    leave the lower level unbounded below (``1ᵀy₂ → −∞``), so here the sign is flipped
    (``1ᵀx + 1ᵀy ≥ 0``; the optimal multiplier is then ``+1``).
    """
    V.check_int("lvhba_toy", "n", n, low=1)
    dt = _float()
    solution = BilevelParams(
        jnp.full(n, -0.3, dt), jnp.concatenate([jnp.full(n, 0.7, dt), jnp.full(n, -0.4, dt)])
    )
    extras = {
        "projection": halfspace_projection(-1.0, -1.0, 0.0, equality=True),
        "halfspace_projection": halfspace_projection(-1.0, -1.0, 0.0),
        "multiplier": 1.0,
    }
    return ReadyProblem(
        BilevelProblem(_toy_upper, _toy_lower, _toy_constraint),
        jnp.full(n, -20.0, dt), jnp.full(2 * n, 10.0, dt), None, None, solution, extras,
    )  # fmt: skip


# -- linear SVM: per-sample slack penalties --------------------------------------------------------


def _svm_scores(y: Any, Z: jax.Array) -> jax.Array:
    w, b, _ = y
    return Z @ w + b


def _svm_upper(x: Any, y: Any, data: Any) -> jax.Array:
    Z, s = data
    w = y[0]
    margin = s * _svm_scores(y, Z) / jnp.linalg.norm(w)
    return jnp.sum(jax.nn.leaky_relu(2.0 * jax.nn.sigmoid(-5.0 * margin) - 1.0, 0.01))


def _svm_lower(x: Any, y: Any, data: Any) -> jax.Array:
    w, _, xi = y
    return 0.5 * jnp.sum(w**2) + 0.5 * jnp.sum(jnp.exp(x) * xi**2)


def _svm_constraint(x: Any, y: Any, data: Any) -> jax.Array:
    Z, s = data
    return 1.0 - y[2] - s * _svm_scores(y, Z)


def _svm_projection(x: Any, y: Any, data: Any, newton_steps: int = 30) -> tuple[Any, Any]:
    """The Euclidean projection of ``(w, b, ξ)`` onto ``{ξᵢ ≥ 1 − sᵢ(zᵢᵀw + b)}`` (``x`` kept).

    For fixed ``(w, b)`` the closest ``ξ`` is ``max(ξ⁰, 1 − sᵢ(zᵢᵀw + b))``, so the projection
    minimises the strongly convex, piecewise quadratic
    ``½‖w − w⁰‖² + ½(b − b⁰)² + ½ Σᵢ max(0, 1 − ξ⁰ᵢ − sᵢ(zᵢᵀw + b))²`` over ``(w, b)``: a few
    semismooth Newton steps with a backtracking choice among halved steps, then ``ξ`` is set
    by the formula (so the result is feasible whatever the Newton accuracy).
    """
    Z, s = data
    w0, b0, xi0 = y
    A = s[:, None] * jnp.concatenate([Z, jnp.ones((Z.shape[0], 1), Z.dtype)], axis=1)
    u0 = jnp.concatenate([w0, b0[None]])
    rhs = 1.0 - xi0

    def objective(u: jax.Array) -> jax.Array:
        return 0.5 * jnp.sum((u - u0) ** 2) + 0.5 * jnp.sum(jnp.maximum(rhs - A @ u, 0.0) ** 2)

    steps = 0.5 ** jnp.arange(12, dtype=u0.dtype)

    def newton(_: Any, u: jax.Array) -> jax.Array:
        viol = rhs - A @ u
        active = (viol > 0).astype(u.dtype)
        grad = (u - u0) - A.T @ (active * viol)
        hess = jnp.eye(u.shape[0], dtype=u.dtype) + (A.T * active) @ A
        direction = jnp.linalg.solve(hess, grad)
        trials = u[None, :] - steps[:, None] * direction[None, :]
        values = jax.vmap(objective)(trials)
        best = jnp.argmin(values)
        return jnp.where(values[best] <= objective(u), trials[best], u)

    u = jax.lax.fori_loop(0, newton_steps, newton, u0)
    w, b = u[:-1], u[-1]
    xi = jnp.maximum(xi0, 1.0 - s * (Z @ w + b))
    return x, (w, b, xi)


def linear_svm(*, num_train: int = 300, num_val: int = 150, seed: int = 0) -> ReadyProblem:
    """Linear-SVM slack-penalty selection (LV-HBA's SVM experiment) on ``load_breast_cancer``.

    569 samples, 30 standardised features, labels ``s ∈ {−1, 1}``, split ``num_train`` /
    ``num_val`` / rest (train / validation / test, shuffled with ``seed``). The lower level is
    the soft-margin SVM in its primal form with one squared slack per training sample and a
    per-sample penalty ``exp(xᵢ)``:

        min_{w, b, ξ} ½‖w‖² + ½ Σᵢ exp(xᵢ) ξᵢ²   s.t.   1 − ξᵢ − sᵢ(zᵢᵀw + b) ≤ 0,

    the constraints (``constraint_fn``, one per training sample) coupling all of ``y = (w, b,
    ξ)``; the upper level is the official code's smoothed 0-1 loss on the validation set,
    ``Σⱼ leaky_relu(2σ(−5 mⱼ) − 1)`` with ``mⱼ = sⱼ(zⱼᵀw + b)/‖w‖`` (slope 0.01). ``x`` (the
    log penalties, ``num_train`` of them) starts uniform in ``[−6, −5]`` (``seed``), ``w`` at
    ``1``, ``b`` at ``0``, ``ξ`` at ``1``, as in the code. ``upper_data = (Z_val, s_val)``,
    ``lower_data = (Z_train, s_train)``. ``extras``: ``projection`` (the exact projection onto
    the constraint set, for :class:`~jaxopt_papers.bilevel.lvhba.LVHBA`), ``X_test``,
    ``labels_test``, and ``settings``, the SVM script's step sizes in :class:`LVHBA`'s
    parameterisation (``alpha=0.01, beta=0.1, eta=0.01, gamma1=gamma2=10, c_lower=1, p=0.5``).

    Args:
      num_train: training samples (constraints, and the dimension of ``x``).
      num_val: validation samples.
      seed: the shuffle's and the initial penalties' random state.

    Returns:
      The :class:`~jaxopt_papers.bilevel.problems.ReadyProblem` (no closed-form solution).

    Example:
      >>> from jaxopt_papers.bilevel._lvhba_problems import linear_svm
      >>> rp = linear_svm(num_train=100, num_val=50)
      >>> rp.x0.shape, [v.shape for v in rp.y0], rp.lower_data[0].shape
      ((100,), [(30,), (), (100,)], (100, 30))

    Differences from the reference code (``Hyperparameter optimization/Linear SVM/*/LV-HBA*.py``):
    the LIBSVM ``diabetes``/``fourclass`` files are replaced by scikit-learn's bundled breast
    cancer data (no download), the 500/150/rest split by ``num_train``/``num_val``/rest, the
    cvxpy/ECOS projection by our exact projection (a semismooth Newton method on the
    equivalent problem in ``(w, b)``), and the validation loss is not divided by the script's
    constant 15.
    """
    V.check_int("linear_svm", "num_train", num_train, low=1)
    V.check_int("linear_svm", "num_val", num_val, low=1)
    datasets, _ = _sklearn("linear_svm")
    X, t = datasets.load_breast_cancer(return_X_y=True)
    if num_train + num_val >= X.shape[0]:
        raise ValueError(
            f"linear_svm: `num_train` + `num_val` must leave test samples of the "
            f"{X.shape[0]}, got {num_train} + {num_val}."
        )
    s = np.where(t == 1, 1.0, -1.0)
    rng = np.random.default_rng(seed)
    order = rng.permutation(X.shape[0])
    X, s = X[order], s[order]
    tr, va = slice(0, num_train), slice(num_train, num_train + num_val)
    te = slice(num_train + num_val, None)
    Z_tr, Z_va, Z_te = _standardise(X[tr], X[va], X[te])
    dt = _float()
    a = lambda v: jnp.asarray(v, dt)
    d = X.shape[1]
    x0 = a(rng.uniform(-6.0, -5.0, size=num_train))
    y0 = (jnp.ones(d, dt), jnp.zeros((), dt), jnp.ones(num_train, dt))
    extras = {
        "projection": _svm_projection,
        "X_test": a(Z_te),
        "labels_test": jnp.asarray(s[te].astype(np.int32)),
        "settings": dict(
            alpha=0.01, beta=0.1, eta=0.01, gamma1=10.0, gamma2=10.0, c_lower=1.0, p=0.5
        ),
    }
    return ReadyProblem(
        BilevelProblem(_svm_upper, _svm_lower, _svm_constraint), x0, y0,
        (a(Z_va), a(s[va])), (a(Z_tr), a(s[tr])), None, extras,
    )  # fmt: skip
