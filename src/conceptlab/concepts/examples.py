"""Concept example sets (TCAV-style): a few inputs per concept and random counter-examples.

A folder ``DIR`` holds one entry per concept, named after it (``_`` for spaces, case ignored):
``DIR/NAME.txt`` (one example text per line) or ``DIR/NAME/`` (image files), and the random
counter-examples as ``DIR/random.txt`` or ``DIR/random/``. The audit asks whether each unit
scores its concept's examples above the random ones (``concepts_mean_words``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import InputError

RANDOM = "random"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class ConceptExamples:
    """Raw example inputs per concept name (as written in the folder) and the random set."""

    concepts: dict[str, list[Any]]
    random: list[Any]
    modality: str


@dataclass
class ExampleEmbeddings:
    """Example sets through an encoder: ``concepts`` maps a concept name to its N_k x D
    embeddings, ``random`` holds the counter-examples' embeddings."""

    concepts: dict[str, np.ndarray]
    random: np.ndarray


def _key(name: str) -> str:
    return name.replace("_", " ").strip().lower()


def _read_entry(path: Path) -> tuple[list[Any], str]:
    if path.is_dir():
        from conceptlab.data.folder import open_image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        return [open_image(p) for p in files], "image"
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    texts = [ln for ln in lines if ln]
    if not texts:
        raise InputError(f"{path}: no example texts (one per line)")
    return texts, "text"


def load_concept_examples(folder: str | Path) -> ConceptExamples:
    """Read ``folder`` (see the module docstring); one clear error for a missing folder, a
    missing random set, an empty entry or mixed modalities."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder (give a folder of concept example sets)")
    entries = {}
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir() or p.suffix.lower() == ".txt":
            entries[_key(p.stem if p.is_file() else p.name)] = p
    if RANDOM not in entries:
        raise InputError(f"{root}: no random counter-examples (random.txt or random/)")
    random, modality = _read_entry(entries.pop(RANDOM))
    if not entries:
        raise InputError(f"{root}: no concept example set beside the random one")
    concepts = {}
    for name, p in entries.items():
        items, kind = _read_entry(p)
        if kind != modality:
            raise InputError(f"{p}: {kind} examples, but the random set holds {modality}s")
        concepts[name] = items
    return ConceptExamples(concepts, random, modality)


def embed_examples(examples: ConceptExamples, encoder: Any, concept_names: list[str]
                   ) -> ExampleEmbeddings:
    """Encode the example sets named after one of ``concept_names`` (matched with ``_`` for
    spaces, case ignored) and the random set; an error when no set matches a concept."""
    by_key = {_key(n): n for n in concept_names}
    matched = {by_key[k]: items for k, items in examples.concepts.items() if k in by_key}
    if not matched:
        raise InputError(f"no example set is named after a concept of the model (sets: "
                         f"{', '.join(sorted(examples.concepts))[:200]})")
    encode = encoder.encode_images if examples.modality == "image" else encoder.encode_texts
    return ExampleEmbeddings({n: np.asarray(encode(items), np.float32)
                              for n, items in matched.items()},
                             np.asarray(encode(examples.random), np.float32))
