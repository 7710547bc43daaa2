"""M-FAC and MKOR on 8 simulated devices (run by tests/test_multidevice.py).

Parameters sharded over a (4, 2) mesh. A jitted step on sharded params gives the single-device
result and keeps the shardings: M-FAC's gradient window (leaves ``(m, *p.shape)``) sharded like
the params on its trailing axes, MKOR's factors replicated. The collectives of each compiled step
are counted on the HLO text and stated here:

* M-FAC: only all-reduces, of the ``m`` dot products ``G g`` (and of the ``m`` entries of the new
  Gram row); no all-gather: the window is never gathered.
* MKOR: the preconditioning ``A⁻¹ M G⁻¹`` of a sharded gradient ``M`` with replicated factors
  compiles (on this two-layer MLP, XLA:CPU) to 16 small collectives (7 all-reduces,
  7 collective-permutes, 2 all-gathers), none larger than one layer's gradient: the factors are
  never communicated.
"""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers import curvature, sharding


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "run through tests/test_multidevice.py (8 CPU devices)"
    return jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))


def collectives(hlo: str) -> dict[str, list[str]]:
    """Each collective instruction of a compiled module with its result shape."""
    found: dict[str, list[str]] = {}
    pattern = r"= (.+?) (all-gather|all-reduce|collective-permute|all-to-all)(-start)?\("
    for m in re.finditer(pattern, hlo):
        found.setdefault(m.group(2), []).append(m.group(1))
    return found


def test_sharded_mfac_equals_single_device(mesh):
    m = 6
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"w": jax.random.normal(k1, (16, 8)), "b": jax.random.normal(k2, (8,))}
    specs = {"w": P("data", "model"), "b": P("model")}
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    tx = curvature.mfac(1e-2, num_grads=m, damping=1e-2, momentum=0.5)
    loss = lambda p: jnp.sum(jnp.sin(p["w"]) ** 2) + jnp.sum((p["w"] @ p["b"]) ** 2) / 16

    @jax.jit
    def step(p, s):
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, u), s

    sharded = jax.device_put(params, shardings)
    # the library's state shardings: the window like the params on its trailing axes
    st_shardings = sharding.state_shardings(tx, params, shardings)
    st_sharded = jax.jit(tx.init, out_shardings=st_shardings)(sharded)
    single = jax.device_put(params, jax.devices()[0])
    st_single = tx.init(single)
    for _ in range(2 * m):  # the window fills and wraps
        single, st_single = step(single, st_single)
        sharded, st_sharded = step(sharded, st_sharded)
    for k in params:
        np.testing.assert_allclose(sharded[k], single[k], rtol=1e-10, atol=1e-12)
        assert sharded[k].sharding.is_equivalent_to(shardings[k], params[k].ndim)
        window = st_sharded[0].grads[k]
        assert window.sharding.is_equivalent_to(
            NamedSharding(mesh, P(None, *specs[k])), 1 + params[k].ndim
        )
    assert st_sharded[0].dots.sharding.is_fully_replicated
    assert st_sharded[0].count.sharding.is_fully_replicated

    # the M-FAC update alone (the loss's own gradient has collectives of its own)
    grads = jax.jit(jax.grad(loss))(sharded)
    found = collectives(jax.jit(tx.update).lower(grads, st_sharded, sharded).compile().as_text())
    assert not found.get("all-gather"), found
    assert not found.get("all-to-all"), found
    dims = [
        d for shape in found.get("all-reduce", []) for d in re.findall(r"\w+\[([\d,]*)\]", shape)
    ]
    assert dims, found
    # every all-reduce carries scalars or m-vectors: never a window or a parameter
    assert all(d in ("", str(m)) for d in dims), found


def test_sharded_mkor_equals_single_device(mesh):
    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(4)(jnp.tanh(nn.Dense(16)(x)))

    model = MLP()
    x = jax.random.normal(jax.random.key(1), (32, 8))
    y = jax.random.normal(jax.random.key(2), (32, 4))
    params = model.init(jax.random.key(0), x)["params"]
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    specs = {
        "Dense_0": {"kernel": P(None, "model"), "bias": P("model")},
        "Dense_1": {"kernel": P("model", None), "bias": P()},
    }
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    loss = lambda p, x, y: jnp.mean((model.apply({"params": p}, x) - y) ** 2)
    tx = curvature.mkor(0.1, inv_freq=2, momentum=0.9, factor_dtype=jnp.float64)

    @jax.jit
    def step(p, s, x, y):
        _, grads, stats = curvature.value_grad_and_stats(loss, p, x, y)
        u, s = tx.update(grads, s, p, layer_stats=stats)
        return optax.apply_updates(p, u), s

    sharded = jax.device_put(params, shardings)
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    st_sharded = tx.init(sharded)
    single = jax.device_put(params, jax.devices()[0])
    st_single = tx.init(single)
    for _ in range(5):
        single, st_single = step(single, st_single, x, y)
        sharded, st_sharded = step(sharded, st_sharded, xs, y)
    for path, a, b in zip(
        jax.tree_util.tree_leaves_with_path(sharded),
        jax.tree.leaves(sharded),
        jax.tree.leaves(single),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=str(path[0]))
    for k in params:
        for leaf in params[k]:
            assert sharded[k][leaf].sharding.is_equivalent_to(
                shardings[k][leaf], params[k][leaf].ndim
            )
    # the MKOR update alone, on sharded gradients and replicated statistics
    _, grads, stats = jax.jit(lambda p: curvature.value_grad_and_stats(loss, p, xs, y))(sharded)
    update = jax.jit(lambda g, s, p, st: tx.update(g, s, p, layer_stats=st))
    found = collectives(update.lower(grads, st_sharded, sharded, stats).compile().as_text())
    assert not found.get("all-to-all"), found
    sizes = [
        int(np.prod([int(n) for n in d.split(",")])) if d else 1
        for shapes in found.values()
        for shape in shapes
        for d in re.findall(r"\w+\[([\d,]*)\]", shape)
    ]
    # pieces of gradients only: no payload exceeds one layer's gradient (9 x 16 entries), so the
    # replicated factors (17 x 17 for the second layer) are never communicated
    assert sizes and max(sizes) <= 9 * 16, found
