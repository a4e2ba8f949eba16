"""Walking a data folder that may hold symbolic links, without following a link loop.

Why: image folders are often assembled from links (a class folder linking to a shared pool),
so links are followed; but a link to a folder above it (``a/b -> ..``) made ``os.walk`` descend
about 40 levels until the OS refused the path, listing every image 40 times. Each real folder
is visited once here: a link to a folder already visited (a twin) or to a folder above the one
being listed (an ancestor, whose contents would repeat) is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def walk_visible(root: str | os.PathLike[str]) -> Iterator[tuple[Path, list[str]]]:
    """``(folder, sorted visible file names)`` for ``root`` and every visible sub-folder
    (names starting with ``.`` are hidden), following links but visiting each real folder
    once, in sorted order."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # reached twice through links: already listed
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not _loops(os.path.realpath(os.path.join(dirpath, d)), real,
                                            seen))
        yield Path(dirpath), sorted(f for f in filenames if not f.startswith("."))


def _loops(target: str, here: str, seen: set[str]) -> bool:
    """Whether a sub-folder whose real path is ``target`` leads back: a folder already
    visited, or one above the folder being listed (its contents would repeat)."""
    return target in seen or here == target or here.startswith(target.rstrip(os.sep) + os.sep)
