"""Sorting Krylov Recycling (SKR): a sequence of related linear systems, sorted and recycled.

Wang, Hao, Wang, Geng, Wang, Li, Wu, "Accelerating Data Generation for Neural Operators via Krylov
Subspace Recycling", ICLR 2024, arXiv 2401.09516 (official code: wanghong1700/NO-DataGen-SKR,
PETSc's HPDDM GCRO-DR with restart 40 and recycle 20).

Given systems ``A⁽ⁱ⁾ x⁽ⁱ⁾ = b⁽ⁱ⁾`` generated from parameters ``p⁽ⁱ⁾`` (e.g. a PDE coefficient):

1. **sort** (the paper's Algorithm 1): a greedy nearest-neighbour chain. Start at system 0; repeat
   ``N − 1`` times: go to the unvisited ``j`` minimising ``‖p⁽ᶜᵘʳʳᵉⁿᵗ⁾ − p⁽ʲ⁾‖₂`` (Frobenius norm of
   the parameters). ``O(N²p)`` work, ``O(Np)`` memory, in a ``lax.fori_loop``;
2. **recycle** (Algorithm 2): solve in that order with :func:`~jaxopt_papers.linear.gcrodr`,
   passing each solve's recycled subspace ``U_k`` to the next (a ``lax.scan`` carry of fixed
   shape when the operators are stacked arrays).

Results come back in the caller's order, with the order used.

Differences from the reference code: the paper's code computes an FFT/PCA "address" of each
parameter field but its greedy loop uses the raw Frobenius distance, as here; the paper splits
``N > 10⁴`` into groups by coordinates before sorting, which is not done here (pass
``sort=False`` and your own order for very long sequences). PETSc runs one KSP object through the
loop; here the recycle state is an explicit value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers.implicit.solver import RESULTS
from jaxopt_papers.linear import krylov

__all__ = ["SequenceResult", "greedy_order", "solve_sequence"]

_METHODS = ("gcrodr", "gmres", "cg")


class SequenceResult(eqx.Module):
    """Solutions of a sequence of systems, in the caller's order.

    Attributes:
      x: ``(N, n)`` solutions.
      num_matvecs, residual, result: per system (``(N,)``): products with ``A⁽ⁱ⁾``, final
        relative residual ``‖b − Ax‖/‖b‖``, and :class:`~jaxopt_papers.implicit.RESULTS` code.
      order: ``(N,)`` the order in which the systems were solved.
    """

    x: jax.Array
    num_matvecs: jax.Array
    residual: jax.Array
    result: RESULTS
    order: jax.Array


@jax.jit
def greedy_order(params: jax.Array, start: int = 0) -> jax.Array:
    """SKR's greedy nearest-neighbour chain through the rows of ``params`` ``(N, p)``."""
    params = jnp.asarray(params)
    params = params.reshape(params.shape[0], -1)
    num = params.shape[0]
    sq = jnp.sum(params * params, axis=1)

    def body(i, carry):
        order, visited = carry
        current = order[i - 1]
        # ‖p_c − p_j‖² = ‖p_c‖² + ‖p_j‖² − 2⟨p_c, p_j⟩, one row of distances at a time.
        dist = sq[current] + sq - 2.0 * (params @ params[current])
        dist = jnp.where(visited, jnp.inf, dist)
        nxt = jnp.argmin(dist).astype(order.dtype)
        return order.at[i].set(nxt), visited.at[nxt].set(True)

    order = jnp.zeros(num, jnp.int32).at[0].set(start)
    visited = jnp.zeros(num, bool).at[start].set(True)
    order, _ = jax.lax.fori_loop(1, num, body, (order, visited))
    return order


def _index(tree: Any, i: Any) -> Any:
    return jax.tree.map(lambda leaf: leaf[i], tree)


def _solve_one(method, A, b, state, tol, restart, recycle, max_steps, preconditioner):
    precond = None if preconditioner is None else preconditioner(A)
    if method == "gcrodr":
        res = krylov.gcrodr(A, b, tol=tol, restart=restart, recycle=recycle, max_steps=max_steps,
                            state=state, preconditioner=precond, throw=False)  # fmt: skip
        return res, res.state
    if method == "gmres":
        res = krylov.gmres(A, b, tol=tol, restart=restart, max_steps=max_steps,
                           preconditioner=precond, throw=False)  # fmt: skip
    else:
        res = krylov.cg(A, b, tol=tol, max_steps=max_steps, preconditioner=precond, throw=False)
    return res, state


def solve_sequence(
    operators: Any,
    rhs: Any,
    params: Any = None,
    *,
    method: str = "gcrodr",
    sort: bool = True,
    tol: float = 1e-8,
    restart: int = 40,
    recycle: int = 20,
    max_steps: int | None = None,
    preconditioner: Callable[[Any], Callable] | None = None,
    throw: bool = True,
) -> SequenceResult:
    """Solve ``A⁽ⁱ⁾ x⁽ⁱ⁾ = b⁽ⁱ⁾`` for ``i < N``, sorted by ``params`` and recycled (SKR).

    Args:
      operators: the ``N`` matrices, either stacked (a :class:`~jaxopt_papers.linear.DiaMatrix`
        whose ``data`` has a leading axis ``N``, an ``(N, n, n)`` array, or any pytree of arrays
        with a leading axis ``N``: solved in one compiled ``lax.scan``), or a Python sequence of
        anything :func:`~jaxopt_papers.linear.as_operator` accepts (dense, BCOO/BCSR, lineax
        operators, ``DiaMatrix``, callables ``x ↦ Ax``: solved one by one, the recycle state
        passed along).
      rhs: ``(N, n)`` right-hand sides.
      params: ``(N, ...)`` parameters the systems were generated from, for sorting (``None``:
        the flattened right-hand sides when ``sort=True``).
      method: ``"gcrodr"`` (recycling), or ``"gmres"``/``"cg"`` (each system from scratch).
      sort: solve in SKR's greedy nearest-neighbour order (else the given order).
      tol, restart, recycle, max_steps: of the Krylov solver (relative residual ``‖b − Ax‖/‖b‖``).
      preconditioner: a factory ``A ↦ (r ↦ M⁻¹r)`` applied to each system, e.g.
        :func:`~jaxopt_papers.linear.jacobi`.
      throw: raise if any system fails (``False``: per-system result codes).
    """
    owner = "solve_sequence"
    V.check_choice(owner, "method", method, _METHODS)
    V.check_real(owner, "tol", tol, low=0.0, low_open=True)
    V.check_int(owner, "restart", restart, low=1)
    V.check_int(owner, "recycle", recycle, low=0)
    if method == "gcrodr" and recycle >= restart:
        raise ValueError(
            f"{owner}: `recycle` must be smaller than `restart`, got recycle={recycle} and "
            f"restart={restart}."
        )
    rhs = jnp.asarray(rhs)
    if rhs.ndim != 2:
        raise ValueError(f"{owner}: `rhs` must have shape (N, n), got {rhs.shape}.")
    num = rhs.shape[0]
    listed = isinstance(operators, (list, tuple))
    if listed and len(operators) != num:
        raise ValueError(
            f"{owner}: got {len(operators)} operators but {num} right-hand sides (`rhs` rows)."
        )
    if not listed:
        lead = {leaf.shape[0] if leaf.ndim else None for leaf in jax.tree.leaves(operators)}
        if lead != {num}:
            raise ValueError(
                f"{owner}: stacked `operators` must have a leading axis of size {num} (one per "
                f"row of `rhs`) on every array, got leading sizes {sorted(map(str, lead))}. "
                "Pass a list for operators that cannot be stacked."
            )
    if sort:
        p = rhs if params is None else jnp.asarray(params)
        if p.shape[0] != num:
            raise ValueError(f"{owner}: `params` must have {num} rows, got shape {p.shape}.")
        order = greedy_order(p)
    else:
        order = jnp.arange(num, dtype=jnp.int32)

    # tol as an array: a new value must not recompile the scan.
    opts = (method, jnp.asarray(tol, rhs.dtype), restart, recycle, max_steps, preconditioner)
    if listed:
        results = []
        state = None
        for i in np.asarray(order):
            res, state = _solve_one(method, operators[int(i)], rhs[int(i)], state,
                                    *opts[1:])  # fmt: skip
            results.append(res)
        solved = jax.tree.map(lambda *xs: jnp.stack(xs), *[_summary(r) for r in results])
    else:
        solved = _scan_sequence(operators, rhs, order, opts)
    inverse = jnp.argsort(order)
    x, num_matvecs, residual, result = _index(solved, inverse)
    if throw:
        x = V.error_if(
            x,
            jnp.any(result != RESULTS.successful),
            f"{owner}: some systems did not reach `tol`; pass throw=False for the per-system "
            "result codes, raise `max_steps`, loosen `tol` or add a preconditioner.",
        )
    return SequenceResult(x, num_matvecs, residual, result, order)


def _summary(res: Any) -> tuple:
    return res.x, res.num_matvecs, res.residual, res.result


@eqx.filter_jit
def _scan_sequence(operators, rhs, order, opts):
    method = opts[0]
    res0, state0 = _solve_one(method, _index(operators, order[0]), rhs[order[0]], None, *opts[1:])

    def body(state, i):
        res, state = _solve_one(method, _index(operators, i), rhs[i], state, *opts[1:])
        return state, _summary(res)

    _, rest = jax.lax.scan(body, state0, order[1:])
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), _summary(res0), rest)
