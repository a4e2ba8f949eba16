"""docs/lm.md's result sentences are computed from the numbers: change them, the words change."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.script_loading import load_script


def _tables() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_docs_tables.py"
    return load_script(path, "lm_docs_tables")


def _ci(mean: float, half: float = 0.05) -> dict[str, float]:
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": 12}


def _cv(own: float) -> dict[str, Any]:
    block = {"own_bleu": _ci(own), "unrelated_bleu": _ci(0.9), "own_rouge_l": _ci(own),
             "unrelated_rouge_l": _ci(0.9)}
    ctrl = {k: _ci(0.9) for k in block}
    return {"std": 0.1, "max_new_tokens": 48,
            "rows": [{"concept": "dog", "layer": 29, "dim": 808, "z": 9.0}],
            "summary": {"noise_concept": block, "noise_control": ctrl,
                        "zero_concept": copy.deepcopy(block), "zero_control": ctrl}}


def test_concept_vector_sentence_follows_the_numbers() -> None:
    t = _tables()
    strong = t.concept_vectors_sentence(_cv(0.3))
    weak = t.concept_vectors_sentence(_cv(0.88))
    assert "BLEU 0.300" in strong and "do not overlap" in strong and "lies below it" in strong
    assert "BLEU 0.880" in weak and "intervals overlap" in weak and "does not lie below" in weak


def test_depth_sentence_and_rule_follow_the_numbers() -> None:
    t = _tables()
    rows = [{"point": f"blocks.{i}.hook_resid_post",
             "accuracy": {"value": a, "lo": a - 0.04, "hi": a + 0.04},
             "auc": {"value": a}} for i, a in enumerate([0.6, 0.93, 0.95, 0.97])]
    m = {"concepts": [{"name": "x", "prompts": {"n": 10}, "layers": rows,
                       "control_accuracy_mean": 0.5}]}
    out = t.relabel(copy.deepcopy(m))
    assert out["concepts"][0]["depth"] == 1  # 0.93 + 0.04 reaches 0.97 - 0.04
    assert "readable at layer 1 at 0.930" in t.probe_sentence(out)
    rows[1]["accuracy"]["hi"] = 0.9
    rows[1]["accuracy"]["value"] = 0.86
    out = t.relabel(copy.deepcopy(m))
    assert "readable at layer 2 at 0.950" in t.probe_sentence(out)
