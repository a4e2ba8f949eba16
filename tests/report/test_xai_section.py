"""A run that records the concept-XAI metrics (``metrics["xai_metrics"]``) gets a report
section with their figure and table; a run without them gets none."""

from __future__ import annotations

from pathlib import Path

import pytest

from conceptlab.errors import ConceptlabError
from conceptlab.report.plots import xai_metrics_figure
from conceptlab.utils.io import read_json, write_json_atomic
from conceptlab.workflows.report import build_report
from tests.report.test_report import image_folder, write_run

RECORD = {"models": {"l1, NEC 5": {"cgim1": [0.58, 0.04], "cem@1": [0.972, 0.029],
                                   "clm@1,a=3": [0.911, 0.014]},
                     "l1, dense": {"cgim1": 0.385, "cem@1": 0.955, "clm@1,a=3": 0.896}},
          "chance": {"cem": 0.319, "clm,a=3": 0.08}}


def test_the_xai_metrics_section_shows_figure_and_table(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", image_folder(tmp_path / "images"))
    plain = build_report([run], tmp_path / "a.html").read_text()
    assert "Concept existence and location" not in plain
    metrics = read_json(run / "metrics.json")
    metrics["xai_metrics"] = RECORD
    write_json_atomic(run / "metrics.json", metrics)
    html = build_report([run], tmp_path / "b.html").read_text()
    section = html.split("<h2>Concept existence and location</h2>", 1)[1].split("</section>")[0]
    assert "0.972 ± 0.029" in section and "<td>0.955</td>" in section
    assert section.count('<img src="data:image/png;base64,') == 1
    assert "CEM@l" in section and "chance" in section


def test_the_figure_refuses_nothing_to_draw() -> None:
    assert xai_metrics_figure(RECORD["models"], RECORD["chance"]) is not None
    with pytest.raises(ConceptlabError):
        xai_metrics_figure({})
    with pytest.raises(ConceptlabError):
        xai_metrics_figure({"m": {"accuracy": 0.9}})
