"""The Vocabulary: named concepts, the classes each one belongs to, and where they came from.

A :class:`Vocabulary` is the text side of a concept bank before any encoder has seen it: a list
of short concept phrases (``"laces"``, ``"short sleeves"``), for each the class names it was
written or generated for, and a ``source`` string. ``to_bank`` turns it into a
:class:`~conceptlab.concepts.bank.ConceptBank` through a text encoder; ``association_matrix``
gives the class-by-concept 0/1 matrix that Label-free CBM style initialisations, sparse heads
and reports use. This module holds the type and its file formats; vocabularies come from files
(:func:`load_vocabulary`), :mod:`conceptlab.concepts.builtin` (ready ones by name) and
:mod:`conceptlab.concepts.generate` (any class list).

Text file format (``.txt``; every other suffix but ``.json`` is read as text)::

    # comment lines start with '#'; blank lines are skipped
    # source: my hand-written concepts      <- optional, sets Vocabulary.source
    # warning: ...                          <- optional, kept in Vocabulary.warnings
    a concept that belongs to no class
    [Sneaker]
    laces
    a thick rubber sole
    [Ankle boot]
    a thick rubber sole                      <- listed again: it belongs to both classes
    a shaft covering the ankle

One concept a line. A line ``[class name]`` starts a section: the concepts below it belong to
that class until the next section header. Concepts before the first header belong to no class.
A concept listed under several headers belongs to all of them (one concept, merged classes).
Why this rather than ``concept<TAB>classes``: the file stays one concept a line with nothing
invisible in it, and a reviewer reads each class's concepts as one block.

JSON (``.json``) accepts three layouts: a list of concept strings; an object mapping each class
name to its list of concepts (the layout of Label-free CBM's generated concept sets); or what
:meth:`Vocabulary.save` writes: ``{"format": 1, "source": ..., "warnings": [...],
"concepts": [{"concept": ..., "classes": [...]}, ...]}``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from conceptlab.concepts.bank import ConceptBank
from conceptlab.concepts.phrases import norm_name, unique
from conceptlab.errors import ConceptlabError
from conceptlab.utils.io import write_json_atomic, write_text_atomic

VOCAB_FORMAT = 1


class VocabularyError(ConceptlabError, ValueError):
    """An empty or malformed vocabulary, an unreadable vocabulary file or an unknown name."""


class TextEncoder(Protocol):
    """What vocabularies need from an encoder: ``encode_texts`` (and, optionally, an identity)."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def encoder_identity(encoder: Any) -> dict[str, Any]:
    """``{"encoder": spec, "encoder_fingerprint": ...}`` of any object with encode_texts."""
    spec = getattr(encoder, "spec", "") or type(encoder).__name__
    fp = getattr(encoder, "fingerprint", None)
    return {"encoder": str(spec), "encoder_fingerprint": str(fp()) if callable(fp) else ""}


def encode_checked(encoder: TextEncoder, texts: Sequence[str], what: str) -> np.ndarray:
    """``encoder.encode_texts(texts)`` as float32, checked to be one row per text.

    ``what`` names the texts in the error (``"concepts"``, ``"ImageNet names"``).
    """
    emb = np.asarray(encoder.encode_texts(texts), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise VocabularyError(f"text encoder returned shape {emb.shape} for "
                              f"{len(texts)} {what} (expected {len(texts)} x D)")
    return emb


# ---------------------------------------------------------------------------------------------
# the Vocabulary
# ---------------------------------------------------------------------------------------------

@dataclass
class Vocabulary:
    """Concept phrases, the classes each belongs to, and the vocabulary's provenance.

    ``concepts``: K distinct, non-empty strings. ``classes``: K lists of class names (empty list
    for a concept tied to no class; an empty ``classes`` means none for all). ``source``: where
    the vocabulary came from (a file, ``builtin:cifar10``, ``generated: ...``). ``warnings``:
    what a generator could not do (e.g. WordNet missing, a class with no match).
    """

    concepts: list[str]
    classes: list[list[str]] = field(default_factory=list)
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.concepts, str):
            raise VocabularyError("concepts must be a list of strings, not one string")
        concepts = [str(c).strip() for c in self.concepts]
        if not concepts:
            raise VocabularyError("a vocabulary needs at least one concept (got an empty list)")
        empty = [i for i, c in enumerate(concepts) if not c]
        if empty:
            raise VocabularyError(f"empty concept strings at positions {empty[:5]}")
        counts: dict[str, int] = {}
        for c in concepts:
            counts[c] = counts.get(c, 0) + 1
        dupes = sorted(c for c, n in counts.items() if n > 1)
        if dupes:
            raise VocabularyError(f"duplicate concepts: {dupes[:5]} "
                                  "(Vocabulary.from_items merges them)")
        classes = self.classes or [[] for _ in concepts]
        if len(classes) != len(concepts):
            raise VocabularyError(f"{len(concepts)} concepts but {len(classes)} class lists")
        fixed: list[list[str]] = []
        for i, cl in enumerate(classes):
            if isinstance(cl, str):
                raise VocabularyError(f"classes of concept {concepts[i]!r} must be a list, "
                                      f"got the string {cl!r}")
            fixed.append(unique([str(c).strip() for c in cl if str(c).strip()]))
        self.concepts = concepts
        self.classes = fixed
        self.source = str(self.source)
        self.warnings = [str(w) for w in self.warnings]

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, Iterable[str]]], source: str = "",
                   warnings: Iterable[str] = ()) -> Vocabulary:
        """Build from ``(concept, classes)`` pairs, merging repeated concepts.

        Concepts equal up to case and spacing are one concept (first spelling kept); their
        class lists are united in order of first appearance.
        """
        order: list[str] = []
        merged: dict[str, tuple[str, list[str]]] = {}
        for concept, classes in items:
            text = " ".join(str(concept).split())
            if not text:
                continue
            key = text.casefold()
            if key not in merged:
                merged[key] = (text, [])
                order.append(key)
            merged[key][1].extend(str(c).strip() for c in classes if str(c).strip())
        if not order:
            raise VocabularyError(f"no concepts found{f' in {source}' if source else ''}")
        return cls([merged[k][0] for k in order], [unique(merged[k][1]) for k in order],
                   source=source, warnings=list(warnings))

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> Vocabulary:
        """Build from any of the three JSON layouts described in the module docstring."""
        where = source or "JSON"
        if isinstance(data, list):
            if not all(isinstance(c, str) for c in data):
                raise VocabularyError(f"{where}: a concept list must hold only strings")
            return cls.from_items(((c, ()) for c in data), source=source)
        if not isinstance(data, dict):
            raise VocabularyError(f"{where}: expected a list or an object, "
                                  f"got {type(data).__name__}")
        if "concepts" in data and isinstance(data["concepts"], list):
            fmt = data.get("format", VOCAB_FORMAT)
            if fmt != VOCAB_FORMAT:
                raise VocabularyError(f"{where}: unsupported vocabulary format {fmt!r}")
            items: list[tuple[str, list[str]]] = []
            for i, entry in enumerate(data["concepts"]):
                if isinstance(entry, str):
                    items.append((entry, []))
                elif isinstance(entry, dict) and isinstance(entry.get("concept"), str):
                    cl = entry.get("classes", [])
                    if not isinstance(cl, list):
                        raise VocabularyError(f"{where}: 'classes' of entry {i} "
                                              "must be a list")
                    items.append((entry["concept"], cl))
                else:
                    raise VocabularyError(f"{where}: entry {i} needs a 'concept' string")
            notes = data.get("warnings", [])
            if not isinstance(notes, list):
                raise VocabularyError(f"{where}: 'warnings' must be a list of strings")
            return cls.from_items(items, source=str(data.get("source") or source),
                                  warnings=[str(n) for n in notes])
        items = []  # (concept, [class]) pairs
        for class_name, concepts in data.items():
            if isinstance(concepts, str) or not isinstance(concepts, list):
                raise VocabularyError(f"{where}: concepts of class {class_name!r} "
                                      "must be a list of strings")
            items += [(c, [class_name]) for c in concepts]
        return cls.from_items(items, source=source)

    # -- inspection -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.concepts)

    def __contains__(self, concept: object) -> bool:
        return concept in self.concepts

    @property
    def class_names(self) -> list[str]:
        """Every class named in the associations, in order of first appearance."""
        return unique([c for cl in self.classes for c in cl])

    def concepts_for(self, class_name: str) -> list[str]:
        """Concepts associated with ``class_name`` (case/underscore-insensitive)."""
        key = norm_name(class_name)
        return [c for c, cl in zip(self.concepts, self.classes, strict=True)
                if any(norm_name(x) == key for x in cl)]

    def missing_classes(self, class_names: Sequence[str]) -> list[str]:
        """Those of ``class_names`` that no concept is associated with."""
        have = {norm_name(c) for c in self.class_names}
        return [c for c in class_names if norm_name(c) not in have]

    def association_matrix(self, class_names: Sequence[str]) -> np.ndarray:
        """C x K float32 0/1 matrix: entry (c, k) is 1 when concept k belongs to class c.

        Class names are matched case- and underscore-insensitively (``"aquarium_fish"`` ==
        ``"Aquarium fish"``); associations to classes not in ``class_names`` are ignored.
        """
        if isinstance(class_names, str):
            raise VocabularyError("class_names must be a list of strings, not one string")
        if len(class_names) == 0:
            raise VocabularyError("association_matrix needs at least one class name")
        row: dict[str, int] = {}
        for i, name in enumerate(class_names):
            key = norm_name(name)
            if key in row:
                raise VocabularyError(f"class name {name!r} appears twice in class_names")
            row[key] = i
        mat = np.zeros((len(class_names), len(self.concepts)), dtype=np.float32)
        for k, cl in enumerate(self.classes):
            for c in cl:
                r = row.get(norm_name(c))
                if r is not None:
                    mat[r, k] = 1.0
        return mat

    # -- transformation -------------------------------------------------------------------

    def select(self, keep: Sequence[int] | np.ndarray) -> Vocabulary:
        """A vocabulary holding only the concepts at positions ``keep`` (order kept)."""
        idx = [int(i) for i in keep]
        return Vocabulary([self.concepts[i] for i in idx], [list(self.classes[i]) for i in idx],
                          source=self.source, warnings=list(self.warnings))

    def for_classes(self, class_names: Sequence[str]) -> Vocabulary:
        """Only the concepts of ``class_names``, with associations to other classes dropped."""
        wanted = {norm_name(c) for c in class_names}
        items = [(c, [x for x in cl if norm_name(x) in wanted])
                 for c, cl in zip(self.concepts, self.classes, strict=True)]
        items = [(c, cl) for c, cl in items if cl]
        if not items:
            raise VocabularyError(f"no concept of {self.source or 'this vocabulary'} belongs to "
                                  f"any of {list(class_names)[:5]}")
        return Vocabulary.from_items(items, source=self.source, warnings=self.warnings)

    def merged(self, other: Vocabulary) -> Vocabulary:
        """This vocabulary followed by ``other``'s new concepts; shared concepts unite classes."""
        pairs = list(zip(self.concepts, self.classes, strict=True))
        pairs += list(zip(other.concepts, other.classes, strict=True))
        src = " + ".join(s for s in (self.source, other.source) if s)
        return Vocabulary.from_items(pairs, source=src, warnings=[*self.warnings, *other.warnings])

    # -- encoding -------------------------------------------------------------------------

    def to_bank(self, text_encoder: TextEncoder, template: str = "{}") -> ConceptBank:
        """Encode the concepts (each through ``template``) into a ConceptBank of unit vectors.

        Provenance records the encoder's spec and fingerprint, ``method="text"``, the template
        and this vocabulary's source; metadata ``"classes"`` keeps the associations.
        """
        if "{}" not in template:
            raise VocabularyError(f"template {template!r} must contain '{{}}' for the concept")
        texts = [template.format(c) for c in self.concepts]
        vectors = encode_checked(text_encoder, texts, "concepts")
        provenance = {"method": "text", "source": self.source, "template": template,
                      **encoder_identity(text_encoder)}
        return ConceptBank(vectors=vectors, names=list(self.concepts), provenance=provenance,
                           metadata={"classes": [list(c) for c in self.classes]})

    # -- files ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout written by :meth:`save`."""
        return {"format": VOCAB_FORMAT, "source": self.source, "warnings": list(self.warnings),
                "concepts": [{"concept": c, "classes": list(cl)}
                             for c, cl in zip(self.concepts, self.classes, strict=True)]}

    def to_text(self) -> str:
        """The text layout (see the module docstring); concepts of no class come first."""
        lines = []
        if self.source:
            lines.append(f"# source: {' '.join(self.source.split())}")
        lines += [f"# warning: {' '.join(w.split())}" for w in self.warnings]
        for c, cl in zip(self.concepts, self.classes, strict=True):
            if not cl:
                lines.append(_check_text_concept(c))
        for name in self.class_names:
            if "\n" in name or "]" in name:
                raise VocabularyError(f"class name {name!r} cannot be written to a text file")
            lines.append(f"[{name}]")
            lines += [_check_text_concept(c)
                      for c, cl in zip(self.concepts, self.classes, strict=True) if name in cl]
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: JSON for a ``.json`` path, else the text format."""
        p = Path(path)
        if p.suffix.lower() == ".json":
            return write_json_atomic(p, self.to_dict())
        return write_text_atomic(p, self.to_text())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Same as :func:`load_vocabulary`."""
        return load_vocabulary(path)


def _check_text_concept(concept: str) -> str:
    if "\n" in concept or "\t" in concept or concept.startswith(("#", "[")):
        raise VocabularyError(f"concept {concept!r} cannot be written to a text vocabulary file "
                              "(starts with '#' or '[' or holds a tab/newline): save as .json")
    return concept


_HEADER_RE = re.compile(r"^\[(.*)\]$")


def parse_text_vocabulary(text: str, source: str = "") -> Vocabulary:
    """Parse the text format of the module docstring (errors name the line)."""
    items: list[tuple[str, list[str]]] = []
    current: list[str] = []
    file_source = ""
    notes: list[str] = []
    where = source or "vocabulary text"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line.lstrip("#").strip()
            if body.lower().startswith("source:") and not file_source and not items:
                file_source = body.split(":", 1)[1].strip()
            elif body.lower().startswith("warning:") and not items:
                notes.append(body.split(":", 1)[1].strip())
            continue
        header = _HEADER_RE.match(line)
        if header:
            name = header.group(1).strip()
            if not name:
                raise VocabularyError(f"{where}:{lineno}: empty class header '[]'")
            current = [name]
            continue
        if "\t" in line:
            raise VocabularyError(f"{where}:{lineno}: a tab in {line!r}; associate concepts "
                                  "with classes by '[class name]' section headers, not columns")
        items.append((line, list(current)))
    if not items:
        raise VocabularyError(f"{where}: no concepts (only comments, headers or blank lines)")
    return Vocabulary.from_items(items, source=file_source or source, warnings=notes)


def load_vocabulary(path: str | os.PathLike[str]) -> Vocabulary:
    """Read a vocabulary file: ``.json`` as JSON, anything else as the text format."""
    p = Path(path)
    if not p.is_file():
        raise VocabularyError(f"{p}: no such vocabulary file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise VocabularyError(f"{p}: cannot read ({err})") from err
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise VocabularyError(f"{p}: not valid JSON ({err})") from err
        return Vocabulary.from_dict(data, source=f"file:{p}")
    return parse_text_vocabulary(text, source=f"file:{p}")

