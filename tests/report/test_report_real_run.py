"""The report and the explorer on a real run folder written by ``fit`` (texts through the
packaged MiniLM): the inputs re-read from the recorded data spec are the run's own, and the
explorer's decisions equal the saved model's."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conceptlab.workflows import cbm
from conceptlab.workflows.prepare import RunConfig
from conceptlab.workflows.report import build_report, read_run
from conceptlab.workflows.serve import build_explorer

pytestmark = pytest.mark.slow  # real weights (still run in CI)

TOPICS = {
    "sports": ["The striker scored a late goal", "The tennis player won the final set",
               "Our basketball team trained for the championship",
               "The runner finished the marathon", "The goalkeeper saved a penalty",
               "The cyclist crossed the finish line"],
    "cooking": ["Simmer the tomato sauce with garlic", "Bake the bread until golden",
                "Chop the onions and fry them in butter", "Whisk the eggs with sugar",
                "Season the soup with salt and pepper", "Knead the pizza dough"],
    "computers": ["The laptop needs more memory", "Install the operating system update",
                  "The programmer fixed a bug in the code", "The server disk was full",
                  "The graphics card speeds up rendering", "Reboot the router"],
}
VOCAB = """\
[sports]
a ball game
athletes competing
[cooking]
food and recipes
a kitchen stove
[computers]
software and code
a computer machine
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("texts")
    with open(root / "texts.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "split"])
        for label, sentences in TOPICS.items():
            for i, s in enumerate(sentences):
                for j, suffix in enumerate(("", " today")):
                    w.writerow([s + suffix, label, "test" if (i, j) in ((0, 0), (3, 1))
                                else "train"])
    (root / "vocab.txt").write_text(VOCAB, encoding="utf-8")
    out = tmp_path_factory.mktemp("fit")
    config = RunConfig(data=f"csv:{root / 'texts.csv'}", encoder="minilm",
                       cache_dir=str(tmp_path_factory.mktemp("cache")))
    cbm.run_fit(config, out, concepts=str(root / "vocab.txt"), method="l1", nec=2.0)
    return out


def test_report_shows_the_run_s_own_texts(run: Path) -> None:
    saved = read_run(run)
    assert saved.input_note == "" and saved.inputs
    for e in saved.explanations:
        text = saved.inputs[e["test_index"]]
        assert any(text.startswith(s) for s in TOPICS[e["true_class"]])  # its own input
    html = build_report([run]).read_text()
    assert html.count('<div class="text">') == len(saved.explanations)
    assert "http://" not in html and "https://" not in html


def test_explorer_on_the_saved_run_matches_the_model(run: Path) -> None:
    client = TestClient(build_explorer(run))
    model, encoder = cbm.load_saved(run)
    info = client.get("/api/info").json()
    assert info["modality"] == "text" and info["n_test"] == 6
    items = client.get("/api/items").json()["items"]
    texts = [client.get(f"/api/input/test/{r['index']}").json()["text"] for r in items]
    X = encoder.encode_texts(texts)
    assert [r["prediction"] for r in items] == [model.class_names[int(p)]
                                                for p in model.predict(X)]
    name = info["concepts"][0]["name"]
    got: dict[str, Any] = client.post("/api/explain",
                                      json={"item": 0, "units": {name: 3.0}}).json()
    proba = model.intervene(X[:1], {name: 3.0}, return_proba=True)[0]
    assert got["prediction"] == model.class_names[int(proba.argmax())]
    assert got["probability"] == pytest.approx(float(proba.max()), abs=1e-5)
    # texts: typed, validated, explained
    up = client.post("/api/upload", data={"text": "Fry the garlic in olive oil"})
    assert up.status_code == 200 and up.json()["prediction"] == "cooking"
    assert client.post("/api/upload", data={"text": "   "}).status_code == 400
    bad = client.post("/api/upload", files={"file": ("x.txt", b"\xff\xfe\x00bad", "text/plain")})
    assert bad.status_code == 415 and "UTF-8" in bad.json()["error"]
    assert client.post("/api/upload", data={"text": "x" * 6000}).status_code == 413
    ok = client.post("/api/explain", json={"upload": up.json()["upload"]})
    assert ok.status_code == 200
    assert np.isfinite(ok.json()["logit"])
