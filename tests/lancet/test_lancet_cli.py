"""``conceptlab lancet`` refuses a bad dictionary or edit group before any encoding."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli_support import invoke_fails, isolated_env


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


def test_auto_dictionary_only_for_idsprites(tmp_path):
    message = invoke_fails("lancet", "--data", "robots-text", "--out", tmp_path / "x")
    assert "idsprites only" in message


def test_unknown_edit_group_named(tmp_path):
    bad = tmp_path / "d.txt"
    bad.write_text("[colour/red]\na red thing\n[colour/blue]\na blue thing\n")
    message = invoke_fails("lancet", "--dictionary", bad, "--edit-group", "shape",
                           "--out", tmp_path / "x")
    assert "shape" in message and "colour" in message
