"""``benchmarks/gpu_check.py``: on this CPU-only machine it runs the CPU side and says that no
GPU was found (JSON, table and the generated docs section); the comparison applies the stated
tolerances; the docs words follow the JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU report")
def test_smoke_run_reports_no_gpu_and_the_cpu_side(gc: ModuleType, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu_check.json"
    assert gc.main(["--smoke", "--family", "cbm_logits", "--family", "lm_hidden",
                    "--family", "neuron_table", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["gpu_found"] is False and "no GPU found" in record["note"]
    assert [r["family"] for r in record["rows"]] == ["cbm_logits", "lm_hidden", "neuron_table"]
    for row in record["rows"]:
        assert "gpu" not in row and row["cpu"]["items_per_s"] > 0, row
    assert record["rows"][2]["cpu"]["items"] == 24 * 1  # one block of the tiny Llama's MLP
    printed = capsys.readouterr().out
    assert printed.count("no GPU found") == 4  # three rows and the closing line
    section = gc.markdown(record)
    assert "has not run on a GPU" in section and section.startswith("## GPU check")


def test_compare_applies_the_stated_tolerances(gc: ModuleType) -> None:
    a = {"embedding": np.zeros((3, 4), np.float32)}
    close = gc.compare("embeddings", a, {"embedding": a["embedding"] + 5e-5})
    assert close["within_tolerance"] and close["differences"]["max_abs_diff"] == pytest.approx(5e-5)
    far = gc.compare("embeddings", a, {"embedding": a["embedding"] + 1e-3})
    assert not far["within_tolerance"]
    ids = np.arange(100).reshape(100, 1)
    logits = np.ones((100, 1), np.float32)
    swapped = ids.copy()
    swapped[:2] = -1  # 98% of top tokens agree: below the 0.99 bound
    t = gc.compare("neuron_table", {"top_ids": ids, "top_logits": logits},
                   {"top_ids": swapped, "top_logits": logits})
    assert t["differences"]["top_token_agree"] == pytest.approx(0.98)
    assert t["checks"] == {"top_token_agree": False, "max_rel_diff": True}


def test_the_docs_section_follows_the_json(gc: ModuleType) -> None:
    row = {"family": "embeddings", "tolerances": gc.TOLERANCES["embeddings"],
           "cpu": {"items": 8, "seconds": 1.0, "items_per_s": 8.0},
           "gpu": {"items": 8, "seconds": 0.1, "items_per_s": 80.0}}
    row.update(gc.compare("embeddings", {"e": np.zeros(2)}, {"e": np.full(2, 2e-4)}))
    record = {"gpu": "NVIDIA H100", "gpu_found": True, "smoke": False, "torch": "x",
              "cpu_threads": 2, "rows": [row], "note": None}
    text = gc.markdown(record)
    assert "NVIDIA H100" in text and "| embeddings | 8 | 80 | max_abs_diff 0.0002 | NO |" in text
    assert "1 family outside tolerance" in text
    row.update(gc.compare("embeddings", {"e": np.zeros(2)}, {"e": np.zeros(2)}))
    assert "0 families outside tolerance" in gc.markdown(record)


def test_docs_section_is_the_one_generated_from_the_json(gc: ModuleType) -> None:
    root = SCRIPT.parents[1]
    record = json.loads((root / "benchmarks" / "results" / "gpu_check.json").read_text())
    assert gc.markdown(record).strip() in (root / "docs" / "benchmarks.md").read_text()
