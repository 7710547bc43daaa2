"""ZO-RankSGD: the estimate against an explicit enumeration of the comparison DAG, its
correlation with the gradient (a statistical test), and the oracle plumbing."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import zeroth_order as zo


def dag_estimate(xi, ranking, k):
    """Independent: enumerate the DAG's edges (worse i, better j) and average ξ_i - ξ_j."""
    m = len(xi)
    top = list(ranking[:k])
    rest = [i for i in range(m) if i not in top]
    edges = [(top[b], top[a]) for a, b in itertools.combinations(range(k), 2)]  # a above b
    edges += [(i, j) for j in top for i in rest]
    assert len(edges) == k * (k - 1) // 2 + k * (m - k)
    return sum(xi[i] - xi[j] for i, j in edges) / len(edges)


@pytest.mark.parametrize("m,k", [(2, 1), (5, 5), (7, 3)])
def test_direction_matches_the_dag_count(m, k):
    rng = np.random.default_rng(m * 10 + k)
    xi = rng.normal(size=(m, 4))
    ranking = rng.permutation(m)
    got = zo.rank_sgd_direction(jnp.asarray(xi), jnp.asarray(ranking[:k]), k)
    np.testing.assert_allclose(np.asarray(got), dag_estimate(xi, ranking, k), rtol=1e-12)
    # pytree directions: leaf by leaf
    tree = {"a": jnp.asarray(xi[:, :1]), "b": jnp.asarray(xi[:, 1:].reshape(m, 3, 1))}
    got = zo.rank_sgd_direction(tree, jnp.asarray(ranking), k)
    np.testing.assert_allclose(
        np.asarray(got["b"]).ravel(), np.asarray(dag_estimate(xi, ranking, k))[1:], rtol=1e-12
    )


def test_official_coefficients_add_one_to_the_ranked_weights():
    # the reference weighs ranked position r by m - 2r (the DAG count is m - 1 - 2r)
    rng = np.random.default_rng(1)
    m, k = 6, 3
    xi, ranking = rng.normal(size=(m, 3)), rng.permutation(m)
    paper = zo.rank_sgd_direction(jnp.asarray(xi), jnp.asarray(ranking), k)
    official = zo.rank_sgd_direction(
        jnp.asarray(xi), jnp.asarray(ranking), k, coefficients="official"
    )
    edges = k * (k - 1) // 2 + k * (m - k)
    extra = -xi[ranking[:k]].sum(0) / edges  # ĝ = -(Σ c ξ)/|E|: one more on each ranked c
    np.testing.assert_allclose(np.asarray(official), np.asarray(paper) + extra, rtol=1e-12)


A = np.diag([1.0, 3.0, 0.5, 2.0])
X0 = np.array([1.0, -1.0, 2.0, 0.5])


def quad(x):
    return 0.5 * x @ jnp.asarray(A) @ x


@pytest.mark.parametrize("k", [None, 2], ids=["full_ranking", "top2"])
def test_direction_correlates_with_the_gradient(k):
    # <-ĝ, -∇f> > 0 on average: over 4000 independent steps the mean inner product must exceed
    # 5 standard errors, and the mean direction must point along ∇f (cosine > 0.95)
    tx = zo.scale_by_rank_sgd(num_queries=6, top_k=k, mu=1e-3)
    x = jnp.asarray(X0)
    keys = jnp.arange(4000)

    def one(i):
        state = tx.init(x)._replace(count=i.astype(jnp.int32))
        return tx.update(None, state, x, value_fn=quad)[0]

    g = np.asarray(jax.jit(jax.vmap(one))(keys))
    grad = A @ X0
    dots = g @ grad
    assert dots.mean() > 5 * dots.std() / np.sqrt(len(dots)), (dots.mean(), dots.std())
    mean = g.mean(0)
    assert mean @ grad / np.linalg.norm(mean) / np.linalg.norm(grad) > 0.95


def test_ranking_fn_oracle_and_value_fn_agree_and_descend():
    # an oracle that ranks by the loss gives the same step as the default value_fn ranking
    oracle = lambda q: jnp.argsort(jax.vmap(quad)(q))[:3]
    a = zo.zo_rank_sgd(0.1, num_queries=5, top_k=3, ranking_fn=oracle, seed=2)
    b = zo.zo_rank_sgd(0.1, num_queries=5, top_k=3, seed=2)
    x = jnp.asarray(X0)

    @jax.jit
    def run(x):
        def step(carry, _):
            xa, sa, xb, sb = carry
            ua, sa = a.update(None, sa, xa)
            ub, sb = b.update(None, sb, xb, value_fn=quad)
            return (optax.apply_updates(xa, ua), sa, optax.apply_updates(xb, ub), sb), None

        return jax.lax.scan(step, (x, a.init(x), x, b.init(x)), length=100)[0]

    xa, _, xb, _ = run(x)
    np.testing.assert_allclose(np.asarray(xa), np.asarray(xb), rtol=1e-12)
    assert float(quad(xa)) < 0.05 * float(quad(x))


def test_bad_input():
    with pytest.raises(ValueError, match=r"`top_k` must be at most `num_queries` = 4, got 5"):
        zo.zo_rank_sgd(0.1, num_queries=4, top_k=5)
    with pytest.raises(ValueError, match=r"`mu` must be a finite number in \(0\.0, inf\]"):
        zo.zo_rank_sgd(0.1, mu=0.0)
    with pytest.raises(ValueError, match=r"`num_queries` must be an int >= 2, got 1"):
        zo.scale_by_rank_sgd(num_queries=1)
    with pytest.raises(ValueError, match=r"`coefficients` must be one of"):
        zo.rank_sgd_direction(jnp.ones((3, 2)), jnp.arange(3), coefficients="x")
    with pytest.raises(TypeError, match=r"`ranking` must be a 1-D integer array"):
        zo.rank_sgd_direction(jnp.ones((3, 2)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"`k` must be at most the number of queries m = 3"):
        zo.rank_sgd_direction(jnp.ones((3, 2)), jnp.arange(3), 4)
    tx = zo.scale_by_rank_sgd()
    with pytest.raises(ValueError, match="`value_fn` is missing"):
        tx.update(None, tx.init(jnp.zeros(2)), jnp.zeros(2))
