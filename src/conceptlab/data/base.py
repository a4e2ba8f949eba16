"""Dataset protocol, split views and the registry that builds datasets from spec strings.

A ``Dataset`` knows its official splits (``"train"``, ``"test"``; some have ``"val"``) and
hands out ``DataSplit`` views: a list of item indices into one source plus their labels.
Items are loaded lazily (``split[i]`` is a PIL image or a string), so a split of any size
costs only its index array until it is encoded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from conceptlab.utils.hashing import hash_array, hash_json

Modality = Literal["image", "text"]


class DataError(ValueError):
    """Raised for an unknown data spec, a missing or corrupt file, or a malformed split."""


class ItemSource(ABC):
    """Random access to the raw items of one official split (images or texts)."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> Any:
        """Return item ``index`` (a PIL RGB image or a string); raise DataError naming the file."""

    @abstractmethod
    def fingerprint(self) -> str:
        """Identity of the items' content (file bytes, or paths+sizes+mtimes for large folders)."""


@dataclass
class DataSplit(Sequence[Any]):
    """A view of ``source`` restricted to ``indices``, with integer labels per item.

    ``concept_labels`` (N x C, 0/1) and ``concept_names`` hold ground-truth concepts when the
    dataset has them (CUB attributes, concept-benchmark robots).
    """

    dataset: str
    name: str
    modality: Modality
    source: ItemSource
    indices: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    concept_labels: np.ndarray | None = None
    concept_names: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.indices.shape != self.labels.shape:
            raise DataError(f"{self.dataset}/{self.name}: {len(self.indices)} indices but "
                            f"{len(self.labels)} labels")
        if self.concept_labels is not None and len(self.concept_labels) != len(self.indices):
            raise DataError(f"{self.dataset}/{self.name}: concept labels do not match items")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        return self.source.load(int(self.indices[i]))

    def items(self, start: int, stop: int) -> list[Any]:
        """Load items ``start:stop`` (used by batched encoding)."""
        return [self.source.load(int(j)) for j in self.indices[start:stop]]

    def fingerprint(self) -> str:
        """Identity of exactly these items of this source, in this order, with these labels."""
        return hash_json({"source": self.source.fingerprint(), "indices": hash_array(self.indices),
                          "labels": hash_array(self.labels), "modality": self.modality})

    def subset(self, positions: np.ndarray, name: str | None = None) -> DataSplit:
        """A new split holding the items at ``positions`` of this one."""
        pos = np.asarray(positions, dtype=np.int64)
        return DataSplit(
            dataset=self.dataset, name=name or self.name, modality=self.modality,
            source=self.source, indices=self.indices[pos], labels=self.labels[pos],
            class_names=self.class_names,
            concept_labels=None if self.concept_labels is None else self.concept_labels[pos],
            concept_names=self.concept_names, meta=dict(self.meta),
        )


class Dataset(ABC):
    """A labelled dataset with official splits."""

    spec: str = ""
    modality: Modality = "image"

    @property
    @abstractmethod
    def class_names(self) -> list[str]: ...

    @abstractmethod
    def official_split(self, name: str) -> DataSplit:
        """The official ``"train"`` or ``"test"`` split (``"val"`` where the dataset ships one)."""

    def available_splits(self) -> list[str]:
        return ["train", "test"]


DatasetFactory = Callable[[str, dict[str, Any]], Dataset]
_REGISTRY: dict[str, DatasetFactory] = {}


def register_dataset(prefix: str) -> Callable[[DatasetFactory], DatasetFactory]:
    """Register a factory for specs ``prefix`` or ``prefix:PATH``."""

    def deco(factory: DatasetFactory) -> DatasetFactory:
        _REGISTRY[prefix] = factory
        return factory

    return deco


def known_datasets() -> list[str]:
    _load_builtin_loaders()
    return sorted(_REGISTRY)


def build_dataset(spec: str, **options: Any) -> Dataset:
    """Build a dataset from ``fashion-mnist``, ``folder:PATH``, ``csv:PATH``, ``cifar10:PATH``, ..."""
    _load_builtin_loaders()
    if not spec or not isinstance(spec, str):
        raise DataError("empty data spec")
    prefix, _, arg = spec.partition(":")
    if prefix not in _REGISTRY:
        raise DataError(f"unknown data spec {spec!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[prefix](arg, options)


def _load_builtin_loaders() -> None:
    from conceptlab.data import (  # noqa: F401
        cifar,
        cub,
        fashion_mnist,
        folder,
        imagenet,
        places365,
        robots,
        text_table,
    )
