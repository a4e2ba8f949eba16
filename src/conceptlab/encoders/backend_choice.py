"""``backend=auto`` by measurement: time each available backend on the model at hand, keep the
faster one.

Why a measurement rather than a rule per family: ONNX Runtime runs EfficientNet-Lite0 about
2.4x faster than eager torch on this CPU, but MiniLM at 0.95x of torch (docs/benchmarks.md,
``bench_backends.py``); which one wins depends on the model, the thread count and the library
versions, so the only honest rule is to time them.

* :func:`choose_backend` runs each candidate once untimed (export, session start, warm-up),
  then ``repeats`` rounds of one timed call per candidate, interleaved so that load from other
  processes falls on both alike, and keeps the one with the smallest best time. A tie (within
  ``margin``) keeps the first candidate (torch: the reference implementation).
* The choice is stored, with the times it was made from, in ``backend-choices.json`` beside
  the exported graphs (:func:`conceptlab.encoders.onnx_backend.export_dir`), keyed by the
  model's identity, the device, the thread count and the library versions, so a model is
  timed once per machine setup, not once per process. This file is not part of any
  fingerprint: the backend that runs is (each encoder's ``cache_fingerprint``), so the numbers
  of a model whose choice did not change stay the same, cache entries included.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.hashing import hash_json

Timer = Callable[[], float]
CHOICES_FILE = "backend-choices.json"
#: a later candidate must be at least this much faster (fraction of the first's time) to win
MARGIN = 0.05
REPEATS = 3

_MEMO: dict[str, str] = {}
_LOCK = threading.Lock()


def measure(candidates: Mapping[str, Callable[[], object]], *, repeats: int = REPEATS,
            timer: Timer = time.perf_counter) -> dict[str, float]:
    """Best time (seconds) of each candidate over ``repeats`` interleaved rounds, after one
    untimed warm-up call each."""
    if not candidates:
        raise ConceptlabValueError("measure needs at least one candidate")
    for run in candidates.values():
        run()
    best = {name: float("inf") for name in candidates}
    for _ in range(max(1, repeats)):
        for name, run in candidates.items():
            start = timer()
            run()
            best[name] = min(best[name], timer() - start)
    return best


def pick(times: Mapping[str, float], margin: float = MARGIN) -> str:
    """The fastest candidate; the first one keeps its place unless another is faster by more
    than ``margin`` of the first's time."""
    names = list(times)
    first = names[0]
    fastest = min(names, key=lambda n: (times[n], names.index(n)))
    if fastest != first and times[fastest] < times[first] * (1.0 - margin):
        return fastest
    return first


def setup_identity(device: str | torch.device) -> dict[str, Any]:
    """What besides the model decides which backend is faster: device, threads, versions."""
    import importlib.metadata as md

    try:
        ort = md.version("onnxruntime")
    except md.PackageNotFoundError:
        ort = None
    return {"device": str(torch.device(device)), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "onnxruntime": ort}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def choose_backend(identity: Mapping[str, Any], candidates: Mapping[str, Callable[[], object]],
                   *, store: Path | None = None, timer: Timer = time.perf_counter,
                   repeats: int = REPEATS, margin: float = MARGIN) -> str:
    """The backend to run for the model ``identity``: the stored choice when there is one, else
    measured now (:func:`measure`, :func:`pick`) and stored.

    ``candidates``: backend name -> one representative call (a batch) on that backend, first
    the default. ``store``: the folder of ``backend-choices.json`` (None: keep the choice in
    this process only). A single candidate is returned without timing."""
    names = list(candidates)
    if len(names) == 1:
        return names[0]
    key = hash_json({"model": dict(identity), "candidates": names})
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
    path = store / CHOICES_FILE if store is not None else None
    if path is not None:
        entry = _read(path).get(key)
        if isinstance(entry, dict) and entry.get("choice") in names:
            with _LOCK:
                _MEMO[key] = str(entry["choice"])
            return str(entry["choice"])
    times = measure(candidates, repeats=repeats, timer=timer)
    choice = pick(times, margin)
    with _LOCK:
        _MEMO[key] = choice
    if path is not None:
        _store(path, key, {"choice": choice, "seconds": times, "model": dict(identity),
                           "repeats": repeats})
    return choice


def _store(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Add one entry to the choices file under a lock; written whole (tmp file, then rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = _read(path)
                data[key] = entry
                tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str),
                               encoding="utf-8")
                os.replace(tmp, path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError:
        pass  # a read-only cache: the choice holds for this process (memo) only


def forget() -> None:
    """Drop the in-process choices (tests; a changed machine setup)."""
    with _LOCK:
        _MEMO.clear()
