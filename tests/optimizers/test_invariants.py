"""The shared invariant suite: every optimizer of ``registry.ENTRIES`` must pass every test.

Each test compares against something independent of the optimizer under test: the same
computation on another path (eager vs jit, plain vs ``inject_hyperparams``), optax's own
wrappers' documented semantics (``MultiSteps`` = averaged gradient, ``masked`` = untouched
leaves, ``apply_if_finite`` = skipped step), or a closed-form minimiser.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_papers as jop
from tests.optimizers.registry import ENTRIES, IDS

pytestmark = pytest.mark.parametrize("entry", ENTRIES, ids=IDS)


def make_params(dtype=jnp.float64, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return {
        "w": jax.random.normal(k1, (6, 4), dtype),
        "b": 0.1 * jax.random.normal(k2, (4,), dtype),
        "conv": jax.random.normal(k3, (2, 2, 3, 4), dtype),
    }


def loss(params):
    return sum(jnp.sum(jnp.sin(3 * x) + 0.5 * x**2 + 0.1 * x) for x in jax.tree.leaves(params))


def grads_at(params):
    return jax.grad(lambda p: loss(p).astype(jnp.float32))(params)


def run(tx, params, steps=8, jit=True, **extra):
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    for _ in range(steps):
        updates, state = update(grads_at(params), state, params, **extra)
        params = optax.apply_updates(params, updates)
    return params, state


def assert_trees_close(a, b, rtol, atol=0.0):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol
        )


def test_jit_equals_eager(entry):
    p = make_params()
    eager, _ = run(entry.make(), p, jit=False)
    jitted, _ = run(entry.make(), p, jit=True)
    assert_trees_close(eager, jitted, rtol=1e-10, atol=1e-12)


def test_no_recompilation(entry):
    tx = entry.make()
    p = make_params()
    update = jax.jit(tx.update)
    state = tx.init(p)
    for _ in range(3):
        u, state = update(grads_at(p), state, p)
        p = optax.apply_updates(p, u)
    assert update._cache_size() == 1


def test_unknown_extra_args_ignored(entry):
    p = make_params()
    plain, _ = run(entry.make(), p)
    extra, _ = run(
        entry.make(), p, unexpected_extra_arg_your_optimizer_does_not_expect=1, value=jnp.array(1.0)
    )
    assert_trees_close(plain, extra, rtol=0)


def test_inject_hyperparams_identical(entry):
    p = make_params()
    plain, _ = run(entry.make(), p)
    injected, state = run(entry.make_injected(), p)
    assert_trees_close(plain, injected, rtol=1e-12, atol=1e-14)
    assert "learning_rate" in state.hyperparams


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_dtypes_preserved(entry, dtype):
    p = make_params(dtype)
    tx = entry.make()
    state = tx.init(p)
    u, new_state = jax.jit(tx.update)(
        jax.tree.map(lambda x: x.astype(dtype), grads_at(p)), state, p
    )
    assert all(x.dtype == dtype for x in jax.tree.leaves(u))
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)
    assert all(bool(jnp.all(jnp.isfinite(x.astype(jnp.float32)))) for x in jax.tree.leaves(u))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_state_type_stable_in_cond(entry, dtype):
    p = make_params(dtype)
    tx = entry.make()
    state = tx.init(p)
    g = jax.tree.map(lambda x: x.astype(dtype), grads_at(p))

    @jax.jit
    def f(pred, state):
        return jax.lax.cond(pred, lambda s: tx.update(g, s, p)[1], lambda s: s, state)

    out = f(True, state)  # raises if the branches' types differ
    assert jax.tree.structure(out) == jax.tree.structure(state)


def test_multisteps_averages_gradients(entry):
    p = make_params()
    k = 3
    multi = optax.MultiSteps(entry.make(), every_k_schedule=k, accumulator_dtype=jnp.float64)
    tx = entry.make()
    ms, s = multi.init(p), tx.init(p)
    multi_update, tx_update = jax.jit(multi.update), jax.jit(tx.update)
    params_m, params_s = p, p
    for step in range(2):
        gs = [
            jax.tree.map(lambda x, i=i: x * (1 + 0.3 * i + step), grads_at(params_s))
            for i in range(k)
        ]
        for g in gs:
            u, ms = multi_update(g, ms, params_m)
            params_m = optax.apply_updates(params_m, u)
        mean = jax.tree.map(lambda *xs: sum(xs) / k, *gs)
        u, s = tx_update(mean, s, params_s)
        params_s = optax.apply_updates(params_s, u)
    assert_trees_close(params_m, params_s, rtol=1e-7, atol=1e-9)


def test_masked_leaves_untouched(entry):
    p = make_params()
    mask = {"w": True, "b": False, "conv": True}
    masked = optax.masked(entry.make(), mask)
    sub = {k: v for k, v in p.items() if mask[k]}
    tx = entry.make()
    g = grads_at(p)
    u, _ = masked.update(g, masked.init(p), p)
    u_sub, _ = tx.update({k: g[k] for k in sub}, tx.init(sub), sub)
    np.testing.assert_array_equal(u["b"], g["b"])  # masked-out leaves pass through unchanged
    assert_trees_close({k: u[k] for k in sub}, u_sub, rtol=1e-12)


def test_init_on_abstract_params(entry):
    p = make_params(jnp.float32)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), p)
    tx = entry.make()
    shapes = jax.eval_shape(tx.init, abstract)
    concrete = tx.init(p)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), shapes) == jax.tree.map(
        lambda x: (x.shape, x.dtype), concrete
    )


def test_nan_gradient_skipped_by_apply_if_finite(entry):
    """The documented remedy for non-finite gradients: the bad step leaves no trace."""
    p = make_params()
    tx = optax.apply_if_finite(entry.make(), max_consecutive_errors=5)
    update = jax.jit(tx.update)
    state = tx.init(p)
    u, state = update(grads_at(p), state, p)
    p = optax.apply_updates(p, u)
    for poison in (jnp.nan, jnp.inf):
        bad = jax.tree.map(lambda x, v=poison: x.at[(0,) * x.ndim].set(v), grads_at(p))
        u_bad, state_bad = update(bad, state, p)
        assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u_bad))
        assert_trees_close(state_bad.inner_state, state.inner_state, rtol=0)
        assert int(state_bad.notfinite_count) == 1
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state_bad.inner_state))
    # the next good step is the one a run that never saw the bad gradient takes
    u_after, _ = update(grads_at(p), state_bad, p)
    u_clean, _ = update(grads_at(p), state, p)
    assert_trees_close(u_after, u_clean, rtol=0)


def _minimise(entry, fn, x0, steps):
    peak = entry.converge.get("learning_rate", entry.kwargs["learning_rate"])
    sched = optax.cosine_decay_schedule(peak, steps, alpha=0.0)
    tx = entry.make(**{**entry.converge, "learning_rate": sched})

    @jax.jit
    def solve(x0):
        def step(carry, _):
            x, s = carry
            u, s = tx.update(jax.grad(fn)(x), s, x)
            return (optax.apply_updates(x, u), s), None

        (x, _), _ = jax.lax.scan(step, (x0, tx.init(x0)), None, length=steps)
        return x

    return solve(x0)


def test_converges_on_quadratic(entry):
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(40, 8)))
    target = jnp.asarray(rng.normal(size=(40, 4)))
    x_star = np.linalg.lstsq(np.asarray(a), np.asarray(target), rcond=None)[0]

    def f(x):
        return 0.5 * jnp.mean(jnp.sum((a @ x["w"] - target) ** 2, axis=1))

    x = _minimise(entry, f, {"w": jnp.zeros((8, 4))}, 2000)["w"]
    err = np.linalg.norm(np.asarray(x) - x_star) / np.linalg.norm(x_star)
    assert err < 2e-2, f"relative distance to the least-squares solution {err:.3g}"


def test_converges_on_rosenbrock(entry):
    def f(x):
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    x = _minimise(entry, f, jnp.array([-1.2, 1.0]), 4000)
    assert np.linalg.norm(np.asarray(x) - 1.0) < 5e-2, f"ended at {x}"


# ------------------------------------------------------------------------ conventions (optax)


def _first_moment(entry, state):
    """The first link's first moment (the field ``mu_dtype`` sets)."""
    return getattr(_own_state(state), entry.mu_field)


def _own_state(state):
    """The state of the optimizer's own transformation inside its optax chain."""
    names = {
        e.__name__
        for e in (
            jop.AdamPState,
            jop.SGDPState,
            jop.AdanState,
            jop.DiffGradState,
            jop.EXAdamState,
            jop.LionKState,
            jop.SPAMState,
            jop.StableSPAMState,
            jop.SGDHDState,
            jop.AdamHDState,
            jop.AdaGradNormState,
        )
    } | {"EmaState", "TraceState"}  # optax's momentum states inside mfac's and mkor's chains

    def walk(s):
        if type(s).__name__ in names:
            return s
        if isinstance(s, tuple) and not hasattr(s, "_fields"):
            for x in s:
                if (found := walk(x)) is not None:
                    return found
        return None

    if (found := walk(state)) is not None:
        return found
    raise AssertionError(f"no optimizer state in {type(state)}")


def test_mu_dtype_stores_the_first_moment(entry):
    """As ``optax.adam(mu_dtype=...)``: updates use the fresh moment, the state stores it cast."""
    p = make_params(jnp.float32)
    g = grads_at(p)
    tx, tx_bf16 = entry.make(), entry.make(mu_dtype=jnp.bfloat16)
    s, s_bf16 = tx.init(p), tx_bf16.init(p)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(_first_moment(entry, s_bf16)))
    u, s = tx.update(g, s, p)
    u_bf16, s_bf16 = tx_bf16.update(g, s_bf16, p)
    assert_trees_close(u_bf16, u, rtol=0)
    mu, mu_bf16 = _first_moment(entry, s), _first_moment(entry, s_bf16)
    for a, b in zip(jax.tree.leaves(mu_bf16), jax.tree.leaves(mu), strict=True):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_array_equal(
            np.asarray(a, np.float32), np.asarray(b.astype(a.dtype), np.float32)
        )
    # every other state leaf keeps the dtype it has without mu_dtype
    others = lambda st: [x.dtype for x in jax.tree.leaves(st._replace(**{entry.mu_field: None}))]
    assert others(_own_state(s_bf16)) == others(_own_state(s))
    # mu_dtype equal to the param dtype is the default
    p64 = make_params()
    plain, _ = run(entry.make(), p64, steps=4)
    same, _ = run(entry.make(mu_dtype=jnp.float64), p64, steps=4)
    assert_trees_close(same, plain, rtol=0)


@pytest.mark.parametrize("bad", ["int32", "not_a_dtype", 3, jnp.ones(2)])
def test_invalid_mu_dtype_is_rejected(entry, bad):
    with pytest.raises(TypeError, match="`mu_dtype` must be"):
        entry.make(mu_dtype=bad)


def test_structural_arguments_ask_for_static_args(entry):
    """Under ``inject_hyperparams`` a forgotten structural argument names the ``static_args`` fix.

    ``mu_dtype=jnp.bfloat16`` is one for every optimizer: ``inject_hyperparams`` takes the
    (callable) dtype for a schedule.
    """
    p = make_params(jnp.float32)
    for name in entry.static:
        rest = tuple(n for n in entry.static if n != name)
        with pytest.raises(TypeError, match=rf'`{name}`.*static_args=\("{name}",\)'):
            entry.make_injected(static_args=rest).init(p)
    with pytest.raises(TypeError, match=r'`mu_dtype`.*static_args=\("mu_dtype",\)'):
        entry.make_injected(mu_dtype=jnp.bfloat16).init(p)
    tx = entry.make_injected(static_args=(*entry.static, "mu_dtype"), mu_dtype=jnp.bfloat16)
    mu = tx.init(p).inner_state
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(_first_moment(entry, mu)))


# optax's counterpart of each alias and how many of their leading positional parameters agree
OPTAX_COUNTERPARTS = {
    "sgd_hd": (optax.sgd, 1),
    "adam_hd": (optax.adam, 1),
    "adamp": (optax.adamw, 4),
    "sgdp": (optax.sgd, 2),
    "adan": (optax.adan, 5),
    "lion": (optax.lion, 3),
    "lion_k": (optax.lion, 3),
    "exadam": (optax.adamw, 4),
    "spam": (optax.adamw, 4),
    "stable_spam": (optax.adamw, 3),
    "diffgrad": (optax.adam, 4),
    "mfac": (optax.sgd, 1),
    "mkor": (optax.sgd, 1),
    "adagrad_norm": (optax.adagrad, 3),
}
KEYWORD_ONLY = {"nesterov", "no_prox", "dynamic_lr", "variant", "kernel", "mu_dtype", "mask"}


def test_flags_keyword_only_numbers_positional_as_in_optax(entry):
    def positional(fn):
        return [
            n
            for n, prm in inspect.signature(fn).parameters.items()
            if prm.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]

    for fn in (getattr(jop, entry.alias), getattr(jop, "scale_by_" + entry.alias)):
        params = inspect.signature(fn).parameters
        for name, prm in params.items():
            flag = isinstance(prm.default, (bool, str)) or name in KEYWORD_ONLY
            if flag:
                assert prm.kind is inspect.Parameter.KEYWORD_ONLY, f"{fn.__name__}({name})"
    counterpart, n = OPTAX_COUNTERPARTS[entry.alias]
    assert positional(getattr(jop, entry.alias))[:n] == positional(counterpart)[:n]


# ------------------------------------------------------------------------- nothing silent


def _half_precision_pair(seed=0):
    """float16 params and gradients with, per leaf, an exactly zero gradient entry and a small
    one (1e-3: its square times 1 - b2 is below float16's smallest number)."""
    p = jax.tree.map(lambda x: x.astype(jnp.float16), make_params(jnp.float32, seed))
    g = jax.tree.map(lambda x: x.astype(jnp.float16), grads_at(p))
    g = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(0).at[(-1,) * x.ndim].set(1e-3), g)
    return p, g


def test_float16_matches_float32_with_zero_and_small_gradient_entries(entry):
    """float16 params: finite updates in float16, equal to the float32 run's rounded to float16."""
    p16, g16 = _half_precision_pair()
    to32 = lambda t: jax.tree.map(lambda x: x.astype(jnp.float32), t)
    p32, g32 = to32(p16), to32(g16)
    tx = entry.make()
    s16, s32 = tx.init(p16), tx.init(p32)
    update = jax.jit(tx.update)
    for step in range(3):
        scale = 1.0 + 0.5 * step
        u16, s16 = update(jax.tree.map(lambda x: x * scale, g16), s16, p16)
        u32, s32 = update(jax.tree.map(lambda x: x * scale, g32), s32, p32)
        for a, b in zip(jax.tree.leaves(u16), jax.tree.leaves(u32), strict=True):
            assert a.dtype == jnp.float16
            a = np.asarray(a, np.float32)
            assert np.all(np.isfinite(a)), f"step {step}: non-finite float16 update {a}"
            b = np.asarray(b.astype(jnp.float16), np.float32)
            np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2 * np.abs(b).max())


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_integer_params_are_rejected(entry, dtype):
    p = jax.tree.map(lambda x: jnp.round(x).astype(dtype), make_params())
    tx = entry.make()
    with pytest.raises(
        TypeError, match=rf"`params` must have floating-point leaves.*{jnp.dtype(dtype).name}"
    ):
        tx.init(p)
    state = tx.init(make_params())
    with pytest.raises(TypeError, match=rf"floating-point leaves.*{jnp.dtype(dtype).name}"):
        tx.update(jax.tree.map(lambda x: x.astype(dtype), grads_at(make_params())), state, p)


def test_eps_zero_is_rejected(entry):
    if "eps" not in inspect.signature(getattr(jop, entry.alias)).parameters:
        assert entry.alias in ("lion", "lion_k", "sgd_hd", "mfac")  # no eps: nothing divides
        return
    with pytest.raises(ValueError, match=r"`eps` must be a finite number in \(0\.0, inf\]"):
        entry.make(eps=0.0)
    entry.make(eps=1e-30)  # any positive eps is accepted


def test_mismatched_updates_are_a_clear_error(entry):
    p = make_params()
    tx = entry.make()
    state = tx.init(p)
    g = grads_at(p)
    with pytest.raises(
        ValueError, match=r"`updates` must have the shapes.*\['b'\].*\(1,\).*\(4,\)"
    ):
        tx.update({**g, "b": g["b"][:1]}, state, p)
    with pytest.raises(ValueError, match=r"`updates` must have the pytree structure"):
        tx.update({k: v for k, v in g.items() if k != "b"}, state, p)
    with pytest.raises(ValueError, match=r"`params` must have the shapes.*\['w'\]"):
        tx.update(g, state, {**p, "w": p["w"].T})
