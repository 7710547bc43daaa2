"""Shardings for optimizer state, derived from the parameters' shardings.

Eager ``tx.init(params)`` inherits each parameter's sharding, but ``jax.jit(tx.init)(params)``
does not (the state lands on one device or is replicated, the root of optax #548-style
out-of-memory errors). :func:`state_shardings` gives ``out_shardings`` for the jitted ``init``:
every state leaf that mirrors a parameter gets that parameter's sharding, everything else
(counters, scalars, per-tensor statistics) is replicated::

    shardings = state_shardings(tx, params, param_shardings)
    state = jax.jit(tx.init, out_shardings=shardings)(params)

The library creates no mesh and moves no data: placement is the caller's.

Differences from the reference code: there is none; this is the library's own helper, written
on ``optax.tree.map_params``.
"""

from __future__ import annotations

from typing import Any

import jax
import optax
from jax.sharding import NamedSharding, PartitionSpec

__all__ = ["state_shardings"]


def _replicated_like(shardings: Any) -> jax.sharding.Sharding:
    leaves = [s for s in jax.tree.leaves(shardings) if isinstance(s, jax.sharding.Sharding)]
    if not leaves:
        raise ValueError(
            "state_shardings: `param_shardings` must hold jax.sharding.Sharding leaves, "
            f"got {shardings!r}."
        )
    first = leaves[0]
    if isinstance(first, NamedSharding):
        return NamedSharding(first.mesh, PartitionSpec())
    return jax.sharding.SingleDeviceSharding(next(iter(first.device_set)))


def state_shardings(tx: optax.GradientTransformation, params: Any, param_shardings: Any) -> Any:
    """Shardings for ``tx.init(params)`` mirroring ``param_shardings`` (a pytree like ``params``).

    ``params`` may hold arrays or ``jax.ShapeDtypeStruct``s. A state leaf with its parameter's
    shape gets the parameter's sharding; a leaf of shape ``(k, *p.shape)`` (a stack of
    parameter-shaped rows, such as M-FAC's gradient window) gets it on its trailing axes
    (``PartitionSpec(None, *spec)``, for ``NamedSharding``s); other leaves whose shape differs
    from their parameter's (e.g. per-row statistics) are replicated, and so are leaves that do
    not mirror a parameter (counters, scalars). Pass the result as ``out_shardings`` of
    ``jax.jit(tx.init)`` so that the moments are created sharded like the parameters.

    Args:
      tx: any optax transformation (of this library or not).
      params: the parameters, or ``jax.ShapeDtypeStruct``s with their shapes and dtypes.
      param_shardings: a ``jax.sharding.Sharding`` per parameter (a pytree like ``params``).

    Returns:
      A pytree of shardings with the structure of ``tx.init(params)``.

    Raises:
      ValueError: ``param_shardings`` does not have the structure of ``params`` or holds no
        ``Sharding``.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
      >>> import jaxopt_papers as jop
      >>> mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
      >>> params = {"w": jnp.zeros((4, 2)), "b": jnp.zeros(2)}
      >>> param_shardings = {"w": NamedSharding(mesh, P("data")), "b": NamedSharding(mesh, P())}
      >>> tx = jop.adan(1e-3)
      >>> shardings = jop.sharding.state_shardings(tx, params, param_shardings)
      >>> state = jax.jit(tx.init, out_shardings=shardings)(params)
      >>> state[0].mu["w"].sharding.spec == P("data"), state[0].count.sharding.spec == P()
      (True, True)
    """
    if jax.tree.structure(params) != jax.tree.structure(
        param_shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding)
    ):
        raise ValueError(
            "state_shardings: `param_shardings` must have the structure of `params`; got "
            f"{jax.tree.structure(param_shardings)} for params {jax.tree.structure(params)}."
        )
    replicated = _replicated_like(param_shardings)
    abstract = jax.eval_shape(tx.init, params)

    def mirror(leaf, shard, param):
        shape, pshape = getattr(leaf, "shape", None), tuple(param.shape)
        if shape == pshape:
            return shard
        stacked = shape is not None and len(shape) == len(pshape) + 1 and shape[1:] == pshape
        if stacked and isinstance(shard, jax.sharding.NamedSharding):
            # a stack of parameter-shaped rows (e.g. M-FAC's gradient window)
            spec = tuple(shard.spec) + (None,) * (len(pshape) - len(shard.spec))
            return jax.sharding.NamedSharding(shard.mesh, jax.sharding.PartitionSpec(None, *spec))
        return replicated

    return optax.tree.map_params(
        tx,
        mirror,
        abstract,
        param_shardings,
        params,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, jax.sharding.Sharding),
    )
