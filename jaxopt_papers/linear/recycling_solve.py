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

Differences from the reference code: neither jaxopt nor the SKR code recycles the backward solve
of implicit differentiation; the Krylov method is the library's GCRO-DR
(:class:`~jaxopt_papers.linear.GCRODR`, whose module lists its differences from PETSc/HPDDM).
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

    The forward and the adjoint systems of implicit differentiation differ unless ``∂ₓF`` is
    symmetric: keep one ``RecyclingSolve`` for each. Inside ``jax.grad`` of a ``custom_root``
    solver the given state is recycled but the new one cannot be handed back: carry it along
    with ``root_vjp(..., return_stats=True)``.

    Args:
      restart: GCRO-DR's subspace size ``m``.
      recycle: GCRO-DR's recycle dimension ``k`` (``< restart``).
      tol: relative residual target ``‖b − Ax‖/‖b‖``.
      max_steps: cap on products with ``A`` (``None``: the solver's default).
      state: the recycle state of a previous solve (``None``: start without one).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.linear import RecyclingSolve
      >>> A = jnp.diag(jnp.linspace(0.01, 2.0, 20)) + 0.01  # ill-conditioned, slowly changing
      >>> solve, cost = RecyclingSolve(restart=8, recycle=3), []
      >>> for shift in (0.0, 0.001):
      ...     x, stats = solve(lambda v: A @ v + shift * v, jnp.ones(20))
      ...     solve = solve.with_state(stats["recycle_state"])  # recycle into the next solve
      ...     cost.append(int(stats["num_matvecs"]))
      >>> bool(stats["success"]), bool(jnp.allclose(A @ x + 0.001 * x, 1.0, atol=1e-6))
      (True, True)
      >>> cost[1] < cost[0]  # the recycled subspace saves products with A
      True
    """

    restart: int = eqx.field(static=True, default=40)
    recycle: int = eqx.field(static=True, default=20)
    tol: float = 1e-10
    max_steps: int | None = eqx.field(static=True, default=None)
    state: Any = None

    def with_state(self, state: Any) -> RecyclingSolve:
        """The same solver, recycling ``state`` (e.g. ``stats["recycle_state"]``).

        Args:
          state: a recycle state returned by a previous solve.

        Returns:
          A new :class:`RecyclingSolve` (this one is unchanged).
        """
        return eqx.tree_at(lambda s: s.state, self, state, is_leaf=lambda x: x is None)

    def __call__(self, matvec: Any, b: Any) -> tuple[Any, dict[str, Any]]:
        """Solve ``A x = b`` by GCRO-DR from this solver's recycle state.

        Args:
          matvec: the linear map ``x ↦ A x`` on pytrees shaped like ``b``.
          b: the right-hand side (any pytree).

        Returns:
          ``(x, stats)``: the solution shaped like ``b``, and ``recycle_state``,
          ``num_steps``, ``num_matvecs``, ``result``, ``success``.
        """
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
