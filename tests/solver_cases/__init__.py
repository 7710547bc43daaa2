"""Registered cases of the shared solver invariant suite (tests/implicit/test_solver_invariants.py).

Each family has one module here that defines ``CASES``; add a module's cases to the list below.
A test in the suite checks that every public solver class of the library has a case.
"""

from tests.solver_cases._case import Case
from tests.solver_cases.linear import CASES as _LINEAR
from tests.solver_cases.ot import CASES as _OT
from tests.solver_cases.proximal import CASES as _PROXIMAL

CASES: list[Case] = [*_PROXIMAL, *_OT, *_LINEAR]

__all__ = ["CASES", "Case"]
