r"""SPAM: Spike-Aware Adam with Momentum Reset.

Paper: Tianjin Huang, Ziquan Zhu, Gaojie Jin, Lu Liu, Zhangyang Wang, Shiwei Liu, "SPAM:
Spike-Aware Adam with Momentum Reset for Stable LLM Training", ICLR 2025, arXiv:2501.06842.
Reference code: TianjinYellow/SPAM-Optimizer ``galore_torch/SPAM.py`` (class ``AdamW``,
exported as ``SPAM``; commit e8185fb).

Three counters drive the method: the global step ``K`` (1-based), the bias-correction step ``t``
(never reset; it equals ``K`` because every leaf is updated on every step) and the warm-up
counter ``c`` (starts at ``N + 1``, so there is no warm-up at the start of training). With
``g`` the gradient, ``ΔT = reset_interval``, ``N = warmup_steps``, ``θ = threshold``,
``A = grad_accu_steps``, one step is, in order::

    scale = 1 - 0.99 (1 + cos(π c / (N + 1))) / 2      if c < N,  else 1
    m, v  = 0, 0                                        if K mod ΔT == 0      (momentum reset)
    g     = sign(g) sqrt(θ v)   where g² > θ v          if θ ≠ 0, K ≥ A and K mod ΔT ≥ A
    m     = b1 m + (1 - b1) g
    v     = b2 v + (1 - b2) g²
    x    <- x - lr scale sqrt(1 - b2^t) / (1 - b1^t) · m / (sqrt(v) + eps)
    x    <- x - lr λ x                                  (weight decay after the step)
    c     = 0  if (K + 1) mod ΔT == 0  else c + 1

``v`` in the clipping line is the second moment *before* this step's update (after a reset it is
zero). So at ``K = ΔT, 2ΔT, ...`` the moments restart from zero, the step is scaled by 0.01 and
the scale rises along a half cosine over the next ``N`` steps back to 1; spike clipping is off for
the first ``A`` steps after each reset (``v`` is not yet a useful scale there). Note that ``eps``
is added to ``sqrt(v)`` before the bias correction ``sqrt(1 - b2^t)`` is applied, so SPAM with
``eps = ε`` is Adam with the step-dependent epsilon ``ε / sqrt(1 - b2^t)``.

:func:`scale_by_spam` returns ``scale · sqrt(1 - b2^t)/(1 - b1^t) · m/(sqrt(v) + eps)`` (no
learning rate); :func:`spam` chains it with the learning rate and
:func:`~jaxopt_papers.optimizers._weight_decay.decay_after_step`, which reproduces
``x <- (x - lr·u)(1 - lr λ)`` exactly.

Defaults are the official code's: ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
``eps=1e-6``, ``weight_decay=0``, ``warmup_steps=150``, ``threshold=5000``,
``reset_interval=500`` (``DeltaT``), ``grad_accu_steps=20``. The paper uses θ = 5000,
ΔT = 500, N = 150.

Differences from the reference code:

* The sparse-momentum option (parameter groups with a ``density`` key, which keep moments only
  for a random subset of the entries of 2-D weights and re-sample it at every reset) is not
  implemented: it depends on torch's random stream, and the official training script uses
  ``density=1`` (dense). The official ``correct_bias=False`` switch is not offered either
  (bias correction is always on, the official default).
* ``reset_interval=0`` disables momentum resets and the warm-up that follows them (clipping is
  then active from step ``grad_accu_steps`` on, as in the official code's ``DeltaT == 0``
  branch); the official code would divide by zero.
* Weight decay accepts a schedule and a ``mask``. The official code only decays when
  ``weight_decay > 0``; here the decay is always applied (a no-op for 0), so ``update`` needs
  ``params``.
* For a clipped entry the second moment is updated with ``θ v`` rather than
  ``(sqrt(θ v))²`` (equal up to one rounding; it saves a pass over memory on CPU).
* ``eps`` must be positive (``eps = 0`` divides zero by zero for an entry whose gradient has been
  zero since the last reset). Half-precision (float16, bfloat16) leaves are updated with float32
  arithmetic; the first moment is stored in the param dtype (or ``mu_dtype``), the second one in
  float32 for float16 params (squared gradients underflow in float16), and the updates are returned
  in the gradient dtype.
* ``warmup_steps``, ``reset_interval`` and ``grad_accu_steps`` are structural (Python ints):
  under ``optax.inject_hyperparams`` list them in ``static_args``.
* Note (faithful, not a difference): with ``grad_accu_steps <= 1`` the official code clips the
  first gradient (and, for ``grad_accu_steps = 0``, the gradient at every reset) to zero, since
  ``v = 0`` there; we do the same. Use ``grad_accu_steps >= 2``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.optimizers._weight_decay import decay_after_step

__all__ = ["SPAMState", "scale_by_spam", "spam"]


class SPAMState(NamedTuple):
    """State of :func:`scale_by_spam` (and of the first link of :func:`spam`).

    Attributes:
      count: steps taken ``k`` (int32); the global step is ``K = k + 1`` and the
        bias-correction step ``t`` equals ``K`` (it is never reset).
      warmup_count: the warm-up counter ``c`` (int32), ``N + 1`` at init, 0 before each reset.
      mu: the first moment (param dtype, or ``mu_dtype``).
      nu: the second moment (param dtype; float32 for float16 params).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> state = jop.scale_by_spam(warmup_steps=10).init(jnp.zeros(3))
      >>> int(state.count), int(state.warmup_count)
      (0, 11)
    """

    count: jax.Array
    warmup_count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def warmup_scale(warmup_count: jax.Array, warmup_steps: int) -> jax.Array:
    """The warm-up factor ``1 - 0.99 (1 + cos(π c/(N+1)))/2`` for ``c < N``, else 1.

    Args:
      warmup_count: the warm-up counter ``c`` (an int array).
      warmup_steps: ``N``.

    Returns:
      The factor, in the default float dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.optimizers.spam import warmup_scale
      >>> [round(float(x), 4) for x in warmup_scale(jnp.arange(4), 2)]
      [0.01, 0.2575, 1.0, 1.0]
    """
    c = jnp.asarray(warmup_count, dtype=float)
    death = 0.99 * (1 + jnp.cos(jnp.pi * c / (warmup_steps + 1))) / 2
    return jnp.where(warmup_count < warmup_steps, 1 - death, jnp.ones_like(death))


def false_after(x: jax.Array) -> jax.Array:
    """A bool scalar that is always False but depends on ``x`` (one element of it, read bitwise).

    XLA on CPU orders loop fusions only by data dependencies (optimisation barriers are removed
    before fusion), and copies a donated buffer when a fusion writing it in place is not ordered
    after every other reader of its old value. ``where(flag | false_after(x), ...)`` makes a
    fusion depend on the one producing ``x`` at the cost of reading a single element:
    ``b & ~b`` is 0 for every bit pattern (NaN and inf included), but XLA does not fold it.

    Args:
      x: any array.

    Returns:
      A False bool scalar computed from ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.optimizers.spam import false_after
      >>> bool(false_after(jnp.array([jnp.nan, 1.0])))
      False
    """
    if x.size == 0:
        return jnp.zeros([], bool)
    bits = jax.lax.bitcast_convert_type(x.reshape(-1)[0], jnp.dtype(f"uint{8 * x.dtype.itemsize}"))
    return (bits & ~bits) != 0


def scale_by_spam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    warmup_steps: int = 150,
    threshold: float = 5000.0,
    reset_interval: int = 500,
    grad_accu_steps: int = 20,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """SPAM's direction (warm-up scale and bias corrections included), before the learning rate.

    Paper: Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM
    Training", ICLR 2025, arXiv:2501.06842; reference code TianjinYellow/SPAM-Optimizer
    ``galore_torch/SPAM.py``. With ``K`` the global step (from 1), ``c`` the warm-up counter
    (``N + 1`` at the start, 0 after each reset), ``N = warmup_steps``, ``θ = threshold``,
    ``ΔT = reset_interval`` and ``A = grad_accu_steps``::

        scale = 1 - 0.99 (1 + cos(π c / (N + 1))) / 2      if c < N,  else 1
        m, v  = 0, 0                                        if K mod ΔT == 0   (reset)
        g     = sign(g) sqrt(θ v)   where g² > θ v          if θ ≠ 0, K ≥ A, K mod ΔT ≥ A
        m     = b1 m + (1 - b1) g ;   v = b2 v + (1 - b2) g²
        u     = scale sqrt(1 - b2^K) / (1 - b1^K) · m / (sqrt(v) + eps)

    ``v`` in the clipping line is the second moment before this step. The direction is ``u``;
    :func:`spam` adds the learning rate and the weight decay. Defaults are the official code's:
    ``b1=0.9``, ``b2=0.999``, ``eps=1e-6``, ``warmup_steps=150``, ``threshold=5000``,
    ``reset_interval=500``, ``grad_accu_steps=20``.

    Args:
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: added to ``sqrt(v)`` (before the bias correction); > 0.
      warmup_steps: ``N``, the length of the cosine warm-up after each reset (structural).
      threshold: ``θ``, the spike threshold (entries with ``g² > θ v`` are clipped); 0 turns
        clipping off.
      reset_interval: ``ΔT``, the momentum-reset period; 0 turns resets off (structural).
      grad_accu_steps: ``A``, the steps after each reset without clipping (structural).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`SPAMState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_spam()
      >>> u, state = tx.update(jnp.ones(3), tx.init(jnp.zeros(3)))
      >>> u.shape
      (3,)
    """
    owner = "spam"
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_eps(owner, "eps", eps, positive=True)
    V.check_real(owner, "threshold", threshold, low=0.0)
    warmup_steps = V.check_static_int(owner, "warmup_steps", warmup_steps, low=0)
    delta_t = V.check_static_int(owner, "reset_interval", reset_interval, low=0)
    grad_accu_steps = V.check_static_int(owner, "grad_accu_steps", grad_accu_steps, low=0)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        return SPAMState(
            count=jnp.zeros([], jnp.int32),
            warmup_count=jnp.asarray(warmup_steps + 1, jnp.int32),
            mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=V.second_moment_zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.nu)
        step = optax.safe_increment(state.count)  # K = t
        clip_on = (jnp.asarray(threshold) != 0) & (step >= grad_accu_steps)
        if delta_t:
            reset = step % delta_t == 0
            clip_on = clip_on & (step % delta_t >= grad_accu_steps)
        else:
            reset = jnp.zeros([], bool)

        t = jnp.asarray(step, dtype=float)
        coef = warmup_scale(state.warmup_count, warmup_steps)
        coef = coef * jnp.sqrt(1 - jnp.power(b2, t)) / (1 - jnp.power(b1, t))

        def moments(g, m, v):
            dtype = V.compute_dtype(g.dtype, m.dtype, v.dtype)
            g = g.astype(dtype)

            def clip_terms(v, reset):  # v after the reset, θ v, g² and the spike mask
                v = jnp.where(reset, jnp.zeros_like(v), v).astype(dtype)
                thv = jnp.asarray(threshold, dtype) * v
                g2 = g * g
                return v, thv, g2, clip_on & (g2 > thv)

            m = jnp.where(reset, jnp.zeros_like(m), m).astype(dtype)
            _, thv, _, clip = clip_terms(v, reset)
            m = b1 * m + (1 - b1) * jnp.where(clip, jnp.copysign(jnp.sqrt(thv), g), g)
            # The m and v updates are two loop fusions that both read the old v. Making the v
            # update depend on the new m (one element) orders it last, so XLA writes the new v
            # in place over the donated old one instead of first copying the old v.
            v, thv, g2, clip = clip_terms(v, reset | false_after(m))
            # A clipped entry has g² = θ v (up to rounding): writing the second moment without
            # the square root keeps XLA from materialising sqrt(θ v) for two consumers.
            v = b2 * v + (1 - b2) * jnp.where(clip, thv, g2)
            return m, v

        def leaf(g, m, v):
            if g is None:
                return None
            m_new, v_new = moments(g, m, v)
            u = coef.astype(m_new.dtype) * (m_new / (jnp.sqrt(v_new) + eps))
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        is_none = lambda x: x is None
        out = jax.tree.map(leaf, updates, state.mu, state.nu, is_leaf=is_none)
        part = lambda i: jax.tree.map(
            lambda g, o: None if g is None else o[i], updates, out, is_leaf=is_none
        )
        new_updates, mu, nu = part(0), part(1), part(2)

        warmup_count = optax.safe_increment(state.warmup_count)
        if delta_t:
            warmup_count = jnp.where((step + 1) % delta_t == 0, 0, warmup_count)
        new_state = SPAMState(count=step, warmup_count=warmup_count.astype(jnp.int32), mu=mu, nu=nu)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def spam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    warmup_steps: int = 150,
    threshold: float = 5000.0,
    reset_interval: int = 500,
    grad_accu_steps: int = 20,
    *,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """SPAM with the official step-then-decay weight decay.

    Paper: Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM
    Training", ICLR 2025, arXiv:2501.06842; reference code TianjinYellow/SPAM-Optimizer
    ``galore_torch/SPAM.py``. With ``K`` the global step (from 1), ``c`` the warm-up counter
    (``N + 1`` at the start, 0 after each reset), ``N = warmup_steps``, ``θ = threshold``,
    ``ΔT = reset_interval`` and ``A = grad_accu_steps``::

        scale = 1 - 0.99 (1 + cos(π c / (N + 1))) / 2      if c < N,  else 1
        m, v  = 0, 0                                        if K mod ΔT == 0   (reset)
        g     = sign(g) sqrt(θ v)   where g² > θ v          if θ ≠ 0, K ≥ A, K mod ΔT ≥ A
        m     = b1 m + (1 - b1) g ;   v = b2 v + (1 - b2) g²
        u     = scale sqrt(1 - b2^K) / (1 - b1^K) · m / (sqrt(v) + eps)
        x    <- (x - lr u) (1 - lr λ)                        (decay after the step)

    ``v`` in the clipping line is the second moment before this step: after each reset the
    moments restart from zero, the step is scaled by 0.01 and rises back to full size along a
    half cosine over ``N`` steps, and spike clipping is off for ``A`` steps. Defaults are the
    official code's: ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``, ``eps=1e-6``,
    ``weight_decay=0``, ``warmup_steps=150``, ``threshold=5000``, ``reset_interval=500``,
    ``grad_accu_steps=20``. The official sparse-momentum option (``density < 1``) is not
    offered.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: decay rate of the first moment, in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      eps: added to ``sqrt(v)`` (before the bias correction); > 0.
      weight_decay: ``λ`` of the decay after the step (a number or a schedule).
      warmup_steps: ``N``, the length of the cosine warm-up after each reset (structural).
      threshold: ``θ``, the spike threshold (entries with ``g² > θ v`` are clipped); 0 turns
        clipping off.
      reset_interval: ``ΔT``, the momentum-reset period; 0 turns resets off (structural).
      grad_accu_steps: ``A``, the steps after each reset without clipping (structural).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with a
      :class:`SPAMState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2))}
      >>> tx = jop.spam(1e-3, weight_decay=0.01)
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, tx.init(params), params)
      >>> params = optax.apply_updates(params, updates)
      >>> print(round(float(params["w"][0, 0]), 5))  # (1 - 1e-3) (1 - 1e-5), up to eps
      0.99899
    """
    V.check_learning_rate("spam", learning_rate)
    V.check_weight_decay("spam", weight_decay)
    V.check_mask("spam", mask)
    decay = decay_after_step(learning_rate, weight_decay)
    if mask is not None:
        decay = optax.masked(decay, mask)
    return optax.chain(
        scale_by_spam(
            b1,
            b2,
            eps,
            warmup_steps,
            threshold,
            reset_interval,
            grad_accu_steps,
            mu_dtype=mu_dtype,
        ),
        optax.scale_by_learning_rate(learning_rate),
        decay,
    )
