"""Registered cases of the shared solver invariant suite (tests/implicit/test_solver_invariants.py).

Each family has one module here that defines ``CASES``; add a module's cases to the list below.
A test in the suite checks that every public solver class of the library has a case.
"""

from tests.solver_cases._case import Case
from tests.solver_cases.bilevel import CASES as _BILEVEL
from tests.solver_cases.fixed_point import CASES as _FIXED_POINT
from tests.solver_cases.linear import CASES as _LINEAR
from tests.solver_cases.ot import CASES as _OT
from tests.solver_cases.proximal import CASES as _PROXIMAL
from tests.solver_cases.qp import CASES as _QP
from tests.solver_cases.scipy_wrappers import CASES as _SCIPY
from tests.solver_cases.smooth import CASES as _SMOOTH

CASES: list[Case] = [
    *_PROXIMAL, *_OT, *_LINEAR, *_QP, *_SMOOTH, *_FIXED_POINT, *_SCIPY,
    *_BILEVEL,
]  # fmt: skip

__all__ = ["CASES", "Case"]
