"""Concept bottleneck models on cached embeddings: objectives, CBL training, heads, CMS.

Submodules import lazily so that ``import conceptlab.bottleneck.heads`` does not pay for the
rest (and so that no submodule import order matters):

* ``objectives``: the CBL objectives registry (``l1``, ``contrastive``, ``gumbel``, ``cos3``,
  ``supervised``);
* ``cbl``: the CBL layer and its training loop;
* ``heads``: dense and sparse (exact-NEC) final layers;
* ``model``: ``ConceptBottleneckModel`` (fit / predict / explain / intervene / save / load);
* ``intervention``: test-time interventions with ground-truth concepts.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ConceptBottleneckModel": "conceptlab.bottleneck.model",
    "ModelFormatError": "conceptlab.bottleneck.model",
    "OBJECTIVES": "conceptlab.bottleneck.objectives",
    "get_objective": "conceptlab.bottleneck.objectives",
    "TrainConfig": "conceptlab.bottleneck.cbl",
    "intervention_curve": "conceptlab.bottleneck.intervention",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'conceptlab.bottleneck' has no attribute {name!r}")
