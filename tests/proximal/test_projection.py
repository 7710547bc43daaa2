"""Projections against brute force, optimality conditions, jaxopt 0.8.5 and finite differences.

Oracles: (i) ``argmin_{p ∈ C} ½‖p − x‖²`` solved by SLSQP (smooth reformulations for the l1 sets;
the l1 sphere by enumerating sign orthants), (ii) feasibility plus the variational inequality
⟨x − p, y − p⟩ ≤ 0 for random feasible y, which characterises the projection onto a closed
convex set, (iii) jaxopt's function of the same name, (iv) closed forms (np.clip, the KKT system of
the affine set, the simplex Jacobian diag(s) − s sᵀ/|s|), (v) central finite differences.
"""

import functools
import itertools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from jax.test_util import check_grads
from jaxopt import projection as jproj

from jaxopt_papers.proximal import projection as P


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name (independent of test order and xdist workers)."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


@functools.cache
def _ref(name):
    """jaxopt's function of that name, jitted (its eager dispatch is slow)."""
    return jax.jit(getattr(jproj, name))


def _slsqp(x, constraints=(), bounds=None, x0=None):
    """argmin_y ½‖y − x‖² under scipy-style constraints, tight tolerance."""
    x = np.asarray(x, float)
    res = scipy.optimize.minimize(
        lambda y: 0.5 * np.sum((y - x) ** 2),
        x.copy() if x0 is None else x0,
        jac=lambda y: y - x,
        method="SLSQP",
        constraints=list(constraints),
        bounds=bounds,
        options={"ftol": 1e-13, "maxiter": 1000},
    )
    # status 8 ("positive directional derivative in line search"): no further progress at this
    # tolerance; the comparisons that follow judge the accuracy.
    assert res.status in (0, 8), res.message
    return res.x


def _assert_tree_close(a, b, **kw):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(u, v, **kw)


# --------------------------------------------------------------------------------------------
# Orthant, box, hypercube, l∞ ball (separable: np.clip is the per-coordinate argmin).


def test_separable_against_clip_and_jaxopt(rng):
    x = jnp.asarray(rng.normal(size=6) * 2)
    lo = jnp.asarray(rng.uniform(-1.5, 0.0, size=6))
    hi = jnp.asarray(rng.uniform(0.0, 1.5, size=6))
    xn = np.asarray(x)
    cases = [
        ("projection_non_negative", None, np.maximum(xn, 0)),
        ("projection_box", (lo, hi), np.clip(xn, lo, hi)),
        ("projection_box", (-0.3, 0.8), np.clip(xn, -0.3, 0.8)),
        ("projection_hypercube", 1.0, np.clip(xn, 0, 1)),
        ("projection_hypercube", 0.4, np.clip(xn, 0, 0.4)),
        ("projection_linf_ball", 1.0, np.clip(xn, -1, 1)),
        ("projection_linf_ball", 0.7, np.clip(xn, -0.7, 0.7)),
    ]
    for name, hp, want in cases:
        ours = getattr(P, name)(x, hp)
        np.testing.assert_array_equal(ours, want, err_msg=name)
        np.testing.assert_array_equal(ours, getattr(jproj, name)(x, hp), err_msg=name)
    # per-coordinate l∞ radii
    np.testing.assert_array_equal(P.projection_linf_ball(x, hi), np.clip(xn, -hi, hi))


def test_box_on_pytrees(rng):
    x = {"w": jnp.asarray(rng.normal(size=(3, 2)) * 2), "b": jnp.asarray(rng.normal(size=4) * 2)}
    lo = jax.tree.map(lambda u: jnp.asarray(rng.uniform(-1, 0, size=u.shape)), x)
    hi = jax.tree.map(lambda u: jnp.asarray(rng.uniform(0, 1, size=u.shape)), x)
    want = jax.tree.map(lambda u, a, b: np.clip(np.asarray(u), a, b), x, lo, hi)
    _assert_tree_close(P.projection_box(x, (lo, hi)), want, rtol=0)
    _assert_tree_close(jproj.projection_box(x, (lo, hi)), want, rtol=0)
    # Scalar bounds broadcast to every leaf (jaxopt's tree_map fails on this combination).
    want = jax.tree.map(lambda u: np.clip(np.asarray(u), -0.5, 0.5), x)
    _assert_tree_close(P.projection_box(x, (-0.5, 0.5)), want, rtol=0)
    _assert_tree_close(P.projection_linf_ball(x, 0.5), want, rtol=0)
    with pytest.raises(ValueError):
        jproj.projection_box(x, (-0.5, 0.5))
    # mixed: scalar lower, pytree upper
    want = jax.tree.map(lambda u, b: np.clip(np.asarray(u), -0.2, b), x, hi)
    _assert_tree_close(P.projection_box(x, (-0.2, hi)), want, rtol=0)


# --------------------------------------------------------------------------------------------
# Simplex.


@pytest.mark.parametrize("value", [1.0, 2.5])
def test_simplex_against_slsqp_and_jaxopt(rng, value):
    for scale in [0.3, 1.0, 3.0]:
        x = rng.normal(size=6) * scale
        cons = [{"type": "eq", "fun": lambda y: np.sum(y) - value, "jac": lambda y: np.ones(6)}]
        want = _slsqp(x, cons, bounds=[(0, None)] * 6)
        ours = P.projection_simplex(jnp.asarray(x), value)
        np.testing.assert_allclose(ours, want, atol=1e-8)
        np.testing.assert_allclose(
            ours, _ref("projection_simplex")(jnp.asarray(x), value), atol=1e-12
        )


def test_simplex_with_ties_and_edge_values():
    x = jnp.asarray([0.5, 0.5, 0.5, -1.0])
    np.testing.assert_allclose(P.projection_simplex(x), [1 / 3, 1 / 3, 1 / 3, 0.0], rtol=1e-14)
    np.testing.assert_allclose(P.projection_simplex(jnp.asarray([3.0, -2.0])), [1.0, 0.0])
    # value = 0: the simplex is {0}; jaxopt divides by the value and returns NaN.
    np.testing.assert_array_equal(P.projection_simplex(jnp.asarray([1.0, 2.0]), 0.0), [0.0, 0.0])
    assert np.all(np.isnan(_ref("projection_simplex")(jnp.asarray([1.0, 2.0]), 0.0)))


def test_simplex_jacobian_closed_form(rng):
    x = jnp.asarray(rng.normal(size=6))
    value = 1.3
    p = P.projection_simplex(x, value)
    s = (np.asarray(p) > 0).astype(float)
    assert 1 < s.sum() < 6  # a non-trivial support
    want = np.diag(s) - np.outer(s, s) / s.sum()
    f = P.projection_simplex
    for jac in [jax.jacfwd, jax.jacrev]:
        jx, jv = jax.jit(jac(f, argnums=(0, 1)))(x, value)
        np.testing.assert_allclose(jx, want, atol=1e-12)
        np.testing.assert_allclose(jv, s / s.sum(), atol=1e-12)
    # jaxopt's hand-written JVP agrees.
    jac_ref = jax.jit(jax.jacfwd(jproj.projection_simplex))(x, value)
    np.testing.assert_allclose(jac_ref, want, atol=1e-12)
    # (central finite differences: in test_check_grads_l2_ball_box_simplex)


# --------------------------------------------------------------------------------------------
# l1 sphere and ball.


def _brute_l1_sphere(x, value):
    """Nearest point of {‖y‖₁ = value}: best over sign orthants of a smooth SLSQP problem."""
    n = x.size
    best, best_d = None, np.inf
    for signs in itertools.product([-1.0, 1.0], repeat=n):
        sg = np.array(signs)
        cons = [{"type": "eq", "fun": lambda y, sg=sg: sg @ y - value, "jac": lambda y, sg=sg: sg}]
        bounds = [(0, None) if si > 0 else (None, 0) for si in sg]
        y = _slsqp(x, cons, bounds=bounds, x0=sg * value / n)
        d = np.sum((y - x) ** 2)
        if d < best_d:
            best, best_d = y, d
    return best


def _brute_l1_ball(x, r):
    """argmin ½‖u − v − x‖², u, v ≥ 0, Σ(u + v) ≤ r (a smooth QP whose y = u − v is P(x))."""
    n = x.size

    def obj(z):
        return 0.5 * np.sum((z[:n] - z[n:] - x) ** 2)

    def jac(z):
        g = z[:n] - z[n:] - x
        return np.concatenate([g, -g])

    cons = [{"type": "ineq", "fun": lambda z: r - np.sum(z), "jac": lambda z: -np.ones(2 * n)}]
    res = scipy.optimize.minimize(
        obj, np.zeros(2 * n), jac=jac, method="SLSQP", constraints=cons,
        bounds=[(0, None)] * (2 * n), options={"ftol": 1e-13, "maxiter": 1000},
    )  # fmt: skip
    assert res.success, res.message
    return res.x[:n] - res.x[n:]


def test_l1_sphere_against_brute_force_and_jaxopt(rng):
    for scale in [0.1, 2.0]:  # inside and outside the ball
        x = rng.normal(size=4) * scale
        ours = P.projection_l1_sphere(jnp.asarray(x), 1.5)
        np.testing.assert_allclose(np.sum(np.abs(ours)), 1.5, rtol=1e-12)
        np.testing.assert_allclose(ours, _brute_l1_sphere(x, 1.5), atol=1e-7)
        np.testing.assert_allclose(
            ours, _ref("projection_l1_sphere")(jnp.asarray(x), 1.5), atol=1e-12
        )


def test_l1_sphere_with_zero_entries():
    # Inside the ball with zero coordinates: zeros must receive mass, with either sign.
    x = np.array([0.0, 0.1, 0.0, -0.2])
    ours = np.asarray(P.projection_l1_sphere(jnp.asarray(x), 1.0))
    np.testing.assert_allclose(np.sum(np.abs(ours)), 1.0, rtol=1e-12)
    brute = _brute_l1_sphere(x, 1.0)
    np.testing.assert_allclose(np.sum((ours - x) ** 2), np.sum((brute - x) ** 2), rtol=1e-8)
    # jaxopt multiplies by sign(0) = 0 and leaves the sphere.
    theirs = np.asarray(jproj.projection_l1_sphere(jnp.asarray(x), 1.0))
    assert np.sum(np.abs(theirs)) < 0.9


def test_l1_ball_against_brute_force_and_jaxopt(rng):
    for scale, r in [(0.1, 1.0), (2.0, 1.0), (1.0, 0.3)]:
        x = rng.normal(size=6) * scale
        ours = P.projection_l1_ball(jnp.asarray(x), r)
        np.testing.assert_allclose(ours, _brute_l1_ball(x, r), atol=1e-8)
        np.testing.assert_allclose(ours, _ref("projection_l1_ball")(jnp.asarray(x), r), atol=1e-12)
    x = jnp.asarray([0.1, -0.2, 0.3])
    np.testing.assert_array_equal(P.projection_l1_ball(x), x)  # inside: unchanged


# --------------------------------------------------------------------------------------------
# l2 sphere and ball (pytrees).


def test_l2_sphere_and_ball_against_slsqp_and_jaxopt(rng):
    for scale in [0.2, 2.0]:
        x = rng.normal(size=6) * scale
        r = 1.3
        sph = [{"type": "eq", "fun": lambda y: y @ y - r * r, "jac": lambda y: 2 * y}]
        ball = [{"type": "ineq", "fun": lambda y: r * r - y @ y, "jac": lambda y: -2 * y}]
        xj = jnp.asarray(x)
        # the sphere is not convex: best of a few SLSQP starts on it
        starts = [r * v / np.linalg.norm(v) for v in rng.normal(size=(4, 6))]
        brute = min((_slsqp(x, sph, x0=v) for v in starts), key=lambda y: np.sum((y - x) ** 2))
        np.testing.assert_allclose(P.projection_l2_sphere(xj, r), brute, atol=1e-7)
        np.testing.assert_allclose(P.projection_l2_ball(xj, r), _slsqp(x, ball), atol=1e-7)
        np.testing.assert_allclose(
            P.projection_l2_sphere(xj, r), _ref("projection_l2_sphere")(xj, r), rtol=1e-12
        )
        np.testing.assert_allclose(
            P.projection_l2_ball(xj, r), _ref("projection_l2_ball")(xj, r), rtol=1e-12
        )
    # pytrees: the norm runs over all leaves
    tree = {"a": jnp.asarray(rng.normal(size=(2, 2))), "b": jnp.asarray(rng.normal(size=3))}
    for r in [0.5, 10.0]:
        _assert_tree_close(
            P.projection_l2_ball(tree, r), _ref("projection_l2_ball")(tree, r), rtol=1e-12
        )
        _assert_tree_close(
            P.projection_l2_sphere(tree, r), _ref("projection_l2_sphere")(tree, r), rtol=1e-12
        )


def test_l2_sphere_at_zero():
    p = P.projection_l2_sphere(jnp.zeros(4), 2.0)
    np.testing.assert_allclose(np.linalg.norm(p), 2.0, rtol=1e-14)  # a point of the sphere
    np.testing.assert_array_equal(
        jax.jacfwd(P.projection_l2_sphere)(jnp.zeros(4)), np.zeros((4, 4))
    )
    assert np.all(np.isnan(jproj.projection_l2_sphere(jnp.zeros(4), 2.0)))


def test_balls_finite_gradient_at_zero():
    w = jnp.arange(1.0, 5.0)
    zero = jnp.zeros(4)
    for proj in [P.projection_l1_ball, P.projection_l2_ball]:
        g = jax.jit(jax.grad(lambda u, proj=proj: jnp.dot(w, proj(u))))(zero)
        # 0 is interior: the projection is the identity nearby, so the gradient is w.
        np.testing.assert_array_equal(g, w)
    # jaxopt's l2 ball evaluates max_value/‖x‖ outside its lax.cond: NaN reverse-mode gradient.
    g_ref = jax.jit(jax.grad(lambda u: jnp.dot(w, jproj.projection_l2_ball(u))))(zero)
    assert np.all(np.isnan(g_ref))


def test_check_grads_l2_ball_box_simplex(rng):
    x_out = {"a": jnp.asarray(rng.normal(size=3)) * 2, "b": jnp.asarray(rng.normal(size=2)) * 2}
    x_in = jax.tree.map(lambda u: 0.01 * u, x_out)
    # box: coordinates well inside, below and above their bounds; gradients w.r.t. all three
    x = jnp.asarray([-2.0, -0.1, 0.2, 1.5, 3.0])
    lo = jnp.asarray([-1.0, -1.0, -1.0, -1.0, -1.0])
    hi = jnp.asarray([1.0, 1.0, 1.0, 1.0, 2.0])
    # simplex: support of size 3 with a gap of ≥ 0.2 to the threshold
    xs = jnp.asarray([0.9, 0.5, 0.7, -0.4, 0.0, -1.0])

    def f(u_out, u_in, r, u, a, b, us, v):
        box = P.projection_box(u, (a, b))
        l2 = P.projection_l2_ball(u_out, r), P.projection_l2_ball(u_in, r)
        return *l2, box, P.projection_simplex(us, v)

    args = (x_out, x_in, 0.9, x, lo, hi, xs, 1.0)
    check_grads(jax.jit(f), args, order=1, modes=("fwd", "rev"), atol=1e-7)
    box = jax.jit(lambda u, a, b: P.projection_box(u, (a, b)))
    np.testing.assert_array_equal(jax.jacfwd(box)(x, lo, hi), np.diag([0, 1, 1, 0, 0]))


# --------------------------------------------------------------------------------------------
# Hyperplane, halfspace, affine set.


def test_hyperplane_halfspace_against_slsqp_and_jaxopt(rng):
    a = rng.normal(size=6)
    for b in [-2.0, 0.3, 2.0]:
        x = rng.normal(size=6)
        eq = [{"type": "eq", "fun": lambda y: a @ y - b, "jac": lambda y: a}]
        ineq = [{"type": "ineq", "fun": lambda y: b - a @ y, "jac": lambda y: -a}]
        hp = (jnp.asarray(a), b)
        xj = jnp.asarray(x)
        np.testing.assert_allclose(P.projection_hyperplane(xj, hp), _slsqp(x, eq), atol=1e-8)
        np.testing.assert_allclose(P.projection_halfspace(xj, hp), _slsqp(x, ineq), atol=1e-8)
        np.testing.assert_allclose(
            P.projection_hyperplane(xj, hp), _ref("projection_hyperplane")(xj, hp), rtol=1e-12
        )
        np.testing.assert_allclose(
            P.projection_halfspace(xj, hp), _ref("projection_halfspace")(xj, hp), rtol=1e-12
        )
    # pytree x and a
    x = {"u": jnp.asarray(rng.normal(size=3)), "v": jnp.asarray(rng.normal(size=(2,)))}
    at = {"u": jnp.asarray(rng.normal(size=3)), "v": jnp.asarray(rng.normal(size=(2,)))}
    _assert_tree_close(
        P.projection_hyperplane(x, (at, 0.5)),
        _ref("projection_hyperplane")(x, (at, 0.5)),
        rtol=1e-12,
    )


def _kkt_affine(x, A, b):
    """Solve [[I, Aᵀ], [A, 0]] [y; ν] = [x; b] (the projection's KKT system) with numpy."""
    m, n = A.shape
    K = np.block([[np.eye(n), A.T], [A, np.zeros((m, m))]])
    return np.linalg.solve(K, np.concatenate([x, b]))[:n]


def test_affine_set_against_kkt_slsqp_and_jaxopt(rng):
    A = rng.normal(size=(3, 6))
    b = rng.normal(size=3)
    x = rng.normal(size=6)
    ours = P.projection_affine_set(jnp.asarray(x), (jnp.asarray(A), jnp.asarray(b)))
    np.testing.assert_allclose(ours, _kkt_affine(x, A, b), rtol=1e-10, atol=1e-12)
    cons = [{"type": "eq", "fun": lambda y: A @ y - b, "jac": lambda y: A}]
    np.testing.assert_allclose(ours, _slsqp(x, cons), atol=1e-8)
    theirs = jproj.projection_affine_set(jnp.asarray(x), (jnp.asarray(A), jnp.asarray(b)))
    np.testing.assert_allclose(ours, theirs, atol=1e-8)


def test_check_grads_hyperplane_halfspace_affine(rng):
    x = jnp.asarray(rng.normal(size=6))
    a = jnp.asarray(rng.normal(size=6))
    ax = float(a @ x)

    def planes(u, w, b):
        # halfspace with the constraint active (b < aᵀx) and inactive (b + 5 > aᵀx)
        return (
            P.projection_hyperplane(u, (w, b)),
            P.projection_halfspace(u, (w, b)),
            P.projection_halfspace(u, (w, b + 5.0)),
        )

    A = jnp.asarray(rng.normal(size=(2, 6)))
    b = jnp.asarray(rng.normal(size=2))

    def planes_and_affine(u, w, c, M, d):
        return (*planes(u, w, c), P.projection_affine_set(u, (M, d)))

    args = (x, a, ax - 1.0, A, b)
    check_grads(
        jax.jit(planes_and_affine), args, order=1, modes=("fwd", "rev"), atol=1e-7, rtol=1e-6
    )
    aff = jax.jit(lambda u, M, c: P.projection_affine_set(u, (M, c)))
    # d/dx is the orthogonal projector onto null(A): I − Aᵀ(AAᵀ)⁻¹A (numpy pseudo-inverse).
    An = np.asarray(A)
    np.testing.assert_allclose(
        jax.jacfwd(aff)(x, A, b), np.eye(6) - np.linalg.pinv(An) @ An, atol=1e-12
    )


# --------------------------------------------------------------------------------------------
# Feasibility and the variational inequality ⟨x − p, y − p⟩ ≤ 0 for random feasible y.


def _feasible_samples(rng, name, hp, n, k=50):
    if name == "projection_non_negative":
        return rng.exponential(size=(k, n))
    if name in ("projection_box", "projection_linf_ball"):
        lo, hi = hp if name == "projection_box" else (-hp, hp)
        return rng.uniform(lo, hi, size=(k, n))
    if name == "projection_simplex":
        return hp * rng.dirichlet(np.full(n, 0.5), size=k)
    if name == "projection_l1_ball":
        y = rng.laplace(size=(k, n))
        return y / np.abs(y).sum(1, keepdims=True) * hp * rng.uniform(0, 1, size=(k, 1))
    if name == "projection_l2_ball":
        y = rng.normal(size=(k, n))
        return y / np.linalg.norm(y, axis=1, keepdims=True) * hp * rng.uniform(0, 1, size=(k, 1))
    if name in ("projection_hyperplane", "projection_halfspace"):
        a, b = hp
        y = rng.normal(size=(k, n)) * 3
        t = (y @ a - b) / (a @ a)
        if name == "projection_halfspace":
            t = np.maximum(t, 0) + rng.exponential(size=k) / (a @ a)
        return y - t[:, None] * a
    if name == "projection_affine_set":
        A, b = hp
        y = rng.normal(size=(k, n)) * 3
        return np.stack([_kkt_affine(yi, A, b) for yi in y])
    raise AssertionError(name)


def _feasible(name, hp, p, tol=1e-9):
    if name == "projection_non_negative":
        return np.all(p >= -tol)
    if name == "projection_box":
        return np.all(p >= hp[0] - tol) and np.all(p <= hp[1] + tol)
    if name == "projection_linf_ball":
        return np.max(np.abs(p)) <= hp + tol
    if name == "projection_simplex":
        return np.all(p >= -tol) and abs(p.sum() - hp) <= tol
    if name == "projection_l1_ball":
        return np.abs(p).sum() <= hp + tol
    if name == "projection_l2_ball":
        return np.linalg.norm(p) <= hp + tol
    if name == "projection_hyperplane":
        return abs(p @ hp[0] - hp[1]) <= tol
    if name == "projection_halfspace":
        return p @ hp[0] - hp[1] <= tol
    return np.max(np.abs(hp[0] @ p - hp[1])) <= tol


@pytest.mark.parametrize(
    "name",
    [
        "projection_non_negative",
        "projection_box",
        "projection_linf_ball",
        "projection_simplex",
        "projection_l1_ball",
        "projection_l2_ball",
        "projection_hyperplane",
        "projection_halfspace",
        "projection_affine_set",
    ],
)
def test_variational_inequality(rng, name):
    n = 6
    hp = {
        "projection_non_negative": None,
        "projection_box": (-0.5, 0.7),
        "projection_linf_ball": 0.6,
        "projection_simplex": 1.7,
        "projection_l1_ball": 1.2,
        "projection_l2_ball": 0.9,
        "projection_hyperplane": (rng.normal(size=n), 0.4),
        "projection_halfspace": (rng.normal(size=n), -0.4),
        "projection_affine_set": (rng.normal(size=(3, n)), rng.normal(size=3)),
    }[name]
    ys = _feasible_samples(rng, name, hp, n)
    assert all(_feasible(name, hp, y, tol=1e-8) for y in ys)  # the sampler itself
    proj = getattr(P, name)
    for scale in [0.3, 3.0]:
        x = rng.normal(size=n) * scale
        p = np.asarray(proj(jnp.asarray(x), hp))
        assert _feasible(name, hp, p)
        assert np.max((ys - p) @ (x - p)) <= 1e-10


# --------------------------------------------------------------------------------------------
# jit and vmap over a batch.


def test_jit_and_vmap_match_loop(rng):
    X = jnp.asarray(rng.normal(size=(3, 6)) * 2)
    r = jnp.asarray([0.3, 1.0, 2.5])  # a batched radius / value / offset per row
    A = jnp.asarray(rng.normal(size=(2, 6)))
    b = jnp.asarray(rng.normal(size=2))
    unbatched = [
        P.projection_simplex,
        P.projection_l1_ball,
        P.projection_l2_ball,
        lambda u, c: P.projection_box(u, (-c, c)),
        lambda u, c: P.projection_halfspace(u, (A[0], c - 1.5)),
        lambda u, c: P.projection_affine_set(u, (A, b + c)),
    ]
    for k, f in enumerate(unbatched):
        out = jax.jit(jax.vmap(f))(X, r)
        want = np.stack([f(X[i], r[i]) for i in range(X.shape[0])])  # eager, row by row
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14, err_msg=str(k))


# --------------------------------------------------------------------------------------------
# Static shape errors.


def test_bad_shapes_raise():
    x = jnp.ones(5)
    with pytest.raises(
        ValueError,
        match=r"projection_affine_set: `A` must have shape \(m, 5\) to match `x` of shape "
        r"\(5,\), got \(3, 4\)\.",
    ):
        P.projection_affine_set(x, (jnp.ones((3, 4)), jnp.ones(3)))
    with pytest.raises(ValueError, match=r"projection_affine_set: `A` must have shape"):
        P.projection_affine_set(x, (jnp.ones(5), jnp.ones(1)))
    with pytest.raises(ValueError, match=r"projection_affine_set: `b` must have shape \(3,\)"):
        P.projection_affine_set(x, (jnp.ones((3, 5)), jnp.ones(2)))
    with pytest.raises(ValueError, match=r"projection_affine_set: `x` must be a 1-D array"):
        P.projection_affine_set(jnp.ones((5, 1)), (jnp.ones((3, 5)), jnp.ones(3)))
    with pytest.raises(ValueError, match=r"projection_affine_set: `A` must have at most"):
        P.projection_affine_set(jnp.ones(2), (jnp.ones((3, 2)), jnp.ones(3)))
    with pytest.raises(ValueError, match=r"projection_affine_set: `hyperparams` must be a pair"):
        P.projection_affine_set(x, jnp.ones((3, 5)))
    tree = {"a": jnp.ones(2), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"projection_box: `lower` must be a scalar or a pytree"):
        P.projection_box(tree, ({"a": 0.0}, 1.0))
    with pytest.raises(ValueError, match=r"projection_box: `upper` at \['b'\] must have a shape"):
        P.projection_box(tree, (0.0, {"a": jnp.ones(2), "b": jnp.ones(2)}))
    with pytest.raises(ValueError, match=r"projection_simplex: `x` must be a 1-D array"):
        P.projection_simplex(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"projection_simplex: `value` must be a scalar"):
        P.projection_simplex(x, jnp.ones(2))
    with pytest.raises(ValueError, match=r"projection_l1_ball: `max_value` must be a scalar"):
        P.projection_l1_ball(x, jnp.ones(5))
    with pytest.raises(ValueError, match=r"projection_l2_ball: `max_value` must be a scalar"):
        P.projection_l2_ball(x, jnp.ones(5))
    with pytest.raises(ValueError, match=r"projection_hyperplane: `a` must have the shape"):
        P.projection_hyperplane(x, (jnp.ones(4), 1.0))
    with pytest.raises(ValueError, match=r"projection_halfspace: `b` must be a scalar"):
        P.projection_halfspace(x, (jnp.ones(5), jnp.ones(2)))
    with pytest.raises(ValueError, match=r"projection_halfspace: `a` must be a pytree"):
        P.projection_halfspace(tree, (jnp.ones(5), 1.0))


def test_shape_checks_do_not_touch_traced_values():
    # Under jit every hyperparameter is traced; the checks only read static shapes.
    f = jax.jit(lambda u, A, b, v: (P.projection_affine_set(u, (A, b)), P.projection_simplex(u, v)))
    p, q = f(jnp.ones(4), jnp.eye(2, 4), jnp.zeros(2), 2.0)
    np.testing.assert_allclose(p, [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(q, [0.5, 0.5, 0.5, 0.5])
