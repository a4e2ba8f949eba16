"""The TCAV benchmark's sentences follow its numbers (no result is written by hand)."""

from __future__ import annotations

from pathlib import Path

from tests.script_loading import load_script

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_tcav.py"


def _module():
    return load_script(BENCH, "_bench_tcav_prose")


def _result(ratio: float, agree: float) -> dict:
    test = {"svm_mean": 0.6, "fast_mean": 0.9, "svm_significant": False,
            "fast_significant": True}
    return {"summary": {"ratio": (ratio, 1.0), "cosine": (0.5, 0.1), "agreement": (agree, 0.1)},
            "per_seed": [{"tests": [test, dict(test)]}]}


def test_prose_changes_with_the_numbers():
    mod = _module()
    fast = mod.prose(_result(54.0, 0.5))
    assert "54x faster" in fast and "meets the aim" in fast and "50%" in fast
    slow = mod.prose(_result(5.0, 1.0))
    assert "5x faster" in slow and "misses the aim" in slow and "100%" in slow
    assert "calls 2 of 2 tests significant against 0" in fast


def test_docs_table_is_the_json_rendered():
    import json

    root = BENCH.parents[1]
    result = json.loads((root / "benchmarks" / "results" / "bench_tcav.json").read_text())
    table = _module().markdown(result).strip()
    assert "| time ratio SVM / FastCAV |" in table
    assert table in (root / "docs" / "benchmarks.md").read_text()
