"""Tour section ``optimal-transport``: Sinkhorn–Newton–Sparse against log-domain Sinkhorn on
the SNS paper's random assignment problem."""

from __future__ import annotations

import time

import jax

from jaxopt_papers.tour._common import Tour, format_table


def section(ctx: Tour) -> None:
    """SNS against Sinkhorn on the paper's random assignment problem; ``optimal_transport.png``."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from jaxopt_papers.ot import sinkhorn, sinkhorn_newton_sparse
    from jaxopt_papers.ot.sinkhorn import sweep

    sns_module = importlib.import_module("jaxopt_papers.ot.sinkhorn_newton_sparse")
    with jax.enable_x64(True):  # η = 1200 needs float64 (the paper's regime)
        import jax.numpy as jnp

        n, cap = (200, 4000) if ctx.quick else (500, 20_000)
        cost = jnp.asarray(np.random.default_rng(0).uniform(size=(n, n)))
        a = jnp.full(n, 1.0 / n)
        eps, tol = 1 / 1200, 1e-9
        rows = []
        for name, run in (
            ("Sinkhorn–Newton–Sparse (ours)",
             lambda: sinkhorn_newton_sparse(cost, a, a, eps, tol=tol)),
            ("Sinkhorn, log domain (ours)",
             lambda: sinkhorn(cost, a, a, eps, tol=tol, max_steps=cap, throw=False)),
        ):  # fmt: skip
            t0 = time.perf_counter()
            res = jax.block_until_ready(run())
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = jax.block_until_ready(run())
            secs = time.perf_counter() - t0
            steps = (f"{int(res.num_sinkhorn_steps)} + {int(res.num_newton_steps)} Newton"
                     if int(res.num_newton_steps) else f"{int(res.num_steps)}")  # fmt: skip
            rows.append([name, steps, f"{float(res.error):.1e}", f"{secs:.3f}",
                         f"{compile_s - secs:.2f}"])  # fmt: skip
        print(f"random linear assignment (the SNS paper's), n = {n}, C ~ U[0, 1], ε = 1/1200, "
              f"target L1 marginal error {tol:g}")  # fmt: skip
        print(format_table(["solver", "iterations", "L1 error", "seconds", "compile s"], rows))

        # Error against iterations: Sinkhorn sweeps, and SNS's 20 sweeps then Newton steps.
        def sweeps(fg, _):
            f, g, err = sweep(*fg, cost, a, a, eps)
            return (f, g), err

        zeros = (jnp.zeros(n), jnp.zeros(n))
        sk_err = np.asarray(jax.jit(lambda: jax.lax.scan(sweeps, zeros, None, length=cap))()[1])
        z = sns_module._point(*sns_module._warm_start(cost, a, a, eps, 20), cost, a, a, eps)
        step = jax.jit(lambda z: sns_module.newton_step(z, cost, a, a, eps, tol, 16, 10 * n,
                                                        1e-10)[0])  # fmt: skip
        sns_err = [float(z.error)]
        while sns_err[-1] > tol and len(sns_err) < 60:
            z = step(z)
            sns_err.append(float(z.error))
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        ax.semilogy(np.arange(1, cap + 1), sk_err, color="tab:orange", label="Sinkhorn")
        ax.semilogy(np.arange(20, 20 + len(sns_err)), sns_err, "o-", ms=3, color="tab:blue",
                    label="SNS: 20 Sinkhorn sweeps, then Newton")  # fmt: skip
        ax.axhline(tol, color="k", lw=0.8, ls=":")
        ax.set(xscale="log", xlabel="iteration", ylabel="L1 marginal error",
               title=f"random assignment, n = {n}, ε = 1/1200")  # fmt: skip
        ax.legend(fontsize=8)
        out = ctx.out / "optimal_transport.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        ctx.written.append(out)
