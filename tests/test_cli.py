"""End-to-end tests of the command line (``conceptlab.cli.app``) and its Python twins
(``conceptlab.workflows``) on tiny real data: fabricated texts through the packaged MiniLM,
fabricated images through the packaged EfficientNet-Lite0 + ConSE space.

Every run writes into ``tmp_path`` and encodes into a temporary activation cache; the data
are three clearly separable topics (or colours), so accuracies are asserted well above chance.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conceptlab import workflows
from conceptlab.concepts.vocab import VocabularyError
from conceptlab.encoders.sentence import minilm_path
from conceptlab.workflows import cbm
from tests.cli_support import ENV, invoke, invoke_fails, invoke_json, isolated_env

pytestmark = pytest.mark.slow  # real weights (still run in CI)


TOPICS = {
    "sports": [
        "The striker scored a late goal in the football match",
        "The tennis player won the final set",
        "Our basketball team trained hard for the championship",
        "The runner finished the marathon in record time",
        "The goalkeeper saved a penalty kick",
        "Fans cheered as the cyclist crossed the finish line",
        "The coach picked a new captain for the rugby squad",
        "She swam four laps in the Olympic pool",
        "The referee showed a red card to the defender",
        "He hit a home run in the baseball game",
    ],
    "cooking": [
        "Simmer the tomato sauce with garlic for twenty minutes",
        "Bake the bread in a hot oven until golden",
        "Chop the onions and fry them in butter",
        "Whisk the eggs with sugar to make a sponge cake",
        "Season the soup with salt and fresh pepper",
        "Knead the pizza dough and let it rise",
        "Roast the chicken with rosemary and lemon",
        "Stir the risotto slowly while adding broth",
        "Grill the vegetables and drizzle olive oil",
        "Melt the chocolate to glaze the dessert",
    ],
    "computers": [
        "The laptop needs more memory to run the compiler",
        "Install the latest operating system update",
        "The programmer fixed a bug in the Python code",
        "Our server crashed because the hard disk was full",
        "The new graphics card speeds up rendering",
        "Reboot the router to restore the internet connection",
        "The software engineer wrote unit tests for the database",
        "Plug the keyboard into a USB port on the computer",
        "The CPU overheated while compiling the kernel",
        "Back up your files to the cloud storage drive",
    ],
}
SUFFIXES = ("", " today", " again")  # 3 variants of each sentence: 90 rows

VOCAB = """\
# source: hand-written concepts for the test topics
[sports]
a ball game
athletes competing
a team scoring points
[cooking]
food and recipes
a kitchen stove
ingredients being mixed
[computers]
software and code
a computer machine
internet networking
"""
N_CONCEPTS = 9

NEW_TEXTS = {  # unseen sentences, one per topic
    "cooking": "Fry the garlic in olive oil and add the chopped tomatoes",
    "sports": "The midfielder passed the ball and the team scored a goal",
    "computers": "Restart the computer after installing the software update",
}

COLOURS = {"blue": (30, 40, 210), "green": (30, 180, 40), "red": (220, 30, 30)}
IMAGE_VOCAB = """\
[red]
the colour red
a red object
[green]
the colour green
green grass
[blue]
the colour blue
a blue sky
"""


# ---------------------------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


def read_metrics(out: Path) -> dict[str, Any]:
    path = out / "metrics.json"
    assert path.is_file(), f"{path} not written"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def text_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """90 sentences on 3 topics with an official split column, and a vocabulary file."""
    root = tmp_path_factory.mktemp("texts")
    rows = []
    for label, sentences in TOPICS.items():
        for i, sentence in enumerate(sentences):
            for j, suffix in enumerate(SUFFIXES):
                test = (i % 5, j) in ((0, 0), (1, 1))  # 4 test rows per topic
                rows.append((sentence + suffix, label, "test" if test else "train"))
    csv_path = root / "texts.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "split"])
        writer.writerows(rows)
    vocab = root / "vocab.txt"
    vocab.write_text(VOCAB, encoding="utf-8")
    return {"csv": csv_path, "vocab": vocab}


def text_args(text_data: dict[str, Path], cache: Path) -> list[str]:
    return ["--data", f"csv:{text_data['csv']}", "--encoder", "minilm", "--cache", str(cache)]


def fit_text_cbm(tmp_path_factory: pytest.TempPathFactory, text_data: dict[str, Path],
                 cache: Path, method: str, *extra: str) -> Path:
    """Fit a CBM on the text data through the CLI (``--method method`` plus ``extra``)."""
    out = tmp_path_factory.mktemp(f"fit-{method}")
    invoke("fit", *text_args(text_data, cache), "--out", out, "--concepts", text_data["vocab"],
           "--method", method, *extra)
    return out


def fit_text_cbm_at(out: Path, text_data: dict[str, Path], cache: Path, method: str,
                    *extra: str) -> Path:
    invoke("fit", *text_args(text_data, cache), "--out", out, "--concepts", text_data["vocab"],
           "--method", method, *extra)
    return out


@pytest.fixture(scope="module")
def fit_l1(tmp_path_factory: pytest.TempPathFactory, text_data: dict[str, Path],
           cache: Path) -> Path:
    """A sparse CBM (l1 objective, exactly 2 concepts per class) fitted through the CLI."""
    return fit_text_cbm(tmp_path_factory, text_data, cache, "l1", "--nec", "2")


@pytest.fixture(scope="module")
def fit_gumbel(tmp_path_factory: pytest.TempPathFactory, text_data: dict[str, Path],
               cache: Path) -> Path:
    """A dense-head CBM (gumbel objective) fitted through the CLI, with a hyper-parameter."""
    return fit_text_cbm(tmp_path_factory, text_data, cache, "gumbel", "--set", "max_epochs=5")


def check_common(metrics: dict[str, Any], data: str, encoder: str, n_test: int) -> None:
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["n_test"] == n_test
    assert metrics["encoder"] == encoder
    assert metrics["data"] == data
    assert metrics["seed"] == 0


# ---------------------------------------------------------------------------------------------
# encode / zeroshot / probe on texts
# ---------------------------------------------------------------------------------------------


def test_encode_writes_metrics_and_a_second_run_reads_the_cache(
        text_data: dict[str, Path], tmp_path: Path) -> None:
    own_cache = tmp_path / "cache"  # fresh: the first run must encode
    args = text_args(text_data, own_cache)
    invoke("encode", *args, "--out", tmp_path / "enc1")
    first = read_metrics(tmp_path / "enc1")
    assert first["command"] == "encode" and first["encoder"] == "minilm"
    assert first["data"] == f"csv:{text_data['csv']}" and first["seed"] == 0
    assert first["dim"] == 384
    assert set(first["encoding"]) == {"train", "val", "test"}
    assert sum(e["rows"] for e in first["encoding"].values()) == 90
    assert first["encoding"]["test"]["rows"] == 12  # the official test rows
    assert not any(e["from_cache"] for e in first["encoding"].values())

    invoke("encode", *args, "--out", tmp_path / "enc2")
    second = read_metrics(tmp_path / "enc2")
    assert all(e["from_cache"] for e in second["encoding"].values()), second["encoding"]
    for name, entry in first["encoding"].items():
        assert second["encoding"][name]["cache_entry"] == entry["cache_entry"]
        assert second["encoding"][name]["rows"] == entry["rows"]


def test_zeroshot_and_probe_on_separable_topics(text_data: dict[str, Path], cache: Path,
                                                tmp_path: Path) -> None:
    data = f"csv:{text_data['csv']}"
    invoke("zeroshot", *text_args(text_data, cache), "--out", tmp_path / "zs")
    zs = read_metrics(tmp_path / "zs")
    check_common(zs, data, "minilm", n_test=12)
    assert zs["command"] == "zeroshot" and zs["templates"] == "plain"
    assert set(zs["encoding"]) == {"test"}  # zero-shot encodes no training data
    assert zs["accuracy"] > 0.5  # chance is 1/3; the class names are the topics

    invoke("probe", *text_args(text_data, cache), "--out", tmp_path / "probe")
    probe = read_metrics(tmp_path / "probe")
    check_common(probe, data, "minilm", n_test=12)
    assert probe["n_train"] + probe["n_val"] == 78
    assert probe["accuracy"] >= 0.75

    # the Python twin gives the same numbers on the same cached embeddings
    config = workflows.RunConfig(data=data, encoder="minilm", cache_dir=str(cache))
    twin = workflows.run_probe(config, tmp_path / "probe-twin")
    assert twin["accuracy"] == probe["accuracy"]
    assert read_metrics(tmp_path / "probe-twin")["accuracy"] == probe["accuracy"]
    assert all(e["from_cache"] for e in twin["encoding"].values())


def test_zeroshot_twin_on_jsonl_without_split_column(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "texts.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for label, sentences in TOPICS.items():
            for s in sentences:
                fh.write(json.dumps({"text": s, "label": label}) + "\n")
    config = workflows.RunConfig(data=f"jsonl:{path}", cache_dir=str(cache))
    metrics = workflows.run_zeroshot(config, tmp_path / "zs")
    assert config.encoder == "minilm"  # the default text encoder was picked and recorded
    assert metrics["encoder"] == "minilm"
    assert metrics["n_test"] == 6  # seeded stratified 20% of 30
    assert metrics["splits"]["dataset"]["test_fraction"] == 0.2
    assert metrics["accuracy"] > 0.5
    assert read_metrics(tmp_path / "zs") == json.loads(json.dumps(metrics, default=str))


# ---------------------------------------------------------------------------------------------
# fit / predict / explain / intervene / cms on texts
# ---------------------------------------------------------------------------------------------


def check_fit_metrics(metrics: dict[str, Any], out: Path, method: str) -> None:
    for key in ("accuracy", "nec", "method", "n_concepts", "mean_active_concepts",
                "fit_seconds", "n_test", "encoder", "data", "seed"):
        assert key in metrics, key
    assert metrics["command"] == "fit" and metrics["method"] == method
    assert metrics["n_concepts"] == N_CONCEPTS
    assert 0 < metrics["mean_active_concepts"] <= N_CONCEPTS
    assert metrics["fit_seconds"] >= 0
    assert metrics["accuracy"] >= 0.75  # chance is 1/3
    assert metrics["concepts"]["origin"].startswith("file:")
    assert (out / "model" / "model.json").is_file()
    assert (out / "model" / "model.safetensors").is_file()
    assert json.loads((out / "encoder.json").read_text())["spec"] == "minilm"
    assert (out / "report.html").is_file()


def test_fit_l1_with_exact_nec(fit_l1: Path) -> None:
    metrics = read_metrics(fit_l1)
    check_fit_metrics(metrics, fit_l1, "l1")
    assert metrics["nec"] == 2  # exact NEC: 2 non-zero weights per class
    assert metrics["nec_requested"] == 2
    assert metrics["mean_active_concepts"] <= 2
    model, _ = cbm.load_saved(fit_l1)
    w, _ = model.effective_head()
    assert (np.count_nonzero(w, axis=1) <= 2).all() and np.count_nonzero(w) == 2 * 3


def test_fit_dncbm_reports_accuracy_beside_faithfulness(
        tmp_path: Path, text_data: dict[str, Path], cache: Path) -> None:
    out = fit_text_cbm_at(tmp_path / "dn", text_data, cache, "dncbm", "--nec", "2",
                          "--set", "units=24", "--set", "min_steps=300")
    metrics = read_metrics(out)
    assert metrics["method"] == "dncbm" and metrics["nec"] <= 2 + 1e-9
    assert metrics["accuracy"] > 0.5  # chance is 1/3
    faith = metrics["faithfulness"]
    assert faith["grounded_by"] == "naming" and "never a decision" in faith["controls"]
    assert -1 <= faith["unit_fidelity_median"] <= 1 and -1 <= faith["shuffled_name_fidelity"] <= 1
    assert isinstance(faith["trusted"], bool) and faith["warnings"]
    vocab = [line for line in VOCAB.splitlines() if line and line[0] not in "#["]
    assert metrics["units_used"] and {u["name"] for u in metrics["units_used"]} <= set(vocab)
    # a DN-CBM answers predict through the concept-model protocol like any CBM
    rows = invoke_json("predict", out, "--text", "a robot")
    assert len(rows) == 1 and rows[0]["prediction"] in NEW_TEXTS
    page = (out / "report.html").read_text()
    assert "units follow their concepts" in page and "(unit " in page  # audit badges, head


def test_fit_gumbel_dense_records_hyper_parameters(fit_gumbel: Path) -> None:
    metrics = read_metrics(fit_gumbel)
    check_fit_metrics(metrics, fit_gumbel, "gumbel")
    assert metrics["nec_requested"] is None
    assert metrics["hyper_parameters"]["train"]["max_epochs"] == 5


def test_predict_explain_intervene(fit_l1: Path, fit_gumbel: Path) -> None:
    texts = list(NEW_TEXTS.values())
    text_opts = [x for t in texts for x in ("--text", t)]
    rows = invoke_json("predict", fit_l1, *text_opts)
    assert [r["input"] for r in rows] == texts
    assert [r["prediction"] for r in rows] == list(NEW_TEXTS)
    assert all(0.0 <= r["probability"] <= 1.0 for r in rows)
    # the Python twin agrees
    twin = cbm.predict_saved(fit_l1, [], texts)
    assert [r["prediction"] for r in twin] == [r["prediction"] for r in rows]
    np.testing.assert_allclose([r["probability"] for r in twin],
                               [r["probability"] for r in rows], rtol=1e-6)

    # explain the dense (gumbel) model: at most 3 concepts, largest |contribution| first
    exps = invoke_json("explain", fit_gumbel, *text_opts, "--json", "--top", "3")
    assert len(exps) == 3
    preds = [r["prediction"] for r in invoke_json("predict", fit_gumbel, *text_opts)]
    for exp, text, pred in zip(exps, texts, preds, strict=True):
        assert exp["input"] == text and exp["prediction"] == pred
        assert 1 <= len(exp["concepts"]) <= 3
        contrib = [c["contribution"] for c in exp["concepts"]]
        assert [abs(c) for c in contrib] == sorted((abs(c) for c in contrib), reverse=True)
        for c in exp["concepts"]:
            assert c["contribution"] == pytest.approx(c["activation"] * c["weight"], rel=1e-5)
    # the table form prints too
    assert "contribution" in invoke("explain", fit_gumbel, "--text", texts[0]).stdout

    # intervene on the sparse model: silence the cooking concepts, raise the sports ones
    model, _ = cbm.load_saved(fit_l1)
    sets = [f"{name}=low" for name, _ in model.class_weights("cooking")]
    sets += [f"{name}=high" for name, w in model.class_weights("sports") if w > 0]
    set_opts = [x for s in sets for x in ("--set", s)]
    out = invoke_json("intervene", fit_l1, "--text", NEW_TEXTS["cooking"], *set_opts)
    assert len(out) == 1
    assert out[0]["input"] == NEW_TEXTS["cooking"]
    assert out[0]["before"] == "cooking" and out[0]["after"] == "sports"
    assert set(out[0]["set"]) == {s.rpartition("=")[0] for s in sets}
    assert all(isinstance(v, float) for v in out[0]["set"].values())

    # a bad intervention is a clean error naming the problem
    assert "no such concept" in invoke_fails(
        "intervene", fit_l1, "--text", "x", "--set", "no such concept=high")
    assert "banana" in invoke_fails(
        "intervene", fit_l1, "--text", "x", "--set", f"{sets[0].rpartition('=')[0]}=banana")
    assert "CONCEPT=VALUE" in invoke_fails("intervene", fit_l1, "--text", "x", "--set", "oops")


def test_predict_in_a_new_process_matches(fit_l1: Path, tmp_path: Path) -> None:
    texts = list(NEW_TEXTS.values())
    text_opts = [x for t in texts for x in ("--text", t)]
    here = invoke_json("predict", fit_l1, *text_opts)
    env = {**os.environ, **ENV}
    env.pop("CONCEPTLAB_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "conceptlab", "predict", str(fit_l1),
                           *text_opts, "--json"], capture_output=True, text=True, env=env,
                          cwd=tmp_path,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout)
    assert [r["prediction"] for r in there] == [r["prediction"] for r in here]
    assert [r["input"] for r in there] == texts
    np.testing.assert_allclose([r["probability"] for r in there],
                               [r["probability"] for r in here], rtol=1e-5)


def test_cms(text_data: dict[str, Path], cache: Path, tmp_path: Path) -> None:
    invoke("cms", *text_args(text_data, cache), "--out", tmp_path / "cms",
           "--concepts", text_data["vocab"])
    metrics = read_metrics(tmp_path / "cms")
    check_common(metrics, f"csv:{text_data['csv']}", "minilm", n_test=12)
    for key in ("accuracy", "accuracy_top_concept", "accuracy_zero_shot"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["accuracy"] > 0.5 and metrics["accuracy_zero_shot"] > 0.5
    assert metrics["n_concepts"] == N_CONCEPTS


@pytest.mark.parametrize("method", ["ref:sparsecbm-gumbel", "ref:lfcbm", "random-cbl"])
def test_fit_references_through_the_cli(method: str, text_data: dict[str, Path], cache: Path,
                                        tmp_path: Path) -> None:
    """A reference runs on the same data as every method, at an exact NEC, saves, reloads
    and predicts like the model it was."""
    extra: tuple[str, ...] = ()
    if method == "ref:lfcbm":  # a cutoff no cosine can pass: one line naming the setting
        assert "--set clip_cutoff=VALUE" in invoke_fails(
            "fit", *text_args(text_data, cache), "--out", tmp_path / "bad", "--concepts",
            text_data["vocab"], "--method", method, "--set", "clip_cutoff=1")
        extra = ("--set", "clip_cutoff=0", "--set", "interpretability_cutoff=0.2")
    out = fit_text_cbm_at(tmp_path / "ref", text_data, cache, method, "--nec", "2", *extra)
    metrics = read_metrics(out)
    assert metrics["method"] == method and metrics["nec"] <= 2 + 1e-9
    assert metrics["hyper_parameters"]["head"]["refit"] is False  # VLG-CBM's protocol
    assert metrics["hyper_parameters"]["train"]["finetune_epochs"] == 0
    assert "unit_fidelity_median" in metrics["faithfulness"]
    model, _ = cbm.load_saved(out)
    assert model.method == method and model.objective.reference


def test_cms_rule_ref(text_data: dict[str, Path], cache: Path, tmp_path: Path) -> None:
    invoke("cms", *text_args(text_data, cache), "--out", tmp_path / "cms",
           "--concepts", text_data["vocab"], "--rule", "ref")
    metrics = read_metrics(tmp_path / "cms")
    assert metrics["rule"] == "ref" and 0.0 <= metrics["mean_per_class_accuracy"] <= 1.0
    assert "--rule must be one of" in invoke_fails(
        "cms", *text_args(text_data, cache), "--out", tmp_path / "cms2", "--concepts",
        text_data["vocab"], "--rule", "columns")


# ---------------------------------------------------------------------------------------------
# images: folder data through ConSE at 64 px
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """24 tiny solid-colour PNGs: train/ (6 per colour) and test/ (2 per colour)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for name, rgb in COLOURS.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                noise = rng.integers(-20, 21, size=(32, 32, 3))
                pixels = np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    vocab = tmp_path_factory.mktemp("image-vocab") / "colours.txt"
    vocab.write_text(IMAGE_VOCAB, encoding="utf-8")
    return {"root": root, "vocab": vocab}


def test_image_folder_probe_fit_predict(image_data: dict[str, Path], cache: Path,
                                        tmp_path: Path) -> None:
    data = f"folder:{image_data['root']}"
    args = ["--data", data, "--encoder", "conse", "-E", "image_size=64", "--cache", str(cache)]
    invoke("probe", *args, "--out", tmp_path / "probe")
    probe = read_metrics(tmp_path / "probe")
    check_common(probe, data, "conse", n_test=6)
    assert probe["config"]["encoder_options"] == {"image_size": 64}
    assert 0.0 <= probe["accuracy_backbone_features"] <= 1.0
    assert probe["backbone_features_dim"] == 1280

    out = tmp_path / "fit"
    invoke("fit", *args, "--out", out, "--concepts", image_data["vocab"], "--method", "l1",
           "--nec", "1")
    fit = read_metrics(out)
    assert fit["nec"] == 1 and fit["n_concepts"] == 6 and 0.0 <= fit["accuracy"] <= 1.0
    assert json.loads((out / "encoder.json").read_text())["options"] == {"image_size": 64}

    images = sorted((image_data["root"] / "test").glob("*/*.png"))
    rows = invoke_json("predict", out, *[x for p in images for x in ("--input", p)])
    assert [r["input"] for r in rows] == [str(p) for p in images]
    assert {r["prediction"] for r in rows} <= set(COLOURS)
    correct = sum(r["prediction"] == p.parent.name for r, p in zip(rows, images, strict=True))
    assert correct / len(images) == pytest.approx(fit["accuracy"])  # the same 6 test images

    # a text file named .png: a clean error naming the file, no traceback
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello, I am text\n")
    message = invoke_fails("predict", out, "--input", bad)
    assert str(bad) in message and "image" in message
    assert str(tmp_path / "missing.png") in invoke_fails(
        "predict", out, "--input", tmp_path / "missing.png")


# ---------------------------------------------------------------------------------------------
# bad input: exit code 2 and a message naming the problem
# ---------------------------------------------------------------------------------------------


def test_unknown_data_encoder_and_method(text_data: dict[str, Path], cache: Path,
                                         tmp_path: Path) -> None:
    message = invoke_fails("probe", "--data", "nosuch:thing", "--cache", cache,
                           "--out", tmp_path / "a")
    assert "nosuch:thing" in message and "csv" in message  # names the known ones
    message = invoke_fails("probe", "--data", f"csv:{text_data['csv']}", "--encoder", "nope",
                           "--cache", cache, "--out", tmp_path / "b")
    assert "unknown encoder 'nope'" in message and "minilm" in message
    message = invoke_fails("fit", *text_args(text_data, cache), "--method", "nope",
                           "--out", tmp_path / "c")
    assert "unknown method 'nope'" in message and "gumbel" in message
    missing_csv = tmp_path / "no-such.csv"
    assert str(missing_csv) in invoke_fails("zeroshot", "--data", f"csv:{missing_csv}",
                                            "--cache", cache, "--out", tmp_path / "d")
    assert "KEY=VALUE" in invoke_fails("probe", *text_args(text_data, cache), "-E", "oops",
                                       "--out", tmp_path / "e")
    assert not any((tmp_path / d / "metrics.json").exists() for d in "abcde")


def test_error_messages_are_printed_verbatim(cache: Path, tmp_path: Path) -> None:
    # square brackets in a path are text, not console markup ('[/x]' used to raise)
    weird = tmp_path / "[/x]" / "[red]data.csv"
    message = invoke_fails("probe", "--data", f"csv:{weird}", "--cache", cache,
                           "--out", tmp_path / "out")
    assert str(weird) in message  # on one line, unwrapped, brackets kept


def test_vocabulary_errors_fail_before_any_encoding(text_data: dict[str, Path],
                                                    tmp_path: Path) -> None:
    fresh = tmp_path / "cache"
    missing = tmp_path / "missing-vocab.txt"
    for command in ("fit", "cms"):
        message = invoke_fails(command, *text_args(text_data, fresh), "--concepts", missing,
                               "--out", tmp_path / command)
        assert str(missing) in message and "no such file" in message
    empty = tmp_path / "empty.txt"
    empty.write_text("# only comments and headers\n[sports]\n\n[cooking]\n")
    message = invoke_fails("fit", *text_args(text_data, fresh), "--concepts", empty,
                           "--out", tmp_path / "fit")
    assert str(empty) in message and "no concepts" in message
    assert not fresh.exists() or not any(fresh.iterdir())  # nothing was encoded
    with pytest.raises(VocabularyError, match="no concepts"):
        cbm.run_fit(workflows.RunConfig(data=f"csv:{text_data['csv']}", cache_dir=str(fresh)),
                    tmp_path / "twin", concepts=str(empty))


def test_predict_refuses_a_folder_that_is_not_a_model(text_data: dict[str, Path], cache: Path,
                                                      tmp_path: Path) -> None:
    enc = tmp_path / "enc"
    invoke("encode", *text_args(text_data, cache), "--out", enc)
    message = invoke_fails("predict", enc, "--text", "hello")
    assert str(enc) in message and "not a saved model" in message
    nowhere = tmp_path / "nowhere"
    message = invoke_fails("predict", nowhere, "--text", "hello")
    assert str(nowhere) in message and "no such folder" in message


@pytest.mark.parametrize("encoder_record", [
    {"spec": "minilm", "options": {"normalize": False}},  # other embeddings
    {"spec": "st:MINILM", "options": {}},  # the same weights under another identity
], ids=["minilm-unnormalised", "st-path"])
def test_predict_refuses_a_mismatching_encoder(fit_l1: Path, tmp_path: Path,
                                               encoder_record: dict[str, Any]) -> None:
    run = tmp_path / "run"
    shutil.copytree(fit_l1, run)
    record = json.loads((run / "encoder.json").read_text())
    record.update(spec=encoder_record["spec"].replace("MINILM", str(minilm_path())),
                  options=encoder_record["options"])
    (run / "encoder.json").write_text(json.dumps(record))
    for command in ("predict", "explain"):
        message = invoke_fails(command, run, "--text", NEW_TEXTS["sports"])
        assert "fingerprint" in message and "re-fit" in message
    message = invoke_fails("intervene", run, "--text", "x", "--set", "a ball game=high")
    assert "fingerprint" in message


def test_a_failing_fit_keeps_the_earlier_results(fit_l1: Path, text_data: dict[str, Path],
                                                 cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    shutil.copytree(fit_l1, out)
    kept = {p: p.read_bytes() for p in (out / "metrics.json", out / "encoder.json",
                                        out / "model" / "model.json",
                                        out / "model" / "model.safetensors")}
    before = invoke_json("predict", out, "--text", NEW_TEXTS["cooking"])
    base = ["fit", *text_args(text_data, cache), "--out", out, "--concepts", text_data["vocab"]]
    failures = {
        "unknown setting": ["--set", "bogus=1"],  # refused before encoding
        "nec must be": ["--nec", "-1"],
        "concept_labels": ["--method", "supervised"],  # fails inside model.fit
        "unknown method": ["--method", "nope"],
    }
    for expected, extra in failures.items():
        assert expected in invoke_fails(*base, *extra)
        for path, content in kept.items():
            assert path.read_bytes() == content, f"{path} changed after a failing fit"
    assert "no such file" in invoke_fails("fit", *text_args(text_data, cache), "--out", out,
                                          "--concepts", tmp_path / "missing.txt")
    assert all(path.read_bytes() == content for path, content in kept.items())

    # a failure after a (different) model was fitted, while the report is written: the
    # earlier model, its encoder record and metrics.json stay together
    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "disk full")

    monkeypatch.setattr(cbm, "build_report", disk_full)
    assert "disk full" in invoke_fails(*base, "--method", "gumbel")
    assert all(path.read_bytes() == content for path, content in kept.items())
    assert invoke_json("predict", out, "--text", NEW_TEXTS["cooking"]) == before


# ---------------------------------------------------------------------------------------------
# audit
# ---------------------------------------------------------------------------------------------


def test_audit_recomputes_the_recorded_profile_of_a_cbm_run(fit_l1: Path) -> None:
    record = invoke_json("audit", fit_l1, "--json")
    recorded = read_metrics(fit_l1)["faithfulness"]
    assert record["claims"] == recorded["claims"]  # same data, same seed: the same profile
    assert record["trusted"] is recorded["trusted"] is False
    # 12 test items: too few to decide, said so rather than passed
    assert record["claims"]["units_follow_concepts"]["status"] == "undecided"
    assert "too few" in record["claims"]["units_follow_concepts"]["reason"]
    table = invoke("audit", fit_l1).output
    assert "do the units follow their concepts?" in table and "NOT trusted" in table


def test_audit_reads_concept_example_sets(fit_l1: Path, tmp_path: Path) -> None:
    ex = tmp_path / "examples"
    ex.mkdir()
    (ex / "a_ball_game.txt").write_text("a football match\nplayers kick the ball\n"
                                        "the tennis rally went on\n")
    (ex / "random.txt").write_text("the weather is mild\na chair by the window\n"
                                   "seven plus three\n")
    record = invoke_json("audit", fit_l1, "--concept-examples", ex, "--json")
    claim = record["claims"]["concepts_mean_words"]
    assert claim["source"] == "concept example sets" and claim["n_concepts"] == 1
    assert 0 <= record["concept_auroc_mean"] <= 1
    (ex / "random.txt").unlink()
    assert "random" in invoke_fails("audit", fit_l1, "--concept-examples", ex)


def test_audit_works_on_a_dncbm_run_and_refuses_a_folder_that_is_not_a_run(
        tmp_path: Path, text_data: dict[str, Path], cache: Path) -> None:
    out = fit_text_cbm_at(tmp_path / "dn", text_data, cache, "dncbm", "--nec", "2",
                          "--set", "units=24", "--set", "min_steps=300")
    record = invoke_json("audit", out, "--json")
    assert record["grounded_by"] == "naming"
    assert record["claims"]["decisions_need_concepts"]["status"] == "not measured"
    assert record["claims"] == read_metrics(out)["faithfulness"]["claims"]
    assert "not a run folder" in invoke_fails("audit", tmp_path)
