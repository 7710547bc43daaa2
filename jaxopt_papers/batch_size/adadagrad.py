r"""AdAdaGrad: adaptive batch sizes from per-example gradient statistics.

Paper: Tim Tsz-Kit Lau, Han Liu, Mladen Kolar, "AdAdaGrad: Adaptive Batch Size Schemes for
Adaptive Gradient Methods", arXiv:2402.11215 (2024). Reference code: timlautk/AdAdaGrad
``tests.py`` (the tests, lines 83-171) and ``main.py`` (the training loop, lines 83-325).
The learning-rate rescale when the batch grows is Granziol, Zohren, Roberts, "Learning Rates as
a Function of Batch Size", JMLR 2022, arXiv:2006.09092
(:func:`jaxopt_papers.schedules.scale_lr_for_batch`).

With per-example gradients ``g_i`` (``i = 1..n``, e.g. from ``jax.vmap(jax.grad(...))``), their
mean ``ḡ``, ``Var_i`` the unbiased (``1/(n-1)``) variance over the examples and ``b`` the
current batch size, each test returns the next batch size::

    norm test:           V    = Σ_coords Var_i(g_i)
                         b'   = ceil(max(b, V / (η² ‖ḡ‖²)))
    inner-product test:  V_ip = Var_i(<g_i, ḡ>)
                         b'   = ceil(max(b, V_ip / (θ² ‖ḡ‖⁴)))
    orthogonality test:  V_or = Σ_coords Var_i(g_i - <g_i, ḡ> ḡ / ‖ḡ‖²)
                         b'   = ceil(max(b, V_or / (ν² ‖ḡ‖²)))
    augmented test:      b'   = ceil(max(b, V_ip / (θ² ‖ḡ‖⁴), V_or / (ν² ‖ḡ‖²)))

then ``b' <- min(b', max_batch_size)``. The norm test passes (keeps ``b``) iff
``V / b <= η² ‖ḡ‖²``; the batch size never decreases.

``mode="per_tensor"`` (default, the reference code): ``<g_i, ḡ>`` and the projection are taken
leaf by leaf with the leaf's own ``ḡ`` and the variances summed over the leaves (cross-leaf
covariance terms are dropped); ``‖ḡ‖²`` in the denominators is the whole pytree's.
``mode="global"``: the paper's formulas on the gradient flattened over the whole pytree. The
norm test is the same in both modes.

Defaults are the reference code's (``main.py`` lines 598-631): ``eta = theta = nu = 0.1``,
initial batch size 64, ``max_batch_size = 50000``, a test every step (``test_interval=1``).

Differences from the reference code:

* ``mode="global"`` is an addition (the paper's formulas); ``"per_tensor"`` is the default.
* A leaf whose mean gradient is exactly zero contributes no projection to the per-tensor
  orthogonality test (the reference code divides zero by zero there and returns NaN).
  A NaN or infinite requirement (e.g. ``ḡ = 0`` everywhere) gives ``max_batch_size`` (the
  largest int32 when there is no cap; the reference code raises an ``OverflowError``).
* The training loop :func:`grow_batch_training` keeps one device and no gradient accumulation
  (the reference splits a large batch into micro-batches over devices and accumulation steps;
  with JAX, shard the batch axis instead); it can round the batch size up to a power of two or
  a multiple to bound the number of compilations (default: no rounding, as the reference).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers.schedules.batch_scaling import scale_lr_for_batch

__all__ = [
    "GrowBatchResult",
    "augmented_inner_product_test",
    "grow_batch_training",
    "inner_product_test",
    "norm_test",
    "orthogonality_test",
]

_MODES = ("per_tensor", "global")
_TESTS = ("norm", "inner_product", "orthogonality", "augmented_inner_product")
_INT32_MAX = 2**31 - 1


# ----------------------------------------------------------------------------- validation


def _check_grads(owner: str, per_example_grads: Any) -> list[jax.Array]:
    leaves = jax.tree.leaves(per_example_grads)
    if not leaves:
        raise ValueError(f"{owner}: `per_example_grads` must have at least one array leaf.")
    V.check_float_leaves(owner, "per_example_grads", per_example_grads)
    paths = jax.tree_util.tree_flatten_with_path(per_example_grads)[0]
    dims = []
    for path, x in paths:
        if jnp.ndim(x) < 1:
            raise ValueError(
                f"{owner}: every leaf of `per_example_grads` must have a leading example axis; "
                f"got a scalar at {jax.tree_util.keystr(path) or 'the array'}."
            )
        dims.append((jax.tree_util.keystr(path) or "the array", jnp.shape(x)[0]))
    if len({d for _, d in dims}) != 1:
        raise ValueError(
            f"{owner}: every leaf of `per_example_grads` must have the same leading (example) "
            f"dimension; got {', '.join(f'{n}: {d}' for n, d in dims)}."
        )
    if dims[0][1] < 2:
        raise ValueError(
            f"{owner}: `per_example_grads` must hold at least 2 examples (the variance over "
            f"examples divides by n - 1), got a leading dimension of {dims[0][1]}."
        )
    return leaves


def _check_batch_size(owner: str, batch_size: Any, max_batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not (
        isinstance(batch_size, (int, np.integer, jax.Array, np.ndarray))
    ):
        raise TypeError(f"{owner}: `batch_size` must be an int >= 2, got {batch_size!r}.")
    if not isinstance(batch_size, jax.core.Tracer) and np.ndim(batch_size) != 0:
        raise TypeError(
            f"{owner}: `batch_size` must be a scalar, got shape {np.shape(batch_size)}."
        )
    b = V._concrete_float(batch_size)
    if b is not None and b < 2:
        raise ValueError(f"{owner}: `batch_size` must be an int >= 2, got {batch_size!r}.")
    if max_batch_size is not None:
        m = V.check_static_int(owner, "max_batch_size", max_batch_size, low=2)
        if b is not None and b > m:
            raise ValueError(
                f"{owner}: `batch_size` ({int(b)}) must not exceed `max_batch_size` ({m})."
            )


def _check_positive(owner: str, name: str, value: Any) -> None:
    V.check_real(owner, name, value, low=0.0, low_open=True)


# ------------------------------------------------------------------------------ statistics


def _flat(leaves: list[jax.Array]) -> list[jax.Array]:
    """Each leaf as ``(n, d)`` in the compute dtype (at least float32)."""
    out = []
    for x in leaves:
        x = jnp.asarray(x)
        out.append(x.reshape(x.shape[0], -1).astype(V.compute_dtype(x.dtype)))
    return out


def _var(x: jax.Array) -> jax.Array:
    """Unbiased variance over the leading axis."""
    return jnp.var(x, axis=0, ddof=1)


def _stats(per_example_grads: Any, mode: str, need_ip: bool, need_orth: bool):
    """(‖ḡ‖², V, V_ip, V_or) of the module docstring (unneeded ones are None)."""
    gs = _flat(jax.tree.leaves(per_example_grads))
    means = [jnp.mean(g, axis=0) for g in gs]
    sq = [jnp.sum(m * m) for m in means]
    sqnorm = sum(sq)
    v_norm = sum(jnp.sum(_var(g)) for g in gs)
    v_ip = v_or = None
    if need_ip or need_orth:
        if mode == "per_tensor":
            ips = [g @ m for g, m in zip(gs, means, strict=True)]
            if need_ip:
                v_ip = sum(_var(ip) for ip in ips)
            if need_orth:
                v_or = 0.0
                for g, m, ip, s in zip(gs, means, ips, sq, strict=True):
                    coef = jnp.where(s > 0, ip / jnp.where(s > 0, s, 1.0), 0.0)
                    v_or = v_or + jnp.sum(_var(g - coef[:, None] * m[None, :]))
        else:
            ip = sum(g @ m for g, m in zip(gs, means, strict=True))
            if need_ip:
                v_ip = _var(ip)
            if need_orth:
                coef = ip / sqnorm
                v_or = sum(
                    jnp.sum(_var(g - coef[:, None] * m[None, :]))
                    for g, m in zip(gs, means, strict=True)
                )
    return sqnorm, v_norm, v_ip, v_or


def _next(batch_size: Any, requirement: jax.Array, max_batch_size: Any) -> jax.Array:
    cap = _INT32_MAX if max_batch_size is None else int(max_batch_size)
    req = jnp.where(jnp.isnan(requirement), jnp.inf, requirement)
    b = jnp.asarray(batch_size).astype(req.dtype)
    nxt = jnp.ceil(jnp.maximum(b, req))
    return jnp.minimum(nxt, cap).astype(jnp.int32)


# ----------------------------------------------------------------------------------- tests


def norm_test(
    per_example_grads: Any,
    batch_size: Any,
    eta: float = 0.1,
    *,
    max_batch_size: int | None = None,
) -> jax.Array:
    """The norm test: the next batch size ``ceil(max(b, V / (η² ‖ḡ‖²)))``, capped.

    ``V`` is the sum over coordinates of the unbiased variance of the per-example gradients
    and ``ḡ`` their mean (reference: timlautk/AdAdaGrad ``tests.py`` lines 111-124).

    Args:
      per_example_grads: a pytree of per-example gradients, every leaf with the same leading
        example axis of length ``n >= 2`` (e.g. ``jax.vmap(jax.grad(loss), (None, 0))``).
      batch_size: the current batch size ``b`` (an int >= 2 or an int array); usually ``n``.
      eta: the test's tolerance ``η > 0`` (reference 0.1).
      max_batch_size: the cap on the returned batch size (a Python int; None: no cap).

    Returns:
      The next batch size, an int32 scalar array ``>= b`` (``<= max_batch_size``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import batch_size
      >>> g = {"w": jnp.array([[1.0, 0.0], [3.0, 0.0], [2.0, 2.0], [2.0, -2.0]])}
      >>> int(batch_size.norm_test(g, 4, eta=1.0))  # V = 2/3 + 8/3, ‖ḡ‖² = 4
      4
      >>> int(batch_size.norm_test(g, 4, eta=0.1))  # ceil(10/3 / 0.04)
      84
    """
    owner = "norm_test"
    _check_grads(owner, per_example_grads)
    _check_batch_size(owner, batch_size, max_batch_size)
    _check_positive(owner, "eta", eta)
    sqnorm, v, _, _ = _stats(per_example_grads, "per_tensor", False, False)
    return _next(batch_size, v / (eta**2 * sqnorm), max_batch_size)


def inner_product_test(
    per_example_grads: Any,
    batch_size: Any,
    theta: float = 0.1,
    *,
    mode: str = "per_tensor",
    max_batch_size: int | None = None,
) -> jax.Array:
    """The inner-product test: ``ceil(max(b, Var_i(<g_i, ḡ>) / (θ² ‖ḡ‖⁴)))``, capped.

    Reference: timlautk/AdAdaGrad ``tests.py`` lines 87-91 and 126-139 (``mode="per_tensor"``:
    the inner products and their variances leaf by leaf, summed).

    Args:
      per_example_grads: a pytree of per-example gradients with a common leading axis ``n >= 2``.
      batch_size: the current batch size ``b`` (an int >= 2 or an int array).
      theta: the tolerance ``θ > 0`` (reference 0.1).
      mode: ``"per_tensor"`` (reference code) or ``"global"`` (the paper's formula on the whole
        flattened gradient).
      max_batch_size: the cap on the returned batch size (a Python int; None: no cap).

    Returns:
      The next batch size, an int32 scalar array ``>= b`` (``<= max_batch_size``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import batch_size
      >>> g = {"w": jnp.array([[1.0, 0.0], [3.0, 0.0], [2.0, 2.0], [2.0, -2.0]])}
      >>> int(batch_size.inner_product_test(g, 4, theta=0.5))  # Var(<g_i, ḡ>) = 8/3, ‖ḡ‖⁴ = 16
      4
      >>> int(batch_size.inner_product_test(g, 4, theta=0.1, max_batch_size=32))
      17
    """
    owner = "inner_product_test"
    _check_grads(owner, per_example_grads)
    _check_batch_size(owner, batch_size, max_batch_size)
    _check_positive(owner, "theta", theta)
    V.check_static_choice(owner, "mode", mode, _MODES)
    sqnorm, _, v_ip, _ = _stats(per_example_grads, mode, True, False)
    return _next(batch_size, v_ip / (theta**2 * sqnorm**2), max_batch_size)


def orthogonality_test(
    per_example_grads: Any,
    batch_size: Any,
    nu: float = 0.1,
    *,
    mode: str = "per_tensor",
    max_batch_size: int | None = None,
) -> jax.Array:
    """The orthogonality test: ``ceil(max(b, V_or / (ν² ‖ḡ‖²)))``, capped.

    ``V_or`` is the summed variance of the components of the per-example gradients orthogonal
    to ``ḡ`` (reference: timlautk/AdAdaGrad ``tests.py`` lines 93-100 and 141-154).

    Args:
      per_example_grads: a pytree of per-example gradients with a common leading axis ``n >= 2``.
      batch_size: the current batch size ``b`` (an int >= 2 or an int array).
      nu: the tolerance ``ν > 0`` (reference 0.1).
      mode: ``"per_tensor"`` (reference code) or ``"global"``.
      max_batch_size: the cap on the returned batch size (a Python int; None: no cap).

    Returns:
      The next batch size, an int32 scalar array ``>= b`` (``<= max_batch_size``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import batch_size
      >>> g = {"w": jnp.array([[1.0, 0.0], [3.0, 0.0], [2.0, 2.0], [2.0, -2.0]])}
      >>> int(batch_size.orthogonality_test(g, 4, nu=1.0))  # V_or = 8/3 (second coordinate)
      4
      >>> int(batch_size.orthogonality_test(g, 4, nu=0.1))  # ceil(8/3 / 0.04)
      67
    """
    owner = "orthogonality_test"
    _check_grads(owner, per_example_grads)
    _check_batch_size(owner, batch_size, max_batch_size)
    _check_positive(owner, "nu", nu)
    V.check_static_choice(owner, "mode", mode, _MODES)
    sqnorm, _, _, v_or = _stats(per_example_grads, mode, False, True)
    return _next(batch_size, v_or / (nu**2 * sqnorm), max_batch_size)


def augmented_inner_product_test(
    per_example_grads: Any,
    batch_size: Any,
    theta: float = 0.1,
    nu: float = 0.1,
    *,
    mode: str = "per_tensor",
    max_batch_size: int | None = None,
) -> jax.Array:
    """The augmented inner-product test: the larger of the inner-product and orthogonality needs.

    ``ceil(max(b, V_ip / (θ² ‖ḡ‖⁴), V_or / (ν² ‖ḡ‖²)))``, capped (reference:
    timlautk/AdAdaGrad ``tests.py`` lines 102-108 and 156-171).

    Args:
      per_example_grads: a pytree of per-example gradients with a common leading axis ``n >= 2``.
      batch_size: the current batch size ``b`` (an int >= 2 or an int array).
      theta: the inner-product tolerance ``θ > 0`` (reference 0.1).
      nu: the orthogonality tolerance ``ν > 0`` (reference 0.1).
      mode: ``"per_tensor"`` (reference code) or ``"global"``.
      max_batch_size: the cap on the returned batch size (a Python int; None: no cap).

    Returns:
      The next batch size, an int32 scalar array ``>= b`` (``<= max_batch_size``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import batch_size
      >>> g = {"w": jnp.array([[1.0, 0.0], [3.0, 0.0], [2.0, 2.0], [2.0, -2.0]])}
      >>> int(batch_size.augmented_inner_product_test(g, 4))  # max(17, 67)
      67
    """
    owner = "augmented_inner_product_test"
    _check_grads(owner, per_example_grads)
    _check_batch_size(owner, batch_size, max_batch_size)
    _check_positive(owner, "theta", theta)
    _check_positive(owner, "nu", nu)
    V.check_static_choice(owner, "mode", mode, _MODES)
    sqnorm, _, v_ip, v_or = _stats(per_example_grads, mode, True, True)
    req = jnp.maximum(v_ip / (theta**2 * sqnorm**2), v_or / (nu**2 * sqnorm))
    return _next(batch_size, req, max_batch_size)


# -------------------------------------------------------------------------- training loop


class GrowBatchResult(NamedTuple):
    """What :func:`grow_batch_training` returns.

    Args:
      params: the final parameters.
      opt_state: the final optimizer state.
      batch_sizes: the batch size of each step (NumPy int array, one entry per step).
      losses: the mini-batch training loss of each step (NumPy float array).
      examples: the examples processed up to and including each step (NumPy int array).
      learning_rates: the learning rate used at each step (NumPy float array; NaN when the
        optimizer has no injected ``learning_rate``).
      seconds: wall-clock seconds of the whole loop.

    Example:
      >>> import numpy as np
      >>> from jaxopt_papers import batch_size
      >>> r = batch_size.GrowBatchResult(None, None, np.array([4, 8]), np.array([1.0, 0.5]),
      ...                                np.array([4, 12]), np.array([0.1, 0.1]), 0.0)
      >>> int(r.examples[-1])
      12
    """

    params: Any
    opt_state: Any
    batch_sizes: np.ndarray
    losses: np.ndarray
    examples: np.ndarray
    learning_rates: np.ndarray
    seconds: float


def _round_up(b: int, round_to: Any) -> int:
    if round_to is None:
        return b
    if round_to == "power_of_two":
        return 1 << (b - 1).bit_length()
    return int(math.ceil(b / round_to) * round_to)


def _epochs(num: int, rng: np.random.Generator) -> Iterator[int]:
    while True:
        yield from rng.permutation(num)


def grow_batch_training(
    loss_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    optimizer: Any,
    data: Any,
    *,
    num_steps: int,
    test: str | None = "norm",
    initial_batch_size: int = 64,
    max_batch_size: int = 50000,
    eta: float = 0.1,
    theta: float = 0.1,
    nu: float = 0.1,
    mode: str = "per_tensor",
    test_interval: int = 1,
    round_to: str | int | None = None,
    lr_rule: str | None = None,
    max_examples: int | None = None,
    callback: Callable[[int, Any, int], bool] | None = None,
    seed: int = 0,
) -> GrowBatchResult:
    """Train with a batch size that a test grows (AdAdaGrad), rescaling the learning rate.

    Each step draws the next ``b`` examples of a shuffled pass over ``data`` (reshuffled every
    epoch, on the host), takes an optimizer step with the mean gradient and, every
    ``test_interval`` steps, runs ``test`` on the step's per-example gradients
    (``jax.vmap(jax.grad)``) to get the next batch size (rounded up by ``round_to``, capped at
    ``max_batch_size``; it never decreases). With ``lr_rule``, the learning rate becomes
    ``scale_lr_for_batch(lr0, initial_batch_size, b, lr_rule)`` whenever ``b`` changes.

    Shapes cannot be traced, so the step is jitted once per distinct batch size: each new size
    compiles (a handful with ``round_to="power_of_two"``, which bounds them by
    ``log2(max_batch_size / initial_batch_size) + 1``).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the mean loss over a batch (a pytree of
        arrays with a leading example axis). It is called on single examples (with a leading
        axis of 1) for the per-example gradients.
      params: the initial parameters.
      optimizer: an optax transformation. With ``lr_rule``, it must come from
        ``optax.inject_hyperparams`` with a ``learning_rate`` hyperparameter.
      data: a pytree of host (NumPy) arrays with a common leading example axis.
      num_steps: the number of steps (Python int >= 1).
      test: ``"norm"``, ``"inner_product"``, ``"orthogonality"``,
        ``"augmented_inner_product"`` or None (a fixed batch size).
      initial_batch_size: the first batch size (>= 2; reference 64).
      max_batch_size: the cap (reference 50000; at most the number of examples is used).
      eta: the norm test's tolerance.
      theta: the inner-product tolerance.
      nu: the orthogonality tolerance.
      mode: ``"per_tensor"`` or ``"global"`` (see :func:`inner_product_test`).
      test_interval: test every this many steps (reference 1).
      round_to: None (exact sizes, the reference), ``"power_of_two"`` or an int multiple.
      lr_rule: None (keep the learning rate), ``"linear"`` or ``"sqrt"``.
      max_examples: stop once this many examples have been processed (None: no limit).
      callback: ``callback(step, params, batch_size) -> bool`` after every step (on the
        host); returning True stops the loop.
      seed: seed of the host shuffling.

    Returns:
      A :class:`GrowBatchResult`.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax
      >>> from jaxopt_papers import batch_size
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(512, 3)); y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=512)
      >>> loss = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
      >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.05)
      >>> r = batch_size.grow_batch_training(loss, jnp.zeros(3), tx, (x, y), num_steps=60,
      ...     initial_batch_size=8, max_batch_size=512, round_to="power_of_two", lr_rule="sqrt")
      >>> int(r.batch_sizes[0]), int(r.batch_sizes[-1]) > 8, bool(r.losses[-1] < 1.5)
      (8, True, True)
    """
    owner = "grow_batch_training"
    num_steps = V.check_static_int(owner, "num_steps", num_steps, low=1)
    initial_batch_size = V.check_static_int(owner, "initial_batch_size", initial_batch_size, low=2)
    max_batch_size = V.check_static_int(owner, "max_batch_size", max_batch_size, low=2)
    test_interval = V.check_static_int(owner, "test_interval", test_interval, low=1)
    if test is not None:
        V.check_static_choice(owner, "test", test, _TESTS)
    V.check_static_choice(owner, "mode", mode, _MODES)
    if lr_rule is not None:
        V.check_static_choice(owner, "lr_rule", lr_rule, ("linear", "sqrt"))
    if round_to is not None and round_to != "power_of_two":
        V.check_static_int(owner, "round_to", round_to, low=1)
    for name, value in (("eta", eta), ("theta", theta), ("nu", nu)):
        _check_positive(owner, name, value)
    arrays = jax.tree.leaves(data)
    num = {np.shape(a)[0] for a in arrays}
    if not arrays or len(num) != 1:
        raise ValueError(
            f"{owner}: `data` must be a pytree of arrays with a common leading example axis, got "
            f"leading dimensions {sorted(num)}."
        )
    num = num.pop()
    max_batch_size = min(max_batch_size, num)
    if initial_batch_size > max_batch_size:
        raise ValueError(
            f"{owner}: `initial_batch_size` ({initial_batch_size}) must be at most "
            f"`max_batch_size` and the number of examples ({max_batch_size})."
        )
    data = jax.tree.map(np.asarray, data)
    state = optimizer.init(params)
    hyper = getattr(state, "hyperparams", None)
    if lr_rule is not None and (not isinstance(hyper, dict) or "learning_rate" not in hyper):
        raise TypeError(
            f"{owner}: `lr_rule={lr_rule!r}` needs an optimizer made with "
            f"`optax.inject_hyperparams` and a `learning_rate` hyperparameter."
        )
    lr0 = None if not isinstance(hyper, dict) else hyper.get("learning_rate")

    def one(p, example):
        return loss_fn(p, jax.tree.map(lambda a: a[None], example))

    def apply(p, s, grads):
        updates, s = optimizer.update(grads, s, p)
        return jax.tree.map(lambda a, u: a + u.astype(a.dtype), p, updates), s

    @jax.jit
    def plain_step(p, s, batch):
        value, grads = jax.value_and_grad(loss_fn)(p, batch)
        p, s = apply(p, s, grads)
        return p, s, value

    @jax.jit
    def test_step(p, s, batch, b):
        values, per_ex = jax.vmap(jax.value_and_grad(one), (None, 0))(p, batch)
        grads = jax.tree.map(lambda g: jnp.mean(g, axis=0), per_ex)
        kw = dict(max_batch_size=max_batch_size)
        if test == "norm":
            nxt = norm_test(per_ex, b, eta, **kw)
        elif test == "inner_product":
            nxt = inner_product_test(per_ex, b, theta, mode=mode, **kw)
        elif test == "orthogonality":
            nxt = orthogonality_test(per_ex, b, nu, mode=mode, **kw)
        else:
            nxt = augmented_inner_product_test(per_ex, b, theta, nu, mode=mode, **kw)
        p, s = apply(p, s, grads)
        return p, s, jnp.mean(values), nxt

    order = _epochs(num, np.random.default_rng(seed))
    b = initial_batch_size
    sizes, losses, seen, lrs = [], [], [], []
    total = 0
    start = time.perf_counter()
    for step in range(num_steps):
        idx = np.fromiter(order, dtype=np.int64, count=b)
        batch = jax.tree.map(lambda a: a[idx], data)
        hyper = getattr(state, "hyperparams", None)
        lr_now = float(hyper["learning_rate"]) if lr0 is not None else float("nan")
        if test is not None and step % test_interval == 0 and b < max_batch_size:
            params, state, value, nxt = test_step(params, state, batch, jnp.int32(b))
            new_b = min(_round_up(int(nxt), round_to), max_batch_size)
        else:
            params, state, value = plain_step(params, state, batch)
            new_b = b
        total += b
        sizes.append(b)
        losses.append(float(value))
        seen.append(total)
        lrs.append(lr_now)
        if new_b > b:
            b = new_b
            if lr_rule is not None:
                lr = scale_lr_for_batch(lr0, initial_batch_size, b, lr_rule)
                state = state._replace(
                    hyperparams={**state.hyperparams, "learning_rate": jnp.asarray(lr, lr0.dtype)}
                )
        stop = callback is not None and bool(callback(step, params, sizes[-1]))
        if stop or (max_examples is not None and total >= max_examples):
            break
    return GrowBatchResult(
        params=params,
        opt_state=state,
        batch_sizes=np.asarray(sizes),
        losses=np.asarray(losses),
        examples=np.asarray(seen),
        learning_rates=np.asarray(lrs),
        seconds=time.perf_counter() - start,
    )
