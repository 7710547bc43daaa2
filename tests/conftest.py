"""Test-suite configuration: float64 for oracle comparisons, shared paths."""

import gc
import os
import pathlib
import shutil
import tempfile

# The suite is dominated by XLA compilation: LLVM's optimisation level 0 compiles about a quarter
# faster on CPU and changes no result the tests check (the benchmarks, which measure speed, keep
# the default). Set before jax starts its backend; inherited by the subprocesses the tests start
# (notebooks, README and guide examples, the tour). An XLA_FLAGS that already sets the level wins.
_FLAGS = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _FLAGS:
    os.environ["XLA_FLAGS"] = f"{_FLAGS} --xla_backend_optimization_level=0".strip()

# The tests compile many of the same programs again after each module drops its compiled ones
# (see _release_compiled_programs), in both pytest-xdist workers and in the subprocesses they
# start: JAX's persistent compilation cache, in a directory that lives as long as this test run,
# serves those from disk. The process that creates the directory removes it at the end.
_CACHE_ENV = "JAXOPT_PAPERS_TEST_XLA_CACHE"
_CREATED_CACHE = None
if _CACHE_ENV not in os.environ and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CREATED_CACHE = tempfile.mkdtemp(prefix="jaxopt_papers_xla_cache_")
    os.environ[_CACHE_ENV] = _CREATED_CACHE
if _CACHE_ENV in os.environ:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ[_CACHE_ENV])
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

ROOT = pathlib.Path(__file__).resolve().parents[1]

# tests/multidevice needs 8 simulated CPU devices, which must be configured before jax starts:
# tests/test_multidevice.py runs it in its own process.
collect_ignore = ["multidevice"]


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Each compiled XLA:CPU program holds memory mappings of its own; a pytest-xdist worker that
    runs half of this suite would otherwise pass the kernel's limit of 65,530 mappings per
    process (`vm.max_map_count`) and abort inside a later compilation.
    """
    yield
    jax.clear_caches()
    gc.collect()


# Modules with the longest single tests run first, so that under pytest-xdist no worker is left
# running one of them alone at the end (the suite's wall time is bounded below by its longest
# test plus whatever was scheduled after it).
_LONG_FIRST = (
    "tests/test_notebooks.py",
    "tests/test_benchmarks_and_tour.py",
    "tests/test_multidevice.py",
    "tests/test_accelerator.py",
    "tests/schedules/test_benchmark_quick.py",
    "tests/zeroth_order/test_benchmark_quick.py",
    "tests/curvature/test_benchmark_quick.py",
    "tests/linear/test_relax.py",
    "tests/linear/test_sequence.py",
    "tests/linear/test_krylov.py",
    "tests/test_guides.py",
    "tests/test_readme.py",
)


def pytest_collection_modifyitems(config, items):
    """Reorder whole modules (module-scoped fixtures stay set up once) so that the long ones
    come first, in the order of ``_LONG_FIRST``; the rest keep their order."""

    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        return _LONG_FIRST.index(path) if path in _LONG_FIRST else len(_LONG_FIRST)

    items[:] = sorted(items, key=rank)


def pytest_unconfigure(config):
    if _CREATED_CACHE is not None:
        shutil.rmtree(_CREATED_CACHE, ignore_errors=True)
