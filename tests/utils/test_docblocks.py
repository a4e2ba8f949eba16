"""The one splice every table writer uses: only the marked span changes, once."""

from __future__ import annotations

import pytest

from conceptlab.utils.docblocks import markers, splice

START, END = markers("demo")


def test_only_the_marked_span_is_replaced_and_twice_is_once() -> None:
    doc = f"# page\nprose\n{START}\nold\n{END}\nafter\n"
    once = splice(doc, f"{START}\nnew\n{END}", START, END)
    assert once == f"# page\nprose\n{START}\nnew\n{END}\nafter\n"
    assert splice(once, f"{START}\nnew\n{END}", START, END) == once


def test_a_missing_block_goes_before_the_anchor_or_at_the_end() -> None:
    block = f"{START}\nx\n{END}"
    assert splice("a\n## Anchor\nb\n", block, START, END, before="## Anchor") == \
        f"a\n{block}\n\n## Anchor\nb\n"
    assert splice("a\n", block, START, END).endswith(f"a\n\n{block}\n")


def test_a_block_without_its_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="must open with"):
        splice("text", "no markers", START, END)
