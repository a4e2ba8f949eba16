"""Places365-Standard scenes (``places365:PATH``) in the layout of the official archives.

Files looked for in PATH (or ``PATH/filelist_places365-standard``):
``categories_places365.txt`` (``/a/airfield 0``), ``places365_val.txt``
(``Places365_val_00000001.jpg 165``) and, for training, ``places365_train_standard.txt``
(also accepted: ``train_standard.txt``; lines ``/a/airfield/00000001.jpg 0``). Images in
``val_256/`` or ``val_large/`` and ``data_256/`` or ``data_large/`` (option ``resolution``:
``"256"``, ``"large"``, or ``None`` to take 256 when present).

Splits: Places365's own test labels were never released, so its official **validation**
set (36,500 images, 100 per class) is this dataset's ``"test"`` split; validation for model
selection is carved from train by ``make_splits``. ``"train"`` exists only when both the
train list and the training images are present; without them the dataset is test-only
(zero-shot use, see ``make_splits(..., allow_test_only=True)``).

Class names are readable (``/a/apartment_building/outdoor`` -> ``apartment building
(outdoor)``); the raw category paths are in ``split.meta["class_names_raw"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    file_digest,
    parse_int,
    read_fields,
    register_dataset,
    take_path_options,
)
from conceptlab.data.folder import ImageFileSource, check_on_error, drop_unreadable

TRAIN_LISTS = ("places365_train_standard.txt", "train_standard.txt")


def readable_category(raw: str) -> str:
    """``/a/apartment_building/outdoor`` -> ``apartment building (outdoor)``."""
    parts = [p.replace("_", " ") for p in raw.strip("/").split("/")]
    if len(parts) >= 2 and len(parts[0]) == 1:
        parts = parts[1:]
    head, rest = parts[0], parts[1:]
    return f"{head} ({', '.join(rest)})" if rest else head


class Places365(Dataset):
    """Places365-Standard: 365 scene classes; official val used as test, train optional."""

    modality = "image"

    def __init__(self, root: str | Path, *, resolution: str | None = None,
                 on_error: str = "raise") -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder (Places365)")
        if resolution not in (None, "256", "large"):
            raise DataError(f"places365: resolution must be '256', 'large' or None, got "
                            f"{resolution!r}")
        self.spec = f"places365:{self.root}"
        self.on_error = check_on_error(on_error)
        self.resolution = resolution
        self._lists_dir = self._find_lists_dir()
        cat_path = self._lists_dir / "categories_places365.txt"
        rows = read_fields(cat_path, 2)
        self._class_names_raw: list[str] = [""] * len(rows)
        for line, (name, idx) in ((ln, f[:2]) for ln, f in rows):
            i = parse_int(cat_path, line, idx, "category index")
            if not 0 <= i < len(rows) or self._class_names_raw[i]:
                raise DataError(f"{cat_path}:{line}: index {i} repeated or outside "
                                f"0..{len(rows) - 1}")
            self._class_names_raw[i] = name
        self._cat_digest = file_digest(cat_path)
        self._splits: dict[str, DataSplit] = {}

    def _find_lists_dir(self) -> Path:
        for d in (self.root, self.root / "filelist_places365-standard"):
            if (d / "categories_places365.txt").is_file():
                return d
        raise DataError(f"{self.root / 'categories_places365.txt'}: no such file (Places365 "
                        "file lists, from filelist_places365-standard.tar)")

    def _image_dir(self, stem: str) -> Path | None:
        choices = [self.resolution] if self.resolution else ["256", "large"]
        for res in choices:
            d = self.root / f"{stem}_{res}"
            if d.is_dir():
                return d
        return None

    def _train_list(self) -> Path | None:
        return next((self._lists_dir / n for n in TRAIN_LISTS
                     if (self._lists_dir / n).is_file()), None)

    @property
    def class_names(self) -> list[str]:
        return [readable_category(c) for c in self._class_names_raw]

    def available_splits(self) -> list[str]:
        has_train = self._train_list() is not None and self._image_dir("data") is not None
        return ["train", "test"] if has_train else ["test"]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "modality": self.modality, "on_error": self.on_error,
                "resolution": self.resolution}

    def official_split(self, name: str) -> DataSplit:
        if name not in ("train", "test"):
            raise DataError(f"{self.spec}: no split {name!r}; splits: train, test (the "
                            "official Places365 validation set is the test split)")
        if name not in self._splits:
            if name == "test":
                list_path = self._lists_dir / "places365_val.txt"
                image_dir = self._image_dir("val")
                what = "val_256/ or val_large/"
            else:
                list_path = self._train_list() or self._lists_dir / TRAIN_LISTS[0]
                image_dir = self._image_dir("data")
                what = "data_256/ or data_large/"
            if not list_path.is_file():
                raise DataError(f"{list_path}: no such file (Places365 {name} list)")
            if image_dir is None:
                raise DataError(f"{self.root}: no {what} image folder for the {name} split")
            split = self._read_list(name, list_path, image_dir)
            self._splits[name] = drop_unreadable(split, self.on_error)
        return self._splits[name]

    def _read_list(self, name: str, list_path: Path, image_dir: Path) -> DataSplit:
        rel, labels = [], []
        n_classes = len(self._class_names_raw)
        for line, fields in read_fields(list_path, 2):
            label = parse_int(list_path, line, fields[1], "class index")
            if not 0 <= label < n_classes:
                raise DataError(f"{list_path}:{line}: class index {label} outside "
                                f"0..{n_classes - 1}")
            rel.append(fields[0].lstrip("/"))
            labels.append(label)
        if not rel:
            raise DataError(f"{list_path}: no images listed")
        source = ImageFileSource(image_dir, rel, kind=f"places365-{name}",
                                 extra={"categories": self._cat_digest,
                                        "list": file_digest(list_path)})
        return DataSplit(dataset=self.spec, name=name, modality="image", source=source,
                         indices=np.arange(len(rel)), labels=np.asarray(labels),
                         class_names=self.class_names,
                         meta={"official": True, "list": list_path.name,
                               "images": image_dir.name,
                               "class_names_raw": list(self._class_names_raw),
                               **({"note": "official Places365 validation set used as the "
                                           "test split"} if name == "test" else {})})


_OPTIONS: dict[str, Any] = {"resolution": None, "on_error": "raise"}


@register_dataset("places365", options=_OPTIONS, path="/data/places365")
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    opts = take_path_options("places365", arg, options, _OPTIONS,
                             "/data/places365")
    return Places365(arg, **opts)
