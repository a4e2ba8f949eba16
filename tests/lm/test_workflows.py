"""The lm workflows and CLI end to end on a tiny random Llama (structure, files, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conceptlab.cli import app
from conceptlab.concepts.bank import ConceptBank
from conceptlab.lm.model import LMError
from conceptlab.workflows import lm as runs
from tests.lm.tiny import tiny_lm

ANIMALS = ["cat", "dog", "horse", "cow", "bird", "fish", "lion", "tiger"]
OBJECTS = ["table", "chair", "car", "house", "stone", "lamp", "film", "day"]


def _prompts(tmp_path: Path) -> str:
    lines = ["text,label,group"]
    for f in ("the {} is", "a {} and", "it was a {}"):
        for i, (a, o) in enumerate(zip(ANIMALS, OBJECTS, strict=True)):
            lines += [f"{f.format(a)},animal,w{i}", f"{f.format(o)},object,w{i}"]
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return f"csv:{path}"


def test_probe_ablate_steer_observable_neurons(tmp_path: Path) -> None:
    lm = tiny_lm()
    spec = _prompts(tmp_path)
    cache = tmp_path / "cache"
    m = runs.run_lm_probe([spec], tmp_path / "probe", lm=lm, n_boot=50, cache_dir=cache)
    c = m["concepts"][0]
    assert len(c["layers"]) == lm.n_layers and 0 <= c["depth"] < lm.n_layers
    assert (tmp_path / "probe" / "depth.png").stat().st_size > 1000
    bank = ConceptBank.load(c["bank"])
    assert len(bank) == 3 * lm.n_layers and bank.provenance["data"] == "tiny"
    assert json.loads((tmp_path / "probe" / "metrics.json").read_text())["concepts"][0]["depth"] \
        == c["depth"]

    a = runs.run_lm_ablate([spec], tmp_path / "ablate", lm=lm, layers=[1], scope="onward",
                           cache_dir=cache)
    row = a["rows"][0]
    assert row["layer"] == 1 and set(row["probes"]) == {"layer_1", "layer_2"}
    assert row["side_effects"]["kl"] >= 0 and (tmp_path / "ablate" / "ablation.png").is_file()

    s = runs.run_lm_steer(spec, tmp_path / "steer", lm=lm, layers=[0, 2], coefs=[1.0, 4.0],
                          max_new_tokens=3, cache_dir=cache,
                          control_vector=tmp_path / "steer.gguf")
    from conceptlab.lm.control_vectors import read_control_vector

    hint, cv = read_control_vector(s["control_vector"])
    assert hint == "llama" and list(cv) == [s["best"]["layer"]]
    assert abs(float(np.linalg.norm(cv[s["best"]["layer"]]))
               - s["best"]["added_norm"]) < 1e-3 * (1 + s["best"]["added_norm"])
    # sorted labels: "object" is the positive class
    assert len(s["rows"]) == 4 and s["positive_words"][0] == " table"
    assert (tmp_path / "steer" / "sweep.png").is_file() and len(s["samples"]) == 3
    big = next(r for r in s["rows"] if r["layer"] == 2 and r["coef"] == 4.0)
    small = next(r for r in s["rows"] if r["layer"] == 2 and r["coef"] == 1.0)
    assert big["kl"] > small["kl"] > 0

    o = runs.run_lm_observable(tmp_path / "obs", lm=lm, positive=["cat"], negative=["table"],
                               data=spec, cache_dir=cache)
    assert len(o["rows"]) == lm.n_layers and -1 <= o["rows"][0]["cos_probe"] <= 1

    n = runs.run_lm_neurons(tmp_path / "neurons", lm=lm, words=["cat", "dog"], k=3)
    assert (tmp_path / "neurons" / "map" / "neurons.safetensors").is_file()
    assert n["map"]["n_neurons"] == lm.n_layers * lm.d_mlp
    again = runs.run_lm_neurons(None, lm=lm, words=["cat"], k=3, confirm=False,
                                map_dir=tmp_path / "neurons" / "map")
    assert again["words"][0]["hits"] == n["words"][0]["hits"]


def test_parametric_vectors_lower_a_planted_concept(tmp_path: Path) -> None:
    import torch

    lm = tiny_lm()
    spec = _prompts(tmp_path)
    # plant: three neurons of block 2 write the mean unembedding of the positive words
    W_U, g = lm.unembed_weight(), lm.model.model.norm.weight.detach()
    target = W_U[lm.token_ids(OBJECTS)].mean(0)
    with torch.no_grad():
        for j, scale in ((1, 300.0), (2, 200.0), (3, 100.0)):
            lm.model.model.layers[2].mlp.down_proj.weight[:, j] = scale * target / g
    m = runs.run_lm_parametric(spec, tmp_path / "par", lm=lm, n_neurons=[3])
    assert {(r["layer"], r["neuron"]) for r in m["top_neurons"][:3]} == {(2, 1), (2, 2), (2, 3)}
    assert (tmp_path / "par" / "parametric.png").is_file()
    concept, rand = m["rows"]
    assert concept["neurons"] == "concept" and rand["neurons"] == "random"
    # the planted neurons carry the concept tokens' logits: removing them moves those much more
    # than removing three random neurons (the sign depends on the random model's activations)
    assert abs(concept["delta_logp_concept_on_prefixes"]) > \
        10 * abs(rand["delta_logp_concept_on_prefixes"])


def test_bad_requests_fail_before_work(tmp_path: Path) -> None:
    lm = tiny_lm()
    with pytest.raises(LMError, match="unknown prompt set"):
        runs.run_lm_probe(["nope"], lm=lm)
    with pytest.raises(LMError, match="out of range"):
        runs.run_lm_probe([_prompts(tmp_path)], lm=lm, layers=[7])
    with pytest.raises(LMError, match="scope"):
        runs.run_lm_ablate([_prompts(tmp_path)], lm=lm, scope="everywhere")


def test_cli_lm_probe_on_a_saved_tiny_model(tmp_path: Path) -> None:
    lm = tiny_lm()
    folder = tmp_path / "tiny-model"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["lm", "probe", "--model", str(folder), "--data",
                                   _prompts(tmp_path), "--layers", "0,2", "--out", str(out),
                                   "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["layers"] == [0, 2] and m["model"]["n_layers"] == 3
    bad = CliRunner().invoke(app, ["lm", "probe", "--model", str(folder), "--data", "nope",
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "unknown prompt set" in bad.output
