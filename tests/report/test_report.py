"""The HTML report (``conceptlab report``) read from saved run folders: self-contained, the
inputs behind decisions, a heatmap scale one cell cannot wash out, faithfulness warnings,
readable numbers and provenance, several runs side by side."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from conceptlab.cli import app
from conceptlab.data.base import build_dataset
from conceptlab.data.splits import make_splits
from conceptlab.report.html import external_references, fmt_cell, render_report
from conceptlab.report.plots import robust_limit, used_columns, weight_heatmap_figure
from conceptlab.utils.io import write_json_atomic
from conceptlab.workflows.report import build_report, pick_decisions, read_run, trust_warnings
from tests.report.tiny_explorer import CLASSES, fit_tiny, solid

runner = CliRunner()


def image_folder(root: Path) -> Path:
    """train/ and test/ folders of solid-colour PNGs, 4 classes."""
    for split, n in (("train", 4), ("test", 3)):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                solid(c, 20, jitter=3 * i).save(root / split / name / f"{i}.png")
    return root


def write_run(out: Path, data_root: Path, *, faithfulness: dict[str, Any] | None = None,
              nec: float | None = 2.0) -> Path:
    """A run folder as `fit` writes it: metrics.json (with the real split record of the image
    folder), model/, encoder.json and explanations.json (synthetic embeddings)."""
    model, data, _ = fit_tiny(nec=nec)
    spec = f"folder:{data_root}"
    splits = make_splits(build_dataset(spec), n_test=None, seed=0)
    n_test = len(splits.test)
    Xs, ys = data.X_test[:n_test], splits.test.labels  # embeddings stand in for the images
    exps = [{"test_index": i, "true_class": CLASSES[int(ys[i])], **e}
            for i, e in zip(pick_decisions(ys, model.predict(Xs)),
                            model.explain(Xs[pick_decisions(ys, model.predict(Xs))]),
                            strict=True)]
    model.save(out / "model")
    write_json_atomic(out / "encoder.json", {"spec": "synthetic", "options": {},
                                             "fingerprint": "fp-tiny"})
    write_json_atomic(out / "explanations.json", exps)
    metrics: dict[str, Any] = {
        "command": "fit", "method": "l1", "accuracy": float((model.predict(Xs) == ys).mean()),
        "nec": nec, "nec_requested": nec, "n_concepts": model.n_concepts,
        "mean_active_concepts": 1.9876, "fit_seconds": 0.00012, "n_train": 16, "n_val": 4,
        "n_test": n_test, "encoder": "synthetic", "encoder_fingerprint": "fp-tiny",
        "data": spec, "seed": 0, "splits": splits.record,
        "config": {"data": spec, "encoder": "synthetic", "n_train": None, "n_val": None,
                   "n_test": None, "val_fraction": 0.1, "seed": 0, "data_options": {}},
        "intervention_curve": [{"n_corrected": k, "accuracy": 0.5 + 0.1 * k} for k in range(4)],
        "concepts": {"origin": "file:x", "n_concepts": model.n_concepts, "source": "x",
                     "warnings": [],
                     "filters": {"steps": [{"filter": "length", "removed": [
                         {"concept": "a very long concept", "filter": "length",
                          "reason": "41 characters > 30"}]}]}},
    }
    if faithfulness is not None:
        metrics["faithfulness"] = faithfulness
    write_json_atomic(out / "metrics.json", metrics)
    return out


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    return write_run(tmp_path_factory.mktemp("run"), data_root,
                     faithfulness={"unit_fidelity_median": 0.81234, "random_bank_gap": 0.4,
                                   "random_bank_agreement": 0.31, "trusted": True,
                                   "warnings": []})


def test_report_is_self_contained_and_shows_the_inputs(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "report.html"
    build_report([run], out)
    html = out.read_text()
    assert external_references(html) == []
    assert not re.search(r"https?://", html)  # no external URL at all
    for name in ("model.safetensors", "explanations.json", ".png\"", str(run)):
        assert f'src="{name}' not in html and f"href=\"{name}" not in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    exps = json.loads((run / "explanations.json").read_text())
    assert html.count('alt="input"') == len(exps)  # every decision shows its input
    wrong = sum(e["prediction"] != e["true_class"] for e in exps)
    assert html.count('<span class="tag wrong">') == wrong
    assert html.count('<span class="tag right">') == len(exps) - wrong
    # the moved file still renders: nothing it needs lies beside it
    moved = tmp_path / "moved.html"
    moved.write_text(html)
    assert external_references(moved.read_text()) == []


def test_external_references_are_caught() -> None:
    from conceptlab.report.html import Figure, Section

    bad = tmp = Path("nowhere.png")
    html = render_report("t", [Section("s", figures=[Figure(path=bad)])])
    assert external_references(html) == []  # a missing figure is left out, not linked
    assert external_references('<img src="x.png"><a href="https://e.org">') == \
        ["x.png", "https://e.org"]
    assert external_references("<style>b{background:url(pic.png)}</style>") == ["pic.png"]
    assert tmp.name == "nowhere.png"


def test_report_tables_are_readable(run: Path, tmp_path: Path) -> None:
    html = build_report([run], tmp_path / "r.html").read_text()
    assert "5.0000" not in html and "0.0000" not in html
    assert "<td>2</td>" in html  # NEC 2.0 prints as 2
    assert "<td>1.99</td>" in html  # mean active concepts to 3 significant figures
    assert "median correlation of each unit" in html and "<td>0.8123</td>" in html
    assert 'class="banner"' not in html  # trusted, fidelity fine: no warning
    assert "encoder fingerprint" in html and "fp-tiny" in html  # provenance as a table
    assert '"encoder_fingerprint"' not in html  # not a raw JSON dump
    assert "a very long concept" in html and "41 characters &gt; 30" in html
    assert "Test-time intervention" in html
    assert [fmt_cell(v) for v in (5.0, 0.80512, 0.00012, 812.4, None, True, 12345)] == \
        ["5", "0.8051", "0.00012", "812", "-", "yes", "12,345"]


@pytest.mark.parametrize(("faith", "words"), [
    ({"trusted": False, "warnings": ["units are free"]}, ["trusted = no", "units are free"]),
    ({"unit_fidelity_median": 0.2}, ["median unit fidelity 0.20 &lt; 0.5"]),
    ({"trusted": False, "warnings": ["class links fail"], "claims": {
        "class_links_make_sense": {"status": "fail", "question": "q?", "reason": "fail: x"},
        "decisions_need_concepts": {"status": "undecided", "question": "n?",
                                    "reason": "undecided: y"}}},
     ["trusted = no", "class links fail"]),
])
def test_untrusted_models_carry_a_visible_warning(tmp_path: Path, data_root: Path,
                                                  faith: dict[str, Any],
                                                  words: list[str]) -> None:
    run = write_run(tmp_path / "run", data_root, faithfulness=faith)
    html = build_report([run], tmp_path / "r.html").read_text()
    banner = html[html.index('class="banner"'):html.index("<h2>")]  # above the first section
    for w in words:
        assert w in banner
    assert 'class="card bad"' in html  # the failed check is also marked among the headlines
    assert len(trust_warnings({"faithfulness": faith})) == len(words)


def test_changed_data_shows_decisions_without_wrong_inputs(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "images")
    run = write_run(tmp_path / "run", root)
    solid(1, 20).save(root / "test" / "cat" / "0.png")  # a test file changed after the fit
    loaded = read_run(run)
    assert loaded.inputs == {} and "changed since the run" in loaded.input_note
    html = build_report([run], tmp_path / "r.html").read_text()
    assert 'alt="input"' not in html and "input not available" in html


def test_heatmap_shows_used_concepts_on_a_robust_scale() -> None:
    rng = np.random.default_rng(0)
    w = np.zeros((4, 30))
    w[:, :10] = rng.normal(size=(4, 10))
    w[2, 3] = 800.0  # one extreme cell, as a Gumbel head can have
    assert list(used_columns(w)) == list(range(10))
    vmax = robust_limit(w)
    assert vmax < 10 and vmax > np.percentile(np.abs(w[:, :10]), 50)
    fig = weight_heatmap_figure(w, CLASSES, [f"c{k}" for k in range(30)])
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (4, 10)
    lo, hi = ax.images[0].get_clim()
    assert hi == pytest.approx(vmax) and lo == pytest.approx(-vmax)
    assert any(t.get_text() == "800" for t in ax.texts)  # the true value is printed


def test_several_runs_side_by_side_and_the_cli(tmp_path: Path, data_root: Path,
                                               run: Path) -> None:
    dense = write_run(tmp_path / "dense", data_root, nec=None)
    out = tmp_path / "cmp.html"
    result = runner.invoke(app, ["report", str(run), str(dense), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Runs side by side" in html and "dense" in html
    assert html.count("<h2>") > 2 * 5 and external_references(html) == []
    # one folder: the report goes beside its results
    assert runner.invoke(app, ["report", str(dense)]).exit_code == 0
    assert (dense / "report.html").is_file()
    fail = runner.invoke(app, ["report", str(run), str(dense)])
    assert fail.exit_code == 2 and "--out" in fail.output
    fail = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert fail.exit_code == 2 and "no such folder" in fail.output
    (tmp_path / "empty").mkdir()
    fail = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert fail.exit_code == 2 and "no metrics.json" in fail.output


def test_pick_decisions_takes_right_and_wrong_ones() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 0, 0])
    assert pick_decisions(y, p) == [0, 1, 2, 4]
    assert pick_decisions(y, p, n_right=1, n_wrong=1) == [0, 1]


def test_the_profile_shows_a_badge_per_claim_and_a_finding(tmp_path: Path, data_root: Path
                                                           ) -> None:
    claims = {"units_follow_concepts": {"status": "pass", "question": "do the units follow "
                                        "their concepts?", "reason": "pass: fidelity 0.91"},
              "decisions_need_concepts": {"status": "undecided", "question": "do the decisions "
                                          "need these concepts?", "reason": "undecided: gap "
                                          "+0.1 [-0.2, +0.4] points"}}
    faith = {"trusted": True, "warnings": [], "claims": claims,
             "findings": ["any directions would do as well for accuracy"]}
    run = write_run(tmp_path / "run", data_root, faithfulness=faith)
    html = build_report([run], tmp_path / "r.html").read_text()
    assert "Audit profile" in html and "fidelity 0.91" in html
    assert "units follow their concepts" in html and "decisions need these concepts" in html
    assert "Finding: any directions would do" in html
    assert 'class="banner"' not in html  # an undecided necessity is a finding, not a warning
    assert html.count('class="card bad"') == 1  # the undecided claim's badge
