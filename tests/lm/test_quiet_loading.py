"""transformers' "Loading weights" bar stays out of piped output (a log) unless asked for
(docs/environment.md, ``CONCEPTLAB_NO_PROGRESS``): loading a causal LM through conceptlab in a
child process whose stderr is a pipe, the bar shows only with ``CONCEPTLAB_NO_PROGRESS=0``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lm.tiny import tiny_lm

LOAD = "from conceptlab.encoders.causal_lm import load_causal_lm; load_causal_lm({path!r})"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lm = tiny_lm()
    out = tmp_path_factory.mktemp("tiny-llama")
    lm.model.save_pretrained(out)
    lm.tokenizer.save_pretrained(out)
    return out


def _stderr(folder: Path, setting: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "CONCEPTLAB_NO_PROGRESS"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(sys.path))
    if setting is not None:
        env["CONCEPTLAB_NO_PROGRESS"] = setting
    done = subprocess.run([sys.executable, "-c", LOAD.format(path=str(folder))], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stderr


def test_no_loading_bars_in_piped_output(folder: Path) -> None:
    assert "Loading weights" not in _stderr(folder, None)  # stderr is a pipe: no bars


def test_bars_come_back_when_asked_for(folder: Path) -> None:
    assert "Loading weights" in _stderr(folder, "0")  # the check above can see a bar
