r"""Isotonic regression by pool-adjacent-violators, in JAX and differentiable.

M. Blondel, O. Teboul, Q. Berthet, J. Djolonga, "Fast Differentiable Sorting and Ranking",
ICML 2020 (arXiv 2002.08871), §5 for the derivative; the algorithm is the classical
pool-adjacent-violators (PAV) of M. Ayer et al., Ann. Math. Statist. 1955. Reference code:
jaxopt 0.8.5 (``jaxopt/_src/isotonic.py``).

``isotonic_l2_pav(y)`` solves

.. math::

   v^* = \arg\min_{v_1 \le v_2 \le \dots \le v_n} \|v - y\|_2^2

(``increasing=False``: ``v_1 ≥ … ≥ v_n``) and clips the result to ``[y_min, y_max]``. PAV
scans ``y`` once, keeping a stack of blocks (sum and count); a new element is pushed as its
own block and adjacent blocks whose means violate the order are merged, at most ``2n`` loop
iterations in all (one ``lax.while_loop``). Each block gets its mean.

The solution is piecewise linear in ``y``: on a block ``B`` the value is ``mean(y_B)``, so the
Jacobian is block-diagonal with blocks ``1 1ᵀ / |B|``; the JVP averages the tangent over each
block (then the clip's 0/1 derivative applies).

Differences from the reference code (jaxopt 0.8.5):

- Pure JAX (``lax.while_loop``) instead of a NumPy/numba host callback: it runs on every
  device, under ``jit``/``vmap`` without a sequential callback, and needs no ``numba``.
- The derivative uses the blocks found by the algorithm; jaxopt re-detects them from equal
  neighbouring values (``|Δv| ≤ 1e-8``) and adds ``1e-8`` to each block size, so its JVP is off
  by about ``1e-8`` relative and merges distinct blocks whose means differ by less than ``1e-8``.
  Values are the same (a test compares them with jaxopt and scikit-learn).
- ``y`` must be a 1-D floating-point array (``ValueError``/``TypeError`` otherwise); jaxopt
  fails inside the callback.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["isotonic_l2_pav"]


def _pav_blocks(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Increasing PAV: the solution and the block index of each position."""
    n = y.shape[0]
    sums = jnp.zeros_like(y)
    counts = jnp.zeros(n, jnp.int32)
    zero = jnp.asarray(0, jnp.int32)

    def cond(carry: tuple) -> jax.Array:
        i, top, _, _ = carry
        return (i < n) | (top >= 2) & _violates(carry)

    def _violates(carry: tuple) -> jax.Array:
        _, top, s, c = carry
        a, b = jnp.maximum(top - 2, 0), jnp.maximum(top - 1, 0)
        # mean(a) > mean(b) ⟺ s_a c_b > s_b c_a (counts are positive)
        return (top >= 2) & (s[a] * c[b] > s[b] * c[a])

    def body(carry: tuple) -> tuple:
        i, top, s, c = carry

        def merge(_: None) -> tuple:
            a, b = top - 2, top - 1
            s2 = s.at[a].add(s[b]).at[b].set(0)
            c2 = c.at[a].add(c[b]).at[b].set(0)
            return i, top - 1, s2, c2

        def push(_: None) -> tuple:
            return i + 1, top + 1, s.at[top].set(y[i]), c.at[top].set(1)

        return jax.lax.cond(_violates(carry), merge, push, None)

    _, _, sums, counts = jax.lax.while_loop(cond, body, (zero, zero, sums, counts))
    means = sums / jnp.maximum(counts, 1).astype(y.dtype)
    ends = jnp.cumsum(counts)  # end (exclusive) of each block; unused blocks repeat n
    block = jnp.searchsorted(ends, jnp.arange(n), side="right")
    return means[block], block


@jax.custom_jvp
def _isotonic_increasing(y: jax.Array) -> jax.Array:
    return _pav_blocks(y)[0]


@_isotonic_increasing.defjvp
def _isotonic_increasing_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (y,), (dy,) = primals, tangents
    sol, block = _pav_blocks(y)
    n = y.shape[0]
    size = jax.ops.segment_sum(jnp.ones_like(dy), block, num_segments=n)
    total = jax.ops.segment_sum(dy, block, num_segments=n)
    return sol, (total / jnp.maximum(size, 1))[block]


def isotonic_l2_pav(
    y: jax.Array, y_min: Any = -jnp.inf, y_max: Any = jnp.inf, increasing: bool = True
) -> jax.Array:
    r"""Isotonic regression: the monotone ``v`` nearest to ``y``, clipped to ``[y_min, y_max]``.

    Args:
      y: a 1-D floating-point array (``jax.vmap`` for batches).
      y_min, y_max: bounds applied to the solution (jaxopt's clip after PAV).
      increasing: ``v_1 ≤ … ≤ v_n`` (``True``) or ``v_1 ≥ … ≥ v_n``.

    Returns:
      ``v*``, shaped like ``y``; differentiable in ``y`` (block averaging, see the module
      docstring), in forward and reverse mode.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.isotonic import isotonic_l2_pav
      >>> isotonic_l2_pav(jnp.array([1.0, 3.0, 2.0, 4.0])).tolist()
      [1.0, 2.5, 2.5, 4.0]
    """
    if jnp.ndim(y) != 1:
        raise ValueError(
            f"isotonic_l2_pav: `y` must be a 1-D array (use jax.vmap for batches), got shape "
            f"{tuple(jnp.shape(y))}."
        )
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        raise TypeError(f"isotonic_l2_pav: `y` must be floating-point, got dtype {y.dtype}.")
    if y.shape[0] == 0:
        return y
    sign = 1 if increasing else -1
    sol = sign * _isotonic_increasing(sign * y)
    return jnp.clip(sol, y_min, y_max)
