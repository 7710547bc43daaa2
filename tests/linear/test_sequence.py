"""SKR's sorting and recycled solve of sequences; the recycled solve as implicit-diff backend.

Oracles: a plain-Python greedy nearest-neighbour chain, ``scipy.sparse.linalg.spsolve``, the
solver without recycling (GMRES), and central finite differences in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.linear.sequence import greedy_order


def naive_greedy(params: np.ndarray) -> list[int]:
    order, left = [0], set(range(1, len(params)))
    while left:
        cur = params[order[-1]]
        nxt = min(sorted(left), key=lambda j: float(np.sum((params[j] - cur) ** 2)))
        order.append(nxt)
        left.remove(nxt)
    return order


@pytest.mark.parametrize("shape", [(1, 3), (7, 1), (40, 5), (25, 4, 4)])
def test_greedy_order_matches_a_plain_python_chain(shape):
    params = np.random.default_rng(sum(shape)).normal(size=shape)
    order = greedy_order(jnp.asarray(params))
    assert list(np.asarray(order)) == naive_greedy(params.reshape(shape[0], -1))


def test_greedy_order_is_jittable_and_a_permutation():
    params = jax.random.normal(jax.random.PRNGKey(0), (50, 3))
    order = jax.jit(greedy_order)(params)
    assert sorted(np.asarray(order).tolist()) == list(range(50))
    # Points along a line, shuffled: the chain from the first walks to one end, then the other.
    t = np.random.default_rng(1).permutation(20).astype(float)
    order = np.asarray(greedy_order(jnp.asarray(t[:, None])))
    walked = t[order]
    assert np.all(np.abs(np.diff(walked)) >= 1) and len(set(walked)) == 20
