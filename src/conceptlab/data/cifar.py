"""CIFAR-10 / CIFAR-100 from the official "python version" pickle batches, read safely.

Specs: ``cifar10:PATH`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
``batches.meta``) and ``cifar100:PATH`` (``train``, ``test``, ``meta``; option
``label_kind="fine"`` (100 classes, default) or ``"coarse"`` (20 superclasses)). PATH may
also be the folder that holds ``cifar-10-batches-py/`` or ``cifar-100-python/``.

Why a restricted unpickler: a pickle can run any code on load. The official files hold only
dicts, lists, bytes, integers and numpy uint8 arrays, and rebuilding a numpy array needs
exactly three globals: ``numpy.core.multiarray._reconstruct`` (``numpy._core`` in files
written by numpy 2), ``numpy.ndarray`` and ``numpy.dtype``. ``SafeUnpickler`` allows those
and refuses every other global, so a tampered file fails with a DataError instead of
running code. Files are read with ``encoding="bytes"``, as the Python 2 originals need.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    ItemSource,
    file_digest,
    read_error,
    register_dataset,
    take_path_options,
)
from conceptlab.utils.hashing import hash_json

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

_LAYOUTS = {
    "cifar10": {"folder": "cifar-10-batches-py", "meta": "batches.meta",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"folder": "cifar-100-python", "meta": "meta", "train": ["train"],
                 "test": ["test"]},
}
_IMAGE_BYTES = 32 * 32 * 3


class RefusedPickle(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed numpy-array set."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedPickle(f"refused global {module}.{name}") from None


def safe_load_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler`; every failure is a DataError naming it."""
    try:
        with open(path, "rb") as fh:
            return SafeUnpickler(fh, encoding="bytes").load()
    except RefusedPickle as err:
        raise DataError(f"{path}: {err}; CIFAR files may hold only dicts, lists, bytes, numbers "
                        "and numpy arrays, so this file was not loaded (tampered or not a "
                        "CIFAR batch)") from err
    except OSError as err:
        raise read_error(path, err) from err
    # A truncated or foreign pickle fails in many ways (EOFError, UnpicklingError, ValueError,
    # TypeError inside numpy's setstate, ...): all of them must name the file.
    except Exception as err:
        raise DataError(f"{path}: corrupt or not a pickle ({type(err).__name__}: {err})") from err


def _get(path: Path, d: Any, key: str) -> Any:
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a dict, got {type(d).__name__}")
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    keys = ", ".join(k.decode() if isinstance(k, bytes) else str(k) for k in d)
    raise DataError(f"{path}: no key {key!r} (keys: {keys})")


def _names(path: Path, values: Any) -> list[str]:
    if not isinstance(values, list | tuple):
        raise DataError(f"{path}: label names must be a list")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_batch(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images ``N x 32 x 32 x 3`` uint8, labels ``N``) of one batch file, checked."""
    d = safe_load_pickle(path)
    data = _get(path, d, "data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _IMAGE_BYTES:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be a uint8 array N x {_IMAGE_BYTES}, got "
                        f"{type(data).__name__} {getattr(data, 'dtype', '')} {shape}")
    try:
        labels = np.asarray(_get(path, d, label_key), dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: {label_key!r} must be a list of integers") from err
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} {label_key!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{path}: labels outside 0..{n_classes - 1}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


class ArrayImageSource(ItemSource):
    """RGB images held in one uint8 array ``N x H x W x 3``."""

    def __init__(self, images: np.ndarray, fingerprint: str, name: str = "") -> None:
        self.images = images
        self._fingerprint = fingerprint
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Image.Image:
        if not 0 <= index < len(self.images):
            raise DataError(f"{self.name}: item {index} out of range (0..{len(self) - 1})")
        return Image.fromarray(self.images[index])

    def fingerprint(self) -> str:
        return self._fingerprint


class Cifar(Dataset):
    """CIFAR-10 or CIFAR-100 with the official 50,000 / 10,000 train / test split."""

    modality = "image"

    def __init__(self, root: str | Path, *, variant: str = "cifar10",
                 label_kind: str = "fine") -> None:
        if variant not in _LAYOUTS:
            raise DataError(f"unknown CIFAR variant {variant!r} (cifar10, cifar100)")
        if label_kind not in ("fine", "coarse"):
            raise DataError(f"label_kind must be 'fine' or 'coarse', got {label_kind!r}")
        if variant == "cifar10" and label_kind != "fine":
            raise DataError("cifar10: label_kind applies to cifar100 only")
        layout = _LAYOUTS[variant]
        root = Path(root).expanduser()
        if (root / str(layout["folder"])).is_dir():
            root = root / str(layout["folder"])
        if not root.is_dir():
            raise DataError(f"{root}: no such folder ({variant})")
        self.root, self.variant, self.label_kind, self.layout = root, variant, label_kind, layout
        self.spec = f"{variant}:{root}"
        meta_path = root / str(layout["meta"])
        meta = safe_load_pickle(meta_path)
        if variant == "cifar10":
            self._class_names = _names(meta_path, _get(meta_path, meta, "label_names"))
            self._label_key = "labels"
        else:
            self._class_names = _names(meta_path,
                                       _get(meta_path, meta, f"{label_kind}_label_names"))
            self._label_key = f"{label_kind}_labels"
        self._splits: dict[str, DataSplit] = {}

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spec": self.spec, "modality": self.modality}
        if self.variant == "cifar100":
            out["label_kind"] = self.label_kind
        return out

    def official_split(self, name: str) -> DataSplit:
        if name not in ("train", "test"):
            raise DataError(f"{self.spec}: no split {name!r}; official splits: train, test")
        if name not in self._splits:
            paths = [self.root / f for f in self.layout[name]]
            for p in paths:
                if not p.is_file():
                    raise DataError(f"{p}: no such file ({self.variant} {name} batch)")
            parts = [read_batch(p, self._label_key, len(self._class_names)) for p in paths]
            images = np.concatenate([p[0] for p in parts])
            labels = np.concatenate([p[1] for p in parts])
            fingerprint = hash_json({"format": f"{self.variant}-python",
                                     "files": [file_digest(p) for p in paths],
                                     "label_key": self._label_key})
            source = ArrayImageSource(images, fingerprint, name=f"{self.spec}/{name}")
            self._splits[name] = DataSplit(
                dataset=self.spec, name=name, modality="image", source=source,
                indices=np.arange(len(labels)), labels=labels, class_names=self.class_names,
                meta={"official": True, "files": [p.name for p in paths]})
        return self._splits[name]


@register_dataset("cifar10", options={}, path="/data/cifar-10-batches-py")
def _build10(arg: str, options: dict[str, Any]) -> Dataset:
    take_path_options("cifar10", arg, options, {}, "/data/cifar-10-batches-py")
    return Cifar(arg, variant="cifar10")


_OPTIONS100: dict[str, Any] = {"label_kind": "fine"}


@register_dataset("cifar100", options=_OPTIONS100, path="/data/cifar-100-python")
def _build100(arg: str, options: dict[str, Any]) -> Dataset:
    opts = take_path_options("cifar100", arg, options, _OPTIONS100,
                             "/data/cifar-100-python")
    return Cifar(arg, variant="cifar100", label_kind=opts["label_kind"])
