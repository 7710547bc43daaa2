"""Loading the golden trajectories of ``tests/golden/make_golden_curvature.py``."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

DATA = pathlib.Path(__file__).resolve().parents[1] / "golden" / "data" / "curvature"


def load(name: str) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """``(meta, groups)``: the case's metadata and its arrays grouped by prefix (``p0``, ...)."""
    with np.load(DATA / f"{name}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        group, leaf = key.split("/")
        groups.setdefault(group, {})[leaf] = value
    return meta, groups


def relative_errors(ours, ref) -> np.ndarray:
    """Per step, the max over leaves of ``max|ours - ref| / max|ref|`` (trees of (T, ...))."""
    errs = []
    for o, r in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        o, r = np.asarray(o), np.asarray(r)
        diff = np.abs(o - r).reshape(len(r), -1).max(axis=1)
        scale = np.abs(r).reshape(len(r), -1).max(axis=1)
        errs.append(diff / np.maximum(scale, 1e-300))
    return np.max(errs, axis=0)
