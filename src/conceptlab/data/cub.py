"""CUB-200-2011 birds (``cub:PATH``) with its official train/test split and 312 attributes.

PATH is the ``CUB_200_2011`` folder (or the folder holding it) in the on-disk format of the
official archive: ``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``,
``classes.txt``, ``images/<class>/<file>.jpg``, and for the attributes
``attributes/image_attribute_labels.txt`` (``<image_id> <attribute_id> <is_present>
<certainty_id> <time>``; a few real lines carry an extra field, so only the first three are
read) plus the 312 attribute names, found in ``attributes/attributes.txt`` or, as in the
official archive, in ``attributes.txt`` beside ``CUB_200_2011/`` (both are looked for).

Splits carry ``concept_labels`` (N x 312, float32 0/1: the per-image ``is_present`` labels
from the MTurk annotators, not the class-level denoised attributes some CBM papers use) and
``concept_names`` in readable form (``has_bill_shape::dagger`` -> ``bill shape: dagger``);
the raw names are in ``split.meta["concept_names_raw"]``. Class names are cleaned
(``001.Black_footed_Albatross`` -> ``Black footed Albatross``); raw ones in
``meta["class_names_raw"]``. Option ``attributes``: ``None`` (default) loads them when the
files exist, ``True`` requires them, ``False`` skips them. ``on_error="skip"`` drops
unreadable images (see folder.py).
"""

from __future__ import annotations

import re
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

METADATA = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")


def clean_class_name(raw: str) -> str:
    """``001.Black_footed_Albatross`` -> ``Black footed Albatross``."""
    return re.sub(r"^\d+\.", "", raw).replace("_", " ").strip()


def readable_attribute(raw: str) -> str:
    """``has_bill_shape::curved_(up_or_down)`` -> ``bill shape: curved (up or down)``."""
    part, sep, value = raw.partition("::")
    part = part.removeprefix("has_").replace("_", " ").strip()
    return f"{part}: {value.replace('_', ' ').strip()}" if sep else part


def _id_map(path: Path, min_fields: int = 2, maxsplit: int = -1) -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    for line, fields in read_fields(path, min_fields, maxsplit):
        key = parse_int(path, line, fields[0], "the id")
        if key in out:
            raise DataError(f"{path}:{line}: id {key} appears twice")
        out[key] = (line, fields[1])
    return out


def read_attribute_labels(path: Path, image_ids: np.ndarray, n_attributes: int,
                          ) -> tuple[np.ndarray, int]:
    """(N x A float32 0/1 matrix in ``image_ids`` order, number of (image, attribute) pairs
    missing from the file). Only the first three fields of each line are read."""
    try:
        table = np.loadtxt(path, usecols=(0, 1, 2), dtype=np.int64, ndmin=2)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    except ValueError:  # fall back to a line-by-line parse that names the bad line
        rows = []
        for line, fields in read_fields(path, 3):
            rows.append([parse_int(path, line, f, what)
                         for f, what in zip(fields[:3], ("image id", "attribute id",
                                                         "is_present"), strict=True)])
        table = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    img, attr, present = table[:, 0], table[:, 1], table[:, 2]
    order = np.argsort(image_ids)
    pos = np.searchsorted(image_ids, img, sorter=order)
    pos = np.clip(pos, 0, len(image_ids) - 1)
    known = image_ids[order[pos]] == img
    if not known.all():
        raise DataError(f"{path}: line {int(np.flatnonzero(~known)[0]) + 1}: image id "
                        f"{int(img[~known][0])} is not in images.txt")
    bad_attr = (attr < 1) | (attr > n_attributes)
    if bad_attr.any():
        raise DataError(f"{path}: line {int(np.flatnonzero(bad_attr)[0]) + 1}: attribute id "
                        f"{int(attr[bad_attr][0])} outside 1..{n_attributes}")
    bad_val = (present != 0) & (present != 1)
    if bad_val.any():
        raise DataError(f"{path}: line {int(np.flatnonzero(bad_val)[0]) + 1}: is_present must "
                        f"be 0 or 1, got {int(present[bad_val][0])}")
    matrix = np.zeros((len(image_ids), n_attributes), dtype=np.float32)
    seen = np.zeros_like(matrix, dtype=bool)
    rows_ = order[pos]
    matrix[rows_, attr - 1] = present
    seen[rows_, attr - 1] = True
    return matrix, int((~seen).sum())


class CUB(Dataset):
    """CUB-200-2011: 5,994 train / 5,794 test images of 200 species, 312 binary attributes."""

    modality = "image"

    def __init__(self, root: str | Path, *, attributes: bool | None = None,
                 on_error: str = "raise") -> None:
        root = Path(root).expanduser()
        if (root / "CUB_200_2011" / "images.txt").is_file():
            root = root / "CUB_200_2011"
        if not root.is_dir():
            raise DataError(f"{root}: no such folder (CUB-200-2011)")
        self.root = root
        self.spec = f"cub:{root}"
        self.on_error = check_on_error(on_error)
        images = _id_map(root / "images.txt", maxsplit=1)
        classes_of = _id_map(root / "image_class_labels.txt")
        is_train = _id_map(root / "train_test_split.txt")
        class_rows = _id_map(root / "classes.txt", maxsplit=1)
        if not images:
            raise DataError(f"{root / 'images.txt'}: no images listed")
        class_ids = sorted(class_rows)
        self._class_names_raw = [class_rows[c][1].strip() for c in class_ids]
        class_pos = {c: i for i, c in enumerate(class_ids)}
        ids = np.array(sorted(images), dtype=np.int64)
        labels, train_flags = [], []
        for i in ids.tolist():
            if i not in classes_of:
                raise DataError(f"{root / 'image_class_labels.txt'}: no class for image id {i}")
            if i not in is_train:
                raise DataError(f"{root / 'train_test_split.txt'}: no split for image id {i}")
            line, c = classes_of[i]
            cid = parse_int(root / "image_class_labels.txt", line, c, "class id")
            if cid not in class_pos:
                raise DataError(f"{root / 'image_class_labels.txt'}:{line}: class id {cid} is "
                                "not in classes.txt")
            line, flag = is_train[i]
            if flag not in ("0", "1"):
                raise DataError(f"{root / 'train_test_split.txt'}:{line}: is_training_image "
                                f"must be 0 or 1, got {flag!r}")
            labels.append(class_pos[cid])
            train_flags.append(flag == "1")
        self._ids = ids
        self._labels = np.asarray(labels, dtype=np.int64)
        self._is_train = np.asarray(train_flags, dtype=bool)
        extra = {name: file_digest(root / name) for name in METADATA}
        self._concepts, self._concept_names_raw, self._missing_pairs = None, None, 0
        attr_files = self._attribute_files(attributes)
        if attr_files is not None:
            names_path, labels_path = attr_files
            rows = read_fields(names_path, 2, maxsplit=1)
            self._concept_names_raw = [f[1].strip() for _, f in rows]
            self._concepts, self._missing_pairs = read_attribute_labels(
                labels_path, ids, len(self._concept_names_raw))
        # Attribute files count in the fingerprint whenever they exist, loaded or not, so
        # that ``attributes=False`` and ``None`` name the same images the same way.
        for key, path in self._existing_attribute_files().items():
            extra[key] = file_digest(path)
        self.source = ImageFileSource(root / "images", [images[i][1].strip() for i in ids.tolist()],
                                      kind="cub-images", extra=extra)
        self._splits: dict[str, DataSplit] = {}

    def _attribute_candidates(self) -> tuple[list[Path], Path]:
        names = [self.root / "attributes" / "attributes.txt", self.root / "attributes.txt",
                 self.root.parent / "attributes.txt"]
        return names, self.root / "attributes" / "image_attribute_labels.txt"

    def _existing_attribute_files(self) -> dict[str, Path]:
        candidates, labels_path = self._attribute_candidates()
        names_path = next((p for p in candidates if p.is_file()), None)
        found = {"attribute_names": names_path, "attribute_labels": labels_path}
        return {k: p for k, p in found.items() if p is not None and p.is_file()}

    def _attribute_files(self, wanted: bool | None) -> tuple[Path, Path] | None:
        if wanted is False:
            return None
        candidates, labels_path = self._attribute_candidates()
        names_path = next((p for p in candidates if p.is_file()), None)
        if names_path is not None and labels_path.is_file():
            return names_path, labels_path
        if wanted is None and names_path is None and not labels_path.is_file():
            return None
        missing = [str(labels_path)] if not labels_path.is_file() else []
        if names_path is None:
            missing.append(" or ".join(str(p) for p in candidates))
        raise DataError(f"{self.spec}: attribute files missing: {'; '.join(missing)}")

    @property
    def class_names(self) -> list[str]:
        return [clean_class_name(c) for c in self._class_names_raw]

    @property
    def concept_names(self) -> list[str] | None:
        """Readable attribute names (``bill shape: dagger``), or None without attributes."""
        if self._concept_names_raw is None:
            return None
        return [readable_attribute(c) for c in self._concept_names_raw]

    @property
    def concept_names_raw(self) -> list[str] | None:
        return None if self._concept_names_raw is None else list(self._concept_names_raw)

    def image_ids(self, split: DataSplit) -> np.ndarray:
        """CUB image ids (as in ``images.txt``) of the items of ``split``."""
        return self._ids[split.indices]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "modality": self.modality, "on_error": self.on_error,
                "attributes": self._concepts is not None}

    def official_split(self, name: str) -> DataSplit:
        if name not in ("train", "test"):
            raise DataError(f"{self.spec}: no split {name!r}; official splits: train, test")
        if name not in self._splits:
            pos = np.flatnonzero(self._is_train == (name == "train"))
            meta: dict[str, Any] = {"official": True,
                                    "class_names_raw": list(self._class_names_raw)}
            if self._concepts is not None:
                meta.update(concept_names_raw=self.concept_names_raw,
                            attribute_pairs_missing=self._missing_pairs)
            split = DataSplit(
                dataset=self.spec, name=name, modality="image", source=self.source,
                indices=pos, labels=self._labels[pos], class_names=self.class_names,
                concept_labels=None if self._concepts is None else self._concepts[pos],
                concept_names=self.concept_names, meta=meta)
            self._splits[name] = drop_unreadable(split, self.on_error)
        return self._splits[name]


_OPTIONS: dict[str, Any] = {"attributes": None, "on_error": "raise"}


@register_dataset("cub", options=_OPTIONS, path="/data/CUB_200_2011")
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    opts = take_path_options("cub", arg, options, _OPTIONS,
                             "/data/CUB_200_2011")
    return CUB(arg, **opts)
