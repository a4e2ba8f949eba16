"""docs/lm.md's SAE figure is drawn from a dictionary run's metrics only."""

from __future__ import annotations

import json
from pathlib import Path

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[2]


def test_the_dictionary_figure_is_drawn_from_the_metrics(tmp_path: Path) -> None:
    mod = load_script(ROOT / "benchmarks" / "lm_dictionary_tables.py", "lm_dictionary_tables")
    m = json.loads((ROOT / "benchmarks" / "results" / "bench_lm_dictionary.json").read_text())
    a = mod.figure(m, tmp_path / "a.png").read_bytes()
    m["results"]["sae"]["fve"] = 0.1  # other numbers, another picture
    b = mod.figure(m, tmp_path / "b.png").read_bytes()
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and len(a) > 5000 and a != b
    assert "lm/dictionary.png" in (ROOT / "docs" / "lm.md").read_text()
