"""Bad input raises a clear error naming the argument, what was expected and what was given."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from jaxopt_papers import zeroth_order as zo

P = {"w": jnp.ones(3)}
f = lambda p: jnp.sum(p["w"] ** 2)


@pytest.mark.parametrize("eps", [0.0, -1e-3, float("nan")])
@pytest.mark.parametrize(
    "make",
    [
        lambda eps: zo.scale_by_spsa(eps=eps),
        lambda eps: zo.mezo(1e-3, eps=eps),
        lambda eps: zo.scale_by_sparse_spsa(eps=eps),
        lambda eps: zo.sparse_mezo(1e-3, eps=eps),
        lambda eps: zo.spsa_gradient(f, P, jnp.zeros(2, jnp.uint32), eps=eps),
    ],
    ids=["scale_by_spsa", "mezo", "scale_by_sparse_spsa", "sparse_mezo", "spsa_gradient"],
)
def test_eps_must_be_positive(make, eps):
    with pytest.raises(ValueError, match=r"`eps` must be a finite number in \(0\.0, inf\], got"):
        make(eps)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
@pytest.mark.parametrize(
    "make",
    [
        lambda s: zo.scale_by_sparse_spsa(sparsity=s),
        lambda s: zo.sparse_mezo(1e-3, sparsity=s),
        lambda s: zo.sparse_mezo_mask(P, s),
    ],
    ids=["scale_by_sparse_spsa", "sparse_mezo", "sparse_mezo_mask"],
)
def test_sparsity_must_lie_in_unit_interval(make, sparsity):
    with pytest.raises(ValueError, match=r"`sparsity` must be a finite number in \[0\.0, 1\.0\)"):
        make(sparsity)


@pytest.mark.parametrize(
    "tx", [zo.scale_by_spsa(), zo.mezo(1e-3), zo.sparse_mezo(1e-3)], ids=["spsa", "mezo", "sparse"]
)
def test_missing_value_fn_or_params(tx):
    state = tx.init(P)
    with pytest.raises(ValueError, match="`value_fn` is missing"):
        tx.update(None, state, P)
    with pytest.raises(TypeError, match="`value_fn` must be a callable"):
        tx.update(None, state, P, value_fn=3.0)
    with pytest.raises(ValueError, match="`params` is missing"):
        tx.update(None, state, None, value_fn=f)


def test_structural_and_learning_rate_arguments():
    with pytest.raises(ValueError, match=r"`num_directions` must be an int >= 1, got 0"):
        zo.scale_by_spsa(num_directions=0)
    with pytest.raises(TypeError, match=r"`num_directions` must be a Python int"):
        zo.scale_by_spsa(num_directions=jnp.asarray(2))
    with pytest.raises(ValueError, match=r"mezo: `learning_rate` must be .* got -0\.1"):
        zo.mezo(-0.1)
    with pytest.raises(TypeError, match="`sampler` must be None or a callable"):
        zo.scale_by_spsa(sampler=3)
    with pytest.raises(TypeError, match="`mask_fn` must be None or a callable"):
        zo.scale_by_spsa(mask_fn=[True])
    with pytest.raises(TypeError, match=r"`params` must have floating-point leaves"):
        zo.scale_by_spsa().init({"w": jnp.ones(3, jnp.int32)})
