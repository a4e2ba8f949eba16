"""The explorer-latency section's verdicts come from its JSON (bench_serve.docs_block)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    return load_script(ROOT / "benchmarks" / "bench_serve.py", "bench_serve_words")


def row(kind: str, median: float, p95: float, goal: str = "") -> dict[str, Any]:
    return {"kind": kind, "n": 200, "median_ms": median, "p95_ms": p95, "goal": goal}


def record(explain_median: float, upload_p95: float) -> dict[str, Any]:
    return {"machine": {"load_average": [1.0, 1.0, 1.0], "cpus": 2}, "server_startup_s": 3.0,
            "rows": [row("in-process Explorer.explain (no HTTP)", 0.1, 0.2),
                     row("HTTP explain test item", explain_median, 3.0,
                         "median < 20 ms, p95 < 50 ms"),
                     row("HTTP upload 28 x 28 PNG", 30.0, upload_p95, "median < 100 ms")]}


def test_goal_verdicts(bench: Any) -> None:
    assert bench.goal_verdict(row("x", 10.0, 40.0, "median < 20 ms, p95 < 50 ms")) \
        == "median < 20 ms, p95 < 50 ms: met"
    assert bench.goal_verdict(row("x", 10.0, 60.0, "median < 20 ms, p95 < 50 ms")) \
        == "median < 20 ms, p95 < 50 ms: not met (p95 60 ms)"
    assert bench.goal_verdict(row("x", 10.0, 60.0)) == ""


def test_the_words_follow_the_numbers(bench: Any) -> None:
    text = bench.docs_block(record(explain_median=2.0, upload_p95=50.0))
    assert "about 95% of an HTTP explain request's 2.00 ms" in text
    assert "Every goal is met." in text and "the goal is on the median" not in text
    slow = bench.docs_block(record(explain_median=25.0, upload_p95=150.0))
    assert "Goals not met: HTTP explain test item." in slow
    assert "The p95 of \"HTTP upload 28 x 28 PNG\" (150 ms) is above 100 ms" in slow
