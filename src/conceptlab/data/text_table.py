"""Labelled texts from a CSV or JSON-lines file (``csv:PATH``, ``jsonl:PATH``).

Each row holds a text and a label (columns ``text`` and ``label`` by default; options
``text_column`` and ``label_column`` rename them). An optional ``split`` column (option
``split_column``; values train / test, and val / valid / validation / dev) gives official
splits. Without it, train and test are drawn by a **seeded, stratified** rule
(``test_fraction``, default 0.2, ``split_seed``, default 0), recorded in
``split.meta["split_rule"]``.

Labels may be strings or integers. Class names are the sorted distinct labels (integers
sorted as numbers), unless ``class_names`` fixes them: then integer labels index that list
and string labels must be in it. Every problem (missing column, empty text, bad JSON, a
row with the wrong number of fields, an unknown split value) is a DataError naming the file
and line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    ItemSource,
    file_digest,
    register_dataset,
    take_path_options,
)
from conceptlab.data.splits import check_fraction, pool_split
from conceptlab.utils.hashing import hash_json

Format = Literal["csv", "jsonl"]
SPLIT_ALIASES = {"train": "train", "training": "train", "test": "test", "testing": "test",
                 "val": "val", "valid": "val", "validation": "val", "dev": "val"}


class TextListSource(ItemSource):
    """Texts held in memory; the fingerprint is given by whoever read them (file bytes, ...)."""

    def __init__(self, texts: Sequence[str], fingerprint: str) -> None:
        self.texts = list(texts)
        self._fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.texts)

    def load(self, index: int) -> str:
        if not 0 <= index < len(self.texts):
            raise DataError(f"text item {index} out of range (0..{len(self.texts) - 1})")
        return self.texts[index]

    def fingerprint(self) -> str:
        return self._fingerprint


@dataclass
class _Row:
    line: int
    text: str
    label: str | int
    split: str | None


def _csv_rows(path: Path, text_col: str, label_col: str, split_col: str | None,
              encoding: str) -> Iterator[_Row]:
    try:
        with open(path, encoding=encoding, newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{path}: empty file (expected a header row)") from None
            header = [h.strip() for h in header]
            for col in (text_col, label_col):
                if col not in header:
                    raise DataError(f"{path}:1: no column {col!r} in header "
                                    f"(columns: {', '.join(header)}); set text_column / "
                                    "label_column")
            t, lab = header.index(text_col), header.index(label_col)
            s = header.index(split_col) if split_col and split_col in header else None
            end = reader.line_num
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{start}: {len(row)} fields, the header has "
                                    f"{len(header)}")
                yield _Row(start, row[t], row[lab], row[s] if s is not None else None)
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not {encoding} text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err


def _jsonl_rows(path: Path, text_col: str, label_col: str, split_col: str | None,
                encoding: str) -> Iterator[_Row]:
    try:
        with open(path, encoding=encoding) as fh:
            for n, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{n}: not valid JSON ({err.msg}, column "
                                    f"{err.colno})") from err
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{n}: expected a JSON object, got "
                                    f"{type(obj).__name__}")
                for col in (text_col, label_col):
                    if col not in obj:
                        raise DataError(f"{path}:{n}: no key {col!r} (keys: "
                                        f"{', '.join(obj)}); set text_column / label_column")
                split = obj.get(split_col) if split_col else None
                yield _Row(n, obj[text_col], obj[label_col], None if split is None else split)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not {encoding} text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err


def _normalise_labels(path: Path, rows: list[_Row], class_names: Sequence[str] | None,
                      ) -> tuple[np.ndarray, list[str]]:
    raw: list[str | int] = []
    for r in rows:
        lab = r.label
        if isinstance(lab, bool) or not isinstance(lab, str | int):
            raise DataError(f"{path}:{r.line}: label must be a string or an integer, got "
                            f"{lab!r}")
        if isinstance(lab, str):
            lab = lab.strip()
            if not lab:
                raise DataError(f"{path}:{r.line}: empty label")
            if lab.lstrip("-").isdigit():
                lab = int(lab)
        raw.append(lab)
    if class_names is not None:
        names = [str(c) for c in class_names]
        lookup = {n: i for i, n in enumerate(names)}
        labels = []
        for r, lab in zip(rows, raw, strict=True):
            if isinstance(lab, int):
                if not 0 <= lab < len(names):
                    raise DataError(f"{path}:{r.line}: label {lab} outside 0..{len(names) - 1} "
                                    "(the class_names given)")
                labels.append(lab)
            elif lab in lookup:
                labels.append(lookup[lab])
            else:
                raise DataError(f"{path}:{r.line}: label {lab!r} is not in class_names")
        return np.asarray(labels, dtype=np.int64), names
    ints = sorted({v for v in raw if isinstance(v, int)})
    strs = sorted({v for v in raw if isinstance(v, str)})
    distinct: list[str | int] = [*ints, *strs]
    lookup2 = {v: i for i, v in enumerate(distinct)}
    return (np.asarray([lookup2[v] for v in raw], dtype=np.int64), [str(v) for v in distinct])


class TextTable(Dataset):
    """Texts and labels from one CSV or JSON-lines file, with official or seeded splits."""

    modality = "text"

    def __init__(self, path: str | Path, *, fmt: Format, text_column: str = "text",
                 label_column: str = "label", split_column: str | None = "split",
                 test_fraction: float = 0.2, split_seed: int = 0,
                 class_names: Sequence[str] | None = None, encoding: str = "utf-8-sig") -> None:
        self.path = Path(path).expanduser()
        if fmt not in ("csv", "jsonl"):
            raise DataError(f"unknown text table format {fmt!r} (csv or jsonl)")
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file")
        self.fmt = fmt
        self.spec = f"{fmt}:{self.path}"
        self.columns = {"text": text_column, "label": label_column, "split": split_column}
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        self.split_seed = int(split_seed)
        reader = _csv_rows if fmt == "csv" else _jsonl_rows
        rows = list(reader(self.path, text_column, label_column, split_column, encoding))
        if not rows:
            raise DataError(f"{self.path}: no rows")
        for r in rows:
            if not isinstance(r.text, str):
                raise DataError(f"{self.path}:{r.line}: text must be a string, got "
                                f"{type(r.text).__name__}")
            if not r.text.strip():
                raise DataError(f"{self.path}:{r.line}: empty text in column {text_column!r}")
        self._labels, self._class_names = _normalise_labels(self.path, rows, class_names)
        fingerprint = hash_json({"file": file_digest(self.path), "format": fmt,
                                 "columns": self.columns, "classes": self._class_names})
        self.source = TextListSource([r.text for r in rows], fingerprint)
        self._assign_splits(rows)

    def _assign_splits(self, rows: list[_Row]) -> None:
        has_split = any(r.split is not None for r in rows)
        self._positions: dict[str, np.ndarray] = {}
        self._meta: dict[str, Any]
        if has_split:
            names = []
            for r in rows:
                if r.split is None:
                    raise DataError(f"{self.path}:{r.line}: no {self.columns['split']!r} value "
                                    "(other rows have one)")
                value = SPLIT_ALIASES.get(str(r.split).strip().lower())
                if value is None:
                    raise DataError(f"{self.path}:{r.line}: split value {r.split!r} is not one "
                                    f"of {', '.join(sorted(SPLIT_ALIASES))}")
                names.append(value)
            arr = np.asarray(names)
            for name in ("train", "val", "test"):
                if (arr == name).any():
                    self._positions[name] = np.flatnonzero(arr == name)
            missing = [n for n in ("train", "test") if n not in self._positions]
            if missing:
                raise DataError(f"{self.path}: the {self.columns['split']!r} column has no "
                                f"{' or '.join(missing)} rows")
            self._meta = {"official": True, "split_column": self.columns["split"]}
        else:
            train, test, rule = pool_split(self._labels, self.test_fraction, self.split_seed,
                                           self._class_names)
            self._positions = {"train": train, "test": test}
            self._meta = {"official": False, "split_rule": rule}

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    def available_splits(self) -> list[str]:
        return list(self._positions)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spec": self.spec, "modality": self.modality,
                               "columns": self.columns}
        if not self._meta["official"]:
            out.update(test_fraction=self.test_fraction, split_seed=self.split_seed)
        return out

    def official_split(self, name: str) -> DataSplit:
        if name not in self._positions:
            raise DataError(f"{self.spec}: no split {name!r}; available: "
                            f"{', '.join(self._positions)}")
        pos = self._positions[name]
        return DataSplit(dataset=self.spec, name=name, modality="text", source=self.source,
                         indices=pos, labels=self._labels[pos], class_names=self.class_names,
                         meta=dict(self._meta))


_DEFAULTS: dict[str, Any] = {"text_column": "text", "label_column": "label",
                             "split_column": "split", "test_fraction": 0.2, "split_seed": 0,
                             "class_names": None, "encoding": "utf-8-sig"}


@register_dataset("csv", options=_DEFAULTS, path="/data/reviews.csv")
def _build_csv(arg: str, options: dict[str, Any]) -> Dataset:
    opts = take_path_options("csv", arg, options, _DEFAULTS, "/data/reviews.csv")
    return TextTable(arg, fmt="csv", **opts)


@register_dataset("jsonl", options=_DEFAULTS, path="/data/reviews.jsonl")
def _build_jsonl(arg: str, options: dict[str, Any]) -> Dataset:
    opts = take_path_options("jsonl", arg, options, _DEFAULTS, "/data/reviews.jsonl")
    return TextTable(arg, fmt="jsonl", **opts)
