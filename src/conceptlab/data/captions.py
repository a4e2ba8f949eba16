"""Captioned images: a CSV of ``image,caption`` rows, and one accessor for every caption source.

CSV format (UTF-8, a header row; columns ``image`` and ``caption`` by default, an optional
``split`` column with train / test / val): one row per (image, caption) pair, so an image may
have several captions (several rows). Image paths are relative to the CSV's folder unless
absolute. Every problem (missing column, empty path or caption, an unknown split value, the
same image in two splits) is a DataError naming file and line.

Two ways to use it:

* as data, ``captions:PATH``: the captioned images themselves, one class (``image``); the
  ``split`` column gives the official splits, else a seeded 80/20 pool split (recorded);
* beside any image-file data (``folder:PATH``, ``cub:PATH``, ...), through
  :func:`split_captions` ``(dataset, split, "PATH.csv")``: each item's captions are found by
  its resolved file path; items without a caption get an empty list.

``split_captions(dataset, split, "auto")`` asks the dataset for its own captions (``idsprites``
writes them from each image's factors; ``captions:PATH`` has them).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    file_digest,
    read_error,
    register_dataset,
    take_path_options,
)
from conceptlab.data.folder import ImageFileSource
from conceptlab.data.splits import check_fraction, pool_split
from conceptlab.data.text_table import SPLIT_ALIASES


@runtime_checkable
class HasCaptions(Protocol):
    """A dataset that carries captions for the items of its splits."""

    def captions_for(self, split: DataSplit) -> list[list[str]]: ...


@dataclass
class CaptionTable:
    """Captions per image file, in order of each image's first row."""

    path: Path
    images: list[Path]  # resolved paths
    relpaths: list[str]  # as written in the file
    captions: list[list[str]]
    splits: list[str | None]

    def by_path(self) -> dict[Path, list[str]]:
        return dict(zip(self.images, self.captions, strict=True))

    @property
    def n_captions(self) -> int:
        return sum(len(c) for c in self.captions)


def read_caption_csv(path: str | Path, *, image_column: str = "image",
                     caption_column: str = "caption", split_column: str | None = "split",
                     encoding: str = "utf-8") -> CaptionTable:
    """Read ``image,caption`` rows (several rows per image allowed); see the module docstring."""
    p = Path(path).expanduser()
    try:
        with open(p, encoding=encoding, newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not {encoding} text ({err.reason} at byte {err.start})") from err
    except csv.Error as err:
        raise DataError(f"{p}: malformed CSV ({err})") from err
    except OSError as err:
        raise read_error(p, err) from err
    if not rows:
        raise DataError(f"{p}: empty file (expected a header row '{image_column},"
                        f"{caption_column}')")
    header = [h.strip() for h in rows[0]]
    for col in (image_column, caption_column):
        if col not in header:
            raise DataError(f"{p}: no {col!r} column (header: {', '.join(header)})")
    i_img, i_cap = header.index(image_column), header.index(caption_column)
    i_split = header.index(split_column) if split_column and split_column in header else None
    order: dict[Path, int] = {}
    relpaths: list[str] = []
    captions: list[list[str]] = []
    splits: list[str | None] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{p}:{line}: {len(row)} fields, header has {len(header)}")
        rel, cap = row[i_img].strip(), row[i_cap].strip()
        if not rel:
            raise DataError(f"{p}:{line}: empty image path")
        if not cap:
            raise DataError(f"{p}:{line}: empty caption for {rel}")
        split = None
        if i_split is not None:
            raw = row[i_split].strip().lower()
            if raw not in SPLIT_ALIASES:
                raise DataError(f"{p}:{line}: unknown split {row[i_split]!r} (train, test, val)")
            split = SPLIT_ALIASES[raw]
        img = Path(rel) if Path(rel).is_absolute() else p.parent / rel
        img = img.resolve()
        if img not in order:
            order[img] = len(relpaths)
            relpaths.append(rel)
            captions.append([])
            splits.append(split)
        k = order[img]
        if splits[k] != split:
            raise DataError(f"{p}:{line}: {rel} is in split {split!r} here but {splits[k]!r} "
                            "on an earlier row")
        captions[k].append(cap)
    if not relpaths:
        raise DataError(f"{p}: no caption rows")
    return CaptionTable(path=p, images=list(order), relpaths=relpaths, captions=captions,
                        splits=splits)


def captions_from_table(table: CaptionTable, split: DataSplit) -> list[list[str]]:
    """Captions of each item of an image-file ``split`` (matched by resolved path; ``[]`` if
    the file has none). A split whose items are not files, or that matches no row, is a
    DataError."""
    source = split.source
    if not isinstance(source, ImageFileSource):
        raise DataError(f"{table.path}: captions from a CSV need image files on disk; "
                        f"{split.dataset} holds its images in memory (use --captions auto if "
                        "it has its own)")
    lookup = table.by_path()
    out = [list(lookup.get(source.path(int(i)).resolve(), [])) for i in split.indices]
    if len(split) and not any(out):
        example = source.path(int(split.indices[0]))
        raise DataError(f"{table.path}: no caption matches any image of {split.dataset}/"
                        f"{split.name} (e.g. {example}); image paths are relative to the CSV")
    return out


def split_captions(dataset: Dataset, split: DataSplit, captions: str | Path) -> list[list[str]]:
    """Captions per item of ``split``: ``"auto"`` (the dataset's own) or a CSV file."""
    if str(captions) == "auto":
        if not isinstance(dataset, HasCaptions):
            raise DataError(f"{dataset.spec}: has no captions of its own; pass a CSV of "
                            "image,caption rows (--captions FILE)")
        return dataset.captions_for(split)
    return captions_from_table(read_caption_csv(captions), split)


class CaptionedImages(Dataset):
    """The images a caption CSV lists, as data (``captions:PATH``); one class, ``image``."""

    modality = "image"

    def __init__(self, path: str | Path, *, test_fraction: float = 0.2, split_seed: int = 0,
                 image_column: str = "image", caption_column: str = "caption") -> None:
        self.table = read_caption_csv(path, image_column=image_column,
                                      caption_column=caption_column)
        self.spec = f"captions:{path}"
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        self.split_seed = int(split_seed)
        root = self.table.path.parent.resolve()
        rel = [str(Path(img).relative_to(root)) if Path(img).is_relative_to(root) else str(img)
               for img in self.table.images]
        self.source = ImageFileSource(root, rel, kind="caption-csv-images",
                                      extra={"csv": file_digest(self.table.path)})
        given = self.table.splits
        if any(s is not None for s in given):
            self._positions = {name: np.array([i for i, s in enumerate(given) if s == name],
                                              dtype=np.int64) for name in ("train", "val", "test")}
            self._rule: dict[str, Any] | None = None
            if not len(self._positions["test"]) or not len(self._positions["train"]):
                raise DataError(f"{self.table.path}: the split column needs train and test rows")
        else:
            train, test, self._rule = pool_split(np.zeros(len(rel), dtype=np.int64),
                                                 self.test_fraction, self.split_seed, ["image"])
            self._positions = {"train": train, "test": test}

    @property
    def class_names(self) -> list[str]:
        return ["image"]

    def available_splits(self) -> list[str]:
        return [s for s in ("train", "val", "test") if len(self._positions.get(s, ()))]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "modality": self.modality, "csv": file_digest(self.table.path),
                "test_fraction": self.test_fraction, "split_seed": self.split_seed}

    def official_split(self, name: str) -> DataSplit:
        if name not in self.available_splits():
            raise DataError(f"{self.spec}: no split {name!r}; splits: "
                            f"{', '.join(self.available_splits())}")
        pos = self._positions[name]
        return DataSplit(dataset=self.spec, name=name, modality="image", source=self.source,
                         indices=pos, labels=np.zeros(len(pos), dtype=np.int64),
                         class_names=self.class_names,
                         meta={"official": self._rule is None, "split_rule": self._rule,
                               "captions_file": str(self.table.path)})

    def captions_for(self, split: DataSplit) -> list[list[str]]:
        if split.source is not self.source:
            raise DataError(f"captions_for: {split.dataset}/{split.name} is not a view of "
                            f"{self.spec}")
        return [list(self.table.captions[int(i)]) for i in split.indices]


_OPTIONS: dict[str, Any] = {"test_fraction": 0.2, "split_seed": 0, "image_column": "image",
                           "caption_column": "caption"}


@register_dataset("captions", options=_OPTIONS, path="captions.csv")
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    opts = take_path_options("captions", arg, options, _OPTIONS, "captions.csv")
    return CaptionedImages(arg, **opts)
