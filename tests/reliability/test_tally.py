"""The reliability suite covers every public area with at least 150 cases, and says so."""

from __future__ import annotations

from tests.reliability._tally import AREAS, counts, table


def test_every_area_has_cases_and_the_suite_has_150(capsys):
    rows = counts()
    assert set(rows) == set(AREAS)
    for area, row in rows.items():
        assert row["cases"] >= 20, (area, row)
        assert row["eager_error"] + row["eager_code"] + row["eager_finite"] == row["cases"]
        assert row["jit_error"] + row["jit_code"] + row["jit_finite"] == row["cases"]
    assert sum(r["cases"] for r in rows.values()) >= 150
    with capsys.disabled():
        print("\n" + table())
