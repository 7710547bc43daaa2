"""``benchmarks/accelerator.py`` at its ``--tiny`` size on the CPU, as a script.

The numbers of a tiny CPU run mean nothing as timings; what is checked is that every section
runs, that the JSON names the device and jax version of this process, that the update-step rows
cover every optimizer the package exports, and that the solvers' reported errors and residuals
are consistent with their targets (the OT errors are recomputed from the plans in numpy by the
OT benchmark, the Krylov residuals are true residuals).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest

import jaxopt_papers as jop
from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "accelerator.py"
pytestmark = pytest.mark.slow  # one tiny run of every section: about 45 s of CPU


def _run(args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("accelerator")
    readme = out / "README.md"
    readme.write_text("before\n<!-- begin:accelerator -->\nold\n<!-- end:accelerator -->\nafter\n")
    stdout = _run(["--tiny", "--out", str(out), "--readme", str(readme)], cwd=out)
    data = json.loads((out / f"accelerator_{jax.default_backend()}.json").read_text())
    return data, stdout, readme.read_text()


def _optimizer_aliases() -> set[str]:
    return {
        name
        for name in jop.optimizers.__all__
        if name[0].islower() and not name.startswith("scale_by_")
    }


def test_json_names_device_and_jax_version(tiny):
    data, _, _ = tiny
    assert data["device_kind"] == jax.devices()[0].device_kind
    assert data["jax_version"] == jax.__version__
    assert data["backend"] == jax.default_backend() and data["tiny"] is True
    assert data["skipped"] == []


def test_update_step_covers_every_optimizer(tiny):
    data, _, _ = tiny
    rows = data["optimizers"]["result"]["rows"]
    covered = {r["optimizer"].split("(")[0] for r in rows}
    assert covered == _optimizer_aliases()
    for r in rows:
        assert r["anchor"].startswith("optax.")
        # "ratio min/min" is the ratio of the reported minima; minima are at most the medians
        assert r["ratio_min"] == pytest.approx(r["ours_min_ms"] / r["anchor_min_ms"], rel=1e-9)
        assert (
            r["ours_min_ms"] <= r["ours_median_ms"] and r["anchor_min_ms"] <= r["anchor_median_ms"]
        )
        assert r["ours_compile_s"] > 0 and r["anchor_compile_s"] > 0


def test_ot_rows_meet_their_targets(tiny):
    data, _, _ = tiny
    (inst,) = data["ot"]["results"]
    methods = inst["methods"]
    assert set(methods) == {"ours SNS", "ours Sinkhorn", "ott Sinkhorn"}
    for name, row in methods.items():
        assert row["reached"] == (row["error"] <= inst["target"]), name
    assert methods["ours SNS"]["reached"] and methods["ott Sinkhorn"]["reached"]
    assert methods["ours SNS"]["newton_steps"] >= 1


def test_krylov_rows_meet_tol_and_recycling_saves_products(tiny):
    data, _, _ = tiny
    lin = data["linear"]
    (inst,) = lin["results"]
    rows = inst["methods"]
    assert set(rows) == {"ours SKR (GCRO-DR, sorted)", "ours GCRO-DR (unsorted)",
                         "ours GMRES(40)", "lineax GMRES(40)"}  # fmt: skip
    for name, r in rows.items():
        assert r["failed"] == 0 and r["max_residual"] <= 1.01 * lin["tol"], name
    assert rows["ours SKR (GCRO-DR, sorted)"]["matvecs"] <= rows["ours GMRES(40)"]["matvecs"]


def test_tables_go_between_the_markers(tiny):
    _, stdout, readme = tiny
    assert readme.startswith("before\n<!-- begin:accelerator -->\n")
    assert readme.endswith("<!-- end:accelerator -->\nafter\n") and "\nold\n" not in readme
    assert jax.devices()[0].device_kind in readme
    for title in ("**Update step**", "**Optimal transport**", "**Krylov recycling**"):
        assert title in readme and title in stdout


def test_time_limit_skips_and_records(tmp_path):
    _run(["--tiny", "--time-limit", "0", "--out", str(tmp_path)], cwd=tmp_path)
    data = json.loads((tmp_path / f"accelerator_{jax.default_backend()}.json").read_text())
    assert data["skipped"] == ["section optimizers", "section ot", "section linear"]
    assert not {"optimizers", "ot", "linear"} & set(data)
