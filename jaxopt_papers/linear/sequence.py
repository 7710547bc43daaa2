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

:class:`SolveSequence` is the solver (``init``/``step``/``run``; a step solves the next system
of the order) and :func:`solve_sequence` its thin wrapper. ``run`` returns the library's
:class:`~jaxopt_papers.Solution`: ``value`` (alias ``x``) the ``(N, n)`` solutions in the caller's
order; ``result`` the first failure in the solve order (``successful`` when every system met
``tol``); ``stats`` with ``num_steps`` (the Krylov steps of all systems), per-system
``num_matvecs`` and ``error`` (alias ``residual``: ``‖b − Ax‖/‖b‖``); ``state`` the last recycle
state (GCRO-DR); ``aux`` with ``order`` (the solve order) and ``results`` (per-system codes), also
read as ``sol.order`` and ``sol.results``. Every solve is differentiable with respect to the
operators' arrays and the right-hand sides (see :mod:`~jaxopt_papers.linear.krylov`); the order
and the recycle states are not differentiated.

Differences from the reference code: the paper's code computes an FFT/PCA "address" of each
parameter field but its greedy loop uses the raw Frobenius distance, as here; the paper splits
``N > 10⁴`` into groups by coordinates before sorting, which is not done here (pass
``sort=False`` and your own order for very long sequences). PETSc runs one KSP object through the
loop; here the recycle state is an explicit value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, Solution, finish
from jaxopt_papers.linear import krylov
from jaxopt_papers.linear._operators import as_operator, stack_operators

__all__ = ["SequenceAux", "SequenceState", "SolveSequence", "greedy_order", "solve_sequence"]

_METHODS = ("gcrodr", "gmres", "cg")


@jax.jit
def greedy_order(params: jax.Array, start: int = 0) -> jax.Array:
    """SKR's greedy nearest-neighbour chain through the rows of ``params`` ``(N, p)``.

    Non-finite distances (NaN or inf in ``params``) rank last, so the result is always a
    permutation.

    Args:
      params: ``(N, ...)`` one row per system.
      start: the first system.

    Returns:
      ``(N,)`` int32, the order.

    Example:
      >>> import jax.numpy as jnp
      >>> greedy_order(jnp.array([[0.0], [5.0], [1.0]])).tolist()
      [0, 2, 1]
    """
    params = jnp.asarray(params)
    params = params.reshape(params.shape[0], -1)
    num = params.shape[0]
    sq = jnp.sum(params * params, axis=1)
    big = jnp.finfo(jnp.result_type(params.dtype, jnp.float32)).max

    def body(i, carry):
        order, visited = carry
        current = order[i - 1]
        # ‖p_c − p_j‖² = ‖p_c‖² + ‖p_j‖² − 2⟨p_c, p_j⟩, one row of distances at a time.
        dist = sq[current] + sq - 2.0 * (params @ params[current])
        dist = jnp.where(jnp.isfinite(dist), dist, big)
        dist = jnp.where(visited, jnp.inf, dist)
        nxt = jnp.argmin(dist).astype(order.dtype)
        return order.at[i].set(nxt), visited.at[nxt].set(True)

    order = jnp.zeros(num, jnp.int32).at[0].set(start)
    visited = jnp.zeros(num, bool).at[start].set(True)
    order, _ = jax.lax.fori_loop(1, num, body, (order, visited))
    return order


def _index(tree: Any, i: Any) -> Any:
    return jax.tree.map(lambda leaf: leaf[i], tree)


class SequenceAux(eqx.Module):
    """Extra outputs of :class:`SolveSequence` (``Solution.aux``; ``sol.order``, ``sol.results``).

    Attributes:
      order: ``(N,)`` the solve order.
      results: ``(N,)`` each system's :class:`~jaxopt_papers.RESULTS` code (caller's order).
    """

    order: jax.Array
    results: RESULTS


class SequenceState(eqx.Module):
    """The state of :class:`SolveSequence` between systems.

    Attributes:
      x: ``(N, n)`` the solutions, in the caller's order (zero for the systems not solved yet).
      num_matvecs: ``(N,)`` products with each ``A⁽ⁱ⁾``.
      error: ``(N,)`` each system's relative residual.
      results: ``(N,)`` each system's :class:`~jaxopt_papers.RESULTS` code (successful for the
        systems not solved yet).
      order: ``(N,)`` the solve order.
      num_steps: how many systems are solved.
      recycle: the recycle state passed to the next system (GCRO-DR), else ``None``.
      krylov_steps: the Krylov steps done so far.
    """

    x: jax.Array
    num_matvecs: jax.Array
    error: jax.Array
    results: RESULTS
    order: jax.Array
    num_steps: jax.Array
    recycle: Any
    krylov_steps: jax.Array


def _first_failure(codes: RESULTS) -> RESULTS:
    bad = codes._value != 0
    first = _index(codes, jnp.argmax(bad))
    return RESULTS.where(jnp.any(bad), first, RESULTS.successful)


class SolveSequence(eqx.Module):
    """Solve ``A⁽ⁱ⁾ x⁽ⁱ⁾ = b⁽ⁱ⁾`` for ``i < N``, sorted by ``params`` and recycled (SKR).

    ``run(operators, rhs, params=None)``: ``operators`` either stacked (a
    :class:`~jaxopt_papers.linear.DiaMatrix` whose ``data`` has a leading axis ``N``, an
    ``(N, n, n)`` array, or any pytree of arrays with a leading axis ``N``) or a Python sequence
    of anything :func:`~jaxopt_papers.linear.as_operator` accepts; a list that can be stacked
    (e.g. ``DiaMatrix`` with the same offsets) is stacked. Stacked sequences are solved in one
    compiled ``lax.scan``, the recycle state carried along; other lists one by one. ``rhs``:
    ``(N, n)``; ``params``: ``(N, ...)`` what the systems were generated from, for sorting
    (``None``: the flattened right-hand sides). One ``step`` solves the next system of the order.

    Wang et al., "Accelerating PDE Data Generation via Differential Operator Action in
    Solution Space" (SKR), ICLR 2024: sort the systems so that neighbours are similar (greedy
    nearest neighbour on ``params``), then solve them in that order by GCRO-DR, each system
    starting from the subspace recycled from the previous one. Defaults follow the paper's
    setting (``restart=40``, ``recycle=20``).

    Args:
      method: ``"gcrodr"`` (recycling), or ``"gmres"``/``"cg"`` (each system from scratch).
      sort: solve in SKR's greedy nearest-neighbour order (else the given order).
      tol: relative residual target of each system (``None``: 1e-8 in float64, 1e-5 in
        float32).
      restart: the Krylov subspace size of GMRES/GCRO-DR.
      recycle: the recycled subspace size of GCRO-DR (``< restart``).
      max_steps: cap on products with each ``A⁽ⁱ⁾`` (``None``: ``min(10n, 10000)``).
      preconditioner: a factory ``A ↦ (r ↦ M⁻¹r)`` applied to each system, e.g.
        :func:`~jaxopt_papers.linear.jacobi`.
      throw: raise if any system fails (``False``: the codes in ``result``/``results``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.linear import SolveSequence, darcy
      >>> seq = darcy(jax.random.PRNGKey(0), 3, s=6)  # 3 systems of size 16
      >>> sol = SolveSequence(restart=8, recycle=3).run(seq.operators, seq.rhs, seq.params)
      >>> sol.x.shape, sorted(sol.order.tolist())
      ((3, 16), [0, 1, 2])
      >>> dense = jnp.stack([jnp.linalg.solve(seq.operators[i].todense(), seq.rhs[i])
      ...                    for i in range(3)])
      >>> bool(jnp.allclose(sol.x, dense, rtol=1e-5, atol=1e-8))
      True
    """

    method: str = eqx.field(static=True, default="gcrodr")
    sort: bool = eqx.field(static=True, default=True)
    tol: Any = None
    restart: int = eqx.field(static=True, default=40)
    recycle: int = eqx.field(static=True, default=20)
    max_steps: int | None = None
    preconditioner: Callable[[Any], Callable] | None = eqx.field(static=True, default=None)
    throw: bool = eqx.field(static=True, default=True)

    owner: ClassVar[str] = "solve_sequence"
    messages: ClassVar[dict[str, str]] = {
        "max_steps_reached": (
            "solve_sequence: some systems did not reach `tol` within `max_steps` products; pass "
            "throw=False for the per-system codes (`.results`), raise `max_steps`, loosen `tol` "
            "or pass a `preconditioner`."
        ),
        "stagnation": (
            "solve_sequence: the Krylov solver stagnated on some systems (a restart cycle did "
            "not reduce the true residual): increase `restart` or `recycle`, pass a "
            "`preconditioner`, or loosen `tol` (throw=False gives the per-system `.results`)."
        ),
        "breakdown": (
            "solve_sequence: the Krylov solver broke down on some systems (a singular `A⁽ⁱ⁾`); "
            "throw=False gives the per-system `.results`."
        ),
        "indefinite": (
            "solve_sequence: method='cg' met a direction of non-positive curvature: some "
            "operators are not symmetric positive definite; use method='gmres' or 'gcrodr'."
        ),
        "nonfinite": (
            "solve_sequence: non-finite values in some systems: check `operators` and `rhs` "
            "for NaN/inf."
        ),
        "invalid_input": (
            "solve_sequence: `params` (the sort key) contains NaN or inf, so the systems cannot "
            "be sorted; no system was solved in sorted order. Pass finite `params` or "
            "sort=False."
        ),
    }

    # ---- set-up

    def _check(self) -> None:
        owner = self.owner
        V.check_choice(owner, "method", self.method, _METHODS)
        V.check_int(owner, "restart", self.restart, low=1)
        V.check_int(owner, "recycle", self.recycle, low=0)
        if self.method == "gcrodr" and not 0 < self.recycle < self.restart:
            raise ValueError(
                f"{owner}: `recycle` must satisfy 0 < recycle < restart for method='gcrodr', "
                f"got recycle={self.recycle} and restart={self.restart}."
            )
        if self.preconditioner is not None and not callable(self.preconditioner):
            raise TypeError(
                f"{owner}: `preconditioner` must be a factory A -> (r -> M^-1 r) or None, got "
                f"{type(self.preconditioner).__name__}."
            )

    def _krylov(self, n: int, dtype: Any) -> krylov._Krylov:
        tol = krylov.default_tol(dtype) if self.tol is None else self.tol
        V.check_real(self.owner, "tol", tol, low=0.0, low_open=True)
        max_steps = min(10 * n, 10_000) if self.max_steps is None else self.max_steps
        V.check_int(self.owner, "max_steps", max_steps, low=1)
        real = jnp.finfo(dtype).dtype
        kw = dict(tol=jnp.asarray(tol, real), max_steps=max_steps, throw=False)
        if self.method == "gcrodr":
            solver = krylov.GCRODR(self.restart, self.recycle, **kw)
            solver._m(n)
            return solver
        if self.method == "gmres":
            return krylov.GMRES(self.restart, **kw)
        return krylov.CG(**kw)

    def _setup(self, operators: Any, rhs: Any, params: Any) -> tuple:
        owner = self.owner
        self._check()
        rhs = jnp.asarray(rhs)
        if rhs.ndim != 2:
            raise ValueError(f"{owner}: `rhs` must have shape (N, n), got {rhs.shape}.")
        if not jnp.issubdtype(rhs.dtype, jnp.inexact):
            rhs = rhs.astype(float)
        num, n = rhs.shape
        if num == 0:
            raise ValueError(
                f"{owner}: `rhs` must hold at least one system, got shape {rhs.shape}."
            )
        listed = isinstance(operators, (list, tuple))
        if listed:
            if len(operators) != num:
                raise ValueError(
                    f"{owner}: got {len(operators)} operators but {num} right-hand sides "
                    "(`rhs` rows)."
                )
            ops = [as_operator(A, n, owner=owner) for A in operators]
            for i, op in enumerate(ops):
                if op.n != n:
                    raise ValueError(
                        f"{owner}: every matrix of `operators` must be {n}x{n} (n from `rhs` "
                        f"{rhs.shape}), got a {op.n}x{op.n} one at position {i}."
                    )
            stacked = stack_operators([op.source for op in ops])
            operators = ops if stacked is None else stacked
            listed = stacked is None
        else:
            lead = {leaf.shape[0] if leaf.ndim else None for leaf in jax.tree.leaves(operators)}
            if lead != {num}:
                raise ValueError(
                    f"{owner}: stacked `operators` must have a leading axis of size {num} (one "
                    f"per row of `rhs`) on every array, got leading sizes "
                    f"{sorted(map(str, lead))}. Pass a list for operators that cannot be stacked."
                )
        valid = jnp.asarray(True)
        if self.sort:
            key = rhs if params is None else jnp.asarray(params)
            if key.ndim == 0 or key.shape[0] != num:
                raise ValueError(f"{owner}: `params` must have {num} rows, got shape {key.shape}.")
            key = jax.lax.stop_gradient(key)
            if params is not None:
                valid = jnp.all(jnp.isfinite(key))
                if not isinstance(valid, jax.core.Tracer) and not bool(valid):
                    raise ValueError(
                        f"{owner}: `params` (the sort key) must be finite, got "
                        f"{int(jnp.sum(~jnp.isfinite(key)))} NaN/inf entries. Pass finite "
                        "`params` or sort=False."
                    )
            order = jnp.where(valid, greedy_order(key), jnp.arange(num, dtype=jnp.int32))
        else:
            order = jnp.arange(num, dtype=jnp.int32)
        return self._krylov(n, rhs.dtype), operators, listed, rhs, order, valid

    # ---- one system

    def _solve_one(self, ks: krylov._Krylov, A: Any, b: jax.Array, rec: Any) -> tuple:
        op = as_operator(A, b.shape[0], owner=self.owner)
        if self.preconditioner is not None:
            ks = dataclasses.replace(ks, preconditioner=self.preconditioner(op.source))
        return ks._solve(op, b, None, rec)

    def _empty_recycle(self, n: int, dtype: Any) -> Any:
        return (
            krylov.RecycleState.empty(n, self.recycle, dtype) if self.method == "gcrodr" else None
        )

    # ---- run

    def run(self, operators: Any, rhs: Any, params: Any = None) -> Solution:
        """Solve the sequence.

        Args:
          operators: the ``N`` matrices, stacked or as a list.
          rhs: ``(N, n)`` right-hand sides.
          params: ``(N, ...)`` sort key (``None``: the right-hand sides).

        Returns:
          The :class:`~jaxopt_papers.Solution`: ``.x`` ``(N, n)``, ``.num_matvecs`` and
          ``.residual`` per system, ``.order`` and ``.results`` (a :class:`SequenceAux`), the
          overall ``.result`` (the first failure in solve order), and the final recycle state.
        """
        ks, operators, listed, rhs, order, valid = self._setup(operators, rhs, params)
        static = dataclasses.replace(self, tol=None, max_steps=None)  # numbers travel in `ks`
        if listed:
            outs, rec = [], self._empty_recycle(rhs.shape[1], rhs.dtype)
            for i in np.asarray(order):
                x, code, stats, new = _compiled_one(static, ks, operators[int(i)], rhs[int(i)], rec)
                rec = rec if new is None else new
                outs.append((x, code, stats))
            solved = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
        else:
            solved, rec = _scan_sequence(static, ks, operators, rhs, order)
        x, codes, stats = _index(solved, jnp.argsort(order))
        codes = RESULTS.where(valid, codes, RESULTS.invalid_input)
        result = RESULTS.where(valid, _first_failure(_index(codes, order)), RESULTS.invalid_input)
        out = {
            "num_steps": jnp.sum(stats["num_steps"]),
            "num_matvecs": stats["num_matvecs"],
            "error": stats["error"],
        }
        return finish(x, result, out, state=rec, aux=SequenceAux(order, codes),
                      throw=self.throw, messages=self.messages)  # fmt: skip

    def init(self, operators: Any, rhs: Any, params: Any = None) -> SequenceState:
        """The state before the first system.

        Args:
          operators: the ``N`` matrices, stacked or as a list (as :meth:`run`).
          rhs: ``(N, n)`` right-hand sides.
          params: ``(N, ...)`` sort key (``None``: the right-hand sides).

        Returns:
          The :class:`SequenceState` (the order computed, nothing solved).
        """
        _, _, _, rhs, order, _ = self._setup(operators, rhs, params)
        num, n = rhs.shape
        zero = jnp.zeros((), jnp.int32)
        codes = jax.tree.map(lambda v: jnp.broadcast_to(v, (num,)), RESULTS.successful)
        return SequenceState(jnp.zeros_like(rhs), jnp.zeros(num, jnp.int32),
                             jnp.zeros(num, rhs.dtype), codes, order, zero,
                             self._empty_recycle(n, rhs.dtype), zero)  # fmt: skip

    def step(self, state: SequenceState, operators: Any, rhs: Any) -> SequenceState:
        """Solve the next system of ``state.order``.

        Args:
          state: the current :class:`SequenceState`.
          operators: the ``N`` matrices (as :meth:`run`).
          rhs: ``(N, n)`` right-hand sides.

        Returns:
          The next :class:`SequenceState` (one more system solved, its recycle state kept).
        """
        ks, operators, listed, rhs, _, _ = self._setup(operators, rhs, None)
        i = state.order[state.num_steps]
        A = operators[int(i)] if listed else _index(operators, i)
        static = dataclasses.replace(self, tol=None, max_steps=None)
        x, code, stats, new = _compiled_one(static, ks, A, rhs[i], state.recycle)
        codes = jax.tree.map(lambda a, c: a.at[i].set(c), state.results, code)
        return SequenceState(
            state.x.at[i].set(x), state.num_matvecs.at[i].set(stats["num_matvecs"]),
            state.error.at[i].set(stats["error"]), codes, state.order, state.num_steps + 1,
            state.recycle if new is None else new, state.krylov_steps + stats["num_steps"],
        )  # fmt: skip


@eqx.filter_jit
def _compiled_one(solver: SolveSequence, ks: Any, A: Any, b: jax.Array, rec: Any) -> tuple:
    return solver._solve_one(ks, A, b, rec)


@eqx.filter_jit
def _scan_sequence(solver: SolveSequence, ks: Any, operators: Any, rhs: jax.Array, order) -> tuple:
    rec0 = solver._empty_recycle(rhs.shape[1], rhs.dtype)

    def body(rec, i):
        x, code, stats, new = solver._solve_one(ks, _index(operators, i), rhs[i], rec)
        return (rec if new is None else new), (x, code, stats)

    rec, solved = jax.lax.scan(body, rec0, order)
    return solved, rec


def solve_sequence(
    operators: Any,
    rhs: Any,
    params: Any = None,
    *,
    method: str = "gcrodr",
    sort: bool = True,
    tol: float | None = None,
    restart: int = 40,
    recycle: int = 20,
    max_steps: int | None = None,
    preconditioner: Callable[[Any], Callable] | None = None,
    throw: bool = True,
) -> Solution:
    """Solve ``A⁽ⁱ⁾ x⁽ⁱ⁾ = b⁽ⁱ⁾`` for ``i < N``, sorted by ``params`` and recycled (SKR).

    SKR (Wang et al., ICLR 2024): greedy nearest-neighbour sorting on ``params``, then
    GCRO-DR with the recycled subspace carried from one system to the next; see
    :class:`SolveSequence`.

    Args:
      operators: the ``N`` matrices: stacked (a :class:`~jaxopt_papers.linear.DiaMatrix` with a
        leading axis ``N``, an ``(N, n, n)`` array) or a list.
      rhs: ``(N, n)`` right-hand sides.
      params: ``(N, ...)`` what the systems were generated from, the sort key (``None``: the
        right-hand sides).
      method: ``"gcrodr"`` (recycling), or ``"gmres"``/``"cg"`` (each system from scratch).
      sort: solve in SKR's greedy order (else the given order).
      tol: relative residual target of each system (``None``: 1e-8 in float64, 1e-5 in
        float32).
      restart: the Krylov subspace size (the paper's 40).
      recycle: the recycled subspace size (the paper's 20).
      max_steps: cap on products with each ``A⁽ⁱ⁾`` (``None``: ``min(10n, 10000)``).
      preconditioner: a factory ``A ↦ (r ↦ M⁻¹r)``, e.g. :func:`~jaxopt_papers.linear.jacobi`.
      throw: raise if any system fails (``False``: the codes in ``result``/``results``).

    Returns:
      The :class:`~jaxopt_papers.Solution`: ``.x`` ``(N, n)``, ``.num_matvecs`` and
      ``.residual`` per system, ``.order``, ``.results`` and the overall ``.result``.

    Example:
      >>> import jax
      >>> import jaxopt_papers as jop
      >>> from jaxopt_papers.linear import darcy, solve_sequence
      >>> seq = darcy(jax.random.PRNGKey(0), 3, s=6)
      >>> sol = solve_sequence(seq.operators, seq.rhs, seq.params, restart=8, recycle=3)
      >>> bool(sol.residual.max() <= 1e-5)  # the float32 default tol (float64: 1e-8)
      True
      >>> sol.num_matvecs.shape, bool((sol.results == jop.RESULTS.successful).all())
      ((3,), True)
    """
    solver = SolveSequence(method, sort, tol, restart, recycle, max_steps, preconditioner, throw)
    return solver.run(operators, rhs, params)
