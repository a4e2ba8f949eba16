"""Concepts kept, lost and gained in fine-tuning, on planted data where the answer is known:
three clusters; fine-tuning nudges two of them and sends the third to a new direction. The
third must be the one lost (its partner gained), reached by its full shift vector and not by
a third of it; the run saves the figure and the report shows it (or says why not)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conceptlab.shift import ShiftError, concept_changes, concept_shift
from conceptlab.workflows.report import build_report
from conceptlab.workflows.shift import run_shift


def planted(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[10.0, 0, 0, 0, 0], [0, 10, 0, 0, 0], [0, 0, 10, 0, 0]])
    moves = np.array([[0.0, 0, 0, 3, 0], [0, -10, 0, 0, 10], [1, 1, 0, 0, 0]])  # 1: new way
    label = np.repeat(np.arange(3), n // 3)
    base = centres[label] + rng.normal(0, 0.3, (n, 5))
    tuned = base + moves[label] + rng.normal(0, 0.05, (n, 5))
    return base.astype(np.float32), tuned.astype(np.float32), label


def _concept_of(assignment: np.ndarray, label: np.ndarray, cluster: int) -> int:
    return int(np.bincount(assignment[label == cluster], minlength=3).argmax())


def test_the_concept_sent_elsewhere_is_lost_gained_and_reached_by_its_shift() -> None:
    base, tuned, label = planted()
    s = concept_shift(base, tuned, k=3, seed=0)
    ch = concept_changes(s, threshold=0.5)
    moved = _concept_of(s.assignment, label, 1)
    assert ch["lost"] == [moved] and ch["reached"] == [moved]
    assert sorted(ch["kept"]) == sorted({0, 1, 2} - {moved})
    assert ch["gained"] == [int(s.matching[moved])]
    assert ch["cosine_original"][moved] < 0.1 and ch["cosine_shifted"][moved] > 0.99
    assert ch["status"][moved] == "lost, reached by its shift"
    np.testing.assert_allclose(sum(ch["share"]), 1.0)


def test_a_partial_shift_does_not_reach_the_gained_concept() -> None:
    base, tuned, label = planted(seed=1)
    partial = concept_shift(base, tuned, k=3, seed=0, alpha=0.3)
    ch = concept_changes(partial, threshold=0.5)
    assert ch["lost"] == [_concept_of(partial.assignment, label, 1)]
    assert ch["reached"] == [] and ch["status"].count("lost") == 1
    everything = concept_changes(concept_shift(base, tuned, k=3, seed=0), threshold=-1.0)
    assert everything["lost"] == [] and everything["gained"] == []
    with pytest.raises(ShiftError, match="threshold"):
        concept_changes(concept_shift(base, tuned, k=3, seed=0), threshold=2.0)


def test_the_run_saves_the_figure_and_the_report_shows_it(tmp_path: Path) -> None:
    base, tuned, _ = planted()
    m = run_shift(base, tuned, tmp_path / "run", k=3)
    assert len(m["changes"]["lost"]) == 1 and len(m["changes"]["reached"]) == 1
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["changes"] == m["changes"]
    png = tmp_path / "run" / "shift.png"
    with Image.open(png) as im:
        assert im.size[0] > 300
    html = build_report([tmp_path / "run"], tmp_path / "r.html").read_text()
    section = html.split("Concepts gained and lost in fine-tuning", 1)[1]
    assert "2 of 3 base concepts kept, 1 lost and 1 gained; 1 of the lost reached" in section
    assert "data:image/png;base64," in section.split("</section>", 1)[0]
    png.unlink()
    html = build_report([tmp_path / "run"], tmp_path / "r2.html").read_text()
    assert "No figure: this run folder has no shift.png" in html


@pytest.mark.parametrize(("command", "file", "heading"), [
    ("cab", "cab.png", "Concept association bias against association strength"),
    ("lancet", "edits.png", "Edit success against consistency")])
def test_cab_and_lancet_runs_show_their_figure(tmp_path: Path, command: str, file: str,
                                               heading: str) -> None:
    run = tmp_path / command
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"command": command}))
    html = build_report([run], tmp_path / "a.html").read_text()
    assert heading in html and f"has no {file}" in html
    Image.new("RGB", (40, 30), "red").save(run / file)
    html = build_report([run], tmp_path / "b.html").read_text()
    assert f"has no {file}" not in html
    assert "data:image/png;base64," in html.split(heading, 1)[1].split("</section>", 1)[0]
