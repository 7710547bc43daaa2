"""Tour section ``hypergradient``: a lasso's alpha tuned by gradient descent through
:class:`~jaxopt_papers.proximal.ProximalGradient`."""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from jaxopt_papers.tour._common import Tour, format_table


def section(ctx: Tour) -> None:
    """Tune a lasso's alpha on diabetes by gradient descent through ProximalGradient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import optax
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Lasso

    from jaxopt_papers.proximal import ProximalGradient, prox_lasso

    with jax.enable_x64(True):  # finite differences need float64
        X, y = load_diabetes(return_X_y=True)
        perm = np.random.default_rng(0).permutation(len(y))
        tr, va = perm[:300], perm[300:]
        mu, sd, ym, ys = X[tr].mean(0), X[tr].std(0), y[tr].mean(), y[tr].std()
        Xtr, ytr = jnp.asarray((X[tr] - mu) / sd), jnp.asarray((y[tr] - ym) / ys)
        Xva, yva = jnp.asarray((X[va] - mu) / sd), jnp.asarray((y[va] - ym) / ys)
        mse = lambda w, X, y: 0.5 * jnp.mean((X @ w - y) ** 2)
        L = float(jnp.linalg.eigvalsh(Xtr.T @ Xtr / 300)[-1])
        solver = ProximalGradient(mse, prox_lasso, stepsize=1 / L, tol=1e-12, max_steps=5000)
        unrolled = dataclasses.replace(solver, implicit_diff=False, max_steps=1000)
        w0 = jnp.zeros(X.shape[1])
        val = lambda s: lambda a: mse(s.run(w0, a, Xtr, ytr).params, Xva, yva)
        alpha = 0.05
        sk = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100_000)
        sk.fit(np.asarray(Xtr), np.asarray(ytr))
        w = solver.run(w0, alpha, Xtr, ytr).params
        print(
            f"lasso on diabetes (300 train / {len(va)} validation, 10 features), alpha={alpha}: "
            f"max |w - sklearn| = {float(jnp.max(jnp.abs(w - sk.coef_))):.1e}"
        )
        h = 1e-6
        fd = (val(solver)(alpha + h) - val(solver)(alpha - h)) / (2 * h)
        rows = []
        for name, s in (("implicit (ours)", solver), ("unrolled, 1000 steps", unrolled)):
            g = jax.jit(jax.grad(val(s)))
            t0 = time.perf_counter()
            value = float(jax.block_until_ready(g(alpha)))
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(10):
                jax.block_until_ready(g(alpha))
            ms = (time.perf_counter() - t0) / 10 * 1e3
            rel = abs(value - float(fd)) / abs(float(fd))
            rows.append([name, f"{value:.8f}", f"{rel:.1e}", f"{ms:.2f}", f"{compile_s:.2f}"])
        rows.append(["central differences", f"{float(fd):.8f}", "—", "—", "—"])
        print(format_table(["d(validation loss)/d(alpha)", "value", "rel. err vs FD", "ms/call",
                      "compile s"], rows))  # fmt: skip

        grid = jnp.logspace(-3, -0.5, 60)
        grid_loss = jax.jit(jax.vmap(val(dataclasses.replace(solver, throw=False))))(grid)
        opt = optax.adam(0.1)
        loss_log = lambda la: val(solver)(jnp.exp(la))

        @jax.jit
        def step(la, st):
            v, g = jax.value_and_grad(loss_log)(la)
            upd, st = opt.update(g, st)
            return optax.apply_updates(la, upd), st, v

        la, st, path = jnp.log(0.3), opt.init(jnp.log(0.3)), []
        for _ in range(15 if ctx.quick else 60):
            path.append((float(jnp.exp(la)), None))
            la, st, v = step(la, st)
            path[-1] = (path[-1][0], float(v))
        best = int(jnp.argmin(grid_loss))
        print(
            f"gradient descent on log(alpha) from 0.3: alpha = {float(jnp.exp(la)):.4f} after "
            f"{len(path)} steps (validation loss {path[-1][1]:.5f}); grid minimum alpha = "
            f"{float(grid[best]):.4f} (validation loss {float(grid_loss[best]):.5f})"
        )
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        ax.plot(grid, grid_loss, "k-", lw=1.2, label="validation loss (vmapped grid)")
        a, v = zip(*path, strict=True)
        ax.plot(a, v, "o-", ms=3, color="tab:red", label="gradient descent on log(alpha)")
        ax.set(xscale="log", xlabel="alpha", ylabel="validation loss",
               title="lasso on diabetes: hypergradient descent")  # fmt: skip
        ax.legend(fontsize=8)
        out = ctx.out / "hypergradient.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        ctx.written.append(out)
