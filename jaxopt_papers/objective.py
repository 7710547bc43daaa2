r"""jaxopt's catalogue of objective functions for linear models, ``fun(params, [l2reg,] data)``.

Reference code: jaxopt 0.8.5 (``jaxopt/_src/objective.py``); the formulas are the standard
empirical risks of linear models. Each function takes ``data = (X, y)`` with ``X`` of shape
``(n, d)`` and averages a loss over the ``n`` samples:

======================================  =====================================================
function                                value
======================================  =====================================================
``least_squares(W, data)``              ``‖XW − y‖² / (2n)``
``ridge_regression(W, l2reg, data)``    ``least_squares + l2reg/2 · ‖W‖²``
``binary_logreg(w, data)``              ``mean(softplus(Xw) − y ⊙ Xw)``, ``y ∈ {0, 1}``
``multiclass_logreg(W, data)``          ``mean(logsumexp(XW) − (XW)[i, y_i])``, integer ``y``
``multiclass_logreg_with_intercept``    the same with logits ``XW + b``, ``params = (W, b)``
``l2_multiclass_logreg(W, l2reg, d)``   ``multiclass_logreg + l2reg/2 · ‖W‖²``
``l2_multiclass_logreg_with_intercept``  ``… + l2reg/2 · ‖W‖²`` (``b`` not penalised)
``multiclass_linear_svm_dual(β, λ, d)``  ``‖Xᵀ(Y − β)‖² / (2λ) + ⟨β, Y − 1⟩``, ``Y`` one-hot
======================================  =====================================================

The losses are optax's (``optax.losses.sigmoid_binary_cross_entropy``,
``optax.losses.softmax_cross_entropy_with_integer_labels``); jaxopt's ``loss`` module maps to
``optax.losses`` name for name (see the migration guide).

``multiclass_linear_svm_dual`` is the dual of the multiclass SVM of Crammer & Singer (2001)
in the form minimised by jaxopt's examples: each row of ``β`` lies on the simplex, and the
primal weights are ``W = Xᵀ(Y − β)/λ``.

Differences from the reference code (jaxopt 0.8.5):

- Plain functions instead of ``CompositeLinearFunction`` objects: the ``make_linop``/
  ``subfun``/``b``/``columnwise_lipschitz_const`` hooks exist for jaxopt's
  ``BlockCoordinateDescent``, which this library does not provide. Values and gradients are
  jaxopt's (a test compares them to 1e-10 in float64).
- Shapes are checked: ``data`` must be a pair ``(X, y)`` with ``X`` 2-D and ``y`` of matching
  first dimension, ``W``/``w`` must match ``X``'s columns (``ValueError`` naming the argument).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "binary_logreg",
    "l2_multiclass_logreg",
    "l2_multiclass_logreg_with_intercept",
    "least_squares",
    "multiclass_linear_svm_dual",
    "multiclass_logreg",
    "multiclass_logreg_with_intercept",
    "ridge_regression",
]


def _data(owner: str, data: Any, params_rows: int | None) -> tuple[jax.Array, jax.Array]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{owner}: `data` must be a pair (X, y), got {type(data).__name__}.")
    X, y = data
    if jnp.ndim(X) != 2:
        raise ValueError(f"{owner}: `X` must be a 2-D array (n, d), got shape {jnp.shape(X)}.")
    if jnp.ndim(y) < 1 or jnp.shape(y)[0] != jnp.shape(X)[0]:
        raise ValueError(
            f"{owner}: `y` must have {jnp.shape(X)[0]} rows (one per row of `X`), got shape "
            f"{jnp.shape(y)}."
        )
    if params_rows is not None and params_rows != jnp.shape(X)[1]:
        raise ValueError(
            f"{owner}: the weights must have {jnp.shape(X)[1]} rows (one per column of `X`), "
            f"got {params_rows}."
        )
    return jnp.asarray(X), jnp.asarray(y)


def _rows(W: Any) -> int:
    return jnp.shape(W)[0] if jnp.ndim(W) else -1


def _half_sq(W: Any) -> jax.Array:
    return 0.5 * jnp.sum(jnp.asarray(W) ** 2)


def least_squares(W: jax.Array, data: tuple[jax.Array, jax.Array]) -> jax.Array:
    r"""Least squares ``‖XW − y‖² / (2n)``.

    Args:
      W: weights, shape ``(d,)`` (or ``(d, k)`` with ``y`` of shape ``(n, k)``).
      data: ``(X, y)``, ``X`` of shape ``(n, d)``.

    Returns:
      The objective value (a scalar).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.objective import least_squares
      >>> X, y = jnp.eye(2), jnp.array([1.0, 3.0])
      >>> float(least_squares(jnp.zeros(2), (X, y)))   # (1 + 9) / (2·2)
      2.5
    """
    X, y = _data("least_squares", data, _rows(W))
    return 0.5 * jnp.mean((X @ W - y) ** 2)


def ridge_regression(W: jax.Array, l2reg: Any, data: tuple[jax.Array, jax.Array]) -> jax.Array:
    r"""Ridge regression ``‖XW − y‖² / (2n) + l2reg/2 · ‖W‖²``.

    Args:
      W: weights, shape ``(d,)``.
      l2reg: the regularisation strength (differentiable).
      data: ``(X, y)``.

    Returns:
      The objective value.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.objective import ridge_regression
      >>> X, y = jnp.eye(2), jnp.array([1.0, 3.0])
      >>> float(ridge_regression(jnp.ones(2), 2.0, (X, y)))   # 4/4 + 2/2·2
      3.0
    """
    _data("ridge_regression", data, _rows(W))
    return least_squares(W, data) + l2reg * _half_sq(W)


def binary_logreg(w: jax.Array, data: tuple[jax.Array, jax.Array]) -> jax.Array:
    r"""Binary logistic regression ``mean_i [log(1 + exp(x_iᵀw)) − y_i x_iᵀw]``, ``y ∈ {0, 1}``.

    Args:
      w: weights, shape ``(d,)``.
      data: ``(X, y)`` with labels ``0``/``1`` (floats or ints).

    Returns:
      The objective value.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.objective import binary_logreg
      >>> X, y = jnp.eye(2), jnp.array([0, 1])
      >>> round(float(binary_logreg(jnp.zeros(2), (X, y))), 6)   # log 2
      0.693147
    """
    X, y = _data("binary_logreg", data, _rows(w))
    logits = X @ w
    return jnp.mean(optax.losses.sigmoid_binary_cross_entropy(logits, y.astype(logits.dtype)))


def _multiclass_loss(logits: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, y))


def multiclass_logreg(W: jax.Array, data: tuple[jax.Array, jax.Array]) -> jax.Array:
    r"""Multiclass logistic regression ``mean_i [logsumexp(Wᵀx_i) − (Wᵀx_i)_{y_i}]``.

    Args:
      W: weights, shape ``(d, k)`` for ``k`` classes.
      data: ``(X, y)`` with integer labels ``y`` in ``[0, k)``.

    Returns:
      The objective value.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.objective import multiclass_logreg
      >>> X, y = jnp.eye(2), jnp.array([0, 2])
      >>> round(float(multiclass_logreg(jnp.zeros((2, 3)), (X, y))), 6)   # log 3
      1.098612
    """
    X, y = _data("multiclass_logreg", data, _rows(W))
    return _multiclass_loss(X @ W, y)


def multiclass_logreg_with_intercept(
    params: tuple[jax.Array, jax.Array], data: tuple[jax.Array, jax.Array]
) -> jax.Array:
    r"""Multiclass logistic regression with intercept: logits ``Wᵀx_i + b``.

    Args:
      params: ``(W, b)`` with ``W`` of shape ``(d, k)`` and ``b`` of shape ``(k,)``.
      data: ``(X, y)`` with integer labels.

    Returns:
      The objective value.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.objective import multiclass_logreg_with_intercept
      >>> X, y = jnp.eye(2), jnp.array([0, 1])
      >>> params = (jnp.zeros((2, 2)), jnp.array([0.0, 0.0]))
      >>> round(float(multiclass_logreg_with_intercept(params, (X, y))), 6)   # log 2
      0.693147
    """
    W, b = params
    X, y = _data("multiclass_logreg_with_intercept", data, _rows(W))
    return _multiclass_loss(X @ W + b, y)


def l2_multiclass_logreg(W: jax.Array, l2reg: Any, data: tuple[jax.Array, jax.Array]) -> jax.Array:
    r"""``multiclass_logreg(W, data) + l2reg/2 · ‖W‖²``.

    Args:
      W: weights, shape ``(d, k)``.
      l2reg: the regularisation strength (differentiable).
      data: ``(X, y)`` with integer labels.

    Returns:
      The objective value.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.objective import l2_multiclass_logreg
      >>> X, y = jnp.eye(2), jnp.array([0, 1])
      >>> round(float(l2_multiclass_logreg(jnp.zeros((2, 2)), 1.0, (X, y))), 6)
      0.693147
    """
    return multiclass_logreg(W, data) + l2reg * _half_sq(W)


def l2_multiclass_logreg_with_intercept(
    params: tuple[jax.Array, jax.Array], l2reg: Any, data: tuple[jax.Array, jax.Array]
) -> jax.Array:
    r"""``multiclass_logreg_with_intercept(params, data) + l2reg/2 · ‖W‖²`` (``b`` is free).

    Args:
      params: ``(W, b)`` with ``W`` of shape ``(d, k)`` and ``b`` of shape ``(k,)``.
      l2reg: the regularisation strength (differentiable).
      data: ``(X, y)`` with integer labels.

    Returns:
      The objective value.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.objective import l2_multiclass_logreg_with_intercept
      >>> X, y = jnp.eye(2), jnp.array([0, 1])
      >>> params = (jnp.ones((2, 2)), jnp.array([5.0, 5.0]))
      >>> round(float(l2_multiclass_logreg_with_intercept(params, 1.0, (X, y))), 6)
      2.693147
    """
    return multiclass_logreg_with_intercept(params, data) + l2reg * _half_sq(params[0])


def multiclass_linear_svm_dual(
    beta: jax.Array, l2reg: Any, data: tuple[jax.Array, jax.Array]
) -> jax.Array:
    r"""Dual of the multiclass linear SVM, ``‖Xᵀ(Y − β)‖² / (2·l2reg) + ⟨β, Y − 1⟩``.

    Minimise it over ``β`` with every row on the simplex (e.g.
    :class:`~jaxopt_papers.proximal.ProjectedGradient` with
    ``jax.vmap(projection_simplex)``); the primal weights are ``W = Xᵀ(Y − β)/l2reg``.

    Args:
      beta: dual variables, shape ``(n, k)``.
      l2reg: the regularisation strength ``λ > 0``.
      data: ``(X, Y)`` with ``Y`` the one-hot labels, shape ``(n, k)``.

    Returns:
      The objective value.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.objective import multiclass_linear_svm_dual
      >>> X, Y = jnp.eye(2), jnp.eye(2)
      >>> float(multiclass_linear_svm_dual(Y, 1.0, (X, Y)))   # β = Y: 0 + ⟨Y, Y − 1⟩ = 0
      0.0
    """
    X, Y = _data("multiclass_linear_svm_dual", data, None)
    if jnp.shape(beta) != jnp.shape(Y):
        raise ValueError(
            f"multiclass_linear_svm_dual: `beta` must have the shape of the one-hot labels "
            f"{jnp.shape(Y)}, got {jnp.shape(beta)}."
        )
    V = X.T @ (Y - beta)
    return 0.5 / l2reg * jnp.vdot(V, V) + jnp.vdot(beta, Y - 1)
