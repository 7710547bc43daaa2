"""``benchmarks/second_order.py --quick`` runs as a script; its JSON has the documented structure.

Sanity properties checked against independent quantities: every contender starts from the same
test loss (same initialisation) and ends below it (the loss decreased); the target is Adam's
test loss at 80% of the budget as stated; the steps to target are the first evaluation on the
stored curve that meets it; Adam's step-time ratio to itself is 1.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_second_order_benchmark_quick(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    script = ROOT / "benchmarks" / "second_order.py"
    args = [sys.executable, str(script), "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "second_order.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "second_order.json").read_text())
    assert data["quick"] is True and data["seeds"] == [0]
    assert "kfac_jax" in data["skipped"]  # the quick run leaves kfac-jax out (or not installed)

    w = data["workloads"]["autoencoder"]
    res = w["results"]
    assert set(res) == {"optax.adam", "optax.lamb", "mkor(sgd)", "mkor_h(adam)", "mfac(m=32)"}
    k = round(0.8 * w["num_steps"] / w["eval_every"])
    assert math.isclose(w["target"], res["optax.adam"]["curve"][k], rel_tol=1e-6)
    initial = res["optax.adam"]["initial_metric"]
    for label, r in res.items():
        assert math.isclose(r["initial_metric"], initial, rel_tol=1e-5), label
        assert r["final_metric"] < initial, label
        assert r["last_train_loss"] < r["first_train_loss"], label
        assert str(r["chosen"]) in {str(float(v)) for v in r["grid_final_metric"]}
        hits = [i for i, m in enumerate(r["curve"]) if m <= w["target"]]
        expected = hits[0] * w["eval_every"] if hits else None
        assert r["steps_to_target_seeds"] == [expected], label
        st = r["step_time"]
        assert st["median_s"] > 0 and st["first_call_s"] > 0
    assert res["optax.adam"]["step_time"]["ratio_median"] == 1.0
    assert "| mkor(sgd)" in proc.stdout
