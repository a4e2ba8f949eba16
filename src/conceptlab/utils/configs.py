"""Configuration dataclasses changed by name, with a clear error for a field that is not there."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def replace_fields(config: T, overrides: dict[str, Any], error: type[Exception],
                   what: str) -> T:
    """``config`` with ``overrides`` applied; unknown names raise ``error`` listing valid ones."""
    if not overrides:
        return config
    valid = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise error(f"unknown {what} setting(s) {unknown}; valid: {sorted(valid)}")
    return dataclasses.replace(config, **overrides)  # type: ignore[type-var]
