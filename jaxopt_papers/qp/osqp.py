"""OSQP: quadratic programs with equality and inequality constraints, through :class:`BoxOSQP`.

Solves ``min_x ½xᵀQx + cᵀx`` subject to ``Ax = b`` and ``Gx ≤ h`` (either may be absent) by
rewriting it in :class:`~jaxopt_papers.qp.BoxOSQP`'s form, ``l ≤ [A; G]x ≤ u`` with
``l = [b; −inf]`` and ``u = [b; h]``, and solving that (the same ADMM, defaults, result codes
and implicit gradients, here with respect to ``Q``, ``c``, ``A``, ``b``, ``G`` and ``h``). The
answer is a :class:`~jaxopt_papers.qp.KKTSolution` ``(primal=x, dual_eq=ν, dual_ineq=λ)`` with
``Qx + c + Aᵀν + Gᵀλ = 0``, ``λ ≥ 0`` (``None`` for an absent block). Reference code: jaxopt
0.8.5's ``OSQP``.

With ``matvec_A``/``matvec_G`` the two blocks are kept apart (``z`` is a dict with keys
``"eq"`` and ``"ineq"``); otherwise the matrices are stacked into one dense ``[A; G]``.
``init``/``step`` (manual stepping) work on the BoxOSQP form: pass them the output of
:meth:`OSQP.to_box`.

Differences from jaxopt: those of :class:`~jaxopt_papers.qp.BoxOSQP` (``fun=`` is not offered;
infeasibility is reported by result code); the solution's ``state`` is the
:class:`~jaxopt_papers.qp.BoxOSQPState` of the underlying solve (jaxopt: ``OSQPState`` with
``iter_num``, ``error`` and ``status``, which it contains as ``num_steps``, ``error``,
``status``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxopt_papers._solution import Solution
from jaxopt_papers.qp.box_osqp import BoxOSQP, KKTSolution

__all__ = ["OSQP"]


def _pair(owner: str, name: str, value: Any, what: str) -> tuple[Any, Any] | None:
    if value is None:
        return None
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{owner}: `{name}` must be None or a pair {what}, got {value!r:.80}.")
    return tuple(value)


class OSQP(BoxOSQP):
    """OSQP for ``min ½xᵀQx + cᵀx`` s.t. ``Ax = b``, ``Gx ≤ h`` (see the module docstring).

    Args:
      matvec_Q: ``matvec_Q(params_Q, x) -> Qx`` (default: ``params_Q @ x``).
      matvec_A: ``matvec_A(params_A, x) -> Ax`` for the equalities (default: dense).
      matvec_G: ``matvec_G(params_G, x) -> Gx`` for the inequalities (default: dense).

    The other settings (``tol``, ``max_steps``, ``momentum``, ``throw`` ...) are those of
    :class:`~jaxopt_papers.qp.BoxOSQP`, with its defaults.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.qp import OSQP
      >>> # min ½‖x‖² − 3x₀ − x₁  s.t.  x₀ − x₁ = 0,  x₀ + x₁ ≤ 1
      >>> Q, c = jnp.eye(2), jnp.array([-3.0, -1.0])
      >>> A, b = jnp.array([[1.0, -1.0]]), jnp.array([0.0])
      >>> G, h = jnp.array([[1.0, 1.0]]), jnp.array([1.0])
      >>> sol = OSQP(tol=1e-8).run(None, (Q, c), (A, b), (G, h))
      >>> x, nu, lam = sol.params
      >>> [round(v, 4) for v in x.tolist()], round(float(lam[0]), 4)
      ([0.5, 0.5], 1.5)
    """

    matvec_G: Callable | None = eqx.field(static=True, default=None)

    def __check_init__(self) -> None:
        if self.matvec_G is not None and not callable(self.matvec_G):
            raise TypeError(
                f"OSQP: `matvec_G` must be None or a callable matvec_G(params, x), got "
                f"{type(self.matvec_G).__name__}."
            )

    def _dense(self) -> bool:
        return self.matvec_Q is None and self.matvec_A is None and self.matvec_G is None

    def _A_is_matrix(self) -> bool:
        return self.matvec_A is None and self.matvec_G is None

    def _apply_A(self, params_A: Any, x: Any) -> Any:
        if self._A_is_matrix():
            return params_A @ x
        out = {}
        for key, fn in (("eq", self.matvec_A), ("ineq", self.matvec_G)):
            if key in params_A:
                out[key] = params_A[key] @ x if fn is None else fn(params_A[key], x)
        return out

    def to_box(
        self, params_obj: Any, params_eq: Any = None, params_ineq: Any = None
    ) -> tuple[Any, Any, Any]:
        """The arguments ``(params_obj, params_eq, params_ineq)`` of the BoxOSQP form.

        Args:
          params_obj: ``(Q, c)`` (or ``(params_Q, c)`` with ``matvec_Q``).
          params_eq: ``(A, b)`` or ``None``.
          params_ineq: ``(G, h)`` or ``None``.

        Returns:
          ``params_obj``, the stacked ``[A; G]`` (or a dict ``{"eq": A, "ineq": G}`` with
          matvecs) and the bounds ``(l, u)``.
        """
        eq = _pair("OSQP", "params_eq", params_eq, "(A, b)")
        ineq = _pair("OSQP", "params_ineq", params_ineq, "(G, h)")
        if eq is None and ineq is None:
            raise ValueError(
                "OSQP: at least one of `params_eq = (A, b)` and `params_ineq = (G, h)` must be "
                "given (an unconstrained QP is a linear system: use "
                "`jaxopt_papers.linear.cg`)."
            )
        c = params_obj[1]
        n = jnp.shape(c)[0] if jnp.ndim(c) == 1 else None
        blocks = {}
        for key, name, pair, fn in (("eq", "params_eq", eq, self.matvec_A),
                                    ("ineq", "params_ineq", ineq, self.matvec_G)):  # fmt: skip
            if pair is None:
                continue
            M, rhs = pair
            if jnp.ndim(rhs) != 1:
                raise ValueError(
                    f"OSQP: the right-hand side of `{name}` must be a 1-D array, got shape "
                    f"{jnp.shape(rhs)}."
                )
            if fn is None and (jnp.ndim(M) != 2 or jnp.shape(M) != (jnp.shape(rhs)[0], n)):
                raise ValueError(
                    f"OSQP: the matrix of `{name}` must have shape ({jnp.shape(rhs)[0]}, {n}) "
                    f"(rows of its right-hand side, size of `c`), got {jnp.shape(M)}."
                )
            blocks[key] = (M, rhs)
        dtype = jnp.result_type(*jax.tree.leaves(c))
        lower, upper = {}, {}
        if "eq" in blocks:
            b = jnp.asarray(blocks["eq"][1], dtype)
            lower["eq"], upper["eq"] = b, b
        if "ineq" in blocks:
            h = jnp.asarray(blocks["ineq"][1], dtype)
            lower["ineq"], upper["ineq"] = jnp.full_like(h, -jnp.inf), h
        mats = {k: v[0] for k, v in blocks.items()}
        if self._A_is_matrix():
            keys = [k for k in ("eq", "ineq") if k in blocks]
            stack = [jnp.asarray(mats[k]) for k in keys]
            mats = stack[0] if len(stack) == 1 else jnp.concatenate(stack)
            lower = jnp.concatenate([lower[k] for k in keys])
            upper = jnp.concatenate([upper[k] for k in keys])
        return params_obj, mats, (lower, upper)

    def _split(self, tree: Any, params_eq: Any, params_ineq: Any) -> tuple[Any, Any]:
        """A BoxOSQP row vector (or dict) split into its equality and inequality parts."""
        if not self._A_is_matrix():
            return tree.get("eq"), tree.get("ineq")
        p = 0 if params_eq is None else jnp.shape(params_eq[1])[0]
        eq = None if params_eq is None else tree[:p]
        ineq = None if params_ineq is None else tree[p:]
        return eq, ineq

    def run(
        self,
        init_params: KKTSolution | None = None,
        params_obj: Any = None,
        params_eq: Any = None,
        params_ineq: Any = None,
    ) -> Solution:
        """Solve the QP; differentiable in ``params_obj``, ``params_eq`` and ``params_ineq``.

        Args:
          init_params: a :class:`~jaxopt_papers.qp.KKTSolution` ``(x, ν, λ)`` to warm start
            from, or ``None`` (``x = 0``, multipliers 0).
          params_obj: ``(Q, c)``, or ``(params_Q, c)`` with ``matvec_Q``.
          params_eq: ``(A, b)`` for ``Ax = b``, or ``None``.
          params_ineq: ``(G, h)`` for ``Gx ≤ h``, or ``None``.

        Returns:
          A :class:`~jaxopt_papers.Solution` whose ``params`` is the
          :class:`~jaxopt_papers.qp.KKTSolution` ``(x, ν, λ)``.
        """
        if params_obj is None:
            raise TypeError("OSQP.run: `params_obj` is required.")
        params_obj = tuple(params_obj) if isinstance(params_obj, list) else params_obj
        box_obj, box_eq, box_ineq = self.to_box(params_obj, params_eq, params_ineq)
        box_init = None
        if init_params is not None:
            if not isinstance(init_params, KKTSolution):
                raise TypeError(
                    "OSQP: `init_params` must be None or a KKTSolution(x, dual_eq, dual_ineq), "
                    f"got {type(init_params).__name__}."
                )
            x = init_params.primal
            z = self._apply_A(box_eq, x)
            parts = {"eq": init_params.dual_eq, "ineq": init_params.dual_ineq}
            if self._A_is_matrix():
                y = jnp.concatenate([parts[k] for k in ("eq", "ineq") if parts[k] is not None])
            else:
                y = {k: v for k, v in parts.items() if v is not None}
            mu = jax.tree.map(lambda v: jnp.maximum(v, 0.0), y)
            phi = jax.tree.map(lambda v: jnp.maximum(-v, 0.0), y)
            box_init = KKTSolution((x, z), y, (mu, phi))
        sol = BoxOSQP.run(self, box_init, box_obj, box_eq, box_ineq)
        kkt = sol.value
        dual_eq, _ = self._split(kkt.dual_eq, params_eq, params_ineq)
        _, dual_ineq = self._split(kkt.dual_ineq[0], params_eq, params_ineq)
        value = KKTSolution(kkt.primal[0], dual_eq, dual_ineq)
        return dataclasses.replace(sol, value=value)
