"""Tour section ``first-order``: the digits MLP trained by our first-order optimizers and
optax's, and Adam with 8-bit block-wise states against optax's Adam."""

from __future__ import annotations

import time

import jax

from jaxopt_papers.tour._common import Tour, format_table

TOUR_QUICK = ["adamp", "lion", "lion_k(tanh)", "optax.adam"]


def section(ctx: Tour) -> None:
    """Digits MLP trained by our optimizers and optax's; table + ``first_order.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from jaxopt_papers.tour import workloads as W

    steps = ctx.steps or (100 if ctx.quick else 600)
    wl = W.digits_mlp(num_steps=steps)
    contenders = W.first_order_contenders()
    if ctx.quick:
        contenders = [c for c in contenders if c.name in TOUR_QUICK]
    params, idx = W.init_params(wl, 0), W.batch_indices(wl, 0)
    print(
        f"{wl.description}: {wl.num_params} parameters, {wl.num_train} training images, batch "
        f"{wl.batch_size}, {steps} steps, constant learning rate; target test accuracy "
        f"{wl.target}. Each run is one jitted lax.scan; compile time is reported apart."
    )
    results = []
    bar = tqdm(contenders, desc="first-order", unit="optimizer", dynamic_ncols=True)
    for c in bar:
        bar.set_postfix_str(c.name)
        t0 = time.perf_counter()
        run = jax.jit(W.make_train(wl, c.make())).lower(params, idx, wl.data).compile()
        t1 = time.perf_counter()
        res = jax.block_until_ready(run(params, idx, wl.data))
        t2 = time.perf_counter()
        results.append((c, jax.device_get(res), t1 - t0, t2 - t1))
    bar.close()

    rows = []
    for c, res, compile_s, run_s in results:
        reached = W.steps_to_target(wl, res)
        rows.append([
            c.name, "ours" if c.source == "jaxopt_papers" else "optax", f"{c.learning_rate:g}",
            f"{float(res.eval_train_loss[-1]):.4f}", f"{float(res.eval_metric[-1]):.4f}",
            "—" if reached is None else str(reached), f"{steps / run_s:,.0f}", f"{compile_s:.2f}",
        ])  # fmt: skip
    headers = ["optimizer", "from", "lr", "final train loss", "test accuracy",
               f"steps to {wl.target:.0%}", "steps/s", "compile s"]  # fmt: skip
    print(format_table(headers, rows))
    eight_bit(wl, params, idx)

    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    styles = W.contender_styles([c.name for c, *_ in results])
    for c, res, _, _ in results:
        kw = {**styles[c.name], "lw": 1.4, "label": c.name}
        ax_l.plot(res.eval_step, res.eval_train_loss, **kw)
        ax_a.plot(res.eval_step, res.eval_metric, **kw)
    ax_l.set(yscale="log", xlabel="step", title="training loss (whole training split)")
    ax_l.set_ylim(bottom=max(ax_l.get_ylim()[0], 1e-6))
    ax_a.axhline(wl.target, color="k", lw=0.8, ls=":")
    ax_a.set(ylim=(0.85, 1.0), xlabel="step", title="test accuracy (target dotted)")
    ax_l.legend(fontsize=8, ncol=2, title="solid: ours, dashed: optax", title_fontsize=8)
    fig.suptitle(f"{wl.description}, {steps} steps")
    path = ctx.out / "first_order.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    ctx.written.append(path)


def eight_bit(wl, params, idx, learning_rate: float = 3e-3) -> None:
    """``adam8bit`` against ``optax.adam`` on the same run: state bytes and training loss.

    On this small MLP only the 64x128 kernel (8192 entries, at least ``min_8bit_size``) keeps
    8-bit moments; the other tensors keep 32-bit ones, as in bitsandbytes.
    """
    import optax

    from jaxopt_papers.quantized import adam8bit
    from jaxopt_papers.tour import workloads as W

    rows = []
    for name, tx in (
        ("adam8bit", adam8bit(learning_rate)),
        ("optax.adam", optax.adam(learning_rate)),
    ):
        state = jax.eval_shape(tx.init, params)
        nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
        res = jax.device_get(jax.jit(W.make_train(wl, tx))(params, idx, wl.data))
        loss, accuracy = float(res.eval_train_loss[-1]), float(res.eval_metric[-1])
        source = "ours" if name == "adam8bit" else "optax"
        rows.append([name, source, f"{nbytes:,}", f"{loss:.4f}", f"{accuracy:.4f}"])
    print("\n8-bit optimizer states (bitsandbytes' block-wise quantisation), same run:")
    print(
        format_table(
            ["optimizer", "from", "state bytes", "final train loss", "test accuracy"], rows
        )
    )
