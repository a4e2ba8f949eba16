"""The explorer's web API (``conceptlab.report.app``) against the model's own Python API, on a
tiny model fitted on synthetic embeddings; bad requests get clear errors and change nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conceptlab.report.app import MAX_UPLOAD_BYTES, create_app
from tests.report.tiny_explorer import CLASSES, fit_tiny, png, solid


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any, Any]:
    return fit_tiny()


@pytest.fixture(scope="module")
def client(tiny: tuple[Any, Any, Any]) -> TestClient:
    model, data, encode = tiny
    return TestClient(create_app(model, data, encode))


def expected(model: Any, x: np.ndarray, units: dict[str, float]) -> tuple[str, np.ndarray,
                                                                          np.ndarray]:
    """(class, probabilities, contributions) the Python API gives for an intervention."""
    proba = model.intervene(x, units, return_proba=True)[0] if units else \
        model.predict_proba(x)[0]
    U = model.unit_values(x).copy()
    for name, v in units.items():
        U[:, model.concept_index(name)] = v
    c = int(proba.argmax())
    w, _ = model.effective_head()
    contrib = w[c] * model.activations_from_units(U)[0]
    return model.class_names[c], proba, contrib


def shown(response: dict[str, Any], model: Any) -> np.ndarray:
    out = np.zeros(len(model.concept_names))
    for c in response["concepts"]:
        out[model.concept_index(c["concept"])] = c["contribution"]
    return out


def test_explain_matches_the_model(tiny: Any, client: TestClient) -> None:
    model, data, _ = tiny
    for i in (0, 7, 33):
        r = client.post("/api/explain", json={"item": i})
        assert r.status_code == 200, r.text
        got = r.json()
        x = data.X_test[i:i + 1]
        assert got["prediction"] == CLASSES[int(model.predict(x)[0])]
        assert got["true"] == CLASSES[int(data.y_test[i])]
        np.testing.assert_allclose(shown(got, model), model.contributions(x)[0], rtol=1e-5,
                                   atol=1e-6)
        assert got["probability"] == pytest.approx(float(model.predict_proba(x)[0].max()),
                                                   abs=1e-6)
        # the logit is the intercept plus every contribution (the model's explain says so)
        assert got["logit"] == pytest.approx(got["intercept"] + shown(got, model).sum(),
                                             abs=1e-5)


def test_intervention_matches_the_model_and_can_flip_the_decision(tiny: Any,
                                                                  client: TestClient) -> None:
    model, data, _ = tiny
    i = int(np.flatnonzero(model.predict(data.X_test) == 0)[0])  # predicted "cat"
    x = data.X_test[i:i + 1]
    # switch every used cat concept off and one dog concept fully on
    w, _ = model.effective_head()
    cat = [n for k, n in enumerate(model.concept_names) if w[0, k] > 0]
    dog = max((k for k in range(len(model.concept_names))), key=lambda k: w[1, k])
    units = {n: float(model.unit_low_[model.concept_index(n)]) for n in cat}
    units[model.concept_names[dog]] = float(model.unit_high_[dog]) * 3
    got = client.post("/api/explain", json={"item": i, "units": units}).json()
    cls, proba, contrib = expected(model, x, units)
    assert got["prediction"] == cls != "cat"
    assert got["probability"] == pytest.approx(float(proba.max()), abs=1e-6)
    np.testing.assert_allclose(shown(got, model), contrib, rtol=1e-5, atol=1e-6)
    assert got["set"] == pytest.approx(units)


def test_neighbours_and_compare(tiny: Any, client: TestClient) -> None:
    model, data, _ = tiny
    j = 11
    nb = client.post("/api/neighbours", json={"train": j, "k": 5}).json()["neighbours"]
    assert nb[0]["train"] == j and nb[0]["similarity"] == pytest.approx(1.0)
    # neighbours of a clear item are mostly of its own class (planted class structure)
    i = int(np.flatnonzero(model.predict(data.X_test) == data.y_test)[0])
    nb = client.post("/api/neighbours", json={"item": i, "k": 5}).json()["neighbours"]
    assert sum(n["label"] == CLASSES[int(data.y_test[i])] for n in nb) >= 4
    same = client.post("/api/compare", json={"a": {"item": i}, "b": {"item": i}}).json()
    assert same["similarity"] == pytest.approx(1.0)
    other = int(np.flatnonzero(data.y_test != data.y_test[i])[0])
    diff = client.post("/api/compare", json={"a": {"item": i}, "b": {"item": other}}).json()
    assert diff["similarity"] < 0.5
    assert len(diff["a"]["activations"]) == len(diff["concepts"])


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"item": 10_000}, 404, "no test item 10000"),
    ({"item": "3"}, 400, "integer"),
    ({"item": 1, "units": {"cat concept": 1.0}}, 400, "did you mean"),
    ({"item": 1, "units": {"cat concept 0": "high"}}, 400, "finite number"),
    ({"upload": "nope"}, 404, "unknown upload"),
    ({}, 400, "name an input"),
])
def test_bad_explain_requests_are_refused_clearly(client: TestClient, body: dict[str, Any],
                                                  status: int, words: str) -> None:
    r = client.post("/api/explain", json=body)
    assert r.status_code == status and words in r.json()["error"], r.text
    assert client.post("/api/explain", json={"item": 1}).status_code == 200


def test_uploads_are_validated_and_the_server_keeps_serving(tiny: Any,
                                                            client: TestClient) -> None:
    model, _, _ = tiny
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    cases = [
        (b"this is not an image", 415, "cannot read the uploaded file as an image"),
        (b"", 400, "empty"),
        (png(noise)[:3000], 400, "damaged or truncated"),
        (b"x" * (MAX_UPLOAD_BYTES + 10), 413, "too large"),
    ]
    for payload, status, words in cases:
        r = client.post("/api/upload", files={"file": ("x.png", payload, "image/png")})
        assert r.status_code == status and words in r.json()["error"], (status, r.text)
    r = client.post("/api/upload", data={"text": "a cat"})
    assert r.status_code == 400 and "reads images" in r.json()["error"]
    assert client.post("/api/explain", content=b"{not json").json()["error"].startswith(
        "the request body is not valid JSON")
    # the next good request works, and the upload is explained like its class
    r = client.post("/api/upload", files={"file": ("blue.png", png(solid(2, 40)), "image/png")})
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["prediction"] == "car"
    again = client.post("/api/explain", json={"upload": up["upload"],
                                              "units": {model.concept_names[0]: 0.0}})
    assert again.status_code == 200
    assert client.get(f"/api/input/upload/{up['upload']}").headers["content-type"] == "image/png"


def test_listing_inputs_and_page(tiny: Any, client: TestClient) -> None:
    model, data, _ = tiny
    wrong = client.get("/api/items?filter=wrong&limit=500").json()
    n_wrong = int((model.predict(data.X_test) != data.y_test).sum())
    assert wrong["total"] == n_wrong and all(not r["correct"] for r in wrong["items"])
    assert client.get("/api/items?filter=maybe").status_code == 400
    assert client.get("/api/input/test/0").content.startswith(b"\x89PNG")
    assert client.get("/api/input/test/99999").status_code == 404
    page = client.get("/").text
    assert "http://" not in page and "https://" not in page  # works with no network
    info = client.get("/api/info").json()
    w, _ = model.effective_head()
    assert len(info["concepts"]) == int((np.abs(w).sum(0) > 0).sum())  # used concepts only


def test_the_saved_model_is_never_changed(tiny: Any, tmp_path: Path) -> None:
    model, data, encode = tiny
    model.save(tmp_path / "model")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (tmp_path / "model").iterdir()}
    from conceptlab.bottleneck.model import ConceptBottleneckModel

    loaded = ConceptBottleneckModel.load(tmp_path / "model")
    c = TestClient(create_app(loaded, data, encode))
    name = loaded.concept_names[0]
    for v in (-5.0, 0.0, 9.0):
        assert c.post("/api/explain", json={"item": 2, "units": {name: v}}).status_code == 200
    c.post("/api/upload", files={"file": ("a.png", png(solid(1)), "image/png")})
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in (tmp_path / "model").iterdir()}
    assert after == before
    np.testing.assert_array_equal(loaded.predict(data.X_test), model.predict(data.X_test))


def test_serve_command_refuses_bad_arguments(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from conceptlab.cli import app

    runner = CliRunner()
    bad_port = runner.invoke(app, ["serve", str(tmp_path), "--port", "70000"])
    assert bad_port.exit_code == 2 and "--port" in bad_port.output
    missing = runner.invoke(app, ["serve", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_the_explorer_shows_the_audit_profile_badges(tiny: Any) -> None:
    import dataclasses

    model, data, encode = tiny
    claims = {"units_follow_concepts": {"status": "pass", "reason": "pass: 0.9"},
              "class_links_make_sense": {"status": "fail", "reason": "fail: 0.01"}}
    audited = dataclasses.replace(data, metrics={"faithfulness": {"claims": claims}},
                                  warnings=["class links fail"])
    info = TestClient(create_app(model, audited, encode)).get("/api/info").json()
    assert [(c["label"], c["status"]) for c in info["claims"]] == [
        ("units follow their concepts", "pass"), ("class links make sense", "fail")]
    assert info["warnings"] == ["class links fail"]
    assert TestClient(create_app(model, data, encode)).get("/api/info").json()["claims"] == []
