"""Tour section ``zeroth-order``: training from function values only, at inference memory.

On the digits MLP (:func:`jaxopt_papers.tour.workloads.digits_mlp`) pretrained by a few Adam
steps, fine-tuning by MeZO-SGD (:func:`jaxopt_papers.zeroth_order.mezo_step`, two loss
evaluations per step, no gradient) next to backprop SGD: test accuracy, steps per second and the
compiled peak memory of one jitted step beside the forward pass's. ``zeroth_order.png`` shows
the test accuracy along the run.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.tour._common import Tour, format_table

MEZO_LR = 3e-3
"""MeZO's learning rate on the digits MLP (the best of a grid in ``benchmarks/zeroth_order.py``)."""
SGD_LR = 0.3
"""Backprop SGD's learning rate (the best of a grid in the same benchmark)."""


def _peak_mib(compiled) -> float:
    m = compiled.memory_analysis()
    total = (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
             + m.temp_size_in_bytes)  # fmt: skip
    return total / 2**20


def section(ctx: Tour) -> None:
    """MeZO against backprop SGD fine-tuning the digits MLP; memory of one step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxopt_papers import zeroth_order as zo
    from jaxopt_papers.tour import workloads

    n = 60 if ctx.quick else 3000
    wl = workloads.digits_mlp(n)
    x, y = wl.data["x_train"], wl.data["y_train"]
    test = (wl.data["x_test"], wl.data["y_test"])
    idx = jnp.asarray(workloads.batch_indices(wl, 0, n))
    start = time.perf_counter()

    adam = optax.adam(1e-3)

    @jax.jit
    def pretrain(p):  # 100 Adam steps on the first quarter of the training split
        def step(carry, b):
            p, s = carry
            u, s = adam.update(jax.grad(wl.loss)(p, (x[b], y[b])), s, p)
            return (optax.apply_updates(p, u), s), None

        b = jnp.arange(100 * 64).reshape(100, 64) % (x.shape[0] // 4)
        return jax.lax.scan(step, (p, adam.init(p)), b)[0][0]

    params = pretrain(workloads.init_params(wl, 0))
    before = float(wl.metric(params, test))

    def mezo_run(p, s):
        def step(carry, b):
            p, s = carry
            p, s, _ = zo.mezo_step(lambda q: wl.loss(q, (x[b], y[b])), p, s, MEZO_LR)
            return (p, s), wl.metric(p, test)

        return jax.lax.scan(step, (p, s), idx)[1]

    sgd = optax.sgd(SGD_LR)

    def sgd_run(p):
        def step(carry, b):
            p, s = carry
            u, s = sgd.update(jax.grad(wl.loss)(p, (x[b], y[b])), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), wl.metric(p, test)

        return jax.lax.scan(step, (p, sgd.init(p)), idx)[1]

    state = zo.scale_by_spsa().init(params)
    curves, rates = {}, {}
    for name, fn, args in (("MeZO (mezo_step)", mezo_run, (params, state)),
                           ("SGD (backprop)", sgd_run, (params,))):  # fmt: skip
        compiled = jax.jit(fn).lower(*args).compile()
        t0 = time.perf_counter()
        curves[name] = np.asarray(jax.block_until_ready(compiled(*args)))
        rates[name] = n / (time.perf_counter() - t0)

    # memory of one jitted step (params donated) beside the forward pass
    b = idx[0]
    batch = (x[b], y[b])
    forward = _peak_mib(jax.jit(wl.loss).lower(params, batch).compile())

    def one_mezo(p, s, xb, yb):
        return zo.mezo_step(lambda q: wl.loss(q, (xb, yb)), p, s, MEZO_LR)

    sgd_state = sgd.init(params)

    def one_sgd(p, s, xb, yb):
        u, s = sgd.update(jax.grad(wl.loss)(p, (xb, yb)), s, p)
        return optax.apply_updates(p, u), s

    memory = {
        "MeZO (mezo_step)": _peak_mib(
            jax.jit(one_mezo, donate_argnums=(0, 1)).lower(params, state, *batch).compile()
        ),
        "SGD (backprop)": _peak_mib(
            jax.jit(one_sgd, donate_argnums=(0, 1)).lower(params, sgd_state, *batch).compile()
        ),
    }
    tail = max(1, n // 10)
    print(f"digits MLP pretrained by 100 Adam steps (test accuracy {before:.3f}), then {n} "
          f"steps of batch {wl.batch_size}; the forward pass compiles to "
          f"{forward:.2f} MiB")  # fmt: skip
    rows = [[name, f"{curves[name][-tail:].mean():.3f}", f"{rates[name]:.0f}",
             f"{memory[name]:.2f} ({memory[name] / forward:.2f}x)"] for name in curves]  # fmt: skip
    print(format_table(["method", "test accuracy (last 10%)", "steps/s",
                        "peak MiB of a step (x forward)"], rows))  # fmt: skip
    print(f"({time.perf_counter() - start:.1f} s, compilation included)")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, c in curves.items():
        ax.plot(np.convolve(c, np.ones(tail) / tail, "valid"), label=name)
    ax.axhline(before, color="gray", ls=":", label="pretrained")
    ax.set(title="fine-tuning the digits MLP", xlabel="step",
           ylabel="test accuracy (running mean)")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = ctx.out / "zeroth_order.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    ctx.written.append(out)
