"""docs/lm.md's ObsProp sentences are computed from the benchmark's numbers."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.script_loading import load_script


def _tables() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_obsprop_tables.py"
    return load_script(path, "lm_obsprop_tables")


def _iv(m: float, h: float = 0.02) -> dict[str, float]:
    return {"mean": m, "lo": m - h, "hi": m + h, "n": 3}


def _result() -> dict[str, Any]:
    keys = ["auroc_obsprop", "auroc_probe_few", "auroc_probe_many", "auroc_mean_few",
            "auroc_mean_many", "cos_obsprop_probe_few", "cos_obsprop_probe_many"]
    summary = {"top head": {k: _iv(0.6) for k in keys}}
    summary["top head"]["auroc_obsprop"] = _iv(0.8)
    summary["top head"]["auroc_probe_few"] = _iv(0.55)
    summary["top head"]["auroc_probe_many"] = _iv(0.9)
    run = {"rows": {"top head": {"component": "L3.H1", "read": "x at the last token"}},
           "coupling_top3_heads": {"heads": ["a", "b"], "matrix": [[1.0, 0.25], [4.0, 1.0]]},
           "top_heads": [{"head": "a", "attribution": 1.0}],
           "top_mlps": [{"mlp": "m", "attribution": -2.0}]}
    return {"observable": "o", "n_prompts": 8, "n_occupations": 2, "templates": ["a"],
            "n_train": 4, "n_test": 4, "few_per_class": 1, "seeds": 3,
            "observable_test_auroc": 0.7, "summary": summary, "runs": [run],
            "layernorm_cosine_min": 0.99, "seconds": 10.0}


def test_verdict_follows_the_numbers() -> None:
    T = _tables()
    res = _result()
    text = T.render(res)
    assert "beats the few-example probe (0.550" in text
    assert "stays below the probe fitted on many examples (0.900)" in text
    assert "C(a, b) = 0.25; C(b, a) = 4.00" in text and "m -2.00" in text
    res2 = copy.deepcopy(res)
    res2["summary"]["top head"]["auroc_obsprop"] = _iv(0.3)
    text2 = T.render(res2)
    assert "falls below the few-example probe" in text2 and "below 0.5" in text2
    res3 = copy.deepcopy(res)
    res3["summary"]["top head"]["auroc_obsprop"] = _iv(0.9)
    assert "matches the probe fitted on many examples" in T.render(res3)
