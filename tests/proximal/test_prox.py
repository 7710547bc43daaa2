"""Proximal operators against the definition (brute force), jaxopt 0.8.5 and finite differences.

Oracles: (i) ``argmin_y ½‖y − x‖² + s·g(y)`` solved numerically — coordinate by coordinate with
bounded Brent (``scipy.optimize.minimize_scalar``) for the separable penalties, SLSQP on a smooth
cone reformulation for the group lasso; (ii) jaxopt's function of the same name; (iii) the Moreau
identity ``x = prox_{s·g}(x) + s·P_{C}(x/s)`` with the dual-norm ball C of the norm penalties,
computed by the projection module; (iv) central finite differences (``check_grads``) away from
kinks.
"""

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from jax.test_util import check_grads
from jaxopt import prox as jp

from jaxopt_papers.proximal import projection as P
from jaxopt_papers.proximal import prox as X


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name (independent of test order and xdist workers)."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def _brent_1d(phi, lo=-20.0, hi=20.0):
    """argmin of a convex 1-D function on [lo, hi] to ~1e-11."""
    res = scipy.optimize.minimize_scalar(
        phi, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
    )
    return res.x


def _brute_separable(x, s, g, lo=-20.0):
    """Coordinate-wise argmin_y ½(y − x_i)² + s·g(y, i)."""
    x = np.asarray(x, float)
    return np.array(
        [
            _brent_1d(lambda y, i=i, xi=xi: 0.5 * (y - xi) ** 2 + s * g(y, i), lo=lo)
            for i, xi in enumerate(x)
        ]
    )


# --------------------------------------------------------------------------------------------
# Definition (brute force).


@pytest.mark.parametrize("s", [1.0, 0.3])
def test_lasso_against_definition(s, rng):
    x = rng.normal(size=6) * 2
    lam = rng.uniform(0.2, 1.5, size=6)  # coordinate-wise weights
    want = _brute_separable(x, s, lambda y, i: lam[i] * abs(y))
    np.testing.assert_allclose(X.prox_lasso(jnp.asarray(x), jnp.asarray(lam), s), want, atol=1e-7)
    want_scalar = _brute_separable(x, s, lambda y, i: 0.7 * abs(y))
    np.testing.assert_allclose(X.prox_lasso(jnp.asarray(x), 0.7, s), want_scalar, atol=1e-7)


def test_non_negative_lasso_against_definition(rng):
    x, s, lam = rng.normal(size=6) * 2, 0.6, 0.9
    want = _brute_separable(x, s, lambda y, i: lam * abs(y), lo=0.0)
    np.testing.assert_allclose(X.prox_non_negative_lasso(jnp.asarray(x), lam, s), want, atol=1e-7)


def test_elastic_net_against_definition(rng):
    # Penalty λ(|y| + γ/2 y²): γ multiplies λ (jaxopt's convention, checked below as well).
    x, s, lam, gam = rng.normal(size=6) * 2, 0.7, 0.8, 1.7
    want = _brute_separable(x, s, lambda y, i: lam * (abs(y) + 0.5 * gam * y * y))
    got = X.prox_elastic_net(jnp.asarray(x), (lam, gam), s)
    np.testing.assert_allclose(got, want, atol=1e-7)
    # and it is not the prox of λ|y| + γ/2 y² (γ not multiplied by λ).
    other = _brute_separable(x, s, lambda y, i: lam * abs(y) + 0.5 * gam * y * y)
    assert np.max(np.abs(np.asarray(got) - other)) > 1e-2


def test_ridge_is_prox_of_half_squared_norm(rng):
    x, s, lam = rng.normal(size=6) * 2, 0.8, 1.3
    half = _brute_separable(x, s, lambda y, i: 0.5 * lam * y * y)
    full = _brute_separable(x, s, lambda y, i: lam * y * y)
    ours = np.asarray(X.prox_ridge(jnp.asarray(x), lam, s))
    theirs = np.asarray(jp.prox_ridge(jnp.asarray(x), lam, s))
    np.testing.assert_allclose(ours, half, atol=1e-7)
    np.testing.assert_allclose(theirs, half, atol=1e-7)
    # jaxopt's docstring names λ‖y‖²; its value is not that prox.
    assert np.max(np.abs(theirs - full)) > 1e-2


def test_non_negative_ridge_against_definition(rng):
    x, s, lam = rng.normal(size=6) * 2, 0.5, 1.1
    want = _brute_separable(x, s, lambda y, i: 0.5 * lam * y * y, lo=0.0)
    np.testing.assert_allclose(X.prox_non_negative_ridge(jnp.asarray(x), lam, s), want, atol=1e-7)


def _brute_group_lasso(x, t):
    """argmin ½‖y − x‖² + t·r  s.t.  r² ≥ ‖y‖², r ≥ 0 (smooth cone form), by SLSQP."""
    n = x.size

    def obj(z):
        return 0.5 * np.sum((z[:n] - x) ** 2) + t * z[n]

    cons = [{"type": "ineq", "fun": lambda z: z[n] ** 2 - np.sum(z[:n] ** 2)}]
    z0 = np.concatenate([x, [np.linalg.norm(x) + 1.0]])
    res = scipy.optimize.minimize(
        obj,
        z0,
        method="SLSQP",
        constraints=cons,
        bounds=[(None, None)] * n + [(0, None)],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    return res.x[:n]


def test_group_lasso_against_definition(rng):
    x = rng.normal(size=6)
    nrm = float(np.linalg.norm(x))
    for s, lam in [(1.0, 0.4 * nrm), (0.5, 0.9 * nrm / 0.5)]:
        want = _brute_group_lasso(x, s * lam)
        np.testing.assert_allclose(X.prox_group_lasso(jnp.asarray(x), lam, s), want, atol=1e-6)
    # ‖x‖ ≤ sλ: the definition's minimiser is 0 (SLSQP gets within its tolerance).
    want = _brute_group_lasso(x, 1.5 * nrm)
    assert np.max(np.abs(want)) < 1e-5
    np.testing.assert_array_equal(X.prox_group_lasso(jnp.asarray(x), 1.5 * nrm), np.zeros(6))


# --------------------------------------------------------------------------------------------
# jaxopt 0.8.5 on random inputs, pytrees and coordinate-wise hyperparameters.


def _tree(rng):
    return {"w": jnp.asarray(rng.normal(size=(3, 2)) * 2), "b": jnp.asarray(rng.normal(size=4))}


def _pos_tree_like(rng, x, lo=0.2, hi=1.5):
    return jax.tree.map(lambda u: jnp.asarray(rng.uniform(lo, hi, size=u.shape)), x)


def _assert_tree_close(a, b, **kw):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(u, v, **kw)


@pytest.mark.parametrize("s", [1.0, 0.37])
def test_against_jaxopt_pytrees(s, rng):
    x = _tree(rng)
    lam_tree, gam_tree = _pos_tree_like(rng, x), _pos_tree_like(rng, x)
    cases = [
        ("prox_none", None),
        ("prox_lasso", None),
        ("prox_lasso", 0.6),
        ("prox_lasso", lam_tree),
        ("prox_non_negative_lasso", 0.6),
        ("prox_elastic_net", None),
        ("prox_elastic_net", (0.6, 1.4)),
        ("prox_elastic_net", (lam_tree, gam_tree)),
        ("prox_elastic_net", (lam_tree, 1.4)),
        ("prox_group_lasso", 0.9),
        ("prox_group_lasso", 40.0),  # whole group set to 0
        ("prox_ridge", None),
        ("prox_ridge", 0.6),
        ("prox_non_negative_ridge", 0.6),
    ]

    def run_all(module):  # hyperparameters stay Python objects (jaxopt checks their type)
        return [getattr(module, name)(x, hp, s) for name, hp in cases]

    ours, theirs = jax.jit(lambda: run_all(X))(), jax.jit(lambda: run_all(jp))()
    for (name, _), o, t in zip(cases, ours, theirs, strict=True):
        _assert_tree_close(o, t, rtol=1e-12, atol=1e-14, err_msg=name)


def test_against_jaxopt_arrays_and_coordinatewise(rng):
    x = jnp.asarray(rng.normal(size=6) * 2)
    lam = jnp.asarray(rng.uniform(0.1, 1.0, size=6))
    gam = jnp.asarray(rng.uniform(0.1, 3.0, size=6))
    s = 0.8
    # Coordinate-wise where jaxopt supports it: lasso, elastic net; on a single array jaxopt's
    # ridge multiplies elementwise too.
    cases = [
        ("prox_lasso", lam),
        ("prox_elastic_net", (lam, gam)),
        ("prox_ridge", lam),
        ("prox_non_negative_ridge", lam),
    ]

    def run_all(module):
        return [getattr(module, name)(x, hp, s) for name, hp in cases]

    ours, theirs = jax.jit(lambda: run_all(X))(), jax.jit(lambda: run_all(jp))()
    for (name, _), o, t in zip(cases, ours, theirs, strict=True):
        np.testing.assert_allclose(o, t, rtol=1e-12, err_msg=name)
    # Our extension: coordinate-wise non-negative lasso and ridge on pytrees, against jaxopt's
    # coordinate-wise lasso restricted to x ≥ 0 / applied leaf by leaf.
    tree = _tree(rng)
    lam_tree = _pos_tree_like(rng, tree)
    _assert_tree_close(
        X.prox_non_negative_lasso(tree, lam_tree, s),
        jax.tree.map(lambda u, v: jp.prox_non_negative_lasso(u, 1.0, s * v), tree, lam_tree),
        rtol=1e-12,
    )
    _assert_tree_close(
        X.prox_ridge(tree, lam_tree, s),
        jax.tree.map(lambda u, v: jp.prox_ridge(u, v, s), tree, lam_tree),
        rtol=1e-12,
    )


def test_elastic_net_accepts_any_scalar_on_pytrees(rng):
    # jaxopt broadcasts only Python floats over a pytree x: an int or a 0-d array fails there.
    x = _tree(rng)
    want = X.prox_elastic_net(x, (2.0, 1.0), 0.5)
    _assert_tree_close(want, jp.prox_elastic_net(x, (2.0, 1.0), 0.5), rtol=1e-12)
    _assert_tree_close(X.prox_elastic_net(x, (2, 1), 0.5), want, rtol=1e-12)
    _assert_tree_close(X.prox_elastic_net(x, (jnp.asarray(2.0), 1), 0.5), want, rtol=1e-12)
    with pytest.raises(ValueError):
        jp.prox_elastic_net(x, (2, 1), 0.5)


def test_group_lasso_vmap_over_groups_matches_loop_and_jaxopt(rng):
    groups = jnp.asarray(rng.normal(size=(6, 4)))
    lam = jnp.asarray([0.1, 0.5, 1.0, 2.0, 3.0, 10.0])
    ours = jax.jit(jax.vmap(X.prox_group_lasso, in_axes=(0, 0, None)))(groups, lam, 0.7)
    for g, lm, row in zip(groups, lam, ours, strict=True):
        np.testing.assert_allclose(row, jp.prox_group_lasso(g, lm, 0.7), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Moreau identity with the projection module: x = prox_{s·g}(x) + s · P_{dual ball}(x / s).


def test_moreau_identity(rng):
    x = jnp.asarray(rng.normal(size=6) * 2)
    s, lam = 0.6, 0.9
    np.testing.assert_allclose(
        X.prox_lasso(x, lam, s) + s * P.projection_linf_ball(x / s, lam), x, rtol=1e-12
    )
    np.testing.assert_allclose(
        X.prox_group_lasso(x, lam, s) + s * P.projection_l2_ball(x / s, lam), x, rtol=1e-12
    )
    # ridge: g = λ/2‖·‖², g* = ‖·‖²/(2λ), prox_{g*/s}(v) = v/(1 + 1/(sλ)).
    np.testing.assert_allclose(
        X.prox_ridge(x, lam, s) + s * (x / s) / (1 + 1 / (s * lam)), x, rtol=1e-12
    )


# --------------------------------------------------------------------------------------------
# Derivatives against central finite differences (float64, away from kinks).


def _away_from_kinks(rng, n, t, margin=0.3):
    """Random x with every |x_i| in [margin, 3] and at least `margin` away from t ≥ margin."""
    mag = rng.uniform(margin, 3.0, size=n)
    mag = np.where(np.abs(mag - t) < margin, t + 2 * margin, mag)
    return jnp.asarray(rng.choice([-1.0, 1.0], size=n) * mag)


def test_check_grads(rng):
    s = 0.7
    x = _away_from_kinks(rng, 6, s * 0.8)
    tree = {"a": jnp.asarray(rng.normal(size=3)), "b": jnp.asarray(rng.normal(size=2))}
    nrm = float(np.sqrt(sum(np.sum(np.asarray(v) ** 2) for v in tree.values())))

    def all_prox(u, lm, gm, sc, v, lm_active, lm_dead):
        return (
            X.prox_lasso(u, lm, sc),
            X.prox_elastic_net(u, (lm, gm), sc),
            X.prox_ridge(u, lm, sc),
            X.prox_non_negative_ridge(u, lm, sc),
            X.prox_non_negative_lasso(u, lm, sc),
            # group lasso on a pytree: shrinking (‖v‖ > sλ) and dead zone (‖v‖ < sλ, so
            # identically 0 around v)
            X.prox_group_lasso(v, lm_active, sc),
            X.prox_group_lasso(v, lm_dead, sc),
        )

    # w.r.t. x, coordinate-wise λ, scalar γ, the scaling and the group-lasso input and λ
    args = (x, jnp.full(6, 0.8), 1.3, s, tree, 0.6 * nrm / s, 3.0 * nrm / s)
    check_grads(jax.jit(all_prox), args, order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_group_lasso_finite_derivatives_at_zero(rng):
    zero = jnp.zeros(4)
    w = jnp.arange(1.0, 5.0)

    @jax.jit
    def derivatives(u, lam):
        def loss(v, lm):
            return jnp.dot(w, X.prox_group_lasso(v, lm))

        return (
            jax.grad(loss, argnums=(0, 1))(u, lam),
            jax.jacfwd(X.prox_group_lasso, argnums=(0, 1))(u, lam),
            jax.jacrev(X.prox_group_lasso, argnums=(0, 1))(u, lam),
        )

    (gx, gl), (fx, fl), (rx, rl) = derivatives(zero, 0.5)
    # The prox is 0 on the ball ‖x‖ ≤ sλ around 0: all these derivatives are exactly 0.
    for d in [gx, gl, fx, fl, rx, rl]:
        np.testing.assert_array_equal(d, np.zeros_like(d))
    # and so are central finite differences at 0
    eps = 1e-6
    prox = jax.jit(X.prox_group_lasso)
    fd = np.stack([(prox(eps * e, 0.5) - prox(-eps * e, 0.5)) / (2 * eps) for e in jnp.eye(4)])
    np.testing.assert_array_equal(fd, np.zeros((4, 4)))
    # sλ = 0: the prox is the identity, and so is its Jacobian at 0.
    (gx, _), (fx, _), (rx, _) = derivatives(zero, 0.0)
    np.testing.assert_array_equal(fx, np.eye(4))
    np.testing.assert_array_equal(rx, np.eye(4))
    np.testing.assert_array_equal(gx, w)
    # jaxopt divides by ‖x‖ = 0: same value, but a NaN gradient (the reason we differ).
    np.testing.assert_array_equal(jp.prox_group_lasso(zero, 1.0), np.zeros(4))
    g_ref = jax.jit(jax.grad(lambda u: jnp.dot(w, jp.prox_group_lasso(u, 1.0))))(zero)
    assert np.all(np.isnan(g_ref))


# --------------------------------------------------------------------------------------------
# make_prox_from_projection, jit, errors.


def test_make_prox_from_projection(rng):
    x = jnp.asarray(rng.normal(size=6) * 2)
    prox = X.make_prox_from_projection(P.projection_box)
    ref = jp.make_prox_from_projection(P.projection_box)
    for scaling in [1.0, 0.1, 7.0]:
        got = prox(x, (-0.5, 0.5), scaling)
        np.testing.assert_array_equal(got, np.clip(np.asarray(x), -0.5, 0.5))
        np.testing.assert_array_equal(got, ref(x, (-0.5, 0.5), scaling))
    np.testing.assert_allclose(
        X.make_prox_from_projection(P.projection_l2_ball)(x), x / np.linalg.norm(x)
    )
    with pytest.raises(TypeError, match="projection"):
        X.make_prox_from_projection(3.0)


def test_jit_matches_eager(rng):
    x = _tree(rng)
    for name, hp in [
        ("prox_lasso", 0.5),
        ("prox_elastic_net", (0.5, 2.0)),
        ("prox_group_lasso", 1.0),
        ("prox_non_negative_ridge", 0.3),
    ]:
        f = getattr(X, name)
        _assert_tree_close(jax.jit(f)(x, hp, 0.9), f(x, hp, 0.9), rtol=1e-14, err_msg=name)


def test_bad_hyperparameters_raise(rng):
    x = _tree(rng)
    with pytest.raises(ValueError, match=r"prox_lasso: `l1reg` must be a scalar or a pytree"):
        X.prox_lasso(x, {"w": 1.0})
    with pytest.raises(ValueError, match=r"prox_ridge: `l2reg` at \['b'\] must have a shape"):
        X.prox_ridge(x, {"w": jnp.ones((3, 2)), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"prox_lasso: `l1reg` must have a shape broadcastable"):
        X.prox_lasso(jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match=r"prox_elastic_net: `hyperparams` must be a pair"):
        X.prox_elastic_net(x, 0.5)
    with pytest.raises(ValueError, match=r"prox_elastic_net: `hyperparams\[1\]`"):
        X.prox_elastic_net(x, (0.5, [1.0, 2.0]))
    with pytest.raises(ValueError, match=r"prox_group_lasso: `l2reg` must be a scalar"):
        X.prox_group_lasso(jnp.ones(3), jnp.ones(3))
