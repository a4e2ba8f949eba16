"""CUB-200-2011's own 312 attribute names as a concept vocabulary, read from the dataset.

CUB is not shipped with conceptlab: :func:`cub_vocabulary` reads ``attributes.txt`` (and, when
present, the per-class attribute percentages) from a downloaded ``CUB_200_2011`` folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from conceptlab.concepts.vocab import Vocabulary, VocabularyError


def _find_cub_file(root: Path, *rels: str) -> Path | None:
    for rel in rels:
        for base in (root, root / "CUB_200_2011", root.parent):
            if (base / rel).is_file():
                return base / rel
    return None


def cub_attribute_name(raw: str) -> str:
    """Readable CUB attribute: ``"has_bill_shape::dagger"`` -> ``"bill shape: dagger"``."""
    group, sep, value = raw.strip().partition("::")
    if not sep:
        raise VocabularyError(f"not a CUB attribute name (no '::'): {raw!r}")
    group = group.removeprefix("has_").replace("_", " ").strip()
    value = value.replace("_", " ").strip()
    return f"{group}: {value}"


def cub_class_name(raw: str) -> str:
    """Readable CUB class: ``"001.Black_footed_Albatross"`` -> ``"Black footed Albatross"``."""
    return re.sub(r"^\d+\.", "", raw.strip()).replace("_", " ")


def cub_vocabulary(path: str | os.PathLike[str], *, class_threshold: float = 50.0) -> Vocabulary:
    """CUB-200-2011's own 312 attributes as the vocabulary (Wah et al., 2011; Koh et al., ICML
    2020 "Concept Bottleneck Models" use the same attributes).

    ``path`` is ``attributes.txt`` itself or a folder holding it (``attributes/attributes.txt``
    under ``CUB_200_2011``, or the copy the archive puts beside ``CUB_200_2011``). When
    ``classes.txt`` and ``attributes/class_attribute_labels_continuous.txt`` are found too, an
    attribute belongs to every class where annotators marked it on at least
    ``class_threshold`` percent of the images; class names are readable
    (:func:`cub_class_name`). Per-image attribute labels (the ground truth) are the dataset
    loader's job; this returns the names, in attribute-id order.
    """
    p = Path(path).expanduser()
    if p.is_file():
        attr_file: Path | None = p
        root = p.parent.parent if p.parent.name == "attributes" else p.parent
    elif p.is_dir():
        attr_file = _find_cub_file(p, "attributes/attributes.txt", "attributes.txt")
        root = p
    else:
        raise VocabularyError(f"{p}: no such file or folder (the CUB vocabulary needs "
                              "CUB_200_2011's attributes.txt)")
    if attr_file is None:
        raise VocabularyError(f"{p}: no attributes.txt found (looked for attributes/attributes.txt "
                              "and attributes.txt under it and under CUB_200_2011)")
    raw_names: list[str] = []
    for lineno, line in enumerate(attr_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise VocabularyError(f"{attr_file}:{lineno}: expected '<id> <group>::<value>', "
                                  f"got {line!r}")
        if int(parts[0]) != len(raw_names) + 1:
            raise VocabularyError(f"{attr_file}:{lineno}: attribute ids must run 1, 2, 3, ...; "
                                  f"got {parts[0]}")
        raw_names.append(parts[1])
    if not raw_names:
        raise VocabularyError(f"{attr_file}: no attributes")
    concepts = [cub_attribute_name(r) for r in raw_names]
    classes: list[list[str]] = [[] for _ in concepts]
    notes = []
    classes_file = _find_cub_file(root, "classes.txt")
    cont_file = _find_cub_file(root, "attributes/class_attribute_labels_continuous.txt")
    if classes_file and cont_file:
        class_names = [cub_class_name(line.split(maxsplit=1)[1])
                       for line in classes_file.read_text(encoding="utf-8").splitlines()
                       if line.strip()]
        try:
            table = np.loadtxt(cont_file, dtype=np.float64, ndmin=2)
        except ValueError as err:
            raise VocabularyError(f"{cont_file}: not a table of numbers ({err})") from err
        if table.shape != (len(class_names), len(concepts)):
            raise VocabularyError(f"{cont_file}: shape {table.shape}, expected "
                                  f"({len(class_names)} classes, {len(concepts)} attributes)")
        for k in range(len(concepts)):
            classes[k] = [class_names[c] for c in np.flatnonzero(table[:, k] >= class_threshold)]
    else:
        notes.append("classes.txt or class_attribute_labels_continuous.txt not found: "
                     "attributes carry no class associations")
    return Vocabulary(concepts, classes, source=f"cub:{attr_file}", warnings=notes)
