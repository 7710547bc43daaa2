"""The shared workloads against independent anchors, and the tour and benchmark as scripts.

Anchors: the MLP forward pass against NumPy, the convolution against
``scipy.signal.correlate2d`` and ``jax.lax.conv_general_dilated``, the CNN forward pass against
a NumPy/SciPy implementation, and a training run with ``optax.adam`` that reaches each target.
The tour and the benchmark run as subprocesses on their smallest settings.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import signal

from jaxopt_papers.tour import workloads as W
from tests.conftest import ROOT

# --------------------------------------------------------------------------------- anchors


def _np_tree(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def test_digits_split_is_fixed_and_standardised():
    d = W.load_digits_split()
    assert d["x_train"].shape == (1437, 64) and d["x_test"].shape == (360, 64)
    assert d["x_train"].dtype == np.float32 and d["y_train"].dtype == np.int32
    assert set(np.unique(d["y_test"])) == set(range(10))
    np.testing.assert_allclose(d["x_train"].mean(axis=0), 0.0, atol=1e-5)
    std = d["x_train"].std(axis=0)
    np.testing.assert_allclose(std[std > 0], 1.0, rtol=1e-4)


def test_mlp_forward_matches_numpy():
    wl = W.digits_mlp()
    p = W.init_params(wl, 3)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(p))
    x = np.asarray(wl.data["x_test"][:32])
    q = _np_tree(p)
    hidden = np.maximum(x @ q["dense0"]["w"] + q["dense0"]["b"], 0.0)
    expected = hidden @ q["dense1"]["w"] + q["dense1"]["b"]
    np.testing.assert_allclose(np.asarray(wl.apply(p, x)), expected, rtol=1e-4, atol=1e-4)
    # loss and metric by hand
    y = np.asarray(wl.data["y_test"][:32])
    logp = expected - np.log(np.exp(expected).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(float(wl.loss(p, (x, y))), -logp[np.arange(32), y].mean(), rtol=1e-4)
    np.testing.assert_allclose(float(wl.metric(p, (x, y))), (expected.argmax(1) == y).mean())


def _scipy_conv(x, w, b, stride):
    """SAME cross-correlation, NHWC/HWIO, 8x8 input and 3x3 kernel, by scipy.signal."""
    n, h, wd, c_in = x.shape
    out = np.zeros((n, h, wd, w.shape[-1]))
    for i in range(n):
        for co in range(w.shape[-1]):
            for ci in range(c_in):
                out[i, :, :, co] += signal.correlate2d(x[i, :, :, ci], w[:, :, ci, co], "same")
    out += b
    # SAME with stride 2 on an even size pads (0, 1): output i covers rows 2i .. 2i+2, which
    # is the stride-1 "same" output at 2i + 1.
    return out if stride == 1 else out[:, 1::2, 1::2, :]


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_matches_scipy_correlate2d(stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    params = {"w": rng.standard_normal((3, 3, 3, 4)).astype(np.float32),
              "b": rng.standard_normal(4).astype(np.float32)}  # fmt: skip
    expected = _scipy_conv(x, params["w"].astype(np.float64), params["b"], stride)
    got = np.asarray(W.conv2d(params, jnp.asarray(x), stride=stride))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("size", "k", "stride"), [(8, 3, 1), (8, 3, 2), (7, 3, 2), (9, 5, 3)])
def test_conv2d_matches_lax_conv_general_dilated(size, k, stride):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, size, size, 3)), jnp.float32)
    params = {"w": jnp.asarray(rng.standard_normal((k, k, 3, 5)), jnp.float32),
              "b": jnp.asarray(rng.standard_normal(5), jnp.float32)}  # fmt: skip
    np.testing.assert_allclose(
        np.asarray(W.conv2d(params, x, stride)),
        np.asarray(W.conv2d_xla(params, x, stride)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_cnn_forward_matches_numpy_scipy():
    wl = W.digits_cnn()
    p = W.init_params(wl, 0)
    q = _np_tree(p)
    x = np.asarray(wl.data["x_test"][:4], np.float64)
    assert x.shape == (4, 8, 8, 1)
    h = np.maximum(_scipy_conv(x, q["conv0"]["w"], q["conv0"]["b"], 1), 0.0)
    h = np.maximum(_scipy_conv(h, q["conv1"]["w"], q["conv1"]["b"], 2), 0.0)
    expected = h.reshape(4, -1) @ q["head"]["w"] + q["head"]["b"]
    got = np.asarray(wl.apply(p, jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_teacher_student_data():
    wl = W.teacher_student()
    d = {k: np.asarray(v) for k, v in wl.data.items()}
    assert d["x_train"].shape == (4096, 16) and d["y_test"].shape == (1024,)
    # labels normalised: predicting zero scores about 1 (+ the noise variance 0.01)
    assert 0.9 < float(np.mean(d["y_train"] ** 2)) < 1.1
    zero = jax.tree.map(jnp.zeros_like, W.init_params(wl, 0))
    np.testing.assert_allclose(float(wl.metric(zero, (d["x_test"], d["y_test"]))),
                               np.mean(d["y_test"] ** 2), rtol=1e-5)  # fmt: skip
    again = W._teacher_student_data(4096, 1024, 16, 32, 0.1)
    np.testing.assert_array_equal(again["y_train"], d["y_train"])


def test_batch_indices_are_epoch_permutations():
    wl = W.digits_mlp()
    idx = W.batch_indices(wl, 5, num_steps=30)
    assert idx.shape == (30, wl.batch_size) and idx.dtype == np.int32
    flat = idx.reshape(-1)
    n = wl.num_train
    np.testing.assert_array_equal(np.sort(flat[:n]), np.arange(n))  # first epoch: a permutation
    np.testing.assert_array_equal(idx, W.batch_indices(wl, 5, num_steps=30))
    assert not np.array_equal(idx, W.batch_indices(wl, 6, num_steps=30))


def test_make_train_checks_arguments():
    wl = W.digits_mlp()
    with pytest.raises(ValueError, match="multiple of eval_every"):
        W.make_train(wl, optax.adam(1e-3), num_steps=25, eval_every=10)
    run = W.make_train(wl, optax.adam(1e-3), num_steps=20)
    with pytest.raises(ValueError, match="batch_idx must have shape"):
        run(W.init_params(wl, 0), jnp.zeros((10, wl.batch_size), jnp.int32), wl.data)


@pytest.mark.parametrize(
    ("make", "num_steps"),
    [(W.digits_mlp, 300), (W.digits_cnn, 200), (W.teacher_student, 1000)],
    ids=["digits_mlp", "digits_cnn", "teacher_student"],
)
def test_adam_reaches_the_target(make, num_steps):
    wl = make(num_steps=num_steps)
    res = W.train(wl, optax.adam(3e-3), seed=0)
    assert res.loss.shape == (num_steps,)
    assert res.eval_step[0] == 0 and res.eval_step[-1] == num_steps
    assert res.eval_train_loss[-1] < 0.5 * res.eval_train_loss[0]
    steps = W.steps_to_target(wl, res)
    assert steps is not None and 0 < steps <= num_steps, (wl.name, res.eval_metric[-5:])
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(res.params))
    # the first step at which the target is met is reported
    k = int(np.searchsorted(np.asarray(res.eval_step), steps))
    assert bool(wl.reached(res.eval_metric[k])) and not np.any(wl.reached(res.eval_metric[:k]))


def test_steps_to_target_first_hit_or_none():
    cls, reg = W.digits_mlp(), W.teacher_student()
    steps = np.array([0, 10, 20, 30])
    result = lambda m: W.TrainResult(None, steps, np.asarray(m), None, None)
    assert W.steps_to_target(cls, result([0.1, 0.96, np.nan, 0.969])) is None
    assert W.steps_to_target(cls, result([0.1, 0.98, 0.5, 0.99])) == 10
    assert W.steps_to_target(reg, result([1.0, 0.2, 0.05, 0.01])) == 20
    assert W.steps_to_target(reg, result([1.0, np.nan, np.inf, 0.06])) is None


def test_missing_scikit_learn_says_what_to_install(monkeypatch):
    W.load_digits_split.cache_clear()
    for mod in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, mod, None)
    try:
        with pytest.raises(ImportError, match=r'pip install "jaxopt-papers\[tour\]"'):
            W.load_digits_split()
    finally:
        W.load_digits_split.cache_clear()


def test_contenders_are_optax_transformations():
    contenders = W.first_order_contenders()
    names = [c.name for c in contenders]
    assert {"optax.adam", "optax.adamw", "optax.lion", "optax.adan"} <= set(names)
    assert len(names) == len(set(names))
    for c in contenders:
        tx = c.make()
        assert isinstance(tx, optax.GradientTransformation), c.name
        assert c.learning_rate > 0
    with pytest.raises(ValueError, match="unknown optimizer"):
        W.first_order_contenders(["no_such_optimizer"])
    styles = W.contender_styles(names)
    if "lion" in styles:
        assert styles["optax.lion"]["color"] == styles["lion"]["color"]


# ------------------------------------------------------------------- tour and benchmark


def _run(args, cwd, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_tour_quick(tmp_path):
    out = _run(["-m", "jaxopt_papers", "--quick", "--out", "tour"], cwd=tmp_path)
    assert (tmp_path / "tour" / "first_order.png").stat().st_size > 10_000
    assert "first-order" in out and "optax.adam" in out and "test accuracy" in out
    assert (tmp_path / "tour" / "hypergradient.png").stat().st_size > 10_000
    assert "implicit (ours)" in out and "central differences" in out
    assert (tmp_path / "tour" / "optimal_transport.png").stat().st_size > 10_000
    sns_row = next(line for line in out.splitlines() if line.startswith("Sinkhorn–Newton–Sparse"))
    assert "Newton" in sns_row and float(sns_row.split()[-3]) <= 1e-9  # the L1 error column
    assert (tmp_path / "tour" / "krylov_recycling.png").stat().st_size > 10_000
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines() if "(ours)" in line}
    skr, gmres = rows["SKR: sorted GCRO-DR(40, 20) (ours)"], rows["GMRES(40) (ours)"]
    # columns: products/system, error vs spsolve, seconds, compile s (the last four)
    assert float(skr[-4]) < 0.7 * float(gmres[-4]) and float(skr[-3]) < 1e-5
    assert (tmp_path / "tour" / "bilevel.png").stat().st_size > 10_000
    lines = out.split("== bilevel ==")[1].splitlines()
    accuracy = {
        name: float(line[len(name) :].split()[0])
        for line in lines
        for name in (
            "train on all labels",
            "ImplicitBilevel (AID, ours)",
            "BOREP (normalised momentum)",
        )
        if line.startswith(name)
    }
    assert accuracy["ImplicitBilevel (AID, ours)"] > accuracy["train on all labels"] + 0.05
    assert accuracy["BOREP (normalised momentum)"] > accuracy["train on all labels"] + 0.05
    assert (tmp_path / "tour" / "schedules.png").stat().st_size > 10_000
    lines = out.split("== schedules ==")[1].splitlines()
    adam = [float(ln.split()[3]) for ln in lines if ln.startswith("Adam, lr")]  # good, bad
    hd = next(float(ln.split(")")[1].split()[0]) for ln in lines if ln.startswith("Adam-HD from"))
    assert len(adam) == 2 and hd < 0.3 * max(adam)  # recovers from the learning rate 10x too small
    assert (tmp_path / "tour" / "zeroth_order.png").stat().st_size > 10_000
    lines = out.split("== zeroth-order ==")[1].splitlines()
    ratio = {ln.split("  ")[0]: float(ln.split("(")[-1].rstrip("x)")) for ln in lines
             if ln.startswith(("MeZO (mezo_step)", "SGD (backprop)"))}  # fmt: skip
    # MeZO at the forward pass's memory; backprop holds gradients and activations beside it
    assert ratio["MeZO (mezo_step)"] <= 1.2 < ratio["SGD (backprop)"], ratio
    assert (tmp_path / "tour" / "second_order.png").stat().st_size > 10_000
    lines = out.split("== second-order ==")[1].splitlines()
    initial = float(next(ln for ln in lines if ln.startswith("initial test loss")).split()[-1])
    finals = {ln.split("  ")[0]: float(ln.split()[-3]) for ln in lines
              if ln.startswith(("optax.adam", "mkor", "mfac"))}  # fmt: skip
    # the same initialisation for all; each training run lowers the test loss from it
    assert len(finals) == 3 and all(f < initial for f in finals.values()), (initial, finals)


def test_benchmark_quick(tmp_path):
    script = ROOT / "benchmarks" / "optimizers.py"
    out = _run(
        [str(script), "--quick", "--out", str(tmp_path), "--pairs", "lion",
         "--optimizers", "lion", "optax.adam", "--repeats", "3"],
        cwd=tmp_path,
    )  # fmt: skip
    assert "Update step" in out and "Steps and time to target" in out
    assert (tmp_path / "optimizers.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "optimizers.json").read_text())
    assert {"environment", "quick", "update_step", "workloads", "total_s"} <= set(data)
    assert data["quick"] is True
    (row,) = data["update_step"]["rows"]
    assert row["optimizer"] == "lion" and row["anchor"] == "optax.lion"
    for key in ("ours_median_ms", "ours_min_ms", "anchor_median_ms", "anchor_min_ms",
                "ratio_median", "ratio_min", "target", "pass", "ours_compile_s"):  # fmt: skip
        assert key in row, key
    assert row["ratio_median"] > 0 and row["target"] == 1.1
    wls = data["workloads"]
    assert {"digits_mlp", "digits_cnn", "teacher_student", "algoperf_score"} <= set(wls)
    for name in ("digits_mlp", "digits_cnn", "teacher_student"):
        res = wls[name]["results"]
        assert set(res) == {"lion", "optax.adam"}
        for r in res.values():
            for key in ("steps_to_target", "time_to_target_s", "compile_s", "step_ms",
                        "final_metric", "reached", "runs"):  # fmt: skip
                assert key in r, key
            assert r["compile_s"] > 0 and len(r["runs"]) == 1
            assert len(r["curve_metric"]) == len(wls[name]["eval_step"])
            assert len(r["curve_train_loss"]) == len(wls[name]["eval_step"])
    assert set(wls["algoperf_score"]["steps_to_target"]) == {"lion", "optax.adam"}


def test_implicit_benchmark_quick(tmp_path):
    """The hypergradient benchmark runs, and its accuracy columns are what the README claims."""
    script = ROOT / "benchmarks" / "implicit.py"
    out = _run([str(script), "--quick", "--out", str(tmp_path), "--repeats", "3",
                "--ridge-p", "300"], cwd=tmp_path)  # fmt: skip
    assert "Hypergradients" in out
    assert (tmp_path / "implicit.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "implicit.json").read_text())
    assert data["quick"] is True and set(data["problems"]) == {"lasso", "logistic", "ridge"}
    for name, prob in data["problems"].items():
        ours = prob["methods"][prob["ours"]]
        # Our implicit hypergradient agrees with the exact (dense IFT / closed-form) value.
        assert abs(ours["hypergrad"] - prob["exact_hypergrad"]) <= 1e-6 * abs(
            prob["exact_hypergrad"]
        ), name
        assert ours["hyper_median_ms"] > 0 and ours["hyper_compile_s"] > 0


def test_bilevel_benchmark_quick(tmp_path):
    """The bilevel benchmark runs; hypergradient errors and the hyper-cleaning baselines hold."""
    script = ROOT / "benchmarks" / "bilevel.py"
    out = _run([str(script), "--quick", "--out", str(tmp_path)], cwd=tmp_path)
    assert "Algorithms" in out and (tmp_path / "bilevel.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "bilevel.json").read_text())
    assert data["quick"] is True
    for res in data["hypergradient"]["points"].values():
        assert res["ours"]["rel_error"] < 1e-4 and res["ours"]["median_ms"] > 0
    algs = data["algorithms"]
    assert set(algs) == {"quadratic", "multi_block_quadratic", "hyper_cleaning", "lvhba_toy"}
    for pname in ("quadratic", "multi_block_quadratic"):
        for runs in algs[pname]["runs"].values():
            assert runs[0]["metric"] < 0.05  # relative error of x after the short quick runs
    toy = algs["lvhba_toy"]["runs"]  # the official script's settings do not solve its toy
    tuned, official = toy["LV-HBA (tuned)"][0], toy["LV-HBA (official settings)"][0]
    assert tuned["metric"] < 1e-2 < official["metric"]
    base = algs["hyper_cleaning"]["baselines"][0]
    assert base["clean_accuracy"] > base["corrupted_accuracy"] + 0.1
    for alg in ("implicit (AID)", "penalty", "BO-REP"):
        assert algs["hyper_cleaning"]["runs"][alg][0]["metric"] > base["corrupted_accuracy"] + 0.05


def test_ot_benchmark_quick(tmp_path):
    """The OT benchmark runs; its errors are recomputed from the plans, and SNS's gap shows."""
    script = ROOT / "benchmarks" / "ot.py"
    out = _run([str(script), "--quick", "--out", str(tmp_path)], cwd=tmp_path)
    assert "Optimal transport" in out and (tmp_path / "ot.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "ot.json").read_text())
    assert data["quick"] is True
    for inst in data["results"]:
        methods = inst["methods"]
        for name, row in methods.items():
            assert row["reached"] == (row["error"] <= inst["target"]), name
        sns, ours, ott = methods["ours SNS"], methods["ours Sinkhorn"], methods["ott Sinkhorn"]
        assert sns["reached"] and 0 < sns["newton_steps"] <= 30
        # Same algorithm, same metric: after the same number of sweeps the errors agree.
        if ours["iterations"] == ott["iterations"]:
            assert abs(ours["error"] - ott["error"]) <= 1e-3 * max(ours["error"], 1e-12) + 1e-12
        if inst["eps_over_mean_cost"] <= 0.011:
            assert ours["iterations"] >= 100 * sns["newton_steps"]


def test_linear_benchmark_quick(tmp_path):
    """The Krylov benchmark runs; every method meets tol on the true residual; recycling saves."""
    script = ROOT / "benchmarks" / "linear.py"
    out = _run([str(script), "--quick", "--out", str(tmp_path)], cwd=tmp_path)
    assert "Krylov recycling" in out
    data = json.loads((tmp_path / "linear.json").read_text())
    (inst,) = data["results"]
    rows = inst["methods"]
    for name, r in rows.items():
        assert r["failed"] == 0 and r["max_residual"] <= 1.01 * inst["tol"], name
    ours, gmres = rows["ours SKR (GCRO-DR, sorted)"], rows["ours GMRES(40)"]
    assert ours["matvecs"] < 0.7 * gmres["matvecs"]
    # Our GMRES(40) and scipy's take the same number of products (same algorithm and test).
    assert abs(gmres["matvecs"] - rows["scipy gmres(40)"]["matvecs"]) <= 0.05 * gmres["matvecs"]


def test_tour_section_leaves_the_x64_flag_alone(tmp_path, monkeypatch):
    from jaxopt_papers.tour import Tour, hypergradient

    def no_global_update(name, value):
        raise AssertionError(f"the section set {name} globally")

    jax.config.update("jax_enable_x64", False)
    try:
        ctx = Tour(out=tmp_path, quick=True)
        with monkeypatch.context() as m:
            m.setattr(jax.config, "update", no_global_update)
            hypergradient.section(ctx)  # computes in float64 inside
        assert jax.config.jax_enable_x64 is False
        assert jnp.zeros(1).dtype == jnp.float32
        assert ctx.written == [tmp_path / "hypergradient.png"]
    finally:
        jax.config.update("jax_enable_x64", True)


def test_tour_uses_public_api_only():
    import ast
    import importlib

    from jaxopt_papers import tour

    sources = sorted(pathlib.Path(tour.__file__).parent.glob("*.py"))
    assert len(sources) > 3
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                mod = node.module if isinstance(node, ast.ImportFrom) else None
                names = [a.name for a in node.names]
                assert "importlib" not in {mod, *names}, where
                if (
                    mod
                    and mod.startswith("jaxopt_papers")
                    and not mod.startswith("jaxopt_papers.tour")
                ):
                    public = set(importlib.import_module(mod).__all__)
                    assert set(names) <= public, (where, set(names) - public)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                assert node.attr.startswith("__"), (where, node.attr)


def test_console_script_runs_the_tour():
    tomllib = pytest.importorskip("tomllib")
    from jaxopt_papers import tour

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, name = pyproject["project"]["scripts"]["jaxopt-papers-tour"].split(":")
    assert getattr(__import__(module, fromlist=[name]), name) is tour.main
