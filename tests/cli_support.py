"""Running the command line in-process, shared by the CLI-level test modules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from conceptlab.cli import app

#: no progress bars and no network, in-process and in subprocesses
ENV = {"CONCEPTLAB_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

runner = CliRunner()


def invoke(*args: Any) -> Any:
    """Run one command in-process; it must succeed."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (f"exit {result.exit_code}\n{result.output}\n"
                                   f"{result.exception!r}")
    return result


def invoke_json(*args: Any) -> Any:
    """Run a command with ``--json`` and parse the answer it prints on stdout."""
    return json.loads(invoke(*args, "--json").stdout)


def invoke_fails(*args: Any) -> str:
    """A command that must fail cleanly: exit code 2, one 'error:' line, no traceback."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, (f"exit {result.exit_code}\n{result.output}\n"
                                   f"{result.exception!r}")
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.output.count("error:") == 1, result.output
    return result.output


def isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No progress bars, no network, and a default cache that is never the user's: the body
    of each CLI test module's autouse fixture (``yield from isolated_env(...)``)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ENV.items():
            mp.setenv(key, value)
        mp.setenv("CONCEPTLAB_CACHE", str(tmp_path_factory.mktemp("default-cache")))
        mp.delenv("CONCEPTLAB_DEBUG", raising=False)
        yield
