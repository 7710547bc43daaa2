"""Tour section ``krylov-recycling``: SKR's recycled solves of a Darcy sequence, and SOR's ω
learned online."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from jaxopt_papers.tour._common import Tour, format_table


def section(ctx: Tour) -> None:
    """SKR's recycled solves of a Darcy sequence against GMRES(40) and scipy, and SOR's ω learned
    online (Learning to Relax); ``krylov_recycling.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import scipy.sparse.linalg as spla

    from jaxopt_papers import linear

    with jax.enable_x64(True):  # tol = 1e-8 on the true residual
        (s, num), tol = ((32, 12) if ctx.quick else (52, 30)), 1e-8
        seq = linear.darcy(jax.random.PRNGKey(0), num, s=s)
        rows, counts = [], {}
        for name, kw in (("SKR: sorted GCRO-DR(40, 20) (ours)", {}),
                         ("GMRES(40) (ours)", {"method": "gmres", "sort": False})):  # fmt: skip
            run = lambda kw=kw: linear.solve_sequence(seq.operators, seq.rhs, seq.params,
                                                      tol=tol, **kw)  # fmt: skip
            t0 = time.perf_counter()
            jax.block_until_ready(run().x)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = jax.block_until_ready(run())
            secs = time.perf_counter() - t0
            counts[name] = np.asarray(res.num_matvecs)[np.asarray(res.order)]
            err = max(
                np.linalg.norm(np.asarray(res.x[i]) - spla.spsolve(seq.to_scipy(i).tocsc(),
                               np.asarray(seq.rhs[i]))) / np.linalg.norm(np.asarray(res.x[i]))
                for i in range(num)
            )  # fmt: skip
            rows.append([name, f"{float(res.num_matvecs.mean()):.0f}", f"{err:.0e}",
                         f"{secs:.2f}", f"{first - secs:.2f}"])  # fmt: skip
        count = [0]
        t0 = time.perf_counter()
        for i in range(num):
            A = seq.to_scipy(i)
            mv = lambda v, A=A: (count.__setitem__(0, count[0] + 1), A @ v)[1]
            op = spla.LinearOperator(A.shape, matvec=mv, dtype=A.dtype)
            spla.gmres(op, np.asarray(seq.rhs[i]), rtol=tol, atol=0.0, restart=40, maxiter=10_000)
        rows.append(["scipy gmres(40)", f"{count[0] / num:.0f}", "—",
                     f"{time.perf_counter() - t0:.2f}", "—"])  # fmt: skip
        print(f"Darcy flow −∇·(a∇u) = 1, a = exp(GRF): {num} systems of n = {(s - 2) ** 2}, "
              f"tol {tol:g} on the true residual")  # fmt: skip
        headers = ["solver", "products/system", "error vs spsolve", "seconds", "compile s"]
        print(format_table(headers, rows))

        # Learning to Relax: SOR's ω for the next system from past iteration counts.
        T = 60 if ctx.quick else 200
        A, c, B = linear.shifted_laplacian_stream(jax.random.PRNGKey(0), T)
        grid = jnp.linspace(1.0, 1.95, 20)
        row = jax.jit(lambda ct, b: jax.vmap(lambda w: linear.sor(A + ct * jnp.eye(100), b,
                                                                  w).num_steps)(grid))  # fmt: skip
        table = np.stack([np.asarray(row(c[t], B[t])) for t in range(T)]).astype(float)
        spent = {}
        for name, learner, ctx_on in (("Tsallis-INF", linear.TsallisINF(), False),
                                      ("ChebCB", linear.ChebCB(-0.15, 0.65), True)):  # fmt: skip
            costs = []
            for t in range(T):
                w = learner.propose(float(c[t])) if ctx_on else learner.propose()
                cost = table[t, int(np.argmin(np.abs(np.asarray(grid) - w)))]
                learner.update(cost)
                costs.append(cost)
            spent[name] = np.asarray(costs)
        best = int(np.argmin(table.mean(0)))
        print(f"\nSOR on {T} shifted 10×10 Laplacians (Learning to Relax), mean iterations per "
              f"instance: best fixed ω = {float(grid[best]):.2f} in hindsight "
              f"{table[:, best].mean():.0f}, instance-optimal {table.min(1).mean():.0f}, "
              + ", ".join(f"{k} {v.mean():.0f}" for k, v in spent.items()))  # fmt: skip

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
        for name, y in counts.items():
            ax1.plot(y, "o-", ms=3, label=name)
        ax1.set(yscale="log", xlabel="position in the solve order", ylabel="products with A",
                title=f"Darcy, n = {(s - 2) ** 2}, tol {tol:g}")  # fmt: skip
        ax1.legend(fontsize=8)
        ref = np.cumsum(table[:, best])
        for name, y in spent.items():
            ax2.plot(np.arange(1, T + 1), np.cumsum(y) / ref, label=name)
        ax2.plot(np.arange(1, T + 1), np.cumsum(table.min(1)) / ref, label="instance-optimal ω")
        ax2.axhline(1.0, color="k", lw=0.5)
        ax2.set(xscale="log", xlabel="instances seen", title="Learning to Relax (SOR, n = 100)",
                ylabel="cumulative iterations ÷ best fixed ω's")  # fmt: skip
        ax2.legend(fontsize=8)
        out = ctx.out / "krylov_recycling.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        ctx.written.append(out)
