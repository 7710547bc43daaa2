"""Regenerate the golden trajectories of ``jaxopt_papers.curvature`` from the official code.

Needs torch (the ``oracle`` extra) and the two official repositories checked out at the commits
the library follows; the test suite itself never imports torch::

    git clone https://github.com/IST-DASLab/M-FAC /tmp/refs/mfac          # commit 8116367
    git clone https://github.com/Mohammad-Mozaffari/mkor /tmp/refs/mkor   # commit 3a0e3bb
    python tests/golden/make_golden_curvature.py [--mfac-repo DIR] [--mkor-repo DIR]

Output: ``data/curvature/<case>.npz`` (a subfolder: ``tests/optimizers/test_golden.py`` replays
every file directly in ``data/``).

* M-FAC (``mfac_*``): the official ``optim.MFAC`` optimizer, run in float64 on a small
  least-squares problem (the gradient window is swapped for a float64 one: the official
  constructor hard-codes float32). CPU torch has no unpivoted LU, which the official
  ``HInvFastUpMulti.setup`` calls (``torch.lu(..., pivot=False)``); this script installs a
  float64 Doolittle factorisation (no pivoting, the same maths) in its place, and runs the
  official multi-GPU ``parallel_apply`` sequentially on the CPU. Stored: ``p0/*``,
  ``grads/*`` (T, ...) the gradient the optimizer saw, ``params/*`` (T, ...) after each step.
* MKOR (``mkor_*``): the official ``mkor.MKOR`` optimizer (``half_precision=False``, float32,
  the only precision it runs in on CPU) on a two-layer MLP (torch ``Linear`` layers).
  Stored as above plus ``stats_a/<layer>``, ``stats_g/<layer>`` (T, ...): the rank-1
  statistics the official hooks recorded each step (batch means of the clamped input rows with
  the appended 1, and of ``N ·`` output gradients).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data" / "curvature"


def _save(name: str, meta: dict, groups: dict[str, dict[str, np.ndarray]]) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    arrays = {f"{g}/{k}": np.asarray(v) for g, d in groups.items() for k, v in d.items()}
    np.savez_compressed(DATA / f"{name}.npz", meta=json.dumps(meta), **arrays)
    print("wrote", DATA / f"{name}.npz")


# ----------------------------------------------------------------------------------------- M-FAC


def _unpivoted_lu(a, pivot=True):
    """``torch.lu(a, pivot=False)`` for CPU tensors: Doolittle elimination without pivoting."""
    import torch

    assert not pivot
    lu = a.clone()
    n = lu.shape[0]
    for k in range(n - 1):
        lu[k + 1 :, k] /= lu[k, k]
        lu[k + 1 :, k + 1 :] -= torch.outer(lu[k + 1 :, k], lu[k, k + 1 :])
    return lu, torch.arange(1, n + 1, dtype=torch.int32)


MFAC_CASES = {
    # name: (our mfac kwargs, steps)
    "mfac_default_damping": (dict(learning_rate=1e-2, num_grads=8, damping=1e-5), 20),
    "mfac_momentum_wd": (
        dict(learning_rate=2e-2, num_grads=6, damping=1e-2, momentum=0.9, weight_decay=0.1),
        20,
    ),
}


def make_mfac(repo: pathlib.Path) -> None:
    import torch

    sys.path.insert(0, str(repo))
    import optim  # the official M-FAC optim.py

    torch.lu = _unpivoted_lu
    # the official code spreads the window over GPUs with parallel_apply, which needs one
    optim.nn.parallel.parallel_apply = lambda fns, args: [
        f(a) for f, a in zip(fns, args, strict=True)
    ]
    torch.set_default_dtype(torch.float64)
    for name, (kw, steps) in MFAC_CASES.items():
        rng = np.random.default_rng(1)
        x = torch.tensor(rng.normal(size=(32, 5)))
        y = torch.tensor(rng.normal(size=(32, 4)))
        p0 = {"w": rng.normal(size=(4, 5)), "b": 0.1 * rng.normal(size=(4,))}
        params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in p0.items()}
        order = ["w", "b"]
        opt = optim.MFAC(
            [params[k] for k in order],
            lr=kw["learning_rate"],
            momentum=kw.get("momentum", 0.0),
            weight_decay=kw.get("weight_decay", 0.0),
            ngrads=kw["num_grads"],
            damp=kw["damping"],
        )
        d = sum(v.size for v in p0.values())
        opt.hinv = optim.HInvFastUpMulti(
            torch.zeros((kw["num_grads"], d), dtype=torch.float64),
            dev=None,
            gpus=[None],
            damp=kw["damping"],
        )
        if kw.get("momentum", 0.0) > 0:
            opt.v = torch.zeros(d, dtype=torch.float64)
        grads = {k: [] for k in order}
        traj = {k: [] for k in order}
        for _ in range(steps):
            opt.zero_grad()
            r = x @ params["w"].T + params["b"] - y
            loss = 0.5 * (r**2).sum(1).mean() + 0.1 * torch.sin(params["w"]).sum()
            loss.backward()
            for k in order:
                grads[k].append(params[k].grad.detach().numpy().copy())
            opt.step()
            for k in order:
                traj[k].append(params[k].detach().numpy().copy())
        meta = dict(optimizer="mfac", kwargs=kw, oracle="IST-DASLab/M-FAC optim.MFAC @ 8116367")
        _save(
            name,
            meta,
            {
                "p0": p0,
                "grads": {k: np.stack(v) for k, v in grads.items()},
                "params": {k: np.stack(v) for k, v in traj.items()},
            },
        )
    torch.set_default_dtype(torch.float32)


# ------------------------------------------------------------------------------------------ MKOR

MKOR_CASES = {
    # name: (official MKOR kwargs, inner kwargs, second layer has a bias, reset injections)
    # injections: {step t (0-based, before the step): [(layer, "a" | "g"), ...]} set the
    # official reset flags by hand (they never fire by themselves in float32: see the module
    # docstring of jaxopt_papers.curvature.mkor), to exercise the reset path.
    "mkor_sgd_warmup_resets": (
        dict(inv_freq=3, warmup_steps=2, optimizer="sgd"),
        dict(lr=0.1, momentum=0.9),
        True,
        {8: [(1, "a"), (0, "g")]},
    ),
    "mkor_adam_nobias": (
        dict(inv_freq=4, optimizer="adam"),
        dict(lr=0.01),
        False,
        {},
    ),
}


def make_mkor(repo: pathlib.Path) -> None:
    import torch

    sys.path.insert(0, str(repo))
    from mkor import MKOR  # the official package

    torch.set_default_dtype(torch.float32)
    for name, (kw, inner_kw, bias1, resets) in MKOR_CASES.items():
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3, bias=bias1)
        )
        model.device = torch.device("cpu")  # the official constructor reads model.device
        layers = [model[0], model[2]]
        opt = MKOR(model, half_precision=False, **kw, **inner_kw)
        rng = np.random.default_rng(2)
        steps = 20
        record = {k: [] for k in ("x", "y")}
        p0 = _mkor_params(layers)
        grads, traj, stats_a, stats_g = {}, {}, {}, {}
        for t in range(steps):
            for layer, which in resets.get(t, []):
                (opt.a_reset_factor if which == "a" else opt.g_reset_factor)[layer] = True
            x = rng.normal(size=(16, 5)).astype(np.float32) * 2.0
            y = rng.normal(size=(16, 3)).astype(np.float32)
            record["x"].append(x)
            record["y"].append(y)
            opt.zero_grad()
            out = model(torch.tensor(x))
            loss = 0.5 * ((out - torch.tensor(y)) ** 2).sum(1).mean()
            loss.backward()
            for k, v in _mkor_params(layers, grad=True).items():
                grads.setdefault(k, []).append(v)
            collect = t % kw["inv_freq"] == 0 or t < kw.get("warmup_steps", 0)
            opt.step()
            for k, v in _mkor_params(layers).items():
                traj.setdefault(k, []).append(v)
            for i in range(2):
                a = opt.inputs[i].detach().numpy()[0] if collect else np.zeros(6 if i == 0 else 9)
                g = opt.grads[i].detach().numpy()[0] if collect else np.zeros(8 if i == 0 else 3)
                if i == 1 and not bias1 and not collect:
                    a = np.zeros(8)
                stats_a.setdefault(f"l{i}", []).append(a.astype(np.float32))
                stats_g.setdefault(f"l{i}", []).append(g.astype(np.float32))
        meta = dict(
            optimizer="mkor",
            official_kwargs=kw,
            inner_kwargs=inner_kw,
            bias1=bias1,
            resets={str(t): v for t, v in resets.items()},
            oracle="Mohammad-Mozaffari/mkor mkor.MKOR @ 3a0e3bb, half_precision=False, float32",
        )
        stack = lambda d: {k: np.stack(v) for k, v in d.items()}
        _save(
            name,
            meta,
            {
                "p0": p0,
                "grads": stack(grads),
                "params": stack(traj),
                "stats_a": stack(stats_a),
                "stats_g": stack(stats_g),
                "batch": stack(record),
            },
        )


def _mkor_params(layers, grad=False) -> dict[str, np.ndarray]:
    """Torch layout ``l<i>_w`` (out, in) and ``l<i>_b``; gradients with ``grad``."""
    out = {}
    for i, layer in enumerate(layers):
        for short, p in (("w", layer.weight), ("b", layer.bias)):
            if p is not None:
                t = p.grad if grad else p
                out[f"l{i}_{short}"] = t.detach().numpy().copy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mfac-repo", default="/tmp/refs/mfac", type=pathlib.Path)
    parser.add_argument("--mkor-repo", default="/tmp/refs/mkor", type=pathlib.Path)
    parser.add_argument("which", nargs="*", default=["mfac", "mkor"])
    args = parser.parse_args()
    if "mfac" in args.which:
        make_mfac(args.mfac_repo)
    if "mkor" in args.which:
        make_mkor(args.mkor_repo)


if __name__ == "__main__":
    main()
