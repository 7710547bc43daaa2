"""Regenerate the 8-bit optimizer golden data ``tests/golden/data/q8/q8_*.npz`` from bitsandbytes.

Needs the ``oracle`` extra plus ``bitsandbytes==0.50.2`` (its CPU backend); the tests never
import torch or bitsandbytes::

    python tests/golden/make_golden_quantized.py

Files (in a folder of their own: ``tests/optimizers/test_golden.py`` replays every file of
``data/`` at 1e-10, which an oracle with a different rounding cannot meet):

* ``q8_dynamic_map.npz``: ``bitsandbytes.functional.create_dynamic_map(signed, e, bits)`` for
  several settings (key ``"<signed>_<e>_<bits>"``).
* ``q8_bnb_cpu_<name>.npz``: a float32 trajectory of ``bitsandbytes.optim.<Optimizer>`` on the
  CPU backend: the gradient it received and the parameters after each step (``grads/<leaf>``,
  ``params/<leaf>``, ``p0/<leaf>``) and ``meta`` (JSON: our optimizer and keyword arguments).
  The problem has one tensor above ``min_8bit_size`` (8-bit state) and one below (32-bit).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

DATA = pathlib.Path(__file__).resolve().parent / "data" / "q8"

MAP_SETTINGS = [(True, 7, 8), (False, 7, 8), (True, 5, 8), (True, 3, 4), (True, 6, 7)]

CASES = [
    # name, bitsandbytes class, its kwargs, our alias, our kwargs
    ("adam8bit", "Adam8bit", {"lr": 1e-2}, "adam8bit", {"learning_rate": 1e-2}),
    (
        "adamw8bit",
        "AdamW8bit",
        {"lr": 1e-2, "weight_decay": 0.1},
        "adamw8bit",
        {"learning_rate": 1e-2, "weight_decay": 0.1},
    ),
    (
        "lion8bit",
        "Lion8bit",
        {"lr": 1e-3, "weight_decay": 0.1},
        "lion8bit",
        {"learning_rate": 1e-3, "weight_decay": 0.1},
    ),
]


def problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 72)).astype(np.float32)
    y = rng.normal(size=(64, 64)).astype(np.float32)
    p0 = {
        "w": (0.1 * rng.normal(size=(72, 64))).astype(np.float32),  # 4608 entries: 8-bit
        "b": (0.1 * rng.normal(size=(64,))).astype(np.float32),  # 64 entries: 32-bit
    }
    return x, y, p0


def trajectory(cls_name: str, kwargs: dict, steps: int = 12, seed: int = 0):
    import bitsandbytes as bnb
    import torch

    x, y, p0 = problem(seed)
    tx, ty = torch.tensor(x), torch.tensor(y)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
    opt = getattr(bnb.optim, cls_name)(list(params.values()), **kwargs)
    grads = {k: [] for k in params}
    traj = {k: [] for k in params}
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        r = tx @ params["w"] + params["b"] - ty
        loss = 0.5 * (r**2).mean() + 0.01 * (params["w"] ** 4).sum()
        loss.backward()
        for k, p in params.items():
            grads[k].append(p.grad.detach().clone().numpy())
        opt.step()
        for k, p in params.items():
            traj[k].append(p.detach().clone().numpy())
    return p0, grads, traj


def main() -> None:
    import bitsandbytes
    import bitsandbytes.functional as F

    DATA.mkdir(parents=True, exist_ok=True)
    maps = {f"{int(s)}_{e}_{b}": F.create_dynamic_map(s, e, b).numpy() for s, e, b in MAP_SETTINGS}
    np.savez_compressed(DATA / "q8_dynamic_map.npz", **maps)
    for name, cls_name, bnb_kwargs, ours, our_kwargs in CASES:
        p0, grads, traj = trajectory(cls_name, bnb_kwargs)
        meta = {
            "optimizer": ours,
            "kwargs": our_kwargs,
            "oracle": f"bitsandbytes {bitsandbytes.__version__} optim.{cls_name} (CPU backend)",
            "oracle_kwargs": bnb_kwargs,
        }
        arrays = {f"p0/{k}": v for k, v in p0.items()}
        arrays.update({f"grads/{k}": np.stack(v) for k, v in grads.items()})
        arrays.update({f"params/{k}": np.stack(v) for k, v in traj.items()})
        np.savez_compressed(DATA / f"q8_bnb_cpu_{name}.npz", meta=json.dumps(meta), **arrays)
        print("wrote", name)


if __name__ == "__main__":
    main()
