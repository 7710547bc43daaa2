"""Krylov solvers under ``jit``: CG, restarted GMRES(m) and GCRO-DR(m, k) with recycling.

**GMRES(m)** (Saad & Schultz 1986): cycles of ``m`` Arnoldi steps from the true residual
``r = b − Ax``; the basis is orthogonalised by classical Gram–Schmidt, one pass as PETSc's default
(``reorthogonalize=True``: two, CGS2); the residual norm of
``min ‖βe₁ − H̄y‖`` is tracked by the left null vector of ``H̄`` (one dot product per step): a
cycle stops as soon as it is ``≤ tol·‖b‖`` (as PETSc and scipy do), the small problem is solved
by QR, and the true residual is checked before the next cycle.

**GCRO-DR(m, k)** (Parks, de Sturler, Mackey, Johnson & Maiti, SIAM J. Sci. Comput. 2006; the
solver of the SKR paper, Wang et al. ICLR 2024, with PETSc/HPDDM's ``m = 40``, ``k = 20``). A
recycled subspace ``U`` (``n × k``) is carried from one system to the next:

1. with ``U`` from the previous system: ``AU = QR``, ``C = Q``, ``U ← UR⁻¹`` (so ``AU = C``,
   ``CᵀC = I``), ``x += UCᵀr``, ``r −= CCᵀr``; the QR is a shifted Cholesky-QR3, which keeps
   vectors sharded across devices (only ``k × k`` Gram matrices are reduced);
2. each cycle: ``m − k`` Arnoldi steps of ``(I − CCᵀ)A`` from ``r/‖r‖`` give
   ``AV = CB + V₊H̄`` with ``B = CᵀAV``; the least-squares problem over ``span[U, V]`` splits into
   the GMRES problem ``min ‖βe₁ − H̄y‖`` and ``y_U = −D⁻¹By`` (``D`` scales ``U`` to unit
   columns), so ``x += Vy − U(By)``;
3. new ``U``: the ``k`` harmonic Ritz vectors of smallest harmonic Ritz value,
   ``GᵀG z = θ GᵀŴᵀV̂ z`` with ``V̂ = [UD, V]``, ``Ŵ = [C, V₊]``, ``G = [[D, B], [0, H̄]]``;
   ``Ỹ = V̂P``, ``GP = QR``, ``C = ŴQ``, ``U = ỸR⁻¹``.

Without a recycle state the first cycle is a GMRES(m) cycle (``k`` columns of zeros). The state
keeps ``U`` only; ``C`` is recomputed from the next system's ``A`` (step 1), which may differ.

Preconditioning is on the right (``AM⁻¹y = b``, ``x = M⁻¹y``), so ``tol`` is on the true relative
residual ``‖b − Ax‖/‖b‖`` for every method. ``num_matvecs`` counts every product with ``A``: the
Arnoldi steps, the true residual at the start of each cycle and at the end, and ``AU`` (``k``
products) when a recycle state is used.

Differences from the reference code (PETSc/HPDDM): HPDDM orthogonalises by CGS or MGS with
optional re-orthogonalisation and updates the recycled space by the same generalised
eigenproblem; here classical Gram–Schmidt (one pass by default), and the eigenproblem is solved
as the standard one
``(GᵀG)⁻¹GᵀŴᵀV̂`` (largest ``|1/θ|``); with the ``k`` smallest ``|θ|`` a complex-conjugate pair
contributes its real and imaginary parts. PETSc's matvec count does not include the residual
checks. ``eig`` runs on the host (``pure_callback``) off CPU, where XLA has no ``eig``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import _validation as V
from jaxopt_papers.implicit.solver import RESULTS
from jaxopt_papers.linear._operators import as_operator

__all__ = ["KrylovResult", "RecycleState", "cg", "gcrodr", "gmres"]


class RecycleState(eqx.Module):
    """GCRO-DR's recycled subspace: ``U`` ``(n, k)`` and whether it holds one (``valid``)."""

    U: jax.Array
    valid: jax.Array

    @classmethod
    def empty(cls, n: int, k: int, dtype: Any = float) -> RecycleState:
        return cls(jnp.zeros((n, k), dtype), jnp.asarray(False))


class KrylovResult(eqx.Module):
    """``x``; ``num_matvecs`` (products with ``A``); ``residual`` (``‖b − Ax‖/‖b‖``, recomputed
    from ``x``); ``result`` (:class:`~jaxopt_papers.implicit.RESULTS`); ``state`` (GCRO-DR's
    :class:`RecycleState` for the next system, else ``None``)."""

    x: jax.Array
    num_matvecs: jax.Array
    residual: jax.Array
    result: RESULTS
    state: RecycleState | None = None


def _identity(r: jax.Array) -> jax.Array:
    return r


def _prepare(owner, A, b, x0, tol, max_steps, preconditioner):
    b = jnp.asarray(b)
    if b.ndim != 1:
        raise ValueError(f"{owner}: `b` must be a vector (n,), got shape {b.shape}.")
    if not jnp.issubdtype(b.dtype, jnp.inexact):
        b = b.astype(float)
    op = as_operator(A, b.shape[0], owner=owner)
    if op.n != b.shape[0]:
        raise ValueError(f"{owner}: `A` is {op.n}x{op.n} but `b` has shape {b.shape}.")
    x0 = jnp.zeros_like(b) if x0 is None else jnp.asarray(x0, b.dtype)
    if x0.shape != b.shape:
        raise ValueError(f"{owner}: `x0` must have the shape of `b` {b.shape}, got {x0.shape}.")
    V.check_real(owner, "tol", tol, low=0.0, low_open=True)
    max_steps = min(10 * op.n, 10_000) if max_steps is None else max_steps
    V.check_int(owner, "max_steps", max_steps, low=1)
    if preconditioner is not None and not callable(preconditioner):
        raise TypeError(
            f"{owner}: `preconditioner` must be a callable r -> M^-1 r or None, got "
            f"{type(preconditioner).__name__}."
        )
    precond = _identity if preconditioner is None else preconditioner
    return op, b, x0, jnp.asarray(tol, jnp.finfo(b.dtype).dtype), max_steps, precond


def _finish(op, b, x, num_matvecs, code, throw, state=None) -> KrylovResult:
    b_norm = jnp.linalg.norm(b)
    residual = jnp.linalg.norm(b - op.mv(x)) / jnp.where(b_norm > 0, b_norm, 1.0)
    code = RESULTS.where(jnp.isfinite(residual), code, RESULTS.nonfinite)
    if throw:
        x = V.error_if(x, code != RESULTS.successful, code)
    return KrylovResult(x, num_matvecs + 1, residual, code, state)


# ----------------------------------------------------------------------------------- Arnoldi


class _Cycle(eqx.Module):
    V: jax.Array  # (m + 1, n) orthonormal rows (unused rows 0)
    H: jax.Array  # (m + 1, m) Hessenberg H̄
    B: jax.Array  # (k, m) Cᵀ A V
    u: jax.Array  # (m + 1,) left null vector of H̄: ‖βe₁ − H̄y‖_min = β / ‖u‖
    steps: jax.Array  # Arnoldi steps done


_BLOCK = 8  # rows of V per stage of the blocked Arnoldi loop


def _arnoldi(apply, C, r, beta, m, allowed, target, reorthogonalize: bool = False) -> _Cycle:
    """Up to ``allowed`` (≤ m) steps of Arnoldi on ``(I − CᵀC)·apply`` from ``r/β`` (``C``:
    ``(k, n)`` orthonormal rows), stopping once the least-squares residual is ``≤ target``.

    The residual of ``min ‖βe₁ − H̄_j y‖`` is ``β/‖u‖`` with ``H̄_jᵀu = 0``, ``u₀ = 1``, built one
    entry per step (``u_{j+1} = −H̄[:j+1, j]·u[:j+1] / h_{j+1,j}``): a dot product instead of
    ``j`` sequential Givens rotations, which inside XLA's loop cost more than the product.

    Gram–Schmidt is memory-bound (two passes over the basis per step), so the basis is built in
    blocks of ``_BLOCK`` rows, one ``while_loop`` per block: step ``j`` reads the finished blocks
    and the current one, never the zero rows of the blocks still to come (with one loop over a
    zero-padded ``(m+1, n)`` basis, a quarter of every pass read zeros)."""
    n, dtype = r.shape[0], r.dtype
    k = C.shape[0]
    bs = _BLOCK
    finished: list[jax.Array] = []
    cur = jnp.zeros((bs + 1, n), dtype).at[0].set(r / beta)
    H = jnp.zeros((m + 1, m), dtype)
    B = jnp.zeros((k, m), dtype)
    u = jnp.zeros(m + 1, dtype).at[0].set(1.0)
    steps = jnp.zeros((), jnp.int32)

    for start in range(0, m, bs):
        stop = min(start + bs, m)
        done = tuple(finished)

        def cond(c, stop=stop):
            _, _, _, u, j = c
            return (j < jnp.minimum(allowed, stop)) & (beta > target * jnp.linalg.norm(u))

        def body(c, start=start, done=done):
            cur, H, B, u, j = c
            w = apply(cur[j - start])

            def project(w):
                # Classical Gram–Schmidt against C, the finished blocks and the current one
                # (its rows past j are zero).
                bc, hs = C @ w, [Vb @ w for Vb in done] + [cur @ w]
                w = w - bc @ C - sum(h @ Vb for h, Vb in zip(hs, [*done, cur], strict=True))
                return w, bc, jnp.concatenate(hs)

            w, bc, h = project(w)
            if reorthogonalize:  # CGS2; PETSc's default is one pass
                w, bc2, h2 = project(w)
                bc, h = bc + bc2, h + h2
            h = jnp.zeros(m + 1, dtype).at[: h.shape[0]].set(h[: m + 1])
            norm = jnp.linalg.norm(w)
            breakdown = norm <= 1e-14 * jnp.linalg.norm(h)
            safe = jnp.where(breakdown, 1.0, norm)
            v_next = jnp.where(breakdown, 0.0, w / safe)
            col = h.at[j + 1].set(jnp.where(breakdown, 0.0, norm))
            # A breakdown makes the residual exact (zero): an infinite u ends the cycle.
            u_next = jnp.where(breakdown, jnp.inf, -(h @ u) / safe)
            return (cur.at[j - start + 1].set(v_next), H.at[:, j].set(col),
                    B.at[:, j].set(bc), u.at[j + 1].set(u_next), j + 1)  # fmt: skip

        cur, H, B, u, steps = jax.lax.while_loop(cond, body, (cur, H, B, u, steps))
        finished.append(cur[:bs])
        cur = jnp.zeros((bs + 1, n), dtype).at[0].set(cur[bs])
    V = jnp.concatenate([*finished, cur[:1]])[: m + 1]
    return _Cycle(V, H, B, u, steps)


def _pad(a: jax.Array) -> jax.Array:
    """A zero coefficient for the basis' last row: ``_pad(y) @ V`` instead of ``y @ V[:m]``, whose
    slice XLA copies (a pass over ``V``)."""
    return jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, 1)])


def _small(a: jax.Array) -> jax.Array:
    """The small left factor of a product with n-long rows, materialised: XLA otherwise folds its
    transpose into the product, which XLA:CPU then runs 2× slower."""
    return jax.lax.optimization_barrier(a)


def _ls_solution(c: _Cycle, beta: jax.Array, m: int) -> jax.Array:
    """``y`` of ``min ‖βe₁ − H̄y‖`` over the steps done (zero beyond them), by QR."""
    used = jnp.arange(m) < c.steps
    # Unused columns become e_{i+1} (rows with a zero right-hand side): their y is 0.
    H = jnp.where(used[None, :], c.H, 0.0) + jnp.diag(jnp.where(used, 0.0, 1.0), k=-1)[:, :m]
    Q, R = jnp.linalg.qr(H)
    return jax.scipy.linalg.solve_triangular(R, beta * Q[0], lower=False)


# ------------------------------------------------------------------------------------ GMRES


@eqx.filter_jit
def _gmres(op, b, x0, tol, max_steps, precond, m, reorth):
    b_norm = jnp.linalg.norm(b)
    target = tol * b_norm

    def apply(v):
        return op.mv(precond(v))

    def cond(c):
        _, _, rnorm, mv, stalled = c
        return (rnorm > target) & (mv < max_steps) & ~stalled & jnp.isfinite(rnorm)

    def body(c):
        x, r, rnorm, mv, _ = c
        cyc = _arnoldi(apply, jnp.zeros((0, b.shape[0]), b.dtype), r, rnorm, m,
                       jnp.minimum(m, max_steps - mv), target, reorth)  # fmt: skip
        y = _ls_solution(cyc, rnorm, m)
        x = x + precond(_pad(y) @ cyc.V)
        r = b - op.mv(x)
        new = jnp.linalg.norm(r)
        return x, r, new, mv + cyc.steps + 1, new >= rnorm

    r0 = b - op.mv(x0)
    x, _, rnorm, mv, stalled = jax.lax.while_loop(
        cond, body, (x0, r0, jnp.linalg.norm(r0), jnp.ones((), jnp.int32), jnp.asarray(False))
    )
    return x, mv, _code(rnorm, target, stalled)


def _code(rnorm, target, stalled):
    code = RESULTS.where(rnorm <= target, RESULTS.successful, RESULTS.max_steps_reached)
    return RESULTS.where((rnorm > target) & stalled, RESULTS.stagnation, code)


def gmres(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    restart: int = 40,
    tol: float = 1e-8,
    max_steps: int | None = None,
    preconditioner: Callable | None = None,
    reorthogonalize: bool = False,
    throw: bool = True,
) -> KrylovResult:
    """Restarted GMRES(``restart``) until ``‖b − Ax‖ ≤ tol·‖b‖`` (module docstring).

    ``max_steps``: cap on products with ``A`` (default ``min(10n, 10000)``, PETSc's cap).
    ``reorthogonalize``: a second Gram–Schmidt pass per step (CGS2; ~2× the cost per step)."""
    op, b, x0, tol, max_steps, precond = _prepare("gmres", A, b, x0, tol, max_steps,
                                                  preconditioner)  # fmt: skip
    V.check_int("gmres", "restart", restart, low=1)
    x, mv, code = _gmres(op, b, x0, tol, max_steps, precond, min(restart, op.n),
                         bool(reorthogonalize))  # fmt: skip
    return _finish(op, b, x, mv, code, throw)


# -------------------------------------------------------------------------------------- CG


@eqx.filter_jit
def _cg(op, b, x0, tol, max_steps, precond):
    target = tol * jnp.linalg.norm(b)
    r = b - op.mv(x0)
    z = precond(r)

    def cond(c):
        _, r, _, _, mv = c
        rnorm = jnp.linalg.norm(r)
        return (rnorm > target) & (mv < max_steps) & jnp.isfinite(rnorm)

    def body(c):
        x, r, p, rz, mv = c
        q = op.mv(p)
        alpha = rz / (p @ q)
        x, r = x + alpha * p, r - alpha * q
        z = precond(r)
        rz_new = r @ z
        return x, r, z + (rz_new / rz) * p, rz_new, mv + 1

    x, r, _, _, mv = jax.lax.while_loop(cond, body, (x0, r, z, r @ z, jnp.ones((), jnp.int32)))
    rnorm = jnp.linalg.norm(r)
    return x, mv, _code(rnorm, target, jnp.asarray(False))


def cg(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    tol: float = 1e-8,
    max_steps: int | None = None,
    preconditioner: Callable | None = None,
    throw: bool = True,
) -> KrylovResult:
    """Preconditioned conjugate gradients for symmetric positive definite ``A`` (and ``M``)."""
    op, b, x0, tol, max_steps, precond = _prepare("cg", A, b, x0, tol, max_steps, preconditioner)
    x, mv, code = _cg(op, b, x0, tol, max_steps, precond)
    return _finish(op, b, x, mv, code, throw)


# ----------------------------------------------------------------------------------- GCRO-DR


def _eig(M: jax.Array) -> tuple[jax.Array, jax.Array]:
    if jax.default_backend() == "cpu":
        return jnp.linalg.eig(M)
    ctype = jnp.result_type(M.dtype, jnp.complex64)
    shapes = (jax.ShapeDtypeStruct(M.shape[:1], ctype), jax.ShapeDtypeStruct(M.shape, ctype))
    return jax.pure_callback(
        lambda a: tuple(x.astype(ctype) for x in np.linalg.eig(a)), shapes, M
    )  # fmt: skip


def _harmonic_ritz(G: jax.Array, WV: jax.Array, k: int) -> jax.Array:
    """``(k+m, k)`` real basis of the ``k`` harmonic Ritz vectors of smallest ``|θ|`` for
    ``GᵀG z = θ GᵀWV z`` (as the largest ``|μ|`` of ``(GᵀG)⁻¹GᵀWV``, ``μ = 1/θ``)."""
    gram = G.T @ G
    scale = jnp.max(jnp.abs(jnp.diag(gram)))
    gram = gram + 1e-14 * scale * jnp.eye(gram.shape[0], dtype=gram.dtype)
    mu, Z = _eig(jnp.linalg.solve(gram, G.T @ WV))
    idx = jnp.argsort(-jnp.abs(mu))[:k]
    mu, Z = mu[idx], Z[:, idx]
    # A complex pair's real and imaginary parts span its invariant subspace.
    return jnp.where(jnp.imag(mu)[None, :] >= 0, jnp.real(Z), jnp.imag(Z))


def _cholesky_qr_rows(X: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``X = RᵀQ`` for ``X`` with ``k`` long rows: returns ``Q`` (orthonormal rows), ``R⁻ᵀ`` and
    whether ``X`` has full rank.

    Shifted Cholesky-QR3 (Fukaya, Kannan, Nakatsukasa, Yamamoto & Yanagisawa, SIAM J. Sci.
    Comput. 2020): three passes ``G = XXᵀ``, ``G = LLᵀ``, ``X ← L⁻¹X``, the first with a shift
    of ``G`` by ``10·k·ε·tr G`` (stable for ``κ(X) ≲ ε⁻¹``). Only ``k × k`` Gram matrices and
    products of ``k × k`` matrices with ``X`` touch the long rows, so rows sharded across
    devices stay sharded (a Householder QR or a triangular solve with ``n`` right-hand sides
    would be gathered onto every device).
    """
    k = X.shape[0]
    eye = jnp.eye(k, dtype=X.dtype)
    eps = jnp.finfo(X.dtype).eps
    Rinv_t = eye  # accumulates L₃⁻¹L₂⁻¹L₁⁻¹ = R⁻ᵀ
    diag = jnp.ones((k,), X.dtype)  # diag(R) = ∏ diag(Lᵢ)
    for shifted in (True, False, False):
        G = X @ X.T
        if shifted:
            G = G + 10.0 * k * eps * jnp.trace(G) * eye
        L = jnp.linalg.cholesky(G)
        Linv = jax.scipy.linalg.solve_triangular(L, eye, lower=True)
        X = Linv @ X
        Rinv_t = Linv @ Rinv_t
        diag = diag * jnp.diag(L)
    ok = jnp.all(jnp.isfinite(Rinv_t)) & jnp.all(diag > 1e-10 * jnp.max(diag))
    return X, Rinv_t, ok


@eqx.filter_jit
def _gcrodr(op, b, x0, tol, max_steps, precond, m, k, U0, valid0, reorth):
    dtype = b.dtype
    s = m - k  # Arnoldi steps per cycle
    target = tol * jnp.linalg.norm(b)

    def apply(v):
        return op.mv(precond(v))

    x = x0
    r = b - op.mv(x)
    mv = jnp.ones((), jnp.int32)

    # 1. Recycle: AU = QR, C = Q, U ← UR⁻¹ (rows: U and C are stored (k, n)).
    Ut = U0.T
    AU = jax.vmap(apply)(Ut)
    C, Rinv_t, ok = _cholesky_qr_rows(AU)
    ok = valid0 & ok
    mv = mv + jnp.where(valid0, k, 0)
    C = jnp.where(ok, C, 0.0)
    Ut = jnp.where(ok, Rinv_t @ Ut, 0.0)
    cr = C @ r
    x = x + precond(cr @ Ut)
    r = r - cr @ C
    # The k × k products CUᵀ and UUᵀ are formed here once per system and then carried through
    # the cycles by small algebra (step 3 below), so that a cycle touches the n-long rows of C
    # and U only to update them.
    CU, UU = C @ Ut.T, Ut @ Ut.T

    def cond(c):
        r, mv, stalled = c[1], c[6], c[8]
        rnorm = jnp.linalg.norm(r)
        return (rnorm > target) & (mv < max_steps) & ~stalled & jnp.isfinite(rnorm)

    def body(c):
        x, r, Ut, C, CU, UU, mv, valid, _ = c
        rnorm = jnp.linalg.norm(r)
        allowed = jnp.minimum(s, max_steps - mv)
        cyc = _arnoldi(apply, C, r, rnorm, s, allowed, target, reorth)
        y = _ls_solution(cyc, rnorm, s)
        x = x + precond(_pad(y) @ cyc.V - (cyc.B @ y) @ Ut)
        r_new = b - op.mv(x)
        # New recycled space from this cycle (harmonic Ritz, module docstring step 3). D scales
        # U to unit rows; it is folded into the small factors (Us = D·U is never formed).
        u_sq = jnp.diag(UU)
        d = jnp.where(u_sq > 0, jax.lax.rsqrt(jnp.where(u_sq > 0, u_sq, 1.0)), 1.0)
        used = jnp.arange(s) < cyc.steps
        eye_used = jnp.eye(s + 1, s, dtype=dtype) * used[None, :]
        Hbar = cyc.H + jnp.diag(jnp.where(used, 0.0, 1.0), k=-1)[: s + 1, :s]
        G = jnp.block([[jnp.diag(d), cyc.B], [jnp.zeros((s + 1, k), dtype), Hbar]])
        VUs = (Ut @ cyc.V.T).T * d[None, :]  # V·Usᵀ, the one product with n-long rows here
        WV = jnp.block([[CU * d[None, :], jnp.zeros((k, s), dtype)], [VUs, eye_used]])
        P = _harmonic_ritz(G, WV, k)
        Qn, Rn = jnp.linalg.qr(G @ P)
        rdiag = jnp.abs(jnp.diag(Rn))
        good = jnp.all(rdiag > 1e-12 * jnp.max(rdiag)) & jnp.all(jnp.isfinite(Rn))
        Rn = jnp.where(good, Rn, jnp.eye(k, dtype=dtype))
        C_new = _small(Qn[:k].T) @ C + _small(Qn[k:].T) @ cyc.V
        # U = ỸR⁻¹ with Ỹ = V̂P: fold R⁻¹ into the small (k+s) × k factor first, so that the
        # n-long rows are touched by one product (a triangular solve with n right-hand sides
        # and the product Ỹ each cost more than it).
        F = jax.scipy.linalg.solve_triangular(Rn.T, P.T, lower=True)  # (k, k + s)
        U_new = _small(F[:, :k] * d[None, :]) @ Ut + _small(_pad(F[:, k:] * used[None, :])) @ cyc.V
        # C_new·U_newᵀ = Qᵀ(ŴV̂ᵀ)Fᵀ and U_new·U_newᵀ = F(V̂V̂ᵀ)Fᵀ, with ŴV̂ᵀ = WV and
        # V̂V̂ᵀ = [[D·UUᵀ·D, (V_s·Usᵀ)ᵀ], [V_s·Usᵀ, I]].
        VsUs = VUs[:s] * used[:, None]
        gram = jnp.block([[UU * d[:, None] * d[None, :], VsUs.T], [VsUs, eye_used[:s]]])
        CU_new, UU_new = Qn.T @ WV @ F.T, F @ gram @ F.T
        keep = lambda new, old: jnp.where(good, new, old)
        stalled = jnp.linalg.norm(r_new) >= rnorm
        return (x, r_new, keep(U_new, Ut), keep(C_new, C), keep(CU_new, CU),
                keep(UU_new, UU), mv + cyc.steps + 1, valid | good, stalled)  # fmt: skip

    init = (x, r, Ut, C, CU, UU, mv, ok, jnp.asarray(False))
    x, r, Ut, _, _, _, mv, valid, stalled = jax.lax.while_loop(cond, body, init)
    code = _code(jnp.linalg.norm(r), target, stalled)
    return x, mv, code, RecycleState(Ut.T, valid & jnp.any(Ut != 0))


def gcrodr(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    restart: int = 40,
    recycle: int = 20,
    tol: float = 1e-8,
    max_steps: int | None = None,
    state: RecycleState | None = None,
    preconditioner: Callable | None = None,
    reorthogonalize: bool = False,
    throw: bool = True,
) -> KrylovResult:
    """GCRO-DR(``restart``, ``recycle``) from an optional recycle ``state`` (module docstring).

    Returns the new state in ``.state``: pass it to the next, similar, system."""
    owner = "gcrodr"
    op, b, x0, tol, max_steps, precond = _prepare(owner, A, b, x0, tol, max_steps,
                                                  preconditioner)  # fmt: skip
    V.check_int(owner, "restart", restart, low=2)
    V.check_int(owner, "recycle", recycle, low=1)
    m = min(restart, op.n)
    if recycle >= m:
        raise ValueError(
            f"{owner}: `recycle` must be smaller than `restart` (and n), got recycle={recycle}, "
            f"restart={restart}, n={op.n}."
        )
    if state is None:
        state = RecycleState.empty(op.n, recycle, b.dtype)
    if state.U.shape != (op.n, recycle):
        raise ValueError(
            f"{owner}: `state.U` must have shape (n, recycle) = {(op.n, recycle)}, got "
            f"{state.U.shape}."
        )
    x, mv, code, new_state = _gcrodr(op, b, x0, tol, max_steps, precond, m, recycle,
                                     state.U.astype(b.dtype), state.valid,
                                     bool(reorthogonalize))  # fmt: skip
    return _finish(op, b, x, mv, code, throw, new_state)
