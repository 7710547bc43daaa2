"""The compiled XLA:CPU kernel that requantises the 8-bit Adam state, built on first use.

XLA:CPU cannot fuse the requantisation of a moment (a block maximum, then a table lookup per
entry) into one pass, and turns the 256-entry table lookups into scalar gathers. The C++ kernel
next to this module (``_cpu_adam8bit.cc``, an XLA FFI custom call) dequantises the two moments,
updates them and requantises them with the XLA path's float32 operations in the same order, each
correctly rounded, in one pass per block of the tensor over XLA's intra-op thread pool (with
AVX-512, the code tables are read by byte permutes in registers). The step itself stays in XLA,
which fuses it with the caller's parameter update.

It is compiled once per source, jaxlib version, compiler, flags and CPU with the system C++
compiler (``$CXX``, else ``c++``) into ``$JAXOPT_PAPERS_CACHE`` (default
``~/.cache/jaxopt_papers``), for the host CPU (``-march=native``, plus
``$JAXOPT_PAPERS_NATIVE_CXXFLAGS``), and registered as the FFI target
``jaxopt_papers_adam8bit_cpu``. Where no compiler is found, the build fails or
``JAXOPT_PAPERS_NATIVE=0`` is set, the optimizers take the XLA path (the same operations).
:func:`native_status` says which one runs and why.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import pathlib
import platform
import shlex
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from jaxopt_papers.quantized import blockwise as B

TARGET = "jaxopt_papers_adam8bit_cpu"
CHUNK_BLOCKS = 256
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


def _flags() -> tuple[str, ...]:
    return (*_FLAGS, *shlex.split(os.environ.get("JAXOPT_PAPERS_NATIVE_CXXFLAGS", "")))


def _build(cxx: str) -> pathlib.Path:
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, jaxlib.__version__.encode(), cxx.encode(),
                                      " ".join(_flags()).encode(), _machine()]))  # fmt: skip
    out = _cache_dir() / f"adam8bit_{key.hexdigest()[:16]}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target and rename: concurrent processes never load a half-written file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, *_flags(), f"-I{jax.ffi.include_dir()}", "-o", tmp, str(_SOURCE)]
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
    """Whether the 8-bit Adam family's CPU state update runs through the compiled kernel, and why.

    The first call builds the kernel if it is not cached yet (a few seconds) and registers it
    with XLA. ``adam8bit``, ``adamw8bit`` and ``scale_by_adam8bit`` use it to requantise the
    moments of float32 leaves with 8-bit state when JAX's default backend is the CPU with a
    single device; otherwise (GPU, TPU, several devices to shard over) and where it is not
    available, they take the XLA path. The step itself is computed by XLA either way.

    Set ``JAXOPT_PAPERS_NATIVE=0`` before the first 8-bit update to use the XLA path, ``$CXX``
    to choose the compiler, ``$JAXOPT_PAPERS_NATIVE_CXXFLAGS`` to add compiler flags (for
    example ``-mno-avx512f`` for a library shared with older CPUs) and ``$JAXOPT_PAPERS_CACHE``
    for where the built library is kept.

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
    """Whether a float32 leaf's state is requantised by the compiled kernel.

    Only when the default backend is the CPU and it has a single device: with several, the XLA
    path shards with its operands (a custom call would gather them).
    """
    f32 = jnp.float32
    if g.dtype != f32 or p.dtype != f32 or jax.default_backend() != "cpu":
        return False
    if jax.device_count() != 1:
        return False
    return _load()[0]


def _carry_table(table: np.ndarray, shift: int) -> np.ndarray:
    """A Codebook table ``k0 << (shift + 1) | t`` as ``(k0 << (shift + 1)) + 2^(shift + 1) - t``.

    Adding the low bits ``l < 2^shift`` of a value in the bin carries into ``k0 + 1`` exactly
    when ``l >= t`` (``t <= 2^shift``): the kernel's rounding is one add and one shift.
    """
    e = table.astype(np.int64)
    k0, t = e >> (shift + 1), e & ((1 << (shift + 1)) - 1)
    return ((k0 << (shift + 1)) + (1 << (shift + 1)) - t).astype(np.uint32)


def adam8bit_state(g, mq, ma, nq, na, code1, code2, scalars, block_size: int):
    """``(mq, ma, nq, na, mq_old, nq_old)`` of one 8-bit Adam step of a leaf.

    The requantised moments (updated in place: each aliases its input) and copies of the codes
    before the step, which the step's elementwise pass reads after the kernel (XLA would
    otherwise copy the state before the in-place update). ``scalars`` holds
    ``[b1, b2, 1 - b1, 1 - b2]`` in float32.
    """
    available, reason = _load()  # registers the target with XLA
    if not available:
        raise RuntimeError(f"the compiled 8-bit Adam kernel is not available: {reason}.")
    book1, book2 = B.codebook(code1), B.codebook(code2)
    if book1 is None or book1.guarded is None or book2 is None or book2.table is None:
        raise ValueError("the compiled 8-bit Adam kernel needs concrete codes with lookup tables.")
    out = (
        jax.ShapeDtypeStruct(mq.shape, jnp.uint8),
        jax.ShapeDtypeStruct(ma.shape, jnp.float32),
        jax.ShapeDtypeStruct(nq.shape, jnp.uint8),
        jax.ShapeDtypeStruct(na.shape, jnp.float32),
        jax.ShapeDtypeStruct(mq.shape, jnp.uint8),
        jax.ShapeDtypeStruct(nq.shape, jnp.uint8),
    )
    call = jax.ffi.ffi_call(
        TARGET, out, input_output_aliases={1: 0, 2: 1, 3: 2, 4: 3}, vmap_method="sequential"
    )
    return call(
        g, mq, ma, nq, na,
        jnp.asarray(code1, jnp.float32), jnp.asarray(code2, jnp.float32),
        jnp.asarray(_carry_table(book1.guarded, book1.shift)),
        jnp.asarray(_carry_table(book2.table, book2.shift)), scalars,
        block_size=int(block_size), shift1=int(book1.shift), shift2=int(book2.shift),
        chunk_blocks=int(CHUNK_BLOCKS),
    )  # fmt: skip
