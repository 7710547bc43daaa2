"""Tour section ``optimal-transport``: Sinkhorn–Newton–Sparse against log-domain Sinkhorn on
the SNS paper's random assignment problem."""

from __future__ import annotations

import time

import jax

from jaxopt_papers.tour._common import Tour, format_table


def section(ctx: Tour) -> None:
    """SNS against Sinkhorn on the paper's random assignment problem; ``optimal_transport.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from jaxopt_papers.ot import (
        OTProblem,
        Sinkhorn,
        SinkhornNewtonSparse,
        sinkhorn,
        sinkhorn_newton_sparse,
    )

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

        # Error against iterations, by the solvers' public init/step: Sinkhorn sweeps, and SNS
        # with the paper's schedule (its first step is the 20-sweep warm start, then Newton).
        problem = OTProblem(cost, a, a, eps)
        sk = Sinkhorn(tol=tol)

        def sweeps(carry, _):
            params, state = sk.step(*carry, problem)
            return (params, state), state.error

        carry = (None, sk.init(None, problem))
        carry = sk.step(*carry, problem)
        sk_err = jax.jit(lambda c: jax.lax.scan(sweeps, c, None, length=cap - 1)[1])(carry)
        sk_err = np.concatenate([[float(carry[1].error)], np.asarray(sk_err)])
        sns = SinkhornNewtonSparse(tol=tol, schedule="paper")
        step = jax.jit(lambda p, s: sns.step(p, s, problem))
        params, state = None, sns.init(None, problem)
        sns_steps, sns_err = [], []
        while not bool(sns.done(state)) and len(sns_err) < 60:
            params, state = step(params, state)
            sns_steps.append(int(state.num_steps))
            sns_err.append(float(state.error))
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        ax.semilogy(np.arange(1, cap + 1), sk_err, color="tab:orange", label="Sinkhorn")
        ax.semilogy(sns_steps, sns_err, "o-", ms=3, color="tab:blue",
                    label="SNS: 20 Sinkhorn sweeps, then Newton")  # fmt: skip
        ax.axhline(tol, color="k", lw=0.8, ls=":")
        ax.set(xscale="log", xlabel="iteration", ylabel="L1 marginal error",
               title=f"random assignment, n = {n}, ε = 1/1200")  # fmt: skip
        ax.legend(fontsize=8)
        out = ctx.out / "optimal_transport.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        ctx.written.append(out)
