"""The sentences bench_sobol_fair.py and bench_shift.py write are computed from their JSON:
change a number and the words change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.script_loading import load_script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> Any:
    return load_script(BENCHMARKS / f"{name}.py", f"_{name}")


def sobol_result(sobol_del: float) -> dict[str, Any]:
    def row(d: float) -> dict[str, list[float]]:
        return {"deletion_auc": [d, 0.01], "insertion_auc": [0.7, 0.01],
                "mu_fidelity": [0.6, 0.01]}

    summary = {}
    for base in ("zero", "resample"):
        summary[f"sobol (32 designs) | {base}"] = row(sobol_del)
        summary[f"occlusion | {base}"] = row(0.30)
        summary[f"random | {base}"] = row(0.5)
    return {"command": "benchmarks/bench_sobol_fair.py", "seconds": 1.0, "method": "seminmf",
            "k": 8, "layer": "_blocks.15", "source": "spatial", "classes": ["Bag"],
            "n_per_class": 4, "n_images": 2, "seeds": [0, 1, 2], "seeds_done": 3,
            "summary": summary}


def test_sobol_sentence_follows_the_numbers() -> None:
    m = load("bench_sobol_fair")
    ahead = m.render(sobol_result(0.20))
    tie = m.render(sobol_result(0.305))
    assert "lowest deletion AUC sobol (32 designs) (0.200); intervals overlapping it: " \
        "sobol (32 designs)." in ahead
    assert "lowest deletion AUC occlusion (0.300)" in tie and "occlusion, sobol" in tie


def shift_result(concept_agree: float) -> dict[str, Any]:
    rows = ("base model", "tuned head, unshifted", "tuned head, concept shift vectors",
            "tuned head, one global shift (k = 1)", "tuned head, random directions (control)",
            "tuned model")
    summary = {r: {"accuracy": [0.8, 0.01], "agreement": [0.9, 0.01]} for r in rows}
    summary["tuned model"]["accuracy"] = [0.85, 0.01]
    return {"command": "benchmarks/bench_shift.py", "seconds": 1.0, "layer": "_blocks.15",
            "epochs": 10, "n_train_per_class": 5, "k": 3, "n_test_per_class": 2,
            "seeds": [0, 1, 2], "summary": summary,
            "recovery": {r: [0.1, 0.1] for r in rows[2:5]},
            "agreement_recovery": {rows[2]: [concept_agree, 0.05], rows[3]: [0.2, 0.05],
                                   rows[4]: [0.1, 0.05]},
            "shift_stats": [{"mean_improved_cosine": 0.05}]}


def test_shift_sentence_follows_the_numbers() -> None:
    m = load("bench_shift")
    strong = m.render(shift_result(0.6))
    weak = m.render(shift_result(0.12))
    assert "reproduce 60% (± 5%)" in strong and "the concept shifts beat the random" in strong
    assert "do not separate from the random control" in weak
    assert "moved test accuracy by +5.0 points" in strong and "meaningful" in strong
