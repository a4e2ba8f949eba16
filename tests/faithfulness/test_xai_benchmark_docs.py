"""The docs/benchmarks.md section of the concept-XAI metrics is written from the benchmark's
JSON: the checked-in section equals what the JSON gives, and other numbers give other words."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    return load_script(ROOT / "benchmarks" / "bench_xai_metrics.py", "_bench_xai")


def test_docs_section_is_the_json_rendered() -> None:
    bench = _bench()
    result = json.loads((ROOT / "benchmarks/results/bench_xai_metrics.json").read_text())
    assert bench.docs_section(result) in (ROOT / "docs/benchmarks.md").read_text()


def test_the_words_follow_the_numbers(tmp_path: Path) -> None:
    bench = _bench()
    result = json.loads((ROOT / "benchmarks/results/bench_xai_metrics.json").read_text())
    name = next(iter(result["summary"]))
    low = copy.deepcopy(result)
    low["summary"][name]["cem@1"] = [0.30, 0.05]
    low["summary"][name]["clm@1,a=3"] = [0.5, 0.01]
    text, low_text = bench.prose(result), bench.prose(low)
    assert "present in the image 30% of the time (not above" in low_text
    assert "covers the shape for 50% of images (above" in low_text
    assert text != low_text and "| 0.300 ± 0.050 |" in bench.markdown(low)
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n")
    bench.write_docs(result, docs)
    bench.write_docs(low, docs)  # rewrites its own section, once
    assert docs.read_text().count(bench.START) == 1 and "30% of the time" in docs.read_text()
