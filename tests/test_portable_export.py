"""Files other tools read: a fitted CBM exported as a plain PyTorch module + safetensors that
loads in a fresh interpreter with conceptlab blocked (docs/formats.md's five lines, run as
written) and gives the model's own logits; concept banks read with safetensors + json alone;
run metrics as JSON Lines that pandas reads in one call."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conceptlab.bottleneck.heads import HeadConfig
from conceptlab.bottleneck.layers import CBLConfig
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.bottleneck.objectives import get_objective
from conceptlab.bottleneck.portable import export_portable
from conceptlab.bottleneck.training import TrainConfig
from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import OptionError
from conceptlab.workflows.export import export_run, export_table
from tests.planted import PLANTED

DOC = Path(__file__).resolve().parents[1] / "docs" / "formats.md"
CLASSES = ["a", "b", "c", "d"]
FAST = TrainConfig(max_epochs=6, patience=3, show_progress=False, finetune_epochs=2)


def _doc_example() -> str:
    m = re.search(r"<!-- runs-without-conceptlab -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert m, "docs/formats.md lost its portable-module example"
    code = m.group(1)
    assert len(code.strip().splitlines()) == 5
    return code


def _fit(method: str, cbl_input: str | None = None) -> ConceptBottleneckModel:
    Xt, yt, V, _, _ = PLANTED.data(600, 1)
    Xv, yv, _, _, _ = PLANTED.data(200, 2)
    bank = ConceptBank(V, [f"concept {k}" for k in range(PLANTED.K)])
    obj = get_objective(method)
    model = ConceptBottleneckModel(bank, CLASSES, objective=obj,
                                   cbl=CBLConfig(input=cbl_input or obj.default_input),
                                   train=FAST, head=HeadConfig(nec=2.0), seed=0)
    return model.fit(Xt, yt, Xv, yv)


def _run_clean(code: str, cwd: Path) -> str:
    """Run ``code`` in a fresh isolated interpreter where importing conceptlab fails."""
    guard = "import sys\nsys.modules['conceptlab'] = None  # conceptlab off the path\n"
    done = subprocess.run([sys.executable, "-I", "-c", guard + code], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


KINDS = [("l1", None), ("gumbel", None), ("l1", "embedding")]  # scores, softmax map, embedding


def test_the_exported_module_loads_without_conceptlab_and_equals_the_model(
        tmp_path: Path) -> None:
    models = [_fit(method, cbl_input) for method, cbl_input in KINDS]
    for i, model in enumerate(models):  # the first where the docs example looks for it
        export_portable(model, tmp_path / ("cbm-export" if i == 0 else f"cbm-{i}"))
    models[0].bank.save(tmp_path / "bank")
    X = PLANTED.data(12, 7)[0]
    (tmp_path / "x.json").write_text(json.dumps(X.tolist()))
    code = _doc_example() + f"""
import json
from safetensors.numpy import load_file
x = torch.tensor(json.load(open("x.json")))
nets = [model] + [ConceptBottleneck.from_folder(f"cbm-{{i}}") for i in range(1, {len(KINDS)})]
bank = load_file("bank/bank.safetensors")["vectors"]
names = json.load(open("bank/bank.json"))["names"]
print(json.dumps({{"logits": [m(x).tolist() for m in nets],
                  "concepts": [m.concepts(x).tolist() for m in nets],
                  "names": model.concept_names, "bank_shape": list(bank.shape),
                  "bank_names": names, "first": float(bank[0, 0])}}))
"""
    out = json.loads(_run_clean(code, tmp_path).splitlines()[-1])
    for i, model in enumerate(models):
        assert model.head_ is not None
        H = model.concept_activations(X)
        np.testing.assert_allclose(out["logits"][i], model.head_.logits(H), atol=1e-4,
                                   rtol=1e-4)
        np.testing.assert_allclose(out["concepts"][i], H, atol=1e-5)
    model = models[0]
    assert out["names"] == model.concept_names
    assert out["bank_shape"] == list(model.bank.vectors.shape)
    assert out["bank_names"] == model.bank.names
    assert out["first"] == pytest.approx(float(model.bank.vectors[0, 0]))


def test_an_export_the_module_cannot_express_is_refused_whole(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    model = _fit("l1")
    with pytest.raises(OptionError, match="a file; give a folder"):
        (tmp_path / "f").write_text("x")
        export_portable(model, tmp_path / "f")
    # an activation map the module does not know: caught by the check before writing
    monkeypatch.setattr(model.objective, "activations",
                        lambda pre, **kw: pre.abs(), raising=False)
    with pytest.raises(OptionError, match="cannot express"):
        export_portable(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_metrics_as_json_lines_read_by_pandas_in_one_call(tmp_path: Path) -> None:
    paths = []
    for i, acc in enumerate([0.5, 0.75]):
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({
            "accuracy": acc, "method": "l1", "faithfulness": {"unit_fidelity_median": 0.1 * i,
                                                              "claims": [1, 2]},
            "rows": [{"x": 1}]}))
        paths.append(export_run(run, "metrics", "jsonl", tmp_path / f"m{i}.jsonl"))
    both = tmp_path / "all.jsonl"
    both.write_text("".join(p.read_text() for p in paths))
    df = pd.read_json(both, lines=True)
    assert df["accuracy"].tolist() == [0.5, 0.75]
    assert df["faithfulness.unit_fidelity_median"].tolist() == [0.0, 0.1]
    assert "rows" not in df.columns and "faithfulness.claims" not in df.columns
    assert df["run"].tolist() == [str(tmp_path / "run0"), str(tmp_path / "run1")]
    assert export_table(tmp_path / "run1", "metrics").shape == (1, 4)
