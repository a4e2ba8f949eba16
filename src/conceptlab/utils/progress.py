"""Progress bars for long work (tqdm), silenced by CONCEPTLAB_NO_PROGRESS=1 or when disabled."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
             disable: bool | None = None, unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a progress bar unless progress is disabled."""
    if disable is None:
        disable = os.environ.get("CONCEPTLAB_NO_PROGRESS", "") == "1"
    return tqdm(iterable, total=total, desc=desc, disable=disable, unit=unit, leave=False)
