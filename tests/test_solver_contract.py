"""Every public solver follows the one contract: it returns ``jaxopt_papers.Solution`` and reports
through ``jaxopt_papers.RESULTS``, which extends ``lineax.RESULTS``.

The public solvers are found by walking the subpackages' ``__all__``: every ``equinox.Module``
class with a ``run`` method must be registered in the shared solver invariant suite
(``tests/solver_cases``), and every public function annotated to return a ``Solution`` (the
convenience wrappers) must be called below.
"""

from __future__ import annotations

import importlib
import inspect

import equinox as eqx
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import jaxopt_papers as jop
from jaxopt_papers import RESULTS, Solution
from tests.solver_cases import CASES

SUBPACKAGES = (
    "bilevel",
    "implicit",
    "proximal",
    "ot",
    "linear",
    "qp",
    "smooth",
    "fixed_point",
    "scipy_wrappers",
)
ABSTRACT = {"IterativeSolver", "BilevelSolver"}


def _public(kind):
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"jaxopt_papers.{sub}")
        for name in module.__all__:
            obj = getattr(module, name)
            if kind(obj):
                yield f"{sub}.{name}", obj


def _is_solver_class(obj):
    return (
        inspect.isclass(obj)
        and issubclass(obj, eqx.Module)
        and callable(getattr(obj, "run", None))
        and obj.__name__ not in ABSTRACT
    )


def _returns_solution(obj):
    if not inspect.isfunction(obj) and not hasattr(obj, "__wrapped__"):
        return False
    try:
        ann = inspect.signature(obj).return_annotation
    except (TypeError, ValueError):
        return False
    return "Solution" in str(ann)


def _small_problems():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2))
    cost = jnp.asarray(((x[:, None] - x[None]) ** 2).sum(-1))
    w = jnp.full(6, 1 / 6)
    M = rng.normal(size=(8, 8))
    A = jnp.asarray(M @ M.T + 8 * np.eye(8))
    b = jnp.asarray(rng.normal(size=8))
    return cost, w, A, b


def _wrapper_calls():
    cost, w, A, b = _small_problems()
    stack = jnp.stack([A, A + jnp.eye(8)])
    rhs = jnp.stack([b, 2 * b])
    return {
        "ot.sinkhorn": lambda: jop.ot.sinkhorn(cost, w, w, 1.0),
        "ot.sinkhorn_newton_sparse": lambda: jop.ot.sinkhorn_newton_sparse(cost, w, w, 1.0),
        "linear.cg": lambda: jop.linear.cg(A, b),
        "linear.gmres": lambda: jop.linear.gmres(A, b),
        "linear.gcrodr": lambda: jop.linear.gcrodr(A, b, restart=6, recycle=2),
        "linear.sor": lambda: jop.linear.sor(A, b, 1.0),
        "linear.ssor_pcg": lambda: jop.linear.ssor_pcg(A, b, 1.0),
        "linear.solve_sequence": lambda: jop.linear.solve_sequence(
            stack, rhs, restart=6, recycle=2
        ),
    }


def test_results_extends_lineax_results():
    for name in lx.RESULTS._name_to_item:
        assert name in RESULTS._name_to_item, name
    promoted = RESULTS.promote(lx.RESULTS.singular)
    assert promoted == RESULTS.singular
    assert RESULTS[promoted] == lx.RESULTS[lx.RESULTS.singular]
    assert jop.implicit.RESULTS is RESULTS and jop.implicit.Solution is Solution


def test_every_public_solver_class_is_in_the_invariant_suite():
    registered = {type(case.solver) for case in CASES}
    classes = dict(_public(_is_solver_class))
    assert classes, "no public solver class found"
    missing = sorted(name for name, cls in classes.items() if cls not in registered)
    assert not missing, f"public solvers without an invariant-suite case: {missing}"


def test_every_public_solver_function_is_called_here():
    found = {name for name, _ in _public(_returns_solution)}
    assert found == set(_wrapper_calls()), (
        f"untested: {sorted(found - set(_wrapper_calls()))}, "
        f"stale: {sorted(set(_wrapper_calls()) - found)}"
    )


@pytest.mark.parametrize("name", sorted(_wrapper_calls()))
def test_solver_functions_return_the_one_solution(name):
    sol = _wrapper_calls()[name]()
    assert type(sol) is Solution
    assert sol.result == RESULTS.successful
    assert isinstance(sol.result, RESULTS)
    assert {"num_steps", "error"} <= set(sol.stats)
    assert np.all(np.isfinite(np.asarray(sol.stats["error"])))
    params, state = sol  # jaxopt-style unpacking
    assert params is sol.value and state is sol.state


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_solver_classes_return_the_one_solution(case):
    sol = case.run(case.solver, case.values[0])
    assert type(sol) is Solution and isinstance(sol.result, RESULTS)
