"""The steering-versus-prompting verdict is computed from the numbers: change them, it changes."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.script_loading import load_script


def _tables() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "steer_vs_prompt_tables.py"
    return load_script(path, "steer_vs_prompt_tables")


def _iv(m: float) -> dict[str, float]:
    return {"mean": m, "lo": m - 0.05, "hi": m + 0.05, "n": 10}


def _res() -> dict[str, Any]:
    s = {k: _iv(0.3) for k in ("concept", "instruction", "fluency", "aggregate")}
    return {"concepts": ["a"] * 10, "point": "p", "scale": 1.0, "strengths": [1.0],
            "n_select": 1, "instructions": ["x", "y"], "max_new_tokens": 4, "judge": "j",
            "seconds": 1.0, "summary": {"prompting": s, "mean_diff": s, "probe": s},
            "aggregate_minus_prompting": {"mean_diff": _iv(-0.2), "probe": _iv(0.0)}}


def test_verdict_says_whether_a_method_beats_prompting() -> None:
    T = _tables()
    res = _res()
    v = T.verdict(res)
    assert v.startswith("No steering method beats prompting")
    assert "mean difference scores below it" in v and "logistic probe cannot be told" in v
    res2 = copy.deepcopy(res)
    res2["aggregate_minus_prompting"]["probe"] = _iv(0.2)
    v2 = T.verdict(res2)
    assert v2.startswith("logistic probe beats prompting")
    assert "| logistic probe |" in T.table(res2)
