"""``benchmarks/zeroth_order.py --quick`` runs as a script; its JSON has the documented structure.

Sanity properties checked against independent quantities: the transformer's parameter count
fits its closed form (embedding, head and positions, 12 d² weights per layer); every program's
peak is at least the bytes of the params it holds (a forward pass reads them once; the Adam step
holds params and two moments), ``mezo_step`` stays within one params copy of the forward pass,
and the backprop Adam step needs more than three copies of the params; the fine-tuning runs
start from the same pretrained accuracy for every method and the steps (and seconds) to MeZO's
final accuracy lie within the run; DeepZero's count of forward evaluations per step is
recomputed from the CNN's leaf sizes (``n - round(sparsity n)`` coordinates per leaf, plus the
base point); both black-box methods descend from the closed-form initial value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax

from tests.conftest import ROOT


def test_zeroth_order_benchmark_quick(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    script = ROOT / "benchmarks" / "zeroth_order.py"
    args = [sys.executable, str(script), "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Memory of a MeZO step" in proc.stdout
    assert (tmp_path / "zeroth_order.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "zeroth_order.json").read_text())
    assert data["quick"] is True
    rows = data["memory"]["rows"]
    assert len(rows) == 1
    for r in rows:  # embedding, head, positions (context 64) and 12 d² weights per layer
        d, layers = r["d"], r["layers"]
        vocab, rest = divmod(r["num_params"] - 64 * d - 12 * d * d * layers, 2 * d)
        assert rest == 0 and 20 <= vocab <= 256, r["num_params"]
    for r in rows:
        names = ("forward", "mezo_step", "mezo (transformation)", "adam (backprop)")
        assert all(r[n]["peak_bytes"] >= r["param_bytes"] for n in names)
        assert r["mezo_step"]["peak_bytes"] <= r["forward"]["peak_bytes"] + r["param_bytes"]
        assert r["adam (backprop)"]["peak_bytes"] > 3 * r["param_bytes"]
        assert r["mezo_step"]["over_adam"] < 1.0
    largest = data["memory"]["largest"]
    assert largest["num_params"] == rows[-1]["num_params"]
    assert largest["pass_forward"] == (largest["over_forward"] <= 1.2)

    ft = data["finetuning"]
    assert set(ft["methods"]) == {
        "MeZO",
        "Sparse MeZO",
        "MeZO-Adam",
        "SGD (backprop)",
        "Adam (backprop)",
    }
    start = {m["pretrained_accuracy"][0] for m in ft["methods"].values()}
    assert len(start) == 1 and 0.5 < start.pop() < 1.0  # one pretrained model, better than chance
    for m in ft["methods"].values():
        assert len(m["curves"][0]) == ft["steps"]
        assert all(h is None or 0 < h <= ft["steps"] for h in m["steps_to_mezo_final"])
        for h, t, total in zip(m["steps_to_mezo_final"], m["seconds_to_mezo_final"],
                               m["seconds"], strict=True):  # fmt: skip
            assert (h is None) == (t is None) and (t is None or 0 < t <= total)

    dz = data["deepzero"]
    from jaxopt_papers.tour import workloads as W

    cnn = W.digits_cnn()
    sizes = [leaf.size for leaf in jax.tree.leaves(jax.eval_shape(lambda: W.init_params(cnn, 0)))]
    kept = sum(n - round(dz["sparsity"] * n) for n in sizes)
    assert dz["num_params"] == sum(sizes)
    assert dz["methods"]["DeepZero"]["forward_evaluations_per_step"] == kept + 1
    for m in dz["methods"].values():
        assert all(0.0 <= a <= 1.0 for a in m["test_accuracy"])

    rk = data["ranking"]
    assert rk["initial_value"] == 130.0  # Σ_i c_i + 20 at x = 0, c = linspace(1, 10, 20)
    for m in rk["methods"].values():
        assert all(0.0 <= v < rk["initial_value"] for v in m["final_value"])  # both descend
