"""Atomic writes: a failure keeps the earlier file; results get ordinary permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conceptlab.utils.io import atomic_dir, read_json, write_json_atomic


def test_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"accuracy": 0.5})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"accuracy": object()})
    assert read_json(target) == {"accuracy": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        import importlib

        import conceptlab.utils.io as io_mod

        importlib.reload(io_mod)
        path = io_mod.write_json_atomic(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_atomic_dir_replaces_only_on_success(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    with atomic_dir(folder) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_dir(folder) as tmp:
        (tmp / "a.txt").write_text("second")
        raise RuntimeError("interrupted")
    assert (folder / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
