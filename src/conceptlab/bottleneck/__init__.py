"""Concept bottleneck models on cached embeddings: one job per module.

* ``objectives/``: the CBL objectives, one file each, in a registry (``OBJECTIVES``);
* ``layers``: the CBL in its two kinds (reads concept scores / reads a vector space) and
  ``CBLConfig`` (input, grounding, cutoff);
* ``training``: ``TrainConfig`` and the training loop;
* ``heads/``: the final layer (``LinearHead``), its dense and sparse (exact-NEC) fits, the path
  solvers and ``HeadConfig``;
* ``model``: ``ConceptBottleneckModel`` (fit / predict / explain / intervene);
* ``saving``: save and load, with every malformed folder refused clearly;
* ``options``: flat command-line settings routed to the configs;
* ``audit``: faithfulness of a fitted model (does unit k mean concept k?);
* ``cms``: Concept Matrix Search; ``intervention``: test-time interventions.

Submodules import lazily so that ``import conceptlab.bottleneck.heads`` does not pay for the
rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ConceptBottleneckModel": "conceptlab.bottleneck.model",
    "ModelFormatError": "conceptlab.bottleneck.model",
    "NotFittedError": "conceptlab.bottleneck.model",
    "OBJECTIVES": "conceptlab.bottleneck.objectives",
    "get_objective": "conceptlab.bottleneck.objectives",
    "objective_names": "conceptlab.bottleneck.objectives",
    "register_objective": "conceptlab.bottleneck.objectives",
    "Objective": "conceptlab.bottleneck.objectives",
    "TrainConfig": "conceptlab.bottleneck.training",
    "HeadConfig": "conceptlab.bottleneck.heads",
    "CBLConfig": "conceptlab.bottleneck.layers",
    "audit": "conceptlab.bottleneck.audit",
    "intervention_curve": "conceptlab.bottleneck.intervention",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'conceptlab.bottleneck' has no attribute {name!r}")
