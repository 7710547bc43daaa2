"""Bilevel cases: every bilevel solver on a closed-form quadratic problem.

In every case the scalar value scales the upper level's target(s) ``t`` of
``problems.quadratic`` (or ``tᵢ`` of ``problems.multi_block_quadratic``), so the solution ``x*``
depends on it linearly, and the implicit derivative goes through the joint optimality condition
(a hypergradient inside an implicit derivative). Where a solver's answer carries a bias that
vanishes only in a limit (the penalty methods), a large ``fd_step`` is exact for the linear
``x*`` and keeps the stopping rule's noise out of the quotient. ``manual`` runs ``init`` and
then ``step`` in a jitted ``while_loop`` with the solver's own stopping rule.

- ``implicit-bilevel-quadratic``: the implicit-differentiation baseline (AID).
- ``penalty-bilevel-quadratic`` (Kwon et al., ICLR 2024): a fixed ``σ = 1e-6``
  (``sigma_decay=0``), so the answer ``x*_σ`` is ``O(σ)`` from ``x*``, whose implicit derivative
  the suite computes; finite differences see ``x*_σ``: they differ by about 1e-6 relative
  (measured 7.5e-7), hence ``rtol_fd=5e-6``. In float32 the ``1/σ`` factor would amplify
  round-off: ``σ = 1e-3`` there. It stops when the error is at most ``tol`` and ``σ`` has
  settled.
- ``borep-quadratic`` (Hao, Gong, Liu, ICLR 2024): the normalised step needs a decaying
  ``outer_lr`` (here ``0.1·0.5^(t/50)``), and ``tol`` stops the run on the momentum's norm.
  There is no meaningful unrolled derivative: ``x ← x − η m/‖m‖`` differentiated through the
  iterations drops the tangent's component along ``m`` (in one dimension the step is
  ``−η·sign(m)``, with derivative 0), hence ``unrolled=None``.
- ``lvhba-quadratic`` (Yao et al., ICLR 2024) on ``quadratic(dim_x=2, dim_y=3, rho=1.0)`` (the
  reduced problem's curvature is ten times the default's, so the penalty schedule converges ten
  times sooner): ``c_k = 0.1 (k + 1)`` grows without bound and the answer is ``O(1/c_k)`` from
  ``x*``. The run stops at ``error <= 4e-10`` after 1.7-2.0·10⁵ steps (about 0.5 s), where the
  joint condition's relative residual is 5.7e-5 to 6.6e-5 (below ``custom_root``'s check of
  1e-4) and ``x`` is 2e-6 to 6e-6 from ``x*``; finite differences and the unrolled derivative see
  that bias's derivative too (2e-5, measured), hence ``rtol_fd = rtol_unrolled = 2e-4``. No
  upper values are recorded: the unrolled mode carries the state through every step.
- ``bsvrb-v1-multi-block-quadratic`` (Hu et al., ICML 2023): all blocks and full batches, so
  deterministic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import bilevel
from jaxopt_papers.bilevel import BOREP, BSVRB, LVHBA, PenaltyBilevel
from tests.solver_cases._case import Case, _to_float32


def _scale_target(v: Any, upper: Any) -> Any:
    t, rho = upper
    return (v * t, rho)


def _scale_all(v: Any, upper: Any) -> Any:
    return v * upper


def _error_stop(solver: Any, state: Any) -> Any:
    return state.error <= solver.tol


def _settled_stop(solver: Any, state: Any) -> Any:
    return (state.error <= solver.tol) & state.settled


def _case(
    name: str,
    rp: Any,
    solver: Any,
    *,
    scale: Callable = _scale_target,
    stop: Callable = _error_stop,
    solver32: Callable,
    **kwargs: Any,
) -> Case:
    """A ``Case`` for ``solver`` on the ready problem ``rp`` with the value scaling its target."""

    def data(v, dtype=None):
        out = (scale(v, rp.upper_data), rp.lower_data)
        return _to_float32(out) if dtype == jnp.float32 else out

    def run(solver, v):
        return solver.run(rp.x0, rp.y0, *data(v))

    def run32(solver, v):
        return solver.run(*_to_float32((rp.x0, rp.y0)), *data(jnp.float32(v), jnp.float32))

    def manual(solver, v):
        upper, lower = data(v)
        params = bilevel.BilevelParams(rp.x0, rp.y0)
        state = solver.init(params, upper, lower)
        loop = jax.jit(lambda p, s: jax.lax.while_loop(
            lambda c: (c[1].num_steps < solver.max_steps) & ~stop(solver, c[1]),
            lambda c: solver.step(*c, upper, lower), (p, s)))  # fmt: skip
        params, state = loop(params, state)
        return params, state.num_steps

    return Case(
        name, solver, run, (0.8, 1.0, 1.2), output=lambda sol: sol.x, run32=run32,
        solver32=solver32, manual=manual, output_of_value=lambda p: p.x,
        vmap_solver=lambda s: dataclasses.replace(s, throw=False), **kwargs,
    )  # fmt: skip


def _with(**changes: Any) -> Callable:
    return lambda s: dataclasses.replace(s, **changes)


QUADRATIC = bilevel.problems.quadratic(dim_x=2, dim_y=3)
QUADRATIC_RHO1 = bilevel.problems.quadratic(dim_x=2, dim_y=3, rho=1.0)
MULTI_BLOCK = bilevel.problems.multi_block_quadratic(num_blocks=3, dim_x=2, dim_y=3)

CASES = [
    _case("implicit-bilevel-quadratic", QUADRATIC,
          bilevel.ImplicitBilevel(QUADRATIC.problem, outer_lr=0.5, inner_tol=1e-12, tol=1e-9,
                                  max_steps=400),
          solver32=_with(tol=1e-4, lower_tol=1e-2)),
    _case("penalty-bilevel-quadratic", QUADRATIC,
          PenaltyBilevel(QUADRATIC.problem, sigma=1e-6, sigma_decay=0.0, alpha=1.0, beta=0.1,
                         inner_steps=10, tol=1e-9, max_steps=600),
          stop=_settled_stop, solver32=_with(sigma=1e-3, tol=1e-4), fd_step=0.2, rtol_fd=5e-6),
    _case("borep-quadratic", QUADRATIC,
          BOREP(QUADRATIC.problem, outer_lr=optax.exponential_decay(0.1, 50, 0.5),
                inner_lr=0.15, z_lr=0.15, tol=1e-10, max_steps=2000),
          solver32=_with(tol=1e-5), unrolled=None, fd_step=0.2),
    _case("lvhba-quadratic", QUADRATIC_RHO1,
          LVHBA(QUADRATIC_RHO1.problem, alpha=0.15, eta=0.15, gamma1=10.0, c_lower=0.1, p=1.0,
                tol=4e-10, max_steps=250_000, record_upper=False),
          solver32=_with(tol=1e-6), fd_step=0.2, rtol_fd=2e-4, rtol_unrolled=2e-4),
    _case("bsvrb-v1-multi-block-quadratic", MULTI_BLOCK,
          BSVRB(MULTI_BLOCK.problem, version="v1", lr=4.0, tau=0.3, tol=1e-11, max_steps=400),
          scale=_scale_all, solver32=_with(tol=1e-5)),
]  # fmt: skip
