"""Recycled Krylov solves as the backward solver of implicit differentiation.

Implicit differentiation solves one linear system per outer iteration: ``(∂ₓF)ᵀ u = −v`` for a
hypergradient (``root_vjp``, the *adjoint* system) or ``(∂ₓF) ẋ = −∂_θF θ̇`` (``root_jvp``, the
*forward* system). Along an outer loop (a bilevel method, a sequence of hyperparameters) these
systems change slowly, which is what Krylov subspace recycling exploits (Parks et al. 2006;
the SKR paper, Wang et al. ICLR 2024, §3.6 of the spec): :class:`RecyclingSolve` runs
:func:`~jaxopt_papers.linear.gcrodr` from a recycle state and returns the new one in the solve's
stats, to be passed to the next outer iteration.

The forward and the adjoint operators differ unless ``∂ₓF`` is symmetric, and so do their
useful subspaces: keep one :class:`RecyclingSolve` for each (the state of one is not valid for
the other).

    solve = RecyclingSolve()
    for step in range(num_outer):
        grads, stats = root_vjp(F, x, args, v, solve=solve, return_stats=True)
        solve = solve.with_state(stats["recycle_state"])

Inside ``jax.grad`` of a :func:`~jaxopt_papers.implicit.custom_root` solver, a
:class:`RecyclingSolve` recycles its given state, but JAX's transposition cannot hand the new
state back: use ``root_vjp`` (as above) to carry it along.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
from jax.flatten_util import ravel_pytree

from jaxopt_papers._solution import RESULTS
from jaxopt_papers.linear import krylov

__all__ = ["RecyclingSolve"]


class RecyclingSolve(eqx.Module):
    """A callable ``solve(matvec, b) -> (x, stats)`` running GCRO-DR from a recycle state.

    Usable wherever the implicit core takes ``solve=`` (``custom_root``, ``root_vjp``,
    ``root_jvp``, ``LinearSolve(solver=...)``) and the solvers' ``linear_solve=``. The stats hold
    ``recycle_state`` (for :meth:`with_state`), ``num_steps`` (restart cycles), ``num_matvecs``
    (products with the operator), ``result`` and ``success``.

    Args:
      restart, recycle: GCRO-DR's subspace size ``m`` and recycle dimension ``k``.
      tol: relative residual target ``‖b − Ax‖/‖b‖``.
      max_steps: cap on products with ``A`` (``None``: the solver's default).
      state: the recycle state of a previous solve (``None``: start without one).
    """

    restart: int = eqx.field(static=True, default=40)
    recycle: int = eqx.field(static=True, default=20)
    tol: float = 1e-10
    max_steps: int | None = eqx.field(static=True, default=None)
    state: Any = None

    def with_state(self, state: Any) -> RecyclingSolve:
        """The same solver, recycling ``state`` (e.g. ``stats["recycle_state"]``)."""
        return eqx.tree_at(lambda s: s.state, self, state, is_leaf=lambda x: x is None)

    def __call__(self, matvec: Any, b: Any) -> tuple[Any, dict[str, Any]]:
        flat_b, unravel = ravel_pytree(b)

        def flat_matvec(v: jax.Array) -> jax.Array:
            return ravel_pytree(matvec(unravel(v)))[0]

        solver = krylov.GCRODR(self.restart, self.recycle, self.tol, self.max_steps, throw=False)
        res = solver.run(flat_matvec, flat_b, state=self.state)
        stats = {
            "recycle_state": res.state,
            "num_steps": res.stats["num_steps"],
            "num_matvecs": res.stats["num_matvecs"],
            "result": res.result,
            "success": res.result == RESULTS.successful,
        }
        return unravel(res.x), stats
