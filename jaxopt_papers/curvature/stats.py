r"""Per-layer rank-1 statistics, captured in the same forward/backward pass as the gradients.

Kronecker-factored methods (MKOR, K-FAC) precondition the gradient of each dense or
convolutional layer with statistics of the layer's inputs ``x`` and of the gradients of the loss
with respect to its outputs ``y``. MKOR (Mozaffari, Li, Zhang, Mehri Dehnavi, "MKOR:
Momentum-Enabled Kronecker-Factor-Based Optimizer Using Rank-1 Updates", NeurIPS 2023,
arXiv:2306.01685; official code Mohammad-Mozaffari/mkor ``mkor/utils/factors.py``) keeps only
their batch means::

    a = mean_rows clamp([x_row, 1], ±c)          (the 1 only when the layer has a bias)
    g = mean_rows (N ∂loss/∂y_row)  = Σ_rows ∂loss/∂y_row

with ``N`` the number of rows (batch × leading axes of a dense layer; the batch of a
convolution) and ``c`` the clamp (``clipping``, 100 in the reference code). For a convolution a
row is one example: its patches (the im2col columns) and its output gradients are first
**averaged over the spatial positions**. The entries of ``a`` are ordered like the layer's
flattened kernel: ``(kh, kw, in)`` for flax (kernel ``(kh, kw, in, out)``), ``(in, kh, kw)`` for
equinox (weight ``(out, in, kh, kw)``).

:func:`value_grad_and_stats` returns them beside the loss and the gradients, as a
``layer_stats`` dict with the params' nesting in which each layer (the dict holding ``kernel``
and ``bias``, or an equinox ``Linear``/``Conv2d``) is replaced by its :class:`KroneckerStats`.

**How the capture works.** While ``loss_fn`` is traced, the supported layers' calls are
intercepted (``flax.linen.intercept_methods`` for linen ``Dense``/``Conv``; a temporary
wrapper of ``__call__`` for flax nnx ``Linear``/``Conv`` and equinox ``Linear``/``Conv2d``).
A layer is recognised by its weight: the very array of ``params`` that it multiplies. Each call
adds two zero "probes" that are differentiated together with ``params`` in one
``jax.value_and_grad``: a zero added to the output (its gradient is ``Σ_rows ∂loss/∂y_row``) and
an identity on the input whose custom backward rule returns ``Σ_rows [clamp(x_row), 1]`` (the
sum of the rows and their count). The values and the gradients of the parameters are untouched,
the extra cost is a few reductions, and it works when the model is ``jax.vmap``-ed over the
batch (equinox's convention): the probes' cotangents are summed over the mapped axis. A layer
called several times (shared weights) gets the statistics of all its rows together. Other
layer types: :func:`register_layer`. The ``__call__`` wrappers are installed on the classes only
while ``loss_fn`` is traced: do not trace two captures in parallel threads.

Differences from the reference code: the clamp of ``g`` (``±c`` on each row's ``N ∂loss/∂y``)
is applied to the mean ``g`` by :func:`~jaxopt_papers.curvature.mkor`, because a layer called
under ``jax.vmap`` cannot know ``N``; the two agree when no row's ``N ∂loss/∂y`` reaches
``c``. The clamp of the inputs is per row, as in the reference code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["KroneckerStats", "register_layer", "value_grad_and_stats"]

_OWNER = "value_grad_and_stats"


class KroneckerStats(NamedTuple):
    """The rank-1 statistics of one layer (batch means; see :mod:`~jaxopt_papers.curvature`).

    Attributes:
      a: mean over rows of the (clamped) layer input rows, with a 1 appended when the layer has
        a bias, shape ``(K,)`` or ``(K + 1,)`` with ``K`` the kernel's fan-in
        (``in·kh·kw`` for a convolution, positions averaged).
      g: mean over rows of ``N ∂loss/∂(layer output)`` (``N`` rows; the spatial positions of a
        convolution averaged), shape ``(out,)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.curvature import KroneckerStats
      >>> s = KroneckerStats(a=jnp.ones(4), g=jnp.zeros(2))
      >>> s.a.shape, s.g.shape
      ((4,), (2,))
    """

    a: jax.Array
    g: jax.Array


@dataclasses.dataclass(frozen=True)
class _Kind:
    """How to read one layer type: its input rows and the number of output positions."""

    rows: Callable[[Any, jax.Array], jax.Array]  # (module, x) -> (R, K) input rows
    positions: Callable[[Any, jax.Array], int]  # (module, y) -> positions averaged per row
    weight: Callable[[Any], jax.Array]  # module -> the weight array (as in params)
    has_bias: Callable[[Any], bool]
    channels_first: bool  # output channels before the spatial axes (equinox Conv2d)
    intercept: str  # "linen" (intercept_methods) or "call" (wrap __call__)


_KINDS: dict[type, _Kind] = {}


def _pairs(value, n=2):
    if isinstance(value, int):
        return (value,) * n
    return tuple(value)


def _conv_padding(padding):
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(
                f"{_OWNER}: only 'SAME', 'VALID' or explicit padding is supported for "
                f"convolutions, got padding={padding!r}."
            )
        return padding.upper()
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


def _flax_conv_rows(module, x):
    """Rows of a flax (linen or nnx) ``Conv``: per-example spatial means of the patches,
    ordered ``(kh, kw, in)`` like ``kernel.reshape(-1, out)``."""
    kernel_size = _pairs(module.kernel_size)
    if getattr(module, "feature_group_count", 1) != 1 or len(kernel_size) != 2:
        raise ValueError(f"{_OWNER}: only 2-D ungrouped convolutions are supported, got {module}.")
    if _pairs(getattr(module, "input_dilation", 1) or 1) != (1, 1):
        raise ValueError(f"{_OWNER}: input_dilation is not supported, got {module}.")
    c = x.shape[-1]
    x4 = x.reshape((-1, *x.shape[-3:]))
    patches = jax.lax.conv_general_dilated_patches(
        x4,
        kernel_size,
        _pairs(module.strides or 1),
        _conv_padding(module.padding),
        rhs_dilation=_pairs(module.kernel_dilation or 1),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )  # (n, h', w', c·kh·kw) ordered (c, kh, kw)
    mean = patches.mean(axis=(1, 2)).reshape(-1, c, *kernel_size)
    return jnp.moveaxis(mean, 1, -1).reshape(mean.shape[0], -1)


def _eqx_conv_rows(module, x):
    """Rows of an equinox ``Conv2d`` (input ``(in, h, w)`` or batched ``(n, in, h, w)``):
    spatial means of the patches ordered ``(in, kh, kw)`` like ``weight.reshape(out, -1)``."""
    if module.groups != 1 or getattr(module, "padding_mode", "ZEROS") != "ZEROS":
        raise ValueError(f"{_OWNER}: only ungrouped zero-padded Conv2d is supported, got {module}.")
    x4 = x.reshape((-1, *x.shape[-3:]))
    patches = jax.lax.conv_general_dilated_patches(
        x4,
        module.kernel_size,
        module.stride,
        _conv_padding(module.padding),
        rhs_dilation=module.dilation,
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
    )  # (n, in·kh·kw, h', w')
    return patches.mean(axis=(2, 3))


def _dense_rows(module, x):
    del module
    return x.reshape(-1, x.shape[-1])


def _spatial_positions(y, channel_axis):
    """Number of output positions per example of a 2-D convolution output."""
    spatial = y.shape[-3:-1] if channel_axis == -1 else y.shape[-2:]
    return math.prod(spatial)


def _linen_weight(module):
    return module.variables["params"]["kernel"]


def _linen_bias(module):
    return "bias" in module.variables.get("params", {})


def _nnx_weight(module):
    return jax.tree.leaves(module.kernel)[0]


def _nnx_bias(module):
    return module.bias is not None and len(jax.tree.leaves(module.bias)) > 0


def register_layer(
    layer_type: type,
    input_rows: Callable[[Any, jax.Array], jax.Array],
    weight: Callable[[Any], jax.Array],
    has_bias: Callable[[Any], bool],
    *,
    positions: Callable[[Any, jax.Array], int] | None = None,
    channels_first: bool = False,
    linen: bool = False,
) -> None:
    """Teach :func:`value_grad_and_stats` another layer type.

    The layer's ``__call__(x)`` is intercepted (with ``flax.linen.intercept_methods`` when
    ``linen``, otherwise by wrapping the class's ``__call__`` while the loss is traced). Its
    parameters must sit in ``params`` as a dict holding ``kernel`` (and ``bias``) laid out
    ``(..., out)`` (flax), or as an equinox module whose ``weight`` is ``(out, ...)``: that is
    where the statistics go and how :func:`~jaxopt_papers.curvature.mkor` finds the weight.

    Args:
      layer_type: the module class (instances of subclasses are captured too).
      input_rows: ``(module, x) -> (R, K)``: the rows of the layer input that multiply the
        flattened kernel (``K`` its fan-in, in the kernel's flattening order).
      weight: ``module -> array``: the weight array, as the module reads it from ``params``.
      has_bias: ``module -> bool``.
      positions: ``(module, y) -> int``: the output positions averaged per row (convolutions:
        the spatial size; None: 1, a dense layer whose output rows are the rows).
      channels_first: whether the output channels come before the spatial axes, ``(out, h,
        w)`` (equinox), rather than last (flax) (keyword-only).
      linen: whether ``layer_type`` is a ``flax.linen`` module (keyword-only).

    Returns:
      None.

    Example:
      >>> import equinox as eqx
      >>> from jaxopt_papers import curvature
      >>> class Scaled(eqx.nn.Linear):  # a Linear subclass is captured already
      ...     pass
      >>> curvature.register_layer(
      ...     Scaled,
      ...     input_rows=lambda m, x: x.reshape(-1, x.shape[-1]),
      ...     weight=lambda m: m.weight,
      ...     has_bias=lambda m: m.bias is not None,
      ... )
      >>> Scaled in curvature.stats._KINDS
      True
    """
    if not isinstance(layer_type, type):
        raise TypeError(f"register_layer: `layer_type` must be a class, got {layer_type!r}.")
    for name, fn in (("input_rows", input_rows), ("weight", weight), ("has_bias", has_bias)):
        if not callable(fn):
            raise TypeError(f"register_layer: `{name}` must be callable, got {fn!r}.")
    _KINDS[layer_type] = _Kind(
        rows=input_rows,
        positions=positions or (lambda m, y: 1),
        weight=weight,
        has_bias=has_bias,
        channels_first=channels_first,
        intercept="linen" if linen else "call",
    )


def _register_builtin() -> None:
    import equinox as eqx

    register_layer(eqx.nn.Linear, _dense_rows, lambda m: m.weight, lambda m: m.bias is not None)
    register_layer(
        eqx.nn.Conv2d,
        _eqx_conv_rows,
        lambda m: m.weight,
        lambda m: m.bias is not None,
        positions=lambda m, y: _spatial_positions(y, 0),
        channels_first=True,
    )
    try:  # flax is optional (the ``flax`` extra)
        import flax.linen as nn
        from flax import nnx
    except ImportError:
        return

    register_layer(nn.Dense, _dense_rows, _linen_weight, _linen_bias, linen=True)
    register_layer(
        nn.Conv,
        _flax_conv_rows,
        _linen_weight,
        _linen_bias,
        positions=lambda m, y: _spatial_positions(y, -1),
        linen=True,
    )
    register_layer(nnx.Linear, _dense_rows, _nnx_weight, _nnx_bias)
    register_layer(
        nnx.Conv,
        _flax_conv_rows,
        _nnx_weight,
        _nnx_bias,
        positions=lambda m, y: _spatial_positions(y, -1),
    )


_register_builtin()


def _kind_of(module) -> _Kind | None:
    for cls in type(module).__mro__:
        if cls in _KINDS:
            return _KINDS[cls]
    return None


# ------------------------------------------------------------------------------ layers in params


def _key_name(key) -> Any:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return getattr(key, attr)
    return str(key)


def _is_layer_node(node) -> bool:
    """A layer in a params tree: a dict holding a ``kernel`` array or variable of ndim >= 2,
    or a registered (equinox) module with a ``weight`` array of ndim >= 2."""
    if isinstance(node, Mapping):
        if "kernel" not in node:
            return False
        leaves = jax.tree.leaves(node["kernel"])
        return len(leaves) == 1 and getattr(leaves[0], "ndim", 0) >= 2
    weight = getattr(node, "weight", None)
    return _kind_of(node) is not None and getattr(weight, "ndim", 0) >= 2


class _Layer(NamedTuple):
    path: tuple  # key names from the root of params to the layer node
    weight: Any  # the weight leaf
    bias: Any  # the bias leaf or None
    flax_layout: bool  # kernel (..., in, out) (True) or weight (out, in, ...) (False)


def find_layers(params: Any) -> list[_Layer]:
    """The layers of a params tree (flax dicts holding ``kernel``, equinox modules with
    ``weight``), in flattening order."""
    found = []
    nodes = jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_layer_node)[0]
    for path, node in nodes:
        if not _is_layer_node(node):
            continue
        names = tuple(_key_name(k) for k in path)
        if isinstance(node, Mapping):
            weight = jax.tree.leaves(node["kernel"])[0]
            bias = jax.tree.leaves(node.get("bias", None))
            found.append(_Layer(names, weight, bias[0] if bias else None, True))
        else:
            bias = jax.tree.leaves(getattr(node, "bias", None))
            found.append(_Layer(names, node.weight, bias[0] if bias else None, False))
    return found


def _nest(items: list[tuple[tuple, Any]]) -> dict:
    out: dict = {}
    for path, value in items:
        d = out
        for key in path[:-1]:
            d = d.setdefault(key, {})
        d[path[-1]] = value
    return out


# ------------------------------------------------------------------------------------- probes


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _input_tap(x, probe, features):
    del probe, features
    return x


def _input_tap_fwd(x, probe, features):
    del probe
    return x, x


def _input_tap_bwd(features, x, ct):
    return ct, features(x)


_input_tap.defvjp(_input_tap_fwd, _input_tap_bwd)


class _Capture:
    """The probes of one traced call of ``loss_fn``: weight id -> layer index and probes."""

    def __init__(self, layers, probes_a, probes_g, clipping):
        self.index = {id(layer.weight): i for i, layer in enumerate(layers)}
        self.probes_a = probes_a
        self.probes_g = probes_g
        self.clipping = clipping

    def call(self, kind: _Kind, module, call, x, *args, **kwargs):
        i = self.index.get(id(kind.weight(module)))
        if i is None:
            return call(x, *args, **kwargs)
        clip = self.clipping

        def features(x_saved):
            rows = kind.rows(module, x_saved)
            rows = jnp.clip(rows, -clip, clip)
            ones = jnp.ones((rows.shape[0], 1), rows.dtype)
            return jnp.concatenate([rows, ones], axis=1).sum(0).astype(self.probes_a[i].dtype)

        x = _input_tap(x, self.probes_a[i], features)
        y = call(x, *args, **kwargs)
        probe = self.probes_g[i].astype(y.dtype) / kind.positions(module, y)
        if kind.channels_first and y.ndim >= 3:  # (..., out, h, w)
            probe = probe[:, None, None]
        return y + probe


@contextlib.contextmanager
def _intercepting(capture: _Capture):
    import flax.linen as nn

    patched = []

    def make_wrapper(kind, original):
        def wrapper(self, x, *args, **kwargs):
            return capture.call(
                kind, self, lambda *a, **k: original(self, *a, **k), x, *args, **kwargs
            )

        return wrapper

    def interceptor(next_fun, args, kwargs, context):
        kind = _kind_of(context.module)
        if kind is None or kind.intercept != "linen" or context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        return capture.call(kind, context.module, next_fun, *args, **kwargs)

    # the unpatched methods first: a registered subclass must not wrap its parent's wrapper
    originals = {cls: cls.__call__ for cls, kind in _KINDS.items() if kind.intercept == "call"}
    try:
        for cls, original in originals.items():
            patched.append((cls, cls.__dict__.get("__call__")))
            cls.__call__ = make_wrapper(_KINDS[cls], original)
        with nn.intercept_methods(interceptor):
            yield
    finally:
        for cls, own in reversed(patched):
            if own is None:  # the class inherited __call__
                delattr(cls, "__call__")
            else:
                cls.__call__ = own


def value_grad_and_stats(
    loss_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    has_aux: bool = False,
    clipping: float = 100.0,
    **kwargs: Any,
) -> tuple[Any, Any, dict]:
    """``jax.value_and_grad(loss_fn)(params, *args)`` plus the layers' :class:`KroneckerStats`.

    The statistics come from the same forward and backward pass as the gradients (see
    :mod:`jaxopt_papers.curvature.stats`): flax linen ``Dense``/``Conv``, flax nnx
    ``Linear``/``Conv`` and equinox ``Linear``/``Conv2d`` layers whose weights are leaves of
    ``params`` are captured (other types: :func:`register_layer`). ``loss_fn`` must use those
    leaves as they are (a cast or a copy of a weight hides its layer). Works under ``jax.jit``.

    Args:
      loss_fn: ``loss_fn(params, *args, **kwargs)`` -> a scalar (or ``(scalar, aux)`` with
        ``has_aux``). The statistics assume a loss averaged over the rows.
      params: the parameters (flax params dict, nnx ``State``, equinox model or any pytree).
      *args: further arguments of ``loss_fn`` (the batch).
      has_aux: whether ``loss_fn`` returns ``(loss, aux)`` (keyword-only).
      clipping: clamp ``c`` of each input row (the reference code's ``clipping_value``);
        keyword-only.
      **kwargs: further keyword arguments of ``loss_fn``.

    Returns:
      ``(value, grads, layer_stats)``: ``value`` as ``jax.value_and_grad`` gives it (``(loss,
      aux)`` with ``has_aux``), ``grads`` like ``params``, and ``layer_stats``: a dict with
      the params' nesting holding one :class:`KroneckerStats` per captured layer.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from jaxopt_papers import curvature
      >>> model = nn.Dense(2)
      >>> x = jnp.ones((4, 3))
      >>> params = model.init(jax.random.key(0), x)["params"]
      >>> loss = lambda p, x: jnp.mean(model.apply({"params": p}, x) ** 2)
      >>> value, grads, stats = curvature.value_grad_and_stats(loss, params, x)
      >>> print(stats.a)  # params is one layer: its statistics (inputs 1, bias 1)
      [1. 1. 1. 1.]
    """
    if not callable(loss_fn):
        raise TypeError(f"{_OWNER}: `loss_fn` must be callable, got {loss_fn!r}.")
    layers = find_layers(params)
    probes_a = [
        jnp.zeros((math.prod(_fan_in_shape(layer)) + 1,), _stat_dtype(layer)) for layer in layers
    ]
    probes_g = [jnp.zeros((_fan_out(layer),), _stat_dtype(layer)) for layer in layers]

    def wrapped(p, pa, pg):
        capture = _Capture(find_layers(p), pa, pg, clipping)
        with _intercepting(capture):
            out = loss_fn(p, *args, **kwargs)
        return out

    value, (grads, sums, gbar) = jax.value_and_grad(wrapped, argnums=(0, 1, 2), has_aux=has_aux)(
        params, probes_a, probes_g
    )
    stats = []
    for layer, s, g in zip(layers, sums, gbar, strict=True):
        count = jnp.maximum(s[-1], 1)
        a = s[:-1] / count
        if layer.bias is not None:
            a = jnp.concatenate([a, jnp.ones((1,), a.dtype)])
        stats.append((layer.path, KroneckerStats(a=a, g=g)))
    layer_stats = stats[0][1] if stats and stats[0][0] == () else _nest(stats)
    return value, grads, layer_stats


def _fan_in_shape(layer: _Layer) -> tuple[int, ...]:
    w = layer.weight
    return tuple(w.shape[:-1]) if layer.flax_layout else tuple(w.shape[1:])


def _fan_out(layer: _Layer) -> int:
    w = layer.weight
    return w.shape[-1] if layer.flax_layout else w.shape[0]


def _stat_dtype(layer: _Layer):
    return jnp.promote_types(layer.weight.dtype, jnp.float32)
