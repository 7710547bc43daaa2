"""Recycled Krylov solves on vectors sharded over 8 simulated CPU devices.

Runs with 8 simulated CPU devices (see tests/test_multidevice.py). A Darcy sequence whose
diagonals and right-hand sides are sharded along the unknowns is solved by ``solve_sequence``
(sorted, recycled GCRO-DR) under ``jax.jit``: the answers must equal the single-device ones and
stay sharded like the right-hand sides. The compiled ``gcrodr`` and ``solve_sequence`` must keep
their ``n``-long vectors sharded: no all-gather of an ``n``-long array (the basis would then be
replicated on every device), the products with ``A`` only exchange halos (collective-permutes),
and the Gram–Schmidt coefficients are all-reduced (``n/8``-long rows reduced on each device,
then summed).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse.linalg as spla
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers import linear

S, NUM = 34, 6  # n = 32² = 1024 unknowns, 128 per device


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((8,), ("x",), axis_types=(AxisType.Auto,))


def sequence():
    return linear.darcy(jax.random.PRNGKey(3), NUM, s=S)


def shard(seq, mesh):
    data = jax.device_put(seq.operators.data, NamedSharding(mesh, P(None, None, "x")))
    rhs = jax.device_put(seq.rhs, NamedSharding(mesh, P(None, "x")))
    return linear.DiaMatrix(data, seq.operators.offsets), rhs


def solve(data, rhs, params, offsets):
    res = linear.solve_sequence(linear.DiaMatrix(data, offsets), rhs, params, tol=1e-10)
    return res.x, res.num_matvecs, res.residual, res.order


def test_sharded_solve_sequence_equals_single_device(mesh):
    seq = sequence()
    fn = jax.jit(solve, static_argnums=3)
    ref = fn(seq.operators.data, seq.rhs, seq.params, seq.operators.offsets)
    ops, rhs = shard(seq, mesh)
    out = fn(ops.data, rhs, seq.params, ops.offsets)
    np.testing.assert_array_equal(out[3], ref[3])  # the same SKR order
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-8, atol=0)
    assert np.all(np.abs(np.asarray(out[1]) - np.asarray(ref[1])) <= 2), (out[1], ref[1])
    assert float(out[2].max()) <= 1e-10
    for i in range(NUM):  # and both against scipy's direct solver
        exact = spla.spsolve(seq.to_scipy(i).tocsc(), np.asarray(seq.rhs[i]))
        np.testing.assert_allclose(out[0][i], exact, rtol=1e-7, atol=1e-7 * np.abs(exact).max())
    assert out[0].sharding.is_equivalent_to(NamedSharding(mesh, P(None, "x")), 2)


def collectives(hlo: str) -> dict[str, list[str]]:
    """Each collective instruction of a compiled module with its result shape."""
    found: dict[str, list[str]] = {}
    for m in re.finditer(r"= (\S+) (all-gather|all-reduce|collective-permute|all-to-all)\(", hlo):
        found.setdefault(m.group(2), []).append(m.group(1))
    return found


def assert_vectors_stay_sharded(hlo: str, n: int) -> None:
    found = collectives(hlo)
    local = n // 8
    # No n-long array is ever gathered onto one device (nor an (n, k) basis).
    gathered = [shape for shape in found.get("all-gather", []) if re.search(rf"\b{n}\b", shape)]
    assert not gathered, gathered
    assert not found.get("all-to-all"), found["all-to-all"]
    # The products with A exchange halos only: every collective-permute moves at most the
    # 32-row halo of the ±32 offset diagonals, never a whole shard of 128.
    permuted = found.get("collective-permute", [])
    assert permuted, "a product with a banded matrix sharded by rows needs halo exchanges"
    for shape in permuted:
        groups = re.findall(r"\[([\d,]*)\]", shape)
        dims = [int(d) for group in groups for d in group.split(",") if d]
        assert max(dims, default=0) <= local, shape
    # Inner products are partial sums combined by all-reduce; there is at least one per
    # Gram–Schmidt pass, and none of them moves an n-long array.
    reduced = found.get("all-reduce", [])
    assert reduced
    assert not [shape for shape in reduced if re.search(rf"\b{n}\b", shape)], reduced


def test_compiled_solve_sequence_keeps_vectors_sharded(mesh):
    """With a recycle state: the start-of-system QR of AU must not gather the (n, k) basis."""
    seq = sequence()
    ops, rhs = shard(seq, mesh)
    fn = jax.jit(solve, static_argnums=3)
    hlo = fn.lower(ops.data, rhs, seq.params, ops.offsets).compile().as_text()
    assert_vectors_stay_sharded(hlo, (S - 2) ** 2)


def test_compiled_gcrodr_keeps_vectors_sharded(mesh):
    seq = sequence()
    ops, rhs = shard(seq, mesh)
    A = ops[0]
    fn = jax.jit(lambda data, b: linear.gcrodr(linear.DiaMatrix(data, A.offsets), b).x)
    assert_vectors_stay_sharded(fn.lower(A.data, rhs[0]).compile().as_text(), (S - 2) ** 2)
    out = fn(A.data, rhs[0])
    exact = spla.spsolve(seq.to_scipy(0).tocsc(), np.asarray(seq.rhs[0]))
    np.testing.assert_allclose(out, exact, rtol=1e-6, atol=1e-6 * np.abs(exact).max())
    assert isinstance(out, jnp.ndarray) and out.sharding.is_equivalent_to(rhs[0].sharding, 1)
