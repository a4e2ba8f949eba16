"""Generated blocks inside hand-kept documents: one splice for every table writer.

A benchmark or table script owns the text between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` in a markdown page and rewrites exactly that span, so the page's prose
stays put and the numbers inside the markers always come from the latest result files.
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of the block called ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def splice(text: str, block: str, start: str, end: str, *, before: str | None = None) -> str:
    """``text`` with the span from ``start`` to ``end`` (markers included) replaced by
    ``block``, which carries the markers itself. Without the span, ``block`` goes in front of
    the first ``before`` (when given and present) or at the end."""
    if not (block.startswith(start) and block.rstrip().endswith(end)):
        raise ValueError(f"a block must open with {start!r} and close with {end!r}")
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        return text[:i] + block.rstrip("\n") + text[j + len(end):]
    if before and before in text:
        return text.replace(before, block.rstrip("\n") + "\n\n" + before, 1)
    return text.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"


def splice_file(path: Path, block: str, start: str, end: str, *,
                before: str | None = None) -> None:
    """``splice`` applied to the file at ``path`` (rewritten in place, UTF-8)."""
    text = path.read_text(encoding="utf-8")
    path.write_text(splice(text, block, start, end, before=before), encoding="utf-8")
