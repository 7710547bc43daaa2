"""Tour section ``bilevel``: data hyper-cleaning on digits by the bilevel solvers.

Half of the training labels of scikit-learn's digits are replaced by wrong classes; each
bilevel algorithm learns per-sample weights whose classifier does well on a clean validation
set. The table compares their test accuracy, time and oracle calls with training on all labels
and on the clean subset only; ``bilevel.png`` shows the validation loss along each run.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from jaxopt_papers.tour._common import Tour, format_table


def _solvers(problem, quick: bool) -> dict:
    import optax

    from jaxopt_papers import bilevel

    steps = 30 if quick else 100
    return {
        "ImplicitBilevel (AID, ours)": bilevel.ImplicitBilevel(
            problem, outer=optax.adam(0.1), inner_tol=1e-5, inner_steps=200, backward="cg",
            max_steps=steps,
        ),
        "PenaltyBilevel (first order)": bilevel.PenaltyBilevel(
            problem, alpha=30.0, beta=1.0, max_steps=10 * steps
        ),
        "BOREP (normalised momentum)": bilevel.BOREP(problem, outer_lr=0.5, max_steps=10 * steps),
    }  # fmt: skip


def section(ctx: Tour) -> None:
    """Hyper-clean digits with 50% corrupted labels by each bilevel algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from jaxopt_papers import bilevel
    from jaxopt_papers.smooth import LBFGS

    rp = bilevel.problems.hyper_cleaning(0.5)
    problem, ex = rp.problem, rp.extras
    inner = LBFGS(lambda W, x, data: problem.lower_fn(x, W, data), tol=1e-5, max_steps=500)
    train = jax.jit(lambda x: inner.run(rp.y0, x, rp.lower_data).value)

    def accuracy(x: jax.Array) -> float:
        return float(bilevel.problems.accuracy(train(x), ex["X_test"], ex["labels_test"]))

    print("digits, 600 training labels of which 50% corrupted, 300 clean validation, 897 test")
    rows = [
        ["train on all labels", f"{accuracy(jnp.full_like(rp.x0, 30.0)):.3f}", "—", "—", "—"],
        ["train on the clean subset (oracle)",
         f"{accuracy(jnp.where(ex['corrupted'], -30.0, 30.0)):.3f}", "—", "—", "—"],
    ]  # fmt: skip
    corrupted = np.asarray(ex["corrupted"])
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for name, solver in _solvers(problem, ctx.quick).items():
        run = jax.jit(lambda *a, solver=solver: solver.run(*a, key=jax.random.key(0)))
        args = (rp.x0, rp.y0, rp.upper_data, rp.lower_data)
        jax.block_until_ready(run(*args))
        start = time.perf_counter()
        sol = jax.block_until_ready(run(*args))
        seconds = time.perf_counter() - start
        w = np.asarray(jax.nn.sigmoid(sol.x))
        flagged = w < 0.5
        rows.append([name, f"{accuracy(sol.x):.3f}", f"{seconds:.2f}",
                     f"{int(sol.stats['num_grads'])} / {int(sol.stats['num_hvps'])}",
                     f"{corrupted[flagged].mean():.0%}" if flagged.any() else "—"])  # fmt: skip
        ax.plot(np.asarray(sol.stats["upper_values"]), label=name)
    print(format_table(["method", "test accuracy", "seconds", "gradients / HVPs",
                        "corrupted among down-weighted"], rows))  # fmt: skip
    ax.set(xlabel="outer step", ylabel="validation loss (upper objective)",
           title="data hyper-cleaning on digits (50% corrupted)")  # fmt: skip
    ax.legend(fontsize=8)
    out = ctx.out / "bilevel.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    ctx.written.append(out)
