"""Bad input to the fixed-point solvers: what a user gets, eagerly and under ``jit``.

Written with the reliability suite's table (``tests/reliability/_cases.py``): a static problem
raises a ``TypeError``/``ValueError`` naming the argument; a value problem gives a result code
(with ``throw=False``) or a runtime error saying what to change.
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from jaxopt_papers.fixed_point import (
    AndersonAcceleration,
    AndersonWrapper,
    Broyden,
    FixedPointIteration,
)
from jaxopt_papers.proximal import ProximalGradient, prox_lasso
from tests.reliability._cases import Case, Code, Raises, params, run_case, runtime

X0 = jnp.zeros(3)
T = lambda x, b: 0.5 * jnp.tanh(x) + b
F = lambda x, b: x + 0.1 * x**3 - b
ONE = jnp.ones(3)


def fpi(x0=X0, b=ONE, **kw):
    return FixedPointIteration(T, **{"throw": False, **kw}).run(x0, b)


def aa(x0=X0, b=ONE, **kw):
    return AndersonAcceleration(T, **{"throw": False, **kw}).run(x0, b)


def broyden(x0=X0, b=ONE, **kw):
    return Broyden(F, **{"throw": False, **kw}).run(x0, b)


def make(cls, fn=T, **kw):
    return lambda: cls(fn, **kw)


def run_with(fn, x0=X0, b=ONE, cls=FixedPointIteration, **kw):
    return lambda: cls(fn, throw=False, **kw).run(x0, b)


def wrapper_negative_lasso(lam):
    pg = ProximalGradient(lambda w, b: jnp.sum((w - b) ** 2), prox_lasso, stepsize=0.1)
    return AndersonWrapper(pg, throw=False).run(X0, lam, ONE)


CASES = [
    # static problems: the constructor
    Case("fpi_fun_not_callable", make(FixedPointIteration, fn=3),
         eager=Raises(TypeError, r"`fixed_point_fun` must be callable")),
    Case("fpi_negative_tol", make(FixedPointIteration, tol=-1.0),
         eager=Raises(ValueError, r"`tol` must be a finite number")),
    Case("fpi_zero_max_steps", make(FixedPointIteration, max_steps=0),
         eager=Raises(ValueError, r"`max_steps` must be an int >= 1")),
    Case("aa_history_size_1", make(AndersonAcceleration, history_size=1),
         eager=Raises(ValueError, r"`history_size` must be an int >= 2")),
    Case("aa_mixing_frequency_0", make(AndersonAcceleration, mixing_frequency=0),
         eager=Raises(ValueError, r"`mixing_frequency` must be an int >= 1")),
    Case("aa_negative_ridge", make(AndersonAcceleration, ridge=-1e-3),
         eager=Raises(ValueError, r"`ridge` must be a finite number")),
    Case("aa_nan_beta", make(AndersonAcceleration, beta=float("nan")),
         eager=Raises(ValueError, r"`beta` must be a finite number")),
    Case("broyden_zero_gamma", make(Broyden, fn=F, gamma=0.0),
         eager=Raises(ValueError, r"`gamma` must be nonzero")),
    Case("broyden_decrease_factor_1", make(Broyden, fn=F, decrease_factor=1.0),
         eager=Raises(ValueError, r"`decrease_factor` must be a finite number in \(0")),
    Case("broyden_negative_stepsize", make(Broyden, fn=F, stepsize=-0.5),
         eager=Raises(ValueError, r"`stepsize` must be a finite number")),
    Case("broyden_increase_factor_below_1", make(Broyden, fn=F, increase_factor=0.5),
         eager=Raises(ValueError, r"`increase_factor` must be a finite number")),
    Case("wrapper_not_a_solver", lambda: AndersonWrapper(T),
         eager=Raises(TypeError, r"`solver` must be one of the library's iterative solvers")),
    # static problems: run's arguments
    Case("fpi_integer_init", lambda: fpi(x0=jnp.zeros(3, jnp.int32)),
         eager=Raises(TypeError, r"`init_params` must have floating-point leaves")),
    Case("fpi_empty_init", lambda: FixedPointIteration(lambda x: x).run({}),
         eager=Raises(ValueError, r"`init_params` must contain at least one array")),
    Case("fpi_wrong_output_shape", run_with(lambda x, b: jnp.sum(x) + jnp.sum(b)),
         eager=Raises(ValueError, r"`fixed_point_fun` must return a pytree with the structure")),
    Case("fpi_missing_has_aux", run_with(lambda x, b: (T(x, b), 1.0)),
         eager=Raises(ValueError, r"pass `has_aux=True`")),
    Case("aa_has_aux_not_a_pair", run_with(T, cls=AndersonAcceleration, has_aux=True),
         eager=Raises(ValueError, r"with `has_aux=True`, `fixed_point_fun` must return a pair")),
    Case("fpi_extra_argument", lambda: FixedPointIteration(T).run(X0, ONE, ONE),
         eager=Raises(TypeError, r"`fixed_point_fun` must accept")),
    Case("broyden_shape_mismatch", lambda: broyden(x0=jnp.zeros(2)),
         eager=Raises(ValueError, r"`fun` could not be evaluated at `init_params`")),
    # value problems: result codes (and runtime errors with throw=True)
    Case("fpi_nan_data", fpi, (X0, jnp.array([1.0, jnp.nan, 0.0])), eager=Code("nonfinite")),
    Case("aa_nan_init", aa, (jnp.array([jnp.nan, 0.0, 0.0]), ONE), eager=Code("nonfinite")),
    Case("broyden_nan_data", broyden, (X0, jnp.array([1.0, jnp.inf, 0.0])),
         eager=Code("nonfinite")),
    Case("fpi_too_few_steps", lambda b: fpi(b=b, max_steps=2, tol=1e-12), (ONE,),
         eager=Code("max_steps_reached")),
    Case("broyden_too_few_steps", lambda b: broyden(b=b, max_steps=1, tol=1e-12), (ONE,),
         eager=Code("max_steps_reached")),
    Case("wrapper_negative_lasso_strength", wrapper_negative_lasso, (-1.0,),
         eager=Code("invalid_input")),  # the wrapped solver's own value check
    Case("fpi_throw_max_steps",
         lambda b: FixedPointIteration(T, max_steps=2, tol=1e-12).run(X0, b).value, (ONE,),
         eager=runtime(r"FixedPointIteration did not reach `tol` within `max_steps`")),
    Case("broyden_throw_nonfinite",
         lambda b: Broyden(F).run(X0, b).value, (jnp.array([1.0, jnp.nan, 0.0]),),
         eager=runtime(r"Broyden produced non-finite values")),
    Case("aa_throw_max_steps",
         lambda b: AndersonAcceleration(T, max_steps=2, tol=1e-12).run(X0, b).value, (ONE,),
         eager=runtime(r"AndersonAcceleration did not reach `tol`.*`beta`")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "mode"), params(CASES))
def test_bad_input(case, mode):
    run_case(case, mode)
