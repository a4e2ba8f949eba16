"""docs/lm.md's SAE figure is drawn from a dictionary run's metrics only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dictionary_figure_is_drawn_from_the_metrics(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "lm_dictionary_tables", ROOT / "benchmarks" / "lm_dictionary_tables.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = json.loads((ROOT / "benchmarks" / "results" / "bench_lm_dictionary.json").read_text())
    a = mod.figure(m, tmp_path / "a.png").read_bytes()
    m["results"]["sae"]["fve"] = 0.1  # other numbers, another picture
    b = mod.figure(m, tmp_path / "b.png").read_bytes()
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and len(a) > 5000 and a != b
    assert "lm/dictionary.png" in (ROOT / "docs" / "lm.md").read_text()
