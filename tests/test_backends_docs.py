"""The backend and engine sections' verdicts come from their JSON (benchmarks/backends_docs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def docs() -> Any:
    return load_script(ROOT / "benchmarks" / "backends_docs.py", "backends_docs_words")


def backends(speedup: float, diff: float) -> dict[str, Any]:
    row = {"model": "m", "what": "network", "backend": "onnx", "items_per_s": 100.0,
           "gflops": 50.0, "max_abs_diff": diff}
    return {"threads": 2, "reps": 3, "gemm_gflops": [400.0], "rows": [row],
            "ratios": {"onnx_vs_torch_eager": speedup, "onnx_vs_torch_folded": speedup / 1.3,
                       "folded_vs_eager": 1.3, "minilm_onnx_vs_torch": 1.1}}


def test_backend_goals_follow_the_numbers(docs: Any) -> None:
    good = "\n".join(docs.backends_block(backends(3.0, 1e-5)))
    assert "**3.00x** (goal >= 2.5x: met)" in good and "(goal 1e-04: met)" in good
    bad = "\n".join(docs.backends_block(backends(2.0, 1e-3)))
    assert "**2.00x** (goal >= 2.5x: not met)" in bad and "(goal 1e-04: not met)" in bad


def test_amdahl_bound_and_engines(docs: Any) -> None:
    fresh = {"gemm_gflops": [200.0, 300.0], "ratios": {
        "demo_first_run_torch_over_onnx": 1.25, "onnx_vs_torch_eager": 2.4,
        "minilm_onnx_vs_torch": 1.2},
        "demo": [{"backend": "torch", "wall_seconds": 100.0, "encode_seconds": 40.0,
                  "accuracy": 0.75},
                 {"backend": "onnx", "wall_seconds": 80.0, "encode_seconds": 20.0,
                  "accuracy": 0.75}]}
    text = "\n".join(docs.fresh_block(fresh))
    assert "100.0 / 60.0 = 1.67x here, below the network's 2.5x goal" in text
    assert "encoding alone 2.00x" in text and "Same predictions either way" in text
    engines = {"n": 1000, "cpus": 2, "local_seconds": 10.0, "ray_seconds": 20.0,
               "ray_over_local": 2.0, "identical": False}
    text = "\n".join(docs.engines_block(engines))
    assert "**2.00x** (goal within 1.5x: not met)" in text and "NOT identical" in text


def test_a_missing_file_says_not_run(docs: Any, tmp_path: Path) -> None:
    (tmp_path / "bench_backends.json").write_text(json.dumps(backends(3.0, 1e-5)))
    out = docs.blocks(tmp_path)
    assert "Not run (no `bench_engines.json`)" in out["engines"]
    assert "goal >= 2.5x: met" in out["backends"]
