"""`conceptlab tcav` end to end on tiny drawn images through the packaged EfficientNet-Lite0,
and its refusals (one error line before any model loads)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli_support import invoke, invoke_fails, isolated_env


@pytest.fixture(autouse=True)
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


def _draw(folder: Path, n: int, rng: np.random.Generator, colour: tuple[int, int, int] | None
          ) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = rng.integers(0, 80, (32, 32, 3)).astype(np.uint8)
        if colour is not None:
            a[8:24, 8:24] = colour
        Image.fromarray(a).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tcav")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        _draw(root / "data" / split / "sandal", 4, rng, (200, 180, 120))
        _draw(root / "data" / split / "other", 4, rng, None)
    _draw(root / "concepts" / "red", 5, rng, (220, 30, 30))
    _draw(root / "concepts" / "blue", 5, rng, (30, 30, 220))
    _draw(root / "concepts" / "green", 5, rng, (30, 220, 30))
    _draw(root / "random", 20, rng, None)
    (root / "texts").mkdir()
    (root / "texts" / "animals.txt").write_text("a dog\na cat\n")
    return {k: root / k for k in ("data", "concepts", "random", "texts")}


def test_tcav_command_writes_table_figure_and_statistics(sets: dict[str, Path], tmp_path: Path
                                                         ) -> None:
    out = tmp_path / "run"
    invoke("tcav", "--data", f"folder:{sets['data']}", "--class", "sandal",
           "--concepts-dir", sets["concepts"], "--random-dir", sets["random"],
           "--image-size", "32", "--n-class", "4", "--fast", "--out", out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["target"] == "sandal" and m["cav_method"] == "fast" and m["layers"] == ["features"]
    assert sorted(r["concept"] for r in m["rows"]) == ["blue", "green", "red"]
    for r in m["rows"]:
        assert len(r["scores"]) == len(r["random_scores"]) == 10
        assert 0 <= r["p"] <= r["p_holm"] <= 1
    assert (out / "tcav.png").stat().st_size > 0 and "| features |" in (out / "tcav.md").read_text()
    from safetensors.numpy import load_file

    cavs = load_file(str(out / "cavs.safetensors"))
    assert cavs["features/red"].shape == (10, 1280)  # 1280 x 1 x 1 at 32 px, flattened


def test_tcav_refuses_bad_input_before_loading_a_model(sets: dict[str, Path], tmp_path: Path
                                                       ) -> None:
    common = ["--data", f"folder:{sets['data']}", "--class", "sandal", "--out", tmp_path / "o"]
    assert "--n-random must be >= 10" in invoke_fails(
        "tcav", *common, "--concepts-dir", sets["concepts"], "--random-dir", sets["random"],
        "--n-random", "5")
    assert "not a folder" in invoke_fails(
        "tcav", *common, "--concepts-dir", tmp_path / "nope", "--random-dir", sets["random"])
    assert "reads images" in invoke_fails(
        "tcav", *common, "--concepts-dir", sets["texts"], "--random-dir", sets["random"])
    assert not (tmp_path / "o").exists()
