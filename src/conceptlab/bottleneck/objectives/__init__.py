"""CBL objectives, chosen by name from a registry; one file per objective.

Each objective documents its formula and the paper it comes from; pure building blocks
(``clip_contrastive_loss``, ``gumbel_softmax``, ``cos3_similarity``, ...) live in
``functional``. ``OBJECTIVES`` maps a name to its class, ``get_objective(name, **params)``
builds one, ``register_objective`` adds a new one (see docs/contributing.md).
"""

from conceptlab.bottleneck.objectives import (
    contrastive,
    cos3,
    gumbel,
    l1,
    random_cbl,
    ref_lfcbm,
    ref_sparsecbm,
    supervised,
)
from conceptlab.bottleneck.objectives.base import (
    INPUT_KINDS,
    InputKind,
    LossInputs,
    Objective,
    ObjectiveError,
    ValidationInputs,
)
from conceptlab.bottleneck.objectives.contrastive import ContrastiveObjective
from conceptlab.bottleneck.objectives.cos3 import Cos3Objective
from conceptlab.bottleneck.objectives.functional import (
    anneal_temperature,
    batch_correlations,
    clip_contrastive_loss,
    cos3_similarity,
    cosine_class_similarity,
    gumbel_softmax,
    l1_penalty,
    mass_class_similarity,
    sample_gumbel,
)
from conceptlab.bottleneck.objectives.gumbel import GumbelObjective
from conceptlab.bottleneck.objectives.l1 import L1Objective
from conceptlab.bottleneck.objectives.registry import (
    OBJECTIVES,
    get_objective,
    objective_names,
    register_objective,
)
from conceptlab.bottleneck.objectives.supervised import SupervisedObjective

del contrastive, cos3, gumbel, l1, random_cbl, ref_lfcbm, ref_sparsecbm, supervised

__all__ = [
    "INPUT_KINDS",
    "OBJECTIVES",
    "ContrastiveObjective",
    "Cos3Objective",
    "GumbelObjective",
    "InputKind",
    "L1Objective",
    "LossInputs",
    "Objective",
    "ObjectiveError",
    "SupervisedObjective",
    "ValidationInputs",
    "anneal_temperature",
    "batch_correlations",
    "clip_contrastive_loss",
    "cos3_similarity",
    "cosine_class_similarity",
    "get_objective",
    "gumbel_softmax",
    "l1_penalty",
    "mass_class_similarity",
    "objective_names",
    "register_objective",
    "sample_gumbel",
]
