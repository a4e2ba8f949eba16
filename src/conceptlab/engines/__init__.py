"""How extraction runs: a local loop or a Ray Data pipeline, writing the same cache entries.

An engine turns (encoder, split, row positions) into a stream of view chunks, in order; the
activation cache (``ActivationCache.ensure_rows``) decides which rows need computing and
writes the shards, so every engine produces byte-for-byte the same entry layout and every
later command reads it unchanged. Pick one by name with :func:`build_engine`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from conceptlab.data.base import DataSplit
from conceptlab.encoders.base import Encoder, Views
from conceptlab.errors import ConceptlabValueError, OptionError

ENGINES = ("local", "ray")

#: the options each engine takes (``--engine-option KEY=VALUE``) and the kind of value:
#: "count" a positive integer, "amount" a finite number >= 0
ENGINE_OPTIONS: dict[str, dict[str, str]] = {
    "local": {"batch_size": "count"},
    "ray": {"num_cpus": "amount", "num_gpus": "amount", "concurrency": "count",
            "batch_size": "count", "local_cpus": "count"},
}


def check_engine_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` for engine ``name``, checked before any work: an unknown key names the
    ones the engine knows, a bad value says what it must be (one OptionError line)."""
    if name not in ENGINE_OPTIONS:
        raise ConceptlabValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    known = ENGINE_OPTIONS[name]
    out = dict(options or {})
    for key, value in out.items():
        if key not in known:
            raise OptionError(f"--engine-option: unknown option {key!r} for the {name} engine; "
                              f"known: {', '.join(known)}")
        kind = known[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind == "count" and not (isinstance(value, int) and not isinstance(value, bool)
                                    and value >= 1):
            raise OptionError(f"--engine-option {key}: expected a positive integer, got "
                              f"{value!r}")
        if kind == "amount" and not (number and 0 <= value < float("inf")):
            raise OptionError(f"--engine-option {key}: expected a number >= 0, got {value!r}")
    return out


class Engine(Protocol):
    """Computes the cached-stage views of some rows of a split."""

    name: str

    def rows(self, encoder: Encoder, split: DataSplit, positions: np.ndarray
             ) -> Iterator[Views]:
        """Yield views for ``split`` items at ``positions`` (ascending), in that order."""
        ...


def build_engine(name: str = "local", *, address: str | None = None,
                 encoder_spec: str | None = None,
                 encoder_options: dict[str, Any] | None = None, **options: Any) -> Engine:
    """``local`` (this process) or ``ray`` (a Ray Data pipeline on ``address`` or a local Ray).

    The Ray engine rebuilds the encoder on each worker from ``encoder_spec`` and
    ``encoder_options`` (encoders hold loaded networks and sessions that are not shipped).
    """
    options = check_engine_options(name, options)
    if name == "local":
        if address is not None:
            raise ConceptlabValueError("--address is for --engine ray")
        from conceptlab.engines.local import LocalEngine

        return LocalEngine(**options)
    if name == "ray":
        if not encoder_spec:
            raise ConceptlabValueError("the ray engine needs the encoder spec to rebuild it on "
                                       "workers")
        from conceptlab.engines.ray_engine import RayEngine

        return RayEngine(encoder_spec, encoder_options or {}, address=address, **options)
    raise ConceptlabValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")


__all__ = ["ENGINES", "ENGINE_OPTIONS", "Engine", "build_engine", "check_engine_options"]
