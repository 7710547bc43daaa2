"""The compiled XLA:CPU kernel of the 8-bit Adam step, built on first use.

XLA:CPU turns the four 256-entry table lookups of an 8-bit Adam step (decode and encode of two
moments) into scalar gathers, which keep the fused loop from vectorising. The C++ kernel next
to this module (``_cpu_adam8bit.cc``, an XLA FFI custom call) does the XLA path's float32
operations in the same order, each correctly rounded, in one pass per block of the tensor,
vectorised with the lookups in cache, over XLA's intra-op thread pool.

It is compiled once per source, jaxlib version, compiler and CPU with the system C++ compiler
(``$CXX``, else ``c++``) into ``$JAXOPT_PAPERS_CACHE`` (default ``~/.cache/jaxopt_papers``),
for the host CPU (``-march=native``), and registered as the FFI target
``jaxopt_papers_adam8bit_cpu``. Where no compiler is found, the build fails or
``JAXOPT_PAPERS_NATIVE=0`` is set, the optimizers take the XLA path (the same operations; XLA's
vectorised division and square root may differ in the last bit). :func:`native_status` says
which one runs and why.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import jaxlib

from jaxopt_papers.quantized import blockwise as B

TARGET = "jaxopt_papers_adam8bit_cpu"
CHUNK_BLOCKS = 64
"""Blocks per task of the kernel's work split over the thread pool."""
_SOURCE = pathlib.Path(__file__).with_name("_cpu_adam8bit.cc")
_FLAGS = (
    "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno",
    "-ffp-contract=off", "-w",
)  # fmt: skip


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("JAXOPT_PAPERS_CACHE")
    if root:
        return pathlib.Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "jaxopt_papers"


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _machine() -> bytes:
    """What ``-march=native`` compiles for: the architecture and the CPU's feature flags."""
    flags = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), flags)
    return f"{platform.machine()} {flags}".encode()


def _build(cxx: str) -> pathlib.Path:
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, jaxlib.__version__.encode(), cxx.encode(),
                                      " ".join(_FLAGS).encode(), _machine()]))  # fmt: skip
    out = _cache_dir() / f"adam8bit_{key.hexdigest()[:16]}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target and rename: concurrent processes never load a half-written file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, *_FLAGS, f"-I{jax.ffi.include_dir()}", "-o", tmp, str(_SOURCE)]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


@functools.lru_cache(maxsize=1)
def _load() -> tuple[bool, str]:
    if os.environ.get("JAXOPT_PAPERS_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False, "disabled by JAXOPT_PAPERS_NATIVE"
    cxx = _compiler()
    if cxx is None:
        return False, "no C++ compiler found (set $CXX)"
    try:
        lib = ctypes.CDLL(str(_build(cxx)))
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.JopAdam8bitCpu), platform="cpu")
    except Exception as err:  # any failure leaves the XLA path, which gives the same results
        return False, f"build or load failed: {err}"
    return True, f"compiled kernel {TARGET}"


def native_status() -> tuple[bool, str]:
    """Whether the 8-bit Adam family's CPU step runs through the compiled kernel, and why.

    The first call builds the kernel if it is not cached yet (a few seconds) and registers it
    with XLA. ``adam8bit``, ``adamw8bit`` and ``scale_by_adam8bit`` use it for float32 leaves
    with 8-bit moments when JAX's default backend is the CPU with a single device; otherwise
    (GPU, TPU, several devices to shard over) and where it is not available, they take the XLA
    path.

    Set ``JAXOPT_PAPERS_NATIVE=0`` before the first 8-bit update to use the XLA path, ``$CXX``
    to choose the compiler and ``$JAXOPT_PAPERS_CACHE`` for where the built library is kept.

    Returns:
      ``(available, reason)``: whether the kernel is built and registered, and a sentence
      saying which kernel or why not (no compiler, the build's error, the environment switch).

    Example:
      >>> from jaxopt_papers.quantized import native_status
      >>> available, reason = native_status()
      >>> available == reason.startswith("compiled kernel")
      True
    """
    return _load()


def applies(g: jax.Array, p: jax.Array) -> bool:
    """Whether a float32 leaf's step runs through the compiled kernel.

    Only when the default backend is the CPU and it has a single device: with several, the XLA
    path shards with its operands (a custom call would gather them).
    """
    f32 = jnp.float32
    if g.dtype != f32 or p.dtype != f32 or jax.default_backend() != "cpu":
        return False
    if jax.device_count() != 1:
        return False
    return _load()[0]


def adam8bit(g, p, mq, ma, nq, na, code1, code2, scalars, *, block_size: int, decay: bool):
    """``(u, mq, ma, nq, na)`` of one 8-bit Adam step of a leaf through the compiled kernel.

    ``scalars`` holds ``[b1, b2, 1 - b1, 1 - b2, sqrt(1 - b2^t) eps, coef, lr wd]`` in float32,
    where ``u = coef m / (sqrt(v) + sqrt(1 - b2^t) eps)``, then ``u -= lr wd (p + u)`` with
    ``decay``.
    """
    available, reason = _load()  # registers the target with XLA
    if not available:
        raise RuntimeError(f"the compiled 8-bit Adam kernel is not available: {reason}.")
    book1, book2 = B.codebook(code1), B.codebook(code2)
    if book1 is None or book1.guarded is None or book2 is None or book2.table is None:
        raise ValueError("the compiled 8-bit Adam kernel needs concrete codes with lookup tables.")
    out = (
        jax.ShapeDtypeStruct(g.shape, jnp.float32),
        jax.ShapeDtypeStruct(mq.shape, jnp.uint8),
        jax.ShapeDtypeStruct(ma.shape, jnp.float32),
        jax.ShapeDtypeStruct(nq.shape, jnp.uint8),
        jax.ShapeDtypeStruct(na.shape, jnp.float32),
    )
    call = jax.ffi.ffi_call(
        TARGET, out, input_output_aliases={2: 1, 3: 2, 4: 3, 5: 4}, vmap_method="sequential"
    )
    return call(
        g, p, mq, ma, nq, na,
        jnp.asarray(code1, jnp.float32), jnp.asarray(code2, jnp.float32),
        jnp.asarray(book1.guarded), jnp.asarray(book2.table), scalars,
        block_size=int(block_size), shift1=int(book1.shift), shift2=int(book2.shift),
        decay=bool(decay), chunk_blocks=int(CHUNK_BLOCKS),
    )  # fmt: skip
