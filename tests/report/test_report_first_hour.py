"""Report fixes from a new user's first hour: every removed concept says its filter and
reason, an empty section says why, the version is recorded and shown, runs that do not share
data or encoder are flagged, and every table sits in its own scrolling box."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conceptlab import __version__
from conceptlab.runs import open_run
from conceptlab.utils.io import read_json, write_json_atomic
from conceptlab.workflows.report import build_report, removal_reason
from tests.report.test_report import image_folder, write_run


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folder(tmp_path_factory.mktemp("images"))


def _edit(path: Path, **changes: object) -> None:
    obj = read_json(path)
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    write_json_atomic(path, obj)


def test_removal_reasons_come_from_what_the_model_recorded() -> None:
    meta = {"method": "cos3", "training": {"unit_selection": {"rule": "validation cos3 "
                                                              "similarity >= 0.45"},
                                           "grounding": {"cutoff": 0.3}}}
    assert removal_reason({"concept": "a", "val_fidelity": 0.12}, meta) == (
        "grounding cutoff (unit k must track concept k)",
        "validation correlation with the concept's score 0.120 < cutoff 0.3")
    filt, why = removal_reason({"concept": "b", "objective_score": 0.2, "val_fidelity": 0.5},
                               meta)
    assert filt == "cos3 unit selection" and "0.200" in why and "cos3 similarity >= 0.45" in why
    assert removal_reason({"filter": "length", "reason": "too long"}, meta) == ("length",
                                                                              "too long")
    assert removal_reason({"concept": "c"}, {})[0] == "unit selection"


def test_removed_concepts_show_filter_and_reason_never_a_question_mark(
        tmp_path: Path, data_root: Path) -> None:
    run = write_run(tmp_path / "run", data_root)
    meta_path = run / "model" / "model.json"
    meta = read_json(meta_path)
    meta["dropped_concepts"] = [{"concept": "dropped one", "val_fidelity": 0.05}]
    meta.setdefault("training", {})["grounding"] = {"cutoff": 0.2}
    write_json_atomic(meta_path, meta)
    html = build_report([run], tmp_path / "r.html").read_text()
    removed = html.split("Removed concepts", 1)[1].split("</table>", 1)[0]
    assert "dropped one" in removed and "grounding cutoff" in removed
    assert "0.050 &lt; cutoff 0.2" in removed
    assert "<td>?</td>" not in removed


def test_a_missing_intervention_curve_is_explained(tmp_path: Path, data_root: Path) -> None:
    run = write_run(tmp_path / "run", data_root)
    with_curve = build_report([run], tmp_path / "a.html").read_text()
    assert "No intervention curve" not in with_curve
    _edit(run / "metrics.json", intervention_curve=None)
    html = build_report([run], tmp_path / "b.html").read_text()
    assert "No intervention curve" in html and "has no ground-truth concept labels" in html
    (run / "explanations.json").unlink()
    assert "No explained decisions" in build_report([run], tmp_path / "c.html").read_text()


def test_the_version_is_recorded_in_every_run_and_shown(tmp_path: Path,
                                                        data_root: Path) -> None:
    with open_run("probe", tmp_path / "m") as run:
        metrics = run.finish({"command": "probe"})
    assert metrics["version"] == __version__
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["version"] == __version__
    run = write_run(tmp_path / "run", data_root)
    _edit(run / "metrics.json", version="9.9.9")
    assert "<td>9.9.9</td>" in build_report([run], tmp_path / "v.html").read_text()
    _edit(run / "metrics.json", version=None)
    meta = read_json(run / "model" / "model.json")
    assert meta["conceptlab_version"] == __version__  # the saved model records it too
    meta.pop("conceptlab_version")
    write_json_atomic(run / "model" / "model.json", meta)
    assert "not recorded by the run" in build_report([run], tmp_path / "w.html").read_text()


def test_runs_that_do_not_share_data_or_encoder_are_flagged(tmp_path: Path,
                                                            data_root: Path) -> None:
    a = write_run(tmp_path / "a", data_root)
    b = write_run(tmp_path / "b", data_root, nec=None)
    same = build_report([a, b], tmp_path / "same.html").read_text()
    assert "not comparable" not in same
    _edit(b / "metrics.json", data="fashion-mnist", encoder="conse")
    html = build_report([a, b], tmp_path / "diff.html").read_text()
    side = html.split("Runs side by side", 1)[1].split("</section>", 1)[0]
    assert "do not share their data" in side and "do not share their encoder" in side


def test_every_table_sits_in_a_scrolling_box(tmp_path: Path, data_root: Path) -> None:
    run = write_run(tmp_path / "run", data_root)
    html = build_report([run, run], tmp_path / "t.html").read_text()
    tables = re.findall(r"<table", html)
    boxed = re.findall(r'<div class="tablebox[^"]*"><table', html)
    assert tables and len(boxed) == len(tables)
    assert re.search(r"\.tablebox \{[^}]*overflow-x: auto", html)
