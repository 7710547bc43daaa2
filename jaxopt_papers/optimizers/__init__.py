"""optax-style gradient transformations from the papers, one module per paper.

Each module offers ``scale_by_<name>`` (the paper's rescaling), the user-facing alias
``<name>(learning_rate, ...)`` built with ``optax.chain`` and the state ``<Name>State``.
"""

import importlib as _importlib

_MODULES = ("adamp", "adan", "lion", "lion_k", "exadam", "spam", "stable_spam", "diffgrad")

__all__: list[str] = []
for _name in _MODULES:
    try:
        _mod = _importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _err:  # during development only; see the final list
        if _err.name != f"{__name__}.{_name}":
            raise
        continue
    for _sym in _mod.__all__:
        globals()[_sym] = getattr(_mod, _sym)
    __all__ += list(_mod.__all__)
