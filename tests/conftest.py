"""Shared fixtures. Tiers: plain tests are the unit tier; ``@pytest.mark.slow`` marks the
real-weights tier (still run in CI). Synthetic data with planted concepts live here so that
every test package can use them."""

from __future__ import annotations

import os

import pytest

from tests.planted import PLANTED, Planted

os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def planted() -> Planted:
    return PLANTED
