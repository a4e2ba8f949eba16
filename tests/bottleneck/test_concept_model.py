"""The ConceptModel protocol: every kind loads through the registry, and predict, explain,
intervene, serve, report and audit work on a DN-CBM run and on a CEM run (tiny real runs:
``tiny_runs``); the saved-model faults closed with it."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conceptlab.bottleneck.concept_model import (
    ConceptModel,
    ConceptModelError,
    intervention_rows,
    load_concept_model,
    logits_from_units,
)
from conceptlab.bottleneck.model import ModelFormatError
from conceptlab.errors import ConceptlabError, FormatError
from tests.bottleneck import tiny_runs

KINDS = ("dncbm", "cem")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONCEPTLAB_CACHE", str(root / "default-cache"))
        mp.setenv("CONCEPTLAB_NO_PROGRESS", "1")
        cache = root / "cache"
        out = {m: tiny_runs.fit_run(root / m, cache, m) for m in KINDS}
        out["cache"] = cache
        out["image"] = tiny_runs.input_image(root, cache)
        yield out


def test_every_kind_loads_through_the_registry(runs: dict[str, Path], tmp_path: Path) -> None:
    from tests.report.tiny_explorer import fit_tiny

    cbm, _, _ = fit_tiny()
    cbm.save(tmp_path / "cbm")
    expected = {"dncbm": "dn-cbm", "cem": "cem"}
    for name, kind in [*expected.items(), ("cbm", "concept_bottleneck_model")]:
        folder = tmp_path / "cbm" if name == "cbm" else runs[name]
        model = load_concept_model(folder)
        assert isinstance(model, ConceptModel) and model.kind == kind
    bad = tmp_path / "bad"
    shutil.copytree(runs["cem"] / "model", bad)
    meta = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**meta, "kind": "cbm-9000"}))
    with pytest.raises(ConceptModelError, match=r"'cbm-9000'.*known kinds: .*cem.*dn-cbm"):
        load_concept_model(bad)
    (bad / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FormatError, match=r"model\.json: JSON nested too deeply"):
        load_concept_model(bad)


@pytest.mark.parametrize("kind", KINDS)
def test_predict_explain_intervene_on_a_saved_run(kind: str, runs: dict[str, Path]) -> None:
    from conceptlab.workflows import cbm

    image = str(runs["image"])
    model, encoder = cbm.load_saved(runs[kind])
    X = encoder.encode_images([__import__("PIL.Image", fromlist=["Image"]).open(image)])
    pred = cbm.predict_saved(runs[kind], [image])
    assert pred[0]["prediction"] == model.class_names[int(model.predict(X)[0])]
    assert pred[0]["probability"] == pytest.approx(float(model.predict_proba(X).max()),
                                                   rel=1e-5)
    exp = cbm.explain_saved(runs[kind], [image], top=1000)[0]
    # an explanation adds up: the logit is the intercept plus every contribution, and it is
    # the model's own logit
    total = exp["intercept"] + sum(c["contribution"] for c in exp["concepts"])
    assert total == pytest.approx(exp["logit"], abs=1e-4)
    U = model.unit_values(X)
    assert exp["logit"] == pytest.approx(float(logits_from_units(model, X, U).max()), abs=1e-4)
    assert {c["state"] for c in exp["concepts"]} <= {"present", "absent"}
    # intervene: the word, its alias and the number give the same answer, with both
    # probability tables
    name = exp["concepts"][0]["concept"]
    low, _ = model.unit_range()
    words = [cbm.intervene_saved(runs[kind], [image], {name: v})[0]
             for v in ("absent", "low", float(low[model.concept_names.index(name)]))]
    assert words[0]["probabilities_after"] == words[1]["probabilities_after"] \
        == pytest.approx(words[2]["probabilities_after"])
    assert words[0]["set_as"] == {name: "absent"} and words[2]["set_as"] == {name: "value"}
    row = words[0]
    assert sum(row["probabilities_before"].values()) == pytest.approx(1.0)
    assert row["before"] == pred[0]["prediction"]
    assert row["probability_after"] == max(row["probabilities_after"].values())
    direct = model.intervene(X, {name: "absent"}, return_proba=True)[0]
    assert list(row["probabilities_after"].values()) == pytest.approx(list(direct), rel=1e-5)
    # bad settings: one line each, before any encoding, no warning leaks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConceptlabError, match="must lie in") as err:
            cbm.intervene_saved(runs[kind], [image], {name: "1e308"})
        assert "\n" not in str(err.value)
        with pytest.raises(ConceptlabError, match="finite"):
            cbm.intervene_saved(runs[kind], [image], {name: "nan"})
    with pytest.raises(ConceptlabError, match="did you mean") as err:
        cbm.intervene_saved(runs[kind], [image], {name[:-1]: "present"})
    assert repr(name) in str(err.value)


@pytest.mark.parametrize("kind", KINDS)
def test_audit_serve_and_report_on_a_saved_run(kind: str, runs: dict[str, Path]) -> None:
    from fastapi.testclient import TestClient

    from conceptlab.workflows.audit import run_audit
    from conceptlab.workflows.report import build_report
    from conceptlab.workflows.serve import build_explorer

    recorded = json.loads((runs[kind] / "metrics.json").read_text())["faithfulness"]
    record = run_audit(runs[kind])
    assert record["claims"] == recorded["claims"]  # same data, same seed: the same profile
    if kind == "cem":
        assert record["required_claim"] == "concepts_mean_words"
        assert record["claims"]["concepts_do_not_leak"]["status"] in ("pass", "fail")
    lines: list[str] = []
    app = build_explorer(runs[kind], say=lines.append)
    assert any(line.startswith("encoding the run's 270 training and 60 test") for line in lines)
    client = TestClient(app)
    model = app.state.explorer.model
    info = client.get("/api/info").json()
    concept = info["concepts"][0]
    assert set(concept) >= {"absent", "present"}
    base = client.post("/api/explain", json={"item": 3}).json()
    X = app.state.explorer.data.X_test[3:4]
    assert base["prediction"] == model.class_names[int(model.predict(X)[0])]
    value = concept["present"]
    moved = client.post("/api/explain", json={"item": 3, "units": {concept["name"]: value}})
    proba = model.intervene(X, {concept["name"]: value}, return_proba=True)[0]
    assert moved.json()["probability"] == pytest.approx(float(proba.max()), rel=1e-5)
    page = build_report([runs[kind]]).read_text()
    assert "concepts mean their words" in page


def test_encoder_json_is_checked_before_any_encoder_loads(runs: dict[str, Path],
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from conceptlab.workflows import cbm

    run = tmp_path / "run"
    shutil.copytree(runs["cem"], run)
    record = json.loads((run / "encoder.json").read_text())
    (run / "encoder.json").write_text(json.dumps({**record, "spec": f"st:{tmp_path}"}))

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an encoder was built from a doctored encoder.json")

    monkeypatch.setattr(cbm, "build_encoder", never)
    with pytest.raises(FormatError, match=r"nothing was loaded.*re-fit"):
        cbm.predict_saved(run, [str(runs["image"])])


def test_cbm_model_json_fields_are_validated(tmp_path: Path) -> None:
    from tests.report.tiny_explorer import fit_tiny

    model, _, _ = fit_tiny()
    model.save(tmp_path / "m")
    meta_file = tmp_path / "m" / "model.json"
    meta = json.loads(meta_file.read_text())
    for field, value, message in (("embedding_dim", 7, "embedding_dim 7"),
                                  ("embedding_dim", "32", "embedding_dim '32'"),
                                  ("intervention_percentiles", [95, 5], "0 <= low < high"),
                                  ("intervention_percentiles", [5, "x"], "0 <= low < high")):
        meta_file.write_text(json.dumps({**meta, field: value}))
        with pytest.raises(ModelFormatError, match=message):
            load_concept_model(tmp_path / "m")
    meta_file.write_text(json.dumps(meta))
    assert load_concept_model(tmp_path / "m").kind == "concept_bottleneck_model"


def test_cbm_intervene_refuses_absurd_values_without_a_warning() -> None:
    from tests.report.tiny_explorer import fit_tiny

    model, data, _ = fit_tiny()
    name = model.concept_names[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConceptlabError, match="must lie in"):
            model.intervene(data.X_test[:2], {name: 1e308})
        with pytest.raises(ConceptlabError, match="must lie in"):
            intervention_rows(model, data.X_test[:2], {name: 1e308})
    rows = intervention_rows(model, data.X_test[:2], {name: "high"})
    assert rows[0]["set_as"] == {name: "present"}
    assert rows[0]["set"][name] == pytest.approx(float(model.unit_high_[0]))


# ------------------------------------------------------------------------------------------------
# leakage: a planted leaky model is flagged, a clean one passes
# ------------------------------------------------------------------------------------------------


def _planted_probs(n: int, seed: int, leaky: bool) -> tuple[np.ndarray, ...]:
    """Concept probabilities of a model trained on 3 concept labels. Clean: the class is
    ``c0 + 2 c1`` and the probabilities say only the concepts. Leaky: the class is
    ``c0 + 2 z`` with ``z`` a factor no concept names, and concept 2's *confidence* carries
    ``z`` (concept 2 is present in every item: its thresholded value is still the label)."""
    rng = np.random.default_rng(seed)
    C = rng.integers(0, 2, (n, 3)).astype(float)
    z = rng.integers(0, 2, n).astype(float)
    P = 0.05 + 0.9 * C + rng.uniform(-0.03, 0.03, (n, 3))
    if leaky:
        C[:, 2] = 1.0  # present in every item, so its thresholded value says nothing
        P[:, 2] = 0.55 + 0.4 * z
        y = (C[:, 0] + 2 * z).astype(int)
    else:
        y = (C[:, 0] + 2 * C[:, 1]).astype(int)
    return P, y, C


@pytest.mark.parametrize(("leaky", "status"), [(True, "fail"), (False, "pass")])
def test_the_leakage_claim_flags_a_planted_leaky_model(leaky: bool, status: str) -> None:
    from conceptlab.bottleneck.audit import leakage_record

    P_tr, y_tr, _ = _planted_probs(400, 0, leaky)
    P_te, y_te, C_te = _planted_probs(200, 1, leaky)
    fields, claim = leakage_record(P_tr, y_tr, P_te, y_te, C_te)
    assert claim.name == "concepts_do_not_leak" and claim.status == status, claim.reason
    gap = fields["leakage"]["soft_hard_gap"]
    assert (gap > 0.3) if leaky else (abs(gap) < 0.05)
