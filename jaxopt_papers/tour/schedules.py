"""Tour section ``schedules``: learning rates learned online and schedules refined from a run.

On the digits MLP (:func:`jaxopt_papers.tour.workloads.digits_mlp`): Adam-HD
(:func:`jaxopt_papers.schedules.adam_hd`) started from a learning rate 10x too small, next to
Adam at that learning rate and at a good one (3e-3); then the schedule refined from the
gradient norms of a linear-decay run (:func:`jaxopt_papers.schedules.refined_schedule`)
against linear decay itself, same peak, initialisation and batches. ``schedules.png`` shows
the training loss, the learned learning rate and the two schedules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.tour._common import Tour, format_table

GOOD_LR = 3e-3
"""Adam's learning rate on the digits MLP (the workloads' contender value)."""
HYPERGRAD_LR = 1e-6
"""Adam-HD's hypergradient learning rate β on the digits MLP."""


def _runner(wl, num_steps: int, make_tx: Callable[[Any], optax.GradientTransformation],
            probe: Callable[[Any], Any], final: Callable[[Any], Any]):  # fmt: skip
    """A jitted run ``(params, batch_idx, hyper) -> (losses, probes, final, train loss, acc)``
    compiled once for every value of ``hyper`` (a learning rate or a learning-rate table)."""
    grad_fn = jax.value_and_grad(wl.loss)
    data = wl.data

    def run(params, batch_idx, hyper):
        tx = make_tx(hyper)
        x, y = data["x_train"], data["y_train"]

        def step(carry, b):
            p, s = carry
            loss, g = grad_fn(p, (x[b], y[b]))
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), (loss, probe(s))

        (p, s), (losses, probes) = jax.lax.scan(step, (params, tx.init(params)), batch_idx)
        test = (data["x_test"], data["y_test"])
        return losses, probes, final(s), wl.loss(p, (x, y)), wl.metric(p, test)

    return jax.jit(run)


def section(ctx: Tour) -> None:
    """Adam-HD from a bad learning rate, and the refined schedule against linear decay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxopt_papers import schedules
    from jaxopt_papers.tour import workloads

    n = 200 if ctx.quick else 1000
    wl = workloads.digits_mlp(n)
    params = workloads.init_params(wl, 0)
    idx = jnp.asarray(workloads.batch_indices(wl, 0, n))
    bad = GOOD_LR / 10
    print(f"digits MLP, {n} steps of batch {wl.batch_size}; Adam's good learning rate "
          f"{GOOD_LR:g}, the bad one {bad:g}")  # fmt: skip

    start = time.perf_counter()
    zero = lambda s: jnp.zeros(())
    adam = _runner(wl, n, optax.adam, zero, zero)
    hd = _runner(wl, n, lambda lr: schedules.adam_hd(lr, hypergrad_lr=HYPERGRAD_LR),
                 lambda s: s[-1].learning_rate, zero)  # fmt: skip
    runs = {
        f"Adam, lr {GOOD_LR:g}": adam(params, idx, jnp.float32(GOOD_LR)),
        f"Adam, lr {bad:g}": adam(params, idx, jnp.float32(bad)),
        f"Adam-HD from lr {bad:g} (β {HYPERGRAD_LR:g})": hd(params, idx, jnp.float32(bad)),
    }
    runs = {k: jax.device_get(r) for k, r in runs.items()}  # (a dict pytree is key-sorted)
    learned = np.asarray(runs[f"Adam-HD from lr {bad:g} (β {HYPERGRAD_LR:g})"][1])
    rows = [[k, f"{float(r[3]):.4f}", f"{float(r[4]):.3f}",
             f"{learned[-1]:.2g}" if "HD" in k else "—"] for k, r in runs.items()]  # fmt: skip
    print(format_table(["optimizer", "final train loss", "test accuracy", "lr at the end"],
                       rows))  # fmt: skip

    # refinement: a linear-decay run records its gradient norms, the next run uses them
    def with_table(table):
        sched = lambda count: table[jnp.minimum(count, n - 1)]
        return optax.chain(schedules.record_grad_norms(num_steps=n), optax.adam(sched))

    sched_run = _runner(wl, n, with_table, zero, lambda s: s[0].l1)
    steps = np.arange(n)
    linear = jnp.asarray(schedules.linear_decay(GOOD_LR, n)(steps), jnp.float32)
    first = jax.device_get(sched_run(params, idx, linear))
    refined_fn = schedules.refined_schedule(first[2], GOOD_LR, kind="adam")
    refined = jnp.asarray(refined_fn(steps), jnp.float32)
    second = jax.device_get(sched_run(params, idx, refined))
    print(f"\nschedules with peak {GOOD_LR:g} (Adam; ℓ1 gradient norms of the first run):")
    print(format_table(
        ["schedule", "final train loss", "test accuracy"],
        [["linear decay (run 1, records norms)", f"{float(first[3]):.4f}",
          f"{float(first[4]):.3f}"],
         ["refined from run 1 (run 2)", f"{float(second[3]):.4f}",
          f"{float(second[4]):.3f}"]]))  # fmt: skip
    print(f"({time.perf_counter() - start:.1f} s, compilation included)")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for k, r in runs.items():
        axes[0].semilogy(np.convolve(r[0], np.ones(10) / 10, "valid"), label=k)
    axes[0].set(title="minibatch loss (running mean of 10)", xlabel="step")
    axes[1].semilogy(learned, label="Adam-HD learned lr")
    axes[1].axhline(GOOD_LR, color="k", ls="--", label="good lr")
    axes[1].axhline(bad, color="r", ls=":", label="initial lr")
    axes[1].set(title="learned learning rate", xlabel="step")
    axes[2].plot(np.asarray(linear), label="linear decay")
    axes[2].plot(np.asarray(refined), label="refined")
    axes[2].set(title="schedules (Adam, digits MLP)", xlabel="step", ylabel="learning rate")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = ctx.out / "schedules.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    ctx.written.append(out)
