"""Bad input to the Krylov, SOR and sequence solvers of ``jaxopt_papers.linear``."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from jaxopt_papers import linear as L
from tests.reliability._cases import Case, Code, Raises, params, run_case, runtime

A = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
B = jnp.array([1.0, 2.0, 3.0])
INDEFINITE = jnp.diag(jnp.array([1.0, -1.0, 2.0]))
SINGULAR = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
AS = jnp.stack([A, 2.0 * A])
BS = jnp.stack([B, B])
KEYS = jnp.array([0.0, 1.0])
SEQ = dict(restart=3, recycle=1)


def cg(A, b):
    return L.cg(A, b, throw=False)


def cg_throw(A, b):
    return L.cg(A, b).x


def cg_short(A, b):
    return L.cg(A, b, max_steps=1, throw=False)


def gmres(A, b):
    return L.gmres(A, b, restart=3, throw=False)


def sor(A, b, omega=1.0):
    return L.sor(A, b, omega, throw=False)


def sor_throw(A, b, omega=1.0):
    return L.sor(A, b, omega, throw=True).x


def seq(ops, rhs, keys):
    return L.solve_sequence(ops, rhs, keys, throw=False, **SEQ)


def seq_cg(ops, rhs, keys):
    return L.solve_sequence(ops, rhs, keys, method="cg", throw=False)


NAN_B = B.at[0].set(jnp.nan)
NAN_A = A.at[1, 1].set(jnp.nan)

CASES = [
    # CG on a matrix that is not SPD: breakdown is reported, not iterated through
    Case("cg_indefinite", cg, (INDEFINITE, B), Code("indefinite")),
    Case(
        "cg_indefinite_throw",
        cg_throw,
        (INDEFINITE, B),
        runtime(r"non-positive curvature.*not symmetric positive definite"),
    ),
    Case("cg_negative_definite", cg, (-A, B), Code("indefinite")),
    Case("seq_cg_indefinite", seq_cg, (jnp.stack([INDEFINITE, A]), BS, KEYS), Code("indefinite")),
    # non-finite data
    Case("cg_nan_b", cg, (A, NAN_B), Code("nonfinite")),
    Case("cg_nan_A", cg, (NAN_A, B), Code("nonfinite")),
    Case("gmres_nan_b", gmres, (A, NAN_B), Code("nonfinite")),
    Case("sor_nan_b", sor, (A, NAN_B), Code("nonfinite")),
    # no convergence / singular systems
    Case("cg_max_steps", cg_short, (A, B), Code("max_steps_reached")),
    Case(
        "cg_max_steps_throw",
        lambda A, b: L.cg(A, b, max_steps=1).x,
        (A, B),
        runtime(r"`max_steps`"),
    ),
    Case("gmres_singular", gmres, (SINGULAR, B), Code("breakdown")),
    Case(
        "sor_diverges_traced_omega",
        sor,
        (A, B, 2.5),
        Raises(ValueError, r"`omega` must lie in \(0, 2\), got 2\.5"),
        Code("invalid_input"),
    ),
    Case(
        "sor_omega_zero",
        sor,
        (A, B, 0.0),
        Raises(ValueError, r"`omega` must lie in \(0, 2\)"),
        Code("invalid_input"),
    ),
    Case(
        "sor_omega_throw",
        sor_throw,
        (A, B, -1.0),
        Raises(ValueError, r"`omega` must lie in \(0, 2\)"),
        runtime(r"`omega`"),
    ),
    # float32 systems with the default (dtype-aware) tolerance converge
    Case(
        "cg_float32_default_tol",
        cg,
        (A.astype(jnp.float32), B.astype(jnp.float32)),
        Code("successful"),
    ),
    # sequences: sort keys, empty and mixed-size sequences
    Case(
        "seq_nan_sort_key",
        seq,
        (AS, BS, KEYS.at[1].set(jnp.nan)),
        Raises(ValueError, r"`params` \(the sort key\) must be finite"),
        Code("invalid_input"),
    ),
    Case(
        "seq_empty",
        seq,
        (AS[:0], BS[:0], KEYS[:0]),
        Raises(ValueError, r"`rhs` must hold at least one system"),
    ),
    Case(
        "seq_mixed_sizes",
        lambda b: seq([A, jnp.eye(4)], b, KEYS),
        (BS,),
        Raises(ValueError, r"every matrix of `operators` must be 3x3.*4x4 one at position 1"),
    ),
    Case(
        "seq_count_mismatch",
        seq,
        (AS, BS[:1], KEYS[:1]),
        Raises(ValueError, r"`operators` must have a leading axis of size 1"),
    ),
    Case("seq_keys_rows", seq, (AS, BS, jnp.zeros(3)), Raises(ValueError, r"`params` must have 2")),
    Case(
        "seq_rhs_vector", seq, (AS, B, KEYS), Raises(ValueError, r"`rhs` must have shape \(N, n\)")
    ),
    Case(
        "seq_unknown_method",
        lambda ops: L.solve_sequence(ops, BS, method="lu"),
        (AS,),
        Raises(ValueError, r"`method` must be one of"),
    ),
    # static problems of the single-system solvers
    Case("cg_shape_mismatch", cg, (A, jnp.ones(4)), Raises(ValueError, r"`A` is 3x3 but `b`")),
    Case("gmres_shape_mismatch", gmres, (A, jnp.ones(4)), Raises(ValueError, r"`b`")),
    Case(
        "cg_tol_negative", lambda A, b: L.cg(A, b, tol=-1.0), (A, B), Raises(ValueError, r"`tol`")
    ),
    Case(
        "gmres_restart_zero",
        lambda A, b: L.gmres(A, b, restart=0),
        (A, B),
        Raises(ValueError, r"`restart` must be an int >= 1"),
    ),
    Case(
        "gcrodr_recycle_too_large",
        lambda A, b: L.gcrodr(A, b, restart=3, recycle=3),
        (A, B),
        Raises(ValueError, r"`recycle` must be smaller than `restart`"),
    ),
    Case("cg_non_square", cg, (jnp.ones((3, 2)), B), Raises(ValueError, r"`A`")),
    Case("sor_shape_mismatch", sor, (A, jnp.ones(2)), Raises(ValueError, r"`b` must have shape")),
    Case(
        "ssor_pcg_omega",
        lambda A, b: L.ssor_pcg(A, b, omega=2.0),
        (A, B),
        Raises(ValueError, r"`omega` must lie in \(0, 2\)"),
    ),
    Case(
        "jacobi_zero_diagonal",
        lambda A: L.jacobi(A),
        (A.at[0, 0].set(0.0),),
        Raises(ValueError, r"diagonal of `A` must have no zeros"),
        runtime(r"diagonal"),
    ),
]


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_case(case, mode):
    run_case(case, mode)
