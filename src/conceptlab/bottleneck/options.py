"""Flat ``KEY=VALUE`` settings (the command line's ``--set``) routed to explicit configs.

Every key names exactly one field of the objective, ``CBLConfig``, ``TrainConfig`` or
``HeadConfig``; a prefix (``objective.lam``, ``cbl.grounding``, ``train.lr``, ``head.alpha``)
picks one where a name exists in several. Unknown or ambiguous keys, and values of the wrong
type, are refused with the key's name before anything is fitted.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from conceptlab.bottleneck.heads.config import HeadConfig
from conceptlab.bottleneck.layers import CBLConfig
from conceptlab.bottleneck.objectives.registry import OBJECTIVES, get_objective
from conceptlab.bottleneck.training import TrainConfig
from conceptlab.errors import OptionError

__all__ = ["ModelOptions", "OptionError", "split_options"]


@dataclass
class ModelOptions:
    objective: dict[str, Any] = field(default_factory=dict)
    cbl: CBLConfig = field(default_factory=CBLConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    head: HeadConfig = field(default_factory=HeadConfig)


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)
            if f.init and not f.name.startswith("_")}


#: the largest magnitude a float setting may have: the models compute in float32 (max 3.4e38),
#: and a setting near that overflows inside torch (Adam's step is lr / 0.1) with a traceback
MAX_SETTING_MAGNITUDE = 1e30


def _finite(key: str, value: float) -> float:
    if not math.isfinite(value) or abs(value) > MAX_SETTING_MAGNITUDE:
        raise OptionError(f"setting {key}={value!r}: expected a finite number of magnitude at "
                          f"most {MAX_SETTING_MAGNITUDE:g} (the models compute in float32)")
    return value


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type (ints and floats from strings), or an ``OptionError``."""
    if typing.get_origin(hint) is tuple:  # (the args of tuple[float, ...] are not a union)
        if isinstance(value, list | tuple) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return tuple(_finite(key, float(v)) for v in value)
        raise OptionError(f"setting {key}={value!r}: expected a list of numbers, e.g. "
                          f"{key}=[0.1,1.0]")
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        if value in args:
            return value
        raise OptionError(f"setting {key}={value!r}: expected one of {list(args)}")
    allowed = [a for a in args if a is not type(None)] if args else [hint]
    if value is None and type(None) in args:
        return None
    for typ in allowed:
        if typing.get_origin(typ) is typing.Literal:
            if value in typing.get_args(typ):
                return value
            continue
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
        elif typ is int and not isinstance(value, bool):
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value)
                except ValueError:
                    pass
        elif typ is float and not isinstance(value, bool):
            if isinstance(value, int | float):
                return _finite(key, float(value))
            if isinstance(value, str):
                try:
                    number = float(value)
                except ValueError:
                    pass
                else:
                    return _finite(key, number)
        elif typ is str and isinstance(value, str):
            return value
        elif typing.get_origin(typ) is tuple:
            return _coerce(key, value, typ)
    names = "/".join(getattr(a, "__name__", str(a)) for a in allowed)
    raise OptionError(f"setting {key}={value!r}: expected {names}")


def split_options(method: str, options: dict[str, Any]) -> ModelOptions:
    """Route flat settings of a model fitted with objective ``method`` to its configs."""
    if method not in OBJECTIVES:
        get_objective(method)  # raises the registry's error listing valid names
    groups = {"objective": _fields(OBJECTIVES[method]), "cbl": _fields(CBLConfig),
              "train": _fields(TrainConfig), "head": _fields(HeadConfig)}
    routed: dict[str, dict[str, Any]] = {g: {} for g in groups}
    for key, value in options.items():
        prefix, dot, name = key.partition(".")
        if dot:
            if prefix not in groups:
                raise OptionError(f"setting {key!r}: unknown prefix {prefix!r} (use "
                                  f"{', '.join(groups)})")
            owners = [prefix] if name in groups[prefix] else []
        else:
            name = key
            owners = [g for g, f in groups.items() if name in f]
        if not owners:
            valid = sorted({f"{g}.{n}" for g, f in groups.items() for n in f})
            raise OptionError(f"unknown setting {key!r} for method {method!r}; valid: "
                              f"{', '.join(valid)}")
        if len(owners) > 1:
            raise OptionError(f"setting {key!r} is ambiguous: prefix it with one of "
                              f"{', '.join(owners)}")
        group = owners[0]
        routed[group][name] = _coerce(key, value, groups[group][name])
    get_objective(method, **routed["objective"])  # validates the objective's values
    cls = OBJECTIVES[method]  # a reference's optimiser / head settings, under the user's
    return ModelOptions(objective=routed["objective"], cbl=CBLConfig(**routed["cbl"]),
                        train=TrainConfig(**{**cls.train_defaults, **routed["train"]}),
                        head=HeadConfig(**{**cls.head_defaults, **routed["head"]}))
