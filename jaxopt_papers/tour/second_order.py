"""Tour section ``second-order``: MKOR and M-FAC against Adam on the digits autoencoder.

On :func:`jaxopt_papers.tour.workloads.digits_autoencoder` (the classic deep autoencoder scaled
to the 8x8 digits), the same initialisation and batches for every optimizer: ``optax.adam``,
:func:`jaxopt_papers.curvature.mkor` (its statistics captured by
:func:`jaxopt_papers.curvature.value_grad_and_stats` in the same pass as the gradients) and
:func:`jaxopt_papers.curvature.mfac`. Each run is one jitted ``lax.scan``; the quick tour runs
a narrower network (64-32-16-8-16-32-64) for 100 steps and leaves MKOR with inner Adam out.
The table gives the steps to the workload's target test loss, the final test loss, the time per
step (the run's wall time over its steps) and the compilation time apart.
``second_order.png`` shows the test loss curves. ``benchmarks/second_order.py`` has the full
comparison (LAMB, MKOR-H, kfac-jax, three seeds, tuned learning rates).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.tour._common import Tour, format_table

CONTENDERS = {
    "optax.adam (lr 1e-3)": ("plain", lambda: optax.adam(1e-3)),
    "mkor, inner SGD (lr 0.01, momentum 0.9)": (
        "stats",
        lambda: _curvature().mkor(0.01, inner="sgd", momentum=0.9),
    ),
    "mkor, inner Adam (lr 1e-3)": ("stats", lambda: _curvature().mkor(1e-3, inner="adam")),
    "mfac (m 32, lr 0.01)": ("plain", lambda: _curvature().mfac(0.01, num_grads=32)),
}
"""Label -> (what ``update`` needs, the transformation), with the learning rates that
``benchmarks/second_order.py`` picked on the autoencoder. The quick tour skips MKOR with inner
Adam."""


def _curvature():
    from jaxopt_papers import curvature

    return curvature


def _runner(wl, kind: str, tx: optax.GradientTransformation, num_steps: int):
    """A jitted ``run(params, batch_idx) -> (test loss every eval_every steps, first, last)``."""
    curvature = _curvature()
    data = wl.data
    num_evals = num_steps // wl.eval_every

    def run(params, batch_idx):
        x, y = data["x_train"], data["y_train"]
        test = (data["x_test"], data["y_test"])

        def step(carry, b):
            p, s = carry
            batch = (x[b], y[b])
            if kind == "stats":
                v, g, st = curvature.value_grad_and_stats(wl.loss, p, batch)
                u, s = tx.update(g, s, p, layer_stats=st)
            else:
                v, g = jax.value_and_grad(wl.loss)(p, batch)
                u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), v

        def period(carry, idx):
            carry, _ = jax.lax.scan(step, carry, idx)
            return carry, wl.metric(carry[0], test)

        idx = batch_idx.reshape(num_evals, wl.eval_every, wl.batch_size)
        _, curve = jax.lax.scan(period, (params, tx.init(params)), idx)
        return jnp.concatenate([wl.metric(params, test)[None], curve])

    return jax.jit(run)


def _test_split(wl):
    """The workload's ``(x_test, y_test)``."""
    return wl.data["x_test"], wl.data["y_test"]


def section(ctx: Tour) -> None:
    """MKOR (inner SGD and Adam) and M-FAC against Adam on the digits autoencoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxopt_papers.tour import workloads

    n = 100 if ctx.quick else 1000
    wl = workloads.digits_autoencoder(n, widths=(32, 16, 8) if ctx.quick else (256, 128, 64, 16))
    params = workloads.init_params(wl, 0)
    idx = jnp.asarray(workloads.batch_indices(wl, 0, n))
    print(f"{wl.description}, {n} steps of batch {wl.batch_size}; target test loss {wl.target:g}")
    print(f"initial test loss {float(jax.jit(wl.metric)(params, _test_split(wl))):.2f}")
    rows, curves = [], {}
    for label, (kind, build) in CONTENDERS.items():
        if ctx.quick and "inner Adam" in label:
            continue
        run = _runner(wl, kind, build(), n)
        start = time.perf_counter()
        compiled = run.lower(params, idx).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        curve = np.asarray(jax.block_until_ready(compiled(params, idx)))
        per_step = (time.perf_counter() - start) / n
        curves[label] = curve
        hit = np.flatnonzero(curve <= wl.target)
        stt = str(int(hit[0]) * wl.eval_every) if hit.size else "—"
        rows.append([label, stt, f"{curve[-1]:.2f}", f"{per_step * 1e3:.2f}", f"{compile_s:.1f}"])
    print(format_table(["optimizer", "steps to target", "final test loss", "ms/step",
                        "compile (s)"], rows))  # fmt: skip
    print("(ms/step: the scan's wall time over its steps, test evaluations included)")

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, curve in curves.items():
        ax.semilogy(np.arange(curve.size) * wl.eval_every, curve, label=label)
    ax.axhline(wl.target, color="k", ls=":", lw=1, label="target")
    ax.set(title=wl.description, xlabel="step", ylabel="test loss (sigmoid cross-entropy)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = ctx.out / "second_order.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    ctx.written.append(out)
