"""conceptlab: concept-based interpretability in one flow.

The working set, importable from the top level (each name loads its module on first use)::

    import conceptlab
    enc = conceptlab.build_encoder("minilm")
    bank = conceptlab.ConceptBank.from_texts(enc, ["sports", "cooking", "politics"])
    model = conceptlab.ConceptBottleneckModel(bank, ["sport", "food"], objective="l1")
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("conceptlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_LAZY = {
    "ConceptBank": "conceptlab.concepts.bank",
    "Vocabulary": "conceptlab.concepts.vocab",
    "ConceptBottleneckModel": "conceptlab.bottleneck.model",
    "CBLConfig": "conceptlab.bottleneck.layers",
    "TrainConfig": "conceptlab.bottleneck.training",
    "HeadConfig": "conceptlab.bottleneck.heads",
    "audit": "conceptlab.bottleneck.audit",
    "build_encoder": "conceptlab.encoders.base",
    "build_dataset": "conceptlab.data.base",
    "ConceptlabError": "conceptlab.errors",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'conceptlab' has no attribute {name!r}")
