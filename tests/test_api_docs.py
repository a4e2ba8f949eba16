"""The API reference builds from the docstrings (scripts/api_docs.py, pdoc) and its front page
shows the public names with their docstrings. The test builds the whole reference, as
`bash scripts/api_docs.sh` does (~20 s), so CI checks that every module gets its page."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

import conceptlab
from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("pdoc")


def _script() -> ModuleType:
    return load_script(ROOT / "scripts" / "api_docs.py", "_api_docs")


def test_the_reference_builds_and_lists_the_public_names(tmp_path: Path) -> None:
    script = _script()
    index = script.build(tmp_path)  # everything, as the one command builds it
    assert index.is_file()
    missing = [n for n in script.modules()
               if not (tmp_path / (n.replace(".", "/") + ".html")).is_file()]
    assert not missing, missing  # a module pdoc could not import has no page
    front = (tmp_path / "conceptlab.html").read_text(encoding="utf-8")
    for name in conceptlab.__all__:
        if name != "plot":
            assert f'id="{name}"' in front, name  # a documented member, not just a mention
    # docstrings come through: the model's own first line and a plot function's
    assert "fitted" in front and "pandas DataFrame" in front
    plot_page = (tmp_path / "conceptlab" / "plot.html").read_text(encoding="utf-8")
    assert "Signed contributions" in plot_page


def test_the_full_reference_covers_every_public_subpackage() -> None:
    names = _script().modules()
    for pkg in ("conceptlab.bottleneck", "conceptlab.concepts", "conceptlab.data",
                "conceptlab.encoders", "conceptlab.lm", "conceptlab.plot",
                "conceptlab.workflows.export"):
        assert pkg in names
    assert not [n for n in names if "._" in n]
