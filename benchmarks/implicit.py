"""Benchmark of implicit differentiation: hypergradients against jaxopt, unrolling and sklearn.

The **hypergradient** ``d L_val(w*(λ)) / dλ`` of a validation loss with respect to a
regularisation strength, in float64, on three problems with a fixed train/validation split:

1. **lasso** on scikit-learn's ``load_diabetes`` (X and y standardised with training statistics),
   ``min_w ½ mean((Xw − y)²) + α‖w‖₁``; ours ``ProximalGradient(fun, prox_lasso, stepsize=1/L)``
   against ``jaxopt.ProximalGradient(fun, jaxopt.prox.prox_lasso, stepsize=1/L)`` with the same
   ``tol``/``maxiter`` and its default implicit differentiation; validation MSE.
2. **logistic** regression on ``load_breast_cancer`` (standardised), ``min_w mean logistic loss
   + (λ/2)‖w‖²`` with the ridge term as the prox (``prox_ridge``, ``x/(1 + sλ)`` on both sides);
   validation mean logistic loss.
3. **ridge** with many features (generated: Gaussian X, sparse true w, noise), solved in closed
   form through the kernel system ``w = Xᵀ(XXᵀ + nλI)⁻¹y`` and made differentiable by decorating
   that solver with our ``custom_root(gradient_optimality(objective))`` or with
   ``jaxopt.implicit_diff.custom_root(jax.grad(objective))`` (default ``solve_normal_cg``, and
   ``solve_cg``); plus plain autodiff through the direct solve.

For each problem: the error of every hypergradient against a 5-point central finite difference
and against the exact IFT formula ``−∇L_valᵀ H⁻¹ ∂_λ∇f`` evaluated densely at a
machine-precision solution (lasso: on the support; logistic: Newton; ridge: closed form); the
time of the jitted ``value_and_grad`` of the validation loss (forward solve included), all
methods interleaved repeat by repeat, median/min and the paired ratio against jaxopt; compile
time apart; and the forward-solve time of ours, jaxopt and scikit-learn (``fit`` timed in Python)
with the largest coefficient difference to scikit-learn as a sanity check. "unrolled" is our
solver with ``implicit_diff=False`` (a ``lax.scan`` of ``max_steps`` iterations, frozen after
convergence, differentiated by autodiff).

Writes ``<out>/implicit.json`` and ``<out>/implicit.png`` and prints a markdown table, which also
goes into ``benchmarks/README.md`` (and into the top-level ``README.md`` if it has the
``implicit`` markers) when writing to the default ``benchmarks/results``.

    python benchmarks/implicit.py            # full size (about a minute on 2 CPU cores)
    python benchmarks/implicit.py --quick    # CI size (about 20 s)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]  # the harness; the package from a plain checkout

import _harness as H  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jaxopt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import datasets, linear_model  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from jaxopt_papers.implicit import custom_root, gradient_optimality  # noqa: E402
from jaxopt_papers.proximal import prox_lasso, prox_ridge  # noqa: E402
from jaxopt_papers.proximal.proximal_gradient import ProximalGradient  # noqa: E402

# ------------------------------------------------------------------------------- problems


@dataclasses.dataclass
class Method:
    """One way of computing ``w*(λ)``: ``solve(lam, X, y) -> (w, num_steps)`` (jittable)."""

    name: str
    solve: Callable[..., tuple[jax.Array, jax.Array]]
    note: str


@dataclasses.dataclass
class Problem:
    name: str
    description: str
    hyper: str  # the hyperparameter's name
    lam: float
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    val_loss: Callable  # (w, X, y) -> scalar, jnp
    methods: list[Method]
    ours: str  # the name of our implicit method
    anchor: str  # the name of jaxopt's default implicit method (ratio reference)
    sklearn: tuple[str, Callable[[], np.ndarray]]  # (label, fit -> coef)
    exact_solve: Callable[[float], np.ndarray]  # machine-precision w*(λ), numpy
    exact_hypergrad: Callable[[np.ndarray], float]  # IFT formula, dense, at an exact w*
    settings: dict[str, Any]


def _split(n: int, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    k = round(frac * n)
    return np.sort(perm[:k]), np.sort(perm[k:])


def _standardise(X: np.ndarray, tr: np.ndarray) -> np.ndarray:
    mu, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
    return (X - mu) / sd


def _mse(w: jax.Array, X: jax.Array, y: jax.Array) -> jax.Array:
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def _logistic(w: jax.Array, X: jax.Array, y: jax.Array) -> jax.Array:
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def _prox_methods(
    fun: Callable, ours_prox: Callable, jaxopt_prox: Callable, stepsize: float, tol: float,
    max_steps: int, p: int,
) -> list[Method]:  # fmt: skip
    """Ours (implicit), jaxopt (implicit, its defaults) and ours unrolled; same settings."""
    w0 = jnp.zeros(p)
    kw = dict(stepsize=stepsize, tol=tol, max_steps=max_steps)
    ours = ProximalGradient(fun, ours_prox, **kw)
    unrolled = ProximalGradient(fun, ours_prox, implicit_diff=False, **kw)
    theirs = jaxopt.ProximalGradient(
        fun=fun, prox=jaxopt_prox, stepsize=stepsize, tol=tol, maxiter=max_steps
    )
    # The defaults: backtracking line search (ours round-off safe; jaxopt's stalls near 1e-9).
    ours_bt = ProximalGradient(fun, ours_prox, tol=tol, max_steps=max_steps, throw=False)
    theirs_bt = jaxopt.ProximalGradient(fun=fun, prox=jaxopt_prox, tol=tol, maxiter=max_steps)

    def run_ours(solver: ProximalGradient, lam, X, y):
        sol = solver.run(w0, lam, X, y)
        return sol.params, sol.stats["num_steps"]

    def run_jaxopt(solver, lam, X, y):
        sol = solver.run(w0, lam, X, y)
        return sol.params, sol.state.iter_num

    return [
        Method("ours", functools.partial(run_ours, ours),
               "ProximalGradient, implicit diff (default LinearSolve: dense LU)"),
        Method("jaxopt", functools.partial(run_jaxopt, theirs),
               "jaxopt.ProximalGradient, implicit diff (default solve_normal_cg, tol 1e-5)"),
        Method("ours unrolled", functools.partial(run_ours, unrolled),
               f"ProximalGradient(implicit_diff=False): autodiff through {max_steps} steps"),
        Method("ours, backtracking", functools.partial(run_ours, ours_bt),
               "ProximalGradient(stepsize=None): round-off-safe FISTA backtracking"),
        Method("jaxopt, backtracking", functools.partial(run_jaxopt, theirs_bt),
               "jaxopt.ProximalGradient(stepsize=0): its FISTA backtracking"),
    ]  # fmt: skip


def lasso_problem(alpha: float = 0.03, tol: float = 1e-12, max_steps: int = 500) -> Problem:
    X, y = datasets.load_diabetes(return_X_y=True)
    tr, va = _split(len(y), 2 / 3, seed=0)
    X = _standardise(X, tr)
    y = (y - y[tr].mean()) / y[tr].std()
    Xtr, ytr, Xva, yva = X[tr], y[tr], X[va], y[va]
    n, p = Xtr.shape
    G = Xtr.T @ Xtr / n
    c = Xtr.T @ ytr / n
    lipschitz = float(np.linalg.eigvalsh(G)[-1])

    def sk_fit(a: float = alpha) -> np.ndarray:
        m = linear_model.Lasso(alpha=a, fit_intercept=False, tol=1e-15, max_iter=1_000_000)
        return m.fit(Xtr, ytr).coef_

    def support(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.abs(w) > 1e-8 * max(1.0, np.abs(w).max())
        return s, np.sign(w[s])

    def exact_solve(a: float) -> np.ndarray:
        """Polish sklearn's answer: solve the KKT system on its support, then check the KKT."""
        s, sg = support(sk_fit(a))
        w = np.zeros(p)
        w[s] = np.linalg.solve(G[np.ix_(s, s)], c[s] - a * sg)
        corr = c - G @ w
        if not (np.all(np.sign(w[s]) == sg) and np.all(np.abs(corr[~s]) < a * (1 - 1e-9))):
            raise RuntimeError(f"lasso: support not stable at alpha={a}")
        return w

    def exact_hypergrad(w: np.ndarray) -> float:
        s, sg = support(w)
        dw = np.zeros(p)
        dw[s] = -np.linalg.solve(G[np.ix_(s, s)], sg)  # on the support: G_SS dw_S = −sign
        return float((Xva.T @ (Xva @ w - yva) / len(yva)) @ dw)

    return Problem(
        name="lasso",
        description=f"lasso, diabetes ({n} train / {len(yva)} val, {p} features), "
        f"α = {alpha}, val MSE",
        hyper="α",
        lam=alpha,
        train=(Xtr, ytr),
        val=(Xva, yva),
        val_loss=_mse,
        methods=_prox_methods(
            _mse, prox_lasso, jaxopt.prox.prox_lasso, 1 / lipschitz, tol, max_steps, p
        ),
        ours="ours",
        anchor="jaxopt",
        sklearn=("sklearn Lasso (cd, tol 1e-15)", sk_fit),
        exact_solve=exact_solve,
        exact_hypergrad=exact_hypergrad,
        settings={
            "stepsize": 1 / lipschitz,
            "tol": tol,
            "max_steps": max_steps,
            "n_train": n,
            "n_val": len(yva),
            "p": p,
        },
    )


def logistic_problem(lam: float = 1e-2, tol: float = 1e-10, max_steps: int = 8000) -> Problem:
    X, y = datasets.load_breast_cancer(return_X_y=True)
    y = y.astype(np.float64)
    tr, va = _split(len(y), 2 / 3, seed=0)
    X = _standardise(X, tr)
    Xtr, ytr, Xva, yva = X[tr], y[tr], X[va], y[va]
    n, p = Xtr.shape
    lipschitz = float(np.linalg.eigvalsh(Xtr.T @ Xtr)[-1]) / (4 * n)  # of the smooth part

    def sk_fit(lam_: float = lam) -> np.ndarray:
        m = linear_model.LogisticRegression(
            C=1 / (n * lam_), fit_intercept=False, solver="lbfgs", tol=1e-12, max_iter=100_000
        )
        return m.fit(Xtr, ytr).coef_.ravel()

    def newton(lam_: float) -> tuple[np.ndarray, np.ndarray]:
        """Damped Newton to machine precision; returns w* and the Hessian there."""

        def obj(w):
            z = Xtr @ w
            return np.mean(np.logaddexp(0, z) - ytr * z) + 0.5 * lam_ * w @ w

        w = np.zeros(p)
        for _ in range(100):
            sig = 1 / (1 + np.exp(-(Xtr @ w)))
            g = Xtr.T @ (sig - ytr) / n + lam_ * w
            hess = (Xtr.T * (sig * (1 - sig))) @ Xtr / n + lam_ * np.eye(p)
            d = np.linalg.solve(hess, g)
            t = 1.0
            while obj(w - t * d) > obj(w) + 1e-14 and t > 1e-8:
                t *= 0.5
            w = w - t * d
            if np.linalg.norm(d) <= 1e-15 * max(1.0, np.linalg.norm(w)):
                break
        sig = 1 / (1 + np.exp(-(Xtr @ w)))
        hess = (Xtr.T * (sig * (1 - sig))) @ Xtr / n + lam_ * np.eye(p)
        return w, hess

    def exact_hypergrad(w: np.ndarray) -> float:
        _, hess = newton(lam)
        sig = 1 / (1 + np.exp(-(Xva @ w)))
        gval = Xva.T @ (sig - yva) / len(yva)
        return float(gval @ -np.linalg.solve(hess, w))  # ∂_λ∇f = w

    return Problem(
        name="logistic",
        description=f"L2 logistic regression, breast cancer ({n} train / {len(yva)} val, {p} "
        f"features), λ = {lam}, val log-loss",
        hyper="λ",
        lam=lam,
        train=(Xtr, ytr),
        val=(Xva, yva),
        val_loss=_logistic,
        methods=_prox_methods(
            _logistic, prox_ridge, jaxopt.prox.prox_ridge, 1 / lipschitz, tol, max_steps, p
        ),
        ours="ours",
        anchor="jaxopt",
        sklearn=("sklearn LogisticRegression (lbfgs, tol 1e-12)", sk_fit),
        exact_solve=lambda lam_: newton(lam_)[0],
        exact_hypergrad=exact_hypergrad,
        settings={
            "stepsize": 1 / lipschitz,
            "tol": tol,
            "max_steps": max_steps,
            "n_train": n,
            "n_val": len(yva),
            "p": p,
        },
    )


def _ridge_objective(w, lam, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2) + 0.5 * lam * jnp.sum(w**2)


def _ridge_kernel_solve(init, lam, X, y):
    """``w = Xᵀ(XXᵀ + nλI)⁻¹y``: the minimiser of ``_ridge_objective``, in O(n²p)."""
    del init
    n = X.shape[0]
    K = X @ X.T + n * lam * jnp.eye(n, dtype=X.dtype)
    return X.T @ jax.scipy.linalg.solve(K, y, assume_a="pos")


def ridge_problem(p: int = 2000, lam: float = 1.0, n_train: int = 200, n_val: int = 200) -> Problem:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_train + n_val, p))
    w_true = np.zeros(p)
    w_true[rng.choice(p, 20, replace=False)] = rng.standard_normal(20)
    y = X @ w_true + 0.5 * rng.standard_normal(n_train + n_val)
    Xtr, ytr, Xva, yva = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    init = jnp.zeros(p)

    ours = custom_root(gradient_optimality(_ridge_objective))(_ridge_kernel_solve)
    normal_cg = jaxopt.implicit_diff.custom_root(jax.grad(_ridge_objective))(_ridge_kernel_solve)
    cg = jaxopt.implicit_diff.custom_root(
        jax.grad(_ridge_objective), solve=jaxopt.linear_solve.solve_cg
    )(_ridge_kernel_solve)
    cg_tight = jaxopt.implicit_diff.custom_root(
        jax.grad(_ridge_objective),
        solve=functools.partial(jaxopt.linear_solve.solve_cg, tol=1e-10),
    )(_ridge_kernel_solve)
    minus1 = jnp.asarray(-1, jnp.int32)

    def wrap(solver):
        return lambda lam_, X_, y_: (solver(init, lam_, X_, y_), minus1)

    def sk_fit(lam_: float = lam) -> np.ndarray:
        m = linear_model.Ridge(alpha=n_train * lam_, fit_intercept=False, solver="cholesky")
        return m.fit(Xtr, ytr).coef_

    def exact_solve(lam_: float) -> np.ndarray:
        return Xtr.T @ np.linalg.solve(Xtr @ Xtr.T + n_train * lam_ * np.eye(n_train), ytr)

    def exact_hypergrad(w: np.ndarray) -> float:
        hess = Xtr.T @ Xtr / n_train + lam * np.eye(p)
        gval = Xva.T @ (Xva @ w - yva) / n_val
        return float(gval @ -np.linalg.solve(hess, w))  # dw/dλ = −(XᵀX/n + λI)⁻¹ w

    methods = [
        Method("ours", wrap(ours),
               "custom_root(gradient_optimality(f)): default LinearSolve (CG, rtol 1e-10)"),
        Method("jaxopt", wrap(normal_cg),
               "jaxopt custom_root(jax.grad(f)): default solve_normal_cg (tol 1e-5)"),
        Method("jaxopt solve_cg", wrap(cg), "jaxopt custom_root(..., solve=solve_cg) (tol 1e-5)"),
        Method("jaxopt solve_cg 1e-10", wrap(cg_tight),
               "jaxopt custom_root(..., solve=partial(solve_cg, tol=1e-10))"),
        Method("autodiff direct solve", lambda lam_, X_, y_: (_ridge_kernel_solve(None, lam_, X_,
               y_), minus1), "no custom_root: autodiff through the Cholesky kernel solve"),
    ]  # fmt: skip
    return Problem(
        name="ridge",
        description=f"ridge, generated ({n_train} train / {n_val} val, {p} features, 20 "
        f"non-zero), λ = {lam}, val MSE; kernel-form direct solve",
        hyper="λ",
        lam=lam,
        train=(Xtr, ytr),
        val=(Xva, yva),
        val_loss=_mse,
        methods=methods,
        ours="ours",
        anchor="jaxopt",
        sklearn=("sklearn Ridge (cholesky)", sk_fit),
        exact_solve=exact_solve,
        exact_hypergrad=exact_hypergrad,
        settings={"n_train": n_train, "n_val": n_val, "p": p},
    )


# ------------------------------------------------------------------------------ measuring


def finite_difference(prob: Problem, rel_h: float) -> float:
    """5-point central difference (4th order) of ``λ ↦ L_val(w*(λ))`` on the exact solutions."""
    Xva, yva = prob.val

    def L(lam: float) -> float:
        w = prob.exact_solve(lam)
        return float(prob.val_loss(jnp.asarray(w), jnp.asarray(Xva), jnp.asarray(yva)))

    h = rel_h * prob.lam
    lam = prob.lam
    return (8 * (L(lam + h) - L(lam - h)) - (L(lam + 2 * h) - L(lam - 2 * h))) / (12 * h)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def bench_problem(prob: Problem, repeats: int) -> dict[str, Any]:
    lam = jnp.asarray(prob.lam, jnp.float64)
    Xtr, ytr = (jnp.asarray(a) for a in prob.train)
    Xva, yva = (jnp.asarray(a) for a in prob.val)
    data = (lam, Xtr, ytr, Xva, yva)

    # references: exact IFT formula and finite differences (two steps: their spread is the FD's
    # own error estimate)
    w_exact = prob.exact_solve(prob.lam)
    exact = prob.exact_hypergrad(w_exact)
    fd = finite_difference(prob, 1e-3)
    fd_check = finite_difference(prob, 1e-4)
    print(f"  exact {exact:.15g}   FD {fd:.15g}  (FD spread {_rel(fd_check, fd):.1e})", flush=True)

    hyper_fns, fwd_fns = {}, {}
    for m in prob.methods:

        def hyper(lam_, Xtr_, ytr_, Xva_, yva_, m=m):
            return prob.val_loss(m.solve(lam_, Xtr_, ytr_)[0], Xva_, yva_)

        hyper_fns[m.name] = H.jit_compiled(jax.value_and_grad(hyper), *data)
        fwd_fns[m.name] = H.jit_compiled(m.solve, lam, Xtr, ytr)

    rows: dict[str, dict[str, Any]] = {}
    for m in prob.methods:
        (value, grad), _ = H.timed(lambda m=m: hyper_fns[m.name][0](*data))
        w, steps = jax.device_get(fwd_fns[m.name][0](lam, Xtr, ytr))
        rows[m.name] = {
            "note": m.note,
            "value": float(value),
            "hypergrad": float(grad),
            "rel_err_fd": _rel(float(grad), fd),
            "rel_err_exact": _rel(float(grad), exact),
            "num_steps": int(steps),
            "max_abs_w_minus_exact": float(np.abs(np.asarray(w) - w_exact).max()),
            "hyper_compile_s": hyper_fns[m.name][1],
            "forward_compile_s": fwd_fns[m.name][1],
        }
    for r in rows.values():
        r["rel_diff_vs_ours"] = _rel(r["hypergrad"], rows[prob.ours]["hypergrad"])

    # hypergradient timing, every method interleaved
    t = H.interleaved(
        {m.name: (lambda c=hyper_fns[m.name][0]: c(*data)) for m in prob.methods},
        repeats=repeats,
        warmup=2,
    )
    for name, r in rows.items():
        s = H.summary(t[name])
        r["hyper_median_ms"], r["hyper_min_ms"] = 1e3 * s["median_s"], 1e3 * s["min_s"]
        ratio = H.paired_ratio(t[name], t[prob.anchor])
        r["hyper_ratio_vs_jaxopt"], r["hyper_ratio_min_vs_jaxopt"] = (
            ratio["ratio_median"], ratio["ratio_min"],
        )  # fmt: skip
        r["ours_over_this"] = H.paired_ratio(t[prob.ours], t[name])["ratio_median"]
        r["hyper_times_ms"] = [round(1e3 * x, 4) for x in t[name]]

    # forward timing: every method's jitted solve and scikit-learn's fit, interleaved
    sk_label, sk_fit = prob.sklearn
    cases = {m.name: (lambda c=fwd_fns[m.name][0]: c(lam, Xtr, ytr)) for m in prob.methods}
    cases["sklearn"] = sk_fit
    tf = H.interleaved(cases, repeats=repeats, warmup=2)
    w_sk = sk_fit()
    for m in prob.methods:
        r = rows[m.name]
        s = H.summary(tf[m.name])
        r["forward_median_ms"], r["forward_min_ms"] = 1e3 * s["median_s"], 1e3 * s["min_s"]
        r["forward_times_ms"] = [round(1e3 * x, 4) for x in tf[m.name]]
        w = np.asarray(fwd_fns[m.name][0](lam, Xtr, ytr)[0])
        r["max_abs_w_minus_sklearn"] = float(np.abs(w - w_sk).max())
    s = H.summary(tf["sklearn"])
    sk_row = {
        "label": sk_label,
        "forward_median_ms": 1e3 * s["median_s"],
        "forward_min_ms": 1e3 * s["min_s"],
        "max_abs_w_minus_exact": float(np.abs(w_sk - w_exact).max()),
    }
    for name, r in rows.items():
        print(
            f"  {name:22s} hypergrad {r['hyper_median_ms']:8.3f} ms "
            f"({r['hyper_ratio_vs_jaxopt']:.3f}x jaxopt)  err vs FD {r['rel_err_fd']:.1e}  "
            f"forward {r['forward_median_ms']:8.3f} ms",
            flush=True,
        )
    print(f"  {'sklearn':22s} forward {sk_row['forward_median_ms']:.3f} ms", flush=True)
    return {
        "description": prob.description,
        "hyperparameter": prob.hyper,
        "value": prob.lam,
        "settings": prob.settings,
        "repeats": repeats,
        "exact_hypergrad": exact,
        "fd_hypergrad": fd,
        "fd_rel_h": 1e-3,
        "fd_rel_spread_vs_h_1e-4": _rel(fd_check, fd),
        "nnz_exact": int(np.sum(w_exact != 0)),
        "ours": prob.ours,
        "anchor": prob.anchor,
        "methods": rows,
        "sklearn": sk_row,
    }


# ------------------------------------------------------------------------------- reporting


def table(results: dict[str, Any]) -> str:
    headers = ["problem", "method", "hypergrad ms (med/min)", "ratio vs jaxopt",
               "rel. err vs FD", "rel. err vs exact", "rel. diff vs ours", "forward ms (med)",
               "forward steps", "max abs(w − w_sklearn)", "compile s (hypergrad)"]  # fmt: skip
    rows = []
    for pname, d in results.items():
        for name, r in d["methods"].items():
            rows.append([
                pname, name,
                f"{r['hyper_median_ms']:.3f} / {r['hyper_min_ms']:.3f}",
                f"{r['hyper_ratio_vs_jaxopt']:.3f}",
                H.fmt(r["rel_err_fd"], ".1e"), H.fmt(r["rel_err_exact"], ".1e"),
                "—" if name == d["ours"] else H.fmt(r["rel_diff_vs_ours"], ".1e"),
                f"{r['forward_median_ms']:.3f}",
                "—" if r["num_steps"] < 0 else str(r["num_steps"]),
                H.fmt(r["max_abs_w_minus_sklearn"], ".1e"),
                f"{r['hyper_compile_s']:.2f}",
            ])  # fmt: skip
        sk = d["sklearn"]
        rows.append([pname, sk["label"], "—", "—", "—", "—", "—",
                     f"{sk['forward_median_ms']:.3f}", "—",
                     f"(vs exact: {sk['max_abs_w_minus_exact']:.1e})", "—"])  # fmt: skip
    return H.markdown_table(headers, rows)


def problem_lines(results: dict[str, Any]) -> str:
    lines = []
    for pname, d in results.items():
        s = d["settings"]
        extra = (
            f"; stepsize 1/L = {s['stepsize']:.4g}, tol {s['tol']:g}, max_steps {s['max_steps']}"
            if "tol" in s
            else ""
        )
        lines.append(
            f"- **{pname}**: {d['description']}; {d['nnz_exact']} non-zero coefficients{extra}; "
            f"exact hypergradient {d['exact_hypergrad']:.10g}, FD {d['fd_hypergrad']:.10g} "
            f"(FD h = 1e-3·{d['hyperparameter']} vs 1e-4·{d['hyperparameter']} differ by "
            f"{d['fd_rel_spread_vs_h_1e-4']:.1e}); {d['repeats']} interleaved repeats; "
            "hypergradient time ours / other (median of paired ratios): "
            + ", ".join(
                f"{name} {r['ours_over_this']:.3f}"
                for name, r in d["methods"].items()
                if name != d["ours"]
            )
            + "."
        )
    return "\n".join(lines)


def plot(results: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6), constrained_layout=True)
    colors = {
        "ours": "C0", "jaxopt": "C1", "ours unrolled": "C2", "jaxopt solve_cg": "C3",
        "jaxopt solve_cg 1e-10": "C4", "autodiff direct solve": "C5", "sklearn": "C7",
    }  # fmt: skip
    width = 0.84 / max(len(d["methods"]) + 1 for d in results.values())
    seen: set[str] = set()

    def bar(ax, x, value, name):
        label = None if name in seen else name
        seen.add(name)
        ax.bar(x, value, width, color=colors.get(name, "C9"), label=label)

    for i, pname in enumerate(names):
        d = results[pname]
        m = len(d["methods"])
        xs = i + (np.arange(m + 1) - m / 2) * width  # m methods, then sklearn (forward only)
        for x, (name, r) in zip(xs, d["methods"].items(), strict=False):
            bar(axes[0], x + width / 2, r["hyper_median_ms"], name)
            axes[1].bar(x + width / 2, max(r["rel_err_fd"], 1e-16), width,
                        color=colors.get(name, "C9"))  # fmt: skip
            axes[2].bar(x, r["forward_median_ms"], width, color=colors.get(name, "C9"))
        bar(axes[2], xs[-1], d["sklearn"]["forward_median_ms"], "sklearn")
        axes[1].hlines(
            d["fd_rel_spread_vs_h_1e-4"], i - 0.45, i + 0.45, color="k", ls=":", lw=1,
            label="FD(h) vs FD(h/10)" if i == 0 else None,
        )  # fmt: skip
    titles = ["hypergradient (value_and_grad, jitted): median ms",
              "hypergradient: relative error vs finite difference",
              "forward solve: median ms (sklearn: fit in Python)"]  # fmt: skip
    for ax, title in zip(axes, titles, strict=True):
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    axes[2].legend(*(lst[-1:] for lst in axes[2].get_legend_handles_labels()), fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run (under a minute)")
    ap.add_argument("--out", type=pathlib.Path, default=H.RESULTS_DIR, help="output directory")
    ap.add_argument("--repeats", type=int, default=None, help="timing repeats (default 51)")
    ap.add_argument("--problems", nargs="*", default=None, help="lasso logistic ridge")
    ap.add_argument("--ridge-p", type=int, default=None, help="ridge features (default 2000)")
    ap.add_argument("--readme", type=pathlib.Path, default=None,
                    help="markdown file for the table (default: benchmarks/README.md when "
                         "--out is benchmarks/results, else none)")  # fmt: skip
    args = ap.parse_args(argv)

    quick = args.quick
    repeats = args.repeats or (7 if quick else 51)
    ridge_p = args.ridge_p or (500 if quick else 2000)
    t_start = time.perf_counter()
    payload: dict[str, Any] = {"environment": H.environment(argv), "quick": quick}
    print(f"jax {jax.__version__} on {jax.default_backend()} ({payload['environment']['device']})")

    makers = {
        "lasso": lasso_problem,
        "logistic": logistic_problem,
        "ridge": functools.partial(ridge_problem, p=ridge_p),
    }
    chosen = args.problems or list(makers)
    unknown = set(chosen) - set(makers)
    if unknown:
        raise ValueError(f"unknown problem(s) {sorted(unknown)}; have {list(makers)}")
    # One BLAS thread (numpy's and scipy's OpenBLAS: scikit-learn, and jaxlib's LAPACK calls such
    # as the ridge Cholesky): on a small machine OpenBLAS's spinning threads fight XLA's thread
    # pool and any other process, and a 3 ms scikit-learn fit can take 200 ms.
    results = {}
    with threadpool_limits(limits=1, user_api="blas"):
        payload["environment"]["blas_threads"] = [
            (d["internal_api"], d["num_threads"]) for d in threadpool_info()
        ]
        for name in chosen:
            print(f"\n{name}: {repeats} interleaved repeats", flush=True)
            results[name] = bench_problem(makers[name](), repeats)
    payload["problems"] = results
    payload["total_s"] = time.perf_counter() - t_start

    content = problem_lines(results) + "\n\n" + table(results)
    print("\n### Hypergradients\n")
    print(content, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = H.write_json(args.out / "implicit.json", payload)
    png_path = args.out / "implicit.png"
    plot(results, png_path)
    print(f"\nwrote {json_path} and {png_path}")

    readmes = H.readme_targets("implicit", args.out, args.readme)
    env = payload["environment"]
    load = env["load_average"]
    header = (
        f"_`{env['command']}` — {env['date_utc']}, jax {env['jax']}, {env['backend']} "
        f"({env['device']}, {env['cpu_count']} cores, load average "
        f"{H.fmt(load[0] if load else None, '.1f')} at start); float64; "
        f"{payload['total_s']:.0f} s in all._\n"
    )
    for readme in readmes:
        H.update_readme("implicit", header + "\n" + content, readme)
        print(f"table written to {readme}")
    print(f"total {payload['total_s']:.1f} s")
    return payload


if __name__ == "__main__":
    main()
