"""Solver invariant cases of the bilevel solver (filled in by its author)."""

from tests.solver_cases._case import Case

CASES: list[Case] = []
