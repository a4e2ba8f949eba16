"""The committed pages say what the committed results say: every generated block, rewritten
from ``benchmarks/results`` by ``benchmarks/refresh_docs.py`` on a copy of the repository's
pages, comes out byte for byte as committed. A result file changed without its page (or a page
edited by hand inside a generated block) fails here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/benchmarks.md", "docs/lm.md", "docs/seed_systems.md")


@pytest.mark.slow
def test_refreshing_the_generated_blocks_changes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    for page in PAGES:
        shutil.copy2(ROOT / page, tmp_path / page)
    done = subprocess.run([sys.executable, str(tmp_path / "benchmarks" / "refresh_docs.py")],
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    changed = [p for p in PAGES if (tmp_path / p).read_text(encoding="utf-8")
               != (ROOT / p).read_text(encoding="utf-8")]
    assert not changed, f"generated blocks out of date with benchmarks/results: {changed}"


def test_a_hand_edit_inside_a_block_is_caught(tmp_path: Path) -> None:
    """The comparison above can fail: a number changed inside a generated block is rewritten."""
    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    for page in PAGES:
        shutil.copy2(ROOT / page, tmp_path / page)
    page = tmp_path / "docs" / "benchmarks.md"
    text = page.read_text(encoding="utf-8")
    start = text.index("<!-- engines:start -->")
    edited = text[:start] + text[start:].replace("| local loop |", "| local loop (edited) |", 1)
    page.write_text(edited, encoding="utf-8")
    done = subprocess.run([sys.executable, str(tmp_path / "benchmarks" / "backends_docs.py")],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert page.read_text(encoding="utf-8") == text
