"""The chain of commands a user runs, on tiny random models saved in the on-disk formats users
download: a CLIP and a SigLIP folder (``save_pretrained``: config.json, model.safetensors,
tokenizer and preprocessor files) behind ``hf:DIR``, and a Llama-family and a GPT-2 causal LM
folder behind ``lm --model DIR``. Each command runs through ``conceptlab.cli.app`` with
``--json`` on the smallest data; where a command cannot take a family or a data set it says so
in exactly one ``error:`` line (asserted), never a traceback.

Not here: ``serve`` (a blocking server; its handler is tested in tests/report), an open_clip
folder (the extra is not installed here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conceptlab.workflows import cbm
from tests.cli_support import invoke, invoke_fails, invoke_json, isolated_env

CLASSES = ("cat", "dog")
VOCAB = "[cat]\nwhiskers\nsoft fur\n[dog]\na wagging tail\nfloppy ears\n"
ANIMALS = ["cat", "dog", "horse", "cow", "bird", "fish", "lion", "tiger"]
OBJECTS = ["table", "chair", "car", "house", "stone", "lamp", "film", "day"]
#: the smallest settings that still train each method (the defaults are sized for real data)
FIT_SETTINGS: dict[str, list[str]] = {
    "ref:lfcbm": ["--set", "clip_cutoff=0"],  # tiny random CLIP: every score is below 0.25
    "dncbm": ["--set", "units=8", "--set", "min_steps=20", "--set", "epochs=1"],
}
#: methods that need ground-truth concept labels, which an image folder does not have
NEEDS_CONCEPT_LABELS = {"supervised": "needs concept_labels", "cem": "needs ground-truth concept"}


@pytest.fixture(autouse=True, scope="module")
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


@pytest.fixture(scope="module")
def dual(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from tests.encoders.tiny_hf import save_tiny_dual

    return save_tiny_dual(tmp_path_factory.mktemp("hub"))


def _png(path: Path, rng: np.random.Generator, channel: int) -> None:
    px = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
    px[..., channel] += 150
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(px).save(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Official train/test splits of two classes told apart by colour (8 + 3 images each),
    a vocabulary, and TCAV concept sets (reddish, greenish) with a random pool."""
    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 3)):
        for c, cls in enumerate(CLASSES):
            for i in range(n):
                _png(root / "data" / split / cls / f"{i}.png", rng, c)
    for c, concept in enumerate(("reddish", "greenish")):
        for i in range(4):
            _png(root / "concepts" / concept / f"{i}.png", rng, c)
    for i in range(8):
        _png(root / "random" / f"{i}.png", rng, 2)
    (root / "vocab.txt").write_text(VOCAB)
    return root


@pytest.fixture(scope="module")
def fitted(dual: dict[str, str], images: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, Path]:
    """``encode``, ``zeroshot`` and an ``l1`` fit per dual-encoder family (shared by tests)."""
    out = {}
    for kind in ("clip", "siglip"):
        tmp = tmp_path_factory.mktemp(kind)
        data = ["--data", f"folder:{images / 'data'}", "--encoder", f"hf:{dual[kind]}",
                "--cache", tmp / "cache"]
        enc = invoke_json("encode", *data, "--out", tmp / "enc")
        assert enc["dim"] == (16 if kind == "clip" else 32)  # CLIP projects to 16 here
        zs = invoke_json("zeroshot", *data, "--out", tmp / "zs")
        assert zs["n_test"] == 6 and 0 <= zs["accuracy"] <= 1
        m = invoke_json("fit", *data, "--concepts", images / "vocab.txt", "--method", "l1",
                        "--out", tmp / "fit")
        assert m["n_concepts"] >= 1 and m["n_test"] == 6
        out[kind] = tmp / "fit"
    return out


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_explain_intervene_report_export_on_a_fitted_hub_model(
        kind: str, fitted: dict[str, Path], images: Path, tmp_path: Path) -> None:
    run = fitted[kind]
    img = images / "data" / "test" / "cat" / "0.png"
    rows = invoke_json("explain", run, "--input", img, "--top", 2)
    assert rows[0]["prediction"] in CLASSES and 1 <= len(rows[0]["concepts"]) <= 2
    concept = rows[0]["concepts"][0]["concept"]
    changed = invoke_json("intervene", run, "--input", img, "--set", f"{concept}=high")
    assert changed[0]["before"] == rows[0]["prediction"] and changed[0]["after"] in CLASSES
    invoke("report", run, "--out", tmp_path / "report.html")
    assert "<html" in (tmp_path / "report.html").read_text()[:500].lower()
    # files other tools read: the model folder and the run's metrics as JSON Lines
    invoke("export", run, "--what", "model", "--out", tmp_path / "cbm-export")
    config = json.loads((tmp_path / "cbm-export" / "config.json").read_text())
    assert config["encoder_spec"].startswith("hf:") and config["input"] == "scores"
    assert config["class_names"] == list(CLASSES)
    invoke("export", run, "--what", "metrics", "--format", "jsonl", "--out", tmp_path / "m.jsonl")
    df = pd.read_json(tmp_path / "m.jsonl", lines=True)
    assert len(df) == 1 and df["method"].tolist() == ["l1"]


@pytest.mark.parametrize("method", cbm.methods())
def test_fit_takes_every_method_on_a_clip_folder(method: str, dual: dict[str, str],
                                                 images: Path, tmp_path: Path) -> None:
    args = ["fit", "--data", f"folder:{images / 'data'}", "--encoder", f"hf:{dual['clip']}",
            "--concepts", images / "vocab.txt", "--method", method, "--out", tmp_path / "fit",
            "--cache", tmp_path.parent / "fit-cache", *FIT_SETTINGS.get(method, [])]
    if method in NEEDS_CONCEPT_LABELS:
        assert NEEDS_CONCEPT_LABELS[method] in invoke_fails(*args)
        assert not (tmp_path / "fit").exists()
        return
    m = invoke_json(*args)
    assert m["n_test"] == 6 and 0 <= m["accuracy"] <= 1
    assert m.get("method") == (None if method == "probe" else method)  # probe: no concepts
    assert (tmp_path / "fit" / "metrics.json").is_file()


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_discover_and_tcav_tap_the_hub_vision_tower(kind: str, dual: dict[str, str],
                                                   images: Path, tmp_path: Path) -> None:
    enc = f"hf:{dual[kind]}"
    data = ["--data", f"folder:{images / 'data'}", "--encoder", enc]
    # NMF needs non-negative activations; a ViT's pooled features are signed: one line
    assert "non-negative" in invoke_fails("discover", *data, "--method", "nmf", "--k", 2,
                                          "--n-per-class", 3, "--n-crops", 2,
                                          "--out", tmp_path / "nmf", "--cache", tmp_path / "c")
    d = invoke_json("discover", *data, "--method", "seminmf", "--k", 2, "--n-per-class", 3,
                    "--n-crops", 2, "--out", tmp_path / "disc", "--cache", tmp_path / "c")
    assert set(d["per_class"]) == set(CLASSES) and d["encoder"] == enc
    # TCAV tests a classifier's outputs; a dual encoder has none: one line, no output folder
    err = invoke_fails("tcav", *data, "--concepts-dir", images / "concepts", "--random-dir",
                       images / "random", "--class", "cat", "--n-random", 10, "--n-class", 3,
                       "--image-size", 32, "--fast", "--out", tmp_path / "tcav")
    assert "has no class outputs" in err and not (tmp_path / "tcav").exists()


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm_folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[str, Path]:
    """A tiny random causal LM saved as a hub download is (safetensors, config, tokenizer)."""
    from tests.lm.tiny import tiny_family

    lm = tiny_family(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()}
    return request.param, folder


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> str:
    lines = ["text,label,group"]
    for f in ("the {} is", "a {} and", "it was a {}"):
        for i, (a, o) in enumerate(zip(ANIMALS, OBJECTS, strict=True)):
            lines += [f"{f.format(a)},animal,w{i}", f"{f.format(o)},object,w{i}"]
    path = tmp_path_factory.mktemp("prompts") / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return f"csv:{path}"


def test_every_lm_command_on_a_hub_lm_folder(lm_folder: tuple[str, Path], prompts: str,
                                             tmp_path: Path) -> None:
    family, folder = lm_folder
    M = ["--model", folder]
    c = ["--cache", tmp_path / "cache"]
    p = invoke_json("lm", "probe", "--data", prompts, *M, "--folds", 2, "--out",
                    tmp_path / "probe", *c)
    n_layers = len(p["concepts"][0]["layers"])
    assert n_layers == (3 if family == "llama" else 2)
    n = invoke_json("lm", "neurons", *M, "--word", "cat", "--k", 3, "--no-confirm",
                    "--out", tmp_path / "neurons")
    assert n["map"]["n_neurons"] > 0
    s = invoke_json("lm", "steer", "--data", prompts, *M, "--layers", "0", "--coefs", "1",
                    "--out", tmp_path / "steer", *c)
    assert len(s["rows"]) == 1 and s["rows"][0]["layer"] == 0
    a = invoke_json("lm", "ablate", "--data", prompts, *M, "--layers", "1",
                    "--out", tmp_path / "ablate", *c)
    assert a["rows"][0]["layer"] == 1
    o = invoke_json("lm", "observable", "--data", prompts, *M, "--positive", "cat",
                    "--negative", "table", "--out", tmp_path / "obs", *c)
    assert len(o["rows"]) == n_layers
    par = invoke_json("lm", "parametric", "--data", prompts, *M, "--n", "2",
                      "--out", tmp_path / "par")
    assert par["rows"][0]["n"] == 2
    cv = invoke_json("lm", "concept-vectors", *M, "--concept", "dog", "--max-new-tokens", 2,
                     "--out", tmp_path / "cv")
    assert [r["concept"] for r in cv["rows"]] == ["dog"]
    d = invoke_json("lm", "dictionary", "--corpus", prompts, *M, "--hook",
                    "blocks.0.hook_resid_post", "--width", 8, "--k", 2, "--tokens", 300,
                    "--context", 8, "--out", tmp_path / "dict")
    assert d["results"]
    # a hook point the family does not have: one line naming the valid ones
    # TCAV on the LM: concept texts against random texts, the target a next token
    cdir = tmp_path / "concepts"
    cdir.mkdir()
    (cdir / "animals.txt").write_text("\n".join(f"the {a} is" for a in ANIMALS) + "\n")
    (tmp_path / "random.txt").write_text("\n".join(f"a {o} and" for o in OBJECTS * 2) + "\n")
    t = invoke_json("tcav", "--data", prompts, "--encoder", f"lm:{folder}", "--concepts-dir",
                    cdir, "--random-dir", tmp_path / "random.txt", "--class", "animal",
                    "--target", "cat", "--layer", "blocks.1.hook_resid_post", "--n-random", 10,
                    "--n-class", 4, "--fast", "--out", tmp_path / "tcav")
    assert "animals" in json.dumps(t)
    assert "out of range" in invoke_fails("lm", "dictionary", "--corpus", prompts, *M,
                                          "--hook", "blocks.9.hook_resid_post", "--width", 8,
                                          "--k", 2, "--tokens", 300, "--context", 8,
                                          "--out", tmp_path / "bad")


def test_a_causal_lm_folder_is_not_an_hf_dual_encoder(lm_folder: tuple[str, Path],
                                                      images: Path, tmp_path: Path) -> None:
    """``encode --encoder hf:DIR`` on a causal LM: one line, before any work."""
    _, folder = lm_folder
    out = invoke_fails("encode", "--data", f"folder:{images / 'data'}", "--encoder",
                       f"hf:{folder}", "--out", tmp_path / "enc", "--cache", tmp_path / "c")
    assert "hf:" in out and not (tmp_path / "enc").exists()
