"""The faithfulness tables' words come from their numbers: README's headline sentence and the
benchmark's per-section summary change when a number changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> Any:
    return load_script(BENCHMARKS / f"{name}.py", f"_{name}")


def row(method: str, kind: str, nec: float | None, acc: float, val: float = 0.5,
        grounding: float = 1.0) -> dict[str, Any]:
    return {"method": method, "kind": kind, "nec_requested": nec, "accuracy": acc,
            "val_accuracy": val, "options": {"cbl.grounding": grounding},
            "objective": "l1"}


def table(ours_acc: float, ref_faithful: bool) -> dict[str, Any]:
    per_seed = {s: [row("linear-probe", "baseline", None, 0.80),
                    row("l1 grounded", "ours", 5.0, ours_acc + 0.01 * s, val=0.7),
                    row("l1 ungrounded redesign", "ours", 5.0, 0.9, val=0.99, grounding=0.0),
                    row("Sparse-CBM l1 (reference)", "reference", 5.0, 0.6),
                    row("random CBL (VLG-CBM baseline)", "reference", 5.0, 0.55)]
                for s in (0, 1, 2)}
    summary = [
        {"method": "linear-probe", "nec": None, "kind": "baseline", "accuracy": [0.8, 0.0]},
        {"method": "l1 grounded", "nec": 5.0, "kind": "ours", "accuracy": [ours_acc + 0.01, 0.02],
         "unit_fidelity_median": [0.95, 0.01], "random_bank_gap": [0.05, 0.01],
         "faithful_cbm": True},
        {"method": "l1 ungrounded redesign", "nec": 5.0, "kind": "ours",
         "accuracy": [0.9, 0.0], "faithful_cbm": False},
        {"method": "Sparse-CBM l1 (reference)", "nec": 5.0, "kind": "reference",
         "accuracy": [0.6, 0.01], "faithful_cbm": ref_faithful},
        {"method": "random CBL (VLG-CBM baseline)", "nec": 5.0, "kind": "reference",
         "accuracy": [0.55, 0.01], "faithful_cbm": False}]
    return {"per_seed": per_seed, "summary": summary}


def test_the_headline_sentence_follows_the_numbers() -> None:
    docs = load("faithfulness_docs")
    _, below = docs.headline_row("space", table(0.70, ref_faithful=True))
    assert "9.0 ± " in below and "below the dense probe" in below
    assert "Sparse-CBM l1 (reference) (0.600)" in below and "random baseline reaches 0.550" in below
    _, above = docs.headline_row("space", table(0.85, ref_faithful=False))
    assert "above the dense probe" in above
    assert "no reference meets the faithful-CBM bar" in above


def test_the_ungrounded_redesign_is_never_the_best_grounded_row() -> None:
    docs = load("faithfulness_docs")
    cells, _ = docs.headline_row("space", table(0.70, True))
    assert "(l1 grounded)" in cells and "redesign" not in cells


def test_the_headline_names_the_spaces_not_rerun(tmp_path: Path) -> None:
    docs = load("faithfulness_docs")
    assert docs.headline(tmp_path) is None
    t = table(0.7, True)
    (tmp_path / "bench_faithfulness_robots.json").write_text(json.dumps({"robots_text": t}))
    partial = docs.headline(tmp_path)
    assert partial is not None and partial.count("not rerun") == 3
    for name, body in (("fashion", {"fashion_mnist": t}),
                       ("idsprites", {"idsprites": {"linear map (LiMBeR)": t, "ConSE": t}}),
                       ("robots", {"robots_text": t})):
        (tmp_path / f"bench_faithfulness_{name}.json").write_text(json.dumps(body))
    block = docs.headline(tmp_path)
    assert block is not None and block.count("\n- ") == 4
    assert all(f"| {label} |" in block for label, _, _ in docs.SPACES)


@pytest.mark.parametrize("delta", [+0.2, -0.2])
def test_the_section_summary_counts_paired_wins_from_the_differences(delta: float) -> None:
    pytest.importorskip("torch")
    bench = load("bench_faithfulness")
    pair = {"nec": 5.0, "accuracy": {"differences": [delta, delta + 0.01, delta - 0.01],
                                     "mean": delta, "ci95": 0.02}}
    words = bench.summary_words(copy.deepcopy(table(0.7, True)["summary"]), [pair])
    last = words[-1]
    assert ("1 of 1 (ours, reference) pairs are more accurate" in last) == (delta > 0)
    assert ("0 less accurate" in last) == (delta > 0)


def test_rows_whose_control_refits_failed_are_named() -> None:
    docs = load("faithfulness_docs")

    def r(seed: int, failed: int) -> dict[str, Any]:
        return {"method": "LF-CBM (reference)", "nec_requested": 5.0,
                "faithfulness": {"failed_controls": ["the filter drops every concept"] * failed,
                                 "n_control_banks": 5 - failed}}

    record = {"idsprites": {"ConSE": {"per_seed": {"0": [r(0, 0)]}},
                            "linear map (LiMBeR)": {"per_seed": {"0": [r(0, 4)],
                                                                 "1": [r(1, 5)]}}}}
    notes = docs.failed_control_notes(record)
    assert notes == ["linear map (LiMBeR): LF-CBM (reference) (NEC=5): 9 of 10 control refits "
                     "over 2 seeds could not be fitted (the random-bank gap needs at least 2 "
                     "per seed); first: the filter drops every concept"]
    assert docs.failed_control_notes({"robots_text": {"per_seed": {"0": [r(0, 0)]}}}) == []
