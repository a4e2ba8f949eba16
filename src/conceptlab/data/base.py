"""Dataset protocol, split views and the registry that builds datasets from spec strings.

A ``Dataset`` knows its official splits (``"train"``, ``"test"``; some have ``"val"``) and
hands out ``DataSplit`` views: a list of item indices into one source plus their labels.
Items are loaded lazily (``split[i]`` is a PIL image or a string), so a split of any size
costs only its index array until it is encoded.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from conceptlab.errors import ConceptlabError
from conceptlab.utils.hashing import hash_array, hash_file, hash_json
from conceptlab.utils.registry import Registry

Modality = Literal["image", "text"]


class DataError(ConceptlabError, ValueError):
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

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of this dataset (spec and options), recorded beside splits."""
        return {"spec": self.spec, "modality": self.modality}


def take_options(spec: str, options: Mapping[str, Any],
                 defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by ``options``; an option not in ``defaults`` is a DataError.

    Why: a misspelt option (``inverted=True``) must fail loudly rather than be ignored.
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise DataError(f"{spec}: unknown option(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(defaults)) or 'none'}")
    for name, value in options.items():
        check_option_type(spec, name, value, defaults[name])
    return {**defaults, **options}


def check_option_type(spec: str, name: str, value: Any, default: Any) -> None:
    """``value`` must have the kind of ``default`` (true/false, an integer, a number, a
    string or null; anything where the default is None); seeds must be >= 0. A DataError names the
    option, what it takes and what it got (``-D split_seed=abc``)."""
    if default is None:
        return
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
        if ok and name.endswith("seed") and value < 0:
            ok, kind = False, "an integer >= 0"
    elif isinstance(default, float):
        ok, kind = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    elif isinstance(default, str):
        ok, kind = value is None or isinstance(value, str), "a string"
    else:
        return
    if not ok:
        raise DataError(f"{spec}: option {name} must be {kind}, got {value!r}")


def take_path_options(prefix: str, arg: str, options: Mapping[str, Any],
                      defaults: Mapping[str, Any], example: str) -> dict[str, Any]:
    """:func:`take_options` for a family whose spec needs a path (``prefix:PATH``).

    An empty ``arg`` is a DataError showing ``prefix:example``.
    """
    if not arg:
        raise DataError(f"{prefix}: needs a path, e.g. {prefix}:{example}")
    return take_options(prefix, options, defaults)


def read_error(path: str | os.PathLike[str], err: OSError) -> DataError:
    """The DataError for an OSError while reading ``path``: "no such file" or "cannot read"."""
    if isinstance(err, FileNotFoundError):
        return DataError(f"{path}: no such file")
    return DataError(f"{path}: cannot read ({err.strerror or err})")


def dataset_cache_dir(name: str) -> Path:
    """Where generated datasets are cached: ``$CONCEPTLAB_CACHE/datasets/NAME`` when the
    activation-cache variable is set, else ``~/.cache/conceptlab/datasets/NAME``.

    Why one variable: a user (or CI) who points ``CONCEPTLAB_CACHE`` somewhere moves every
    cached artefact there, activations and rendered data alike.
    """
    env = os.environ.get("CONCEPTLAB_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "conceptlab"
    return base / "datasets" / name


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike[str]) -> str:
    """Hash of a file's bytes, cached per process by (path, size, mtime).

    Why: fingerprints are asked for often (every split, every cache lookup); hashing a 26 MB
    archive each time would cost more than the lookup. A changed file has a new size or
    mtime and is hashed again.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as err:
        raise DataError(f"{p}: cannot read ({err.strerror or err})") from err
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        try:
            _DIGESTS[key] = hash_file(p)
        except OSError as err:
            raise DataError(f"{p}: cannot read ({err.strerror or err})") from err
    return _DIGESTS[key]


DatasetFactory = Callable[[str, dict[str, Any]], Dataset]
_REGISTRY: Registry[DatasetFactory] = Registry("data spec", DataError)
_OPTIONS: dict[str, tuple[dict[str, Any], str | None]] = {}


def register_dataset(prefix: str, options: Mapping[str, Any] | None = None,
                     path: str | None = None) -> Callable[[DatasetFactory], DatasetFactory]:
    """Register a factory for specs ``prefix`` or ``prefix:PATH``.

    ``options``: the ``-D`` options the family takes with their defaults; ``path``: an example
    path when the spec takes one (``None``: no path, or an optional one). Both are what
    :func:`dataset_options` returns, so documentation and help are derived from the registry.
    """

    def deco(factory: DatasetFactory) -> DatasetFactory:
        _REGISTRY.add(prefix, factory)
        _OPTIONS[prefix] = (dict(options or {}), path)
        return factory

    return deco


def known_datasets() -> list[str]:
    _load_builtin_loaders()
    return sorted(_REGISTRY)


def dataset_options(prefix: str) -> tuple[dict[str, Any], str | None]:
    """``(options with defaults, example path or None)`` a registered family takes."""
    _load_builtin_loaders()
    _REGISTRY.lookup(prefix)
    opts, path = _OPTIONS[prefix]
    return dict(opts), path


def build_dataset(spec: str, **options: Any) -> Dataset:
    """Build a dataset from a spec: ``fashion-mnist``, ``folder:PATH``, ``csv:PATH``, ...

    ``options`` go to the dataset family (e.g. ``invert=True``); unknown ones are a DataError.
    """
    _load_builtin_loaders()
    if not spec or not isinstance(spec, str):
        raise DataError("empty data spec")
    prefix, _, arg = spec.partition(":")
    return _REGISTRY.lookup(prefix, shown=spec)(arg, options)


def _load_builtin_loaders() -> None:
    from conceptlab.data import (  # noqa: F401
        captions,
        cifar,
        cub,
        fashion_mnist,
        folder,
        idsprites,
        imagenet,
        places365,
        robots,
        text_table,
        twoshapes,
    )


def read_fields(path: str | os.PathLike[str], min_fields: int,
                maxsplit: int = -1) -> list[tuple[int, list[str]]]:
    """``(line number, whitespace-separated fields)`` of each non-blank line of a small text
    file (dataset metadata such as CUB's ``images.txt``); a missing file, undecodable text or
    a line with fewer than ``min_fields`` fields is a DataError naming file and line.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise read_error(p, err) from err
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split(None, maxsplit)
        if not fields:
            continue
        if len(fields) < min_fields:
            raise DataError(f"{p}:{n}: expected at least {min_fields} fields, got {line!r}")
        out.append((n, fields))
    return out


def parse_int(path: str | os.PathLike[str], line: int, value: str, what: str) -> int:
    """``int(value)``, or a DataError naming file, line and what the field should be."""
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{path}:{line}: {what} must be an integer, got {value!r}") from None
