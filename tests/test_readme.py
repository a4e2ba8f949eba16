"""The README's "From Python" example runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README lost its Python example"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    lines = out.getvalue().strip().splitlines()
    assert float(lines[0].split()[0]) >= 0.9  # held-out accuracy of a separable toy task
    # real words on an easy task: trusted, units and class links pass
    assert lines[-1].startswith("True") and "'units_follow_concepts': 'pass'" in lines[-1]
    assert "'class_links_make_sense': 'pass'" in lines[-1]
