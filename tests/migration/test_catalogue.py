"""objective, perturbations, isotonic, loss and tree_util: same programs under jaxopt and here."""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.isotonic import IsotonicRegression

import jaxopt_papers.isotonic as iso
import jaxopt_papers.objective as obj
import jaxopt_papers.perturbations as pert
from tests.migration._jaxopt import module

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(12, 4)))
Y_INT = jnp.asarray(RNG.integers(0, 3, 12))
Y_BIN = jnp.asarray(RNG.integers(0, 2, 12))
Y_REAL = jnp.asarray(RNG.normal(size=12))
W = jnp.asarray(RNG.normal(size=(4, 3)))
w = jnp.asarray(RNG.normal(size=4))
b = jnp.asarray(RNG.normal(size=3))
BETA = jax.vmap(lambda r: jnp.exp(r) / jnp.exp(r).sum())(jnp.asarray(RNG.normal(size=(12, 3))))

CASES = {
    "least_squares": (w, (X, Y_REAL)),
    "ridge_regression": (w, 0.3, (X, Y_REAL)),
    "binary_logreg": (w, (X, Y_BIN)),
    "multiclass_logreg": (W, (X, Y_INT)),
    "multiclass_logreg_with_intercept": ((W, b), (X, Y_INT)),
    "l2_multiclass_logreg": (W, 0.3, (X, Y_INT)),
    "l2_multiclass_logreg_with_intercept": ((W, b), 0.3, (X, Y_INT)),
    "multiclass_linear_svm_dual": (BETA, 0.3, (X, jax.nn.one_hot(Y_INT, 3))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_objective_matches_jaxopt(name):
    ours, ref = getattr(obj, name), getattr(module("objective"), name)
    args = CASES[name]
    np.testing.assert_allclose(ours(*args), ref(*args), rtol=1e-12)
    g, g_ref = jax.grad(ours)(*args), jax.grad(ref)(*args)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-14), g, g_ref)


def test_objective_closed_forms_and_errors():
    r = np.asarray(X @ w - Y_REAL)
    np.testing.assert_allclose(obj.least_squares(w, (X, Y_REAL)), 0.5 * np.mean(r**2))
    logits = np.asarray(X @ W)
    lse = np.log(np.exp(logits).sum(1))
    ref = np.mean(lse - logits[np.arange(12), np.asarray(Y_INT)])
    np.testing.assert_allclose(obj.multiclass_logreg(W, (X, Y_INT)), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="rows"):
        obj.least_squares(jnp.zeros(5), (X, Y_REAL))
    with pytest.raises(ValueError, match="pair"):
        obj.least_squares(w, X)


def test_isotonic_matches_sklearn_and_jaxopt():
    jiso = module("isotonic")
    for increasing in (True, False):
        y = RNG.normal(size=40) + (0.05 if increasing else -0.05) * np.arange(40)
        v = iso.isotonic_l2_pav(jnp.asarray(y), increasing=increasing)
        sk = IsotonicRegression(increasing=increasing).fit_transform(np.arange(40), y)
        np.testing.assert_allclose(v, sk, atol=1e-12)
        ref = jiso.isotonic_l2_pav(jnp.asarray(y), increasing=increasing)
        np.testing.assert_allclose(v, ref, atol=1e-12)
        np.testing.assert_allclose(
            iso.isotonic_l2_pav(jnp.asarray(y), -0.5, 0.5, increasing),
            np.clip(sk, -0.5, 0.5),
            atol=1e-12,
        )
        # derivative: finite differences (blocks are stable for a small step) and jaxopt's
        # (which is off by its 1e-8 block-size regulariser)
        d = jnp.asarray(RNG.normal(size=40))
        f = lambda z, inc=increasing: iso.isotonic_l2_pav(z, increasing=inc)
        _, jvp = jax.jvp(f, (jnp.asarray(y),), (d,))
        fd = (f(jnp.asarray(y) + 1e-6 * d) - f(jnp.asarray(y) - 1e-6 * d)) / 2e-6
        np.testing.assert_allclose(jvp, fd, atol=1e-8)
        g = jax.grad(lambda z, inc=increasing: jnp.vdot(d, f(z, inc)))(jnp.asarray(y))
        np.testing.assert_allclose(g, jax.jacfwd(f)(jnp.asarray(y)).T @ d, atol=1e-12)
        _, jvp_ref = jax.jvp(
            lambda z, inc=increasing: jiso.isotonic_l2_pav(z, increasing=inc),
            (jnp.asarray(y),),
            (d,),
        )
        np.testing.assert_allclose(jvp, jvp_ref, atol=1e-6)
    batch = jax.vmap(iso.isotonic_l2_pav)(jnp.asarray(RNG.normal(size=(3, 8))))
    assert bool(jnp.all(jnp.diff(batch, axis=1) >= 0))
    with pytest.raises(ValueError, match="1-D"):
        iso.isotonic_l2_pav(jnp.ones((2, 2)))


def _one_hot_argmax(x):
    return jax.nn.one_hot(jnp.argmax(x), x.shape[0])


@pytest.mark.parametrize("noise", ["gumbel", "normal"])
def test_perturbations_match_jaxopt(noise):
    jp = module("perturbations")
    ours_noise = pert.Gumbel() if noise == "gumbel" else pert.Normal()
    ref_noise = jp.Gumbel() if noise == "gumbel" else jp.Normal()
    theta = jnp.asarray(RNG.normal(size=5))
    key = jax.random.PRNGKey(3)
    for cv in (False, True):
        ours = pert.make_perturbed_argmax(_one_hot_argmax, 200, 0.5, ours_noise, cv)
        ref = jp.make_perturbed_argmax(_one_hot_argmax, 200, 0.5, ref_noise, cv)
        np.testing.assert_allclose(ours(theta, key), ref(theta, key), atol=1e-12)
        np.testing.assert_allclose(
            jax.jacobian(ours)(theta, key), jax.jacobian(ref)(theta, key), atol=1e-12
        )
    ours_max = pert.make_perturbed_max(_one_hot_argmax, 200, 0.5, ours_noise)
    ref_max = jp.make_perturbed_max(_one_hot_argmax, 200, 0.5, ref_noise)
    np.testing.assert_allclose(ours_max(theta, key), ref_max(theta, key), atol=1e-12)
    np.testing.assert_allclose(
        jax.grad(ours_max)(theta, key), jax.grad(ref_max)(theta, key), atol=1e-12
    )
    relu = lambda x: jax.nn.relu(x)
    ours_fun = pert.make_perturbed_fun(relu, 200, 0.5, ours_noise)
    ref_fun = jp.make_perturbed_fun(relu, 200, 0.5, ref_noise)
    np.testing.assert_allclose(
        jax.jacobian(ours_fun)(theta, key), jax.jacobian(ref_fun)(theta, key), atol=1e-12
    )


def test_perturbed_argmax_is_softmax_in_expectation():
    # Gumbel-max: E[one_hot(argmax(θ + σZ))] = softmax(θ/σ); its Jacobian is that of softmax.
    theta = jnp.asarray([0.3, -0.2, 0.1])
    f = pert.make_perturbed_argmax(_one_hot_argmax, 100_000, 1.0)
    key = jax.random.PRNGKey(0)
    np.testing.assert_allclose(f(theta, key), jax.nn.softmax(theta), atol=5e-3)
    np.testing.assert_allclose(
        jax.jacobian(f)(theta, key), jax.jacobian(jax.nn.softmax)(theta), atol=3e-2
    )
    with pytest.raises(ValueError, match="num_samples"):
        pert.make_perturbed_argmax(_one_hot_argmax, 0)


def test_loss_mapping_to_optax():
    jl = module("loss")
    logits, labels = jnp.asarray(RNG.normal(size=(6, 4))), jnp.asarray(RNG.integers(0, 4, 6))
    s, lab = jnp.asarray(RNG.normal(size=6)), jnp.asarray(RNG.integers(0, 2, 6))
    pairs = [
        (jax.vmap(jl.multiclass_logistic_loss)(labels, logits),
         optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)),
        (jax.vmap(jl.multiclass_sparsemax_loss)(labels, logits),
         optax.losses.multiclass_sparsemax_loss(logits, labels)),
        (jax.vmap(jl.multiclass_hinge_loss)(labels, logits),
         optax.losses.multiclass_hinge_loss(logits, labels)),
        (jax.vmap(jl.multiclass_perceptron_loss)(labels, logits),
         optax.losses.multiclass_perceptron_loss(logits, labels)),
        (jax.vmap(jl.binary_logistic_loss)(lab, s),
         optax.losses.sigmoid_binary_cross_entropy(s, lab.astype(s.dtype))),
        (jax.vmap(jl.binary_sparsemax_loss)(lab, s), optax.losses.sparsemax_loss(s, lab)),
        (jax.vmap(jl.binary_hinge_loss)(lab, s), optax.losses.hinge_loss(s, 2.0 * lab - 1)),
        (jax.vmap(jl.binary_perceptron_loss)(lab, s),
         optax.losses.perceptron_loss(s, 2.0 * lab - 1)),
        (jax.vmap(jl.huber_loss)(s, 2 * s + 1), optax.losses.huber_loss(2 * s + 1, s)),
        (jl.sparse_plus(s), jax.nn.sparse_plus(s)),
        (jl.sparse_sigmoid(s), jax.nn.sparse_sigmoid(s)),
    ]  # fmt: skip
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_tree_util_mapping_to_optax():
    jt = module("tree_util")
    x = {"a": jnp.asarray(RNG.normal(size=3)), "b": jnp.asarray(RNG.normal(size=(2, 2)))}
    y = jax.tree.map(lambda v: v + 1.5, x)
    same = [
        (jt.tree_add(x, y), optax.tree.add(x, y)),
        (jt.tree_sub(x, y), optax.tree.sub(x, y)),
        (jt.tree_mul(x, y), optax.tree.mul(x, y)),
        (jt.tree_div(x, y), optax.tree.div(x, y)),
        (jt.tree_scalar_mul(2.0, x), optax.tree.scale(2.0, x)),
        (jt.tree_add_scalar_mul(x, 2.0, y), optax.tree.add_scale(x, 2.0, y)),
        (jt.tree_vdot(x, y), optax.tree.vdot(x, y)),
        (jt.tree_dot(x, y), jax.tree.map(jnp.dot, x, y)),
        (jt.tree_vdot_real(x, y), optax.tree.real(optax.tree.vdot(x, y))),
        (jt.tree_sum(x), optax.tree.sum(x)),
        (jt.tree_l2_norm(x), optax.tree.norm(x)),
        (jt.tree_l2_norm(x, squared=True), optax.tree.norm(x, squared=True)),
        (jt.tree_inf_norm(x), optax.tree.norm(x, ord="inf")),
        (jt.tree_where(True, x, y), optax.tree.where(True, x, y)),
        (jt.tree_zeros_like(x), optax.tree.zeros_like(x)),
        (jt.tree_ones_like(x), optax.tree.ones_like(x)),
        (jt.tree_negative(x), optax.tree.scale(-1, x)),
        (jt.tree_conj(x), optax.tree.conj(x)),
        (jt.tree_real(x), optax.tree.real(x)),
        (jt.tree_imag(x), jax.tree.map(jnp.imag, x)),
        (jt.tree_map(jnp.sin, x), jax.tree.map(jnp.sin, x)),
    ]  # fmt: skip
    add = lambda u, v: u + jnp.sum(v)
    same.append((jt.tree_reduce(add, x, 0.0), jax.tree.reduce(add, x, 0.0)))
    for i, (got, want) in enumerate(same):
        assert jax.tree.structure(got) == jax.tree.structure(want), i
        for u, v in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-14, err_msg=str(i))


@pytest.mark.parametrize("mod", [obj, pert, iso])
def test_module_examples_run(mod):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(mod) if t.examples]
    assert tests
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


def test_new_projection_examples_run():
    from jaxopt_papers.proximal import projection

    names = {
        "projection_sparse_simplex", "projection_box_section", "projection_polyhedron",
        "projection_transport", "projection_birkhoff", "kl_projection_transport",
        "kl_projection_birkhoff",
    }  # fmt: skip
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    found = [t for t in doctest.DocTestFinder().find(projection) if t.name.split(".")[-1] in names]
    assert len(found) == len(names)
    for t in found:
        runner.run(t)
    assert runner.failures == 0
