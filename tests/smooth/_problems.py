"""Problems shared by the smooth-solver tests: Rosenbrock, ridge logistic regression, a bounded
least squares with a quartic term."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_breast_cancer

_X, _y = load_breast_cancer(return_X_y=True)
_X = (_X - _X.mean(0)) / _X.std(0)
X_CANCER = jnp.asarray(_X)
Y_CANCER = jnp.asarray(2.0 * _y - 1.0)


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def logreg(w, lam, X, y):
    return jnp.mean(jnp.logaddexp(0.0, -y * (X @ w))) + 0.5 * lam * jnp.sum(w**2)


def quartic_lsq(x, A, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2) + 0.1 * jnp.sum(x**4)


def random_lsq(seed, m=40, n=12):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(m, n))), jnp.asarray(rng.normal(size=m))


def scipy_minimize(fun, x0, method, bounds=None, **options):
    """scipy's minimiser with jax's exact gradient, run to tight tolerances."""
    import scipy.optimize as so

    value_and_grad = jax.jit(jax.value_and_grad(fun))

    def f(x):
        v, g = value_and_grad(jnp.asarray(x))
        return float(v), np.asarray(g, dtype=np.float64)

    opts = {"maxiter": 5000, **options}
    return so.minimize(f, np.asarray(x0), jac=True, method=method, bounds=bounds, options=opts)
