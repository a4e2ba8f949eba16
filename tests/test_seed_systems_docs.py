"""The seed systems' README rows are computed from benchmark JSON: change a number, and the
words and numbers change with it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.script_loading import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_systems_docs.py"


def load() -> Any:
    return load_script(SCRIPT, "_seed_docs")


def fake() -> tuple[dict[str, Any], dict[str, Any]]:
    row = {"nDCG@10": [0.9, 0.01], "unit_fidelity_median": [0.95, 0.01]}
    match = {"command": "x", "datasets": [{
        "data": "idsprites", "summary": {"explicit": row, "cosine": {"nDCG@10": [0.8, 0]},
                                         "dense": {"nDCG@10": [0.95, 0.01]}},
        "paired_explicit_minus_cosine_nDCG@10": [0.1, 0.02],
        "paired_explicit_minus_dense_nDCG@10": [-0.05, 0.01]}]}
    edit = {"success": [0.9, 0.01], "consistency": [0.8, 0.01], "both": [0.7, 0.01]}
    lancet = {"command": "y", "n_dictionary": 25, "summary": {
        "active_per_input": [5.0, 1.0],
        "presence_auroc": [0.97, 0.01], "cosine_auroc": [0.93, 0.01],
        "paired_presence_minus_cosine": [0.04, 0.01], "edits": {"transplant": edit},
        "best_fixed_by_test_both": "fixed 0.5",
        "paired_transplant_minus_best_fixed_both": [0.0, 0.02]}}
    return match, lancet


def test_rows_follow_the_numbers():
    mod = load()
    match, lancet = fake()
    text = mod.readme_block(match, lancet, None)
    assert "0.900 ± 0.010" in text and "beats cosine" in text and "is below the dense" in text
    assert "matches the best fixed strength" in text and "benchmark not measured" in text
    match2, lancet2 = copy.deepcopy(match), copy.deepcopy(lancet)
    match2["datasets"][0]["paired_explicit_minus_dense_nDCG@10"] = [0.03, 0.01]
    lancet2["summary"]["paired_transplant_minus_best_fixed_both"] = [-0.1, 0.02]
    text2 = mod.readme_block(match2, lancet2, None)
    assert "beats the dense" in text2 and "is below the best fixed strength" in text2
    shift = {"agreement_recovery": {"tuned head, concept shift vectors": [0.5, 0.1],
                                    "tuned head, random directions (control)": [0.1, 0.1]},
             "shift_stats": [{"mean_improved_cosine": 0.02}]}
    text3 = mod.readme_block(match, lancet, None, shift)
    assert "0.500 ± 0.100 of the decisions" in text3 and "they beat the control" in text3
    shift["agreement_recovery"]["tuned head, concept shift vectors"] = [0.2, 0.1]
    assert "do not separate from the control" in mod.readme_block(match, lancet, None, shift)


def test_block_replaced_in_place(tmp_path):
    mod = load()
    page = tmp_path / "p.md"
    page.write_text("# T\n\n## From Python\nbody\n")
    mod.replace_block(page, f"{mod.START}\nA\n{mod.END}", "## From Python")
    mod.replace_block(page, f"{mod.START}\nB\n{mod.END}", "## From Python")
    text = page.read_text()
    assert text.count(mod.START) == 1 and "\nB\n" in text and "\nA\n" not in text
    assert text.index(mod.START) < text.index("## From Python")


def test_shift_section_and_changes_follow_the_numbers():
    mod = load()
    match, lancet = fake()
    shift = {"k": 10, "threshold": 0.5,
             "agreement_recovery": {"tuned head, concept shift vectors": [0.5, 0.1],
                                    "tuned head, random directions (control)": [0.1, 0.1]},
             "shift_stats": [{"mean_improved_cosine": 0.02}],
             "changes_summary": {"kept": [7.0, 1.0], "lost": [3.0, 1.0], "reached": [0.0, 0.0]}}
    row = mod.readme_block(match, lancet, None, shift)
    assert "`conceptlab shift`" in row and "command pending" not in row
    assert "7.0 kept and 3.0 lost (= gained) per seed at cosine >= 0.5, none of the lost" in row
    shift["changes_summary"]["reached"] = [2.0, 1.0]
    assert "2.0 of the lost reached" in mod.readme_block(match, lancet, None, shift)
    block = mod.docs_block("M", "L", match, lancet, None, "SHIFT TABLE")
    assert "### Fine-tuning shift vectors" in block and "SHIFT TABLE" in block
    assert "bench_shift.png" in block
    assert "Fine-tuning shift vectors" not in mod.docs_block("M", "L", match, lancet)
