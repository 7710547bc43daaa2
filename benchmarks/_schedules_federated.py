"""FedAvg with and without FedHyper's rules on non-IID digits (a section of schedules.py).

Setup: scikit-learn digits (``jaxopt_papers.tour.workloads.load_digits_split``: 1437 train, 360
test samples), split over 100 clients by Dirichlet label skew with α = 0.5 (the official
non-IID split, ATP-1010/FedHyper ``src/utils.py`` lines 43 and 73), 10 clients per round (the
official ``frac = 0.1``), an MLP 64-32-10 (ReLU), local training of 2 epochs of minibatch SGD
(batch 16, momentum 0.5 as the official ``sgd`` option, learning rate 0.05), unweighted model
averaging (the official ``average_weights``). The official runs use 10 local epochs of batch 64 on
CIFAR-10/MNIST; fewer and smaller local steps fit the tiny digits clients (14 samples on
average).

Rules: FedAvg (server lr 1), FedHyper-G, FedHyper-GM, FedHyper-SL (local lr 0.05 learnt by the
server) and FedAvg + FedHyper-CL, all with the official constants.

Metric: test accuracy of the global model after every round. The target is FedAvg's plateau
(the mean test accuracy of its last 20 rounds, averaged over seeds) minus 0.02; rounds-to-target
is the first round whose accuracy reaches it (None if never).

``run(quick, seeds)`` returns ``{"rows": [...], "curves": {rule: [[acc per round] per seed]},
"target": float, "setup": {...}}``; ``time_s`` is the wall time of the compiled simulation
(compilation excluded). Quick mode: 1 seed, 30 rounds, FedAvg, FedHyper-G and FedHyper-GM.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import federated as fed
from jaxopt_papers.tour.workloads import load_digits_split, mlp_apply

NUM_CLIENTS = 100
ALPHA = 0.5
CLIENTS_PER_ROUND = 10
LOCAL_EPOCHS = 2
BATCH = 16
LOCAL_LR = 0.05
HIDDEN = 32
MARGIN = 0.02


def _rules() -> dict[str, tuple[Any, Any]]:
    return {
        "FedAvg": (fed.fedavg(), None),
        "FedHyper-G": (fed.fedhyper_g(), None),
        "FedHyper-GM": (fed.fedhyper_gm(), None),
        "FedHyper-SL": (fed.fedhyper_sl(LOCAL_LR), None),
        "FedAvg+FedHyper-CL": (fed.fedavg(), fed.fedhyper_cl()),
    }


def _init(key: jax.Array) -> dict:
    k0, k1 = jax.random.split(key)
    return {
        "dense0": {
            "w": jax.random.normal(k0, (64, HIDDEN)) * math.sqrt(2.0 / 64),
            "b": jnp.zeros(HIDDEN),
        },
        "dense1": {
            "w": jax.random.normal(k1, (HIDDEN, 10)) * math.sqrt(1.0 / HIDDEN),
            "b": jnp.zeros(10),
        },
    }


def _loss(p, xb, yb):
    logits = mlp_apply(p, xb)
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1)[:, 0]


def rounds_to_target(curve: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(np.asarray(curve) >= target)
    return int(hit[0]) + 1 if hit.size else None


def run(quick: bool, seeds: list[int]) -> dict[str, Any]:
    seeds = seeds[:1] if quick else seeds
    num_rounds = 30 if quick else 150
    d = load_digits_split()
    x_te = jnp.asarray(d["x_test"], jnp.float32)
    y_te = jnp.asarray(d["y_test"])

    def accuracy(p):
        return jnp.mean(jnp.argmax(mlp_apply(p, x_te), -1) == y_te)

    curves: dict[str, list[list[float]]] = {}
    times: dict[str, list[float]] = {}
    rules = _rules()
    if quick:
        rules = {k: rules[k] for k in ("FedAvg", "FedHyper-G", "FedHyper-GM")}
    for name, (server, client) in rules.items():
        setup = fed.FederatedSetup(
            _loss,
            server,
            clients_per_round=CLIENTS_PER_ROUND,
            local_epochs=LOCAL_EPOCHS,
            batch_size=BATCH,
            local_lr=LOCAL_LR,
            client_rule=client,
        )
        sim = jax.jit(
            lambda s, dt, k, setup=setup: fed.run_rounds(s, dt, k, setup, num_rounds, accuracy)
        )
        for seed in seeds:
            idx, mask = fed.dirichlet_split(d["y_train"], NUM_CLIENTS, ALPHA, seed=seed)
            data = fed.client_data(d["x_train"], d["y_train"], idx, mask)
            state = fed.init_federated(_init(jax.random.key(seed)), server)
            key = jax.random.key(1000 + seed)
            compiled = sim.lower(state, data, key).compile()  # client padding differs per seed
            t0 = time.perf_counter()
            _, acc = compiled(state, data, key)
            acc = np.asarray(jax.block_until_ready(acc), float)
            times.setdefault(name, []).append(time.perf_counter() - t0)
            curves.setdefault(name, []).append(acc.tolist())
    tail = 10 if quick else 20
    plateau = float(np.mean([np.mean(c[-tail:]) for c in curves["FedAvg"]]))
    target = plateau - MARGIN
    rows = []
    for name, cs in curves.items():
        for seed, c, t in zip(seeds, cs, times[name], strict=True):
            rows.append(
                {
                    "rule": name,
                    "seed": seed,
                    "rounds_to_target": rounds_to_target(np.array(c), target),
                    "final_accuracy": float(np.mean(c[-tail:])),
                    "time_s": t,
                }
            )
    return {
        "rows": rows,
        "curves": curves,
        "target": target,
        "setup": {
            "num_clients": NUM_CLIENTS,
            "alpha": ALPHA,
            "clients_per_round": CLIENTS_PER_ROUND,
            "local_epochs": LOCAL_EPOCHS,
            "batch_size": BATCH,
            "local_lr": LOCAL_LR,
            "num_rounds": num_rounds,
            "target": f"FedAvg plateau (mean of last {tail} rounds) - {MARGIN}",
        },
    }


if __name__ == "__main__":
    import json
    import sys

    out = run("--quick" in sys.argv, [0, 1, 2])
    for r in out["rows"]:
        print(json.dumps(r))
    print("target", out["target"])
