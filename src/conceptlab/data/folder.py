"""Image folders (``folder:PATH``, the ImageFolder layout) and the image-file source they share.

Layouts:

* ``PATH/train/<class>/*.jpg`` and ``PATH/test/<class>/*.jpg`` (and ``PATH/val/<class>/``
  if present): these sub-folders are the official splits;
* otherwise ``PATH/<class>/*.jpg`` is one pool, split into train and test by a **seeded,
  stratified** rule (``test_fraction``, default 0.2, ``split_seed``, default 0). That split is
  not official: the rule is recorded in ``split.meta["split_rule"]`` and in the record that
  ``make_splits`` writes.

Class names are the sorted union of class-folder names over all splits, so a label means
the same class in train and test. Images are opened only when an item is loaded; a corrupt
or unreadable file then raises a DataError naming it. ``verify()`` decodes every image up
front and lists the bad ones; with ``on_error="skip"`` the bad files are dropped when a split
is built, and their number is reported in ``split.meta["skipped"]``.

The fingerprint of a folder hashes relative path, size and modification time of every file
(``hash_file_stats``): reading the bytes of a large image folder would cost more than
encoding it, and any edit, addition or removal still changes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    ItemSource,
    register_dataset,
    take_options,
)
from conceptlab.data.splits import check_fraction, pool_split
from conceptlab.utils.hashing import hash_file_stats, hash_json
from conceptlab.utils.images import to_rgb
from conceptlab.utils.progress import progress
from conceptlab.utils.walk import walk_visible

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".ppm", ".pgm", ".pbm"})
OnError = Literal["raise", "skip"]
_MAX_LISTED = 20


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode ``path`` fully into an RGB PIL image (any bit depth scaled to 8 bits, see
    :func:`to_rgb`), or raise a DataError naming the file."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()
            return to_rgb(im)
    except FileNotFoundError as err:
        raise DataError(f"{p}: no such image file") from err
    # PIL reports corrupt files through many exception types (OSError, SyntaxError,
    # ValueError, struct.error, DecompressionBombError, ...); each must name the file.
    except Exception as err:
        raise DataError(f"{p}: unreadable image ({type(err).__name__}: {err})") from err


def check_on_error(value: str) -> OnError:
    if value not in ("raise", "skip"):
        raise DataError(f"on_error must be 'raise' or 'skip', got {value!r}")
    return value  # type: ignore[return-value]


class ImageFileSource(ItemSource):
    """Image files under ``root`` (relative paths), decoded lazily into RGB PIL images.

    ``extra`` (JSON-able, e.g. digests of the label files that go with the images) is mixed
    into the fingerprint, so that a change to such a file changes it too.
    """

    def __init__(self, root: Path, relpaths: Sequence[str], *, kind: str = "image-files",
                 extra: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.relpaths = list(relpaths)
        self.kind = kind
        self.extra = dict(extra or {})
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.relpaths)

    def path(self, index: int) -> Path:
        return self.root / self.relpaths[index]

    def load(self, index: int) -> Image.Image:
        if not 0 <= index < len(self.relpaths):
            raise DataError(f"{self.root}: item {index} out of range (0..{len(self) - 1})")
        return open_image(self.path(index))

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            paths = [self.root / r for r in self.relpaths]
            try:
                stats = hash_file_stats(paths, root=self.root)
            except OSError as err:
                raise DataError(f"{err.filename}: cannot read ({err.strerror})") from err
            self._fingerprint = hash_json({"kind": self.kind, "files": stats, "n": len(paths),
                                           "extra": self.extra})
        return self._fingerprint

    def verify(self, indices: Sequence[int] | np.ndarray | None = None, *,
               desc: str = "verifying images") -> list[tuple[int, str]]:
        """Decode the items at ``indices`` (default all); return ``(index, reason)`` of bad ones."""
        idx = range(len(self)) if indices is None else [int(i) for i in indices]
        bad: list[tuple[int, str]] = []
        for i in progress(idx, total=len(idx), desc=desc, unit="img"):
            try:
                open_image(self.path(i))
            except DataError as err:
                bad.append((i, str(err)))
        return bad


def drop_unreadable(split: DataSplit, on_error: OnError) -> DataSplit:
    """With ``on_error="skip"``: the split without its unreadable images, their count in meta.

    With ``"raise"`` the split is returned untouched (errors surface when items load).
    """
    if on_error == "raise":
        return split
    source = split.source
    if not isinstance(source, ImageFileSource):
        raise DataError(f"{split.dataset}: on_error='skip' needs image files on disk")
    bad = source.verify(split.indices, desc=f"verifying {split.dataset}/{split.name}")
    bad_idx = np.array(sorted(i for i, _ in bad), dtype=np.int64)
    keep = np.flatnonzero(~np.isin(split.indices, bad_idx))
    out = split.subset(keep)
    out.meta["skipped"] = len(bad)
    out.meta["skipped_files"] = [reason for _, reason in bad[:_MAX_LISTED]]
    return out


def scan_class_folders(base: Path) -> dict[str, list[str]]:
    """``{class folder name: sorted image paths relative to base}`` (hidden entries skipped)."""
    out: dict[str, list[str]] = {}
    try:
        entries = sorted(e for e in base.iterdir() if e.is_dir() and not e.name.startswith("."))
    except OSError as err:
        raise DataError(f"{base}: cannot list folder ({err.strerror or err})") from err
    for cls_dir in entries:
        files = []
        for dirpath, filenames in walk_visible(cls_dir):  # links followed, loops not
            for fn in filenames:
                if Path(fn).suffix.lower() in IMAGE_EXTENSIONS:
                    files.append(str((dirpath / fn).relative_to(base)))
        out[cls_dir.name] = files
    return out


class ImageFolder(Dataset):
    """``folder:PATH``: official ``train/``/``test/`` sub-folders, or one pool split by a seed."""

    modality = "image"

    def __init__(self, root: str | Path, *, on_error: str = "raise", test_fraction: float = 0.2,
                 split_seed: int = 0) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder")
        self.on_error = check_on_error(on_error)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        self.split_seed = int(split_seed)
        self.spec = f"folder:{self.root}"
        official = [s for s in ("train", "val", "test") if (self.root / s).is_dir()]
        self.layout = "official" if {"train", "test"} <= set(official) else "pool"
        if official and self.layout == "pool":
            raise DataError(f"{self.root}: has {'/, '.join(official)}/ but not both train/ and "
                            "test/; give both (official splits) or neither (one pool of class "
                            "folders, split by a seed)")
        self._split_dirs = official if self.layout == "official" else []
        self._scans = {s: scan_class_folders(self.root / s) for s in self._split_dirs}
        if self.layout == "pool":
            self._scans = {"pool": scan_class_folders(self.root)}
        names = sorted({c for scan in self._scans.values() for c, files in scan.items() if files})
        if not names:
            raise DataError(f"{self.root}: no images found in class sub-folders (expected "
                            f"PATH/<class>/*.jpg or PATH/train/<class>/ and PATH/test/<class>/; "
                            f"extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
        self._class_names = names
        self._splits: dict[str, DataSplit] = {}

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    def available_splits(self) -> list[str]:
        return list(self._split_dirs) if self.layout == "official" else ["train", "test"]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spec": self.spec, "modality": self.modality,
                               "layout": self.layout, "on_error": self.on_error}
        if self.layout == "pool":
            out.update(test_fraction=self.test_fraction, split_seed=self.split_seed)
        return out

    def _source_for(self, key: str) -> tuple[ImageFileSource, np.ndarray]:
        base = self.root / key if key != "pool" else self.root
        index = {c: i for i, c in enumerate(self._class_names)}
        rel, labels = [], []
        for cls, files in self._scans[key].items():
            if files:
                rel.extend(files)
                labels.extend([index[cls]] * len(files))
        if not rel:
            raise DataError(f"{base}: no images in any class sub-folder")
        return ImageFileSource(base, rel), np.asarray(labels, dtype=np.int64)

    def _split(self, name: str, source: ImageFileSource, positions: np.ndarray,
               labels: np.ndarray, meta: dict[str, Any]) -> DataSplit:
        return DataSplit(dataset=self.spec, name=name, modality="image", source=source,
                         indices=positions, labels=labels[positions],
                         class_names=self.class_names, meta=meta)

    def official_split(self, name: str) -> DataSplit:
        if name not in self.available_splits():
            raise DataError(f"{self.spec}: no split {name!r}; available: "
                            f"{', '.join(self.available_splits())}")
        if name in self._splits:
            return self._splits[name]
        if self.layout == "official":
            source, labels = self._source_for(name)
            split = self._split(name, source, np.arange(len(labels)), labels,
                                {"official": True, "layout": "official"})
            self._splits[name] = drop_unreadable(split, self.on_error)
        else:
            source, labels = self._source_for("pool")
            whole = self._split("pool", source, np.arange(len(labels)), labels, {})
            whole = drop_unreadable(whole, self.on_error)
            train_pos, test_pos, rule = pool_split(whole.labels, self.test_fraction,
                                                   self.split_seed, self.class_names)
            for part, pos in (("train", train_pos), ("test", test_pos)):
                split = whole.subset(pos, name=part)
                split.meta.update(official=False, layout="pool", split_rule=rule)
                self._splits[part] = split
        return self._splits[name]

    def verify(self) -> dict[str, list[tuple[str, str]]]:
        """Decode every image file; ``{"train"|"val"|"test"|"pool": [(path, reason), ...]}``.

        Checks the files themselves, whatever ``on_error`` says (with ``"skip"`` the bad ones
        listed here are the ones left out of the splits). Use it before a long encoding run to
        find corrupt files in one pass.
        """
        report: dict[str, list[tuple[str, str]]] = {}
        for key in self._scans:
            source, _ = self._source_for(key)
            bad = source.verify(desc=f"verifying {key}")
            report[key] = [(str(source.path(i)), reason) for i, reason in bad]
        return report


_OPTIONS: dict[str, Any] = {"on_error": "raise", "test_fraction": 0.2, "split_seed": 0}


@register_dataset("folder", options=_OPTIONS, path="/data/my_images")
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    if not arg:
        raise DataError("folder: needs a path, e.g. folder:/data/my_images")
    opts = take_options("folder", options, _OPTIONS)
    return ImageFolder(arg, **opts)
