"""``benchmarks/schedules.py --quick`` runs as a script; its JSON has the documented structure.

The refinement and hypergradient sections only (the federated and batch-size sections have
their own tests). Sanity properties checked against independent quantities: every run ends
below the loss of a uniform prediction (ln 10 for digits, ln(vocabulary) for the character
model, an upper bound on the initial loss); the schedules start at the stated peak; Adam-HD and
SGD-HD, started 10x below the tuned learning rate, raise it and end below plain Adam/SGD at that
bad learning rate.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_schedules_benchmark_quick(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    script = ROOT / "benchmarks" / "schedules.py"
    args = [sys.executable, str(script), "--quick", "--out", str(tmp_path),
            "--sections", "refinement,hypergradient"]  # fmt: skip
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Refinement" in proc.stdout and "Hypergradient descent" in proc.stdout
    assert (tmp_path / "schedules.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "schedules.json").read_text())
    assert data["quick"] is True and data["sections"] == ["refinement", "hypergradient"]

    ref = data["refinement"]
    assert set(ref) == {"digits_cnn", "char_transformer"}
    for name, task in ref.items():
        assert set(task["results"]) == {"linear decay", "cosine", "refined",
                                        "cosine (own peak)", "refined (own peak)"}  # fmt: skip
        assert task["kind"] == ("sgd" if name == "digits_cnn" else "adam")
        bound = math.log(10) if name == "digits_cnn" else math.log(task["vocab_size"])
        for res in task["results"].values():
            assert len(res["final_train_loss_seeds"]) == len(task["seeds"]) == 1
            assert 0 < res["final_train_loss"] < bound
        own = {"cosine (own peak)": "cosine", "refined (own peak)": "refined"}
        for label, res in task["results"].items():
            grid = task["peak_grid"][own.get(label, "linear decay")]
            assert res["peak"] == float(min(grid, key=grid.get))  # each peak: its grid's best
        lin, cos = task["schedules"]["linear decay"], task["schedules"]["cosine"]
        assert math.isclose(lin[0], task["peak"], rel_tol=1e-6)
        assert math.isclose(cos[0], task["peak"], rel_tol=1e-6)
        refined = task["schedules"]["refined (seed mean)"]
        assert min(refined) >= 0 and max(refined) <= task["peak"] * (1 + 1e-6)
        best = min(task["results"][k]["final_train_loss"] for k in ("linear decay", "cosine"))
        assert math.isclose(task["refined_over_best_baseline"],
                            task["results"]["refined"]["final_train_loss"] / best)  # fmt: skip

    for fam, f in data["hypergradient"]["families"].items():
        assert math.isclose(f["bad_lr"], f["tuned_lr"] / 10)
        assert float(min(f["lr_grid"], key=f["lr_grid"].get)) == f["tuned_lr"]
        res = f["results"]
        hd = res[f"{fam}_hd (from bad lr {f['bad_lr']:g})"]
        bad = res[f"{fam} (bad lr {f['bad_lr']:g})"]
        assert f["learned_lr_final"] > 2 * f["bad_lr"]
        assert hd["final_train_loss"] < bad["final_train_loss"]
        assert all(0 < r["final_train_loss"] < math.log(10) + 1 for r in res.values())
