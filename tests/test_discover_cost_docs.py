"""The discovery-cost section's sentences come from its JSON (bench_discover.words)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    return load_script(ROOT / "benchmarks" / "bench_discover.py", "bench_discover_words")


def row(method: str, fit: float, r2: float, mib: float = 500.0, sparsity: float = 0.0,
        dead: float = 0.0) -> dict[str, Any]:
    return {"method": method, "k": 10, "fit_s": fit, "encode_s": 0.3, "fit_vs_fastest": 1.0,
            "peak_added_mib": mib, "relative_error": 0.7, "r2": r2, "sparsity": sparsity,
            "dead_units": dead}


def test_the_words_follow_the_numbers(bench: Any) -> None:
    rows = [row("pca", 4.0, 0.36), row("nmf", 20.0, 0.32, sparsity=0.5),
            row("sae", 80.0, 0.33, mib=2048.0, sparsity=0.6)]
    words = bench.words(rows)
    assert words.startswith("pca is the fastest (4.0 s)")
    assert "NMF costs 5.0x pca's time and 4.0 points of R²" in words
    assert "The SAEs take 20-20x for 60-60% zero codes" in words
    assert "sae is the most memory-hungry (2.0 GiB above the rows) and sae the slowest" in words
    assert "No method left a dead unit at k = 10." in words


def test_dead_units_and_a_faster_nmf_change_the_words(bench: Any) -> None:
    words = bench.words([row("pca", 4.0, 0.36), row("nmf", 2.0, 0.37, dead=2.0)])
    assert words.startswith("nmf is the fastest (2.0 s)")
    assert "NMF costs" not in words and "Dead units at k = 10: nmf." in words
    assert "the best reconstruction for 10 atoms: nmf (R² 0.370)" in words
