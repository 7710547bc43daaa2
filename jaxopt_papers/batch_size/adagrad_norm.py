r"""AdaGrad-Norm, the base optimizer of AdAdaGradNorm (adaptive batch sizes).

Papers: Rachel Ward, Xiaoxia Wu, Léon Bottou, "AdaGrad stepsizes: sharp convergence over
nonconvex landscapes", ICML 2019 / JMLR 2020, arXiv:1806.01811 (AdaGrad-Norm); used as the base
optimizer of AdAdaGradNorm in Tim Tsz-Kit Lau, Han Liu, Mladen Kolar, "AdAdaGrad: Adaptive
Batch Size Schemes for Adaptive Gradient Methods", arXiv:2402.11215 (2024).
Reference code: timlautk/AdAdaGrad ``adagradnorm.py`` (class ``Adagradnorm``).

With ``g`` the gradient, ``a`` the accumulator (initialised to ``initial_accumulator_value``),
``m`` the momentum buffer (initialised to zero) and ``t`` the step::

    a <- a + s(g)                       # s: squared norm of the group the entry belongs to
    m <- momentum m + (1 - momentum) g
    x <- x - lr (m / (sqrt(a) + eps) + λ x)

``granularity`` picks the groups that share one step size:

* ``"rowwise"`` (default, the reference code): for a leaf with two or more axes, one
  accumulator per output channel, ``s(g)_j = Σ_{other axes} g[..., j]²`` (the output channel
  is JAX's last axis: a Dense kernel is ``(in, out)``, a Conv kernel ``(kh, kw, in, out)``; the
  reference's PyTorch layouts ``(out, in)`` and ``(out, in, kh, kw)`` reduce over the same
  axes); for a leaf with fewer axes (biases, scalars), coordinate-wise AdaGrad, ``s(g) = g²``.
* ``"global"`` (the paper's AdaGrad-Norm): one scalar ``b_t² = b_{t-1}² + ‖g_t‖²`` over the
  whole pytree, ``x <- x - lr g / b_t``.

With ``momentum = 0`` (the default) ``m = g`` and this is plain (row-wise) AdaGrad-Norm.

Defaults are the reference code's (``adagradnorm.py`` lines 26 and 98): ``learning_rate=1.0``,
``initial_accumulator_value=1e-2``, ``eps=1e-10``, ``momentum=0``, ``weight_decay=0``,
``granularity="rowwise"``.

Differences from the reference code:

* The reference's weight decay subtracts ``lr λ g`` (the gradient, not the parameter; a bug).
  Here ``weight_decay`` is decoupled weight decay ``lr λ x`` (what the option is meant to do).
* For a bias the reference adds the squared row norms of the *previous* parameter in its
  iteration order (the preceding weight) to the bias's accumulator when the shapes allow it;
  here biases get coordinate-wise AdaGrad from their own gradient only.
* The reference's ``lr_decay`` (``lr / (1 + (t - 1) lr_decay)``) is not an option: pass an optax
  schedule as ``learning_rate``.
* Half-precision leaves are updated with float32 arithmetic; the accumulator is stored in
  float32 for float16 params and the momentum buffer in the param dtype (or ``mu_dtype``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["AdaGradNormState", "adagrad_norm", "scale_by_adagrad_norm"]

_GRANULARITIES = ("rowwise", "global")


class AdaGradNormState(NamedTuple):
    """State of :func:`scale_by_adagrad_norm` (and of the first link of :func:`adagrad_norm`).

    Attributes:
      count: the step count ``t`` (int32).
      mu: ``m``, the momentum buffer (param dtype, or ``mu_dtype``).
      sum_of_squares: the accumulator ``a``: with ``granularity="rowwise"`` one array per leaf,
        of shape ``(1, ..., 1, out)`` for leaves with two or more axes and of the leaf's shape
        otherwise; with ``granularity="global"`` a single scalar array. float32 for float16
        params, else the param dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import batch_size
      >>> params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
      >>> state = batch_size.scale_by_adagrad_norm().init(params)
      >>> int(state.count), state.sum_of_squares["w"].shape, state.sum_of_squares["b"].shape
      (0, (1, 2), (2,))
    """

    count: jax.Array
    mu: optax.Updates
    sum_of_squares: Any


def _row_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * (len(shape) - 1) + shape[-1:] if len(shape) >= 2 else tuple(shape)


def _row_sq(g: jax.Array) -> jax.Array:
    if g.ndim >= 2:
        return jnp.sum(g * g, axis=tuple(range(g.ndim - 1)), keepdims=True)
    return g * g


def scale_by_adagrad_norm(
    initial_accumulator_value: float = 1e-2,
    eps: float = 1e-10,
    momentum: float = 0.0,
    *,
    granularity: str = "rowwise",
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Rescale updates by AdaGrad-Norm step sizes (row-wise, as the reference code, or global).

    ``a <- a + s(g)``, ``m <- momentum m + (1 - momentum) g``, returns ``m / (sqrt(a) + eps)``
    (see :mod:`jaxopt_papers.batch_size.adagrad_norm` for ``s`` and the reference).

    Args:
      initial_accumulator_value: initial value of the accumulator ``a`` (>= 0; reference 1e-2).
      eps: added to ``sqrt(a)`` (> 0; reference 1e-10).
      momentum: the momentum coefficient, in ``[0, 1)`` (reference 0: no momentum).
      granularity: ``"rowwise"`` (one step size per output channel, coordinate-wise for
        leaves with fewer than two axes; the reference code) or ``"global"`` (one step size for
        the whole pytree; the paper's AdaGrad-Norm).
      mu_dtype: dtype of the momentum buffer (None: the param dtype).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`AdaGradNormState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import batch_size
      >>> tx = batch_size.scale_by_adagrad_norm(0.0, granularity="global")
      >>> g = jnp.array([3.0, 4.0])
      >>> u, state = tx.update(g, tx.init(jnp.zeros(2)))
      >>> [round(float(x), 6) for x in u], float(state.sum_of_squares)
      ([0.6, 0.8], 25.0)
    """
    owner = "scale_by_adagrad_norm"
    V.check_real(owner, "initial_accumulator_value", initial_accumulator_value, low=0.0)
    V.check_eps(owner, "eps", eps, positive=True)
    V.check_beta(owner, "momentum", momentum)
    V.check_static_choice(owner, "granularity", granularity, _GRANULARITIES)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)
    rowwise = granularity == "rowwise"

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        mu = optax.tree.zeros_like(params, dtype=mu_dtype)
        if rowwise:
            acc = jax.tree.map(
                lambda p: jnp.full(
                    _row_shape(p.shape),
                    initial_accumulator_value,
                    V.second_moment_dtype(p.dtype),
                ),
                params,
            )
        else:
            dtypes = [V.second_moment_dtype(p.dtype) for p in jax.tree.leaves(params)]
            dtype = jnp.result_type(*dtypes) if dtypes else jnp.dtype(jnp.float32)
            acc = jnp.full((), initial_accumulator_value, dtype)
        return AdaGradNormState(count=jnp.zeros([], jnp.int32), mu=mu, sum_of_squares=acc)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.mu)
        count = optax.safe_increment(state.count)
        if rowwise:

            def leaf(g, m, a):
                cd = V.compute_dtype(g.dtype, m.dtype, a.dtype)
                g_c = g.astype(cd)
                a_c = a.astype(cd) + _row_sq(g_c)
                m_c = momentum * m.astype(cd) + (1 - momentum) * g_c
                u = m_c / (jnp.sqrt(a_c) + eps)
                return u.astype(g.dtype), m_c.astype(m.dtype), a_c.astype(a.dtype)

            out = jax.tree.map(leaf, updates, state.mu, state.sum_of_squares)
            u, m, a = jax.tree.transpose(
                jax.tree.structure(updates), jax.tree.structure((0,) * 3), out
            )
            return u, AdaGradNormState(count=count, mu=m, sum_of_squares=a)

        acc = state.sum_of_squares
        cd_all = V.compute_dtype(acc.dtype, *[g.dtype for g in jax.tree.leaves(updates)])
        sq = sum(jnp.sum(jnp.square(g.astype(cd_all))) for g in jax.tree.leaves(updates))
        a_c = acc.astype(cd_all) + sq
        denom = jnp.sqrt(a_c) + eps

        def leaf_global(g, m):
            cd = V.compute_dtype(g.dtype, m.dtype, cd_all)
            m_c = momentum * m.astype(cd) + (1 - momentum) * g.astype(cd)
            return (m_c / denom.astype(cd)).astype(g.dtype), m_c.astype(m.dtype)

        out = jax.tree.map(leaf_global, updates, state.mu)
        u, m = jax.tree.transpose(jax.tree.structure(updates), jax.tree.structure((0,) * 2), out)
        return u, AdaGradNormState(count=count, mu=m, sum_of_squares=a_c.astype(acc.dtype))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adagrad_norm(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    initial_accumulator_value: float = 1e-2,
    eps: float = 1e-10,
    momentum: float = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    granularity: str = "rowwise",
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """AdaGrad-Norm (row-wise by default, as the AdAdaGrad reference code) with weight decay.

    ``x <- x - lr (m / (sqrt(a) + eps) + λ x)`` with ``a``, ``m`` from
    :func:`scale_by_adagrad_norm`. Defaults are the reference code's (``adagradnorm.py``):
    ``learning_rate=1.0``, ``initial_accumulator_value=1e-2``, ``eps=1e-10``.

    Args:
      learning_rate: the step size ``lr`` (a non-negative number or an optax schedule).
      initial_accumulator_value: initial value of the accumulator (>= 0).
      eps: added to ``sqrt(a)`` (> 0).
      momentum: the momentum coefficient, in ``[0, 1)``.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule).
      granularity: ``"rowwise"`` (reference code) or ``"global"`` (the paper's scalar step).
      mu_dtype: dtype of the momentum buffer (None: the param dtype).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        callable returning one); None decays every leaf.

    Returns:
      An ``optax.GradientTransformationExtraArgs``, the chain
      ``(AdaGradNormState, add_decayed_weights state, scale_by_learning_rate state)``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers import batch_size
      >>> loss = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> tx = batch_size.adagrad_norm(0.5, granularity="global")
      >>> x = jnp.zeros(3)
      >>> state = tx.init(x)
      >>> for _ in range(200):
      ...     u, state = tx.update(jax.grad(loss)(x), state, x)
      ...     x = optax.apply_updates(x, u)
      >>> [round(float(v), 3) for v in x]
      [1.0, 1.0, 1.0]
    """
    owner = "adagrad_norm"
    V.check_learning_rate(owner, learning_rate)
    V.check_weight_decay(owner, weight_decay)
    V.check_mask(owner, mask)
    return optax.chain(
        scale_by_adagrad_norm(
            initial_accumulator_value,
            eps,
            momentum,
            granularity=granularity,
            mu_dtype=mu_dtype,
        ),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )
