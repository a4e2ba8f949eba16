"""Every python block of docs/contributing.md runs as written.

Each block runs in a fresh namespace inside ``registrations_undone()``, so the toy objective,
encoder, dataset, ... it registers are gone afterwards and the contract tests that run over
every registered entry see only conceptlab's own. The built-in entries are loaded first, so
the undo never has to tell a lazily imported built-in from an example's toy.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from conceptlab.utils.registry import Registry, live_registries, registrations_undone

DOC = Path(__file__).resolve().parents[1] / "docs" / "contributing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of each fenced python block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def load_builtins() -> None:
    """Import every module that registers built-in entries (the registries' own loaders)."""
    import conceptlab.bottleneck.objectives
    import conceptlab.importance
    import conceptlab.lm.datasets  # noqa: F401
    from conceptlab.bottleneck.concept_model import concept_model_kinds
    from conceptlab.data.base import known_datasets
    from conceptlab.discover.base import known_dictionaries
    from conceptlab.encoders.base import known_encoders

    concept_model_kinds(), known_datasets(), known_dictionaries(), known_encoders()


BLOCKS = python_blocks(DOC.read_text(encoding="utf-8"))


def test_the_page_has_a_worked_example_per_extension_kind() -> None:
    text = DOC.read_text(encoding="utf-8")
    pages = ["An objective", "A concept model", "A dictionary", "An importance estimator",
             "An encoder family", "A dataset", "An LM architecture", "A prompt set"]
    sections = re.split(r"^## ", text, flags=re.M)
    for page in pages:
        section = next((s for s in sections if s.startswith(page + "\n")), None)
        assert section is not None, f"docs/contributing.md has no '## {page}' page"
        for part in ("**What it is.**", "**Registry.**", "**Contract.**", "```python"):
            assert part in section, f"'## {page}' lacks {part}"


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_example_runs_and_leaves_no_registration(line: int, code: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCEPTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CONCEPTLAB_NO_PROGRESS", "1")
    load_builtins()
    before = {id(r): r.names() for r in live_registries()}
    module = types.ModuleType(f"contributing_example_{line}")  # dataclasses look it up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with registrations_undone():
        exec(compile(code, f"{DOC}:{line}", "exec"), module.__dict__)
        added = {r.kind for r in live_registries() if r.names() != before.get(id(r), r.names())}
        assert added, "the example registers nothing"
    after = {id(r): r.names() for r in live_registries() if id(r) in before}
    assert after == {k: v for k, v in before.items() if k in after}


def test_registrations_undone_restores_and_keeps_builtins() -> None:
    """Names added inside go, entries replaced or removed inside come back, and entries of
    conceptlab's own modules registered inside (a lazily imported built-in) stay."""
    reg: Registry[object] = Registry("thing")
    own = Registry.__init__  # a function defined by conceptlab.utils.registry
    reg.add("kept", len)
    with registrations_undone():
        reg.add("toy", print)
        reg.unregister("kept")
        reg.add("builtin", own)
        assert reg.names() == ["toy", "builtin"]
    assert reg.names() == ["kept", "builtin"] and reg["kept"] is len
    with pytest.raises(KeyError, match="unknown thing 'toy'"):
        reg.unregister("toy")
