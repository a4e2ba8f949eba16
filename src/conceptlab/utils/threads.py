"""One rule for how many torch CPU threads a fit uses, and a context manager to apply it.

Why a fixed rule and no timed probe: a probe that times one and two threads makes the thread
count, and with it the float summation order, depend on the machine's load at that moment, so
the same command could give different numbers. The rule depends only on the problem's size.
Small problems (every step a few small matrix products) run on one thread, where spin-waiting
threads on shared cores cost far more than they give; large ones use torch's setting.
Timings behind the threshold: docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from conceptlab.errors import ConceptlabValueError

#: below this many multiply-adds per pass a fit runs on one CPU thread
SMALL_PROBLEM_MACS = 5e7


def threads_for(macs_per_pass: float, device: str = "cpu") -> int:
    """Threads for a fit whose inner pass costs ``macs_per_pass`` multiply-adds."""
    current = torch.get_num_threads()
    if torch.device(device).type != "cpu" or current <= 1:
        return current
    return 1 if macs_per_pass < SMALL_PROBLEM_MACS else current


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` torch intra-op threads (``None``: unchanged); always restore."""
    before = torch.get_num_threads()
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConceptlabValueError(f"num_threads must be a positive int or None, got {n!r}")
    if n is None or n == before:
        yield before
        return
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
