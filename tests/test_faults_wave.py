"""Faults a new user met by trying bad inputs and broken machines (issue 19, item 7), each
closed with a test that failed before its fix: one clear ``error:`` line (or working
behaviour) instead of a traceback, a raw library message or a hang."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from PIL import Image

import tests.bottleneck.tiny_runs  # noqa: F401  (registers the tinyjoint encoder)
from conceptlab.errors import OutputError
from tests.cli_support import invoke, invoke_fails, isolated_env


@pytest.fixture(autouse=True)
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_model() -> Any:
    from tests.report.tiny_explorer import fit_tiny

    return fit_tiny()[0]


# ---------------------------------------------------------------------------------------------
# align: a caption CSV may name its images by absolute paths
# ---------------------------------------------------------------------------------------------

def test_align_reads_a_caption_csv_with_absolute_image_paths(tmp_path: Path) -> None:
    images, csv_dir = tmp_path / "elsewhere", tmp_path / "captions"
    images.mkdir()
    csv_dir.mkdir()
    rows = ["image,caption"]
    for name, rgb in (("red", (220, 30, 30)), ("green", (30, 200, 30)), ("blue", (30, 30, 220))):
        for j in range(8):
            path = images / f"{name}{j}.png"
            Image.new("RGB", (8, 8), tuple(min(255, v + 3 * j) for v in rgb)).save(path)
            rows.append(f"{path},a {name} square")  # absolute, outside the CSV's folder
    csv = csv_dir / "caps.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "map"
    invoke("align", "--data", f"captions:{csv}", "--image-encoder", "tinyjoint",
           "--text-encoder", "tinyjoint", "--method", "ridge", "--out", out,
           "--cache", tmp_path / "cache")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chosen"]["method"] == "ridge"
    assert metrics["test"]["ridge"]["R@1"] > 0  # the held-out images found their captions
    # the data fingerprint sees the absolute files: touching one changes it
    from conceptlab.data import build_dataset

    before = build_dataset(f"captions:{csv}").official_split("train").source.fingerprint()
    first = images / "red0.png"
    Image.new("RGB", (9, 9), (1, 2, 3)).save(first)
    after = build_dataset(f"captions:{csv}").official_split("train").source.fingerprint()
    assert before != after


# ---------------------------------------------------------------------------------------------
# a full disk: one line naming the file, never a SafetensorError traceback
# ---------------------------------------------------------------------------------------------

def _disk_full_safetensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """safetensors as it behaves on a full disk (what 0.8 raises on ENOSPC)."""
    import safetensors.numpy
    from safetensors import SafetensorError

    def save_file(*args: Any, **kwargs: Any) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")

    monkeypatch.setattr(safetensors.numpy, "save_file", save_file)


def test_full_disk_while_saving_a_model_is_an_output_error_naming_the_file(
        tiny_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conceptlab.bottleneck.saving import save_model
    from conceptlab.utils.io import atomic_run_dir

    _disk_full_safetensors(monkeypatch)
    folder = tmp_path / "alone" / "model"
    with pytest.raises(OutputError) as err:
        save_model(tiny_model, folder)
    assert str(err.value) == (f"{folder / 'model.safetensors'}: cannot write "
                              "(No space left on device)")
    assert not folder.exists()
    # inside a run (a first fit): the message names the file under --out, not a staging folder
    out = tmp_path / "run"
    with pytest.raises(OutputError) as err, atomic_run_dir(out) as stage:
        save_model(tiny_model, stage / "model")
    text = str(err.value)
    assert text.startswith(f"{out / 'model' / 'model.safetensors'}: cannot write (No space "
                           "left on device)") and ".stage-" not in text
    assert not out.exists() and list(tmp_path.glob(".run.stage-*")) == []


def test_full_disk_error_without_a_file_name_names_the_run(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from conceptlab.cli.common import call
    from conceptlab.utils.io import atomic_run_dir

    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")  # an earlier run: a rerun must keep it

    def rerun() -> None:
        with atomic_run_dir(out) as stage:
            (stage / "metrics.json").write_text('{"new": 1}')
            raise OSError(errno.ENOSPC, "No space left on device")  # as a PNG encoder does

    with pytest.raises(typer.Exit):
        call(rerun)
    line = capsys.readouterr().err.strip()
    assert line.count("error:") == 1 and "Traceback" not in line
    assert f"--out {out}: cannot write (No space left on device)" in line.replace("\n", "")
    assert (out / "metrics.json").read_text() == "{}"


def test_save_tensors_keeps_other_safetensors_errors_as_bugs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.numpy
    from safetensors import SafetensorError

    from conceptlab.utils.io import save_tensors

    def save_file(*args: Any, **kwargs: Any) -> None:
        raise SafetensorError("Error while serializing: tensor x is misaligned")

    monkeypatch.setattr(safetensors.numpy, "save_file", save_file)
    with pytest.raises(SafetensorError, match="misaligned"):  # a caller's bug, not the disk
        save_tensors({"x": np.zeros(2, np.float32)}, tmp_path / "x.safetensors")


# ---------------------------------------------------------------------------------------------
# report --out: a file in the way, a folder, a folder that refuses writes
# ---------------------------------------------------------------------------------------------

def _min_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"command": "fit", "method": "l1",
                                                     "data": "planted", "accuracy": 0.5}))
    return folder


def test_report_out_that_cannot_be_written_is_one_line_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import tempfile

    run = _min_run(tmp_path / "run")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    inside_file = blocker / "report.html"
    line = invoke_fails("report", run, "--out", inside_file)
    assert f"{blocker} (above it) is a file" in line.replace("\n", "")
    folder = tmp_path / "page.html"
    folder.mkdir()
    line = invoke_fails("report", run, "--out", folder)
    assert "is a folder" in line and ".tmp" not in line
    # a read-only folder (root ignores modes: then the OS's refusal is simulated)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        real = tempfile.mkstemp

        def mkstemp(*args: Any, **kwargs: Any) -> Any:
            if Path(kwargs.get("dir") or ".").resolve() == ro.resolve():
                raise PermissionError(errno.EACCES, "Permission denied", str(ro))
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    try:
        line = invoke_fails("report", run, "--out", ro / "report.html")
    finally:
        ro.chmod(0o755)
    assert f"{ro}: cannot write here (Permission denied)" in line.replace("\n", "")
    assert not (ro / "report.html").exists()
    # an existing file is replaced, and a new folder is made
    for good in (tmp_path / "old.html", tmp_path / "new" / "deep" / "report.html"):
        if good.name == "old.html":
            good.write_text("old")
        invoke("report", run, "--out", good)
        assert good.read_text().lower().startswith("<!doctype html>")


# ---------------------------------------------------------------------------------------------
# serve: a taken port or a host this machine does not have is one line, before "ready"
# ---------------------------------------------------------------------------------------------

def test_serve_refuses_a_taken_port_and_a_foreign_host_before_ready(tmp_path: Path) -> None:
    import socket

    pytest.importorskip("uvicorn")
    run = _min_run(tmp_path / "run")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = invoke_fails("serve", run, "--host", "127.0.0.1", "--port", port)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "pick another --port" in line
    assert "explorer ready" not in line
    # 203.0.113.7 (TEST-NET-3) is never an address of this machine
    line = invoke_fails("serve", run, "--host", "203.0.113.7", "--port", 8799)
    assert "cannot listen on 203.0.113.7:8799" in line and "explorer ready" not in line


# ---------------------------------------------------------------------------------------------
# encode --engine-option: an unknown key names the known ones, before any work
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("engine", "option", "words"), [
    ("local", "bogus=1", "unknown option 'bogus' for the local engine; known: batch_size"),
    ("ray", "workers=2", "unknown option 'workers' for the ray engine; known: num_cpus, "
                         "num_gpus, concurrency, batch_size, local_cpus"),
    ("local", "batch_size=0", "batch_size: expected a positive integer, got 0"),
    ("ray", "num_gpus=-1", "num_gpus: expected a number >= 0, got -1"),
])
def test_a_bad_engine_option_is_one_line_before_encoding(tmp_path: Path, engine: str,
                                                         option: str, words: str) -> None:
    cache = tmp_path / "cache"
    line = invoke_fails("encode", "--data", "idsprites", "-D", "n_train=40", "-D", "n_test=20",
                        "-D", "img_size=16", "-D", f"cache_dir={cache / 'data'}",
                        "--encoder", "tinyjoint", "--cache", cache, "--out", tmp_path / "enc",
                        "--engine", engine, "--engine-option", option)
    assert words in line.replace("\n", ""), line
    assert not cache.exists() and not (tmp_path / "enc").exists()  # nothing was built


# ---------------------------------------------------------------------------------------------
# absurd numbers: refused in one line, no RuntimeWarning, no torch overflow traceback
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved CBM run on the tinyjoint encoder (24-d), fitted in about a second on words
    planted in the encoder's own text space: predict / intervene rebuild its encoder."""
    from conceptlab.bottleneck.model import ConceptBottleneckModel
    from conceptlab.concepts.bank import ConceptBank
    from tests.bottleneck.tiny_runs import TinyJoint

    enc = TinyJoint()
    words = ["red", "round", "green", "square", "blue", "striped"]
    V = enc.encode_texts(words)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 60)
    X = V[2 * y] + V[2 * y + 1] + 0.3 * rng.standard_normal((len(y), V.shape[1]))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    bank = ConceptBank(V, words, provenance={"encoder": "tinyjoint",
                                             "encoder_fingerprint": enc.fingerprint()})
    model = ConceptBottleneckModel.from_options(
        bank, ["cherry", "lime", "berry"], method="l1",
        options={"max_epochs": 8, "patience": 3, "show_progress": False}, seed=0)
    model.fit(X[::2], y[::2], X[1::2], y[1::2])
    run = tmp_path_factory.mktemp("tiny-run") / "run"
    model.save(run / "model")
    (run / "encoder.json").write_text(json.dumps({"spec": "tinyjoint", "options": {},
                                                  "fingerprint": enc.fingerprint()}))
    (run / "metrics.json").write_text(json.dumps({"command": "fit", "method": "l1",
                                                  "encoder": "tinyjoint"}))
    return run


def test_intervene_with_an_absurd_value_is_one_line_without_a_warning(tiny_run: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked RuntimeWarning fails the command
        line = invoke_fails("intervene", tiny_run, "--text", "a red round thing",
                            "--set", "red=1e308")
        assert "value for 'red' must lie in" in line and ".py" not in line
        ok = invoke("intervene", tiny_run, "--text", "a red round thing", "--set", "red=absent",
                    "--json")
    assert json.loads(ok.stdout)[0]["set_as"] == {"red": "absent"}


@pytest.mark.parametrize(("key", "value", "words"), [
    ("train.weight_decay", 1e308, "magnitude at most 1e"),  # torch overflowed on it
    ("train.lr", 3e38, "magnitude at most 1e"),  # so did it here (Adam's step is 10 lr)
    ("lam", -1e300, "magnitude at most 1e"),
    ("head.weight_decays", 1e308, "expected a list of numbers"),  # was taken as a float
    ("head.weight_decays", [0.1, 1e308], "magnitude at most 1e"),
])
def test_a_setting_beyond_float32_is_refused_by_name(key: str, value: Any, words: str) -> None:
    from conceptlab.bottleneck.options import split_options
    from conceptlab.errors import OptionError

    with pytest.raises(OptionError, match=words) as err:
        split_options("l1", {key: value})
    assert key in str(err.value)
    assert split_options("l1", {"head.weight_decays": [0.1, 1]}).head.weight_decays == (0.1, 1.0)


@pytest.mark.parametrize(("method", "options"), [
    ("l1", {"lam": 1e30, "train.lr": 1e30}),  # the repository's training loop
    ("ref:sparsecbm-gumbel", {"logit_scale": 1e30}),  # a reference's own loop
])
def test_a_setting_that_makes_training_diverge_is_a_conceptlab_error(
        tiny_model: Any, method: str, options: dict[str, Any]) -> None:
    import warnings

    from conceptlab.bottleneck.model import ConceptBottleneckModel
    from conceptlab.errors import ComputeError
    from tests.planted import PLANTED

    X, y, _, _, _ = PLANTED.data(120, 1)
    model = ConceptBottleneckModel.from_options(
        tiny_model.bank, tiny_model.class_names, method=method,
        options={**options, "max_epochs": 3, "show_progress": False}, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Converting a tensor with requires_grad" warning
        with pytest.raises(ComputeError, match=r"loss became (nan|inf)") as err:
            model.fit(X, y, X, y)
    assert isinstance(err.value, FloatingPointError)  # older callers catch this


# ---------------------------------------------------------------------------------------------
# lm probe: --folds and --layers are checked before the model loads
# ---------------------------------------------------------------------------------------------

def test_lm_probe_refuses_bad_folds_and_layers_before_loading_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import conceptlab.workflows.lm as lm_workflows
    from conceptlab.errors import OptionError
    from tests.lm.tiny import tiny_lm

    lm = tiny_lm(layers=3)
    folder = tmp_path / "tiny-model"
    lm.model.save_pretrained(folder)  # config.json says 3 blocks
    lines = ["text,label"] + [f"the {w} is,animal" for w in ("cat", "dog", "cow")] + \
        [f"the {w} is,object" for w in ("car", "lamp", "chair", "table")]
    prompts = tmp_path / "p.csv"
    prompts.write_text("\n".join(lines) + "\n")

    def no_load(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(lm_workflows, "load_lm", no_load)
    base = ["lm", "probe", "--model", folder, "--data", f"csv:{prompts}", "--out",
            tmp_path / "out"]
    line = invoke_fails(*base, "--folds", "2", "--layers", "0,999")
    assert "--layers [999] out of range" in line and "3 blocks (0..2)" in line
    line = invoke_fails(*base, "--folds", "4")  # the smallest class has 3 prompts
    assert "--folds 4" in line and "only 3 prompts in its smallest class" in line
    assert "2..3" in line
    with pytest.raises(OptionError, match="--folds must be an integer >= 2"):
        lm_workflows.run_lm_probe([f"csv:{prompts}"], model=str(folder), folds=0)
    with pytest.raises(OptionError, match="block indices start at 0"):
        lm_workflows.run_lm_probe([f"csv:{prompts}"], model=str(folder), folds=2, layers=[-1])
    from typer.testing import CliRunner

    from conceptlab.cli import app

    zero = CliRunner().invoke(app, [str(a) for a in (*base, "--folds", "0")])
    assert zero.exit_code == 2 and "--folds" in zero.output
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# data folders: links are followed, link loops are not
# ---------------------------------------------------------------------------------------------

def test_image_folders_do_not_follow_a_symlink_loop(tmp_path: Path) -> None:
    import os

    from conceptlab.data import build_dataset
    from conceptlab.tcav.sets import list_concepts

    root = tmp_path / "data"
    for cls, rgb in (("red", (250, 0, 0)), ("blue", (0, 0, 250))):
        (root / cls / "sub").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), rgb).save(root / cls / f"{i}.png")
        Image.new("RGB", (8, 8), rgb).save(root / cls / "sub" / "deep.png")
        os.symlink("..", root / cls / "sub" / "up")  # red/sub/up -> red: a loop
    os.symlink(root, root / "red" / "all")  # a loop through the data root itself
    shared = tmp_path / "shared"
    shared.mkdir()
    Image.new("RGB", (8, 8), (0, 250, 0)).save(shared / "extra.png")
    os.symlink(shared, root / "blue" / "linked")  # a plain link: still followed
    ds = build_dataset(f"folder:{root}")
    assert ds.class_names == ["blue", "red"]
    listed = []
    for name in ("train", "test"):
        split = ds.official_split(name)
        listed += [split.source.relpaths[int(i)] for i in split.indices]
    assert sorted(listed) == ["blue/0.png", "blue/1.png", "blue/2.png", "blue/linked/extra.png",
                              "blue/sub/deep.png", "red/0.png", "red/1.png", "red/2.png",
                              "red/sub/deep.png"]
    # TCAV concept folders walk the same way
    concepts = list_concepts(root)
    assert len(concepts["red"][1]) == 4 and len(concepts["blue"][1]) == 5


# ---------------------------------------------------------------------------------------------
# verified already fixed on this branch; pinned here
# ---------------------------------------------------------------------------------------------

def test_a_malformed_model_json_is_one_line_naming_the_file(tiny_model: Any,
                                                            tmp_path: Path) -> None:
    from conceptlab.bottleneck.concept_model import load_concept_model
    from conceptlab.errors import ConceptlabError

    folder = tmp_path / "model"
    tiny_model.save(folder)
    meta_file = folder / "model.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConceptlabError) as err:
        load_concept_model(folder)
    assert str(meta_file) in str(err.value) and "nested too deeply" in str(err.value)
    meta_file.write_text(json.dumps({**meta, "kind": "mystery_model"}))
    with pytest.raises(ConceptlabError) as err:
        load_concept_model(folder)
    text = str(err.value)
    assert "mystery_model" in text and str(folder) in text and "(format=" not in text


def test_a_negative_seed_names_the_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from conceptlab.cli import app

    result = CliRunner().invoke(app, ["fit", "--data", "idsprites", "--seed", "-1", "--out",
                                      str(tmp_path / "run")])
    assert result.exit_code == 2 and "--seed" in result.output
    assert not (tmp_path / "run").exists()
