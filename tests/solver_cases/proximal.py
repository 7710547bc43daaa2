"""Proximal-gradient cases: lasso and elastic net on diabetes, a box-constrained least squares."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_diabetes

from jaxopt_papers.proximal import (
    ProjectedGradient,
    ProximalGradient,
    projection_box,
    prox_elastic_net,
    prox_lasso,
)
from tests.solver_cases._case import Case, _to_float32

_X, _y = load_diabetes(return_X_y=True)
_X = (_X - _X.mean(0)) / _X.std(0)
_y = (_y - _y.mean()) / _y.std()
X, Y = jnp.asarray(_X[:200]), jnp.asarray(_y[:200])
L = float(np.linalg.eigvalsh(_X[:200].T @ _X[:200] / 200)[-1])


def lsq(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def _case(name, solver, hyper, values):
    def run(solver, v):
        return solver.run(jnp.zeros(10), hyper(v), X, Y)

    def run32(solver, v):
        return solver.run(jnp.zeros(10, jnp.float32), hyper(v), *_to_float32((X, Y)))

    def manual(solver, v):
        hp = hyper(v)
        params, state = jnp.zeros(10), solver.init(jnp.zeros(10), hp, X, Y)
        step = jax.jit(lambda p, s: solver.step(p, s, hp, X, Y))
        while int(state.num_steps) < solver.max_steps and float(state.error) > solver.tol:
            params, state = step(params, state)
        return params, state.num_steps

    return Case(
        name, solver, run, values, run32=run32,
        solver32=lambda s: dataclasses.replace(s, tol=1e-4), manual=manual,
    )  # fmt: skip


CASES = [
    _case("fista-lasso", ProximalGradient(lsq, prox_lasso, stepsize=1 / L, tol=1e-11,
                                          max_steps=3000), lambda a: a, (0.02, 0.05, 0.1)),
    _case("ista-backtracking-lasso", ProximalGradient(lsq, prox_lasso, acceleration=False,
                                                      tol=1e-11, max_steps=3000),
          lambda a: a, (0.02, 0.05, 0.1)),
    _case("fista-elastic-net", ProximalGradient(lsq, prox_elastic_net, tol=1e-11,
                                                max_steps=3000), lambda a: (a, 0.5),
          (0.02, 0.05, 0.1)),
    _case("projected-box", ProjectedGradient(lsq, projection_box, stepsize=1 / L, tol=1e-11,
                                             max_steps=3000), lambda a: (-a, a), (0.05, 0.1, 0.2)),
]  # fmt: skip
