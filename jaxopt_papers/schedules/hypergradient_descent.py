r"""Hypergradient descent: the learning rate learned online by gradient descent on it.

Paper: Atılım Güneş Baydin, Robert Cornish, David Martínez Rubio, Mark Schmidt, Frank Wood,
"Online Learning Rate Adaptation with Hypergradient Descent", ICLR 2018, arXiv:1703.04782.
Reference code: gbaydin/hypergradient-descent (commit 020d608), ``hypergrad/sgd_hd.py``
(``SGDHD``) and ``hypergrad/adam_hd.py`` (``AdamHD``).

If a step is ``θ_t = θ_{t-1} - α u_{t-1}``, then ``∂f(θ_t)/∂α = -∇f(θ_t)·u_{t-1}``: the
learning rate ``α`` itself takes a gradient step with the *hypergradient learning rate* ``β``
before every update, ``α_t = α_{t-1} + β g_t·u_{t-1}``. There is no clipping: ``α`` may shrink
below zero.

**SGD-HD** (``SGDHD``; ``g`` includes the coupled weight decay ``λ θ``; one global dot product
over all tensors)::

    g   = ∇f(θ) + λ θ
    α  <- α + β <g, u_prev>                   (u_prev = 0 at the first step)
    buf = g  (first step),   μ buf + (1 - dampening) g  (later)        if μ != 0
    u   = g + μ buf  (nesterov),   buf  (otherwise),   g  (μ = 0)
    θ  <- θ - α u;   u_prev = u

**Adam-HD** (``AdamHD``; coupled weight decay; bias corrections ``bc_k(t) = 1 - b_k^t``)::

    g   = ∇f(θ) + λ θ
    h   = <g, m/(sqrt(v) + eps)> sqrt(bc2(t-1)) / bc1(t-1)      (for t >= 2; the direction
                                                                 of the previous step)
    α  <- α + β h
    m  <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g²
    θ  <- θ - α sqrt(bc2(t)) / bc1(t) · m / (sqrt(v) + eps)

The reference code runs the Adam-HD lines **tensor by tensor** with one shared ``α``: each
tensor's ``h`` is added to ``α`` before that tensor steps, so later tensors see the learning
rate already moved by the earlier ones' hypergradients (``variant="code"``, the default; the
parameter order is the pytree's leaf order, e.g. sorted dict keys). ``variant="paper"`` sums
``h`` over all tensors first (the paper's global dot product) and steps every tensor with the
same ``α``.

Learning-rate schedules: the learned offset ``β Σ h`` is added to the schedule's value, so
``α_t = schedule(t) + β Σ_{k<=t} h_k`` (with a constant learning rate this is the reference
code's ``α``).

Defaults are the reference code's: SGD-HD ``hypergrad_lr=1e-6``, ``momentum=0``,
``dampening=0``, ``weight_decay=0``, ``nesterov=False`` (``sgd_hd.py`` lines 56-57; the
learning rate is required); Adam-HD ``learning_rate=1e-3``, ``b1=0.9``, ``b2=0.999``,
``eps=1e-8``, ``weight_decay=0``, ``hypergrad_lr=1e-8`` (``adam_hd.py`` lines 30-31). The paper's
experiments use ``β = 1e-3`` (SGD-HD) and ``1e-7`` (Adam-HD).

Differences from the reference code: ``SGDHD`` refuses parameter groups and keeps its state on
the first tensor; here the state is one pytree and :func:`scale_by_hypergradient_lr` extends the
rule to any direction. The learning rate may be a schedule (the reference takes a number).
Half-precision leaves are updated with float32 arithmetic; the learned learning rate is kept in
at least float32.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V

__all__ = [
    "AdamHDState",
    "HypergradientLRState",
    "SGDHDState",
    "adam_hd",
    "scale_by_adam_hd",
    "scale_by_hypergradient_lr",
    "scale_by_sgd_hd",
    "sgd_hd",
]

_VARIANTS = ("code", "paper")


def _value(x: optax.ScalarOrSchedule, count: jax.Array) -> Any:
    return x(count) if callable(x) else x


def _scalar_dtype(params: Any) -> Any:
    """The dtype of the learned learning rate: the params' promoted dtype, at least float32."""
    leaves = jax.tree.leaves(params)
    return V.compute_dtype(*[p.dtype for p in leaves]) if leaves else jnp.float32


def _dot(a: jax.Array, b: jax.Array, dtype: Any) -> jax.Array:
    cd = V.compute_dtype(a.dtype, b.dtype, dtype)
    return jnp.sum(a.astype(cd) * b.astype(cd)).astype(dtype)


def _check_hd(owner: str, learning_rate: Any, hypergrad_lr: Any) -> None:
    V.check_learning_rate(owner, learning_rate)
    V.check_real(owner, "hypergrad_lr", hypergrad_lr, low=0.0, schedule_ok=True)


def _init_lr(learning_rate: Any, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """The learning rate before any step and a zero offset, as ``dtype`` scalars."""
    lr0 = jnp.asarray(_value(learning_rate, jnp.zeros([], jnp.int32)), dtype)
    return lr0, jnp.zeros([], dtype)


def _coupled_decay_first(
    owner: str, weight_decay: Any, mask: Any, rescale: optax.GradientTransformationExtraArgs
) -> optax.GradientTransformationExtraArgs:
    """``chain(add_decayed_weights(weight_decay, mask), rescale)`` that checks its inputs first.

    The L2 term would broadcast mismatched gradients against the params before ``rescale``
    could see them, so the structure and shapes are checked here (against the last field of
    the rescaling's state, which is laid out like the params).
    """
    inner = optax.chain(optax.add_decayed_weights(weight_decay, mask), rescale)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        return inner.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        V.check_optimizer_update(owner, updates, params, state[1][-1])
        return inner.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _adam_direction(m: jax.Array, v: jax.Array, eps: Any, dtype: Any) -> jax.Array:
    """``m / (sqrt(v) + eps)`` in at least float32 (and at least ``dtype``)."""
    cd = V.compute_dtype(m.dtype, v.dtype, dtype)
    return m.astype(cd) / (jnp.sqrt(v.astype(cd)) + eps)


# --------------------------------------------------------------------------------- SGD-HD


class SGDHDState(NamedTuple):
    """State of :func:`scale_by_sgd_hd` (and of the second link of :func:`sgd_hd`).

    Attributes:
      count: the step count (int32).
      learning_rate: the learned learning rate ``α`` used at the last step (at ``init``: the
        initial one), at least float32.
      lr_offset: ``β Σ h``, what hypergradient descent added to the learning rate (schedule).
      momentum: the momentum buffer ``buf`` (param dtype, or ``mu_dtype``).
      prev_direction: the previous update direction ``u_prev`` (param dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import schedules
      >>> state = schedules.scale_by_sgd_hd(0.1).init(jnp.zeros(3))
      >>> round(float(state.learning_rate), 6), state.prev_direction.shape
      (0.1, (3,))
    """

    count: jax.Array
    learning_rate: jax.Array
    lr_offset: jax.Array
    momentum: optax.Updates
    prev_direction: optax.Updates


def scale_by_sgd_hd(
    learning_rate: optax.ScalarOrSchedule,
    hypergrad_lr: optax.ScalarOrSchedule = 1e-6,
    momentum: float = 0.0,
    dampening: float = 0.0,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """SGD-HD's step ``-α u`` with the learning rate ``α`` learned by hypergradient descent.

    Paper: Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent", ICLR
    2018, arXiv:1703.04782; reference code gbaydin/hypergradient-descent ``SGDHD``. With ``g``
    the incoming gradient (weight decay already added, as :func:`sgd_hd` does)::

        α  <- α + β <g, u_prev>            (one dot product over all leaves; u_prev = 0 first)
        buf = g (first step),  μ buf + (1 - dampening) g (later)
        u   = g + μ buf (nesterov),  buf (otherwise),  g (μ = 0)
        returns -α u;   u_prev = u

    Defaults are the reference code's (``hypergrad_lr=1e-6``, ``momentum=0``,
    ``dampening=0``, ``nesterov=False``). The returned updates include the learning rate (and
    its sign): do not add ``optax.scale_by_learning_rate``.

    Args:
      learning_rate: the initial learning rate ``α₀`` (a number or a schedule of the step
        count, to which the learned offset is added).
      hypergrad_lr: ``β``, the hypergradient learning rate (>= 0; a number or a schedule).
      momentum: ``μ``, in ``[0, 1)``.
      dampening: dampening of the momentum buffer, in ``[0, 1]``.
      nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``;
        keyword-only).
      mu_dtype: dtype of the momentum buffer; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`SGDHDState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import schedules
      >>> tx = schedules.scale_by_sgd_hd(0.1, hypergrad_lr=0.01)
      >>> state = tx.init(jnp.zeros(2))
      >>> for g in (jnp.array([1.0, 2.0]), jnp.array([1.0, 1.0])):
      ...     updates, state = tx.update(g, state)
      >>> # second step: α = 0.1 + 0.01 * <(1, 1), (1, 2)>
      >>> round(float(state.learning_rate), 6), [round(u, 6) for u in updates.tolist()]
      (0.13, [-0.13, -0.13])
    """
    owner = "sgd_hd"
    _check_hd(owner, learning_rate, hypergrad_lr)
    V.check_beta(owner, "momentum", momentum)
    V.check_real(owner, "dampening", dampening, low=0.0, high=1.0)
    nesterov = V.check_flag(owner, "nesterov", nesterov)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)
    if nesterov:
        mom, damp = V._concrete_float(momentum), V._concrete_float(dampening)
        if (mom is not None and mom <= 0) or (damp is not None and damp != 0):
            raise ValueError(
                f"{owner}: `nesterov=True` needs `momentum` > 0 and `dampening` = 0, got "
                f"momentum={momentum!r}, dampening={dampening!r}."
            )

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        lr0, offset = _init_lr(learning_rate, _scalar_dtype(params))
        return SGDHDState(
            count=jnp.zeros([], jnp.int32),
            learning_rate=lr0,
            lr_offset=offset,
            momentum=optax.tree.zeros_like(params, dtype=mu_dtype),
            prev_direction=optax.tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.prev_direction)
        sd = state.lr_offset.dtype
        leaves = jax.tree.leaves(updates)
        h = sum(
            (
                _dot(g, u, sd)
                for g, u in zip(leaves, jax.tree.leaves(state.prev_direction), strict=True)
            ),
            jnp.zeros([], sd),
        )
        offset = state.lr_offset + jnp.asarray(_value(hypergrad_lr, state.count), sd) * h
        lr = jnp.asarray(_value(learning_rate, state.count), sd) + offset
        first = state.count == 0

        def leaf(g, buf, u_prev):
            cd = V.compute_dtype(g.dtype, buf.dtype, u_prev.dtype)
            g_c = g.astype(cd)
            buf_c = jnp.where(first, g_c, momentum * buf.astype(cd) + (1 - dampening) * g_c)
            u = g_c + momentum * buf_c if nesterov else buf_c
            u = jnp.where(momentum != 0, u, g_c)
            step = (-lr.astype(cd) * u).astype(g.dtype)
            return step, buf_c.astype(buf.dtype), u.astype(u_prev.dtype)

        out = jax.tree.map(leaf, updates, state.momentum, state.prev_direction)
        step, buf, u = jax.tree.transpose(
            jax.tree.structure(updates), jax.tree.structure((0,) * 3), out
        )
        new_state = SGDHDState(
            count=optax.safe_increment(state.count),
            learning_rate=lr,
            lr_offset=offset,
            momentum=buf,
            prev_direction=u,
        )
        return step, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sgd_hd(
    learning_rate: optax.ScalarOrSchedule,
    hypergrad_lr: optax.ScalarOrSchedule = 1e-6,
    momentum: float = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    dampening: float = 0.0,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """SGD with hypergradient descent on the learning rate (SGD-HD), as the reference code.

    Paper: Baydin, Cornish, Martínez Rubio, Schmidt, Wood, "Online Learning Rate Adaptation
    with Hypergradient Descent", ICLR 2018, arXiv:1703.04782; reference code
    gbaydin/hypergradient-descent ``hypergrad/sgd_hd.py`` (``SGDHD``)::

        g   = ∇f(θ) + λ θ                   (coupled weight decay)
        α  <- α + β <g, u_prev>             (one dot product over all leaves; u_prev = 0 first)
        buf = g (first step),  μ buf + (1 - dampening) g (later)
        u   = g + μ buf (nesterov),  buf (otherwise),  g (μ = 0)
        θ  <- θ - α u;   u_prev = u

    Defaults are the reference code's: ``hypergrad_lr=1e-6``, ``momentum=0``,
    ``weight_decay=0``, ``dampening=0``, ``nesterov=False`` (the paper's experiments use
    ``learning_rate=1e-3``, ``hypergrad_lr=1e-3``). The learned learning rate is
    ``state[1].learning_rate``.

    Args:
      learning_rate: the initial learning rate ``α₀`` (a number or a schedule of the step
        count, to which the learned offset ``β Σ h`` is added).
      hypergrad_lr: ``β``, the hypergradient learning rate (>= 0; a number or a schedule).
      momentum: ``μ``, in ``[0, 1)``.
      weight_decay: ``λ``, coupled (added to the gradient; a number or a schedule).
      dampening: dampening of the momentum buffer, in ``[0, 1]``.
      nesterov: Nesterov momentum (keyword-only).
      mu_dtype: dtype of the momentum buffer; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its second state is an
      :class:`SGDHDState`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers import schedules
      >>> loss = lambda p: jnp.sum((p - 1.0) ** 2)
      >>> tx = schedules.sgd_hd(learning_rate=0.01, hypergrad_lr=1e-3)
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> for _ in range(20):
      ...     updates, state = tx.update(jax.grad(loss)(params), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> float(state[1].learning_rate) > 0.01  # gradients agree: the learning rate grew
      True
    """
    V.check_weight_decay("sgd_hd", weight_decay)
    V.check_mask("sgd_hd", mask)
    rescale = scale_by_sgd_hd(
        learning_rate, hypergrad_lr, momentum, dampening, nesterov=nesterov, mu_dtype=mu_dtype
    )
    return _coupled_decay_first("sgd_hd", weight_decay, mask, rescale)


# -------------------------------------------------------------------------------- Adam-HD


class AdamHDState(NamedTuple):
    """State of :func:`scale_by_adam_hd` (and of the second link of :func:`adam_hd`).

    Attributes:
      count: the step count ``t`` (int32).
      learning_rate: the learned learning rate ``α`` after the last step's hypergradients
        (at ``init``: the initial one), at least float32.
      lr_offset: ``β Σ h``, what hypergradient descent added to the learning rate (schedule).
      mu: ``m``, the EMA of the gradients (param dtype, or ``mu_dtype``).
      nu: ``v``, the EMA of the squared gradients (param dtype; float32 for float16 params).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import schedules
      >>> state = schedules.scale_by_adam_hd().init(jnp.zeros(3))
      >>> round(float(state.learning_rate), 6), state.mu.shape
      (0.001, (3,))
    """

    count: jax.Array
    learning_rate: jax.Array
    lr_offset: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam_hd(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    hypergrad_lr: optax.ScalarOrSchedule = 1e-8,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    variant: str = "code",
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Adam-HD's step with the learning rate ``α`` learned by hypergradient descent.

    Paper: Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent", ICLR
    2018, arXiv:1703.04782; reference code gbaydin/hypergradient-descent ``AdamHD``. With ``g``
    the incoming gradient (weight decay already added, as :func:`adam_hd` does) and
    ``bc_k(t) = 1 - b_k^t``::

        h   = <g, m/(sqrt(v) + eps)> sqrt(bc2(t-1)) / bc1(t-1)     (t >= 2; else 0)
        α  <- α + β h
        m  <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g²
        returns -α sqrt(bc2(t)) / bc1(t) · m / (sqrt(v) + eps)

    ``variant="code"`` (default) runs these lines leaf by leaf in the pytree's leaf order with
    one shared ``α``, as the reference code does tensor by tensor: each leaf steps with ``α``
    moved by its own and the earlier leaves' ``h``. ``variant="paper"`` sums ``h`` over all
    leaves first and steps every leaf with the same ``α``. The returned updates include the
    learning rate and its sign.

    Args:
      learning_rate: the initial learning rate ``α₀`` (a number or a schedule of the step
        count, to which the learned offset is added).
      hypergrad_lr: ``β``, the hypergradient learning rate (>= 0; a number or a schedule).
      b1: decay rate of ``m``, in ``[0, 1)``.
      b2: decay rate of ``v``, in ``[0, 1)``.
      eps: added to ``sqrt(v)``; > 0.
      variant: ``"code"`` (sequential per-leaf learning-rate updates, the reference code) or
        ``"paper"`` (one global hypergradient per step) (keyword-only).
      mu_dtype: dtype of ``m``; None: the param dtype (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`AdamHDState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import schedules
      >>> tx = schedules.scale_by_adam_hd(0.1, hypergrad_lr=0.01)
      >>> state = tx.init(jnp.zeros(2))
      >>> for _ in range(2):
      ...     updates, state = tx.update(jnp.array([1.0, -1.0]), state)
      >>> # second step: h = <g, m/(sqrt(v)+eps)> sqrt(bc2)/bc1 = 2 (up to eps)
      >>> round(float(state.learning_rate), 5), [round(u, 5) for u in updates.tolist()]
      (0.12, [-0.12, 0.12])
    """
    owner = "adam_hd"
    _check_hd(owner, learning_rate, hypergrad_lr)
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    V.check_eps(owner, "eps", eps, positive=True)
    variant = V.check_static_choice(owner, "variant", variant, _VARIANTS)
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        lr0, offset = _init_lr(learning_rate, _scalar_dtype(params))
        return AdamHDState(
            count=jnp.zeros([], jnp.int32),
            learning_rate=lr0,
            lr_offset=offset,
            mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=V.second_moment_zeros(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        V.check_optimizer_update(owner, updates, params, state.nu)
        sd = state.lr_offset.dtype
        prev = state.count
        count = optax.safe_increment(state.count)
        started = prev > 0
        # sqrt(bc2(t-1)) / bc1(t-1), 0 at the first step (where m = 0 anyway)
        prev_bc1 = jnp.where(started, 1 - b1 ** prev.astype(sd), 1.0)
        prev_factor = jnp.where(started, jnp.sqrt(1 - b2 ** prev.astype(sd)) / prev_bc1, 0.0)
        step_factor = jnp.sqrt(1 - b2 ** count.astype(sd)) / (1 - b1 ** count.astype(sd))

        g_leaves, treedef = jax.tree.flatten(updates)
        m_leaves = treedef.flatten_up_to(state.mu)
        v_leaves = treedef.flatten_up_to(state.nu)
        hs = [
            _dot(g, _adam_direction(m, v, eps, sd), sd)
            for g, m, v in zip(g_leaves, m_leaves, v_leaves, strict=True)
        ]
        beta = jnp.asarray(_value(hypergrad_lr, state.count), sd)
        base = jnp.asarray(_value(learning_rate, state.count), sd)
        if hs:
            contrib = beta * (jnp.stack(hs) * prev_factor)
            if variant == "code":
                offsets = state.lr_offset + jnp.cumsum(contrib)
            else:
                offsets = jnp.broadcast_to(state.lr_offset + jnp.sum(contrib), contrib.shape)
            offset = offsets[-1]
        else:
            offsets, offset = None, state.lr_offset

        steps, mus, nus = [], [], []
        for i, (g, m, v) in enumerate(zip(g_leaves, m_leaves, v_leaves, strict=True)):
            cd = V.compute_dtype(g.dtype, m.dtype, v.dtype)
            g_c = g.astype(cd)
            m_c = b1 * m.astype(cd) + (1 - b1) * g_c
            v_c = b2 * v.astype(cd) + (1 - b2) * g_c * g_c
            lr_i = (base + offsets[i]).astype(cd)
            step = -(lr_i * step_factor.astype(cd)) * (m_c / (jnp.sqrt(v_c) + eps))
            steps.append(step.astype(g.dtype))
            mus.append(m_c.astype(m.dtype))
            nus.append(v_c.astype(v.dtype))
        new_state = AdamHDState(
            count=count,
            learning_rate=base + offset,
            lr_offset=offset,
            mu=treedef.unflatten(mus),
            nu=treedef.unflatten(nus),
        )
        return treedef.unflatten(steps), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adam_hd(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    hypergrad_lr: optax.ScalarOrSchedule = 1e-8,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    variant: str = "code",
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Adam with hypergradient descent on the learning rate (Adam-HD), as the reference code.

    Paper: Baydin, Cornish, Martínez Rubio, Schmidt, Wood, "Online Learning Rate Adaptation
    with Hypergradient Descent", ICLR 2018, arXiv:1703.04782; reference code
    gbaydin/hypergradient-descent ``hypergrad/adam_hd.py`` (``AdamHD``). With
    ``bc_k(t) = 1 - b_k^t``::

        g   = ∇f(θ) + λ θ                                       (coupled weight decay)
        h   = <g, m/(sqrt(v) + eps)> sqrt(bc2(t-1)) / bc1(t-1)  (t >= 2; else 0)
        α  <- α + β h
        m  <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g²
        θ  <- θ - α sqrt(bc2(t)) / bc1(t) · m / (sqrt(v) + eps)

    ``variant="code"`` (default) updates ``α`` leaf by leaf (pytree leaf order) before each
    leaf steps, as the reference code does tensor by tensor; ``variant="paper"`` sums ``h``
    over all leaves first. Defaults are the reference code's: ``learning_rate=1e-3``,
    ``hypergrad_lr=1e-8`` (the paper's experiments: ``1e-7``), ``b1=0.9``, ``b2=0.999``,
    ``eps=1e-8``, ``weight_decay=0``. The learned learning rate is ``state[1].learning_rate``.

    Args:
      learning_rate: the initial learning rate ``α₀`` (a number or a schedule of the step
        count, to which the learned offset is added).
      hypergrad_lr: ``β``, the hypergradient learning rate (>= 0; a number or a schedule).
      b1: decay rate of ``m``, in ``[0, 1)``.
      b2: decay rate of ``v``, in ``[0, 1)``.
      eps: added to ``sqrt(v)``; > 0.
      weight_decay: ``λ``, coupled (added to the gradient; a number or a schedule).
      variant: ``"code"`` or ``"paper"`` (keyword-only).
      mu_dtype: dtype of ``m``; None: the param dtype (keyword-only).
      mask: which leaves get weight decay: a pytree of bools with the params' structure (or a
        prefix of it), or a callable of the params returning one; None: all (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its second state is an
      :class:`AdamHDState`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers import schedules
      >>> loss = lambda p: jnp.sum((p - 1.0) ** 2)
      >>> tx = schedules.adam_hd(learning_rate=0.01, hypergrad_lr=1e-4)
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> for _ in range(20):
      ...     updates, state = tx.update(jax.grad(loss)(params), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> float(state[1].learning_rate) > 0.01  # steady descent: the learning rate grew
      True
    """
    V.check_weight_decay("adam_hd", weight_decay)
    V.check_mask("adam_hd", mask)
    rescale = scale_by_adam_hd(
        learning_rate, hypergrad_lr, b1, b2, eps, variant=variant, mu_dtype=mu_dtype
    )
    return _coupled_decay_first("adam_hd", weight_decay, mask, rescale)


# ---------------------------------------------------------------------- any direction


class HypergradientLRState(NamedTuple):
    """State of :func:`scale_by_hypergradient_lr`.

    Attributes:
      count: the step count (int32).
      learning_rate: the learned learning rate ``α`` used at the last step (at ``init``: the
        initial one), at least float32.
      lr_offset: ``β Σ h``, what hypergradient descent added to the learning rate (schedule).
      prev_direction: the previous direction ``d_prev`` (param dtype).
      inner_state: the state of the wrapped direction.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import schedules
      >>> state = schedules.scale_by_hypergradient_lr(0.1).init(jnp.zeros(3))
      >>> round(float(state.learning_rate), 6), state.prev_direction.shape
      (0.1, (3,))
    """

    count: jax.Array
    learning_rate: jax.Array
    lr_offset: jax.Array
    prev_direction: optax.Updates
    inner_state: optax.OptState


def scale_by_hypergradient_lr(
    learning_rate: optax.ScalarOrSchedule,
    hypergrad_lr: optax.ScalarOrSchedule = 1e-6,
    inner: optax.GradientTransformation | None = None,
) -> optax.GradientTransformationExtraArgs:
    """A hypergradient-descent learning rate in front of any direction (Baydin et al., 2018).

    Paper: Baydin, Cornish, Martínez Rubio, Schmidt, Wood, "Online Learning Rate Adaptation
    with Hypergradient Descent", ICLR 2018, arXiv:1703.04782 (Section 2: the rule applies to
    any update of the form ``θ <- θ - α d``). With ``g`` the incoming gradient and ``d`` the
    direction that ``inner`` makes of it (``d = g`` without ``inner``)::

        α  <- α + β <g, d_prev>          (one dot product over all leaves; d_prev = 0 first)
        returns -α d;   d_prev = d

    ``inner`` must return a *direction* (e.g. ``optax.scale_by_adam()``, ``optax.trace(0.9)``,
    ``jop.scale_by_adan()``), not a full optimizer that already scales by a learning rate. With
    ``optax.trace(momentum)`` this is :func:`sgd_hd`; with an Adam direction it is Adam-HD with
    one global hypergradient (as ``adam_hd(variant="paper")``, but with ``inner``'s own
    placement of ``eps``). The returned updates include the learning rate and its sign.

    Args:
      learning_rate: the initial learning rate ``α₀`` (a number or a schedule of the step
        count, to which the learned offset is added).
      hypergrad_lr: ``β``, the hypergradient learning rate (>= 0; a number or a schedule).
      inner: the transformation giving the direction; None: the gradient itself.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`HypergradientLRState`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxopt_papers import schedules
      >>> tx = schedules.scale_by_hypergradient_lr(1e-2, 1e-4, inner=optax.scale_by_adam())
      >>> loss = lambda p: jnp.sum((p - 1.0) ** 2)
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> for _ in range(20):
      ...     updates, state = tx.update(jax.grad(loss)(params), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> float(state.learning_rate) > 1e-2
      True
    """
    owner = "scale_by_hypergradient_lr"
    _check_hd(owner, learning_rate, hypergrad_lr)
    if inner is not None and not isinstance(inner, optax.GradientTransformation):
        raise TypeError(
            f"{owner}: `inner` must be None or an optax GradientTransformation, got {inner!r}."
        )
    inner = optax.with_extra_args_support(inner) if inner is not None else None

    def init_fn(params):
        V.check_optimizer_init(owner, params)
        lr0, offset = _init_lr(learning_rate, _scalar_dtype(params))
        return HypergradientLRState(
            count=jnp.zeros([], jnp.int32),
            learning_rate=lr0,
            lr_offset=offset,
            prev_direction=optax.tree.zeros_like(params),
            inner_state=optax.EmptyState() if inner is None else inner.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        V.check_optimizer_update(owner, updates, params, state.prev_direction)
        sd = state.lr_offset.dtype
        h = sum(
            (
                _dot(g, d, sd)
                for g, d in zip(
                    jax.tree.leaves(updates), jax.tree.leaves(state.prev_direction), strict=True
                )
            ),
            jnp.zeros([], sd),
        )
        offset = state.lr_offset + jnp.asarray(_value(hypergrad_lr, state.count), sd) * h
        lr = jnp.asarray(_value(learning_rate, state.count), sd) + offset
        if inner is None:
            direction, inner_state = updates, state.inner_state
        else:
            direction, inner_state = inner.update(updates, state.inner_state, params, **extra_args)

        def leaf(d):
            cd = V.compute_dtype(d.dtype)
            return (-lr.astype(cd) * d.astype(cd)).astype(d.dtype)

        steps = jax.tree.map(leaf, direction)
        prev = jax.tree.map(lambda d, p: d.astype(p.dtype), direction, state.prev_direction)
        new_state = HypergradientLRState(
            count=optax.safe_increment(state.count),
            learning_rate=lr,
            lr_offset=offset,
            prev_direction=prev,
            inner_state=inner_state,
        )
        return steps, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
