"""Small offline workloads shared by the tour and the benchmarks (AlgoPerf style, CPU sized).

A :class:`Workload` bundles, as AlgoPerf's ``Workload`` does, a data set, a model (``init`` and
``apply``), a training loss, an evaluation metric on held-out data and a **target** on that
metric, so that optimizers can be compared by steps-to-target and time-to-target:

========================  =============================================  ==============  ======
workload                  model                                          metric          target
========================  =============================================  ==============  ======
:func:`digits_mlp`        MLP 64-128-10 (ReLU), 1000 steps               test accuracy   0.97
:func:`digits_cnn`        conv 3x3 1->16, conv 3x3/2 16->32, dense 512   test accuracy   0.97
                          ->10 (ReLU), 400 steps
:func:`teacher_student`   MLP 16-128-1 (tanh) fits a 16-32-1 teacher,    test MSE        0.05
                          1000 steps
========================  =============================================  ==============  ======

The digits workloads use scikit-learn's bundled ``load_digits`` (1797 8x8 images, no download)
with a fixed 80/20 split and features standardised with the training split's statistics.
The teacher–student data are generated with a fixed NumPy seed; targets are normalised to unit
variance, so a test MSE of 1 is what predicting zero gives.

Targets were set AlgoPerf-style, from what ``optax.adamw`` (learning rate 3e-3) reaches on
every one of three seeds within the step budget (``num_steps``, AlgoPerf's ``step_hint``),
rounded down. All use minibatches of 128.

Everything is pure JAX (no flax; convolutions in NHWC/HWIO layout, equal to
``jax.lax.conv_general_dilated``) and float32 whatever ``jax_enable_x64`` says.
:func:`make_train` builds a pure, jittable training run: minibatches are drawn by index
arrays (a fresh permutation of the training set per epoch, drawn on the host so that every
optimizer sees the same batches for a seed) and the whole loop is a ``lax.scan``, so no Python
runs between steps.

Example::

    import optax
    from jaxopt_papers.tour import workloads

    wl = workloads.digits_mlp()
    result = workloads.train(wl, optax.adam(3e-3), seed=0)
    print(result.eval_metric[-1], workloads.steps_to_target(wl, result))

scikit-learn is needed only for the digits workloads (``pip install "jaxopt-papers[tour]"``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "Contender",
    "TrainResult",
    "Workload",
    "all_workloads",
    "batch_indices",
    "cnn_apply",
    "contender_styles",
    "conv2d",
    "conv2d_xla",
    "dense",
    "digits_autoencoder",
    "digits_cnn",
    "digits_mlp",
    "first_order_contenders",
    "init_params",
    "load_digits_split",
    "make_train",
    "mlp_apply",
    "steps_to_target",
    "teacher_student",
    "train",
]

F32 = jnp.float32
Params = Any
Batch = tuple[jax.Array, jax.Array]


# --------------------------------------------------------------------------- the workload type


@dataclasses.dataclass(frozen=True, eq=False)
class Workload:
    """A data set, a model, a loss, an evaluation metric and a target on it.

    Attributes:
      name: short identifier (``"digits_mlp"``...).
      description: one line for tables and plots.
      init: ``init(key) -> params`` (a dict of float32 arrays; kernels ``(in, out)`` and
        ``(kh, kw, in, out)``, output channels last).
      apply: ``apply(params, x) -> outputs`` (logits or predictions).
      loss: ``loss(params, (x, y)) -> scalar`` training loss on a batch.
      metric: ``metric(params, (x, y)) -> scalar`` evaluation metric on a batch.
      metric_name: ``"test_accuracy"`` or ``"test_mse"``.
      target: the value of the metric that counts as solved.
      higher_is_better: whether reaching the target means ``metric >= target``.
      data: ``{"x_train", "y_train", "x_test", "y_test"}`` arrays.
      batch_size: minibatch size of the training loop.
      num_steps: the step budget (AlgoPerf's ``step_hint``).
      eval_every: evaluation period in steps (resolution of steps-to-target).
    """

    name: str
    description: str
    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    loss: Callable[[Params, Batch], jax.Array]
    metric: Callable[[Params, Batch], jax.Array]
    metric_name: str
    target: float
    higher_is_better: bool
    data: dict[str, jax.Array]
    batch_size: int
    num_steps: int
    eval_every: int

    @property
    def num_train(self) -> int:
        return int(self.data["x_train"].shape[0])

    @property
    def num_params(self) -> int:
        shapes = jax.eval_shape(self.init, jax.random.key(0))
        return sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))

    def reached(self, metric) -> jax.Array:
        """Whether ``metric`` meets the target (elementwise, NaN never does)."""
        metric = jnp.asarray(metric)
        return metric >= self.target if self.higher_is_better else metric <= self.target


# ------------------------------------------------------------------------------- layers


def _normal(key: jax.Array, shape: tuple[int, ...], fan_in: int, gain: float) -> jax.Array:
    return jax.random.normal(key, shape, F32) * F32(gain / math.sqrt(fan_in))


def dense(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """``x @ w + b`` with a ``(in, out)`` kernel."""
    return x @ params["w"] + params["b"]


def _same_pads(size: int, k: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def conv2d(params: dict[str, jax.Array], x: jax.Array, stride: int = 1) -> jax.Array:
    """2-D cross-correlation with ``SAME`` padding, NHWC input, HWIO kernel, plus bias.

    The same result as ``jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
    dimension_numbers=("NHWC", "HWIO", "NHWC"))`` (tested), computed as patches @ kernel
    ("im2col"): inside ``lax.scan`` XLA:CPU runs its native convolution several times slower
    than outside a loop (jax-ml/jax#12868), while the matmul form stays fast everywhere.
    """
    w = params["w"]
    kh, kw, c_in, c_out = w.shape
    _, h, wd, _ = x.shape
    (t, b), (lft, r) = _same_pads(h, kh, stride), _same_pads(wd, kw, stride)
    xp = jnp.pad(x, ((0, 0), (t, b), (lft, r), (0, 0)))
    ho, wo = -(-h // stride), -(-wd // stride)
    cols = [
        xp[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.concatenate(cols, axis=-1)  # (n, ho, wo, kh * kw * c_in), (i, j, c) order
    return patches @ w.reshape(kh * kw * c_in, c_out) + params["b"]


def conv2d_xla(params: dict[str, jax.Array], x: jax.Array, stride: int = 1) -> jax.Array:
    """:func:`conv2d` by ``jax.lax.conv_general_dilated`` (NHWC/HWIO, ``SAME``)."""
    y = jax.lax.conv_general_dilated(
        x,
        params["w"],
        window_strides=(stride, stride),
        padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + params["b"]


def _dense_init(key: jax.Array, n_in: int, n_out: int, gain: float) -> dict[str, jax.Array]:
    return {"w": _normal(key, (n_in, n_out), n_in, gain), "b": jnp.zeros((n_out,), F32)}


def _conv_init(key: jax.Array, c_in: int, c_out: int, gain: float) -> dict[str, jax.Array]:
    w = _normal(key, (3, 3, c_in, c_out), 9 * c_in, gain)
    return {"w": w, "b": jnp.zeros((c_out,), F32)}


def mlp_apply(params: dict, x: jax.Array, activation: Callable = jax.nn.relu) -> jax.Array:
    """A plain MLP: ``params = {"dense0": ..., "dense1": ..., ...}`` in order."""
    n = len(params)
    for i in range(n):
        x = dense(params[f"dense{i}"], x)
        if i < n - 1:
            x = activation(x)
    return x


def cnn_apply(params: dict, x: jax.Array) -> jax.Array:
    """conv 3x3 (stride 1) -> ReLU -> conv 3x3 (stride 2) -> ReLU -> flatten -> dense."""
    x = jax.nn.relu(conv2d(params["conv0"], x, stride=1))
    x = jax.nn.relu(conv2d(params["conv1"], x, stride=2))
    x = x.reshape(x.shape[0], -1)
    return dense(params["head"], x)


# ------------------------------------------------------------------------ losses and metrics


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return (jnp.argmax(logits, axis=-1) == labels).astype(F32).mean()


def _mse(pred: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((pred[..., 0] - y) ** 2)


def _classification(apply):
    loss = lambda p, batch: _cross_entropy(apply(p, batch[0]), batch[1])
    metric = lambda p, batch: _accuracy(apply(p, batch[0]), batch[1])
    return loss, metric


# ------------------------------------------------------------------------------------ data


@functools.lru_cache(maxsize=1)
def load_digits_split() -> dict[str, np.ndarray]:
    """scikit-learn's digits, fixed 80/20 stratified split, standardised with train statistics.

    Returns NumPy arrays ``x_train (1437, 64)``, ``y_train``, ``x_test (360, 64)``, ``y_test``
    (float32 features, int32 labels).
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The digits workloads need scikit-learn, which is not a runtime dependency of "
            'jaxopt_papers. Install the tour extra: pip install "jaxopt-papers[tour]"'
        ) from err
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    out = {
        "x_train": ((x_tr - mean) / std).astype(np.float32),
        "y_train": y_tr.astype(np.int32),
        "x_test": ((x_te - mean) / std).astype(np.float32),
        "y_test": y_te.astype(np.int32),
    }
    for v in out.values():
        v.setflags(write=False)
    return out


def _to_jax(arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v) for k, v in arrays.items()}


# ------------------------------------------------------------------------------- workloads


def digits_mlp(num_steps: int = 1000) -> Workload:
    """MLP 64-128-10 (ReLU) on ``load_digits``; target test accuracy 0.97."""

    def init(key):
        k0, k1 = jax.random.split(key)
        return {
            "dense0": _dense_init(k0, 64, 128, math.sqrt(2.0)),
            "dense1": _dense_init(k1, 128, 10, 1.0),
        }

    loss, metric = _classification(mlp_apply)
    return Workload(
        name="digits_mlp",
        description="MLP 64-128-10 on digits",
        init=init,
        apply=mlp_apply,
        loss=loss,
        metric=metric,
        metric_name="test_accuracy",
        target=0.97,
        higher_is_better=True,
        data=_to_jax(load_digits_split()),
        batch_size=128,
        num_steps=num_steps,
        eval_every=10,
    )


def digits_cnn(num_steps: int = 400) -> Workload:
    """Two 3x3 convs (1->16, stride 1; 16->32, stride 2) + dense 512->10 on the 8x8 digits."""

    def init(key):
        k0, k1, k2 = jax.random.split(key, 3)
        gain = math.sqrt(2.0)
        return {
            "conv0": _conv_init(k0, 1, 16, gain),
            "conv1": _conv_init(k1, 16, 32, gain),
            "head": _dense_init(k2, 4 * 4 * 32, 10, 1.0),
        }

    data = dict(load_digits_split())
    data["x_train"] = data["x_train"].reshape(-1, 8, 8, 1)
    data["x_test"] = data["x_test"].reshape(-1, 8, 8, 1)
    loss, metric = _classification(cnn_apply)
    return Workload(
        name="digits_cnn",
        description="CNN (conv16, conv32/2, dense) on 8x8 digits",
        init=init,
        apply=cnn_apply,
        loss=loss,
        metric=metric,
        metric_name="test_accuracy",
        target=0.97,
        higher_is_better=True,
        data=_to_jax(data),
        batch_size=128,
        num_steps=num_steps,
        eval_every=20,
    )


@functools.lru_cache(maxsize=4)
def _teacher_student_data(
    num_train: int, num_test: int, dim: int, teacher_width: int, noise: float
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    w1 = rng.standard_normal((dim, teacher_width)) / math.sqrt(dim)
    b1 = 0.1 * rng.standard_normal(teacher_width)
    w2 = rng.standard_normal((teacher_width, 1)) / math.sqrt(teacher_width)
    x = rng.standard_normal((num_train + num_test, dim))
    y = (np.tanh(2.0 * (x @ w1 + b1)) @ w2)[:, 0]
    y = y / y[:num_train].std()
    y = y + noise * rng.standard_normal(y.shape)
    out = {
        "x_train": x[:num_train].astype(np.float32),
        "y_train": y[:num_train].astype(np.float32),
        "x_test": x[num_train:].astype(np.float32),
        "y_test": y[num_train:].astype(np.float32),
    }
    for v in out.values():
        v.setflags(write=False)
    return out


def teacher_student(num_steps: int = 1000, width: int = 128) -> Workload:
    """Student MLP 16-``width``-1 (tanh) regresses a random 16-32-1 tanh teacher (+ noise 0.1).

    Labels are normalised to unit variance on the training split, so the test MSE is a fraction
    of unexplained variance (the noise floor is 0.01).
    """
    dim = 16

    def init(key):
        k0, k1 = jax.random.split(key)
        return {
            "dense0": _dense_init(k0, dim, width, 1.0),
            "dense1": _dense_init(k1, width, 1, 1.0),
        }

    apply = functools.partial(mlp_apply, activation=jnp.tanh)
    loss = lambda p, batch: _mse(apply(p, batch[0]), batch[1])
    return Workload(
        name="teacher_student",
        description=f"teacher-student MLP {dim}-{width}-1 regression",
        init=init,
        apply=apply,
        loss=loss,
        metric=loss,
        metric_name="test_mse",
        target=0.05,
        higher_is_better=False,
        data=_to_jax(_teacher_student_data(4096, 1024, dim, 32, 0.1)),
        batch_size=128,
        num_steps=num_steps,
        eval_every=10,
    )


def all_workloads() -> list[Workload]:
    """The three workloads at their default step budgets."""
    return [digits_mlp(), digits_cnn(), teacher_student()]


# ------------------------------------------------------------------- the digits autoencoder


class _KernelDense:
    """``x @ params["kernel"] + params["bias"]``: a dense layer that
    :func:`jaxopt_papers.curvature.value_grad_and_stats` recognises (registered on first use)."""

    def __init__(self, params: dict[str, jax.Array]):
        self.params = params

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.params["kernel"] + self.params["bias"]


def _register_kernel_dense() -> None:
    from jaxopt_papers import curvature

    curvature.register_layer(
        _KernelDense,
        input_rows=lambda m, x: x.reshape(-1, x.shape[-1]),
        weight=lambda m: m.params["kernel"],
        has_bias=lambda m: True,
    )


@functools.lru_cache(maxsize=1)
def _digits_pixels() -> dict[str, np.ndarray]:
    """The digits split of :func:`load_digits_split` as raw pixels scaled to ``[0, 1]``."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The digits workloads need scikit-learn, which is not a runtime dependency of "
            'jaxopt_papers. Install the tour extra: pip install "jaxopt-papers[tour]"'
        ) from err
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, _, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    out = {
        "x_train": (x_tr / 16.0).astype(np.float32),
        "y_train": (x_tr / 16.0).astype(np.float32),
        "x_test": (x_te / 16.0).astype(np.float32),
        "y_test": (x_te / 16.0).astype(np.float32),
    }
    for v in out.values():
        v.setflags(write=False)
    return out


def digits_autoencoder(
    num_steps: int = 1000, widths: tuple[int, ...] = (256, 128, 64, 16)
) -> Workload:
    """The classic deep autoencoder (Hinton & Salakhutdinov, 2006) scaled to the 8x8 digits.

    Encoder 64-256-128-64-16 and its mirror 16-64-128-256-64 (tanh hidden layers, a linear
    16-unit code layer, logits out); the loss is the sigmoid cross-entropy between the logits
    and the pixels scaled to ``[0, 1]``, summed over the 64 pixels and averaged over the batch,
    as in kfac-jax's MNIST autoencoder example. Minibatches of 256. The metric is that loss on
    the test split; target 15.5 (what ``optax.adam(1e-3)`` reaches within 800 of the 1000
    default steps on each of three seeds, rounded up: ``benchmarks/second_order.py``). The
    layers are ``{"layer0": {"kernel", "bias"}, ...}`` dicts, kernels ``(in, out)``, captured
    by :func:`jaxopt_papers.curvature.value_grad_and_stats`, so MKOR
    applies; kfac-jax's automatic registration finds them too.

    Args:
      num_steps: the step budget (default 1000).
      widths: the encoder's widths after the 64 inputs; the decoder mirrors them.

    Returns:
      The :class:`Workload`.

    Example:
      >>> from jaxopt_papers.tour import workloads
      >>> wl = workloads.digits_autoencoder()
      >>> params = workloads.init_params(wl, 0)
      >>> print(sorted(params)[:2], wl.apply(params, wl.data["x_test"][:3]).shape)
      ['layer0', 'layer1'] (3, 64)
    """
    _register_kernel_dense()
    sizes = (64, *widths, *widths[-2::-1], 64)
    num_layers = len(sizes) - 1
    code = len(widths) - 1  # the linear code layer

    def init(key):
        keys = jax.random.split(key, num_layers)
        return {
            f"layer{i}": {
                "kernel": _normal(keys[i], (sizes[i], sizes[i + 1]), sizes[i], 1.0),
                "bias": jnp.zeros((sizes[i + 1],), F32),
            }
            for i in range(num_layers)
        }

    def apply(params, x):
        for i in range(num_layers):
            x = _KernelDense(params[f"layer{i}"])(x)
            if i < num_layers - 1 and i != code:
                x = jnp.tanh(x)
        return x

    def loss(params, batch):
        bce = optax.sigmoid_binary_cross_entropy(apply(params, batch[0]), batch[1])
        return bce.sum(axis=-1).mean()

    arch = "-".join(str(s) for s in sizes)
    return Workload(
        name="digits_autoencoder",
        description=f"autoencoder {arch} on digits",
        init=init,
        apply=apply,
        loss=loss,
        metric=loss,
        metric_name="test_bce",
        target=15.5,
        higher_is_better=False,
        data=_to_jax(_digits_pixels()),
        batch_size=256,
        num_steps=num_steps,
        eval_every=20,
    )


# ---------------------------------------------------------------------------- training loop


class TrainResult(NamedTuple):
    """What a training run returns (all arrays; use ``jax.device_get`` to bring them home).

    Attributes:
      loss: ``(num_steps,)`` minibatch training loss at each step (before the update).
      eval_step: ``(num_evals + 1,)`` steps at which the model was evaluated (0 included).
      eval_metric: the workload's metric on the test split at those steps.
      eval_train_loss: the training loss on the whole training split at those steps.
      params: the final parameters.
    """

    loss: jax.Array
    eval_step: jax.Array
    eval_metric: jax.Array
    eval_train_loss: jax.Array
    params: Params


def batch_indices(workload: Workload, seed: int, num_steps: int | None = None) -> np.ndarray:
    """``(num_steps, batch_size)`` int32 minibatch indices: consecutive fresh permutations.

    Drawn on the host with NumPy (seeded), so every optimizer sees the same batches for a seed.
    """
    num_steps = workload.num_steps if num_steps is None else int(num_steps)
    n, bs = workload.num_train, workload.batch_size
    rng = np.random.default_rng([seed, 0x5EED])
    num_epochs = -(-num_steps * bs // n)
    perms = np.concatenate([rng.permutation(n) for _ in range(num_epochs)])
    return perms[: num_steps * bs].reshape(num_steps, bs).astype(np.int32)


def init_params(workload: Workload, seed: int) -> Params:
    """``workload.init(jax.random.key(seed))``, jitted once per workload."""
    return _jitted_init(workload)(jax.random.key(seed))


@functools.lru_cache(maxsize=32)
def _jitted_init(workload: Workload):
    return jax.jit(workload.init)


def make_train(
    workload: Workload,
    tx: optax.GradientTransformation,
    num_steps: int | None = None,
    eval_every: int | None = None,
) -> Callable[[Params, jax.Array, dict[str, jax.Array]], TrainResult]:
    """A pure training run ``run(params, batch_idx, data) -> TrainResult``, ready for ``jax.jit``.

    ``params`` are the initial parameters (:func:`init_params`), ``batch_idx`` the
    ``(num_steps, batch_size)`` minibatch indices (:func:`batch_indices`) and ``data`` the
    workload's arrays (``workload.data``; passed as an argument so they stay out of the compiled
    program's constants). The loop is a ``lax.scan`` over evaluation periods, each a
    ``lax.scan`` over ``eval_every`` steps; ``num_steps`` must be a multiple of ``eval_every``.
    """
    num_steps = workload.num_steps if num_steps is None else int(num_steps)
    eval_every = workload.eval_every if eval_every is None else int(eval_every)
    if num_steps <= 0 or eval_every <= 0 or num_steps % eval_every:
        raise ValueError(
            f"num_steps ({num_steps}) must be a positive multiple of eval_every ({eval_every})"
        )
    num_evals = num_steps // eval_every
    grad_fn = jax.value_and_grad(workload.loss)

    def run(params: Params, batch_idx: jax.Array, data: dict[str, jax.Array]) -> TrainResult:
        if batch_idx.shape != (num_steps, workload.batch_size):
            raise ValueError(
                f"batch_idx must have shape {(num_steps, workload.batch_size)}, "
                f"got {batch_idx.shape}"
            )
        opt_state = tx.init(params)
        x_tr, y_tr = data["x_train"], data["y_train"]
        test = (data["x_test"], data["y_test"])
        idx = batch_idx.reshape(num_evals, eval_every, workload.batch_size)

        def evaluate(p):
            return workload.metric(p, test), workload.loss(p, (x_tr, y_tr))

        def step(carry, b_idx):
            p, s = carry
            loss, grads = grad_fn(p, (x_tr[b_idx], y_tr[b_idx]))
            updates, s = tx.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), loss

        def period(carry, period_idx):
            carry, losses = jax.lax.scan(step, carry, period_idx)
            return carry, (losses, *evaluate(carry[0]))

        metric0, train0 = evaluate(params)
        (params, _), (losses, metrics, train_losses) = jax.lax.scan(
            period, (params, opt_state), idx
        )
        return TrainResult(
            loss=losses.reshape(num_steps),
            eval_step=jnp.arange(num_evals + 1, dtype=jnp.int32) * eval_every,
            eval_metric=jnp.concatenate([metric0[None], metrics]),
            eval_train_loss=jnp.concatenate([train0[None], train_losses]),
            params=params,
        )

    return run


def train(
    workload: Workload,
    tx: optax.GradientTransformation,
    seed: int = 0,
    num_steps: int | None = None,
    eval_every: int | None = None,
) -> TrainResult:
    """Jit and run :func:`make_train` once (convenience; benchmarks time the two apart)."""
    run = jax.jit(make_train(workload, tx, num_steps, eval_every))
    params = init_params(workload, seed)
    idx = batch_indices(workload, seed, num_steps)
    return jax.block_until_ready(run(params, idx, workload.data))


def steps_to_target(workload: Workload, result: TrainResult) -> int | None:
    """The first evaluated step at which the metric meets the target, or ``None`` (AlgoPerf's ∞)."""
    reached = np.asarray(workload.reached(np.asarray(result.eval_metric)))
    if not reached.any():
        return None
    return int(np.asarray(result.eval_step)[int(np.argmax(reached))])


# ------------------------------------------------------------------------------ contenders


class Contender(NamedTuple):
    """An optimizer with the learning rate the tour and the benchmarks give it.

    ``build(learning_rate)`` returns the transformation; every other hyperparameter is the
    library's default. One learning rate per optimizer serves every workload (AlgoPerf forbids
    workload-specific look-ups); it was picked from {3e-4, 1e-3, 3e-3, 1e-2} (0.1 for SGD-type)
    on the three workloads, Lion-type ones ~3x smaller than Adam's as the Lion paper advises.
    """

    name: str
    source: str
    learning_rate: float
    build: Callable[[optax.ScalarOrSchedule], optax.GradientTransformation]

    def make(self, learning_rate: optax.ScalarOrSchedule | None = None):
        lr = self.learning_rate if learning_rate is None else learning_rate
        return self.build(lr)


def _ours(name: str, lr: float, **kwargs: Any) -> Contender | None:
    import jaxopt_papers

    fn = getattr(jaxopt_papers, name, None)
    if fn is None:  # a module still being written; the final library has them all
        return None
    label = name + (f"({kwargs['kernel']})" if "kernel" in kwargs else "")
    return Contender(label, "jaxopt_papers", lr, lambda lr_: fn(lr_, **kwargs))


def first_order_contenders(names: list[str] | None = None) -> list[Contender]:
    """Our first-order optimizers and optax's, in table order (``names`` filters by label)."""
    ours = [
        _ours("adamp", 3e-3),
        _ours("sgdp", 0.1, momentum=0.9, nesterov=True),
        _ours("adan", 1e-2),
        _ours("lion", 1e-3),
        _ours("lion_k", 1e-3, kernel="tanh", kernel_scale=1000.0),
        _ours("exadam", 3e-3),
        _ours("spam", 3e-3),
        _ours("stable_spam", 3e-3),
        _ours("diffgrad", 1e-2),
    ]
    anchors = [
        Contender("optax.adam", "optax", 3e-3, lambda lr: optax.adam(lr)),
        Contender("optax.adamw", "optax", 3e-3, lambda lr: optax.adamw(lr)),
        Contender("optax.lion", "optax", 1e-3, lambda lr: optax.lion(lr)),
        Contender("optax.adan", "optax", 1e-2, lambda lr: optax.adan(lr)),
    ]
    found = [c for c in ours if c is not None] + anchors
    if names is None:
        return found
    by_name = {c.name: c for c in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown optimizer(s) {unknown}; available: {sorted(by_name)}")
    return [by_name[n] for n in names]


def contender_styles(names: list[str]) -> dict[str, dict[str, Any]]:
    """Matplotlib line styles: ours solid in distinct colours; an optax anchor dashed, in the
    colour of our optimizer of the same name (``optax.lion`` like ``lion``), else grey/black."""
    palette = [f"C{i}" for i in range(10)] + ["olive", "teal", "navy", "brown"]
    ours = [n for n in names if not n.startswith("optax.")]
    styles = {n: {"color": palette[i % len(palette)], "ls": "-"} for i, n in enumerate(ours)}
    fallback = iter(["k", "0.45", "0.7", "0.25"] * 4)
    for n in names:
        if n.startswith("optax."):
            twin = styles.get(n.removeprefix("optax."))
            color = twin["color"] if twin else next(fallback)
            styles[n] = {"color": color, "ls": "--"}
    return styles
