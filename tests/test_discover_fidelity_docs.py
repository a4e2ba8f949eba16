"""The discover-fidelity section's answer to "does Sobol lead?" comes from its numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("deletion_auc", "insertion_auc", "mu_fidelity")


@pytest.fixture(scope="module")
def docs() -> Any:
    return load_script(ROOT / "benchmarks" / "discover_fidelity_docs.py", "discover_fid_docs")


def order(values: dict[str, float]) -> dict[str, Any]:
    return {k: {"mean": v, "std": 0.001, "per_seed": [v - 0.001, v, v + 0.001]}
            for k, v in values.items()}


def record(layer: str, sobol_mu: float, gi_mu: float) -> dict[str, Any]:
    occ = {"deletion_auc": 0.2, "insertion_auc": 0.7, "mu_fidelity": 0.8}
    sob = {"deletion_auc": 0.25 if sobol_mu < 0.8 else 0.15,
           "insertion_auc": 0.65 if sobol_mu < 0.8 else 0.75, "mu_fidelity": sobol_mu}
    return {"layer": layer, "source": "crops", "seeds": [0, 1, 2], "seconds": 60.0,
            "summary": {"nmf": {"sobol": order(sob), "occlusion": order(occ),
                                "gradient_input": order({**occ, "mu_fidelity": gi_mu}),
                                "random": order({"deletion_auc": 0.45, "insertion_auc": 0.45,
                                                 "mu_fidelity": 0.0})}}}


def test_sobol_trailing_everywhere_is_a_no(docs: Any) -> None:
    rows = docs.comparisons([record("features", 0.7, 0.8), record("_blocks.15", 0.7, 0.75)])
    text = "\n".join(docs.words(rows))
    assert "**Not here, at either layer.**" in text
    assert "At `features`: gradient x input and occlusion give the same order" in text
    assert "At `_blocks.15`: gradient x input and occlusion differ (occlusion ahead on " \
        "mu-fidelity by +0.050 with nmf)" in text
    assert "Sobol trails occlusion on 3 of 3 metrics" in text
    assert "below a random order's by at least 0.200" in text


def test_sobol_leading_changes_the_answer(docs: Any) -> None:
    rows = docs.comparisons([record("features", 0.9, 0.8)])
    text = "\n".join(docs.words(rows))
    assert "**Yes, at `features`.**" in text and "Sobol ahead on" in text


def test_a_missing_run_is_named(docs: Any, tmp_path: Path) -> None:
    (tmp_path / "bench_discover_fidelity.json").write_text(
        json.dumps(record("features", 0.7, 0.8)))
    text = docs.block(tmp_path)
    assert text.startswith(docs.START) and text.endswith(docs.END)
    assert "not run (no `bench_discover_fidelity_sae.json`)" in text
    assert "| nmf | sobol | 0.250 ± 0.001 |" in text
