"""``conceptlab match`` end to end on a few real sentences through MiniLM (planted topics)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import invoke, invoke_fails, isolated_env

TOPICS = {
    "football": ["the striker scored a late goal", "the keeper saved a penalty kick",
                 "fans cheered the winning goal", "the referee showed a red card"],
    "cooking": ["simmer the sauce with garlic", "bake the bread in a hot oven",
                "chop the onions for the soup", "season the stew with pepper"],
    "weather": ["heavy rain fell all night", "a cold wind blew from the north",
                "snow covered the quiet hills", "the storm brought thunder and hail"],
}
SUFFIXES = ["", " today", " again", " this week", " once more"]
VOCAB = "[football]\na football match\na goal\n[cooking]\ncooking food\nan oven\n" \
        "[weather]\nrain and wind\nsnow\n"


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("match-texts")
    with open(root / "t.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "split"])
        for label, sentences in TOPICS.items():
            for s in sentences:
                for j, suffix in enumerate(SUFFIXES):
                    w.writerow([s + suffix, label, "test" if j in (0, 1) else "train"])
    (root / "vocab.txt").write_text(VOCAB, encoding="utf-8")
    return {"csv": root / "t.csv", "vocab": root / "vocab.txt", "cache": root / "cache"}


def test_match_command_writes_matcher_metrics_and_named_matches(texts, tmp_path):
    out = tmp_path / "run"
    invoke("match", "--data", f"csv:{texts['csv']}", "--encoder", "minilm", "--concepts",
           texts["vocab"], "--cache", texts["cache"], "--out", out, "--set", "epochs=5",
           "--set", "batch_size=16")
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["rows"]) == {"cosine", "concept scores", "explicit",
                                    "explicit, random bank", "dense"}
    assert metrics["rows"]["explicit"]["nDCG@10"] > 0.6  # topics separate cleanly in MiniLM
    assert (out / "matcher" / "matcher.safetensors").is_file()
    examples = json.loads((out / "examples.json").read_text())
    first = examples[0]["matches"][0]
    assert first["class"] == examples[0]["query_class"] == "football"
    assert first["shared_concepts"][0]["concept"] in {"a football match", "a goal"}


def test_match_refuses_bad_settings_before_encoding(texts, tmp_path):
    message = invoke_fails("match", "--data", f"csv:{texts['csv']}", "--encoder", "minilm",
                           "--out", tmp_path / "x", "--set", "epoch=3")
    assert "unknown match setting" in message
