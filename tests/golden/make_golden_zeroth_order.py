"""Regenerate the MeZO golden trajectories ``tests/golden/data/zo/mezo_*.npz``.

Needs torch (the ``oracle`` extra); the tests never import it::

    python tests/golden/make_golden_zeroth_order.py

This is a float64 replay, written for this project, of the arithmetic of the official MeZO
trainer (princeton-nlp/MeZO ``large_models/trainer.py`` at 552cb1b: ``zo_perturb_parameters``,
``zo_step``, ``zo_update``), on a small torch model whose parameter names exercise the trainer's
weight-decay rule (``fc1.weight``/``fc2.weight`` are decayed; ``*.bias`` and ``layer_norm.*``
are not). Each step, as the trainer does it:

1. a seed ``s`` is drawn with NumPy (``np.random.randint(1000000000)``);
2. ``torch.manual_seed(s)``, then for each parameter in ``named_parameters()`` order
   ``z = torch.normal(0, 1, size, dtype)`` and, in place, ``θ <- θ + 1 · z · ε`` → ``ℓ1``;
   again from ``s``: ``θ <- θ + (-2) · z · ε`` → ``ℓ2``; ``proj = (ℓ1 - ℓ2) / (2 ε)``; again
   from ``s``: ``θ <- θ + 1 · z · ε`` (restore);
3. ``torch.manual_seed(s)`` and, per parameter, the same ``z`` and
   ``θ <- θ - lr (proj z + wd θ)`` (decayed names) or ``θ <- θ - lr proj z`` (the others).

The losses are evaluated in ``eval`` mode on a minibatch of fixed indices. JAX's PRNG cannot
reproduce torch's normals, so each file stores the ``z`` drawn at every step; the test feeds
them to our :func:`jaxopt_papers.zeroth_order.mezo` through its ``sampler`` argument (the
documented way to replay given directions) and compares the whole trajectory.

Files hold: ``x``, ``y`` (the data), ``batches`` (T, B) (minibatch indices per step),
``p0/<name>`` (initial params, torch names with ``.`` replaced by ``__``), ``z/<name>`` (T, ...)
(the directions), ``proj`` (T,), ``loss1``, ``loss2`` (T,), ``params/<name>`` (T, ...) (after
each step) and ``meta`` (JSON: our alias's keyword arguments, the reference and commit).

(They live in ``data/zo/``: ``tests/optimizers/test_golden.py`` replays every file directly in
``data/`` as a first-order trajectory.)
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

DATA = pathlib.Path(__file__).resolve().parent / "data" / "zo"
REFERENCE = "princeton-nlp/MeZO large_models/trainer.py @ 552cb1b (float64 replay)"

CASES = [
    # name, our kwargs (mezo alias), steps, seed (data, initialisation, NumPy's seeds)
    ("mezo_wd", {"learning_rate": 1e-2, "eps": 1e-3, "weight_decay": 0.05}, 25, 0),
    ("mezo_prefix_eps", {"learning_rate": 5e-3, "eps": 1e-1, "weight_decay": 0.0}, 25, 1),
]
N, D, H, B = 32, 6, 5, 8


def build(seed: int):
    import torch

    torch.manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(D, H)
            self.layer_norm = torch.nn.LayerNorm(H)
            self.fc2 = torch.nn.Linear(H, 1)

        def forward(self, x):
            return self.fc2(torch.tanh(self.layer_norm(self.fc1(x))))[:, 0]

    net = Net().double()
    with torch.no_grad():  # LayerNorm starts at (1, 0): move it so that its gradient matters
        net.layer_norm.weight.add_(0.3 * torch.randn(H, dtype=torch.float64))
        net.layer_norm.bias.add_(0.3 * torch.randn(H, dtype=torch.float64))
    return net


def run(name: str, kwargs: dict, steps: int, seed: int = 0) -> dict:
    import torch

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    y = np.sin(x @ rng.normal(size=D))
    batches = np.stack([rng.choice(N, size=B, replace=False) for _ in range(steps)])
    net = build(seed)
    net.eval()  # zo_forward: eval mode, dropout off
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    eps, lr, wd = kwargs["eps"], kwargs["learning_rate"], kwargs["weight_decay"]
    np.random.seed(seed)  # noqa: NPY002 (the trainer draws its seeds from the global generator)

    def forward(idx):
        with torch.inference_mode():
            out = net(torch.tensor(x[idx]))
            return torch.mean((out - torch.tensor(y[idx])) ** 2).detach()

    def perturb(s, scaling_factor):
        torch.manual_seed(s)
        for _, param in named:
            z = torch.normal(mean=0, std=1, size=param.data.size(), dtype=param.data.dtype)
            param.data = param.data + scaling_factor * z * eps

    key = lambda n: n.replace(".", "__")
    out = {f"p0/{key(n)}": p.detach().numpy().copy() for n, p in named}
    zs, params = {key(n): [] for n, _ in named}, {key(n): [] for n, _ in named}
    projs, l1s, l2s = [], [], []
    for t in range(steps):
        idx = batches[t]
        s = np.random.randint(1000000000)  # noqa: NPY002 (as the trainer)
        perturb(s, 1)
        loss1 = forward(idx)
        perturb(s, -2)
        loss2 = forward(idx)
        proj = ((loss1 - loss2) / (2 * eps)).item()
        perturb(s, 1)
        torch.manual_seed(s)
        for n, param in named:
            z = torch.normal(mean=0, std=1, size=param.data.size(), dtype=param.data.dtype)
            zs[key(n)].append(z.numpy().copy())
            if "bias" not in n and "layer_norm" not in n and "layernorm" not in n:
                param.data = param.data - lr * (proj * z + wd * param.data)
            else:
                param.data = param.data - lr * (proj * z)
            params[key(n)].append(param.detach().numpy().copy())
        projs.append(proj)
        l1s.append(loss1.item())
        l2s.append(loss2.item())
    out.update({f"z/{k}": np.stack(v) for k, v in zs.items()})
    out.update({f"params/{k}": np.stack(v) for k, v in params.items()})
    out.update(x=x, y=y, batches=batches, proj=np.array(projs))
    out.update(loss1=np.array(l1s), loss2=np.array(l2s))
    out["meta"] = json.dumps(
        {"optimizer": "mezo", "kwargs": kwargs, "reference": REFERENCE, "steps": steps}
    )
    return out


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name, kwargs, steps, seed in CASES:
        arrays = run(name, kwargs, steps, seed)
        np.savez_compressed(DATA / f"{name}.npz", **arrays)
        print(f"{name}: proj[:3] = {arrays['proj'][:3]}")


if __name__ == "__main__":
    main()
