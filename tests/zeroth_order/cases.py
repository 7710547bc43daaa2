"""The zeroth-order transformations as the shared tests in this folder see them.

Each entry: a name, the factory in ``jaxopt_papers.zeroth_order``, keyword arguments, and the
structural arguments that ``optax.inject_hyperparams`` must be told about (``static_args``).
Every transformation needs ``params`` and the ``value_fn`` extra argument.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

from jaxopt_papers import zeroth_order as zo


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    factory: str
    kwargs: dict[str, Any]
    static: tuple[str, ...] = ()
    traced: str = "eps"  # a numeric hyperparameter that inject_hyperparams turns into an array

    def make(self, **overrides):
        return getattr(zo, self.factory)(**{**self.kwargs, **overrides})

    def make_injected(self, **overrides):
        fn = optax.inject_hyperparams(getattr(zo, self.factory), static_args=self.static)
        return fn(**{**self.kwargs, **overrides})


CASES = [
    Case(
        "scale_by_spsa",
        "scale_by_spsa",
        dict(eps=1e-2, num_directions=2, seed=1),
        ("num_directions", "seed"),
    ),
    Case(
        "mezo",
        "mezo",
        dict(learning_rate=1e-2, eps=1e-2, weight_decay=0.1),
        ("num_directions", "seed"),
    ),
    Case(
        "scale_by_sparse_spsa",
        "scale_by_sparse_spsa",
        dict(eps=1e-2, sparsity=0.5),
        ("num_directions", "seed"),
    ),
    Case(
        "sparse_mezo",
        "sparse_mezo",
        dict(learning_rate=1e-2, sparsity=0.5, weight_decay=0.1),
        ("num_directions", "seed"),
    ),
    Case(
        "scale_by_rank_sgd",
        "scale_by_rank_sgd",
        dict(num_queries=5, top_k=3, mu=1e-2),
        ("num_queries", "top_k", "seed"),
        "mu",
    ),
    Case(
        "scale_by_coordinate_estimate",
        "scale_by_coordinate_estimate",
        dict(mu=1e-3, sparsity=0.5, chunk_size=4),
        ("sparsity", "chunk_size", "seed"),
        "mu",
    ),
    Case(
        "deepzero",
        "deepzero",
        dict(learning_rate=0.05, sparsity=0.3, chunk_size=4),
        ("sparsity", "chunk_size", "seed", "nesterov"),
        "mu",
    ),
    Case(
        "zo_rank_sgd",
        "zo_rank_sgd",
        dict(learning_rate=1e-2, num_queries=4, mu=1e-2),
        ("num_queries", "top_k", "seed"),
        "mu",
    ),
]
IDS = [c.name for c in CASES]
