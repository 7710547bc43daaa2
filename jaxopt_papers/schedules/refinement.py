r"""Learning-rate schedules by refinement, and linear decay.

Paper: Aaron Defazio, Ashok Cutkosky, Harsh Mehta, Konstantin Mishchenko, "When, Why and How
Much? Adaptive Learning Rate Scheduling by Refinement", arXiv:2310.07831 (2023).
Reference code: facebookresearch/adaptive_scheduling (commit 37a8a9b): ``find_schedule.py``
(``find_closed_form_schedule``), the filtering in ``visual.py`` (lines 139-159, 203-211) and the
README.

**Linear decay** is the paper's baseline (worst-case optimal for the last iterate):
``η_t = η_peak (1 - t/T)`` for ``t = 0 .. T-1``, optionally after a linear warm-up.

**Refinement** turns the gradient norms ``G_1 .. G_n`` recorded in a previous run into a schedule
of ``T`` steps (``T = num_steps``, default ``n``), in the reference code's order:

1. if ``n < T``: interpolate ``G`` linearly to ``T`` points (``visual.py`` line 139);
2. median filter: ``width = 2 floor(floor(τ T) / 2) + 1`` (odd); pad the **end** of the
   sequence with ``2 width`` values reflected about the last one (``np.pad(mode="reflect")``),
   take the running median of ``width`` values with the edges repeated (``mode="nearest"``),
   drop the padding; this gives ``Ĝ``;
3. interpolate ``Ĝ`` linearly to ``T`` points (the identity when ``n <= T``);
4. weights: ``w_t = Ĝ_t^{-2}`` for SGD-like methods (``kind="sgd"``, ℓ2 norms of the gradient)
   and ``w_t = Ĝ_t^{-1}`` for Adam-like, coordinate-wise methods (``kind="adam"``, **ℓ1** norms
   of the gradient, as the reference script does for its ``norm_sequences_l1`` files);
5. ``s_t = w_t Σ_{p > t} w_p`` for ``t < T``, ``s_T = 0``;
6. ``η_t = η_peak s_t / max_p s_p``.

Constant norms give exact linear decay, to zero at the last step (``linear_decay(peak, T-1)``);
norms that drop early give a warm-up; norms that rise at the end give faster annealing.

Defaults: ``tau=0.1`` (``sigma2 = 0.1`` in ``visual.py`` line 45), ``kind="sgd"`` (the
``weights=None`` default of ``find_closed_form_schedule``, ``find_schedule.py`` line 24).

Differences from the reference code: the median filter is our own NumPy code (the reference
calls ``scipy.ndimage.median_filter``; the tests compare them), so SciPy is not needed. The
reference divides by the last tail sum before normalising by the maximum; the result is the
same after normalisation. The reference drops ``inf`` entries of the recorded norms and its
``visual.py`` clips two values at each end of wandb exports; here non-finite or non-positive
norms are an error and nothing is clipped.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import _validation as V

__all__ = ["RecordGradNormsState", "linear_decay", "record_grad_norms", "refined_schedule"]

_KINDS = ("sgd", "adam")


def _check_int_or_tracer(owner: str, name: str, value: Any, low: int) -> None:
    """A number of steps: a Python int >= low, or a traced integer (not checkable)."""
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) == 0:
        value = value.item()
    V.check_int(owner, name, value, low=low)


def linear_decay(peak_value: float, num_steps: int, warmup_steps: int = 0) -> optax.Schedule:
    """Linear decay to zero, optionally after a linear warm-up (the paper's baseline schedule).

    Paper: Defazio, Cutkosky, Mehta, Mishchenko, "When, Why and How Much? Adaptive Learning
    Rate Scheduling by Refinement", arXiv:2310.07831. With ``T = num_steps`` and
    ``W = warmup_steps``::

        η_t = η_peak t / W                        for t < W
        η_t = η_peak (T - t) / (T - W)            for W <= t < T
        η_t = 0                                   for t >= T

    Without warm-up this is ``η_peak (1 - t/T)``: the first step uses the peak, the last one
    ``η_peak / T``.

    Args:
      peak_value: ``η_peak``, a non-negative number.
      num_steps: ``T``, the length of the run (an int >= 1).
      warmup_steps: ``W``, the length of the warm-up (an int in ``[0, T)``).

    Returns:
      An optax schedule: a function of the step count returning the learning rate.

    Example:
      >>> from jaxopt_papers import schedules
      >>> sched = schedules.linear_decay(1.0, num_steps=4)
      >>> [float(sched(t)) for t in range(5)]
      [1.0, 0.75, 0.5, 0.25, 0.0]
      >>> sched = schedules.linear_decay(1.0, num_steps=6, warmup_steps=2)
      >>> [float(sched(t)) for t in range(7)]
      [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]
    """
    owner = "linear_decay"
    V.check_real(owner, "peak_value", peak_value, low=0.0)
    _check_int_or_tracer(owner, "num_steps", num_steps, 1)
    _check_int_or_tracer(owner, "warmup_steps", warmup_steps, 0)
    if (
        isinstance(num_steps, int)
        and isinstance(warmup_steps, int)
        and not warmup_steps < num_steps
    ):
        raise ValueError(
            f"{owner}: `warmup_steps` must be smaller than `num_steps` ({num_steps}), got "
            f"{warmup_steps!r}."
        )

    def schedule(count):
        t = jnp.asarray(count).astype(jnp.result_type(float))
        w = jnp.asarray(warmup_steps, t.dtype)
        total = jnp.asarray(num_steps, t.dtype)
        warm = t / jnp.maximum(w, 1.0)
        decay = jnp.clip((total - t) / (total - w), 0.0, 1.0)
        return peak_value * jnp.where(t < w, warm, decay)

    return schedule


def _running_median(x: np.ndarray, width: int) -> np.ndarray:
    """Median of ``width`` (odd) consecutive values centred on each entry, edges repeated."""
    half = width // 2
    padded = np.pad(x, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    out = np.empty_like(x)
    rows = max(1, (1 << 22) // width)  # bound the memory of one np.median call
    for start in range(0, len(x), rows):
        out[start : start + rows] = np.median(windows[start : start + rows], axis=1)
    return out


def _interp(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` linearly interpolated to ``length`` equally spaced points of the same span."""
    if len(x) == length:
        return x
    return np.interp(np.linspace(0.0, 1.0, length), np.linspace(0.0, 1.0, len(x)), x)


def refined_weights(
    grad_norms: Any, tau: float = 0.1, kind: str = "sgd", num_steps: int | None = None
) -> np.ndarray:
    """The refined schedule normalised to a peak of 1, as a float64 NumPy array (steps 1-6)."""
    owner = "refined_schedule"
    V.check_static_choice(owner, "kind", kind, _KINDS)
    V.check_real(owner, "tau", tau, low=0.0, high=1.0)
    if isinstance(grad_norms, jax.core.Tracer):
        raise TypeError(
            f"{owner}: `grad_norms` must be a concrete 1-D array (the norms recorded in a "
            f"previous run), got a traced value; build the schedule outside `jit`."
        )
    try:
        g = np.asarray(grad_norms, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}: `grad_norms` must be a 1-D array of numbers, got {grad_norms!r}."
        ) from None
    if g.ndim != 1 or len(g) < 2:
        raise ValueError(
            f"{owner}: `grad_norms` must be a 1-D array of at least 2 norms, got shape {g.shape}."
        )
    bad = ~np.isfinite(g) | (g <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{owner}: `grad_norms` must be finite and positive, got {g[i]!r} at index {i} "
            f"({int(bad.sum())} such entries); drop or fill them before refining."
        )
    if num_steps is None:
        num_steps = len(g)
    V.check_int(owner, "num_steps", num_steps, low=2)
    num_steps = int(num_steps)
    if len(g) < num_steps:
        g = _interp(g, num_steps)
    width = 2 * (int(tau * num_steps) // 2) + 1
    pad = 2 * width
    smooth = _running_median(np.pad(g, (0, pad), mode="reflect"), width)[:-pad]
    smooth = _interp(smooth, num_steps)
    weights = smooth**-2.0 if kind == "sgd" else smooth**-1.0
    tail = np.cumsum(weights[::-1])[::-1]  # tail[t] = sum_{p >= t} w_p
    s = np.zeros(num_steps)
    s[:-1] = weights[:-1] * tail[1:]
    return s / s.max()


def refined_schedule(
    grad_norms: Any,
    peak_value: float,
    tau: float = 0.1,
    kind: str = "sgd",
    num_steps: int | None = None,
) -> optax.Schedule:
    """The refined learning-rate schedule from the gradient norms of a previous run.

    Paper: Defazio, Cutkosky, Mehta, Mishchenko, "When, Why and How Much? Adaptive Learning
    Rate Scheduling by Refinement", arXiv:2310.07831; reference code
    facebookresearch/adaptive_scheduling (``find_closed_form_schedule`` and the README's
    filtering). Record the norms with :func:`record_grad_norms` (ℓ2 for SGD-like methods, ℓ1
    for Adam-like ones), then, with ``T = num_steps``::

        Ĝ   = median filter of G (width 2 floor(floor(τ T)/2) + 1, end padded by reflection),
              interpolated to T steps
        w_t = Ĝ_t^-2 (kind="sgd")   or   Ĝ_t^-1 (kind="adam")
        s_t = w_t Σ_{p>t} w_p,   s_T = 0
        η_t = peak_value s_t / max(s)

    The schedule is computed once, in float64 NumPy, when this function is called; the returned
    function interpolates it (``jnp.interp``), is jit-compatible and returns 0 after ``T``
    steps. Constant norms give linear decay ``peak_value (1 - t/(T-1))`` (zero at the last
    step, ``linear_decay(peak_value, T - 1)``); norms that drop early give a warm-up. Re-tune
    ``peak_value``: the paper does.

    Args:
      grad_norms: 1-D array of the per-step gradient norms of a previous run (finite, positive,
        at least 2 of them): ℓ2 norms for ``kind="sgd"``, ℓ1 norms for ``kind="adam"``.
      peak_value: the largest learning rate of the schedule (a non-negative number).
      tau: the median filter's width as a fraction of ``T``, in ``[0, 1]`` (reference:
        ``sigma2 = 0.1``).
      kind: ``"sgd"`` (weights ``Ĝ⁻²``, SGD-like methods) or ``"adam"`` (weights ``Ĝ⁻¹``,
        coordinate-wise methods such as Adam).
      num_steps: the length ``T`` of the new run (an int >= 2); None: ``len(grad_norms)``.

    Returns:
      An optax schedule: a function of the step count returning the learning rate.

    Example:
      >>> import numpy as np
      >>> from jaxopt_papers import schedules
      >>> sched = schedules.refined_schedule(np.ones(5), peak_value=1.0)  # constant norms
      >>> [round(float(sched(t)), 6) for t in range(6)]
      [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
      >>> dropping = np.r_[np.full(10, 5.0), np.ones(90)]  # large early norms: a warm-up
      >>> sched = schedules.refined_schedule(dropping, peak_value=1.0)
      >>> float(sched(0)) < 0.1, int(np.argmax([sched(t) for t in range(100)])) >= 5
      (True, True)
    """
    V.check_real("refined_schedule", "peak_value", peak_value, low=0.0)
    values = refined_weights(grad_norms, tau, kind, num_steps)
    steps = np.arange(len(values), dtype=np.float64)

    def schedule(count):
        t = jnp.asarray(count).astype(jnp.result_type(float))
        table = jnp.asarray(values, t.dtype)
        return peak_value * jnp.interp(t, jnp.asarray(steps, t.dtype), table, right=0.0)

    return schedule


class RecordGradNormsState(NamedTuple):
    """State of :func:`record_grad_norms`.

    Attributes:
      count: the number of steps seen (int32).
      l2: the ℓ2 norms of the gradient (the whole pytree), one per step (shape
        ``(num_steps,)``), or the last one (a scalar) when ``num_steps`` is None.
      l1: the ℓ1 norms, laid out as ``l2``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import schedules
      >>> state = schedules.record_grad_norms(num_steps=3).init(jnp.zeros(2))
      >>> int(state.count), state.l2.shape
      (0, (3,))
    """

    count: jax.Array
    l2: jax.Array
    l1: jax.Array


def record_grad_norms(num_steps: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Record the ℓ2 and ℓ1 norms of the gradient at every step, for :func:`refined_schedule`.

    Put it first in a chain: it passes the updates through unchanged and stores, in its state,
    ``‖g‖₂`` and ``‖g‖₁`` over the whole pytree (computed in at least float32). With
    ``num_steps`` the norms of steps ``0 .. num_steps-1`` fill arrays of that length (later
    steps are not stored); without it the state holds the last step's norms (collect them, e.g.
    as outputs of a ``lax.scan``). Feed ℓ2 norms to ``refined_schedule(kind="sgd")`` and ℓ1
    norms to ``refined_schedule(kind="adam")``.

    Args:
      num_steps: how many steps to store (an int >= 1), or None to keep only the last norms.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`RecordGradNormsState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxopt_papers import schedules
      >>> tx = optax.chain(schedules.record_grad_norms(num_steps=2), optax.sgd(0.1))
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> for g in (jnp.array([3.0, -4.0]), jnp.array([1.0, 0.0])):
      ...     _, state = tx.update(g, state, params)
      >>> state[0].l2.tolist(), state[0].l1.tolist()
      ([5.0, 1.0], [7.0, 1.0])
    """
    owner = "record_grad_norms"
    if num_steps is not None:
        num_steps = V.check_static_int(owner, "num_steps", num_steps, low=1)
    shape = () if num_steps is None else (num_steps,)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        dtype = V.compute_dtype(*[p.dtype for p in jax.tree.leaves(params)])
        return RecordGradNormsState(
            count=jnp.zeros([], jnp.int32),
            l2=jnp.zeros(shape, dtype),
            l1=jnp.zeros(shape, dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        dtype = state.l2.dtype
        leaves = [g.astype(dtype) for g in jax.tree.leaves(updates)]
        l2 = jnp.sqrt(sum((jnp.sum(g * g) for g in leaves), jnp.zeros([], dtype)))
        l1 = sum((jnp.sum(jnp.abs(g)) for g in leaves), jnp.zeros([], dtype))
        if num_steps is None:
            new_l2, new_l1 = l2, l1
        else:
            new_l2 = state.l2.at[state.count].set(l2, mode="drop")
            new_l1 = state.l1.at[state.count].set(l1, mode="drop")
        count = optax.safe_increment(state.count)
        return updates, RecordGradNormsState(count=count, l2=new_l2, l1=new_l1)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
