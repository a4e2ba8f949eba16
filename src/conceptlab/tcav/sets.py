"""Concept example sets and random counter-example pools, read from folders.

A concepts folder holds one entry per concept: a sub-folder of images (the concept's name is
the folder's) or a text file of examples, one per line (the name is the file's stem). A random
pool is a folder of images (searched recursively), a text file, or a folder of text files;
TCAV's random counter-example sets are drawn from it (``experiment.draw_random_sets``).
Everything is checked before any model runs: an empty concept, a concept with one example or
a folder mixing images and texts fails with one line naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from conceptlab.data.folder import IMAGE_EXTENSIONS, open_image
from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.walk import walk_visible

Modality = Literal["image", "text"]


class SetsError(ConceptlabValueError):
    """Raised for a missing, empty or mixed concepts folder or random pool."""


def _images_under(folder: Path) -> list[Path]:
    found = []
    for dirpath, filenames in walk_visible(folder):  # links followed, loops not
        found += [dirpath / f for f in filenames if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return found


def _texts_in(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SetsError(f"{path}: cannot read the text examples ({err})") from err
    return [line.strip() for line in lines if line.strip()]


def list_concepts(folder: str | os.PathLike[str]) -> dict[str, tuple[Modality, list[Path]]]:
    """``{concept: (modality, files)}`` without loading any image (a cheap check first)."""
    base = Path(folder)
    if not base.is_dir():
        raise SetsError(f"--concepts-dir {base}: not a folder")
    out: dict[str, tuple[Modality, list[Path]]] = {}
    for entry in sorted(e for e in base.iterdir() if not e.name.startswith(".")):
        if entry.is_dir():
            out[entry.name] = ("image", _images_under(entry))
        elif entry.suffix.lower() == ".txt":
            out[entry.stem] = ("text", [entry])
    if not out:
        raise SetsError(f"--concepts-dir {base}: no concept sub-folders or .txt files")
    kinds = {m for m, _ in out.values()}
    if len(kinds) > 1:
        raise SetsError(f"--concepts-dir {base}: mixes image folders and text files; use one "
                        "modality per test")
    return out


def read_concepts(folder: str | os.PathLike[str], max_per_concept: int | None = None
                  ) -> tuple[Modality, dict[str, list[Any]]]:
    """Load every concept's examples (PIL images or strings), in sorted file order."""
    listing = list_concepts(folder)
    modality = next(iter(listing.values()))[0]
    sets: dict[str, list[Any]] = {}
    for name, (kind, files) in listing.items():
        items: list[Any] = ([open_image(f) for f in files[:max_per_concept]] if kind == "image"
                            else _texts_in(files[0])[:max_per_concept])
        if len(items) < 2:
            raise SetsError(f"concept {name!r} in {folder}: {len(items)} example(s); a CAV "
                            "needs at least 2")
        sets[name] = items
    return modality, sets


def read_pool(path: str | os.PathLike[str], modality: Modality) -> list[Any]:
    """The random pool: images under a folder, or the lines of a text file (or of every .txt
    file in a folder), in sorted order."""
    p = Path(path)
    if modality == "text":
        files = [p] if p.is_file() else sorted(p.glob("*.txt")) if p.is_dir() else []
        items: list[Any] = [t for f in files for t in _texts_in(f)]
    else:
        items = [open_image(f) for f in _images_under(p)] if p.is_dir() else []
    if not p.exists():
        raise SetsError(f"--random-dir {p}: no such file or folder")
    if len(items) < 2:
        raise SetsError(f"--random-dir {p}: {len(items)} {modality} example(s); the random "
                        "pool needs many more than a concept set")
    return items
