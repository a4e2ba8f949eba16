"""The options this wave added to the command line reach their library twins: ``shift``,
``hook-points``, the global ``--device`` / ``--dtype``, ``discover --naming`` / ``--patch-size``
/ ``-E``, ``importance --baseline`` and ``lm steer --control-vector``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conceptlab.workflows import discover as discover_wf
from conceptlab.workflows import lm as lm_wf
from tests.cli_support import invoke, invoke_fails, invoke_json
from tests.shift.test_vectors import planted


def test_shift_command_recovers_the_planted_moves(tmp_path: Path) -> None:
    base, tuned, moves, _ = planted()
    np.save(tmp_path / "a.npy", base)
    np.save(tmp_path / "b.npy", tuned)
    m = invoke_json("shift", tmp_path / "a.npy", tmp_path / "b.npy", "--out", tmp_path / "run",
                    "--k", "3")
    assert sorted(np.round(m["shift_norms"], 1)) == sorted(
        np.round(np.linalg.norm(moves, axis=1), 1))
    assert (tmp_path / "run" / "shift.safetensors").is_file()
    table = invoke("shift", tmp_path / "a.npy", tmp_path / "b.npy", "--out", tmp_path / "r2",
                   "--k", "3").output
    assert "3 concepts over 90 inputs" in table
    assert "no file" in invoke_fails("shift", tmp_path / "none.npy", tmp_path / "b.npy",
                                     "--out", tmp_path / "r3")
    assert not (tmp_path / "r3").exists()


def test_hook_points_lists_the_taps_canonical_names() -> None:
    points = invoke_json("hook-points", "--encoder", "efficientnet")
    assert points[0].startswith("blocks.0.") and "features" in points
    assert "no torch network" in invoke_fails("hook-points", "--encoder", "minilm")


def test_global_device_and_dtype_are_checked_before_any_work() -> None:
    assert "not available" in invoke_fails("--device", "cuda:7", "hook-points")
    assert "unknown device" in invoke_fails("--device", "tpu", "hook-points")
    assert "unknown dtype" in invoke_fails("--dtype", "fp8", "hook-points")
    assert "features" in invoke_json("--device", "cpu", "--dtype", "float32", "hook-points")


def test_discover_and_importance_pass_their_new_options(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_discover(data: str, out: Any, **kw: Any) -> dict[str, Any]:
        seen.update(kw)
        return {"layer": "features", "per_class": {}, "naming": {"option": kw["naming"]}}

    def fake_importance(folder: Any, class_name: str, **kw: Any) -> dict[str, Any]:
        seen["baseline"] = kw["baseline"]
        return {"class": class_name, "n_images": 1, "fidelity": {}, "ranking": {}, "pngs": []}

    monkeypatch.setattr(discover_wf, "run_discover", fake_discover)
    monkeypatch.setattr(discover_wf, "run_importance", fake_importance)
    out = invoke("discover", "--out", tmp_path / "d", "--method", "craft", "--patch-size", "32",
                 "--naming", "imagenet", "-E", "image_size=96").output
    assert seen["patch_size"] == 32 and seen["naming"] == "imagenet"
    assert seen["encoder_options"] == {"image_size": 96} and seen["image_size"] == 128
    assert "names from imagenet" in out
    invoke("importance", tmp_path / "d", "--class", "x", "--baseline", "resample")
    assert seen["baseline"] == "resample"


def test_importance_refuses_an_unknown_baseline_before_any_work(tmp_path: Path) -> None:
    run = tmp_path / "d"
    run.mkdir()
    (run / "metrics.json").write_text('{"class_names": ["a"], "per_class": {"a": {}}}')
    assert "baseline" in invoke_fails("importance", run, "--class", "a", "--baseline", "mean")


def test_lm_steer_passes_the_control_vector_path(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_steer(data: str, out: Any, **kw: Any) -> dict[str, Any]:
        seen.update(kw)
        return {"rows": []}

    monkeypatch.setattr(lm_wf, "run_lm_steer", fake_steer)
    invoke("lm", "steer", "--out", tmp_path / "s", "--control-vector", tmp_path / "v.gguf")
    assert seen["control_vector"] == tmp_path / "v.gguf"


def test_device_and_dtype_may_follow_the_command() -> None:
    import subprocess
    import sys

    from conceptlab.cli import hoist_global_options

    assert hoist_global_options(["fit", "--data", "x", "--device", "cpu", "--dtype=float32"]) \
        == ["--device", "cpu", "--dtype=float32", "fit", "--data", "x"]
    assert hoist_global_options(["encode", "--", "--device"]) == ["encode", "--", "--device"]
    proc = subprocess.run([sys.executable, "-m", "conceptlab", "hook-points", "--device",
                           "cuda:7"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "not available" in proc.stderr + proc.stdout
