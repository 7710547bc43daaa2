"""The tour: ``python -m jaxopt_papers`` (or the console script ``jaxopt-papers-tour``).

Runs on small bundled or generated data in about a minute on 2 CPU cores, prints tables and
writes plots to ``tour_output/`` (``--out DIR``). It is a list of sections, :data:`SECTIONS`;
each later area of the library adds its own function ``section(ctx: Tour) -> None`` there.

Sections so far:

- ``first-order``: trains the digits MLP (:func:`jaxopt_papers.workloads.digits_mlp`) with our
  first-order optimizers and optax's, one jitted ``lax.scan`` per optimizer, and reports final
  training loss, test accuracy, steps to the 97% target, steps/s and compile time apart; writes
  ``first_order.png``.
- ``hypergradient``: a lasso on scikit-learn's diabetes data solved by
  :class:`~jaxopt_papers.proximal.ProximalGradient` (checked against scikit-learn); the
  hypergradient of the validation loss by implicit differentiation, by unrolling and by central
  differences; then alpha tuned by gradient descent on log(alpha) next to a vmapped grid;
  writes ``hypergradient.png``.
- ``optimal-transport``: the SNS paper's random linear assignment problem (ε = 1/1200) solved by
  Sinkhorn–Newton–Sparse and by log-domain Sinkhorn to the same L1 marginal error; iterations,
  time and compile time apart; writes ``optimal_transport.png`` (error against iterations).
- ``krylov-recycling``: a Darcy-flow sequence solved by SKR (sorted, recycled GCRO-DR), our
  GMRES(40) and scipy's, checked against ``spsolve``; then SOR's ω chosen online by Tsallis-INF and
  ChebCB on the Learning to Relax stream; writes ``krylov_recycling.png``.

Needs the ``tour`` extra (scikit-learn, matplotlib, tqdm): ``pip install "jaxopt-papers[tour]"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time
from collections.abc import Callable, Sequence

import jax


@dataclasses.dataclass
class Tour:
    """What every section receives: where to write and how big to run."""

    out: pathlib.Path
    quick: bool = False
    steps: int | None = None
    written: list[pathlib.Path] = dataclasses.field(default_factory=list)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                               enumerate(zip(r, widths, strict=True)))  # fmt: skip
    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


# ----------------------------------------------------------------------------- first order

TOUR_QUICK = ["adamp", "lion", "lion_k(tanh)", "optax.adam"]


def first_order(ctx: Tour) -> None:
    """Digits MLP trained by our optimizers and optax's; table + ``first_order.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from jaxopt_papers import workloads as W

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
    print(_table(headers, rows))

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


# --------------------------------------------------------------------------- hypergradient


def hypergradient(ctx: Tour) -> None:
    """Tune a lasso's alpha on diabetes by gradient descent through ProximalGradient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import optax
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Lasso

    from jaxopt_papers.proximal import ProximalGradient, prox_lasso

    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # finite differences need float64
    try:
        import jax.numpy as jnp

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
        print(_table(["d(validation loss)/d(alpha)", "value", "rel. err vs FD", "ms/call",
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
    finally:
        jax.config.update("jax_enable_x64", x64)


# ---------------------------------------------------------------------- optimal transport


def optimal_transport(ctx: Tour) -> None:
    """SNS against Sinkhorn on the paper's random assignment problem; ``optimal_transport.png``."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from jaxopt_papers.ot import sinkhorn, sinkhorn_newton_sparse
    from jaxopt_papers.ot.sinkhorn import sweep

    sns_module = importlib.import_module("jaxopt_papers.ot.sinkhorn_newton_sparse")
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # η = 1200 needs float64 (the paper's regime)
    try:
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
        print(_table(["solver", "iterations", "L1 error", "seconds", "compile s"], rows))

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
    finally:
        jax.config.update("jax_enable_x64", x64)


# -------------------------------------------------------------------------- krylov recycling


def krylov_recycling(ctx: Tour) -> None:
    """SKR's recycled solves of a Darcy sequence against GMRES(40) and scipy, and SOR's ω learned
    online (Learning to Relax); ``krylov_recycling.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import scipy.sparse.linalg as spla

    from jaxopt_papers import linear

    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # tol = 1e-8 on the true residual
    try:
        import jax.numpy as jnp

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
        print(_table(["solver", "products/system", "error vs spsolve", "seconds", "compile s"],
                     rows))  # fmt: skip

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
    finally:
        jax.config.update("jax_enable_x64", x64)


# ----------------------------------------------------------------------------------- main

SECTIONS: list[tuple[str, Callable[[Tour], None]]] = [
    ("first-order", first_order),
    ("hypergradient", hypergradient),
    ("optimal-transport", optimal_transport),
    ("krylov-recycling", krylov_recycling),
]
"""The tour's sections in order: ``(name, function)``; later areas append theirs."""


def _check_extras() -> None:
    missing = []
    for mod in ("sklearn", "matplotlib", "tqdm"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        sys.exit(
            f"The tour needs {', '.join(missing)}, from the tour extra: "
            'pip install "jaxopt-papers[tour]"'
        )


def main(argv: Sequence[str] | None = None) -> int:
    names = [name for name, _ in SECTIONS]
    ap = argparse.ArgumentParser(
        prog="python -m jaxopt_papers", description="A tour of jaxopt_papers on small data."
    )
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("tour_output"),
                    help="directory for the plots (default: ./tour_output)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="a few optimizers, few steps (tests)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per run")
    ap.add_argument("--sections", nargs="*", choices=names, default=names, metavar="SECTION",
                    help=f"sections to run (default: all of {', '.join(names)})")  # fmt: skip
    args = ap.parse_args(argv)
    _check_extras()
    if args.steps is not None and (args.steps <= 0 or args.steps % 10):
        ap.error("--steps must be a positive multiple of 10")

    import jaxopt_papers

    ctx = Tour(out=args.out, quick=args.quick, steps=args.steps)
    ctx.out.mkdir(parents=True, exist_ok=True)
    dev = jax.devices()[0]
    print(
        f"jaxopt_papers {jaxopt_papers.__version__} tour — jax {jax.__version__} on "
        f"{jax.default_backend()} ({getattr(dev, 'device_kind', dev)})"
    )
    start = time.perf_counter()
    for name, section in SECTIONS:
        if name in args.sections:
            print(f"\n== {name} ==")
            section(ctx)
    print(f"\nwrote {', '.join(str(p) for p in ctx.written)}")
    print(f"tour done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
