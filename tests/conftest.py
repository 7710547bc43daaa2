"""Test-suite configuration: float64 for oracle comparisons, shared paths."""

import pathlib

import jax

jax.config.update("jax_enable_x64", True)

ROOT = pathlib.Path(__file__).resolve().parents[1]

# tests/multidevice needs 8 simulated CPU devices, which must be configured before jax starts:
# tests/test_multidevice.py runs it in its own process.
collect_ignore = ["multidevice"]
