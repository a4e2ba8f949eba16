"""Every list of names in the CLI's help comes from a registry: each registered name appears
in the ``--help`` text of every command whose option takes it.

The help is rendered in a fresh interpreter (one subprocess for all commands): help texts are
built when ``conceptlab.cli`` is imported, so names that other tests register for themselves
(a toy objective, a toy encoder) must not be expected there, and a fresh process sees only
what conceptlab itself registers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (command, option, registry): the option's help must list every name of the registry
CASES = [
    *[(cmd, "--data", "datasets") for cmd in ("encode", "zeroshot", "probe", "fit", "cms",
                                               "discover", "tcav", "align", "match")],
    *[(cmd, "--encoder", "encoders") for cmd in ("encode", "zeroshot", "probe", "fit", "cms",
                                                  "discover", "hook-points", "tcav", "match")],
    ("align", "--image-encoder", "encoders"),
    ("align", "--text-encoder", "encoders"),
    ("fit", "--method", "fit_methods"),
    ("fit", "--method", "objectives"),
    ("discover", "--method", "dictionaries"),
    ("importance", "--method", "importance"),
    ("zeroshot", "--templates", "templates"),
    ("cms", "--templates", "templates"),
    ("discover", "--naming", "naming"),
    *[(f"lm {cmd}", "--data", "prompt_sets") for cmd in ("probe", "steer", "ablate",
                                                          "observable", "parametric")],
    ("lm steer", "--method", "directions"),
    ("lm ablate", "--method", "directions"),
    ("lm probe", "--model", "model_types"),
    ("lm dictionary", "--method", "sae_methods"),
]

SCRIPT = r"""
import json, sys
from typer.testing import CliRunner
from conceptlab.cli import app
from conceptlab.bottleneck.objectives import objective_names
from conceptlab.baselines.zeroshot import TEMPLATE_SETS
from conceptlab.data.base import known_datasets
from conceptlab.discover.base import known_dictionaries
from conceptlab.discover.naming import NAMING_VOCABULARIES
from conceptlab.encoders.base import known_encoders
from conceptlab.importance import IMPORTANCE
from conceptlab.lm.datasets import PROMPT_SETS
from conceptlab.lm.dictionary import METHODS
from conceptlab.lm.directions import ESTIMATORS
from conceptlab.lm.model import MODEL_TYPES
from conceptlab.workflows.cbm import methods

runner = CliRunner()
helps = {}
for cmd in json.loads(sys.argv[1]):
    r = runner.invoke(app, [*cmd.split(), "--help"], env={"COLUMNS": "2000",
                                                          "TERMINAL_WIDTH": "2000"})
    helps[cmd] = r.output
print(json.dumps({"helps": helps, "registries": {
    "datasets": known_datasets(), "encoders": known_encoders(),
    "objectives": objective_names(), "fit_methods": methods(),
    "dictionaries": known_dictionaries(), "importance": IMPORTANCE.names(),
    "templates": TEMPLATE_SETS.names(), "naming": list(NAMING_VOCABULARIES),
    "prompt_sets": PROMPT_SETS.names(), "directions": ESTIMATORS.names(),
    "model_types": MODEL_TYPES.names(), "sae_methods": list(METHODS)}}))
"""


@pytest.fixture(scope="module")
def rendered() -> dict:
    commands = sorted({c for c, _, _ in CASES})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands)], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def option_help(text: str, option: str) -> str:
    """The help cell of ``option`` in a rendered help page (rows joined, borders dropped)."""
    lines = [re.sub(r"[│╭╮╰╯─]", " ", ln) for ln in text.splitlines()]
    start = next((i for i, ln in enumerate(lines)
                  if re.match(rf"\s*(\*\s*)?{re.escape(option)}\b", ln)), None)
    assert start is not None, f"{option} not in the help:\n{text}"
    block = [lines[start]]
    for ln in lines[start + 1:]:
        if re.match(r"\s*(\*\s*)?-", ln) or not ln.strip():
            break
        block.append(ln)
    return " ".join(" ".join(block).split())


@pytest.mark.parametrize(("command", "option", "registry"), CASES,
                         ids=[f"{c}-{o}-{r}" for c, o, r in CASES])
def test_every_registered_name_is_in_the_help(rendered: dict, command: str, option: str,
                                              registry: str) -> None:
    names = rendered["registries"][registry]
    assert names, registry
    text = option_help(rendered["helps"][command], option)
    tokens = re.split(r"[\s|,();\[\]]+", text)
    listed = {*tokens, *(t.split(":")[0] for t in tokens)}  # "hf:ARG" lists "hf"
    missing = [n for n in names if n not in listed]
    assert not missing, f"`{command} {option}` help misses {missing}: {text!r}"


def test_the_check_reads_one_options_cell() -> None:
    """A name in another option's help does not count for this one."""
    page = ("│ --data  <str>  data spec: a | b:PATH       │\n"
            "│                | c                        │\n"
            "│ --method <str> x | y                     │\n")
    assert option_help(page, "--data") == "--data <str> data spec: a | b:PATH | c"
    assert "x" not in option_help(page, "--data")
