r"""Proximal operators with jaxopt's signatures, ``prox(x, hyperparams=None, scaling=1.0)``.

Source: M. Blondel, Q. Berthet, M. Cuturi, R. Frostig, S. Hoyer, F. Llinares-López, F. Pedregosa,
J.-P. Vert, "Efficient and Modular Implicit Differentiation", NeurIPS 2022 (arXiv 2105.15183), whose
reference code is ``jaxopt/_src/prox.py`` of jaxopt 0.8.5; formulas from N. Parikh and S. Boyd,
"Proximal Algorithms", Foundations and Trends in Optimization 1(3), 2014 (§6.5 for the norms).

Every operator returns

    prox_{s·g}(x) = argmin_y  ½‖y − x‖² + s · g(y, λ)

for the penalty ``g`` below, the hyperparameters ``λ = hyperparams`` and the scaling ``s`` (the
step size of a proximal-gradient method); only the product ``s·λ`` matters. ``x`` may be any
pytree; the separable operators work leaf by leaf (``jax.tree.map``) and accept either one scalar
hyperparameter or a pytree of the same structure as ``x`` (coordinate-wise weights, each leaf
broadcastable to the matching leaf of ``x``). ``None`` selects the default (1.0).

============================  ============================  ==================================
function                      penalty g(y)                  prox_{s·g}(x)
============================  ============================  ==================================
``prox_none``                 0                             x
``prox_lasso``                λ‖y‖₁                         sign(x) · max(|x| − sλ, 0)
``prox_non_negative_lasso``   λ‖y‖₁ + ι(y ≥ 0)              max(x − sλ, 0)
``prox_elastic_net``          λ(‖y‖₁ + γ/2 ‖y‖²)            sign(x) max(|x| − sλ, 0)/(1 + sλγ)
``prox_group_lasso``          λ‖y‖₂ (x is one group)        x · max(0, 1 − sλ/‖x‖₂)
``prox_ridge``                λ/2 ‖y‖²                      x / (1 + sλ)
``prox_non_negative_ridge``   λ/2 ‖y‖² + ι(y ≥ 0)           max(x, 0) / (1 + sλ)
============================  ============================  ==================================

``make_prox_from_projection(projection)`` turns a projection onto a convex set C (the prox of the
indicator ι_C, for which the scaling is irrelevant) into a proximal operator.

Differences from the reference code
-----------------------------------
- ``prox_group_lasso`` computes the norm with the double-``jnp.where`` safe-norm trick: value,
  ``jax.grad`` and ``jax.jacfwd`` are finite at ``x = 0`` (the Jacobian there is 0 when sλ > 0 and
  the identity when sλ = 0). jaxopt divides by ``‖x‖ = 0`` and its gradient at 0 is NaN.
- ``prox_ridge`` / ``prox_non_negative_ridge``: same values as jaxopt (``x/(1 + sλ)``), but the
  docstrings state the penalty this really is the prox of, λ/2‖y‖²; jaxopt's docstrings say
  λ‖y‖², whose prox would be ``x/(1 + 2sλ)``.
- Hyperparameters: any scalar (Python ``int``/``float``, NumPy or JAX 0-d array, tracer) is
  broadcast to every leaf. jaxopt's ``prox_elastic_net`` broadcasts only Python ``float``s (an
  ``int`` or an array scalar fails for pytree ``x``), and its ``prox_non_negative_lasso``,
  ``prox_ridge`` and ``prox_non_negative_ridge`` take only a scalar; here those three also take
  coordinate-wise pytrees like ``prox_lasso`` does.
- Bad static input raises ``ValueError`` naming the function and the argument: a hyperparameter
  pytree whose structure differs from ``x`` or whose leaf shape does not broadcast to the leaf of
  ``x``, ``prox_elastic_net`` hyperparameters that are not a pair, a non-scalar ``l2reg`` for the
  group lasso; a non-callable ``projection`` raises ``TypeError``.
- Regularisation weights must be ``>= 0`` (a negative weight turns the penalty into a reward and
  the "prox" pushes away from 0; jaxopt returns that silently), and so must a concrete
  ``scaling``. A concrete negative or NaN weight raises ``ValueError`` naming it at trace time;
  a traced one (under ``jax.jit``, ``jax.grad`` ...) is checked when the computation runs and
  raises a runtime error (:class:`equinox.EquinoxRuntimeError`) naming it. A traced ``scaling``
  is not checked. Inside :class:`~jaxopt_papers.proximal.ProximalGradient` the same check gives
  the result code ``RESULTS.invalid_input`` instead.
- ``prox_group_lasso``, ``prox_ridge`` and ``prox_non_negative_ridge`` default to ``l2reg=None``
  (meaning 1.0) rather than 1.0, like the other operators; the result is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_papers.proximal import _checks as C

__all__ = [
    "make_prox_from_projection",
    "prox_elastic_net",
    "prox_group_lasso",
    "prox_lasso",
    "prox_non_negative_lasso",
    "prox_non_negative_ridge",
    "prox_none",
    "prox_ridge",
]


def _soft(u: jax.Array, t: Any) -> jax.Array:
    """Soft thresholding sign(u) · max(|u| − t, 0)."""
    return jnp.sign(u) * jax.nn.relu(jnp.abs(u) - t)


def prox_none(x: Any, hyperparams: Any = None, scaling: Any = 1.0) -> Any:
    """Prox of g = 0: the identity, ``x``. ``hyperparams`` and ``scaling`` are ignored.

    With it :class:`ProximalGradient` is plain (accelerated) gradient descent.

    Args:
      x: the point, any pytree of arrays.
      hyperparams: ignored.
      scaling: ignored.

    Returns:
      ``x`` itself.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import prox_none
      >>> prox_none(jnp.array([1.0, -2.0]), 3.0).tolist()
      [1.0, -2.0]
    """
    del hyperparams, scaling
    return x


def prox_lasso(x: Any, l1reg: Any = None, scaling: Any = 1.0) -> Any:
    """Soft thresholding, the prox of λ‖y‖₁: ``sign(x) · max(|x| − s·λ, 0)``.

    Args:
      x: the point, any pytree of arrays.
      l1reg: ``λ ≥ 0`` (None: 1.0), a scalar or a pytree like ``x`` (coordinate-wise
        weights).
      scaling: ``s ≥ 0``, the step size of the proximal-gradient method (default 1.0).

    Returns:
      ``prox_{s·g}(x)``, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import prox_lasso
      >>> prox_lasso(jnp.array([2.0, 0.3, -1.5]), 0.5).tolist()
      [1.5, 0.0, -1.0]
    """
    l1reg = 1.0 if l1reg is None else l1reg
    lam = C.like_x("prox_lasso", "l1reg", l1reg, x)
    out = jax.tree.map(lambda u, v: _soft(u, scaling * v), x, lam)
    return C.checked_weights("prox_lasso", out, (("l1reg", lam),), scaling)


def prox_non_negative_lasso(x: Any, l1reg: Any = None, scaling: Any = 1.0) -> Any:
    """Prox of λ‖y‖₁ restricted to y ≥ 0: ``max(x − s·λ, 0)``.

    Args:
      x: the point, any pytree of arrays.
      l1reg: ``λ ≥ 0`` (None: 1.0), a scalar or a pytree like ``x``.
      scaling: ``s ≥ 0``, the step size of the proximal-gradient method (default 1.0).

    Returns:
      ``prox_{s·g}(x)``, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import prox_non_negative_lasso
      >>> prox_non_negative_lasso(jnp.array([2.0, 0.3, -1.5]), 0.5).tolist()
      [1.5, 0.0, 0.0]
    """
    l1reg = 1.0 if l1reg is None else l1reg
    lam = C.like_x("prox_non_negative_lasso", "l1reg", l1reg, x)
    out = jax.tree.map(lambda u, v: jax.nn.relu(u - scaling * v), x, lam)
    return C.checked_weights("prox_non_negative_lasso", out, (("l1reg", lam),), scaling)


def prox_elastic_net(x: Any, hyperparams: Any = None, scaling: Any = 1.0) -> Any:
    """Prox of λ(‖y‖₁ + γ/2‖y‖²): ``sign(x) · max(|x| − s·λ, 0) / (1 + s·λ·γ)``.

    Note that γ multiplies λ: the quadratic weight is λγ/2, as in jaxopt.

    Args:
      x: the point, any pytree of arrays.
      hyperparams: the pair ``(l1reg, l2reg) = (λ, γ)``, both ``≥ 0`` (None:
        ``(1.0, 1.0)``); each a scalar or a pytree like ``x``.
      scaling: ``s ≥ 0``, the step size of the proximal-gradient method (default 1.0).

    Returns:
      ``prox_{s·g}(x)``, a pytree like ``x``.

    Raises:
      ValueError: ``hyperparams`` is not a pair, or a weight does not match ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import prox_elastic_net
      >>> prox_elastic_net(jnp.array([2.0, 0.3, -1.5]), (0.5, 2.0)).tolist()  # (1.5, 0, -1) / 2
      [0.75, 0.0, -0.5]
    """
    owner = "prox_elastic_net"
    if hyperparams is None:
        hyperparams = (1.0, 1.0)
    if not isinstance(hyperparams, (tuple, list)) or len(hyperparams) != 2:
        raise ValueError(
            f"{owner}: `hyperparams` must be a pair (l1reg, l2reg), got {hyperparams!r}."
        )
    lam = C.like_x(owner, "hyperparams[0]", hyperparams[0], x)
    gam = C.like_x(owner, "hyperparams[1]", hyperparams[1], x)

    def one(u: jax.Array, lm: Any, gm: Any) -> jax.Array:
        t = scaling * lm
        return _soft(u, t) / (1.0 + t * gm)

    out = jax.tree.map(one, x, lam, gam)
    weights = (("hyperparams[0]", lam), ("hyperparams[1]", gam))
    return C.checked_weights(owner, out, weights, scaling)


def prox_group_lasso(x: Any, l2reg: Any = None, scaling: Any = 1.0) -> Any:
    """Block soft thresholding, the prox of λ‖y‖₂: ``x · max(0, 1 − s·λ/‖x‖₂)``.

    The whole pytree ``x`` is one group (its norm is taken over all leaves); ``jax.vmap`` over
    groups for several. At ``x = 0`` the value is 0 and the derivatives are finite (Jacobian 0
    for s·λ > 0, identity for s·λ = 0; jaxopt's gradient there is NaN).

    Args:
      x: the point, any pytree of arrays.
      l2reg: ``λ ≥ 0`` (None: 1.0), a scalar.
      scaling: ``s ≥ 0``, the step size of the proximal-gradient method (default 1.0).

    Returns:
      ``prox_{s·g}(x)``, a pytree like ``x``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.proximal import prox_group_lasso
      >>> prox_group_lasso(jnp.array([3.0, 4.0]), 2.5).tolist()  # ‖x‖ = 5: x · (1 − 2.5/5)
      [1.5, 2.0]
      >>> groups = jnp.array([[3.0, 4.0], [0.3, 0.4]])  # one group per row
      >>> jax.vmap(prox_group_lasso, in_axes=(0, None))(groups, 2.5).tolist()
      [[1.5, 2.0], [0.0, 0.0]]
    """
    owner = "prox_group_lasso"
    l2reg = 1.0 if l2reg is None else l2reg
    if jnp.ndim(l2reg) != 0:
        raise ValueError(
            f"{owner}: `l2reg` must be a scalar (one group per call), got shape {C.shape(l2reg)}."
        )
    t = scaling * l2reg
    sq = sum((jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(x)), 0.0)
    nonzero = sq > 0
    norm = jnp.sqrt(jnp.where(nonzero, sq, 1.0))
    factor = jnp.where(nonzero, jax.nn.relu(1.0 - t / norm), jnp.where(t > 0, 0.0, 1.0))
    out = jax.tree.map(lambda u: factor * u, x)
    return C.checked_weights(owner, out, (("l2reg", l2reg),), scaling)


def prox_ridge(x: Any, l2reg: Any = None, scaling: Any = 1.0) -> Any:
    """Prox of (λ/2)‖y‖²: ``x / (1 + s·λ)``.

    jaxopt computes the same value but its docstring names the penalty λ‖y‖², whose prox would
    be ``x / (1 + 2sλ)``.

    Args:
      x: the point, any pytree of arrays.
      l2reg: ``λ ≥ 0`` (None: 1.0), a scalar or a pytree like ``x``.
      scaling: ``s ≥ 0``, the step size of the proximal-gradient method (default 1.0).

    Returns:
      ``prox_{s·g}(x)``, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import prox_ridge
      >>> [round(v, 4) for v in prox_ridge(jnp.array([2.0, -1.0]), 1.0, scaling=0.5).tolist()]
      [1.3333, -0.6667]
    """
    l2reg = 1.0 if l2reg is None else l2reg
    lam = C.like_x("prox_ridge", "l2reg", l2reg, x)
    out = jax.tree.map(lambda u, v: u / (1.0 + scaling * v), x, lam)
    return C.checked_weights("prox_ridge", out, (("l2reg", lam),), scaling)


def prox_non_negative_ridge(x: Any, l2reg: Any = None, scaling: Any = 1.0) -> Any:
    """Prox of (λ/2)‖y‖² restricted to y ≥ 0: ``max(x / (1 + s·λ), 0)``.

    Args:
      x: the point, any pytree of arrays.
      l2reg: ``λ ≥ 0`` (None: 1.0), a scalar or a pytree like ``x``.
      scaling: ``s ≥ 0``, the step size of the proximal-gradient method (default 1.0).

    Returns:
      ``prox_{s·g}(x)``, a pytree like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import prox_non_negative_ridge
      >>> prox_non_negative_ridge(jnp.array([3.0, -1.0]), 2.0).tolist()  # max(x / 3, 0)
      [1.0, 0.0]
    """
    l2reg = 1.0 if l2reg is None else l2reg
    lam = C.like_x("prox_non_negative_ridge", "l2reg", l2reg, x)
    out = jax.tree.map(lambda u, v: jax.nn.relu(u / (1.0 + scaling * v)), x, lam)
    return C.checked_weights("prox_non_negative_ridge", out, (("l2reg", lam),), scaling)


def make_prox_from_projection(projection: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """The prox of the indicator of a convex set: ``prox(x, hp, scaling) = projection(x, hp)``.

    The scaling is ignored (s·ι_C = ι_C for s > 0). With it :class:`ProximalGradient` solves a
    constrained problem (that is :class:`ProjectedGradient`).

    Args:
      projection: ``projection(x, hyperparams)``, the Euclidean projection onto the set, e.g.
        one of this package's ``projection_*``.

    Returns:
      ``prox(x, hyperparams=None, scaling=1.0)``, named ``prox_from_<projection name>``.

    Raises:
      TypeError: ``projection`` is not callable.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.proximal import make_prox_from_projection, projection_box
      >>> prox = make_prox_from_projection(projection_box)
      >>> prox(jnp.array([2.0, -3.0, 0.5]), (-1.0, 1.0), 10.0).tolist()
      [1.0, -1.0, 0.5]
    """
    if not callable(projection):
        raise TypeError(
            "make_prox_from_projection: `projection` must be callable, "
            f"got {type(projection).__name__}."
        )

    def prox(x: Any, hyperparams: Any = None, scaling: Any = 1.0) -> Any:
        del scaling
        return projection(x, hyperparams)

    name = getattr(projection, "__name__", "projection")
    prox.__name__ = prox.__qualname__ = f"prox_from_{name}"
    prox.__doc__ = f"Prox of the indicator of the set that ``{name}`` projects onto."
    return prox
