"""Progress bars for long work (tqdm): live on a terminal, silent in logs.

``CONCEPTLAB_NO_PROGRESS`` is the one setting: ``1`` turns every bar off, ``0`` keeps them
on even when stderr is not a terminal; unset, bars show only on a terminal. Why: a bar's
carriage returns become thousands of lines in a log file (the main job's log held them).
The same rule silences the bars of transformers / huggingface_hub ("Loading weights").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Whether bars show: ``CONCEPTLAB_NO_PROGRESS`` if set (1 off, 0 on), else a terminal."""
    env = os.environ.get("CONCEPTLAB_NO_PROGRESS", "").strip()
    if env == "1":
        return False
    if env == "0":
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
             disable: bool | None = None, unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a progress bar unless progress is disabled (see module doc)."""
    if disable is None:
        disable = not progress_enabled()
    return tqdm(iterable, total=total, desc=desc, disable=disable, unit=unit, leave=False)


def quiet_library_progress() -> None:
    """Apply the same rule to the bars of transformers and huggingface_hub (call before a
    model loads): off unless :func:`progress_enabled`."""
    if progress_enabled():
        return
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a core dependency
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass
