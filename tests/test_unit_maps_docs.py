"""The unit-maps section's table and sentences come from its JSON (cbm_unit_maps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    return load_script(ROOT / "benchmarks" / "cbm_unit_maps.py", "cbm_unit_maps_words")


def record(colour: float, position: float, crops: float) -> dict[str, Any]:
    units = {"a red shape": colour, "a blue shape": colour - 0.1,
             "a shape on the left": position, "a shape near the top": position + 0.1,
             "a square": 0.5, "a large shape": 0.5}
    return {"model": "l1", "nec": 5.0, "seed": 0, "accuracy": 0.98, "concept_auroc_mean": 0.9,
            "n_images": 60, "n_maps": 200, "tolerance_px": 4, "seconds": 10.0, "n_crops": 48,
            "pointing_game_hit_rate": {"occlusion": 0.6, "crops": crops},
            "chance_hit_rate": 0.16,
            "per_unit": {"occlusion": {n: {"hit_rate": v, "n": 10} for n, v in units.items()},
                         "crops": {n: {"hit_rate": crops, "n": 10} for n in units}}}


def test_concept_groups(bench: Any) -> None:
    assert bench.concept_group("a shape on the left") == "position"
    assert bench.concept_group("an orange shape") == "colour"
    assert bench.concept_group("a tilted shape") == "tilt"
    assert bench.concept_group("a star") == "shape"


def test_the_words_follow_the_numbers(bench: Any) -> None:
    text = bench.benchmark_block(record(colour=0.9, position=0.2, crops=0.04))
    assert "colour units point at the shape best (0.80-0.90 per unit)" in text
    assert "position units worst (0.20-0.30)" in text and "below a random point" in text
    flipped = bench.benchmark_block(record(colour=0.2, position=0.95, crops=0.5))
    assert "position units point at the shape best" in flipped
    assert "colour units worst" in flipped and "more often than a random point" in flipped
    assert "| crops (48 random crops, 30-60% of the side) | 0.50 |" in flipped
