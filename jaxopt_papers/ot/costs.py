"""Ground costs between point clouds: ``squared_euclidean``, ``euclidean``, ``lp_cost``.

Each takes ``x`` of shape ``(n, d)`` and ``y`` of shape ``(m, d)`` and returns the ``(n, m)``
cost matrix; all are differentiable in both point clouds (``euclidean`` with a finite gradient
where two points coincide).

Differences from the reference code: none of substance (ott-jax's ``costs.SqEuclidean``,
``Euclidean`` and ``PNormP`` give the same matrices); these are plain functions, not classes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["euclidean", "lp_cost", "squared_euclidean"]


def _check(owner: str, x: jax.Array, y: jax.Array) -> None:
    if jnp.ndim(x) != 2 or jnp.ndim(y) != 2 or jnp.shape(x)[1] != jnp.shape(y)[1]:
        raise ValueError(
            f"{owner}: `x` and `y` must be point clouds of shapes (n, d) and (m, d), got "
            f"{jnp.shape(x)} and {jnp.shape(y)}."
        )


def squared_euclidean(x: jax.Array, y: jax.Array) -> jax.Array:
    """``C_ij = ‖x_i − y_j‖²``, computed as ‖x‖² + ‖y‖² − 2⟨x, y⟩ and clipped at 0.

    ott-jax's ``costs.SqEuclidean``; the usual ground cost of entropic OT (W₂²).

    Args:
      x: the first point cloud, shape ``(n, d)``.
      y: the second point cloud, shape ``(m, d)``.

    Returns:
      The ``(n, m)`` cost matrix.

    Raises:
      ValueError: ``x`` and ``y`` are not 2-D with the same number of columns.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import squared_euclidean
      >>> squared_euclidean(jnp.array([[0.0, 0.0], [1.0, 1.0]]), jnp.array([[3.0, 4.0]])).tolist()
      [[25.0], [13.0]]
    """
    _check("squared_euclidean", x, y)
    sq = jnp.sum(x**2, axis=1)[:, None] + jnp.sum(y**2, axis=1)[None, :]
    return jnp.maximum(sq - 2 * x @ y.T, 0.0)


def euclidean(x: jax.Array, y: jax.Array) -> jax.Array:
    """``C_ij = ‖x_i − y_j‖`` (gradient 0 where ``x_i = y_j``).

    ott-jax's ``costs.Euclidean`` (W₁); its gradient is finite where two points coincide.

    Args:
      x: the first point cloud, shape ``(n, d)``.
      y: the second point cloud, shape ``(m, d)``.

    Returns:
      The ``(n, m)`` cost matrix.

    Raises:
      ValueError: ``x`` and ``y`` are not 2-D with the same number of columns.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import euclidean
      >>> euclidean(jnp.array([[0.0, 0.0], [3.0, 4.0]]), jnp.array([[3.0, 4.0]])).tolist()
      [[5.0], [0.0]]
    """
    _check("euclidean", x, y)
    sq = squared_euclidean(x, y)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def lp_cost(x: jax.Array, y: jax.Array, p: float = 1.0) -> jax.Array:
    """``C_ij = Σ_k |x_ik − y_jk|^p`` (``p = 1``: the L1 ground cost of the SNS paper).

    ott-jax's ``costs.PNormP``. It forms an ``(n, m, d)`` intermediate: for large clouds with
    ``p = 2`` prefer :func:`squared_euclidean`.

    Args:
      x: the first point cloud, shape ``(n, d)``.
      y: the second point cloud, shape ``(m, d)``.
      p: the exponent, > 0 (default 1).

    Returns:
      The ``(n, m)`` cost matrix.

    Raises:
      ValueError: ``x`` and ``y`` are not 2-D with the same number of columns, or ``p <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.ot import lp_cost
      >>> x, y = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, -2.0], [0.5, 0.5]])
      >>> lp_cost(x, y).tolist(), lp_cost(x, y, p=2.0).tolist()
      ([[3.0, 1.0]], [[5.0, 0.5]])
    """
    _check("lp_cost", x, y)
    if not p > 0:
        raise ValueError(f"lp_cost: `p` must be > 0, got {p!r}.")
    diff = jnp.abs(x[:, None, :] - y[None, :, :])
    return jnp.sum(diff**p, axis=-1)
