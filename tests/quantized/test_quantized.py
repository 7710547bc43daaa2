"""Block-wise 8-bit quantisation and the 8-bit optimizers against independent oracles.

Oracles: bitsandbytes' ``create_dynamic_map`` values and its CPU optimizer trajectories
(golden files made by ``tests/golden/make_golden_quantized.py``), a brute-force nearest-code
search in NumPy, and a NumPy float32 replay of bitsandbytes' CUDA kernels
(``kernel_replay.py``: the kernel's own binary search, sign guard and arithmetic order).
"""

from __future__ import annotations

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.quantized._ns import jop
from tests.quantized.kernel_replay import Replay, binary_search_code, near_tie

DATA = pathlib.Path(__file__).resolve().parents[1] / "golden" / "data" / "q8"
SIGNED = np.asarray(jop.dynamic_map(True))
UNSIGNED = np.asarray(jop.dynamic_map(False))


def brute_nearest(code, x):
    """argmin |code - x| in float64; exact ties (float32 midpoints) go to the even index."""
    code = code.astype(np.float32)
    mids = ((code[1:] + code[:-1]) * np.float32(0.5)).astype(np.float32)
    d = np.abs(code[None, :].astype(np.float64) - x[:, None].astype(np.float64))
    k = np.argmin(d, axis=1)
    # a value equal to the float32 midpoint of two neighbours is a tie whatever float64 says
    for j in (k - 1, k):
        ok = (j >= 0) & (j < 255)
        jj = np.clip(j, 0, 254)
        tie = ok & (x == mids[jj])
        k = np.where(tie, np.where(jj % 2 == 0, jj, jj + 1), k)
    return k


# ------------------------------------------------------------------------------ the maps


def test_dynamic_map_equals_bitsandbytes():
    with np.load(DATA / "q8_dynamic_map.npz") as z:
        golden = {k: z[k] for k in z.files}
    assert len(golden) >= 5
    for key, ref in golden.items():
        signed, e, bits = key.split("_")
        ours = np.asarray(jop.dynamic_map(bool(int(signed)), int(e), int(bits)))
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, ref, err_msg=key)


def test_dynamic_map_structure():
    assert np.sum(SIGNED < 0) == 127 and np.sum(SIGNED == 0) == 1 and SIGNED.max() == 1.0
    assert np.sum(UNSIGNED == 0) == 1 and UNSIGNED.min() == 0 and UNSIGNED.max() == 1.0
    assert math.isclose(float(np.sort(UNSIGNED)[1]), 3.25e-7, rel_tol=1e-6)


# ------------------------------------------------------------------------------ rounding


def _probe_values(code, rng):
    code = code.astype(np.float32)
    mids = ((code[1:] + code[:-1]) * np.float32(0.5)).astype(np.float32)
    up = np.nextafter(mids, np.float32(2))
    down = np.nextafter(mids, np.float32(-2))
    lo = -1.0 if code.min() < 0 else 0.0
    uniform = rng.uniform(lo, 1.0, 4000).astype(np.float32)
    tiny = (np.sign(rng.uniform(lo, 1, 2000)) * 10 ** rng.uniform(-9, 0, 2000)).astype(np.float32)
    return np.concatenate([mids, up, down, code, uniform, tiny, [0.0, -0.0, 1.0]]).astype(
        np.float32
    )


@pytest.mark.parametrize("signed", [True, False])
def test_nearest_code_matches_brute_force_and_kernel_search(signed):
    from jaxopt_papers.quantized import blockwise as B

    code = SIGNED if signed else UNSIGNED
    x = _probe_values(code, np.random.default_rng(int(signed)))
    ref = brute_nearest(code, x)
    np.testing.assert_array_equal(binary_search_code(code, x), ref)  # the oracles agree
    fast = np.asarray(B.nearest_code(jnp.asarray(x), code))  # lookup table
    traced = np.asarray(jax.jit(B.nearest_code)(jnp.asarray(x), jnp.asarray(code)))  # search
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(traced, ref)


def test_sign_guard_moves_wrong_sign_codes_towards_their_sign():
    """The guarded lookup equals brute-force nearest plus the CUDA kernel's guard, written out:
    a value whose nearest code has the other sign (or is zero for a negative value) moves one
    code towards its own sign."""
    from jaxopt_papers.quantized import blockwise as B

    code = SIGNED.astype(np.float32)
    x = _probe_values(code, np.random.default_rng(7))
    x = np.concatenate([x, -(10.0 ** np.linspace(-12, -5, 200)).astype(np.float32), [-0.0]])
    x = x.astype(np.float32)
    k = brute_nearest(code, x)
    negative, code_negative = np.signbit(x), code[k] < 0
    want = np.where(negative & ~code_negative, k - 1, k)
    want = np.where(~negative & code_negative, k + 1, want)
    got = np.asarray(B.codebook(code).nearest(jnp.asarray(x), sign_guard=True))
    np.testing.assert_array_equal(got, want)
    assert np.all(np.signbit(code[got]) == negative)  # every code has its value's sign
    assert np.sum(got != k) > 100  # the guard fired (tiny negative values, -0.0)


def test_ties_go_to_the_even_index():
    from jaxopt_papers.quantized import blockwise as B

    code = SIGNED.astype(np.float32)
    mids = ((code[1:] + code[:-1]) * np.float32(0.5)).astype(np.float32)
    exact = code[:-1] < mids  # midpoints strictly between their neighbours
    k = np.nonzero(exact)[0]
    got = np.asarray(B.nearest_code(jnp.asarray(mids[k]), code))
    np.testing.assert_array_equal(got, np.where(k % 2 == 0, k, k + 1))
    above = np.asarray(B.nearest_code(jnp.asarray(np.nextafter(mids[k], np.float32(2))), code))
    np.testing.assert_array_equal(above, k + 1)


@pytest.mark.parametrize("shape,block", [((1000,), 256), ((7, 300), 64), ((5,), 256)])
def test_round_trip_error_within_half_the_local_spacing(shape, block):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * np.exp(rng.uniform(-8, 2, shape))).astype(np.float32)
    q, absmax = jop.quantize_blockwise(jnp.asarray(x), jop.dynamic_map(), block)
    assert q.dtype == jnp.uint8 and q.shape == shape
    flat = np.pad(x.reshape(-1), (0, absmax.size * block - x.size)).reshape(-1, block)
    np.testing.assert_array_equal(np.asarray(absmax), np.max(np.abs(flat), axis=1))
    y = np.asarray(jop.dequantize_blockwise(q, absmax, jop.dynamic_map(), shape, block))
    # bound: half the gap between the two code values around x/absmax, times absmax
    a = np.repeat(np.asarray(absmax), block)[: x.size].reshape(shape)
    xn = x / a
    hi = np.searchsorted(SIGNED, xn).clip(1, 255)
    gap = SIGNED[hi] - SIGNED[hi - 1]
    # -1 is not in the signed code: -absmax rounds to its smallest value, -0.99297 absmax
    bound = np.where(xn < SIGNED[0], (SIGNED[0] - xn) * a, 0.5 * gap * a)
    assert np.all(np.abs(y - x) <= bound * (1 + 1e-5) + 1e-6 * a)
    assert np.sum(xn < SIGNED[0]) <= x.size / block + 1  # only the block maxima themselves
    # the codes are the kernel's: binary search of x * (1 / absmax)
    inv = (np.float32(1) / a).astype(np.float32)
    ref = binary_search_code(SIGNED, (x * inv).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(q), ref)


def test_quantize_rejects_bad_input():
    code = jop.dynamic_map()
    with pytest.raises(ValueError, match="`block_size` must be a positive int"):
        jop.quantize_blockwise(jnp.ones(3), code, 0)
    with pytest.raises(ValueError, match=r"`code` must have shape \(256,\)"):
        jop.quantize_blockwise(jnp.ones(3), code[:10])
    with pytest.raises(TypeError, match="`x` must be a floating-point array"):
        jop.quantize_blockwise(jnp.ones(3, jnp.int32), code)
    with pytest.raises(TypeError, match="`codes` must be a uint8 array"):
        jop.dequantize_blockwise(jnp.ones(3, jnp.int32), jnp.ones(1), code)
    with pytest.raises(ValueError, match=r"`absmax` must have shape \(1,\)"):
        jop.dequantize_blockwise(jnp.ones(3, jnp.uint8), jnp.ones(2), code)
    with pytest.raises(ValueError, match="max_exponent_bits"):
        jop.dynamic_map(True, 9, 8)


# ----------------------------------------------------------------- state layout and bytes


def _bytes(tree):
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def test_state_bytes_quarter_of_adam_for_10m_params():
    params = {
        "embed": jax.ShapeDtypeStruct((8192, 512), jnp.float32),
        "dense": jax.ShapeDtypeStruct((512, 2048), jnp.float32),
        "out": jax.ShapeDtypeStruct((2048, 2560), jnp.float32),
        "bias": jax.ShapeDtypeStruct((2048,), jnp.float32),
    }
    n = sum(math.prod(p.shape) for p in params.values())
    assert n >= 10_000_000
    ours = _bytes(jax.eval_shape(jop.adam8bit().init, params))
    adam = _bytes(jax.eval_shape(optax.adam(1e-3).init, params))
    big = n - 2048
    # 2 codes + 2 absmax per 256 for the big tensors, two float32 moments for the bias, a count
    assert ours == 2 * big + 2 * 4 * big // 256 + 2 * 4 * 2048 + 4
    assert ours / adam <= 0.27
    lion = _bytes(jax.eval_shape(jop.lion8bit().init, params))
    assert lion / _bytes(jax.eval_shape(optax.lion(1e-4).init, params)) <= 0.27


def test_small_tensors_masks_and_stable_embedding_keep_32bit():
    params = {
        "small": jnp.zeros((4095,), jnp.float32),
        "big": jnp.zeros((4096,), jnp.float32),
        "embed": jnp.zeros((64, 128), jnp.float32),
        "layer": {"stable_embedding": jnp.zeros((100, 64), jnp.float32)},
    }
    state = jop.adam8bit(
        keep_32bit={"small": False, "big": False, "embed": True, "layer": False}
    ).init(params)
    kinds = {k: str(v.dtype) for k, v in state.mu.items() if k != "layer"}
    assert kinds == {"small": "float32", "big": "uint8", "embed": "float32"}
    assert state.mu["layer"]["stable_embedding"].dtype == jnp.float32
    assert state.nu_absmax["big"].shape == (16,) and state.nu_absmax["small"].shape == (0,)
    callable_mask = jop.lion8bit(keep_32bit=lambda p: jax.tree.map(lambda x: x.ndim == 2, p))
    s = callable_mask.init(params)
    assert s.mu["big"].dtype == jnp.uint8 and s.mu["embed"].dtype == jnp.float32


def test_stable_embedding_layer():
    import flax.linen as nn

    layer = jop.StableEmbedding(num_embeddings=1000, features=64)
    variables = layer.init(jax.random.key(0), jnp.arange(3))
    table = variables["params"]["stable_embedding"]
    limit = math.sqrt(6 / (1000 + 64))  # Xavier uniform bound
    assert float(jnp.max(jnp.abs(table))) <= limit and float(jnp.max(jnp.abs(table))) > 0.9 * limit
    y = layer.apply(variables, jnp.array([[5, 7]]))
    x = table[jnp.array([[5, 7]])]
    ref = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(y), np.asarray(ref), rtol=1e-4, atol=1e-5)
    assert isinstance(layer, nn.Module)
    state = jop.adamw8bit().init(variables["params"])  # 64000 entries, yet 32-bit state
    assert state.mu["stable_embedding"].dtype == jnp.float32


# ------------------------------------------------------------------ the kernels' replay


def _problem(seed, shapes):
    rng = np.random.default_rng(seed)
    return {k: (0.3 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}


CASES = {
    "adam8bit": ("adam", dict(learning_rate=1e-2), dict(lr=1e-2, b1=0.9, b2=0.999)),
    "adamw8bit": (
        "adam",
        dict(learning_rate=1e-2, weight_decay=0.1),
        dict(lr=1e-2, b1=0.9, b2=0.999, wd=0.1),
    ),
    "lion8bit": (
        "lion",
        dict(learning_rate=1e-3, weight_decay=0.1),
        dict(lr=1e-3, b1=0.9, b2=0.99, wd=0.1),
    ),
    "sgd8bit": (
        "momentum",
        dict(learning_rate=1e-2, weight_decay=0.01),
        dict(lr=1e-2, b1=0.9, wd=0.01),
    ),
}


def _assert_codes(ours, ref, x, code, what):
    """Equal codes, except one step apart where the value is within a few ulp of a midpoint
    (the two compilers fused a different multiply-add: see ``kernel_replay``)."""
    diff = ours != ref
    if diff.any():
        assert np.all(np.abs(ours[diff].astype(int) - ref[diff].astype(int)) == 1), what
        assert np.all(near_tie(code, x[diff])), what
    assert diff.sum() <= max(1, diff.size // 1000), f"{what}: {diff.sum()} codes differ"


@pytest.mark.parametrize(
    "name, chunk, path",
    [(name, None, "default") for name in CASES]
    + [(name, 4, "xla") for name in CASES]
    + [(name, None, "xla") for name in ("adam8bit", "adamw8bit")],
    ids=lambda v: {None: "one_run", 4: "runs_of_4_blocks"}.get(v, str(v)),
)
def test_trajectory_replays_the_cuda_kernel(name, chunk, path, monkeypatch):
    """12 float32 steps: each step's codes as the kernel computes them from the same state,
    block maxima to 1 ulp, the parameters of the whole trajectory to 1e-6. ``default``: the
    path a CPU user gets (the compiled kernel for the Adam family); ``xla``: the XLA path, with
    ``chunk`` requantising in runs of 4 blocks (4 full runs and a shorter last one per
    tensor), the path large tensors take."""
    from jaxopt_papers.quantized import _moments, _native

    if chunk is not None:
        monkeypatch.setattr(_moments, "CHUNK_BLOCKS", chunk)
    if path == "xla":
        monkeypatch.setattr(_native, "applies", lambda g, p: False)
    kind, ours_kw, replay_kw = CASES[name]
    shapes = {"w": (50, 90), "v": (4100,), "b": (90,)}  # 8-bit (padded last block), 32-bit
    params = _problem(0, shapes)
    tx = getattr(jop, name)(**ours_kw)
    replay = Replay(kind, params, SIGNED, UNSIGNED, **replay_kw)
    state = tx.init(jax.tree.map(jnp.asarray, params))
    update = jax.jit(tx.update)
    p_ours, p_ref = jax.tree.map(jnp.asarray, params), params
    rng = np.random.default_rng(1)
    for step in range(12):
        grads = {
            k: (rng.standard_normal(s) * 10.0 ** rng.uniform(-6, 0, s)).astype(np.float32)
            for k, s in shapes.items()
        }
        if kind == "adam" and step == 3:
            grads["w"][1, 2], grads["b"][0] = np.nan, np.inf
        u, state = update(jax.tree.map(jnp.asarray, grads), state, p_ours)
        p_ours = optax.apply_updates(p_ours, u)
        p_ref = replay.step(grads, p_ref)
        for k in ("w", "v"):
            n, st = params[k].size, replay.state[k]
            pairs = [("mu", "c1", "a1", "x1", SIGNED)]
            if kind == "adam":
                pairs.append(("nu", "c2", "a2", "x2", UNSIGNED))
            for field, c, a, x, code in pairs:
                ours_c = np.asarray(getattr(state, field)[k]).reshape(-1)
                _assert_codes(ours_c, st[c][:n], st[x].reshape(-1)[:n], code, f"{k} {field} {step}")
                ours_a = np.asarray(getattr(state, field + "_absmax")[k])
                np.testing.assert_allclose(ours_a, st[a], rtol=3e-7, atol=0)
                # the next step starts from the same state on both sides
                st[c] = np.pad(ours_c, (0, st[c].size - n)).astype(np.uint8)
                st[a] = ours_a.astype(np.float32)
        for k in shapes:
            ref = p_ref[k]
            err = np.max(np.abs(np.asarray(p_ours[k]) - ref)) / np.max(np.abs(ref))
            assert err <= 1e-6, f"{name} step {step} {k}: {err:.2e}"
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(p_ours))


# --------------------------------------------------------------- bitsandbytes' CPU backend


def _load_bnb(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    tree = {}
    for key, value in arrays.items():
        group, leaf = key.split("/")
        tree.setdefault(group, {})[leaf] = value
    return meta, tree["p0"], tree["grads"], tree["params"]


BNB_FILES = sorted(DATA.glob("q8_bnb_cpu_*.npz"))


@pytest.mark.parametrize("path", BNB_FILES, ids=[p.stem for p in BNB_FILES])
def test_close_to_bitsandbytes_cpu_trajectory(path):
    """bitsandbytes' CPU backend rounds through a 65,536-bin table (a small second moment can
    get a code far from the nearest: its element then moves by up to ``lr`` differently) and
    decays before the step. The first step (nothing quantised yet) agrees to 0.2% of the
    distance travelled (the decay order), later steps on average to 0.5%, and the 32-bit
    tensor to 0.2% throughout."""
    meta, p0, grads, ref = _load_bnb(path)
    tx = getattr(jop, meta["optimizer"])(**meta["kwargs"])
    params = jax.tree.map(jnp.asarray, p0)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for t in range(len(ref["w"])):
        u, state = update({k: jnp.asarray(v[t]) for k, v in grads.items()}, state, params)
        params = optax.apply_updates(params, u)
        err = {k: np.abs(np.asarray(params[k]) - ref[k][t]) for k in ref}
        moved = {k: np.max(np.abs(ref[k][t] - p0[k])) for k in ref}
        if t == 0:
            assert err["w"].max() <= 2e-3 * moved["w"], f"first step: {err['w'].max():.3g}"
        assert err["w"].mean() <= 5e-3 * moved["w"], f"step {t}: mean {err['w'].mean():.3g}"
        assert err["b"].max() <= 2e-3 * moved["b"], f"step {t}: 32-bit {err['b'].max():.3g}"
    assert state.mu["w"].dtype == jnp.uint8 and state.mu["b"].dtype == jnp.float32
