"""Small QPs and an independent oracle: the active-set enumeration solved densely with NumPy.

For a strictly convex QP ``min ½xᵀQx + cᵀx`` s.t. ``l ≤ Ax ≤ u`` the KKT point is unique; trying
every assignment of each row to {free, at its lower bound, at its upper bound} and solving the
equality-constrained KKT system ``[Q A_Sᵀ; A_S 0][x; y_S] = [−c; b_S]`` with ``numpy.linalg.solve``
finds it exactly: the one assignment whose solution is primal feasible with multipliers of the
right signs. Exponential in ``m``; used with ``m ≤ 7``.
"""

from __future__ import annotations

import itertools

import numpy as np


def box_qp(seed: int, n: int = 5, m: int = 6):
    """A random strictly convex QP with two-sided, one-sided and equality rows."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    Q = M @ M.T + 0.5 * np.eye(n)
    c = 2.0 * rng.normal(size=n)
    A = rng.normal(size=(m, n))
    lower = -rng.uniform(0.2, 1.0, size=m)
    upper = rng.uniform(0.2, 1.0, size=m)
    lower[0] = -np.inf  # one-sided rows
    upper[1] = np.inf
    lower[2] = upper[2] = 0.3  # an equality row
    return Q, c, A, lower, upper


def solve_active_set(Q, c, A, lower, upper, states):
    """``(x, y)`` of the equality QP with row ``i`` free (0), at ``lower`` (1) or ``upper`` (2).

    Raises ``numpy.linalg.LinAlgError`` for a singular system.
    """
    n, m = len(c), len(lower)
    act = [i for i in range(m) if states[i]]
    bounds = [lower[i] if states[i] == 1 else upper[i] for i in act]
    k = len(act)
    K = np.zeros((n + k, n + k))
    K[:n, :n] = Q
    K[:n, n:] = A[act].T
    K[n:, :n] = A[act]
    sol = np.linalg.solve(K, np.concatenate([-c, bounds]))
    y = np.zeros(m)
    y[act] = sol[n:]
    return sol[:n], y


def enumerate_kkt(Q, c, A, lower, upper, tol=1e-10):
    """The exact ``(x, y, states)`` of ``min ½xᵀQx + cᵀx`` s.t. ``lower ≤ Ax ≤ upper``."""
    Q, c, A = (np.asarray(v, np.float64) for v in (Q, c, A))
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    m = len(lower)
    for states in itertools.product((0, 1, 2), repeat=m):  # free, lower, upper
        at = [lower[i] if s == 1 else upper[i] for i, s in enumerate(states) if s]
        if not np.all(np.isfinite(at)):
            continue
        if any(s == 2 and lower[i] == upper[i] for i, s in enumerate(states)):
            continue  # an equality row is taken once, as "lower"
        try:
            x, y = solve_active_set(Q, c, A, lower, upper, states)
        except np.linalg.LinAlgError:
            continue
        z = A @ x
        feasible = np.all(z >= lower - tol) and np.all(z <= upper + tol)
        signs = all(
            (s != 1 or lower[i] == upper[i] or y[i] <= tol) and (s != 2 or y[i] >= -tol)
            for i, s in enumerate(states)
        )
        if feasible and signs:
            return x, y, states
    raise ValueError("no KKT point found (infeasible or degenerate problem)")


def osqp_to_box(A, b, G, h):
    """The BoxOSQP form ``l ≤ [A; G]x ≤ u`` of ``Ax = b``, ``Gx ≤ h``."""
    A_box = np.concatenate([A, G])
    return A_box, np.concatenate([b, np.full(len(h), -np.inf)]), np.concatenate([b, h])
