"""The vocabulary-size section's words come from its numbers (bench_vocab_size.summary_words)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    return load_script(ROOT / "benchmarks" / "bench_vocab_size.py", "bench_vocab_size_words")


def rows(acc: dict[int, float], *, fidelity: float = 0.95, gap: float = -0.01,
         spread: float = 0.001) -> list[dict[str, Any]]:
    """Three seeds per size and head; accuracy ``acc[size]`` (NEC = 5 five points lower)."""
    out = []
    for size, a in acc.items():
        for nec, shift in ((None, 0.0), (5.0, -0.05)):
            for seed, noise in enumerate((-spread, 0.0, spread)):
                out.append({"size": size, "n_concepts": size, "nec": nec, "seed": seed,
                            "accuracy": a + shift + noise, "scores_probe_accuracy": a,
                            "unit_fidelity_median": fidelity, "name_match_rate": 0.97,
                            "random_bank_gap": gap + noise, "random_bank_agreement": 0.9})
    return out


def test_rising_accuracy_is_called_a_lift(bench: Any) -> None:
    words = bench.summary_words(rows({66: 0.70, 500: 0.80}))
    assert words.startswith("More concepts lift the cap")
    assert "rises from 0.700 (66) to 0.800 (500)" in words
    assert "keep meaning their scores (fidelity >= 0.95" in words
    assert "not above zero at any size" in words


def test_flat_accuracy_is_not_a_lift(bench: Any) -> None:
    words = bench.summary_words(rows({66: 0.75, 500: 0.751}, spread=0.01))
    assert words.startswith("More concepts do not lift the cap")
    assert "stays within the seeds' spread" in words


def test_falling_fidelity_and_a_positive_gap_change_the_words(bench: Any) -> None:
    words = bench.summary_words(rows({66: 0.70, 150: 0.72}, fidelity=0.6, gap=0.05))
    assert "drift from their scores" in words and "lowest fidelity 0.60" in words
    assert "Named directions beat random ones" in words and "at 66, 150 concepts" in words


def test_write_docs_replaces_only_its_block(bench: Any, tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text("# before\n\n<!-- vocab-size:start -->\nold\n<!-- vocab-size:end -->\n\n"
                    "# after\n", encoding="utf-8")
    record = {"rows": rows({66: 0.70, 500: 0.80}), "split": {"train": 9, "val": 3, "test": 5}}
    bench.write_docs(record, page)
    text = page.read_text(encoding="utf-8")
    assert "old" not in text and text.startswith("# before") and text.rstrip().endswith("# after")
    assert "(9 train / 3 val / 5 test)" in text and "| 500 | 0.800 | NEC=5 |" in text
