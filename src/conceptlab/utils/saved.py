"""One way to save and load every saved kind (concept banks, dictionaries, linear maps, matchers,
neuron maps, models): tensors in ``<name>.safetensors`` and a JSON sidecar ``<name>.json``
holding ``kind`` and ``format`` (the version) beside the kind's own fields.

Why one helper: each copy used to check (or forget) its own subset of the failure cases, so a
deeply nested JSON file gave a bare ``RecursionError`` without the file's name and a wrong
``kind`` was reported as a format number. Here every failure is one
:class:`~conceptlab.errors.FormatError` line that names the file: missing file, bad JSON or
UTF-8, nesting too deep, not a JSON object, another kind, a version this code does not read,
an unreadable tensor file, missing tensors. The error is also the kind's own family error
(``EncoderError``, ``LMError``, ...) when one is given, so older callers keep catching it.

Use::

    BANK = SavedKind("concept_bank", formats=(1,), name="bank", legacy=True)
    with atomic_dir(folder) as tmp:                       # the whole folder appears at once
        write_saved(tmp, BANK, {"names": names}, {"vectors": vectors})
    meta, tensors = read_saved(folder, BANK)              # checked; numpy arrays

``legacy=True`` accepts sidecars written before ``kind`` was recorded (``format`` only);
``unversioned=True`` accepts sidecars written before ``format`` was recorded (``kind`` only,
read as the first of ``formats``). ``see`` is appended to the message for another kind (where
to read it instead).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabError, FormatError, MissingFileError
from conceptlab.utils.io import save_tensors, write_json_atomic

RESERVED = ("kind", "format")


_FORMAT_ERRORS: dict[type[ConceptlabError], type[FormatError]] = {}


def format_error(family: type[ConceptlabError] | None) -> type[FormatError]:
    """``FormatError`` that is also ``family`` (``None``: plain ``FormatError``; a family that
    is already a ``FormatError`` is used as it is)."""
    if family is None or issubclass(FormatError, family):
        return FormatError
    if issubclass(family, FormatError):
        return family
    if family not in _FORMAT_ERRORS:
        _FORMAT_ERRORS[family] = type(f"{family.__name__}Format", (FormatError, family), {
            "__doc__": f"A malformed saved file: both FormatError and {family.__name__}."})
    return _FORMAT_ERRORS[family]


@dataclass(frozen=True)
class SavedKind:
    """A saved kind: its ``kind`` string, the versions this code reads (the last is written),
    the file stem (``name.json`` / ``name.safetensors``), its family error type, whether
    sidecars without ``kind`` (``legacy``) or without ``format`` (``unversioned``) are read,
    and ``see``: a hint added when a sidecar holds another kind."""

    kind: str
    formats: tuple[int, ...]
    name: str
    legacy: bool = False
    error: type[ConceptlabError] | None = None
    unversioned: bool = False
    see: str = ""

    @property
    def json_name(self) -> str:
        return f"{self.name}.json"

    @property
    def tensors_name(self) -> str:
        return f"{self.name}.safetensors"

    @property
    def current(self) -> int:
        return self.formats[-1]

    def fail(self, message: str) -> FormatError:
        return format_error(self.error)(message)


def write_saved(folder: str | os.PathLike[str], kind: SavedKind, meta: Mapping[str, Any],
                tensors: Mapping[str, Any] | None = None) -> Path:
    """Write ``kind.name.json`` (``kind``, ``format`` and ``meta``) and, when ``tensors`` is
    given, ``kind.name.safetensors`` into ``folder`` (a staging folder: wrap the call in
    ``atomic_dir`` so that the folder appears whole)."""
    clash = sorted(set(meta) & set(RESERVED))
    if clash:
        raise ConceptlabError(f"{kind.kind}: fields {clash} are written by write_saved itself")
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    if tensors is not None:
        arrays = {k: np.ascontiguousarray(_numpy(v)) for k, v in tensors.items()}
        save_tensors(arrays, d / kind.tensors_name)
    write_json_atomic(d / kind.json_name, {"kind": kind.kind, "format": kind.current, **meta})
    return d


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


def read_json_checked(path: str | os.PathLike[str], error: type[ConceptlabError] | None = None
                      ) -> dict[str, Any]:
    """A JSON object from ``path``; every failure (missing, not UTF-8, bad JSON, nesting too
    deep, not an object) is one FormatError / MissingFileError line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: no such file")
    fail = format_error(error)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise fail(f"{p}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise fail(f"{p}: cannot read ({err.strerror or err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise fail(f"{p}: not valid JSON ({err.msg} at line {err.lineno} column "
                   f"{err.colno})") from None
    except RecursionError:
        raise fail(f"{p}: JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise fail(f"{p}: expected a JSON object, got a {type(data).__name__}")
    return data


def read_meta(folder: str | os.PathLike[str], kind: SavedKind) -> dict[str, Any]:
    """The checked sidecar of ``kind`` in ``folder`` (see the module docstring)."""
    p = Path(folder) / kind.json_name
    meta = read_json_checked(p, kind.error)
    found = meta.get("kind")
    if found is None and not kind.legacy:
        raise kind.fail(f"{p}: no 'kind' field: not a saved {kind.kind}")
    if found is not None and found != kind.kind:
        see = f" ({kind.see})" if kind.see else ""
        raise kind.fail(f"{p}: holds a {found!r}, not a {kind.kind!r}{see}")
    if "format" not in meta and kind.unversioned:
        return {**meta, "format": kind.formats[0]}
    fmt = meta.get("format")
    if isinstance(fmt, bool) or fmt not in kind.formats:
        readable = ", ".join(map(str, kind.formats))
        older = isinstance(fmt, int) and not isinstance(fmt, bool) and fmt < min(kind.formats)
        why = ("written by an older conceptlab; re-create it with this version" if older
               else "was it written by a newer conceptlab?")
        raise kind.fail(f"{p}: {kind.kind} format {fmt!r} is not one this version reads "
                        f"({readable}); {why}")
    return meta


def read_tensors(folder: str | os.PathLike[str], kind: SavedKind,
                 required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The tensors of ``kind`` in ``folder`` as numpy arrays; FormatError naming the file when
    it is missing, unreadable or lacks a ``required`` tensor."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    p = Path(folder) / kind.tensors_name
    if not p.is_file():
        raise MissingFileError(f"{p}: no such file")
    try:
        arrays = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as err:
        raise kind.fail(f"{p}: unreadable tensors: empty, truncated or not a safetensors "
                        f"file ({err})") from None
    missing = sorted(set(required) - set(arrays))
    if missing:
        raise kind.fail(f"{p}: lacks tensor(s) {missing}")
    return arrays


def read_saved(folder: str | os.PathLike[str], kind: SavedKind,
               required: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(checked sidecar, tensors)`` of ``kind`` in ``folder``."""
    return read_meta(folder, kind), read_tensors(folder, kind, required)
