"""The CRAFT-patches section's sentence comes from its paired differences: flip the numbers and
the words flip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load() -> Any:
    pytest.importorskip("torch")
    return load_script(BENCHMARKS / "bench_craft_patches.py", "_craft_patches")


def record(bench: Any, grid_deletion: float, grid_level: float = 0.5) -> dict[str, Any]:
    base = {c: 0.5 for c in bench.COLUMNS}
    grid = [{**base, "occlusion deletion_auc": grid_deletion + 0.001 * s,
             "random deletion_auc": grid_level + 0.001 * s,
             "random insertion_auc": grid_level + 0.002 * s} for s in range(3)]
    crops = [dict(base) for _ in range(3)]
    labels = list(bench.RECIPES)
    return {"seeds": [0, 1, 2], "k": 10, "n_per_class": 100, "n_images": 30, "seconds": 60.0,
            "per_seed": {labels[0]: grid, labels[1]: crops}}


def test_the_verdict_follows_the_paired_differences() -> None:
    bench = load()
    assert "occlusion deletion_auc: grid patches better" in bench.verdict(record(bench, 0.3))
    assert "occlusion deletion_auc: grid patches worse" in bench.verdict(record(bench, 0.7))
    assert "sobol mu_fidelity: no difference shown" in bench.verdict(record(bench, 0.3))


def test_a_shifted_probability_level_is_named() -> None:
    bench = load()
    assert "Random orders' AUCs differ" not in bench.verdict(record(bench, 0.3))
    words = bench.verdict(record(bench, 0.3, grid_level=0.2))
    assert "Random orders' AUCs differ between the recipes too (deletion -0.299" in words
    assert "leads over random orders compare the orders" in words


def test_the_section_splices_once(tmp_path: Path) -> None:
    bench = load()
    from conceptlab.utils.docblocks import splice_file

    doc = tmp_path / "b.md"
    doc.write_text("# b\n\n### DN-CBM on the comparison x\n")
    for value in (0.3, 0.7):
        splice_file(doc, bench.docs_section(record(bench, value)), bench.START, bench.END,
                    before="### DN-CBM on the comparison")
    text = doc.read_text()
    assert text.count(bench.START) == 1 and "grid patches worse" in text
    assert text.index(bench.END) < text.index("### DN-CBM")
