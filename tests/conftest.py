"""Test-suite configuration: float64 for oracle comparisons, shared paths."""

import pathlib

import jax

jax.config.update("jax_enable_x64", True)

ROOT = pathlib.Path(__file__).resolve().parents[1]
