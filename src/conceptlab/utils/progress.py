"""Progress of long work: a live bar (tqdm) on a terminal, a start and an end line in a log.

``CONCEPTLAB_NO_PROGRESS`` is the one setting: ``1`` turns every bar and line off, ``0``
keeps the bars on even when stderr is not a terminal; unset, bars show on a terminal and a
log (stderr not a terminal) gets two plain lines per piece of long work instead: one when it
starts (what, how many) and one when it ends (how many, seconds). Why: a bar's carriage
returns become thousands of lines in a log file (the main job's log held them), while no
line at all leaves a log silent for minutes (an explorer encoding an empty cache printed
nothing for 138 s). The same rule silences the bars of transformers / huggingface_hub
("Loading weights").
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

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


def log_lines_enabled() -> bool:
    """Whether long work prints a start and an end line instead of a bar: bars off and
    ``CONCEPTLAB_NO_PROGRESS`` not ``1`` (a log file, see module doc)."""
    return not progress_enabled() and os.environ.get("CONCEPTLAB_NO_PROGRESS",
                                                     "").strip() != "1"


class LogLines(Generic[T]):
    """The log form of a progress bar: a start line now, an end line with the count done and
    the seconds when the iteration ends (or :meth:`close` is called). Has the parts of tqdm's
    interface conceptlab uses (``update``, ``set_postfix``, ``close``)."""

    def __init__(self, iterable: Iterable[T], *, total: int | None, desc: str,
                 unit: str) -> None:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = 0
        self.postfix = ""
        self.closed = False
        self.t0 = time.perf_counter()
        size = f"{total} {unit}" if total is not None else unit
        _say(f"{desc}: started ({size})")

    def __iter__(self) -> Iterator[T]:
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done (as tqdm's ``update``)."""
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        """Keep the latest values (as tqdm's ``set_postfix``); the end line shows them."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Print the end line (once)."""
        if self.closed:
            return
        self.closed = True
        done = f"{self.n}" if self.total in (None, self.n) else f"{self.n} of {self.total}"
        extra = f"; {self.postfix}" if self.postfix else ""
        _say(f"{self.desc}: done, {done} {self.unit} in "
             f"{time.perf_counter() - self.t0:.1f} s{extra}")


def _say(line: str) -> None:
    # a closed or broken stderr is no reason to fail the work
    with contextlib.suppress(OSError, ValueError):
        print(f"[conceptlab] {line}", file=sys.stderr, flush=True)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
             disable: bool | None = None, unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a progress bar, or in a log's start and end lines (:class:`LogLines`),
    as the module doc says; ``disable=True`` shows neither."""
    if disable is None:
        disable = not progress_enabled()
        if disable and desc and log_lines_enabled():
            return LogLines(iterable, total=total, desc=desc, unit=unit)
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


def counter(*, total: int, desc: str, unit: str = "it") -> Any:
    """A bar (or a log's start and end lines) counted by hand with ``.update(n)`` and ended
    with ``.close()``, for work that is not one loop (streamed tokens, cache rows)."""
    return progress(range(total), total=total, desc=desc, unit=unit)
