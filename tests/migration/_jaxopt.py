"""Import jaxopt 0.8.5 (the reference) without its deprecation warning."""

import importlib
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import jaxopt

SUBMODULES = (
    "base",
    "cond",
    "implicit_diff",
    "isotonic",
    "linear_solve",
    "loop",
    "loss",
    "objective",
    "perturbations",
    "projection",
    "prox",
    "tree_util",
)


def module(name: str):
    """``jaxopt.<name>`` (imported: some are not attributes of the package)."""
    return importlib.import_module(f"jaxopt.{name}")


__all__ = ["SUBMODULES", "jaxopt", "module"]
