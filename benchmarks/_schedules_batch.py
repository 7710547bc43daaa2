"""Section of ``benchmarks/schedules.py``: AdAdaGrad's adaptive batch sizes on digits.

Workload: the digits MLP 64-128-10 (``jaxopt_papers.tour.workloads.digits_mlp``; 1437 training
examples). Each method trains with :func:`jaxopt_papers.batch_size.grow_batch_training`: a fixed
batch size (16, 64, 256; ``test=None``) or a batch that starts at 16 and grows when a test
(norm, inner-product, augmented inner-product; ``η = θ = ν`` below) fails, rounded up to a power
of two and capped at the training set. Base optimizers: AdaGrad-Norm (row-wise, the AdAdaGrad
reference code's ``Adagradnorm``) and coordinate-wise AdaGrad (``optax.adagrad``), learning
rates fixed per optimizer (no rescale when the batch grows, as in the paper's experiments).
Target: test accuracy >= ``TARGET`` (checked every ``EVAL_EVERY`` steps); we report the steps
and the training examples processed until then, the final training loss and test accuracy,
the final batch size and the wall time (compilations included: one per batch size).

``run(quick, seeds)`` returns ``{"rows": [...], "curves": {...}, ...}`` for ``schedules.py``.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers import batch_size as bs
from jaxopt_papers.tour import workloads as wl

TARGET = 0.96
EVAL_EVERY = 5
TOL = 0.1  # η = θ = ν (reference default 0.1)
OPTIMIZERS = {
    "adagrad_norm": lambda: bs.adagrad_norm(0.5),
    "adagrad": lambda: optax.adagrad(0.05),
}


def _settings(quick: bool) -> list[tuple[str, str | None, int]]:
    if quick:
        return [("fixed-64", None, 64), ("norm", "norm", 16)]
    return [
        ("fixed-16", None, 16),
        ("fixed-64", None, 64),
        ("fixed-256", None, 256),
        ("norm", "norm", 16),
        ("inner_product", "inner_product", 16),
        ("augmented_inner_product", "augmented_inner_product", 16),
    ]


def run(quick: bool, seeds: list[int]) -> dict[str, Any]:
    """Steps and examples to the target for each test against fixed batch sizes.

    Args:
      quick: a CI-sized run (AdaGrad-Norm only, fixed 64 against the norm test, 150 steps).
      seeds: the seeds (initialisation and data order).

    Returns:
      ``{"workload", "target", "rows", "curves"}``: one row per optimizer, setting and seed;
      curves (seed ``seeds[0]``) of test accuracy and batch size against examples processed.
    """
    w = wl.digits_mlp()
    data = wl.load_digits_split()
    train = (data["x_train"], data["y_train"])
    test = (jnp.asarray(data["x_test"]), jnp.asarray(data["y_test"]))
    train_j = (jnp.asarray(train[0]), jnp.asarray(train[1]))
    evaluate = jax.jit(lambda p: (w.metric(p, test), w.loss(p, train_j)))
    num_steps = 150 if quick else 400
    optimizers = {"adagrad_norm": OPTIMIZERS["adagrad_norm"]} if quick else OPTIMIZERS
    rows, curves = [], {}
    for opt_name, make in optimizers.items():
        for label, test_kind, b0 in _settings(quick):
            for seed in seeds:
                params = wl.init_params(w, seed)
                hits: dict[str, Any] = {}
                curve: list[tuple[int, float, float, int]] = []
                counter = {"examples": 0}

                def callback(step, p, b, hits=hits, curve=curve, counter=counter):
                    counter["examples"] += b
                    if (step + 1) % EVAL_EVERY:
                        return False
                    acc, loss = (float(v) for v in evaluate(p))
                    curve.append((counter["examples"], acc, loss, b))
                    if acc >= TARGET and "step" not in hits:
                        hits.update(step=step + 1, examples=counter["examples"])
                        return True
                    return False

                start = time.perf_counter()
                r = bs.grow_batch_training(
                    w.loss,
                    params,
                    make(),
                    train,
                    num_steps=num_steps,
                    test=test_kind,
                    initial_batch_size=b0,
                    max_batch_size=train[0].shape[0],
                    eta=TOL,
                    theta=TOL,
                    nu=TOL,
                    round_to="power_of_two",
                    callback=callback,
                    seed=seed,
                )
                seconds = time.perf_counter() - start
                acc, loss = (float(v) for v in evaluate(r.params))
                rows.append(
                    {
                        "optimizer": opt_name,
                        "method": label,
                        "seed": seed,
                        "steps_to_target": hits.get("step"),
                        "examples_to_target": hits.get("examples"),
                        "final_train_loss": loss,
                        "final_test_accuracy": acc,
                        "final_batch_size": int(r.batch_sizes[-1]),
                        "num_batch_sizes": len(set(r.batch_sizes.tolist())),
                        "steps": len(r.batch_sizes),
                        "seconds": seconds,
                    }
                )
                if seed == seeds[0]:
                    curves[f"{opt_name}/{label}"] = {
                        "examples": [c[0] for c in curve],
                        "test_accuracy": [c[1] for c in curve],
                        "train_loss": [c[2] for c in curve],
                        "batch_size": [c[3] for c in curve],
                    }
    return {
        "workload": f"{w.description} (target test accuracy {TARGET})",
        "target": TARGET,
        "tolerance": TOL,
        "rows": rows,
        "curves": curves,
    }


if __name__ == "__main__":  # a quick look without schedules.py
    import sys

    quick = "--quick" in sys.argv
    out = run(quick, [0] if quick else [0, 1, 2])
    for row in out["rows"]:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
