"""Engines: the Ray Data engine on a local 2-CPU Ray writes the same cache entries, byte for
byte, as the local loop; bad engine names and options fail before any work."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pytest

from conceptlab.cache import ActivationCache
from conceptlab.engines import build_engine
from conceptlab.utils.io import read_json
from conceptlab.workflows.baselines import run_encode
from conceptlab.workflows.prepare import RunConfig


def _entries(root: Path) -> dict[str, dict[str, np.ndarray]]:
    cache = ActivationCache(root)
    out = {}
    for meta_path in sorted(root.glob("*/meta.json")):
        meta = read_json(meta_path)
        views = {}
        for shard in meta["shards"]:
            for view, arr in cache._read_shard(meta_path.parent / shard["file"],
                                               meta["views"]).items():
                views.setdefault(view, []).append(arr)
        out[meta_path.parent.name] = {v: np.concatenate(a) for v, a in views.items()}
        keys = cache._read_shard(meta_path.parent / meta["item_keys"], ["keys"])["keys"]
        out[meta_path.parent.name]["item_keys"] = keys
    return out


def test_unknown_engine_and_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        build_engine("spark")
    with pytest.raises(ValueError, match="--address is for --engine ray"):
        build_engine("local", address="ray://head:10001")
    with pytest.raises(ValueError, match="num_cpus must be > 0"):
        build_engine("ray", encoder_spec="efficientnet", num_cpus=0)


@pytest.mark.slow
def test_ray_engine_writes_the_local_engines_entries(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from typer.testing import CliRunner

    from conceptlab.cli import app

    sizes = {"n_train": 24, "n_val": 10, "n_test": 10}
    opts = {"image_size": 64, "batch_size": 8}
    local = RunConfig(data="fashion-mnist", encoder="efficientnet", cache_dir=str(tmp_path / "a"),
                      encoder_options=opts, **sizes)
    run_encode(local, tmp_path / "out-local")
    args = ["encode", "--data", "fashion-mnist", "--encoder", "efficientnet",
            "--n-train", "24", "--n-val", "10", "--n-test", "10", "--cache", str(tmp_path / "b"),
            "-E", "image_size=64", "-E", "batch_size=8", "--out", str(tmp_path / "out-ray"),
            "--engine", "ray", "--engine-option", "local_cpus=2",
            "--engine-option", "concurrency=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = read_json(tmp_path / "out-ray" / "metrics.json")
    assert metrics["engine"] == "ray"
    assert all(s["computed"] == s["rows"] for s in metrics["encoding"].values())
    a, b = _entries(tmp_path / "a"), _entries(tmp_path / "b")
    assert sorted(a) == sorted(b) and len(a) == 3  # same digests: same keys, same splits
    for digest in a:
        assert sorted(a[digest]) == sorted(b[digest]) == ["features", "item_keys", "logits"]
        for view in a[digest]:
            assert a[digest][view].dtype == b[digest][view].dtype
            np.testing.assert_array_equal(a[digest][view], b[digest][view])
