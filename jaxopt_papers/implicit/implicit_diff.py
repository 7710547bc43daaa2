"""Implicit differentiation of solvers: ``custom_root``, ``custom_fixed_point``, ``root_vjp/jvp``.

Blondel, Berthet, Cuturi, Frostig, Hoyer, Llinares-López, Pedregosa, Vert, "Efficient and
Modular Implicit Differentiation", NeurIPS 2022, arXiv 2105.15183. Reference code: jaxopt 0.8.5
(``jaxopt/_src/implicit_diff.py``).

If a solver returns ``x*(θ)`` with ``F(x*(θ), θ) = 0`` and ``A = ∂₁F(x*, θ)`` is invertible, the
implicit function theorem gives ``∂x*(θ) = −A⁻¹ B`` with ``B = ∂₂F(x*, θ)``:

- forward mode: ``ẋ = −A⁻¹ (B θ̇)``;
- reverse mode: ``θ̄ = Bᵀ u`` with ``Aᵀ u = −x̄``.

``A`` and ``B`` are never formed: their products come from ``jax.jvp``/``jax.vjp`` of ``F``, and
the system is solved by a :class:`~jaxopt_papers.implicit.LinearSolve`.

Calling convention (the same as jaxopt's, so code migrates by changing the import):
``solver(init, *args, **kwargs)`` returns ``x`` (or ``(x, aux)`` with ``has_aux=True``) and
``optimality_fn(x, *args, **kwargs)`` is called with **exactly** the arguments the solver got
after ``init``. Gradients flow to every floating-point array in ``args`` and ``kwargs`` (any
pytree) and to floating-point arrays the two functions close over; none flows to ``init`` or
to ``aux``, as the solution does not depend on them.

Differences from the reference code:

- **Forward and reverse mode.** jaxopt defines a ``custom_vjp`` (no ``jax.jvp``/``jacfwd``).
  Here the derivative rule is a ``custom_jvp`` whose linear solve is
  ``jax.lax.custom_linear_solve``; reverse mode comes from JAX transposing it (the transposed
  system is solved with ``Aᵀ``), so ``grad``, ``jacrev``, ``jvp``, ``jacfwd`` and ``vmap`` of any
  of them all work.
- **No signature binding.** jaxopt maps keyword arguments to positions by inspecting the
  signature of ``F`` (fragile: jaxopt #31, #111, #141; a ``**kwargs`` in ``F`` is an error).
  Here ``F`` simply receives the solver's ``*args, **kwargs``; if it cannot accept them a
  ``TypeError`` says so at trace time.
- **Closures are differentiated.** Floating-point tracers that ``solver`` or ``F`` close over
  are hoisted with ``jax.closure_convert`` and treated as inputs of ``F``, instead of silently
  getting no gradient.
- **Checked backward solve.** The default is :class:`LinearSolve` (dense LU for small problems,
  CG or GMRES otherwise) rather than normal-equation CG at ``tol=1e-5``; a failed backward
  solve raises (``throw=True``) or gives NaN (``throw=False``), never a silently wrong gradient.
- **Checked root.** The implicit function theorem holds only at a root: the derivative rule
  evaluates ``F`` at the solver's answer and, when its relative residual exceeds ``root_tol``
  (``‖F(x)‖ / ‖∂F·x − F(x)‖`` for ``custom_root``, the scale of the local affine model ``F``;
  ``‖T(x) − x‖ / max(‖T(x)‖, ‖x‖)`` for ``custom_fixed_point``), raises (``throw=True`` of the
  linear solve, the default) or returns NaN derivatives (``throw=False``) instead of a silently
  wrong gradient. ``root_tol=None``: ``1e-4`` in float64, ``1e-2`` in lower precision.
- Non-array arguments (Python numbers, strings, callables) are passed through as constants.
- jaxopt's calling forms are accepted: the positional order ``custom_root(F, has_aux, solve,
  reference_signature)`` (so ``custom_root(F, True)`` works), ``optimality_fun=`` /
  ``fixed_point_fun=`` and ``reference_signature=``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_papers import _validation as V
from jaxopt_papers._solution import RESULTS, raise_if_failed
from jaxopt_papers.implicit.linear_solve import LinearSolve, as_linear_solve

__all__ = ["custom_fixed_point", "custom_root", "root_jvp", "root_vjp"]


def _zero_tangent(x: Any) -> Any:
    if eqx.is_inexact_array(x):
        return jnp.zeros_like(x)
    return np.zeros(np.shape(x), dtype=jax.dtypes.float0)


def _check_callable(owner: str, name: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{owner}: `{name}` must be callable, got {type(fn).__name__}.")


def _check_signature(owner: str, fn: Callable, name: str, args: tuple, kwargs: dict) -> None:
    """Raise a clear TypeError if ``fn(x, *args, **kwargs)`` cannot bind."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins, some C callables: nothing to check
        return
    try:
        sig.bind(None, *args, **kwargs)
    except TypeError as e:
        given = ", ".join(
            ["x", *(f"<arg {i}>" for i in range(len(args))), *(f"{k}=..." for k in kwargs)]
        )
        raise TypeError(
            f"{owner}: `{name}` is called as {name}({given}), i.e. with the solution followed by "
            f"exactly the arguments the solver received after `init`, but its signature is "
            f"{sig}: {e}. Make the two signatures agree (for example add the missing "
            f"parameters to `{name}` and ignore them)."
        ) from None


def _check_solver_signature(owner: str, solver: Callable, args: tuple, kwargs: dict) -> None:
    """Raise a clear TypeError if ``solver(init, *args, **kwargs)`` cannot bind."""
    try:
        sig = inspect.signature(solver)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(None, *args, **kwargs)
    except TypeError as e:
        raise TypeError(
            f"{owner}: `solver` is called as solver(init, <{len(args)} positional args>"
            f"{', ' + ', '.join(f'{k}=...' for k in kwargs) if kwargs else ''}), but its "
            f"signature is {sig}: {e}. The decorated solver takes the initial point first, "
            "then the arguments that are passed to the optimality function."
        ) from None


def _check_cotangent(owner: str, sol: Any, cotangent: Any) -> None:
    ss, sc = jax.tree.structure(sol), jax.tree.structure(cotangent)
    shapes_s = [jnp.shape(a) for a in jax.tree.leaves(sol)]
    shapes_c = [jnp.shape(a) for a in jax.tree.leaves(cotangent)]
    if ss != sc or shapes_s != shapes_c:
        raise ValueError(
            f"{owner}: `cotangent` must have the structure and shapes of `sol` ({ss} with "
            f"shapes {shapes_s}), got {sc} with shapes {shapes_c}."
        )


def _check_output(owner: str, name: str, x: Any, out: Any) -> None:
    sx, so = jax.tree.structure(x), jax.tree.structure(out)
    shapes_x = [jnp.shape(a) for a in jax.tree.leaves(x)]
    shapes_o = [jnp.shape(o) for o in jax.tree.leaves(out)]
    if sx != so or shapes_x != shapes_o:
        raise TypeError(
            f"{owner}: `{name}` must return a pytree with the structure and shapes of the "
            f"solution; the solution is {sx} with shapes {shapes_x}, `{name}` returned {so} "
            f"with shapes {shapes_o}."
        )


_NOT_A_ROOT = (
    "{owner}: the solver's answer is not a root of the optimality condition (its relative "
    "residual is above `root_tol`), so the implicit derivative at it would be wrong. Solve the "
    "forward problem more accurately (a smaller `tol`, a larger `max_steps`), or check that "
    "the optimality function matches the solver's problem."
)


def _norm(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.abs(v) ** 2) for v in leaves)) if leaves else jnp.zeros(())


def _is_root(fx: Any, x: Any, a_lin: Callable, fixed_point: bool, root_tol: Any) -> jax.Array:
    """Whether ``x`` is a root of ``F`` (or a fixed point of ``T``) to ``root_tol``."""
    leaves = jax.tree.leaves(x)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    if root_tol is None:
        root_tol = 1e-4 if jnp.finfo(dtype).bits >= 64 else 1e-2
    if fixed_point:  # fx = T(x)
        num = _norm(jax.tree.map(jnp.subtract, fx, x))
        den = jnp.maximum(_norm(fx), _norm(x))
    else:  # the local affine model F(u) ≈ A u − c with c = A x − F(x)
        num = _norm(fx)
        den = _norm(jax.tree.map(jnp.subtract, a_lin(x), fx))
    rel = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), num)
    return jax.lax.stop_gradient(rel <= root_tol)


def _implicit_solve(
    owner: str,
    solver: Callable,
    optimality_fn: Callable,
    linear_solve: LinearSolve,
    has_aux: bool,
    symmetric: bool,
    fixed_point: bool,
    root_tol: float | None,
    init: Any,
    args: tuple,
    kwargs: dict,
) -> Any:
    fname = "fixed_point_fn" if fixed_point else "optimality_fn"
    _check_signature(owner, optimality_fn, fname, args, kwargs)
    _check_solver_signature(owner, solver, args, kwargs)
    dyn, static = eqx.partition((args, kwargs), eqx.is_array)

    def solver_flat(init_: Any, dyn_: Any) -> Any:
        a, k = eqx.combine(dyn_, static)
        return solver(init_, *a, **k)

    def f_flat(x: Any, dyn_: Any) -> Any:
        a, k = eqx.combine(dyn_, static)
        return optimality_fn(x, *a, **k)

    # Hoist closed-over tracers so that they are inputs (differentiated), not hidden constants.
    solver_conv, s_consts = jax.closure_convert(solver_flat, init, dyn)
    out_shape = jax.eval_shape(solver_conv, init, dyn, *s_consts)
    x_shape = out_shape[0] if has_aux else out_shape
    f_conv, f_consts = jax.closure_convert(f_flat, x_shape, dyn)
    _check_output(owner, fname, x_shape, jax.eval_shape(f_conv, x_shape, dyn, *f_consts))

    def solve(matvec: Callable, b: Any) -> Any:
        return linear_solve(matvec, b, symmetric=symmetric, report_residual=False)[0]

    @jax.custom_jvp
    def core(init_: Any, dyn_: Any, f_consts_: list, s_consts_: list) -> Any:
        return solver_conv(init_, dyn_, *s_consts_)

    @core.defjvp
    def core_jvp(primals: tuple, tangents: tuple) -> tuple[Any, Any]:
        init_, dyn_, f_consts_, s_consts_ = primals
        _, t_dyn, t_f_consts, _ = tangents
        # Primals of weakly typed Python scalars may arrive unboxed: box them.
        dyn_, f_consts_ = jax.tree.map(jnp.asarray, (dyn_, f_consts_))
        out = solver_conv(init_, dyn_, *s_consts_)
        x = out[0] if has_aux else out

        spec = jax.tree.map(eqx.is_inexact_array, (dyn_, f_consts_))
        theta, theta_rest = eqx.partition((dyn_, f_consts_), spec)
        t_theta = eqx.filter((t_dyn, t_f_consts), spec)

        def f_of_theta(th: Any) -> Any:
            d, c = eqx.combine(th, theta_rest)
            return f_conv(x, d, *c)

        _, b_theta = jax.jvp(f_of_theta, (theta,), (t_theta,))
        fx, a_lin = jax.linearize(lambda u: f_conv(u, dyn_, *f_consts_), x)
        root_ok = _is_root(fx, x, a_lin, fixed_point, root_tol)
        if fixed_point:  # F = T − x: solve (I − ∂T/∂x) ẋ = ∂T/∂θ θ̇
            matvec = lambda u: jax.tree.map(jnp.subtract, u, a_lin(u))
            rhs = b_theta
        else:  # solve (∂F/∂x) ẋ = −∂F/∂θ θ̇
            matvec = a_lin
            rhs = jax.tree.map(jnp.negative, b_theta)
        # Solve in one flat vector: with a pytree right-hand side, a leaf that does not depend
        # on the tangent (e.g. the constraint block of a KKT system differentiated in the
        # objective's parameters) would be a constant that custom_linear_solve cannot transpose.
        rhs_flat, unravel = ravel_pytree(rhs)
        flat_matvec = lambda v: ravel_pytree(matvec(unravel(v)))[0]
        x_dot = unravel(
            jax.lax.custom_linear_solve(
                flat_matvec, rhs_flat, solve, transpose_solve=solve, symmetric=symmetric
            )
        )
        code = RESULTS.where(root_ok, RESULTS.successful, RESULTS.inaccurate)
        if linear_solve.throw:
            x_dot = raise_if_failed(x_dot, code, {"inaccurate": _NOT_A_ROOT.format(owner=owner)})
        else:
            # A factor (1 or NaN) rather than a `where`: it survives transposition, so reverse
            # mode gets NaN too.
            nan_if_bad = jnp.where(root_ok, 1.0, jnp.nan)
            x_dot = jax.tree.map(lambda v: v * nan_if_bad.astype(v.dtype), x_dot)
        if has_aux:
            return out, (x_dot, jax.tree.map(_zero_tangent, out[1]))
        return out, x_dot

    return core(init, dyn, f_consts, s_consts)


def custom_root(
    optimality_fn: Callable | None = None,
    has_aux: bool = False,
    solve: Any = None,
    reference_signature: Any = None,
    *,
    optimality_fun: Callable | None = None,
    symmetric: bool | None = None,
    root_tol: float | None = None,
) -> Callable[[Callable], Callable]:
    """Decorate ``solver(init, *args, **kwargs)`` so that it is differentiated implicitly.

    If ``F(x*(θ), θ) = 0`` at the solver's answer and ``A = ∂₁F`` is invertible, the implicit
    function theorem gives the derivative without unrolling the solver: forward mode solves
    ``A ẋ = −∂₂F·θ̇``, reverse mode solves ``Aᵀ u = −x̄`` and returns ``θ̄ = ∂₂Fᵀ u`` (Blondel et
    al., "Efficient and Modular Implicit Differentiation", arXiv:2105.15183; the calling
    convention is jaxopt's ``custom_root``). ``F`` receives exactly the arguments the solver
    got after ``init``; gradients flow to every floating-point array among them and to arrays
    the two functions close over. ``jax.grad``, ``jax.jvp``, ``jacfwd``/``jacrev`` and ``vmap``
    all work (a ``custom_jvp`` whose solve JAX transposes; jaxopt offers reverse mode only).

    Args:
      optimality_fn: ``F(x, *args, **kwargs)``, zero at the solver's answer, returning a pytree
        shaped like ``x``. ``optimality_fun=`` (jaxopt's name) is an alias. The positional
        order ``(optimality_fn, has_aux, solve, reference_signature)`` is jaxopt's, so
        ``custom_root(F, True)`` means ``has_aux=True``.
      solve: how ``∂F/∂x`` systems are solved: ``None`` (``LinearSolve()``), a
        :class:`LinearSolve`, a lineax solver, a solver name or a jaxopt-style callable
        ``solve(matvec, b)``.
      has_aux: the solver returns ``(x, aux)``; ``aux`` is passed through without gradient.
      reference_signature: optional function or :class:`inspect.Signature` (jaxopt's option,
        for an ``F`` whose own signature cannot place the solver's keyword arguments, e.g.
        ``F(x, *args)``): the solver's ``(init, *args, **kwargs)`` are bound to it and ``F`` is
        called with the bound arguments (keywords of named parameters become positional).
        ``None``: ``F`` receives the solver's arguments as given.
      symmetric: declare ``∂F/∂x`` symmetric positive definite (lets ``"auto"`` use CG).
        ``None`` reads ``optimality_fn.symmetric`` (set by the catalogue in
        :mod:`jaxopt_papers.implicit.optimality`), else ``False``.
      root_tol: largest relative residual ``‖F(x)‖ / ‖∂F·x − F(x)‖`` of ``optimality_fn`` at
        the solver's answer for which derivatives are returned (``None``: 1e-4 in float64, 1e-2
        else). Above it the derivative rule raises, or returns NaN if the linear solve has
        ``throw=False``.

    Returns:
      A decorator: ``custom_root(F)(solver)`` has the solver's signature.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxopt_papers.implicit import custom_root
      >>> F = lambda x, a: x**2 - a          # root: sqrt(a)
      >>> @custom_root(F)
      ... def sqrt(init, a):
      ...     return jax.lax.fori_loop(0, 50, lambda _, x: 0.5 * (x + a / x), init)
      >>> float(jax.grad(lambda a: sqrt(1.0, a))(4.0))  # 1 / (2 sqrt(a))
      0.25
    """
    fn = _jaxopt_args("custom_root", "optimality_fn", optimality_fn, optimality_fun, has_aux)
    fn = _with_reference_signature("custom_root", fn, reference_signature)
    return _decorator("custom_root", fn, solve, has_aux, symmetric, False, root_tol)


def custom_fixed_point(
    fixed_point_fn: Callable | None = None,
    has_aux: bool = False,
    solve: Any = None,
    reference_signature: Any = None,
    *,
    fixed_point_fun: Callable | None = None,
    symmetric: bool | None = None,
    root_tol: float | None = None,
) -> Callable[[Callable], Callable]:
    """Like :func:`custom_root` for ``x* = T(x*, *args, **kwargs)`` (``F = T − x``).

    The derivative of the fixed point solves ``(I − ∂₁T) ẋ = ∂₂T·θ̇`` (reverse mode: the
    transposed system), jaxopt's ``custom_fixed_point`` convention.

    Args:
      fixed_point_fn: ``T(x, *args, **kwargs)``, returning a pytree shaped like ``x``; the
        solver's answer satisfies ``x = T(x, ...)``. ``fixed_point_fun=`` (jaxopt's name) is
        an alias; the positional order ``(fixed_point_fn, has_aux, solve,
        reference_signature)`` is jaxopt's (see :func:`custom_root`).
      solve: how the ``I − ∂T/∂x`` systems are solved, as in :func:`custom_root`.
      has_aux: the solver returns ``(x, aux)``; ``aux`` is passed through without gradient.
      symmetric: declare ``I − ∂T/∂x`` symmetric positive definite (true for a symmetric
        contraction ``T``), so that CG applies; ``None`` reads ``fixed_point_fn.symmetric``.
      root_tol: largest ``‖T(x) − x‖ / max(‖T(x)‖, ‖x‖)`` at the solver's answer for which
        derivatives are returned (``None``: 1e-4 in float64, 1e-2 else).

    Returns:
      A decorator: ``custom_fixed_point(T)(solver)`` has the solver's signature.

    Example:
      >>> import jax
      >>> from jaxopt_papers.implicit import custom_fixed_point
      >>> T = lambda x, theta: 0.5 * x + theta     # fixed point x* = 2 theta
      >>> @custom_fixed_point(T)
      ... def solve(init, theta):
      ...     return jax.lax.fori_loop(0, 60, lambda _, x: T(x, theta), init)
      >>> float(jax.grad(lambda t: solve(0.0, t))(1.5))  # d(2 theta)/d theta
      2.0
    """
    owner = "custom_fixed_point"
    fn = _jaxopt_args(owner, "fixed_point_fn", fixed_point_fn, fixed_point_fun, has_aux)
    fn = _with_reference_signature(owner, fn, reference_signature)
    return _decorator(owner, fn, solve, has_aux, symmetric, True, root_tol)


def _jaxopt_args(owner: str, name: str, fn: Any, alias: Any, has_aux: Any) -> Any:
    """Resolve ``fn`` and its jaxopt alias (``..._fun``); check ``has_aux`` is a bool."""
    jaxopt_name = name[: -len("fn")] + "fun"
    if fn is not None and alias is not None:
        raise TypeError(f"{owner}: got both `{name}` and `{jaxopt_name}`; pass only one.")
    fn = alias if fn is None else fn
    if fn is None:
        raise TypeError(
            f"{owner}: `{name}` must be callable, got None (pass it as the first argument, or "
            f"as `{jaxopt_name}`)."
        )
    if not isinstance(has_aux, (bool, np.bool_)):
        raise TypeError(
            f"{owner}: `has_aux` (the second positional argument, as in jaxopt) must be a bool, "
            f"got {type(has_aux).__name__}; pass a linear solver by keyword: `solve=...`."
        )
    return fn


def _with_reference_signature(owner: str, fn: Any, reference_signature: Any) -> Any:
    """``fn`` called with its arguments bound to ``reference_signature`` (jaxopt's option)."""
    if reference_signature is None:
        return fn
    if isinstance(reference_signature, inspect.Signature):
        sig = reference_signature
    elif callable(reference_signature):
        sig = inspect.signature(getattr(reference_signature, "subfun", reference_signature))
    else:
        raise TypeError(
            f"{owner}: `reference_signature` must be a function or an inspect.Signature, got "
            f"{type(reference_signature).__name__}."
        )
    _check_callable(owner, "optimality_fn", fn)

    def bound(x: Any, *args: Any, **kwargs: Any) -> Any:
        ba = sig.bind(x, *args, **kwargs)
        return fn(*ba.args, **ba.kwargs)

    bound.__signature__ = sig  # type: ignore[attr-defined]
    bound.symmetric = getattr(fn, "symmetric", False)  # type: ignore[attr-defined]
    return bound


def _decorator(
    owner: str,
    fn: Callable,
    solve: Any,
    has_aux: bool,
    symmetric: bool | None,
    fixed_point: bool,
    root_tol: float | None = None,
) -> Callable[[Callable], Callable]:
    name = "fixed_point_fn" if fixed_point else "optimality_fn"
    _check_callable(owner, name, fn)
    if root_tol is not None:
        V.check_real(owner, "root_tol", root_tol, low=0.0)
    linear_solve = as_linear_solve(solve, owner=owner)
    sym = bool(getattr(fn, "symmetric", False)) if symmetric is None else bool(symmetric)

    def wrap(solver: Callable) -> Callable:
        _check_callable(owner, "solver", solver)

        @functools.wraps(solver)
        def wrapped(init: Any, *args: Any, **kwargs: Any) -> Any:
            return _implicit_solve(
                owner, solver, fn, linear_solve, has_aux, sym, fixed_point, root_tol, init,
                args, kwargs,
            )  # fmt: skip

        return wrapped

    return wrap


def root_vjp(
    optimality_fn: Callable,
    sol: Any,
    args: tuple,
    cotangent: Any,
    solve: Any = None,
    *,
    symmetric: bool = False,
    return_stats: bool = False,
) -> Any:
    """Vector–Jacobian product of a root ``x*(args)`` of ``optimality_fn(x, *args) = 0``.

    Solves ``(∂₁F)ᵀ u = −cotangent`` and returns ``(∂₂F)ᵀ u``, i.e. ``cotangent · ∂x*/∂args``
    by the implicit function theorem (jaxopt's ``root_vjp``).

    Args:
      optimality_fn: ``F(x, *args)``, zero at ``sol``, returning a pytree shaped like ``x``.
      sol: the root ``x*``.
      args: the tuple of arguments of ``F`` after ``x``.
      cotangent: a pytree shaped like ``sol``.
      solve: how the transposed system is solved, as in :func:`custom_root` (``None``:
        :class:`LinearSolve`).
      symmetric: declare ``∂₁F`` symmetric positive definite (lets ``"auto"`` use CG).
      return_stats: also return the linear solve's stats (``residual``, ``num_steps``,
        ``success``).

    Returns:
      A tuple with one cotangent per element of ``args`` (jaxopt's convention), and the stats
      with ``return_stats=True``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.implicit import root_vjp
      >>> F = lambda x, a: x**2 - a             # x*(a) = sqrt(a), dx*/da = 1 / (2 sqrt(a))
      >>> a = jnp.array([4.0, 9.0])
      >>> (a_bar,) = root_vjp(F, jnp.sqrt(a), (a,), jnp.ones(2))
      >>> [round(float(v), 4) for v in a_bar]
      [0.25, 0.1667]
    """
    _check_callable("root_vjp", "optimality_fn", optimality_fn)
    linear_solve = as_linear_solve(solve, owner="root_vjp")
    args = tuple(args)
    _check_cotangent("root_vjp", sol, cotangent)
    _, vjp_x = jax.vjp(lambda x: optimality_fn(x, *args), sol)
    u, stats = linear_solve(
        lambda w: vjp_x(w)[0], jax.tree.map(jnp.negative, cotangent), symmetric=symmetric
    )
    _, vjp_args = jax.vjp(lambda *a: optimality_fn(sol, *a), *args)
    out = vjp_args(u)
    return (out, stats) if return_stats else out


def root_jvp(
    optimality_fn: Callable,
    sol: Any,
    args: tuple,
    tangents: tuple,
    solve: Any = None,
    *,
    symmetric: bool = False,
    return_stats: bool = False,
) -> Any:
    """Jacobian–vector product of a root: solves ``(∂₁F) ẋ = −(∂₂F)·tangents``; returns ``ẋ``.

    The forward-mode counterpart of :func:`root_vjp` (jaxopt's ``root_jvp``): ``ẋ`` is
    ``∂x*/∂args · tangents`` by the implicit function theorem.

    Args:
      optimality_fn: ``F(x, *args)``, zero at ``sol``, returning a pytree shaped like ``x``.
      sol: the root ``x*``.
      args: the tuple of arguments of ``F`` after ``x``.
      tangents: one tangent per element of ``args``.
      solve: how the system is solved, as in :func:`custom_root` (``None``:
        :class:`LinearSolve`).
      symmetric: declare ``∂₁F`` symmetric positive definite (lets ``"auto"`` use CG).
      return_stats: also return the linear solve's stats.

    Returns:
      ``ẋ``, a pytree shaped like ``sol`` (and the stats with ``return_stats=True``).

    Raises:
      ValueError: ``tangents`` does not have one entry per element of ``args``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers.implicit import root_jvp
      >>> F = lambda x, a: x**2 - a             # x*(a) = sqrt(a), dx*/da = 1 / (2 sqrt(a))
      >>> a = jnp.array([4.0, 9.0])
      >>> x_dot = root_jvp(F, jnp.sqrt(a), (a,), (jnp.ones(2),))
      >>> [round(float(v), 4) for v in x_dot]
      [0.25, 0.1667]
    """
    _check_callable("root_jvp", "optimality_fn", optimality_fn)
    linear_solve = as_linear_solve(solve, owner="root_jvp")
    args, tangents = tuple(args), tuple(tangents)
    if len(args) != len(tangents):
        raise ValueError(
            f"root_jvp: `tangents` must have one entry per element of `args` ({len(args)}), "
            f"got {len(tangents)}."
        )
    _, rhs = jax.jvp(lambda *a: optimality_fn(sol, *a), args, tangents)
    _, a_lin = jax.linearize(lambda x: optimality_fn(x, *args), sol)
    x_dot, stats = linear_solve(a_lin, jax.tree.map(jnp.negative, rhs), symmetric=symmetric)
    return (x_dot, stats) if return_stats else x_dot
