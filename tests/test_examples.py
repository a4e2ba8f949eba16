"""Every script in examples/ runs on small data (``SMALL=True``; the language-model one on a
tiny random Llama) and leaves the files and numbers it promises."""

from __future__ import annotations

import contextlib
import io
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.cli_support import isolated_env

pytestmark = pytest.mark.slow  # real MiniLM and EfficientNet weights (still run in CI)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))


@pytest.fixture(autouse=True, scope="module")
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)  # one shared cache: the text examples encode once


def _run(name: str, out: Path, **extra: Any) -> tuple[dict[str, Any], str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = runpy.run_path(str(EXAMPLES / name), run_name="__main__",
                                init_globals={"SMALL": True, "OUT": str(out), **extra})
    return result, buf.getvalue()


def test_there_are_five_percent_cell_tutorials() -> None:
    assert len(SCRIPTS) == 5
    for name in SCRIPTS:
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        assert text.startswith("# %% [markdown]\n# # "), name  # opens as a notebook
        assert text.count("# %%") >= 4, name


def test_texts_to_a_trusted_cbm(tmp_path: Path) -> None:
    g, out = _run("01_texts_to_a_trusted_cbm.py", tmp_path)
    assert g["metrics"]["accuracy"] >= 0.8 and "trusted:" in out
    acts = pd.read_csv(tmp_path / "activations.csv")
    assert len(acts) == g["metrics"]["n_test"]
    assert (tmp_path / "explanation.png").stat().st_size > 1000
    assert (tmp_path / "weights.png").stat().st_size > 1000


def test_image_folder_to_named_concepts(tmp_path: Path) -> None:
    g, _ = _run("02_image_folder_to_named_concepts.py", tmp_path)
    assert set(g["found"]["per_class"]) == {"bar", "disc"}
    assert all(len(e["concepts"]) == 3 for e in g["found"]["per_class"].values())
    assert sorted(g["imp"]["ranking"]["gradient_input"]) == sorted(
        c["concept"] for c in g["found"]["per_class"]["disc"]["concepts"])


def test_language_model_concepts(tmp_path: Path) -> None:
    from tests.lm.test_workflows import _prompts
    from tests.lm.tiny import tiny_lm

    g, out = _run("03_language_model_concepts.py", tmp_path, LM=tiny_lm(),
                  STEER_DATA=_prompts(tmp_path))
    assert (tmp_path / "depth.png").is_file() and "depth" in out
    assert len(g["sweep"]["rows"]) == 4 and g["neurons"]["words"][0]["word"] == "dog"


def test_audit_a_model_someone_else_trained(tmp_path: Path) -> None:
    g, out = _run("04_audit_a_model_someone_else_trained.py", tmp_path)
    assert "unit_fidelity_median" in g["report"] and "decisions" in out
    audit = pd.read_csv(tmp_path / "audit.csv")
    assert "unit_fidelity_median" in set(audit["check"])


def test_compare_methods_at_a_fixed_nec(tmp_path: Path) -> None:
    g, out = _run("05_compare_methods_at_a_fixed_nec.py", tmp_path)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == len(g["METHODS"]) * len(g["SEEDS"]) and len(g["SEEDS"]) >= 3
    assert "±" in out and g["chosen"] in g["METHODS"]
