r"""Stable-SPAM: SPAM with adaptive spike clipping and adaptive gradient-norm scaling.

Paper: Tianjin Huang, Haotian Hu, Zhenyu Zhang, Gaojie Jin, Xiang Li, Li Shen, Tianlong Chen,
Lu Liu, Qingsong Wen, Zhangyang Wang, Shiwei Liu, "Stable-SPAM: How to Train in 4-Bit More
Stably than 16-Bit Adam", 2025, arXiv:2502.17055. Reference code: TianjinYellow/StableSPAM
``galore_torch/stablespam.py`` (commit 6a66da1) and its port ``pytorch_optimizer.StableSPAM``
(pytorch-optimizer 4.1.0). The two differ (see below); ``variant`` picks one, the default being
the official code's (``variant="official"``).

Per step, with ``T`` the global step (1-based, never reset), ``τ`` the Adam bias-correction step
(reset to 1 at momentum resets), ``g`` one tensor's gradient and all norms/maxima per tensor::

    s     = cosine factor from 1 down to eta_min over t_max steps (1 if t_max is None)
    b1'   = b1 s,   γ1' = γ1 s                               (γ1 = -1 means γ1 = b1)
    m, v  = 0, 0 and τ = 1   if T mod update_proj_gap == 0,  else τ = τ + 1
    x    <- x (1 - lr λ)                                      (decoupled weight decay)
    M     = θ M + (1 - θ) max|g|,    M̂ = M / (1 - θ^T)
    g     = g / max|g| · M̂   where |g| > M̂                   (adaptive spike clipping)
    n     = ‖g‖₂                                             (the tensor is skipped if n = 0)
    mn    = γ1' mn + (1 - γ1') n,    vn = γ2 vn + (1 - γ2) n²
    g     = g / n · (mn / (1 - γ1'^T)) / (sqrt(vn / (1 - γ2^T)) + eps)   (AdaGN)
    m     = b1' m + (1 - b1') g,     v = b2 v + (1 - b2) g²
    x    <- x - lr / (1 - b1'^τ) · m / (sqrt(v) / sqrt(1 - b2^τ) + eps)

With ``T_m = t_max + 1``, the cosine factor of ``variant="pytorch_optimizer"`` (its
``CosineDecay`` steps a ``CosineAnnealingLR`` recursively, one step ahead) is::

    s(T) = eta_min + (1 - eta_min) (1 + cos(π (T+1)/T_m)) / (1 + cos(π/T_m))   for T < t_max
    s(T) = eta_min                                                            for T >= t_max

:func:`scale_by_stable_spam` returns ``m / ((1 - b1'^τ)(sqrt(v)/sqrt(1 - b2^τ) + eps))`` (zero
for a skipped tensor); :func:`stable_spam` chains it with ``optax.add_decayed_weights`` and the
learning rate, which is the weight decay above computed from the pre-step parameters.

Defaults are ``pytorch_optimizer.StableSPAM``'s, which are also the official code's:
``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``, ``gamma1=0.7``, ``gamma2=0.9``,
``theta=0.999`` (official name ``gamma3``), ``t_max=None`` (official ``total_T``),
``eta_min=0.5``, ``weight_decay=0``, ``update_proj_gap=1000``, ``eps=1e-8``.

Differences from the reference code. The default ``variant="official"`` reproduces
TianjinYellow/StableSPAM; ``variant="pytorch_optimizer"`` reproduces
``pytorch_optimizer.StableSPAM`` (the equations above). They differ in four places:

1. Cosine factor: the official code evaluates the closed form
   ``s(T) = eta_min + (1 - eta_min)(1 + cos(π T/T_m))/2`` for every ``T``, without clamping
   (``total_T`` is meant to be the length of training; past ``T_m`` the factor rises again,
   and we reproduce that); pytorch_optimizer uses the formula above.
2. Bias corrections of ``M`` (``1 - θ^·``) and of ``mn``, ``vn``: pytorch_optimizer uses the
   global ``T``; the official code uses its per-tensor step counter, i.e. the previous ``τ``
   plus one, which restarts after every momentum reset (``M``, ``mn``, ``vn`` themselves are
   not reset, so right after a reset ``M̂`` is inflated and clipping is effectively off).
3. A tensor whose clipped gradient has norm 0: pytorch_optimizer skips its AdaGN and Adam update
   (moments unchanged, no step besides weight decay); the official code updates ``mn``, ``vn``,
   ``m``, ``v`` with the zero gradient and steps with the decayed momentum.
4. The momentum reset itself: the official code re-binds ``state["exp_avg"]`` to fresh zeros
   *after* taking local references to the old moments, so the step at ``T = k·update_proj_gap``
   still updates and uses the old ``m``, ``v`` (with ``τ = 1`` in the bias corrections) and the
   moments only restart from zero on the next step; pytorch_optimizer zeroes them before use.

Against both: ``update_proj_gap=0`` disables momentum resets (official behaviour; pytorch_optimizer
rejects 0); the official ``amsgrad`` switch and pytorch_optimizer's ``maximize`` are not offered
(negate the loss or chain ``optax.scale(-1)``); the per-tensor scalars ``M``, ``mn``, ``vn`` are
kept in at least float32 (in the param dtype in torch) so that ``θ = 0.999`` is representable when
the params are bfloat16. Half-precision (float16, bfloat16) leaves are updated with float32
arithmetic (in float16 ``eps = 1e-8`` underflows to 0); the first moment is stored in the param
dtype (or ``mu_dtype``), the second one in float32 for float16 params (squared gradients underflow
in float16), and the updates are returned in the gradient dtype. ``eps`` must be positive. ``t_max``
and ``update_proj_gap`` are structural (Python ints): under ``optax.inject_hyperparams`` list them
in ``static_args``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = ["StableSPAMState", "scale_by_stable_spam", "stable_spam"]

VARIANTS = ("pytorch_optimizer", "official")


class StableSPAMState(NamedTuple):
    """State of :func:`scale_by_stable_spam` (and of the first link of :func:`stable_spam`).

    Attributes:
      count: global step ``T`` taken so far (int32, never reset).
      bias_count: the Adam bias-correction step ``τ`` (int32, reset to 1 at momentum resets).
      mu: the first moment (param dtype, or ``mu_dtype``).
      nu: the second moment (param dtype; float32 for float16 params).
      max_abs: per leaf, the running average ``M`` of ``max|g|`` (scalar, at least float32).
      norm_mu: per leaf, the running average ``mn`` of ``‖g‖`` (scalar, at least float32).
      norm_nu: per leaf, the running average ``vn`` of ``‖g‖²`` (scalar, at least float32).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> state = jop.scale_by_stable_spam().init({"w": jnp.zeros(3)})
      >>> int(state.count), state.max_abs["w"].shape
      (0, ())
    """

    count: jax.Array
    bias_count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    max_abs: optax.Updates
    norm_mu: optax.Updates
    norm_nu: optax.Updates


def _scalar_dtype(dtype):
    return jnp.promote_types(dtype, jnp.float32)


def cosine_factor(step: jax.Array, t_max: int | None, eta_min, variant: str) -> jax.Array:
    """The factor ``s`` that multiplies ``b1`` and ``gamma1`` at global step ``step`` (1-based).

    Args:
      step: the global step ``T`` (an int array, 1-based).
      t_max: the length of the cosine decay, or None for no decay (``s = 1``).
      eta_min: the factor's floor.
      variant: ``"official"`` or ``"pytorch_optimizer"`` (see the module docstring).

    Returns:
      ``s`` in the default float dtype, with the shape of ``step``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.optimizers.stable_spam import cosine_factor
      >>> [round(float(x), 4) for x in cosine_factor(jnp.array([1, 6, 7]), 6, 0.5, "official")]
      [0.9752, 0.5248, 0.5]
    """
    t = jnp.asarray(step, dtype=float)
    if t_max is None:
        return jnp.ones_like(t)
    tm = t_max + 1
    if variant == "official":
        return eta_min + (1 - eta_min) * (1 + jnp.cos(jnp.pi * t / tm)) / 2
    ratio = (1 + jnp.cos(jnp.pi * (t + 1) / tm)) / (1 + jnp.cos(jnp.pi / tm))
    return jnp.where(step < t_max, eta_min + (1 - eta_min) * ratio, eta_min + 0 * t)


def _check_gamma1(owner, gamma1):
    if V._concrete_float(gamma1) == -1.0:
        return
    try:
        V.check_beta(owner, "gamma1", gamma1)
    except ValueError as err:
        raise ValueError(f"{err} (-1 is also accepted: it means gamma1 = b1)") from None


def scale_by_stable_spam(
    b1: float = 0.9,
    b2: float = 0.999,
    gamma1: float = 0.7,
    gamma2: float = 0.9,
    theta: float = 0.999,
    t_max: int | None = None,
    eta_min: float = 0.5,
    update_proj_gap: int = 1000,
    eps: float = 1e-8,
    *,
    variant: str = "official",
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Stable-SPAM's direction (clipping, AdaGN, Adam with resets), before lr and weight decay.

    Paper: Huang et al., "Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit Adam",
    arXiv:2502.17055; reference code TianjinYellow/StableSPAM ``galore_torch/stablespam.py``
    (``variant="official"``, the default) and its port ``pytorch_optimizer.StableSPAM``
    (``variant="pytorch_optimizer"``). Per tensor, with ``T`` the global step (from 1) and ``τ``
    the Adam bias-correction step (reset at momentum resets); these are the
    ``"pytorch_optimizer"`` equations, the official variant differs in the cosine factor, in the
    step counts of the bias corrections of ``M``, ``mn``, ``vn``, in skipping zero-norm tensors
    and in the timing of the reset (the module :mod:`jaxopt_papers.optimizers.stable_spam` lists
    the four differences)::

        s     = cosine factor from 1 down to eta_min over t_max steps (1 if t_max is None)
        b1'   = b1 s,   γ1' = γ1 s                            (γ1 = -1 means γ1 = b1)
        m, v  = 0, 0 and τ = 1   if T mod update_proj_gap == 0,  else τ = τ + 1
        M     = θ M + (1 - θ) max|g|,    M̂ = M / (1 - θ^T)
        g     = g / max|g| · M̂   where |g| > M̂                (adaptive spike clipping)
        n     = ‖g‖₂,   mn = γ1' mn + (1 - γ1') n,   vn = γ2 vn + (1 - γ2) n²
        g     = g / n · (mn / (1 - γ1'^T)) / (sqrt(vn / (1 - γ2^T)) + eps)   (AdaGN)
        m     = b1' m + (1 - b1') g,     v = b2 v + (1 - b2) g²
        u     = m / ((1 - b1'^τ) (sqrt(v) / sqrt(1 - b2^τ) + eps))

    The direction is ``u``; :func:`stable_spam` adds the weight decay and the learning rate.
    Defaults are the official code's (also pytorch_optimizer's): ``b1=0.9``, ``b2=0.999``,
    ``gamma1=0.7``, ``gamma2=0.9``, ``theta=0.999`` (official ``gamma3``), ``t_max=None``
    (official ``total_T``), ``eta_min=0.5``, ``update_proj_gap=1000``, ``eps=1e-8``.

    Args:
      b1: decay rate of the first moment (before the cosine factor), in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      gamma1: decay rate of ``mn`` (before the cosine factor), in ``[0, 1)``; -1 means ``b1``.
      gamma2: decay rate of ``vn``, in ``[0, 1)``.
      theta: decay rate of ``M`` (official name ``gamma3``), in ``[0, 1)``.
      t_max: the length of the cosine decay of ``b1`` and ``gamma1`` (official ``total_T``);
        None: no decay (structural).
      eta_min: the floor of the cosine factor, in ``[0, 1]``.
      update_proj_gap: the momentum-reset period; 0 turns resets off (structural).
      eps: added to the AdaGN and Adam denominators; > 0.
      variant: ``"official"`` (TianjinYellow/StableSPAM) or ``"pytorch_optimizer"``
        (keyword-only).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`StableSPAMState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_papers as jop
      >>> tx = jop.scale_by_stable_spam()
      >>> u, state = tx.update(jnp.ones(3), tx.init(jnp.zeros(3)))
      >>> u.shape
      (3,)
    """
    owner = "stable_spam"
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    _check_gamma1(owner, gamma1)
    V.check_beta(owner, "gamma2", gamma2)
    V.check_beta(owner, "theta", theta)
    if t_max is not None:
        t_max = V.check_static_int(owner, "t_max", t_max, low=1)
    V.check_real(owner, "eta_min", eta_min, low=0.0, high=1.0)
    gap = V.check_static_int(owner, "update_proj_gap", update_proj_gap, low=0)
    V.check_eps(owner, "eps", eps, positive=True)
    V.check_static_choice(owner, "variant", variant, VARIANTS)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)

    def init_fn(params):
        V.check_optimizer_init(owner, params)

        def scalar(p):
            return jnp.zeros([], _scalar_dtype(p.dtype))

        return StableSPAMState(
            count=jnp.zeros([], jnp.int32),
            bias_count=jnp.zeros([], jnp.int32),
            mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=V.second_moment_zeros(params),
            max_abs=jax.tree.map(scalar, params),
            norm_mu=jax.tree.map(scalar, params),
            norm_nu=jax.tree.map(scalar, params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.nu)
        step = optax.safe_increment(state.count)  # T
        tau_pre = optax.safe_increment(state.bias_count)
        if gap:
            reset = step % gap == 0
            tau = jnp.where(reset, jnp.ones_like(tau_pre), tau_pre)
        else:
            reset = jnp.zeros([], bool)
            tau = tau_pre
        # counter of the bias corrections of M, mn, vn
        corr = tau_pre if variant == "official" else step
        fl = lambda n: jnp.asarray(n, dtype=float)

        s = cosine_factor(step, t_max, eta_min, variant)
        g1 = jnp.where(jnp.asarray(gamma1) == -1, b1, gamma1)
        b1s, g1s = b1 * s, g1 * s
        bc1 = 1 - jnp.power(b1s, fl(tau))
        bc2_sqrt = jnp.sqrt(1 - jnp.power(b2, fl(tau)))
        theta_t = 1 - jnp.power(theta, fl(corr))
        nc1 = 1 - jnp.power(g1s, fl(corr))
        nc2 = 1 - jnp.power(gamma2, fl(corr))

        def leaf(g, m, v, big_m, mn, vn):
            out_dtype, dtype = g.dtype, V.compute_dtype(g.dtype, m.dtype, v.dtype)
            sd = big_m.dtype
            cast = lambda x: jnp.asarray(x, sd)
            m_dtype, v_dtype = m.dtype, v.dtype
            if variant == "pytorch_optimizer":
                m = jnp.where(reset, jnp.zeros_like(m), m)
                v = jnp.where(reset, jnp.zeros_like(v), v)
            m, v, g = m.astype(dtype), v.astype(dtype), g.astype(dtype)

            # adaptive spike clipping
            absg = jnp.abs(g)
            max_g = jnp.max(absg).astype(sd) if g.size else jnp.zeros([], sd)
            big_m = (cast(theta) * big_m + (1 - cast(theta)) * max_g).astype(sd)
            m_hat = big_m / cast(theta_t)
            safe_max = jnp.where(max_g > 0, max_g, jnp.ones_like(max_g))
            m_hat_d = m_hat.astype(dtype)
            g = jnp.where(absg > m_hat_d, g / safe_max.astype(dtype) * m_hat_d, g)

            # adaptive gradient-norm scaling
            n = jnp.sqrt(jnp.sum(jnp.square(g.astype(sd))))
            active = n > 0
            new_mn = cast(g1s) * mn + (1 - cast(g1s)) * n
            new_vn = cast(gamma2) * vn + (1 - cast(gamma2)) * n * n
            if variant == "pytorch_optimizer":
                new_mn = jnp.where(active, new_mn, mn)
                new_vn = jnp.where(active, new_vn, vn)
            c = (new_mn / cast(nc1)) / (jnp.sqrt(new_vn / cast(nc2)) + eps)
            safe_n = jnp.where(active, n, jnp.ones_like(n))
            g = jnp.where(active, g / safe_n.astype(dtype) * c.astype(dtype), g)

            # Adam with the scaled beta1
            b1d = b1s.astype(dtype)
            new_m = b1d * m + (1 - b1d) * g
            new_v = b2 * v + (1 - b2) * g * g
            if variant == "pytorch_optimizer":
                new_m = jnp.where(active, new_m, m)
                new_v = jnp.where(active, new_v, v)
            u = new_m / (jnp.sqrt(new_v) / bc2_sqrt.astype(dtype) + eps) / bc1.astype(dtype)
            if variant == "pytorch_optimizer":
                u = jnp.where(active, u, jnp.zeros_like(u))
            else:  # the official reset zeroes the stored moments after this step used them
                new_m = jnp.where(reset, jnp.zeros_like(new_m), new_m)
                new_v = jnp.where(reset, jnp.zeros_like(new_v), new_v)
            return (
                u.astype(out_dtype),
                new_m.astype(m_dtype),
                new_v.astype(v_dtype),
                big_m.astype(sd),
                new_mn.astype(sd),
                new_vn.astype(sd),
            )

        def leaf_or_none(g, *rest):
            return None if g is None else leaf(g, *rest)

        is_none = lambda x: x is None
        out = jax.tree.map(
            leaf_or_none,
            updates,
            state.mu,
            state.nu,
            state.max_abs,
            state.norm_mu,
            state.norm_nu,
            is_leaf=is_none,
        )
        part = lambda i: jax.tree.map(
            lambda g, o: None if g is None else o[i], updates, out, is_leaf=is_none
        )
        new_state = StableSPAMState(
            count=step,
            bias_count=tau.astype(jnp.int32),
            mu=part(1),
            nu=part(2),
            max_abs=part(3),
            norm_mu=part(4),
            norm_nu=part(5),
        )
        return part(0), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def stable_spam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    gamma1: float = 0.7,
    gamma2: float = 0.9,
    theta: float = 0.999,
    t_max: int | None = None,
    eta_min: float = 0.5,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    update_proj_gap: int = 1000,
    eps: float = 1e-8,
    *,
    variant: str = "official",
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Stable-SPAM with decoupled weight decay.

    Paper: Huang et al., "Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit Adam",
    arXiv:2502.17055; reference code TianjinYellow/StableSPAM ``galore_torch/stablespam.py``
    (``variant="official"``, the default) and its port ``pytorch_optimizer.StableSPAM``
    (``variant="pytorch_optimizer"``). Per tensor, with ``T`` the global step (from 1) and ``τ``
    the Adam bias-correction step (reset at momentum resets); these are the
    ``"pytorch_optimizer"`` equations, the official variant differs in the cosine factor, in the
    step counts of the bias corrections of ``M``, ``mn``, ``vn``, in skipping zero-norm tensors
    and in the timing of the reset (the module :mod:`jaxopt_papers.optimizers.stable_spam` lists
    the four differences)::

        s     = cosine factor from 1 down to eta_min over t_max steps (1 if t_max is None)
        b1'   = b1 s,   γ1' = γ1 s                            (γ1 = -1 means γ1 = b1)
        m, v  = 0, 0 and τ = 1   if T mod update_proj_gap == 0,  else τ = τ + 1
        M     = θ M + (1 - θ) max|g|,    M̂ = M / (1 - θ^T)
        g     = g / max|g| · M̂   where |g| > M̂                (adaptive spike clipping)
        n     = ‖g‖₂,   mn = γ1' mn + (1 - γ1') n,   vn = γ2 vn + (1 - γ2) n²
        g     = g / n · (mn / (1 - γ1'^T)) / (sqrt(vn / (1 - γ2^T)) + eps)   (AdaGN)
        m     = b1' m + (1 - b1') g,     v = b2 v + (1 - b2) g²
        u     = m / ((1 - b1'^τ) (sqrt(v) / sqrt(1 - b2^τ) + eps))
        x    <- x (1 - lr λ) - lr u

    Defaults are the official code's (also pytorch_optimizer's): ``learning_rate=1e-3``,
    ``b1=0.9``, ``b2=0.999``, ``gamma1=0.7``, ``gamma2=0.9``, ``theta=0.999`` (official
    ``gamma3``), ``t_max=None`` (official ``total_T``), ``eta_min=0.5``, ``weight_decay=0``,
    ``update_proj_gap=1000``, ``eps=1e-8``.

    Args:
      learning_rate: a number or a schedule of the step count.
      b1: decay rate of the first moment (before the cosine factor), in ``[0, 1)``.
      b2: decay rate of the second moment, in ``[0, 1)``.
      gamma1: decay rate of ``mn`` (before the cosine factor), in ``[0, 1)``; -1 means ``b1``.
      gamma2: decay rate of ``vn``, in ``[0, 1)``.
      theta: decay rate of ``M`` (official name ``gamma3``), in ``[0, 1)``.
      t_max: the length of the cosine decay of ``b1`` and ``gamma1`` (official ``total_T``);
        None: no decay (structural).
      eta_min: the floor of the cosine factor, in ``[0, 1]``.
      weight_decay: decoupled weight decay ``λ`` (a number or a schedule of the step count).
      update_proj_gap: the momentum-reset period; 0 turns resets off (structural).
      eps: added to the AdaGN and Adam denominators; > 0.
      variant: ``"official"`` (TianjinYellow/StableSPAM, the default) or
        ``"pytorch_optimizer"`` (keyword-only).
      mu_dtype: dtype of the first moment; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with a
      :class:`StableSPAMState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jaxopt_papers as jop
      >>> params = {"w": jnp.ones((3, 2))}
      >>> tx = jop.stable_spam(1e-3, t_max=1000, weight_decay=0.01)
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, tx.init(params), params)
      >>> params = optax.apply_updates(params, updates)
      >>> print(round(float(params["w"][0, 0]), 5))  # 1 - 1e-3 (1 + 0.01), up to eps
      0.99899
    """
    V.check_learning_rate("stable_spam", learning_rate)
    V.check_weight_decay("stable_spam", weight_decay)
    V.check_mask("stable_spam", mask)
    return optax.chain(
        scale_by_stable_spam(
            b1,
            b2,
            gamma1,
            gamma2,
            theta,
            t_max,
            eta_min,
            update_proj_gap,
            eps,
            variant=variant,
            mu_dtype=mu_dtype,
        ),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )
