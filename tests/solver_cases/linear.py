"""Linear-solver cases: CG, GMRES, GCRO-DR, SOR and the sequence solver on shifted Poisson systems.

The scalar ``value`` shifts the diagonal of a 2-D Poisson matrix (``n = 36``): ``A + value·I``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxopt_papers.linear import CG, GCRODR, GMRES, SOR, DiaMatrix, SolveSequence, poisson
from tests.solver_cases._case import Case, _to_float32

_SEQ = poisson(jax.random.PRNGKey(0), 3, s=8)
_A, _B = _SEQ.operators[0], _SEQ.rhs[0]
_DIAG = _A.offsets.index(0)


def _shifted(value, dtype=jnp.float64):
    data = _A.data.astype(dtype)
    return DiaMatrix(data.at[_DIAG].add(jnp.asarray(value, dtype)), _A.offsets)


def _case(name, solver, tol32=1e-5, manual=True):
    def run(solver, v):
        return solver.run(_shifted(v), _B)

    def run32(solver, v):
        return solver.run(_shifted(v, jnp.float32), _to_float32(_B))

    def manual_steps(solver, v):
        A = _shifted(v)
        state = solver.init(A, _B)
        while not bool(state.done) and int(state.num_matvecs) < 1000:
            state = solver.step(state, A, _B)
        return state.x, state.num_steps

    return Case(
        name, solver, run, (5.0, 20.0, 60.0), run32=run32,
        solver32=lambda s: dataclasses.replace(s, tol=tol32),
        vmap_solver=lambda s: dataclasses.replace(s, throw=False),
        manual=manual_steps if manual else None, unrolled=None, fd_step=1e-4,
    )  # fmt: skip


def _sequence_case():
    def operators(v, dtype=jnp.float64):
        data = _SEQ.operators.data.astype(dtype)
        shift = jnp.asarray(v, dtype) * jnp.array([1.0, 1.5, 2.0], dtype)
        return DiaMatrix(data.at[:, _DIAG].add(shift[:, None]), _A.offsets)

    def run(solver, v):
        return solver.run(operators(v), _SEQ.rhs, _SEQ.params)

    def run32(solver, v):
        return solver.run(operators(v, jnp.float32), _to_float32(_SEQ.rhs), _SEQ.params)

    def short(solver):
        return dataclasses.replace(solver, max_steps=2)

    return Case(
        "solve-sequence-gcrodr", SolveSequence(tol=1e-11, restart=12, recycle=4), run,
        (5.0, 20.0, 60.0), run32=run32, solver32=lambda s: dataclasses.replace(s, tol=1e-5),
        vmap_solver=lambda s: dataclasses.replace(s, throw=False), short=short, unrolled=None,
        fd_step=1e-4,
    )  # fmt: skip


CASES = [
    _case("cg", CG(tol=1e-11)),
    _case("gmres", GMRES(restart=10, tol=1e-11)),
    _case("gcrodr", GCRODR(restart=12, recycle=4, tol=1e-11)),
    _case("sor", SOR(omega=1.3, tol=1e-11, max_steps=2000), manual=False),
    _sequence_case(),
]
