r"""Differentiable perturbed optimisers: ``make_perturbed_argmax``, ``make_perturbed_max``.

Q. Berthet, M. Blondel, O. Teboul, M. Cuturi, J.-P. Vert, F. Bach, "Learning with
Differentiable Perturbed Optimizers", NeurIPS 2020 (arXiv 2002.08676). Reference code: jaxopt
0.8.5 (``jaxopt/_src/perturbations.py``).

A piecewise-constant ``argmax`` ``y*(θ) = argmax_{y ∈ C} ⟨y, θ⟩`` has zero derivative almost
everywhere. Averaging it over random perturbations of its input gives a smooth function

.. math::

   y_σ(θ) = E_Z[\, y^*(θ + σ Z) \,], \qquad F_σ(θ) = E_Z[\, \max_{y ∈ C} ⟨y, θ + σ Z⟩ \,],

with ``∇F_σ = y_σ`` and, for noise with density ``μ(z) ∝ exp(−ν(z))``,

.. math::

   J y_σ(θ) = \frac{1}{σ} E_Z[\, y^*(θ + σ Z)\, ∇ν(Z)^\top \,].

Both expectations are estimated with ``num_samples`` Monte-Carlo samples drawn from the key
given at each call; the derivative uses the same samples as the value.

Differences from the reference code (jaxopt 0.8.5):

- None in the maths, the sampling or the estimators: for the same key, ``argmax_fun``,
  ``num_samples``, ``sigma`` and noise, values and derivatives are jaxopt's (a test compares
  them). ``Gumbel`` and ``Normal`` draw with ``jax.random.gumbel``/``normal`` as jaxopt does.
- Static arguments are checked: ``num_samples`` must be a positive int, ``sigma`` a positive
  number when concrete, ``noise`` an object with ``sample`` and ``log_prob``, ``argmax_fun``
  callable (``TypeError``/``ValueError`` naming the argument).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["Gumbel", "Normal", "make_perturbed_argmax", "make_perturbed_fun", "make_perturbed_max"]


class Normal:
    """Standard normal noise: ``ν(z) = z²/2`` (``log_prob`` up to a constant is ``−z²/2``).

    Example:
      >>> import jax
      >>> from jaxopt_papers.perturbations import Normal
      >>> Normal().sample(jax.random.key(0), (3,)).shape
      (3,)
    """

    def sample(self, seed: jax.Array, sample_shape: tuple[int, ...]) -> jax.Array:
        """``sample_shape`` draws (``jax.random.normal``)."""
        return jax.random.normal(seed, sample_shape)

    def log_prob(self, inputs: jax.Array) -> jax.Array:
        """The log-density up to a constant, ``−z²/2``."""
        return -0.5 * inputs**2


class Gumbel:
    """Standard Gumbel noise: ``log_prob(z) = −z − exp(−z)`` (up to a constant).

    With Gumbel noise the perturbed one-hot argmax is exactly the softmax in expectation
    (the Gumbel-max trick).

    Example:
      >>> import jax
      >>> from jaxopt_papers.perturbations import Gumbel
      >>> Gumbel().sample(jax.random.key(0), (2, 3)).shape
      (2, 3)
    """

    def sample(self, seed: jax.Array, sample_shape: tuple[int, ...]) -> jax.Array:
        """``sample_shape`` draws (``jax.random.gumbel``)."""
        return jax.random.gumbel(seed, sample_shape)

    def log_prob(self, inputs: jax.Array) -> jax.Array:
        """The log-density up to a constant, ``−z − exp(−z)``."""
        return -inputs - jnp.exp(-inputs)


def _check(owner: str, fn: Any, num_samples: Any, sigma: Any, noise: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{owner}: the function must be callable, got {type(fn).__name__}.")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"{owner}: `num_samples` must be an int >= 1, got {num_samples!r}.")
    if isinstance(sigma, (int, float)) and not sigma > 0:
        raise ValueError(f"{owner}: `sigma` must be > 0, got {sigma!r}.")
    if not (
        callable(getattr(noise, "sample", None)) and callable(getattr(noise, "log_prob", None))
    ):
        raise TypeError(
            f"{owner}: `noise` must have `sample(seed, sample_shape)` and `log_prob(z)` "
            f"(e.g. Gumbel() or Normal()), got {type(noise).__name__}."
        )


def _score(noise: Any, samples: jax.Array) -> jax.Array:
    """``∇ν(Z) = −∇ log μ(Z)``, elementwise (the noise is i.i.d. across coordinates)."""
    flat = samples.reshape(-1)
    return -jax.vmap(jax.grad(noise.log_prob))(flat).reshape(samples.shape)


def _perturbed_jvp(
    outputs: jax.Array, samples: jax.Array, noise: Any, tangent: jax.Array, sigma: Any
) -> jax.Array:
    """``(1/(nσ)) Σ_k out_k ⟨∇ν(Z_k), tangent⟩``, shaped like one output."""
    n = samples.shape[0]
    weights = jnp.einsum("ne,e->n", _score(noise, samples).reshape(n, -1), tangent.reshape(-1))
    return jnp.tensordot(weights, outputs, axes=1) / (n * sigma)


def make_perturbed_fun(
    fun: Callable[[jax.Array], jax.Array],
    num_samples: int = 1000,
    sigma: float = 0.1,
    noise: Any = None,
    control_variate: bool = False,
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    r"""A smooth, differentiable Monte-Carlo version ``E_Z[fun(x + σZ)]`` of any ``fun``.

    Args:
      fun: ``fun(x)`` for an array ``x`` of any shape, returning an array of any shape.
      num_samples: Monte-Carlo samples per call.
      sigma: scale ``σ`` of the perturbation.
      noise: ``Gumbel()`` (default) or ``Normal()``, or any object with ``sample`` and
        ``log_prob``.
      control_variate: subtract ``fun(x)`` in the derivative estimator (lower variance, same
        expectation).

    Returns:
      ``pert(x, rng)``: the estimate of ``E_Z[fun(x + σZ)]``, differentiable in ``x`` with the
      derivative ``(1/σ) E_Z[fun(x + σZ) ∇ν(Z)ᵀ]`` estimated on the same samples.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.perturbations import Normal, make_perturbed_fun
      >>> f = make_perturbed_fun(jnp.sign, num_samples=20000, sigma=0.5, noise=Normal())
      >>> d = jax.grad(lambda x: f(x, jax.random.key(0)).sum())(jnp.zeros(1))
      >>> bool(abs(float(d[0]) - 2 * 0.7979 / 1.0) < 0.1)  # 2·φ(0)/σ = 1.596
      True
    """
    noise = Gumbel() if noise is None else noise
    _check("make_perturbed_fun", fun, num_samples, sigma, noise)

    def _outputs(inputs: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        samples = noise.sample(seed=rng, sample_shape=(num_samples, *jnp.shape(inputs)))
        return jax.vmap(fun)(inputs + sigma * samples), samples

    @jax.custom_jvp
    def pert(inputs: jax.Array, rng: jax.Array) -> jax.Array:
        return jnp.mean(_outputs(inputs, rng)[0], axis=0)

    def jvp(tangent: jax.Array, _: jax.Array, inputs: jax.Array, rng: jax.Array) -> jax.Array:
        outputs, samples = _outputs(inputs, rng)
        if control_variate:
            outputs = outputs - fun(inputs)
        return _perturbed_jvp(outputs, samples, noise, tangent, sigma)

    pert.defjvps(jvp, None)
    return pert


def make_perturbed_argmax(
    argmax_fun: Callable[[jax.Array], jax.Array],
    num_samples: int = 1000,
    sigma: float = 0.1,
    noise: Any = None,
    control_variate: bool = False,
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    r"""The perturbed argmax ``y_σ(θ) = E_Z[argmax_fun(θ + σZ)]``, differentiable in ``θ``.

    Args:
      argmax_fun: ``θ ↦ y*(θ)`` with output shaped like ``θ`` (e.g. a one-hot argmax, a
        ranking, a shortest path as a 0/1 mask).
      num_samples: Monte-Carlo samples per call.
      sigma: scale ``σ`` of the perturbation (smaller: closer to ``argmax_fun``, noisier
        derivatives).
      noise: ``Gumbel()`` (default) or ``Normal()``.
      control_variate: subtract ``argmax_fun(θ)`` in the Jacobian estimator.

    Returns:
      ``pert_argmax(θ, rng)``; use ``jax.vmap`` with split keys for batches.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.perturbations import make_perturbed_argmax
      >>> one_hot = lambda x: jax.nn.one_hot(jnp.argmax(x), x.shape[0])
      >>> pert = make_perturbed_argmax(one_hot, num_samples=20000, sigma=1.0)
      >>> theta = jnp.array([0.5, 0.0, -0.5])
      >>> y = pert(theta, jax.random.key(0))   # Gumbel: ≈ softmax(theta / sigma)
      >>> bool(jnp.allclose(y, jax.nn.softmax(theta), atol=0.02))
      True
    """
    noise = Gumbel() if noise is None else noise
    _check("make_perturbed_argmax", argmax_fun, num_samples, sigma, noise)
    return make_perturbed_fun(argmax_fun, num_samples, sigma, noise, control_variate)


def make_perturbed_max(
    argmax_fun: Callable[[jax.Array], jax.Array],
    num_samples: int = 1000,
    sigma: float = 0.1,
    noise: Any = None,
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    r"""The perturbed max ``F_σ(θ) = E_Z[⟨y*(θ + σZ), θ + σZ⟩]``, with ``∇F_σ = y_σ``.

    Args:
      argmax_fun: ``θ ↦ y*(θ)``, the maximiser of ``⟨y, θ⟩`` over the feasible set.
      num_samples, sigma, noise: as in :func:`make_perturbed_argmax`.

    Returns:
      ``pert_max(θ, rng)``, a scalar whose gradient is the perturbed argmax (same samples).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.perturbations import make_perturbed_max
      >>> one_hot = lambda x: jax.nn.one_hot(jnp.argmax(x), x.shape[0])
      >>> pmax = make_perturbed_max(one_hot, num_samples=20000, sigma=1.0)
      >>> theta = jnp.array([0.5, 0.0, -0.5])
      >>> v = pmax(theta, jax.random.key(0))   # Gumbel: ≈ logsumexp(theta) + Euler's γ
      >>> bool(abs(float(v) - float(jax.nn.logsumexp(theta)) - 0.5772) < 0.05)
      True
    """
    noise = Gumbel() if noise is None else noise
    _check("make_perturbed_max", argmax_fun, num_samples, sigma, noise)
    pert_argmax = make_perturbed_argmax(argmax_fun, num_samples, sigma, noise)

    @jax.custom_jvp
    def pert_max(inputs: jax.Array, rng: jax.Array) -> jax.Array:
        samples = noise.sample(seed=rng, sample_shape=(num_samples, *jnp.shape(inputs)))
        perturbed = inputs + sigma * samples
        maximisers = jax.vmap(argmax_fun)(perturbed)
        values = jnp.sum((perturbed * maximisers).reshape(num_samples, -1), axis=1)
        return jnp.mean(values)

    def jvp(tangent: jax.Array, _: jax.Array, inputs: jax.Array, rng: jax.Array) -> jax.Array:
        return jnp.sum(pert_argmax(inputs, rng) * tangent)

    pert_max.defjvps(jvp, None)
    return pert_max
