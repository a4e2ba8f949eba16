"""The Gumbel-ablation section of docs/benchmarks.md is generated from the benchmark's JSON:
change a number and the words change with it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.script_loading import load_script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load() -> Any:
    return load_script(BENCHMARKS / "gumbel_ablation_table.py", "_gumbel_table")


def result(gumbel: float, l1: float, g_active: float, l1_active: float) -> dict[str, Any]:
    row = {"config": "default (tau 1 -> 0.1)", "method": "gumbel", "options": {},
           "val_accuracy": 0.4, "val_mean_active_concepts": 1.2, "val_top_unit_ceiling": 0.45}
    summ = {"accuracy": [gumbel, 0.01], "mean_active_concepts": [g_active, 0.1],
            "unit_fidelity_median": [0.9, 0.02]}
    return {"command": "benchmarks/bench_gumbel_ablation.py", "seconds": 1.0, "machine": "x",
            "seeds": [0, 1, 2],
            "fashion": {"sizes": {"train": 20, "val": 5, "test": 10}, "n_concepts": 7,
                        "chosen_on_validation": "default (tau 1 -> 0.1)",
                        "ablation": [row, {**row, "config": "l1", "method": "l1",
                                           "val_accuracy": 0.6}],
                        "summary": {"gumbel (best on validation)": summ,
                                    "l1 (ours)": {**summ, "accuracy": [l1, 0.01],
                                                  "mean_active_concepts": [l1_active, 0.1]}},
                        "paired_best_gumbel_minus_l1": [gumbel - l1, 0.01]}}


def test_verdict_follows_the_numbers() -> None:
    table = load()
    far = table.render(result(0.40, 0.62, 1.3, 3.7))
    near = table.render(result(0.61, 0.62, 1.3, 3.7))
    dense = table.render(result(0.61, 0.62, 4.0, 3.7))
    assert "not competitive" in far and "-22.0 ± 1.0 points" in far and "0.400 ± 0.010" in far
    assert "not competitive" not in near and "competitive by" in near
    assert "without fewer" in dense and "not competitive" in dense
    assert far != table.render(copy.deepcopy(result(0.41, 0.62, 1.3, 3.7)))
    assert "(0.400) is at or below the top-unit ceiling" in far
    high = result(0.40, 0.62, 1.3, 3.7)
    high["fashion"]["ablation"][0]["val_top_unit_ceiling"] = 0.3
    assert "(0.400) is above the top-unit ceiling" in table.render(high)


def test_splice_replaces_only_the_section() -> None:
    table = load()
    doc = f"# title\n\n{table.START}\nold\n{table.END}\n\n## next\n"
    out = table.splice(doc, f"{table.START}\nnew\n{table.END}")
    assert "new" in out and "old" not in out and out.endswith("## next\n")
    assert table.START in table.splice("# doc\n", f"{table.START}\nx\n{table.END}")


def test_readme_sentence_follows_the_numbers() -> None:
    table = load()
    far = table.readme_section(result(0.40, 0.62, 1.3, 3.7))
    near = table.readme_section(result(0.61, 0.62, 1.3, 3.7))
    assert "not competitive" in far and "22.0 points behind" in far
    assert "not competitive" not in near and "1.0 points behind" in near
    assert far.startswith(table.R_START) and far.endswith(table.R_END)


def test_diverged_seeds_are_reported() -> None:
    table = load()
    data = result(0.40, 0.62, 1.3, 3.7)
    data["fashion"]["summary"]["ref:sparsecbm-gumbel"] = {
        "accuracy": None, "mean_active_concepts": None, "unit_fidelity_median": None,
        "n_diverged": 3}
    text = table.render(data)
    assert "3 of 3 seeds diverged" in text and "| diverged |" in text


def test_readme_says_why_not_from_the_ablation() -> None:
    table = load()
    far = table.readme_section(result(0.40, 0.62, 1.3, 3.7))
    # the fixture's gumbel row: val 0.400 with 1.2 active concepts; l1: 0.600 with 1.2
    data = result(0.40, 0.62, 1.3, 3.7)
    data["fashion"]["ablation"][1]["val_mean_active_concepts"] = 3.0
    text = table.readme_section(data)
    assert "Why: on validation every Gumbel configuration sparser than l1 (3.00 active " \
           "concepts) stays at least 20.0 points below l1's 0.600" in text
    dense = {**data["fashion"]["ablation"][0], "config": "tau fixed 3", "val_accuracy": 0.58,
             "val_mean_active_concepts": 3.5}
    data["fashion"]["ablation"].append(dense)
    text = table.readme_section(data)
    assert "the closest Gumbel row (tau fixed 3, 0.580) uses 3.50 active concepts" in text
    near = table.readme_section(result(0.61, 0.62, 1.3, 3.7))
    assert "Why:" not in near
    assert far != text
