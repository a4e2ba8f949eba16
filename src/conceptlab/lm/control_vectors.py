"""Steering vectors exported as llama.cpp control vectors (GGUF, the layout repeng writes).

repeng (``repeng/extract.py``, ``ControlVector.export_gguf``) writes a GGUF file with
architecture ``controlvector``, a string ``controlvector.model_hint`` (the model type), a
uint32 ``controlvector.layer_count`` and one float32 tensor ``direction.{layer}`` per layer
(``layer`` = the index of the decoder block whose output the vector is added to, as in
repeng's ``ControlModel``); ``ControlVector.import_gguf`` reads it back the same way. llama.cpp
loads such files with ``--control-vector`` (scaled by ``--control-vector-scaled``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from conceptlab.lm.model import LMError
from conceptlab.utils.io import atomic_path

ARCH = "controlvector"


def export_control_vector(directions: Mapping[int, np.ndarray], path: str | Path,
                          model_type: str) -> Path:
    """Write ``{block index: vector}`` as a control-vector GGUF (atomically)."""
    import gguf

    if not directions:
        raise LMError("a control vector needs at least one layer's direction")
    dims = {np.asarray(v).reshape(-1).shape[0] for v in directions.values()}
    if len(dims) != 1:
        raise LMError(f"directions of different widths {sorted(dims)}")
    for layer, v in directions.items():
        if int(layer) < 0 or not np.isfinite(np.asarray(v, np.float64)).all():
            raise LMError(f"layer {layer}: negative index or non-finite direction")
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_type)
        writer.add_uint32(f"{ARCH}.layer_count", len(directions))
        for layer in sorted(directions):
            writer.add_tensor(f"direction.{int(layer)}",
                              np.ascontiguousarray(np.asarray(directions[layer],
                                                              np.float32).reshape(-1)))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return Path(path)


def read_control_vector(path: str | Path) -> tuple[str, dict[int, np.ndarray]]:
    """``(model hint, {layer: vector})`` from a control-vector GGUF."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    arch = reader.get_field("general.architecture")
    if arch is None or bytes(arch.parts[-1]).decode("utf-8", "replace") != ARCH:
        raise LMError(f"{path}: not a control vector (architecture is not {ARCH!r})")
    hint = reader.get_field(f"{ARCH}.model_hint")
    if hint is None:
        raise LMError(f"{path}: no {ARCH}.model_hint")
    out: dict[int, np.ndarray] = {}
    for t in reader.tensors:
        if t.name.startswith("direction."):
            out[int(t.name.split(".")[1])] = np.asarray(t.data, np.float32).copy()
    return bytes(hint.parts[-1]).decode("utf-8"), out
