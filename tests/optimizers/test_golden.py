"""Golden trajectories: our optimizers replay the reference implementations' runs.

``tests/golden/make_golden.py`` ran each reference implementation (torch, float64) and stored the
gradient it saw and the parameters after every step. Here we feed the same gradients to our
optimizer and require, at every step and for every leaf, a relative error of at most 1e-10
(max-abs difference over max-abs reference value). Torch is not needed.
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_papers as jop

DATA = pathlib.Path(__file__).resolve().parents[1] / "golden" / "data"
FILES = sorted(DATA.glob("*.npz"))
RTOL = 1e-10


def load(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    tree = {}
    for key, value in arrays.items():
        group, leaf = key.split("/")
        tree.setdefault(group, {})[leaf] = value
    return meta, tree["p0"], tree["grads"], tree["params"]


def replay(tx: optax.GradientTransformation, p0, grads):
    """Run ``tx`` on the recorded gradients; return the parameters after every step."""

    def step(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    p0 = jax.tree.map(jnp.asarray, p0)
    _, traj = jax.jit(lambda p, gs: jax.lax.scan(step, (p, tx.init(p)), gs))(p0, grads)
    return jax.tree.map(np.asarray, traj)


def relative_errors(ours, ref):
    """Per-step max over leaves of max|ours - ref| / max|ref|."""
    errs = []
    for k in ref:
        diff = np.abs(ours[k] - ref[k]).reshape(len(ref[k]), -1).max(axis=1)
        scale = np.abs(ref[k]).reshape(len(ref[k]), -1).max(axis=1)
        errs.append(diff / np.maximum(scale, 1e-300))
    return np.max(errs, axis=0)


def to_channels_last(tree):
    """Torch layout (out, ...) -> JAX layout (..., out) for leaves with ndim > 1."""
    return {k: np.moveaxis(v, 0, -1) if v.ndim > 1 else v for k, v in tree.items()}


def test_golden_files_exist():
    assert len(FILES) >= 20, f"expected the golden data in {DATA}, found {len(FILES)} files"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_trajectory(path):
    meta, p0, grads, ref = load(path)
    tx = getattr(jop, meta["optimizer"])(**meta["kwargs"])
    ours = replay(tx, p0, grads)
    errs = relative_errors(ours, ref)
    worst = int(np.argmax(errs))
    assert errs.max() <= RTOL, (
        f"{path.stem} vs {meta['oracle']}: step {worst + 1} has relative error {errs[worst]:.3e}"
    )


CHANNEL_FILES = [p for p in FILES if "channel_axis" in load(p)[0]["kwargs"]]


@pytest.mark.parametrize("path", CHANNEL_FILES, ids=[p.stem for p in CHANNEL_FILES])
def test_golden_trajectory_flax_layout(path):
    """The same run with flax-layout kernels (output channels last) and ``channel_axis=-1``."""
    meta, p0, grads, ref = load(path)
    kwargs = dict(meta["kwargs"], channel_axis=-1)
    tx = getattr(jop, meta["optimizer"])(**kwargs)
    # per-step leaves carry a leading time axis: move axis 1 (out) to the end
    grads_t = {k: np.moveaxis(v, 1, -1) if v.ndim > 2 else v for k, v in grads.items()}
    ref_t = {k: np.moveaxis(v, 1, -1) if v.ndim > 2 else v for k, v in ref.items()}
    ours = replay(tx, to_channels_last(p0), grads_t)
    assert relative_errors(ours, ref_t).max() <= RTOL
