"""The docs/benchmarks.md section of the CEM benchmark is written from the benchmark's JSON:
the checked-in section equals what the JSON gives, and other numbers give other words."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "benchmarks" / "results" / "bench_cem.json"


def _bench() -> ModuleType:
    return load_script(ROOT / "benchmarks" / "bench_cem.py", "_bench_cem")


def test_docs_section_is_the_json_rendered() -> None:
    bench = _bench()
    result = json.loads(RESULT.read_text())
    assert set(result["datasets"]) == {"robot texts", "idsprites"}
    assert bench.docs_section(result) in (ROOT / "docs/benchmarks.md").read_text()


def test_the_words_follow_the_numbers(tmp_path: Path) -> None:
    bench = _bench()
    result = json.loads(RESULT.read_text())
    changed = copy.deepcopy(result)
    ds = changed["datasets"]["robot texts"]
    ds["paired"]["accuracy"] = [-0.05, 0.01]           # interval below 0: lower
    ds["paired"]["concept_accuracy"] = [0.04, 0.01]    # above 0: higher
    ds["paired"]["all_corrected_accuracy"] = [0.01, 0.02]  # straddles 0: no different
    ds["summary"][bench.CEM]["soft_hard_gap"] = [0.2, 0.01]
    ds["summary"][bench.CBM]["accuracy"] = [0.5, 0.25]
    text = bench.prose_dataset("robot texts", ds)
    assert "task accuracy is lower than the joint CBM's (-0.050 ± 0.010" in text
    assert "concept accuracy higher than the CBM's (+0.040 ± 0.010)" in text
    assert "every concept corrected its accuracy is no different from the CBM's" in text
    assert f"{bench.CEM} +0.200 (above the 0.05 leakage flag)" in text
    assert "| 0.500 ± 0.250 |" in bench.markdown(changed)
    assert bench.prose(changed) != bench.prose(result)
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n")
    bench.write_docs(result, docs)
    bench.write_docs(changed, docs)  # rewrites its own section, once
    assert docs.read_text().count(bench.START) == 1 and "lower than the joint" in \
        docs.read_text()


@pytest.mark.parametrize(("diff", "word"), [((0.02, 0.01), "higher than"),
                                            ((-0.02, 0.01), "lower than"),
                                            ((0.02, 0.03), "no different from")])
def test_verdict_reads_the_paired_interval(diff: tuple[float, float], word: str) -> None:
    assert _bench().verdict(diff) == word


def test_the_figure_has_one_panel_per_data_set() -> None:
    bench = _bench()
    result = json.loads(RESULT.read_text())
    fig = bench.curves_figure(result)
    assert len(fig.axes) == len(result["datasets"])
    for ax, ds in zip(fig.axes, result["datasets"].values(), strict=True):
        assert len(ax.get_lines()) == len(ds["curves"])
