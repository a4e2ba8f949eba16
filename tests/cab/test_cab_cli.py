"""``conceptlab cab`` refuses a bad association level before any rendering or fitting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli_support import invoke_fails, isolated_env


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from isolated_env(tmp_path_factory)


def test_association_outside_unit_interval_refused(tmp_path):
    message = invoke_fails("cab", "--association", "1.5", "--out", tmp_path / "x")
    assert "[0, 1]" in message
    assert not (tmp_path / "x").exists()
