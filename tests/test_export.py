"""``conceptlab export`` and ``export_table`` on a small fitted run (texts through the
packaged MiniLM): one row per test item whose activations and predictions equal the saved
model's, the saved explanations and the audit as tables, CSV and Parquet alike, and bad
requests refused in one line before any work."""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import conceptlab
from conceptlab.errors import InputError, OptionError
from conceptlab.utils.io import read_json
from conceptlab.workflows import cbm
from conceptlab.workflows.export import export_run, export_table
from conceptlab.workflows.prepare import RunConfig
from tests.cli_support import invoke, invoke_fails, isolated_env

TEXTS = {
    "sports": ["The striker scored a late goal", "The tennis player won the final set",
               "The runner finished the marathon", "The goalkeeper saved a penalty"],
    "cooking": ["Simmer the tomato sauce with garlic", "Bake the bread until golden",
                "Whisk the eggs with sugar", "Knead the pizza dough"],
}
VOCAB = "[sports]\na ball game\nathletes competing\n[cooking]\nfood and recipes\na kitchen stove\n"


@pytest.fixture(autouse=True, scope="module")
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("texts")
    with open(root / "texts.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "split"])
        for label, sentences in TEXTS.items():
            for s in sentences:
                for suffix in ("", " today", " again"):
                    w.writerow([s + suffix, label, "test" if suffix == " again" else "train"])
    (root / "vocab.txt").write_text(VOCAB, encoding="utf-8")
    out = tmp_path_factory.mktemp("fit")
    config = RunConfig(data=f"csv:{root / 'texts.csv'}", encoder="minilm",
                       cache_dir=str(tmp_path_factory.mktemp("cache")))
    cbm.run_fit(config, out, concepts=str(root / "vocab.txt"), method="l1", nec=2.0)
    return out


def test_activations_are_the_saved_model_s_on_the_test_split(run: Path) -> None:
    df = conceptlab.export_table(run, "activations")
    model, encoder = cbm.load_saved(run)
    texts = [s + " again" for ss in TEXTS.values() for s in ss]  # the test split, in file order
    assert len(df) == len(texts)  # one row per item
    X = encoder.encode_texts(texts)
    np.testing.assert_allclose(df[model.concept_names].to_numpy(), model.concept_activations(X),
                               rtol=1e-4, atol=1e-5)
    pred = [model.class_names[int(p)] for p in model.predict(X)]
    assert df["prediction"].tolist() == pred
    assert df["true_class"].tolist() == ["sports"] * 4 + ["cooking"] * 4
    assert df["correct"].tolist() == [p == t for p, t in zip(pred, df["true_class"], strict=True)]
    assert (df["probability"] > 0.5).all()


def test_explanations_and_audit_tables_hold_what_the_run_saved(run: Path) -> None:
    exps = read_json(run / "explanations.json")
    df = export_table(run, "explanations")
    assert len(df) == sum(len(e["concepts"]) for e in exps)
    first = df[df["test_index"] == exps[0]["test_index"]]
    assert first["concept"].tolist() == [c["concept"] for c in exps[0]["concepts"]]
    assert first["rank"].tolist() == list(range(1, len(first) + 1))
    audit = export_table(run, "audit")
    faith = read_json(run / "metrics.json")["faithfulness"]
    got = dict(zip(audit["check"], audit["value"], strict=True))
    assert got["unit_fidelity_median"] == faith["unit_fidelity_median"]
    assert set(audit["method"]) == {"l1"}


def test_the_command_writes_csv_and_parquet_alike(run: Path, tmp_path: Path) -> None:
    invoke("export", run, "--what", "activations", "--out", tmp_path / "a.csv")
    from_csv = pd.read_csv(tmp_path / "a.csv")
    assert from_csv.shape == export_table(run).shape
    if importlib.util.find_spec("pyarrow") is None:
        assert "needs pyarrow" in invoke_fails("export", run, "--format", "parquet", "--out",
                                               tmp_path / "a.parquet")
        return
    invoke("export", run, "--what", "explanations", "--format", "parquet",
           "--out", tmp_path / "e.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "e.parquet"),
                                  export_table(run, "explanations"))
    export_run(run, "audit", "parquet", tmp_path / "audit.parquet")
    assert len(pd.read_parquet(tmp_path / "audit.parquet")) == len(export_table(run, "audit"))


def test_bad_requests_are_one_line_before_any_work(run: Path, tmp_path: Path) -> None:
    assert "--what must be one of" in invoke_fails("export", run, "--what", "weights",
                                                   "--out", tmp_path / "x.csv")
    assert "--format must be" in invoke_fails("export", run, "--format", "xlsx",
                                              "--out", tmp_path / "x.xlsx")
    assert "not a run folder" in invoke_fails("export", tmp_path, "--out", tmp_path / "x.csv")
    with pytest.raises(OptionError, match="a folder"):
        export_run(run, "audit", "csv", tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        export_table(tmp_path / "missing")
    assert not (tmp_path / "x.csv").exists()
