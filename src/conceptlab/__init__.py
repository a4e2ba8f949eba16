"""conceptlab: concept-based interpretability in one flow.

The working set, importable from the top level (each name loads its module on first use, so
``import conceptlab`` stays cheap; ``dir(conceptlab)`` and ``__all__`` list them)::

    import conceptlab
    enc = conceptlab.build_encoder("minilm")
    bank = conceptlab.ConceptBank.from_texts(enc, ["sports", "cooking", "politics"])
    model = conceptlab.ConceptBottleneckModel(bank, ["sport", "food"], objective="l1")

Tables and figures to take away: ``conceptlab.export_table(run_dir, "activations")`` (a pandas
DataFrame) and ``conceptlab.plot`` (the report's figures from the objects the API returns).
"""

from __future__ import annotations

from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version
from typing import Any as _Any

try:
    __version__ = _version("conceptlab")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_LAZY = {
    "ConceptBank": "conceptlab.concepts.bank",
    "Vocabulary": "conceptlab.concepts.vocab",
    "load_vocabulary": "conceptlab.concepts.vocab",
    "ConceptBottleneckModel": "conceptlab.bottleneck.model",
    "CBLConfig": "conceptlab.bottleneck.layers",
    "TrainConfig": "conceptlab.bottleneck.training",
    "HeadConfig": "conceptlab.bottleneck.heads",
    "audit": "conceptlab.bottleneck.audit",
    "intervention_curve": "conceptlab.bottleneck.intervention",
    "build_encoder": "conceptlab.encoders.base",
    "build_dataset": "conceptlab.data.base",
    "export_table": "conceptlab.workflows.export",
    "ConceptlabError": "conceptlab.errors",
}
#: submodules reachable as attributes (``conceptlab.plot.explanation(...)``)
_SUBMODULES = ("plot",)

__all__ = ["__version__", *sorted([*_LAZY, *_SUBMODULES])]


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        value = getattr(_import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = _import_module(f"conceptlab.{name}")
    else:
        raise AttributeError(f"module 'conceptlab' has no attribute {name!r}")
    globals()[name] = value  # resolved once; later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
