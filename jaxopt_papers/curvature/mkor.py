r"""MKOR: Kronecker-factored preconditioning with rank-1 Sherman–Morrison updates, and MKOR-H.

Paper: Mohammad Mozaffari, Sikan Li, Zhao Zhang, Maryam Mehri Dehnavi, "MKOR: Momentum-Enabled
Kronecker-Factor-Based Optimizer Using Rank-1 Updates", NeurIPS 2023, arXiv:2306.01685.
Reference code: Mohammad-Mozaffari/mkor ``mkor/mkor.py`` and ``mkor/utils/factors.py`` (commit
3a0e3bb).

Each dense or convolutional layer with statistics (:class:`~jaxopt_papers.curvature.KroneckerStats`
``a``, ``g`` from :func:`~jaxopt_papers.curvature.value_grad_and_stats`, passed as the extra
argument ``layer_stats``) keeps two inverse factors, ``A⁻¹`` (fan-in (+1 with a bias)) and ``G⁻¹``
(fan-out), and two reset flags (set at the start). With ``t`` the step count before the step, on
a **collection step** (``t mod inv_freq == 0`` or ``t < warmup_steps``), for every layer, first
all the ``A`` factors then all the ``G`` factors (``v = clamp(a)`` or ``clamp(g)``, ``±c``)::

    variant="code" (default, the reference code):
        if the factor's reset flag:  F⁻¹ <- I ; flag <- False        (the step's v is dropped)
        else:  B = γ F⁻¹ + (1 - γ) I ;  F⁻¹ <- B - (B v)(vᵀ B) / (1 + vᵀ B v)
               if max|F⁻¹| > 2:  set both flags of the layer          (reset at the next one)
    variant="exact_sm" (the paper's intent, Algorithm 1):
        if max|F⁻¹| > stabilizer_threshold:  F⁻¹ <- (1 - ζ) F⁻¹ + ζ I  (norm-based stabiliser)
        F⁻¹ <- inverse of  γ F + (1 - γ) v vᵀ
             = F⁻¹/γ - ((1 - γ)/γ²) (F⁻¹ v)(vᵀ F⁻¹) / (1 + ((1 - γ)/γ) vᵀ F⁻¹ v)

Then, on every step, each such layer's gradient ``M = [∇W | ∇b]`` (``out × (in + 1)`` in the
reference's layout) is preconditioned and rescaled to the gradient's norm::

    V = G⁻¹ M A⁻¹ ;  r = (‖∇W‖ + ‖∇b‖) / (‖V_W‖ + ‖V_b‖) ;  (∇W, ∇b) <- r (V_W, V_b)

(``r`` NaN, a zero gradient: the gradient is left as it is), and the inner first-order
optimiser (SGD or Adam) takes the step. Layers without statistics go straight to it.

**MKOR-H** (:func:`mkor_h`) switches permanently to the inner optimiser once second-order steps
stop paying off. The official code has no switching rule; this one is **ours**: with ``ℓ_t``
the loss passed as the extra argument ``value`` and ``ρ_t = (ℓ_{t-1} - ℓ_t) / |ℓ_{t-1}|`` the
relative decrease, keep the bias-corrected EMA ``ρ̄`` (decay ``switch_decay``); after
``switch_min_steps`` steps, the first time ``ρ̄ < switch_threshold`` the preconditioning stops
(the factors are no longer updated).

Defaults are the reference code's (``MKOR.__init__``): ``inv_freq=10``, ``clipping=100``
(``clipping_value``), ``warmup_steps=0``, inner optimiser SGD; ``γ = 0.95`` is hard-coded in
``_invert_factor`` (the ``stat_decay=0.95`` argument is unused there) and the reset threshold 2
in ``_set_reset_factor_flags``. ``exact_sm``'s stabiliser: ``ζ = 0.1`` (the reference's
``stabilization_factor``), threshold 2.

Costs per layer with fan-in ``K`` and fan-out ``n``: memory ``(K + 1)² + n²`` for the factors
(float32); time ``O((K + 1)² + n²)`` for the factor updates on collection steps and
``O(n K (K + n))`` for the preconditioning on every step. The factors are replicated across
devices (they are small next to the batch): with sharded params, the preconditioning of a
sharded gradient compiles to collectives on the gradient's sharded axis (see
``tests/multidevice/test_curvature.py``).

Differences from the reference code: the factors are float32 (``factor_dtype``) where the
reference defaults to float16 (``half_precision=True``); the clamp of ``g`` is applied to the
batch mean (the reference clamps each row's ``N ∂loss/∂y``; the same unless a row reaches the
clamp); the gradient-accumulation, AMP ``grad_scale``, ``sgd_layers`` and multi-worker options
are left out (use ``optax.MultiSteps``, scale the loss yourself, omit a layer from
``layer_stats``, and let ``jax.jit`` handle the sharding). With ``inner="sgd"`` or ``"adam"``
the inner step is optax's ``sgd`` (momentum ``trace``) or ``adam``, which are torch's
``SGD(dampening=0)`` and ``Adam`` up to rounding; weight decay is added to the preconditioned
gradient as torch's coupled ``weight_decay`` is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import _validation as V
from jaxopt_papers.curvature.stats import KroneckerStats, _is_layer_node, _key_name, find_layers

__all__ = ["MKORLayerState", "MKORState", "mkor", "mkor_h", "scale_by_mkor"]

_OWNER = "mkor"
_VARIANTS = ("code", "exact_sm")


class MKORLayerState(NamedTuple):
    """The inverse Kronecker factors of one layer.

    Attributes:
      a_inv: ``A⁻¹``, ``(K, K)`` or ``(K + 1, K + 1)`` with a bias (``K`` the fan-in).
      g_inv: ``G⁻¹``, ``(n, n)`` (``n`` the fan-out).
      reset_a: whether the next collection step resets ``A⁻¹`` to the identity (bool).
      reset_g: whether the next collection step resets ``G⁻¹`` to the identity (bool).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import curvature
      >>> layer = {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}
      >>> state = curvature.scale_by_mkor().init(layer)
      >>> f = state.factors[""]
      >>> f.a_inv.shape, f.g_inv.shape, bool(f.reset_a)
      ((4, 4), (2, 2), True)
    """

    a_inv: jax.Array
    g_inv: jax.Array
    reset_a: jax.Array
    reset_g: jax.Array


class MKORState(NamedTuple):
    """State of :func:`scale_by_mkor`.

    Attributes:
      count: the step count ``t`` (int32).
      factors: a dict ``layer path -> MKORLayerState`` for every layer of the params (path: the
        keys from the root joined by ``/``; ``""`` when the params are one layer).
      second_order: whether the preconditioning is on (MKOR-H turns it off for good; bool).
      prev_value: the previous loss (MKOR-H; float32).
      decrease_ema: the EMA of the relative loss decrease, not bias-corrected (MKOR-H).
      param_shapes: a pytree like the params of empty arrays of shape ``(0, *p.shape)`` (no
        memory): the structure and shapes ``update`` checks its arguments against.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import curvature
      >>> state = curvature.scale_by_mkor().init({"kernel": jnp.zeros((3, 2))})
      >>> int(state.count), bool(state.second_order), list(state.factors)
      (0, True, [''])
    """

    count: jax.Array
    factors: dict[str, MKORLayerState]
    second_order: jax.Array
    prev_value: jax.Array
    decrease_ema: jax.Array
    param_shapes: Any


def _path_key(names: tuple) -> str:
    return "/".join(str(n) for n in names)


def _stats_by_path(layer_stats: Any) -> dict[str, KroneckerStats]:
    if layer_stats is None:
        return {}
    if isinstance(layer_stats, KroneckerStats):
        return {"": layer_stats}
    is_stats = lambda x: isinstance(x, KroneckerStats)
    found = {}
    for path, node in jax.tree_util.tree_flatten_with_path(layer_stats, is_leaf=is_stats)[0]:
        if not is_stats(node):
            raise TypeError(
                f"{_OWNER}: `layer_stats` must hold KroneckerStats (a dict with the params' "
                f"nesting), got {type(node).__name__} at {jax.tree_util.keystr(path)}."
            )
        found[_path_key(tuple(_key_name(k) for k in path))] = node
    return found


def _layer_parts(node) -> tuple[list, Any, int, int | None]:
    """``(leaves, treedef, weight index, bias index or None)`` of a layer node."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(node)
    leaves = [leaf for _, leaf in flat]
    first = [_key_name(path[0]) for path, _ in flat]
    weight_name = "kernel" if isinstance(node, Mapping) else "weight"
    iw = first.index(weight_name)
    ib = first.index("bias") if "bias" in first else None
    return leaves, treedef, iw, ib


def _sherman_morrison(b: jax.Array, v: jax.Array) -> jax.Array:
    """``(B⁻¹ + v vᵀ)⁻¹ = B - (B v)(vᵀ B) / (1 + vᵀ B v)`` in the reference code's order."""
    bv = b @ v
    vb = v @ b
    return b - jnp.outer(bv / (1 + vb @ v), vb)


def scale_by_mkor(
    inv_freq: int = 10,
    gamma: float = 0.95,
    clipping: float = 100.0,
    warmup_steps: int = 0,
    *,
    variant: str = "code",
    reset_threshold: float = 2.0,
    stabilizer_threshold: float = 2.0,
    stabilizer_factor: float = 0.1,
    factor_dtype: Any = None,
    switch_threshold: float | None = None,
    switch_decay: float = 0.9,
    switch_min_steps: int = 100,
) -> optax.GradientTransformationExtraArgs:
    """MKOR's preconditioning (before the inner optimiser): ``r · G⁻¹ [∇W | ∇b] A⁻¹`` per layer.

    Paper: Mozaffari et al., "MKOR: Momentum-Enabled Kronecker-Factor-Based Optimizer Using
    Rank-1 Updates", NeurIPS 2023, arXiv:2306.01685; reference code Mohammad-Mozaffari/mkor. See
    :mod:`jaxopt_papers.curvature.mkor` for the equations. ``update(grads, state, params, *,
    layer_stats=..., value=...)``: ``layer_stats`` from
    :func:`~jaxopt_papers.curvature.value_grad_and_stats` (read on collection steps; the layers
    it names are the ones preconditioned, so pass it every step), ``value`` the loss (only with
    ``switch_threshold``, MKOR-H). Memory per layer ``(K+1)² + n²``; time per step
    ``O(n K (K + n))``.

    Args:
      inv_freq: collect statistics and update the factors every ``inv_freq`` steps (default 10).
      gamma: ``γ``, the weight of the old factor, in ``(0, 1)`` (default 0.95).
      clipping: clamp ``c`` of the statistics (default 100).
      warmup_steps: also collect on every step ``t < warmup_steps`` (default 0).
      variant: ``"code"`` (the reference code's update, default) or ``"exact_sm"`` (the exact
        inverse of ``γ F + (1 - γ) v vᵀ`` with the norm-based stabiliser); keyword-only.
      reset_threshold: ``"code"``: reset the layer's factors after one exceeds this in max-abs
        (default 2, the reference's; keyword-only).
      stabilizer_threshold: ``"exact_sm"``: blend the factor with ``I`` when its max-abs entry
        exceeds this (default 2; keyword-only).
      stabilizer_factor: ``ζ`` of that blend, in ``[0, 1]`` (default 0.1; keyword-only).
      factor_dtype: dtype of the factors; None: float32 (keyword-only).
      switch_threshold: MKOR-H: stop preconditioning once the EMA of the relative loss decrease
        falls below this; None: never (plain MKOR; keyword-only).
      switch_decay: MKOR-H: decay of that EMA, in ``[0, 1)`` (keyword-only).
      switch_min_steps: MKOR-H: steps before switching is allowed (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`MKORState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import curvature
      >>> params = {"kernel": jnp.ones((2, 2))}
      >>> tx = curvature.scale_by_mkor()
      >>> stats = curvature.KroneckerStats(a=jnp.array([1.0, 0.0]), g=jnp.array([0.0, 1.0]))
      >>> grads = {"kernel": jnp.array([[1.0, 0.0], [0.0, 1.0]])}
      >>> u, state = tx.update(grads, tx.init(params), params, layer_stats=stats)
      >>> print(u["kernel"])  # first step: the factors are reset to the identity
      [[1. 0.]
       [0. 1.]]
    """
    V.check_real(_OWNER, "inv_freq", inv_freq, low=1.0)
    V.check_real(_OWNER, "warmup_steps", warmup_steps, low=0.0)
    V.check_real(_OWNER, "gamma", gamma, low=0.0, high=1.0, low_open=True, high_open=True)
    V.check_real(_OWNER, "clipping", clipping, low=0.0, low_open=True)
    variant = V.check_static_choice(_OWNER, "variant", variant, _VARIANTS)
    V.check_real(_OWNER, "reset_threshold", reset_threshold, low=0.0, low_open=True)
    V.check_real(_OWNER, "stabilizer_threshold", stabilizer_threshold, low=0.0, low_open=True)
    V.check_real(_OWNER, "stabilizer_factor", stabilizer_factor, low=0.0, high=1.0)
    factor_dtype = V.check_float_dtype(_OWNER, "factor_dtype", factor_dtype) or jnp.float32
    hybrid = switch_threshold is not None
    if hybrid:
        V.check_real(_OWNER, "switch_threshold", switch_threshold)
        V.check_beta(_OWNER, "switch_decay", switch_decay)
        V.check_real(_OWNER, "switch_min_steps", switch_min_steps, low=0.0)

    def init_fn(params):
        V.check_optimizer_init(_OWNER, params)
        factors = {}
        for layer in find_layers(params):
            k = layer.weight.shape[:-1] if layer.flax_layout else layer.weight.shape[1:]
            n = layer.weight.shape[-1] if layer.flax_layout else layer.weight.shape[0]
            da = math.prod(k) + (layer.bias is not None)
            factors[_path_key(layer.path)] = MKORLayerState(
                a_inv=jnp.eye(da, dtype=factor_dtype),
                g_inv=jnp.eye(n, dtype=factor_dtype),
                reset_a=jnp.asarray(True),
                reset_g=jnp.asarray(True),
            )
        return MKORState(
            count=jnp.zeros([], jnp.int32),
            factors=factors,
            second_order=jnp.asarray(True),
            prev_value=jnp.zeros([], jnp.float32),
            decrease_ema=jnp.zeros([], jnp.float32),
            param_shapes=jax.tree.map(lambda p: jnp.zeros((0, *p.shape), p.dtype), params),
        )

    def update_factor(f, flag, v):
        eye = jnp.eye(f.shape[0], dtype=f.dtype)
        if variant == "code":
            new = _sherman_morrison(gamma * f + (1 - gamma) * eye, v)
            big = jnp.max(jnp.abs(new)) > reset_threshold
            return jnp.where(flag, eye, new).astype(f.dtype), ~flag & big
        stab = jnp.max(jnp.abs(f)) > stabilizer_threshold
        f = jnp.where(stab, (1 - stabilizer_factor) * f + stabilizer_factor * eye, f)
        fv = f @ v
        c = (1 - gamma) / gamma
        new = f / gamma - (c / gamma) * jnp.outer(fv, fv) / (1 + c * (v @ fv))
        return new.astype(f.dtype), jnp.asarray(False)

    def collect(factors, stats):
        factors = dict(factors)
        for phase in ("a", "g"):
            for key, s in stats.items():
                f = factors[key]
                v = jnp.clip(getattr(s, phase), -clipping, clipping).astype(f.a_inv.dtype)
                if phase == "a":
                    new, big = update_factor(f.a_inv, f.reset_a, v)
                    f = f._replace(
                        a_inv=new,
                        reset_a=jnp.where(f.reset_a, False, big),
                        reset_g=f.reset_g | big,
                    )
                else:
                    new, big = update_factor(f.g_inv, f.reset_g, v)
                    f = f._replace(
                        g_inv=new,
                        reset_g=jnp.where(f.reset_g, False, big),
                        reset_a=f.reset_a | big,
                    )
                factors[key] = f
        return factors

    def precondition(updates, factors, stats):
        nodes, treedef = jax.tree_util.tree_flatten_with_path(updates, is_leaf=_is_layer_node)
        out = []
        for path, node in nodes:
            key = _path_key(tuple(_key_name(k) for k in path))
            if key not in stats or not _is_layer_node(node):
                out.append(node)
                continue
            f = factors[key]
            leaves, node_def, iw, ib = _layer_parts(node)
            w = leaves[iw]
            flax = isinstance(node, Mapping)
            cd = V.compute_dtype(w.dtype, f.a_inv.dtype)
            n = w.shape[-1] if flax else w.shape[0]
            mat = w.reshape(-1, n) if flax else w.reshape(n, -1).T  # (K, n)
            mat = mat.astype(cd)
            if ib is not None:
                mat = jnp.concatenate([mat, leaves[ib].reshape(1, n).astype(cd)], axis=0)
            vmat = f.a_inv.astype(cd) @ mat @ f.g_inv.astype(cd)  # = (G⁻¹ Mᵀ A⁻¹)ᵀ
            k = w.size // n
            v_w, v_b = vmat[:k], vmat[k:]
            gnorm = jnp.linalg.norm(mat[:k])
            unorm = jnp.linalg.norm(v_w)
            if ib is not None:
                gnorm = gnorm + jnp.linalg.norm(mat[k:])
                unorm = unorm + jnp.linalg.norm(v_b)
            r = gnorm / unorm
            keep = jnp.isnan(r)
            new_w = v_w.reshape(w.shape) if flax else v_w.T.reshape(w.shape)
            leaves = list(leaves)
            leaves[iw] = jnp.where(keep, w, (r * new_w).astype(w.dtype)).astype(w.dtype)
            if ib is not None:
                b = leaves[ib]
                leaves[ib] = jnp.where(keep, b, (r * v_b).reshape(b.shape).astype(b.dtype))
            out.append(jax.tree.unflatten(node_def, leaves))
        return jax.tree.unflatten(treedef, out)

    def update_fn(updates, state, params=None, *, layer_stats=None, value=None, **extra_args):
        del extra_args
        reference = jax.tree.map(
            lambda r: jax.ShapeDtypeStruct(r.shape[1:], r.dtype), state.param_shapes
        )
        V.check_optimizer_update(_OWNER, updates, params, reference)
        stats = _stats_by_path(layer_stats)
        for key, s in stats.items():
            if key not in state.factors:
                raise ValueError(
                    f"{_OWNER}: `layer_stats` names the layer {key!r}, which is not a layer of "
                    f"the params given to `init` (layers: {sorted(state.factors)})."
                )
            f = state.factors[key]
            if s.a.shape != f.a_inv.shape[:1] or s.g.shape != f.g_inv.shape[:1]:
                raise ValueError(
                    f"{_OWNER}: `layer_stats` of layer {key!r} must have a of shape "
                    f"{f.a_inv.shape[:1]} and g of shape {f.g_inv.shape[:1]}, got "
                    f"{s.a.shape} and {s.g.shape}."
                )
        second_order = state.second_order
        prev_value, ema = state.prev_value, state.decrease_ema
        count = optax.safe_increment(state.count)
        if hybrid:
            if value is None:
                raise TypeError(
                    f"{_OWNER}: MKOR-H needs the loss: pass `value=loss` to `update` (optax's "
                    f"extra argument), got None."
                )
            value = jnp.asarray(value, jnp.float32)
            rho = (prev_value - value) / jnp.abs(prev_value)
            rho = jnp.where(state.count > 0, rho, 0.0)
            ema = jnp.where(state.count > 0, switch_decay * ema + (1 - switch_decay) * rho, ema)
            debiased = ema / (1 - switch_decay ** jnp.maximum(state.count, 1))
            stop = (state.count >= switch_min_steps) & (debiased < switch_threshold)
            second_order = second_order & ~stop
            prev_value = value

        def second_order_step(factors):
            on = (state.count % inv_freq == 0) | (state.count < warmup_steps)
            factors = jax.lax.cond(on, lambda f: collect(f, stats), lambda f: f, factors)
            return precondition(updates, factors, stats), factors

        new_updates, factors = jax.lax.cond(
            second_order, second_order_step, lambda f: (updates, f), state.factors
        )
        return new_updates, MKORState(
            count=count,
            factors=factors,
            second_order=second_order,
            prev_value=prev_value,
            decrease_ema=ema,
            param_shapes=state.param_shapes,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _inner(owner, learning_rate, inner, momentum, weight_decay, b1, b2, eps, mu_dtype, mask):
    if isinstance(inner, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                f"{owner}: with an optax transformation as `inner`, it sets the learning rate: "
                f"pass `learning_rate=None`, got {learning_rate!r}."
            )
        return inner
    V.check_static_choice(owner, "inner", inner, ("sgd", "adam"))
    mu_dtype = V.check_float_dtype(owner, "mu_dtype", mu_dtype)
    V.check_learning_rate(owner, learning_rate)
    V.check_weight_decay(owner, weight_decay)
    V.check_mask(owner, mask)
    V.check_eps(owner, "eps", eps, positive=True)
    V.check_beta(owner, "b1", b1)
    V.check_beta(owner, "b2", b2)
    decay = optax.add_decayed_weights(weight_decay, mask)
    if inner == "sgd":
        V.check_beta(owner, "momentum", momentum)
        sgd = optax.sgd(learning_rate, momentum=momentum, accumulator_dtype=mu_dtype)
        return optax.chain(decay, sgd)
    adam = optax.adam(learning_rate, b1=b1, b2=b2, eps=eps, mu_dtype=mu_dtype)
    return optax.chain(decay, adam)


def mkor(
    learning_rate: optax.ScalarOrSchedule | None = 1e-3,
    inv_freq: int = 10,
    gamma: float = 0.95,
    clipping: float = 100.0,
    warmup_steps: int = 0,
    *,
    inner: str | optax.GradientTransformation = "sgd",
    variant: str = "code",
    momentum: float = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    reset_threshold: float = 2.0,
    stabilizer_threshold: float = 2.0,
    stabilizer_factor: float = 0.1,
    factor_dtype: Any = None,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """The MKOR optimizer: :func:`scale_by_mkor` followed by the inner first-order optimiser.

    Paper: Mozaffari et al., "MKOR: Momentum-Enabled Kronecker-Factor-Based Optimizer Using
    Rank-1 Updates", NeurIPS 2023, arXiv:2306.01685; reference code Mohammad-Mozaffari/mkor
    ``mkor.MKOR``. Per layer with statistics (see :mod:`jaxopt_papers.curvature.mkor`)::

        F⁻¹ <- SM(γ F⁻¹ + (1 - γ) I, v)  every inv_freq steps   (variant="code")
        ∇ <- r G⁻¹ [∇W | ∇b] A⁻¹  (r: back to the gradient's norm) ;  then SGD or Adam

    Call ``tx.update(grads, state, params, layer_stats=layer_stats)`` with ``layer_stats``
    from :func:`~jaxopt_papers.curvature.value_grad_and_stats`, on every step. Defaults are the
    reference code's (the inner optimiser's learning rate has no default there; 1e-3 here).
    Memory per layer ``(K+1)² + n²`` plus the inner optimiser's; time per step
    ``O(n K (K + n))``.

    Args:
      learning_rate: the inner optimiser's learning rate (a number or a schedule); None when
        ``inner`` is an optax transformation.
      inv_freq: update the factors every ``inv_freq`` steps (default 10).
      gamma: ``γ`` in ``(0, 1)`` (default 0.95).
      clipping: clamp of the statistics (default 100).
      warmup_steps: also update the factors on every step before this one (default 0).
      inner: ``"sgd"`` (default, torch's ``SGD``), ``"adam"`` (torch's ``Adam``) or any optax
        transformation, which then receives the preconditioned gradients (keyword-only).
      variant: ``"code"`` (default) or ``"exact_sm"`` (keyword-only).
      momentum: SGD momentum (keyword-only).
      weight_decay: coupled L2 added to the preconditioned gradient, as torch's
        ``weight_decay`` (keyword-only).
      b1: Adam's ``β1`` (keyword-only).
      b2: Adam's ``β2`` (keyword-only).
      eps: Adam's ``ε`` (keyword-only).
      reset_threshold: as :func:`scale_by_mkor` (keyword-only).
      stabilizer_threshold: as :func:`scale_by_mkor` (keyword-only).
      stabilizer_factor: as :func:`scale_by_mkor` (keyword-only).
      factor_dtype: as :func:`scale_by_mkor` (keyword-only).
      mu_dtype: dtype of the inner optimiser's first moment (SGD momentum, Adam's ``m``);
        None: the param dtype (keyword-only).
      mask: which leaves get weight decay (a pytree of bools or a callable; keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with an
      :class:`MKORState`.

    Example:
      >>> import jax, jax.numpy as jnp, optax, flax.linen as nn
      >>> from jaxopt_papers import curvature
      >>> model = nn.Dense(1)
      >>> x = jax.random.normal(jax.random.key(0), (32, 3))
      >>> y = x @ jnp.array([1.0, -2.0, 0.5])[:, None]
      >>> loss = lambda p: jnp.mean((model.apply({"params": p}, x) - y) ** 2)
      >>> params = model.init(jax.random.key(1), x)["params"]
      >>> tx = curvature.mkor(0.1, inv_freq=5)
      >>> state = tx.init(params)
      >>> @jax.jit
      ... def step(params, state):
      ...     value, grads, stats = curvature.value_grad_and_stats(loss, params)
      ...     updates, state = tx.update(grads, state, params, layer_stats=stats)
      ...     return optax.apply_updates(params, updates), state, value
      >>> for _ in range(100):
      ...     params, state, value = step(params, state)
      >>> print(float(value) < 1e-3)
      True
    """
    return _mkor(**locals())


def _mkor(
    learning_rate,
    inv_freq,
    gamma,
    clipping,
    warmup_steps,
    *,
    inner,
    variant,
    momentum,
    weight_decay,
    b1,
    b2,
    eps,
    reset_threshold,
    stabilizer_threshold,
    stabilizer_factor,
    factor_dtype,
    mu_dtype,
    mask,
    **switch,
):
    first_order = _inner(
        _OWNER, learning_rate, inner, momentum, weight_decay, b1, b2, eps, mu_dtype, mask
    )
    precondition = scale_by_mkor(
        inv_freq,
        gamma,
        clipping,
        warmup_steps,
        variant=variant,
        reset_threshold=reset_threshold,
        stabilizer_threshold=stabilizer_threshold,
        stabilizer_factor=stabilizer_factor,
        factor_dtype=factor_dtype,
        **switch,
    )
    return optax.chain(precondition, first_order)


def mkor_h(
    learning_rate: optax.ScalarOrSchedule | None = 1e-3,
    inv_freq: int = 10,
    gamma: float = 0.95,
    clipping: float = 100.0,
    warmup_steps: int = 0,
    switch_threshold: float = 1e-3,
    switch_decay: float = 0.9,
    switch_min_steps: int = 100,
    *,
    inner: str | optax.GradientTransformation = "sgd",
    variant: str = "code",
    momentum: float = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    reset_threshold: float = 2.0,
    stabilizer_threshold: float = 2.0,
    stabilizer_factor: float = 0.1,
    factor_dtype: Any = None,
    mu_dtype: Any = None,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """MKOR-H: MKOR that switches for good to its inner optimiser when the loss stops falling fast.

    Paper: Mozaffari et al., NeurIPS 2023, arXiv:2306.01685 (MKOR-H, described in words; the
    official code has no switching rule). **The rule is ours**: with ``ρ_t = (ℓ_{t-1} - ℓ_t) /
    |ℓ_{t-1}|`` (``ℓ_t`` the loss passed as ``value``) and ``ρ̄`` its bias-corrected EMA (decay
    ``switch_decay``), the first step ``t >= switch_min_steps`` with ``ρ̄ < switch_threshold``
    stops the preconditioning; the inner optimiser's state carries on. Call
    ``tx.update(grads, state, params, layer_stats=stats, value=loss)``. Costs: as
    :func:`mkor` until the switch, then the inner optimiser's (the factors stay in memory).

    Args:
      learning_rate: as :func:`mkor`.
      inv_freq: as :func:`mkor`.
      gamma: as :func:`mkor`.
      clipping: as :func:`mkor`.
      warmup_steps: as :func:`mkor`.
      switch_threshold: switch when the EMA of the relative decrease is below this (default
        1e-3: 0.1% per step).
      switch_decay: decay of the EMA, in ``[0, 1)`` (default 0.9).
      switch_min_steps: no switch before this step (default 100).
      inner: as :func:`mkor` (keyword-only).
      variant: as :func:`mkor` (keyword-only).
      momentum: as :func:`mkor` (keyword-only).
      weight_decay: as :func:`mkor` (keyword-only).
      b1: as :func:`mkor` (keyword-only).
      b2: as :func:`mkor` (keyword-only).
      eps: as :func:`mkor` (keyword-only).
      reset_threshold: as :func:`mkor` (keyword-only).
      stabilizer_threshold: as :func:`mkor` (keyword-only).
      stabilizer_factor: as :func:`mkor` (keyword-only).
      factor_dtype: as :func:`mkor` (keyword-only).
      mu_dtype: as :func:`mkor` (keyword-only).
      mask: as :func:`mkor` (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state starts with an
      :class:`MKORState` whose ``second_order`` says whether MKOR still preconditions.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import curvature
      >>> params = {"kernel": jnp.ones((2, 1))}
      >>> tx = curvature.mkor_h(0.1, switch_min_steps=1, switch_threshold=0.5)
      >>> state = tx.init(params)
      >>> grads = {"kernel": jnp.ones((2, 1))}
      >>> for loss in [1.0, 0.9]:  # a 10% decrease is below the 50% threshold
      ...     _, state = tx.update(grads, state, params, value=loss)
      >>> bool(state[0].second_order)
      False
    """
    return _mkor(**locals())
