"""The compiled XLA:CPU kernel of the 8-bit Adam step against the XLA path and NumPy.

The kernel (``jaxopt_papers/quantized/_cpu_adam8bit.cc``) requantises the moments with the XLA
path's float32 operations in the same order, each correctly rounded: NumPy's float32 arithmetic
is the oracle for the block maxima (equal bit for bit), the exact nearest-code search for the
codes. The step itself is computed by XLA on both paths (XLA:CPU's vectorised division and
square root can differ from the correctly rounded result in the last bit, so NumPy agrees to a
few ulp). The kernel's place in whole trajectories is checked against the CUDA-kernel replay in
``test_quantized.py``.
"""

from __future__ import annotations

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.quantized import _moments as Q
from jaxopt_papers.quantized import _native, native_status
from jaxopt_papers.quantized import optimizers as O
from tests.conftest import ROOT
from tests.quantized._ns import jop
from tests.quantized.kernel_replay import near_tie

F32 = np.float32
SIGNED, UNSIGNED = Q.signed_code(), Q.unsigned_code()


def _case(seed: int, n: int, block: int):
    """A leaf with hard entries: NaN/inf gradients, an all-zero block, a zero-gradient block,
    tiny and large gradients, a short last block."""
    rng = np.random.default_rng(seed)
    nb = math.ceil(n / block)
    mq = rng.integers(0, 256, n).astype(np.uint8)
    nq = rng.integers(0, 256, n).astype(np.uint8)
    ma = (10.0 ** rng.uniform(-6, 0, nb)).astype(F32)
    na = (10.0 ** rng.uniform(-10, -2, nb)).astype(F32)
    ma[1], na[1] = 0, 0
    mq[block : 2 * block], nq[block : 2 * block] = 127, 0  # the codes of 0
    g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 1, n)).astype(F32)
    g[[3, 4, 5]] = [np.nan, np.inf, -np.inf]
    g[2 * block : 3 * block] = 0
    p = rng.standard_normal(n).astype(F32)
    return g, p, mq, ma, nq, na


HP = (0.9, 0.999, 1e-8, 1e-2, 0.1)  # b1, b2, eps, lr, wd


def _leaf(native: bool, case, count: int, has_lr: bool, use_decay: bool, block: int):
    g, p, mq, ma, nq, na = map(jnp.asarray, case)
    kw = dict(has_lr=has_lr, use_decay=use_decay, block_size=block, chunk=Q.CHUNK_BLOCKS)
    fn = jax.jit(lambda *a: O._adam_leaf(*a, jnp.int32(count), HP, native=native, **kw))
    text = fn.lower(g, p, mq, ma, nq, na).as_text()
    assert (_native.TARGET in text) == native
    return [np.asarray(x) for x in fn(g, p, mq, ma, nq, na)]


def _numpy_step(case, count: int, has_lr: bool, use_decay: bool, block: int):
    """The step's operations in NumPy float32 (each correctly rounded)."""
    g, p, mq, ma, nq, na = case
    n = g.size
    b = np.arange(n) // block
    b1, b2, eps, lr, wd = (F32(x) for x in HP)
    one = F32(1)
    m = (SIGNED[mq] * ma[b]).astype(F32)
    v = (UNSIGNED[nq] * na[b]).astype(F32)
    finite = np.isfinite(g)
    g0 = np.where(finite, g, F32(0))
    with np.errstate(invalid="ignore", over="ignore"):
        v = np.where(finite, v * b2 + ((one - b2) * g0) * g0, F32(0)).astype(F32)
        m = np.where(finite, m * b1 + (one - b1) * g0, F32(0)).astype(F32)
        t = F32(count)
        c1 = one - b1**t
        c2 = np.sqrt(one - b2**t)
        coef = c2 / c1 if not has_lr else (-lr * c2) / c1
        u = (coef * (m / (np.sqrt(v) + c2 * eps))).astype(F32)
        if has_lr and use_decay:
            u = (u - (lr * wd) * (p + u)).astype(F32)
    u = np.where(finite, u, F32(0))
    pad = (-n) % block
    mb = np.pad(np.abs(m), (0, pad)).reshape(-1, block).max(1).astype(F32)
    vb = np.pad(np.abs(v), (0, pad)).reshape(-1, block).max(1).astype(F32)
    xm = (m * (one / np.where(mb > 0, mb, one))[b]).astype(F32)
    xv = (v * (one / np.where(vb > 0, vb, one))[b]).astype(F32)
    return u, mb, vb, xm, xv


def test_the_kernel_is_built_and_used_on_cpu():
    ok, why = native_status()
    assert ok, why
    assert _native.TARGET in why


@pytest.mark.parametrize("count", [1, 7])
@pytest.mark.parametrize(
    "has_lr, use_decay",
    [(True, True), (True, False), (False, False)],
    ids=["decay", "adam", "scale_by"],
)
@pytest.mark.parametrize("n, block", [(5000, 256), (700, 64), (999, 100), (40, 3)])
def test_kernel_equals_numpy_and_the_xla_path(count, has_lr, use_decay, n, block):
    case = _case(count + n, n, block)
    u, mq, ma, nq, na = _leaf(True, case, count, has_lr, use_decay, block)
    u_ref, ma_ref, na_ref, xm, xv = _numpy_step(case, count, has_lr, use_decay, block)
    # NumPy: the block maxima bit for bit, the codes those of the exact search
    np.testing.assert_array_equal(ma, ma_ref)
    np.testing.assert_array_equal(na, na_ref)
    np.testing.assert_array_equal(mq, _guarded(Q.signed_code(), xm))
    np.testing.assert_array_equal(nq, _nearest(Q.unsigned_code(), xv))
    np.testing.assert_array_max_ulp(u, u_ref, maxulp=4)
    # the XLA path: the same step, the block maxima to a few ulp, one code step where a value
    # sits on a midpoint
    u_x, mq_x, ma_x, nq_x, na_x = _leaf(False, case, count, has_lr, use_decay, block)
    np.testing.assert_array_equal(u, u_x)
    np.testing.assert_array_max_ulp(ma, ma_x, maxulp=2)
    np.testing.assert_array_max_ulp(na, na_x, maxulp=2)
    for ours, xla, code, x in ((mq, mq_x, SIGNED, xm), (nq, nq_x, UNSIGNED, xv)):
        diff = ours != xla
        assert np.all(np.abs(ours[diff].astype(int) - xla[diff].astype(int)) == 1)
        assert np.all(near_tie(code, x[diff], ulps=16))


def _nearest(code, x):
    from jaxopt_papers.quantized.blockwise import nearest_code_np

    return nearest_code_np(code, x).astype(np.uint8)


def _guarded(code, x):
    k = _nearest(code, x).astype(int)
    book_negative = int(np.sum(np.signbit(code)))
    wrong = (k < book_negative) != np.signbit(x)
    return np.where(wrong, (k + np.where(x > 0, 1, -1)) % 256, k).astype(np.uint8)


def test_vmap_over_the_kernel_equals_a_loop():
    tx = jop.adamw8bit(1e-2, weight_decay=0.1, min_8bit_size=0)
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.standard_normal((3, 1000)), jnp.float32)
    grads = jnp.asarray(rng.standard_normal((3, 1000)), jnp.float32)
    states = jax.vmap(tx.init)(params)
    u, s = jax.jit(jax.vmap(tx.update))(grads, states, params)
    for i in range(3):
        ui, si = tx.update(grads[i], jax.tree.map(lambda x: x[i], states), params[i])
        np.testing.assert_array_equal(u[i], ui)
        for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(si), strict=True):
            np.testing.assert_array_equal(a[i], b)


def test_environment_switch_and_fallback_reason():
    code = (
        "import jax.numpy as jnp, jaxopt_papers as jop;"
        "from jaxopt_papers.quantized import native_status;"
        "import jax;"
        "tx = jop.adam8bit(min_8bit_size=0); p = jnp.ones(300);"
        "t = jax.jit(tx.update).lower(p, tx.init(p), p).as_text();"
        "print(native_status(), 'jaxopt_papers_adam8bit_cpu' in t)"
    )
    env = {"JAXOPT_PAPERS_NATIVE": "0", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "(False, 'disabled by JAXOPT_PAPERS_NATIVE') False"


def test_the_portable_build_gives_the_same_state(tmp_path):
    """Built without AVX-512, the kernel takes its portable loops: the same checks pass (with
    weight decay, at every block size)."""
    env = {
        "JAXOPT_PAPERS_NATIVE_CXXFLAGS": "-mno-avx512f",
        "JAXOPT_PAPERS_CACHE": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
    }
    test = f"{ROOT / 'tests/quantized/test_native.py'}::test_kernel_equals_numpy_and_the_xla_path"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-k", "decay-7", test],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "4 passed" in run.stdout
    assert [p.suffix for p in tmp_path.glob("adam8bit_*")] == [".so"]
