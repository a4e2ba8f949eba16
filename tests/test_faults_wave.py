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
