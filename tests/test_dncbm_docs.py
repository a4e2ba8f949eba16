"""The DN-CBM section's paragraph comes from its numbers (bench_dncbm.words)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Any:
    pytest.importorskip("torch")
    sys.path.insert(0, str(BENCHMARKS))
    return load_script(BENCHMARKS / "bench_dncbm.py", "bench_dncbm_words")


def entry(nec: float | None, fidelity: float, null: float, faithful: bool) -> dict[str, Any]:
    return {"method": "DN-CBM (SAE 8 units)", "nec": nec, "faithful_cbm": faithful,
            "accuracy": [0.6, 0.01], "unit_fidelity_median": [fidelity, 0.02],
            "shuffled_name_fidelity": [null, 0.02], "name_match_rate": [0.3, 0.1],
            "name_cosine_mean": [0.15, 0.02], "random_bank_agreement": [1.0, 0.0],
            "random_bank_gap": [0.0, 0.0], "sae_r2": [0.9, 0.01]}


def record(fidelity: float = 0.18, null: float = -0.03, faithful: bool = False
           ) -> dict[str, Any]:
    return {"n_vocab": 66, "seeds": [0, 1, 2], "summary": [
        {"method": "linear-probe", "nec": None, "accuracy": [0.81, 0.0]},
        entry(5.0, fidelity, null, faithful), entry(None, null, null, faithful)]}


def test_a_weak_naming_is_described_as_weak(bench: Any) -> None:
    words = bench.words(record(), None)
    assert words.startswith("DN-CBM does not pass the faithfulness checks here")
    assert "barely tracks" in words
    assert "median correlation 0.18 at NEC = 5 and -0.03 dense" in words
    assert "above the shuffled-name null at NEC = 5; not above it at dense" in words
    assert "far below the bar" in words and "0.810 for the linear probe" in words


def test_faithful_units_change_the_words(bench: Any) -> None:
    words = bench.words(record(fidelity=0.9, null=0.0, faithful=True), None)
    assert words.startswith("DN-CBM passes the faithfulness checks here at both heads")
    assert "activation tracks the encoder's score" in words and "far below" not in words


def test_the_best_grounded_cbm_is_read_from_the_faithfulness_table(bench: Any) -> None:
    table = {"claims": {"best_grounded_at_nec5_chosen_on_val": "l1, grounded"},
             "summary": [{"method": "l1, grounded", "nec": 5.0, "accuracy": [0.77, 0.01],
                          "unit_fidelity_median": [0.94, 0.02]}]}
    words = bench.words(record(), table)
    assert "against 0.770 for our best grounded CBM" in words
    assert "(l1, grounded, chosen on validation; unit fidelity 0.94)" in words
