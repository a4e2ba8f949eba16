"""The neuron-decoding section's verdicts come from its JSON (bench_lm_neurons.docs_block)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    pytest.importorskip("transformers")
    return load_script(ROOT / "benchmarks" / "bench_lm_neurons.py", "bench_lm_neurons_words")


def record(ratio_best: float, ratio_median: float, search_max: float) -> dict[str, Any]:
    return {"n_neurons": 46080, "decode_s": [30.0, 20.0], "bare_products_s": [18.0, 19.0],
            "bare_buffered_s": [19.0, 20.0], "ratio_best": ratio_best,
            "ratio_median": ratio_median, "gflops_bare": 100.0, "per_neuron_us": 434.0,
            "map_save_s": 0.02, "map_load_s": 0.005, "search_ms_median": 10.0,
            "search_ms_max": search_max, "token_index_s": 0.02, "search_indexed_ms_max": 5.0,
            "hits": {"dog": [], "cat": []}}


def test_the_ratio_goal_follows_the_numbers(bench: Any) -> None:
    split = bench.docs_block(record(1.1, 1.3, 20.0))
    assert "holds for the best runs (1.10) and not for the medians (1.30)" in split
    assert "spread by 50%" in split and "under the 100 ms goal (max 20.0 ms)" in split
    assert "holds for the best runs (1.05) and the medians (1.15)" in \
        bench.docs_block(record(1.05, 1.15, 20.0))
    missed = bench.docs_block(record(1.4, 1.5, 150.0))
    assert "goal is not met (1.40 best, 1.50 median)" in missed
    assert "misses the 100 ms goal (max 150.0 ms)" in missed
    assert "| decode all 46,080 neurons (runs 30.0, 20.0 s; best) | 20.00 s |" in missed
