"""Regenerate the golden trajectories in ``tests/golden/data`` from the reference implementations.

Needs the ``oracle`` extra (torch + torch-optimizer + pytorch-optimizer); the test suite itself
never imports torch. Every ``cases_*.py`` beside this file defines ``CASES``: a list of
:class:`Case`. For each case we run the reference optimizer in float64 on a fixed problem and
store, per step, the gradient the optimizer received and the parameters after the step::

    python tests/golden/make_golden.py            # all cases
    python tests/golden/make_golden.py adan lion  # cases whose name starts with these

Problems (see :func:`problem`) are small and chosen to make every branch fire: a least-squares
quadratic, a scale-invariant loss on row-normalised weights (AdamP/SGDP projection), and an
optional gradient "spike" schedule that multiplies the gradient on given steps (SPAM clipping).
Output: ``data/<case>.npz`` holding ``p0/<leaf>``, ``grads/<leaf>`` (T, ...), ``params/<leaf>``
(T, ...) and ``meta`` (JSON: our optimizer's name and keyword arguments, the oracle used).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"


@dataclasses.dataclass
class Case:
    """One golden trajectory.

    name:      file stem in ``data/``.
    optimizer: name of our alias in ``jaxopt_papers`` (e.g. ``"adan"``).
    kwargs:    keyword arguments for our alias (JSON-serialisable).
    oracle:    ``lambda params: torch.optim.Optimizer`` building the reference optimizer.
    oracle_name: what the oracle is (stored in ``meta``).
    problem:   ``"quadratic"`` or ``"scale_invariant"``.
    steps:     number of steps.
    spikes:    {step (1-based): factor} multiplying the gradient on those steps.
    seed:      data/initialisation seed.
    layout:    ``"torch"``: 2-D leaves are (out, in); tests may also replay them transposed.
    """

    name: str
    optimizer: str
    kwargs: dict[str, Any]
    oracle: Callable[[list], Any]
    oracle_name: str
    problem: str = "quadratic"
    steps: int = 40
    spikes: dict[int, float] = dataclasses.field(default_factory=dict)
    seed: int = 0
    before_step: Callable[[Any, int], None] | None = None


def problem(kind: str, seed: int):
    """Parameters (dict of float64 arrays, torch layout) and a torch loss on them."""
    import torch

    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(16, 5)))
    y = torch.tensor(rng.normal(size=(16, 4)))
    p0 = {
        "w": rng.normal(size=(4, 5)),  # (out, in) like torch.nn.Linear
        "b": 0.1 * rng.normal(size=(4,)),
        "conv": 0.5 * rng.normal(size=(3, 2, 2, 2)),  # (out, in, kh, kw)
    }
    z = torch.tensor(rng.normal(size=(2, 2, 2)))

    if kind == "quadratic":

        def loss(p):
            r = x @ p["w"].T + p["b"] - y
            conv = torch.einsum("oikl,ikl->o", p["conv"], z)
            quartic = 0.05 * (p["b"] ** 4).sum()
            return 0.5 * (r**2).mean() + 0.5 * ((conv - 1.0) ** 2).sum() + quartic

    elif kind == "scale_invariant":

        def loss(p):
            w = p["w"] / p["w"].norm(dim=1, keepdim=True)
            c = p["conv"] / p["conv"].flatten().norm()
            r = x @ w.T + p["b"] - y
            conv = torch.einsum("oikl,ikl->o", c, z)
            return 0.5 * (r**2).mean() + 0.5 * ((conv - 0.3) ** 2).sum()

    else:
        raise ValueError(f"unknown problem {kind!r}")
    return p0, loss


def load_official(env_var: str, commit: str | None, path: str, inject: dict | None = None):
    """Load ``path`` from the official repository whose clone ``$env_var`` names.

    With ``commit`` the file is read at that commit (the clone may be a work tree or a bare git
    directory); with ``commit=None`` it is read from the work tree as it is. The file is executed
    as a fresh module (``inject`` pre-populates its namespace, e.g. a missing ``np``); nothing is
    copied into this repository.
    """
    import os
    import pathlib
    import subprocess
    import types

    repo = os.environ.get(env_var)
    if not repo:
        raise RuntimeError(f"set {env_var} to a clone of the official repository")
    if commit is None:
        source = (pathlib.Path(repo) / path).read_text()
    else:
        git = (
            ["git", "-C", repo]
            if os.path.isdir(os.path.join(repo, ".git"))
            else ["git", f"--git-dir={repo}"]
        )
        source = subprocess.run(
            [*git, "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
        ).stdout
    module = types.ModuleType(f"official_{path.replace('/', '_')}_{commit or 'worktree'}")
    module.__dict__.update(inject or {})
    exec(compile(source, f"{path}@{commit or 'worktree'}", "exec"), module.__dict__)
    return module


def record(case: Case) -> dict[str, np.ndarray]:
    import torch

    torch.set_default_dtype(torch.float64)
    p0, loss = problem(case.problem, case.seed)
    names = list(p0)
    tparams = [torch.tensor(p0[k], requires_grad=True) for k in names]
    opt = case.oracle(tparams)
    grads = {k: [] for k in names}
    params = {k: [] for k in names}
    for t in range(1, case.steps + 1):
        opt.zero_grad(set_to_none=True)
        value = loss(dict(zip(names, tparams, strict=True)))
        value.backward()
        factor = case.spikes.get(t, 1.0)
        with torch.no_grad():
            for k, tp in zip(names, tparams, strict=True):
                tp.grad.mul_(factor)
                grads[k].append(tp.grad.detach().clone().numpy())
        if case.before_step is not None:
            case.before_step(opt, t)
        opt.step()
        for k, tp in zip(names, tparams, strict=True):
            params[k].append(tp.detach().clone().numpy())
    out = {f"p0/{k}": np.asarray(v) for k, v in p0.items()}
    out.update({f"grads/{k}": np.stack(v) for k, v in grads.items()})
    out.update({f"params/{k}": np.stack(v) for k, v in params.items()})
    meta = {
        "optimizer": case.optimizer,
        "kwargs": case.kwargs,
        "oracle": case.oracle_name,
        "problem": case.problem,
        "spikes": {str(k): v for k, v in case.spikes.items()},
        "layout": "torch",
    }
    out["meta"] = np.array(json.dumps(meta))
    return out


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(HERE.glob("cases_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = mod
        spec.loader.exec_module(mod)
        cases.extend(mod.CASES)
    return cases


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(HERE))
    DATA.mkdir(exist_ok=True)
    cases = load_cases()
    if argv:
        cases = [c for c in cases if any(c.name.startswith(a) for a in argv)]
    for case in cases:
        arrays = record(case)
        np.savez_compressed(DATA / f"{case.name}.npz", **arrays)
        final = max(np.abs(arrays[f"params/{k}"][-1]).max() for k in ("w", "b", "conv"))
        print(
            f"{case.name:40s} {case.steps:4d} steps  oracle={case.oracle_name}  "
            f"max|p_T|={final:.3g}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
