"""The objectives registry: every list of methods (CLI help, workflows, tests) derives from it."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

from conceptlab.bottleneck.objectives.base import Objective, ObjectiveError
from conceptlab.utils.registry import Registry

OBJECTIVES: Registry[type[Objective]] = Registry("objective", ObjectiveError)

T = TypeVar("T", bound=type[Objective])


def register_objective(cls: T) -> T:
    """Class decorator: make ``cls`` available by its ``name`` everywhere."""
    if not cls.name:
        raise ObjectiveError(f"{cls.__name__} has no name")
    OBJECTIVES.add(cls.name, cls)
    return cls


def objective_names() -> list[str]:
    """Registered objective names, in registration order."""
    return list(OBJECTIVES)


def get_objective(name: str, **params: Any) -> Objective:
    """Build the objective registered as ``name`` with hyper-parameters ``params``.

    Unknown names and unknown hyper-parameters raise ``ObjectiveError`` listing the valid ones.
    """
    cls = OBJECTIVES.lookup(name)
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ObjectiveError(f"objective {name!r} has no hyper-parameter(s) {unknown}; valid: "
                             f"{sorted(valid)}")
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ObjectiveError(f"{name}.{key} must be finite, got {value}")
    try:
        return cls(**params)
    except TypeError as err:
        raise ObjectiveError(f"objective {name!r}: {err}") from None
