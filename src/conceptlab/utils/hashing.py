"""Stable fingerprints of arrays, tensors, state dicts, files and JSON-able configs.

Fingerprints key the activation cache and tie concept banks and fitted models to the exact
encoder and data they came from, so they must change whenever the content changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def hash_json(obj: Any, length: int = 16) -> str:
    """Hex digest of a JSON-able object with sorted keys."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def hash_array(array: np.ndarray | torch.Tensor, length: int = 16) -> str:
    """Hex digest of an array's dtype, shape and bytes."""
    label = None
    if isinstance(array, torch.Tensor):
        t = array.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash its bits, name the type
            t, label = t.view(torch.int16), "bfloat16"
        array = t.numpy()
    arr = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{label or arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()[:length]


def hash_state_dict(state: Mapping[str, torch.Tensor], length: int = 16) -> str:
    """Hex digest of a module's parameters and buffers, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key]
        h.update(key.encode())
        h.update(hash_array(tensor, 64).encode())
    return h.hexdigest()[:length]


def hash_module(module: torch.nn.Module, length: int = 16) -> str:
    """Hex digest of a module's weights (its state dict)."""
    return hash_state_dict(module.state_dict(), length)


def hash_file(path: str | os.PathLike[str], length: int = 16, chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:length]


def hash_file_stats(paths: Iterable[str | os.PathLike[str]],
                    root: str | os.PathLike[str] | None = None, length: int = 16) -> str:
    """Cheap digest of many files: relative path, size and modification time of each.

    Used for large image folders where hashing every byte would cost more than encoding; any
    edit, replacement, addition or removal of a file changes it. A path outside ``root`` (an
    absolute path in a caption CSV, say) enters by its full name.
    """
    h = hashlib.sha256()
    base = Path(root) if root is not None else None
    for p in paths:
        path = Path(p)
        st = path.stat()
        inside = base is not None and path.is_relative_to(base)
        name = str(path.relative_to(base)) if inside and base is not None else str(path)
        h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:length]
