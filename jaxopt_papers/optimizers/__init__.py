"""optax-style gradient transformations from the papers, one module per paper.

Each module offers ``scale_by_<name>`` (the paper's rescaling), the user-facing alias
``<name>(learning_rate, ...)`` built with ``optax.chain`` and the state ``<Name>State``.
"""

from jaxopt_papers.optimizers.adamp import (
    AdamPState,
    SGDPState,
    adamp,
    scale_by_adamp,
    scale_by_sgdp,
    sgdp,
)
from jaxopt_papers.optimizers.adan import AdanState, adan, scale_by_adan
from jaxopt_papers.optimizers.diffgrad import DiffGradState, diffgrad, scale_by_diffgrad
from jaxopt_papers.optimizers.exadam import EXAdamState, exadam, scale_by_exadam
from jaxopt_papers.optimizers.lion import LionState, lion, scale_by_lion
from jaxopt_papers.optimizers.lion_k import LionKState, lion_k, scale_by_lion_k
from jaxopt_papers.optimizers.spam import SPAMState, scale_by_spam, spam
from jaxopt_papers.optimizers.stable_spam import (
    StableSPAMState,
    scale_by_stable_spam,
    stable_spam,
)

__all__ = [
    "AdamPState",
    "AdanState",
    "DiffGradState",
    "EXAdamState",
    "LionKState",
    "LionState",
    "SGDPState",
    "SPAMState",
    "StableSPAMState",
    "adamp",
    "adan",
    "diffgrad",
    "exadam",
    "lion",
    "lion_k",
    "scale_by_adamp",
    "scale_by_adan",
    "scale_by_diffgrad",
    "scale_by_exadam",
    "scale_by_lion",
    "scale_by_lion_k",
    "scale_by_sgdp",
    "scale_by_spam",
    "scale_by_stable_spam",
    "sgdp",
    "spam",
    "stable_spam",
]
