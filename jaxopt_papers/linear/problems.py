"""Sequences of PDE linear systems for tests, benchmarks and notebooks (5-point differences).

:func:`darcy`: ``−∇·(a∇u) = f`` on the unit square, zero Dirichlet data, ``a = exp(w)`` with ``w``
a Gaussian random field, the dataset of FNO and of the SKR paper (its ``s`` grid points per side
include the boundary, ``n = (s − 2)²`` unknowns: ``s = 102`` gives 10⁴). :func:`poisson`: the
same with ``a = 1`` and a random smooth right-hand side. :func:`helmholtz`: ``−Δu − k(x)²u = f``
with a random-field wavenumber (symmetric, indefinite for large ``k``).

The Gaussian random field follows the FNO/SKR data generators: spectral coefficients
``σ(4π²|κ|² + τ²)^(−α/2)``, ``σ = τ^(α − 1)`` (``d = 2``), on the ``s × s`` grid with
i.i.d. complex normal weights, real part of the inverse FFT scaled by ``s²``, zero mean mode.
Face coefficients are the arithmetic means of ``a`` at the two nodes (FNO's solver uses the same
5-point stencil).

Differences from the reference code: the random fields come from JAX's PRNG, so samples match
the FNO/SKR generators in distribution, not draw for draw; the matrices are assembled directly as
:class:`~jaxopt_papers.linear.DiaMatrix`; the Poisson and Helmholtz sequences are this library's
own test problems.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxopt_papers import _validation as V
from jaxopt_papers.linear.dia import DiaMatrix

__all__ = ["SystemSequence", "darcy", "gaussian_random_field", "helmholtz", "poisson"]


class SystemSequence(eqx.Module):
    """``N`` systems ``A⁽ⁱ⁾x = b⁽ⁱ⁾`` on an ``m × m`` interior grid (``n = m²``).

    Made by :func:`darcy`, :func:`poisson` and :func:`helmholtz`; ``len(seq)`` is ``N`` and
    ``seq.to_scipy(i)`` the ``i``-th matrix as ``scipy.sparse``. Feed it to
    :func:`solve_sequence` as ``(seq.operators, seq.rhs, seq.params)``.

    Args:
      operators: a :class:`DiaMatrix` with a leading axis ``N`` (``operators[i]`` is one system).
      rhs: the right-hand sides, ``(N, n)``.
      params: ``(N, p)``, what each system was generated from (the features of SKR's sorting).
      grid: ``m``, the interior grid points per side (static).

    Example:
      >>> import jax
      >>> from jaxopt_papers import linear
      >>> seq = linear.poisson(jax.random.key(0), 2, s=6)  # 2 systems on a 4 x 4 grid
      >>> len(seq), seq.rhs.shape, seq.grid, seq.operators[0].shape
      (2, (2, 16), 4, (16, 16))
    """

    operators: DiaMatrix
    rhs: jax.Array
    params: jax.Array
    grid: int = eqx.field(static=True)

    def __len__(self) -> int:
        return self.rhs.shape[0]

    def to_scipy(self, i: int) -> Any:
        """The ``i``-th matrix as a ``scipy.sparse.csr_array``.

        Args:
          i: the index of the system.

        Returns:
          The matrix ``A⁽ⁱ⁾``.
        """
        return self.operators[i].to_scipy()


def gaussian_random_field(
    key: jax.Array, num: int, s: int, alpha: float = 2.5, tau: float = 7.0
) -> jax.Array:
    """``(num, s, s)`` samples of the FNO Gaussian random field (periodic, zero mean).

    The FNO/SKR data generators' field: spectral coefficients ``σ(4π²|κ|² + τ²)^(−α/2)``,
    ``σ = τ^(α − 1)``, i.i.d. complex normal weights, the real part of the inverse FFT scaled
    by ``s²``, the mean mode set to zero. Larger ``α`` gives smoother samples, larger ``τ``
    shorter correlation lengths.

    Args:
      key: a JAX random key.
      num: the number of samples.
      s: the grid points per side.
      alpha: the smoothness ``α`` (default 2.5, FNO's Darcy data).
      tau: the inverse length scale ``τ`` (default 7, FNO's Darcy data).

    Returns:
      The samples, shape ``(num, s, s)``.

    Example:
      >>> import jax
      >>> from jaxopt_papers import linear
      >>> w = linear.gaussian_random_field(jax.random.key(0), 2, 6)
      >>> w.shape, abs(float(w[0].mean())) < 1e-6  # the mean mode is zero
      ((2, 6, 6), True)
    """
    kx = jnp.fft.fftfreq(s, 1.0 / s)
    k2 = kx[:, None] ** 2 + kx[None, :] ** 2
    sigma = tau ** (0.5 * (2 * alpha - 2))
    coef = sigma * (4 * jnp.pi**2 * k2 + tau**2) ** (-alpha / 2)
    coef = coef.at[0, 0].set(0.0)
    k1, k2_ = jax.random.split(key)
    xi = jax.random.normal(k1, (num, s, s)) + 1j * jax.random.normal(k2_, (num, s, s))
    return jnp.real(jnp.fft.ifft2(coef * xi)) * s * s


def _five_point(a: jax.Array, shift: jax.Array | None = None) -> DiaMatrix:
    """``−∇·(a∇u) + shift·u`` on the interior of an ``s × s`` node grid, ``h = 1/(s − 1)``."""
    *batch, s, _ = a.shape
    m = s - 2
    h2 = (1.0 / (s - 1)) ** 2
    c = a[..., 1:-1, 1:-1]
    east = 0.5 * (c + a[..., 1:-1, 2:]) / h2
    west = 0.5 * (c + a[..., 1:-1, :-2]) / h2
    north = 0.5 * (c + a[..., 2:, 1:-1]) / h2
    south = 0.5 * (c + a[..., :-2, 1:-1]) / h2
    diag = east + west + north + south
    if shift is not None:
        diag = diag + shift
    col = jnp.arange(m)
    east = jnp.where(col[None, :] < m - 1, east, 0.0)  # no coupling across grid rows
    west = jnp.where(col[None, :] > 0, west, 0.0)
    flat = lambda v: v.reshape(*batch, m * m)
    data = jnp.stack([-flat(south), -flat(west), flat(diag), -flat(east), -flat(north)], -2)
    return DiaMatrix(data, (-m, -1, 0, 1, m))


def darcy(
    key: jax.Array, num_systems: int, s: int = 102, alpha: float = 2.5, tau: float = 7.0
) -> SystemSequence:
    """Darcy flow ``−∇·(a∇u) = 1``, ``a = exp(GRF(α, τ))``: ``num_systems`` systems of size
    ``(s − 2)²``; ``params`` is the flattened ``log a``.

    The dataset of FNO and of the SKR paper (``s = 102`` gives ``n = 10⁴`` unknowns): 5-point
    finite differences on the unit square with zero Dirichlet data, face coefficients the means
    of ``a`` at the two nodes. Every matrix is symmetric positive definite (for CG).

    Args:
      key: a JAX random key.
      num_systems: ``N``, the number of systems.
      s: grid points per side, boundary included (default 102, the SKR paper's).
      alpha: the smoothness of the random field (default 2.5, FNO's).
      tau: the inverse length scale of the random field (default 7, FNO's).

    Returns:
      A :class:`SystemSequence`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> seq = linear.darcy(jax.random.key(0), 2, s=6)
      >>> A = seq.operators[1].todense()
      >>> A.shape, bool(jnp.allclose(A, A.T)), bool(jnp.all(jnp.linalg.eigvalsh(A) > 0))
      ((16, 16), True, True)
    """
    V.check_int("darcy", "num_systems", num_systems, low=1)
    V.check_int("darcy", "s", s, low=3)
    w = gaussian_random_field(key, num_systems, s, alpha, tau)
    ops = _five_point(jnp.exp(w))
    rhs = jnp.ones((num_systems, (s - 2) ** 2), ops.dtype)
    return SystemSequence(ops, rhs, w.reshape(num_systems, -1), s - 2)


def poisson(key: jax.Array, num_systems: int, s: int = 102, modes: int = 5) -> SystemSequence:
    """``−Δu = f``, zero Dirichlet data, ``f(x, y) = Σ_{p,q<modes} c_pq T_p(2x−1) T_q(2y−1)``
    (Chebyshev series with ``c ~ N(0, 1)/(1 + p + q)²``); one matrix, ``N`` right-hand sides;
    ``params`` are the coefficients.

    Args:
      key: a JAX random key.
      num_systems: ``N``, the number of right-hand sides.
      s: grid points per side, boundary included (default 102).
      modes: Chebyshev modes per direction of the right-hand side.

    Returns:
      A :class:`SystemSequence` (every operator is the same 5-point Laplacian).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> seq = linear.poisson(jax.random.key(0), 2, s=6)  # h = 1/5 on a 4 x 4 interior grid
      >>> T = 2 * jnp.eye(4) - jnp.eye(4, k=1) - jnp.eye(4, k=-1)
      >>> lap = (jnp.kron(jnp.eye(4), T) + jnp.kron(T, jnp.eye(4))) / 0.2**2
      >>> bool(jnp.allclose(seq.operators[0].todense(), lap)), seq.params.shape
      (True, (2, 25))
    """
    V.check_int("poisson", "num_systems", num_systems, low=1)
    V.check_int("poisson", "s", s, low=3)
    m = s - 2
    t = jnp.linspace(-1.0, 1.0, s)[1:-1]
    cheb = jnp.cos(jnp.arange(modes)[:, None] * jnp.arccos(t)[None, :])  # (modes, m)
    decay = 1.0 / (1.0 + jnp.arange(modes)[:, None] + jnp.arange(modes)[None, :]) ** 2
    c = jax.random.normal(key, (num_systems, modes, modes)) * decay
    f = jnp.einsum("npq,pi,qj->nij", c, cheb, cheb).reshape(num_systems, m * m)
    ops = _five_point(jnp.ones((num_systems, s, s)))
    return SystemSequence(ops, f, c.reshape(num_systems, -1), m)


def helmholtz(
    key: jax.Array, num_systems: int, s: int = 102, k0: float = 10.0, spread: float = 0.2
) -> SystemSequence:
    """``−Δu − k²u = 1``, zero Dirichlet data, ``k = k0·exp(spread·GRF(2.5, 7))``;
    ``params`` is the flattened ``k``. ``k0 = 10`` puts a few eigenvalues of ``−Δ`` below
    ``k²`` (indefinite): at ``s = 102`` restarted GMRES(40) stagnates while deflation
    (GCRO-DR) converges.

    Args:
      key: a JAX random key.
      num_systems: ``N``, the number of systems.
      s: grid points per side, boundary included (default 102).
      k0: the mean wavenumber.
      spread: the log-amplitude of the wavenumber's random field.

    Returns:
      A :class:`SystemSequence` of symmetric, possibly indefinite matrices.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers import linear
      >>> A = linear.helmholtz(jax.random.key(0), 2, s=6).operators[0].todense()
      >>> eig = jnp.linalg.eigvalsh(A)
      >>> bool(jnp.allclose(A, A.T)), bool(eig.min() < 0 < eig.max())  # indefinite
      (True, True)
    """
    V.check_int("helmholtz", "num_systems", num_systems, low=1)
    V.check_int("helmholtz", "s", s, low=3)
    k = k0 * jnp.exp(spread * gaussian_random_field(key, num_systems, s))
    ops = _five_point(jnp.ones((num_systems, s, s)), -(k[:, 1:-1, 1:-1] ** 2))
    rhs = jnp.ones((num_systems, (s - 2) ** 2), ops.dtype)
    return SystemSequence(ops, rhs, k.reshape(num_systems, -1), s - 2)
