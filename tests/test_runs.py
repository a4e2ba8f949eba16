"""The run lifecycle (``conceptlab.runs``) and its contract over every command that writes a
folder: ``--out`` refused before any work, a failure at any write step leaves the earlier run,
a rerun replaces the run whole, records name the run and not its staging folder."""

from __future__ import annotations

import ast
import inspect
import json
import logging
from pathlib import Path

import pytest

import conceptlab.workflows as workflows_pkg
from conceptlab.errors import InputError, OutputError
from conceptlab.runs import RUN_FIELDS, field_description, load_run, open_run
from conceptlab.workflows import lm as lm_runs
from tests.lm.test_workflows import _prompts
from tests.lm.tiny import tiny_lm


def earlier_run(out: Path) -> dict[Path, bytes]:
    """An earlier run at ``out``: its files and their bytes."""
    out.mkdir(parents=True)
    (out / "metrics.json").write_text('{"command": "old"}')
    (out / "old-only.txt").write_text("stale")
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def unchanged(files: dict[Path, bytes], out: Path) -> bool:
    now = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    return now == files


def no_staging_left(out: Path) -> bool:
    return not [p for p in out.parent.iterdir() if ".stage-" in p.name or ".old-" in p.name]


# ------------------------------------------------------------------------------------------------
# open_run itself
# ------------------------------------------------------------------------------------------------


def test_bad_out_is_refused_before_the_body_runs(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    ran = []
    with pytest.raises(OutputError, match="is a file"), open_run("fit", tmp_path / "file" / "run"):
        ran.append(1)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_text("x")
    with pytest.raises(OutputError, match="not a conceptlab run"), open_run("fit", other):
        ran.append(1)
    assert ran == [] and (other / "holiday.jpg").exists()


def test_a_failure_leaves_the_earlier_run_and_a_rerun_replaces_it_whole(tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = earlier_run(out)
    with pytest.raises(RuntimeError, match="killed"), open_run("fit", out) as run:
        (run.path("metrics.json")).write_text('{"command": "new, half written"}')
        raise RuntimeError("killed")
    assert unchanged(before, out) and no_staging_left(out)
    with open_run("fit", out) as run:
        run.finish({"accuracy": 0.5})
    assert not (out / "old-only.txt").exists()  # nothing stale of the earlier run
    record = json.loads((out / "metrics.json").read_text())
    assert record["command"] == "fit" and record["accuracy"] == 0.5
    assert {"version", "compute", "seconds"} <= set(record)
    assert no_staging_left(out)


def test_records_name_the_run_not_its_staging_folder(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="conceptlab.runs"), open_run("discover",
                                                                           out) as run:
        assert run.dir is not None and run.dir != out and ".stage-" in run.dir.name
        staged = run.path("banks", "a", "bank.json")
        assert staged.parent.is_dir()
        assert run.shown("banks", "a") == str(out / "banks" / "a")
        assert run.shown_of(staged) == str(out / "banks" / "a" / "bank.json")
        run.finish({})
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("discover: start") and lines[-1].startswith("discover: end")
    assert str(out) in lines[-1] and ".stage-" not in " ".join(lines)


def test_no_out_writes_nothing_but_still_records(tmp_path: Path) -> None:
    with open_run("probe", None, seed=3) as run:
        assert not run.writes
        with pytest.raises(OutputError, match="no --out"):
            run.path("x")
        record = run.finish({})
    assert record["command"] == "probe" and "version" in record
    assert list(tmp_path.iterdir()) == []


def test_run_fields_are_declared_once_with_descriptions() -> None:
    assert {"command", "version", "compute", "seed", "seconds"} <= set(RUN_FIELDS)
    assert all(len(d) > 20 for d in RUN_FIELDS.values())
    assert "seed" in field_description("seed")
    with pytest.raises(InputError, match="unknown run-record field"):
        field_description("colour")


def test_load_run_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a run folder"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text('{"command": "lm probe"}')
    run = load_run(tmp_path)
    with pytest.raises(InputError, match="cannot rebuild its splits"):
        run.rebuild_splits()
    with pytest.raises(Exception, match="no saved model"):
        run.load_model()


# ------------------------------------------------------------------------------------------------
# every command that writes a folder goes through open_run
# ------------------------------------------------------------------------------------------------


def writing_workflows() -> list[tuple[str, object]]:
    """Every public ``run_*`` function of ``conceptlab.workflows`` that takes an ``out``."""
    import importlib
    import pkgutil

    found = []
    for info in pkgutil.iter_modules(workflows_pkg.__path__):
        module = importlib.import_module(f"conceptlab.workflows.{info.name}")
        for name, fn in vars(module).items():
            if name.startswith("run_") and inspect.isfunction(fn) and \
                    fn.__module__ == module.__name__ and "out" in inspect.signature(fn).parameters:
                found.append((f"{info.name}.{name}", fn))
    return found


def calls_open_run(fn: object) -> bool:
    """Whether ``fn`` enters ``open_run`` itself or through a helper of its own module that
    does (``run_cab`` runs its job inside one)."""
    tree = ast.parse(inspect.getsource(fn))  # type: ignore[arg-type]
    names = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name)}
    return "open_run" in names


def test_every_command_that_writes_a_folder_opens_a_run() -> None:
    found = writing_workflows()
    assert len(found) >= 20  # fit, cms, encode, probe, zeroshot, demo, align, discover, lm ...
    missing = [name for name, fn in found if not calls_open_run(fn)]
    assert missing == [], f"these commands write a folder without runs.open_run: {missing}"


def test_lm_probe_checks_out_before_loading_the_model(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model loaded before --out was checked")

    monkeypatch.setattr(lm_runs, "load_lm", no_model)
    with pytest.raises(OutputError, match="is a file"):
        lm_runs.run_lm_probe([_prompts(tmp_path)], tmp_path / "file" / "out")


def test_a_killed_lm_probe_rerun_leaves_the_earlier_run_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lm = tiny_lm()
    spec = _prompts(tmp_path)
    out = tmp_path / "probe"
    first = lm_runs.run_lm_probe([spec], out, lm=lm, n_boot=20, layers=[0, 1])
    assert first["concepts"][0]["bank"] == str(out / "banks" / "tiny")
    assert Path(first["figure"]) == out / "depth.png"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # a kill after the new banks were written

    monkeypatch.setattr(lm_runs.lm_plots, "plot_depth", killed)
    with pytest.raises(KeyboardInterrupt):
        lm_runs.run_lm_probe([spec], out, lm=lm, n_boot=20, layers=[2])
    assert unchanged(before, out) and no_staging_left(out)
