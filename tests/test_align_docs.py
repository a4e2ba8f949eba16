"""The joint-space section's goals and weak measures come from its numbers (bench_align)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("colour", "size", "position", "shape", "tilt")
CONCEPTS = {"a red shape": "colour", "a large shape": "size", "a shape on the left": "position",
            "a square": "shape", "a tilted shape": "tilt"}


@pytest.fixture(scope="module")
def bench() -> Any:
    pytest.importorskip("torch")
    return load_script(ROOT / "benchmarks" / "bench_align.py", "bench_align_words")


def space(r5: float, auroc: dict[str, float], real: float, nonsense: float,
          seed: int) -> dict[str, Any]:
    jitter = 0.002 * seed
    return {"R@1": r5 / 3, "R@5": r5 + jitter, "zero_shot_accuracy": 0.5 + r5 / 2,
            "n_gallery_texts": 1000,
            "auroc": {c: auroc[g] + jitter for c, g in CONCEPTS.items()},
            "auroc_groups": {g: auroc[g] + jitter for g in GROUPS},
            "cbm_real_nec5": real + jitter, "cbm_nonsense_nec5": nonsense - jitter,
            "cbm_real_dense": real, "cbm_nonsense_dense": nonsense}


def runs(*, map_r5: float = 0.7, map_size: float = 0.95, nonsense: float = 0.93
         ) -> list[dict[str, Any]]:
    chance = dict.fromkeys(GROUPS, 0.5)
    good = {"colour": 0.99, "size": map_size, "position": 0.7, "shape": 0.98, "tilt": 0.8}
    ridge = {**good, "size": 0.8, "position": 0.6, "tilt": 0.75}
    return [{"seed": s, "nonsense_texts": ["xq"] * 18, "encode_seconds": 1.0,
             "rows": {"conse": space(0.01, chance, 0.5, 0.55, s),
                      "ridge": space(0.55, ridge, 0.99, nonsense, s),
                      "contrastive": space(map_r5, good, 0.99, nonsense, s)}}
            for s in range(3)]


def test_goals_met_and_missed_follow_the_numbers(bench: Any) -> None:
    words = "\n".join(bench.goal_words(runs()))
    assert "at least 2x ConSE's: **met**" in words
    assert "**met by contrastive**" in words and "ridge: colour 0.992, size 0.802" in words
    assert "nonsense one at NEC=5: **not met**" in words
    assert "real vocabulary is at the ceiling" in words and "18 fixed directions" in words


def test_changed_numbers_change_the_words(bench: Any) -> None:
    words = "\n".join(bench.goal_words(runs(map_r5=0.015, map_size=0.85, nonsense=0.7)))
    assert "at least 2x ConSE's: **not met**" in words
    assert "**not met** by any space" in words
    assert "**met in ridge, contrastive**" in words and "ceiling" not in words


def test_weak_measures_name_the_lowest_groups(bench: Any) -> None:
    words = bench.weak_words(runs())[0]
    assert "ridge: position 0.60, tilt 0.75" in words
    assert "contrastive: position 0.70, tilt 0.80" in words
    assert "lowest concepts: \"a shape on the left\" 0.70" in words
    assert "as good as the contrastive map only on colour AUROC, shape AUROC." in words


def test_docs_block_replaces_only_its_span(bench: Any, tmp_path: Path) -> None:
    from conceptlab.utils.docblocks import splice_file

    page = tmp_path / "b.md"
    page.write_text(f"# a\n\n{bench.START}\nold\n{bench.END}\n\n# b\n", encoding="utf-8")
    result = {"runs": runs(), "args": {"necs": [5.0]}, "seconds": 12.0,
              "machine": {"cpus": 2}}
    splice_file(page, bench.docs_block(result), bench.START, bench.END)
    text = page.read_text(encoding="utf-8")
    assert "old" not in text and "# b" in text and "Measured in 12 s on 2 cores" in text
    assert "| CBM real, NEC=5 |" in text
