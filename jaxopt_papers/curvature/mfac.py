r"""M-FAC: the inverse of a sliding-window empirical Fisher applied to the gradient.

Paper: Elias Frantar, Eldar Kurtic, Dan Alistarh, "M-FAC: Efficient Matrix-Free Approximations
of Second-Order Information", NeurIPS 2021, arXiv:2107.03356.
Reference code: IST-DASLab/M-FAC ``optim.py`` (class ``MFAC`` and ``HInvFastUpMulti``, commit
8116367).

All parameters are treated as one vector of ``d`` entries. The state keeps a window ``G`` of the
last ``m`` gradients (``m = num_grads``, a ring buffer that starts as ``m`` zero rows) and its Gram
matrix ``G Gᵀ``. With ``λ`` the damping and ``g`` the incoming gradient (weight decay ``wd``
added first, coupled L2 as in the reference code), one step is::

    g     <- g + wd p
    G[t mod m] <- g ;  (G Gᵀ)[t mod m, :] = (G Gᵀ)[:, t mod m] <- G g
    F      = λ I + (1/m) Gᵀ G                   (damped empirical Fisher of the window)
    u      = F⁻¹ g = (1/λ) (g - Gᵀ (λ m I + G Gᵀ)⁻¹ G g)          (Woodbury)
    v     <- β v + (1 - β) u ;  u = v            (momentum β)
    p     <- p - lr u

The normalisation is the fixed ``1/m`` from the first step on (zero rows count), as in the
reference code. The ``m × m`` system is solved by a Cholesky factorisation each step.

Defaults are the reference code's (``MFAC.__init__``): ``learning_rate=1e-3``,
``num_grads=1024``, ``damping=1e-5``, ``momentum=0``, ``weight_decay=0``.

Costs: memory ``m·d`` (the window, stored in the param dtype or ``state_dtype``) plus ``m²`` and
``d`` (momentum); time per step ``O(m·d)`` for the two products with ``G`` plus ``O(m³)`` for the
Cholesky factorisation (the reference code also refactorises its ``m × m`` matrix every step).

Sharding: the window is a pytree with one leaf of shape ``(m, *p.shape)`` per parameter ``p``, so
it can be sharded like the parameters on its trailing axes (``PartitionSpec(None, *spec)``, what
:func:`jaxopt_papers.sharding.state_shardings` gives it); the ``m``-vector ``G g`` is then a
sum of per-shard partial products (one all-reduce of ``m`` numbers per step) and the ``m × m``
solve is replicated.

Differences from the reference code: the product ``F⁻¹ g`` is computed in closed form (Woodbury
with a Cholesky factorisation) instead of the paper's dynamic algorithm (an unpivoted LU and a
triangular recursion); both are exact, they differ by rounding only. The sparse mode
(``sparse=True``: weights that start at exactly zero stay frozen) is not offered; use
``optax.masked``. The momentum buffer ``v`` is kept even when ``momentum=0`` (then ``v = u``).
Half-precision parameters are preconditioned in float32, and the window of float16 parameters is
stored in float32.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["MFACState", "mfac", "scale_by_mfac"]

_OWNER = "mfac"


class MFACState(NamedTuple):
    """State of :func:`scale_by_mfac`.

    Attributes:
      count: the number of steps taken (int32); the next gradient goes to row
        ``count mod num_grads`` of the window.
      grads: the gradient window ``G``: a pytree like the params with leaves of shape
        ``(num_grads, *p.shape)`` (zeros until filled; float32 for float16 params).
      dots: the Gram matrix ``G Gᵀ`` of the window, ``(num_grads, num_grads)`` (float32 at least).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import curvature
      >>> state = curvature.scale_by_mfac(num_grads=4).init({"w": jnp.zeros(3)})
      >>> state.grads["w"].shape, state.dots.shape
      ((4, 3), (4, 4))
    """

    count: jax.Array
    grads: optax.Updates
    dots: jax.Array


def _window_dot(window: Any, g: Any, dtype) -> jax.Array:
    """``G g``: the ``m`` dot products of the window's rows with ``g``."""
    parts = [
        jnp.tensordot(w.astype(dtype), x.astype(dtype), axes=x.ndim)
        for w, x in zip(jax.tree.leaves(window), jax.tree.leaves(g), strict=True)
    ]
    return sum(parts[1:], parts[0])


def _window_dtype(dtype) -> Any:
    """float32 for float16 params (their products with the window lose too many digits)."""
    return jnp.float32 if jnp.dtype(dtype) == jnp.float16 else jnp.dtype(dtype)


def scale_by_mfac(
    num_grads: int = 1024,
    damping: float = 1e-5,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    state_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """M-FAC's direction ``u = F⁻¹ g`` with ``F = λ I + (1/m) Gᵀ G`` over the last ``m`` gradients.

    Paper: Frantar, Kurtic, Alistarh, "M-FAC: Efficient Matrix-Free Approximations of
    Second-Order Information", NeurIPS 2021, arXiv:2107.03356; reference code IST-DASLab/M-FAC
    ``optim.py``. The gradient plus ``weight_decay · p`` (coupled L2, as in the reference code)
    enters the ring-buffer window ``G`` (``m`` rows, zero at first, the ``1/m`` fixed from the
    first step as in the reference code) before the product::

        u = (1/λ) (g - Gᵀ (λ m I + G Gᵀ)⁻¹ G g)

    solved with a Cholesky factorisation of the ``m × m`` matrix. Memory ``m·d + m²``; time per
    step ``O(m·d + m³)``. The window's leaves ``(m, *p.shape)`` can be sharded like the params
    on their trailing axes (one all-reduce of ``m`` numbers per step).

    Args:
      num_grads: ``m``, the number of gradients in the window (a Python int >= 1; default 1024,
        the reference code's).
      damping: ``λ`` > 0 (default 1e-5, the reference code's ``damp``).
      weight_decay: coupled L2 coefficient added to the gradient first (a number or a
        schedule of the step count; default 0); needs ``params`` in ``update``.
      state_dtype: dtype of the gradient window; None: the param dtype (float32 for float16
        params; keyword-only).
      mask: which leaves get weight decay: a pytree of bools like the params (or a prefix), or
        a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`MFACState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import curvature
      >>> tx = curvature.scale_by_mfac(num_grads=2, damping=1.0)
      >>> u, state = tx.update(jnp.array([1.0, 0.0]), tx.init(jnp.zeros(2)))
      >>> # F = I + g gᵀ / 2 has eigenvalue 1.5 along g
      >>> print(u.round(4))
      [0.6667 0.    ]
    """
    num_grads = V.check_static_int(_OWNER, "num_grads", num_grads, low=1)
    V.check_real(_OWNER, "damping", damping, low=0.0, low_open=True)
    state_dtype = V.check_float_dtype(_OWNER, "state_dtype", state_dtype)
    V.check_weight_decay(_OWNER, weight_decay)
    V.check_mask(_OWNER, mask)

    def init_fn(params):
        V.check_optimizer_init(_OWNER, params)
        window = jax.tree.map(
            lambda p: jnp.zeros((num_grads, *p.shape), state_dtype or _window_dtype(p.dtype)),
            params,
        )
        dtypes = [p.dtype for p in jax.tree.leaves(params) if hasattr(p, "dtype")]
        dtype = V.compute_dtype(*dtypes) if dtypes else jnp.dtype(jnp.float32)
        return MFACState(
            count=jnp.zeros([], jnp.int32),
            grads=window,
            dots=jnp.zeros((num_grads, num_grads), dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        reference = jax.tree.map(lambda w: jax.ShapeDtypeStruct(w.shape[1:], w.dtype), state.grads)
        V.check_optimizer_update(_OWNER, updates, params, reference)
        dtype = state.dots.dtype
        grads = jax.tree.map(lambda g: g.astype(dtype), updates)
        if params is not None:
            wd = weight_decay(state.count) if callable(weight_decay) else weight_decay
            keep = True if mask is None else (mask(params) if callable(mask) else mask)

            def decay(on, g, p):
                return jax.tree.map(lambda g, p: g + jnp.where(on, wd, 0.0) * p.astype(dtype), g, p)

            grads = jax.tree.map(decay, keep, grads, params)
        elif not (isinstance(weight_decay, (int, float)) and weight_decay == 0):
            raise ValueError(f"{_OWNER}: weight decay needs `params`; pass them to `update`.")
        row = state.count % num_grads
        window = jax.tree.map(
            lambda w, g: jax.lax.dynamic_update_index_in_dim(w, g.astype(w.dtype), row, 0),
            state.grads,
            grads,
        )
        gg = _window_dot(window, grads, dtype)
        dots = state.dots.at[row, :].set(gg).at[:, row].set(gg)
        lam = jnp.asarray(damping, dtype)
        system = dots + lam * num_grads * jnp.eye(num_grads, dtype=dtype)
        coef = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(system, lower=True), gg)

        def leaf(out, g, w):
            back = jnp.tensordot(coef, w.astype(dtype), axes=1)
            return ((g - back) / lam).astype(out.dtype)

        u = jax.tree.map(leaf, updates, grads, window)
        return u, MFACState(count=optax.safe_increment(state.count), grads=window, dots=dots)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def mfac(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    num_grads: int = 1024,
    damping: float = 1e-5,
    momentum: float = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    state_dtype: Any = None,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """The M-FAC optimizer of the reference code: coupled L2, ``F⁻¹ g``, momentum, learning rate.

    Paper: Frantar, Kurtic, Alistarh, "M-FAC: Efficient Matrix-Free Approximations of
    Second-Order Information", NeurIPS 2021, arXiv:2107.03356; reference code IST-DASLab/M-FAC
    ``optim.py::MFAC``. With ``F = λ I + (1/m) Gᵀ G`` over the last ``m`` gradients (see
    :func:`scale_by_mfac`)::

        g <- g + wd p ;  u = F⁻¹ g ;  v <- β v + (1 - β) u ;  p <- p - lr v

    Defaults are the reference code's. Memory ``m·d + m² + d``; time per step
    ``O(m·d + m³)``. Take a small learning rate: with ``λ = 1e-5`` the step along directions the
    window does not see is ``1e5`` times the gradient.

    Args:
      learning_rate: a number or a schedule of the step count (default 1e-3).
      num_grads: ``m``, the window size (a Python int >= 1; default 1024).
      damping: ``λ`` > 0 (default 1e-5).
      momentum: ``β`` in ``[0, 1)`` (default 0: no momentum).
      weight_decay: coupled L2 coefficient ``wd`` added to the gradient (default 0).
      state_dtype: dtype of the gradient window; None: the param dtype (keyword-only).
      mu_dtype: dtype of the momentum buffer ``v``; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools like the params (or a prefix), or
        a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state holds an :class:`MFACState`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers import curvature
      >>> loss = lambda p: jnp.sum((p - jnp.array([1.0, -2.0])) ** 2)
      >>> tx = curvature.mfac(learning_rate=0.5, num_grads=4, damping=1.0)
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> step = jax.jit(tx.update)
      >>> for _ in range(30):
      ...     updates, state = step(jax.grad(loss)(params), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> print(params.round(3))
      [ 1. -2.]
    """
    V.check_learning_rate(_OWNER, learning_rate)
    V.check_weight_decay(_OWNER, weight_decay)
    V.check_beta(_OWNER, "momentum", momentum)
    V.check_mask(_OWNER, mask)
    mu_dtype = V.check_float_dtype(_OWNER, "mu_dtype", mu_dtype)
    return optax.chain(
        scale_by_mfac(num_grads, damping, weight_decay, state_dtype=state_dtype, mask=mask),
        optax.ema(momentum, debias=False, accumulator_dtype=mu_dtype),
        optax.scale_by_learning_rate(learning_rate),
    )
